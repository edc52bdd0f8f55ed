//! The connection ending without a Close frame: every stream fails in band with 1006 — every
//! pending read and write, and whatever comes after — and never with a silent end of stream.
//! No hang: the safety net of `within` fails loudly; no elapsed time is asserted.

use crate::common;

use std::{io, net::Shutdown};

use common::{pattern, within, ws_pair};
use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{CloseCode, Config, Connection, Error};

fn assert_1006(err: &io::Error, what: &str) {
    assert_eq!(err.kind(), io::ErrorKind::NotConnected, "{what}: {err:?}");
    match Error::from_io(err) {
        Some(Error::ConnectionClosed { code, .. }) => {
            assert_eq!(*code, CloseCode::ABNORMAL, "{what}")
        }
        other => panic!("{what}: expected a 1006 close, got {other:?}"),
    }
}

#[async_std::test]
async fn tcp_drop_mid_transfer_fails_every_pending_read_and_write_with_1006() {
    within("abrupt drop", async {
        let (client_ws, server_ws) = ws_pair().await;
        let server_tcp = server_ws.get_ref().clone();
        let client = Connection::client(client_ws, Config::default()).expect("valid config");
        let server = Connection::server(server_ws, Config::default()).expect("valid config");

        // The server echoes every stream.
        let echo = async_std::task::spawn(async move {
            while let Ok(stream) = server.accept().await {
                async_std::task::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = futures::io::copy(&mut r, &mut w).await;
                });
            }
        });

        let (started_tx, started_rx) = async_std::channel::unbounded();
        let mut tasks = Vec::new();
        for i in 0..5u64 {
            let stream = client.open().await.unwrap();
            let started = started_tx.clone();
            tasks.push(async_std::task::spawn(async move {
                let (mut r, mut w) = stream.split();
                let writer = async_std::task::spawn(async move {
                    let chunk = pattern(i, 64 * 1024);
                    loop {
                        if let Err(err) = w.write_all(&chunk).await {
                            return err;
                        }
                    }
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0usize;
                let read_err = loop {
                    match r.read(&mut buf).await {
                        Ok(0) => panic!("stream {i}: silent end of stream after {total} bytes"),
                        Ok(n) => {
                            total += n;
                            if total >= 1 << 20 && total - n < 1 << 20 {
                                started.send(()).await.unwrap();
                            }
                        }
                        Err(err) => break err,
                    }
                };
                (read_err, writer.await)
            }));
        }
        // Mid-transfer: every stream has echoed a megabyte.
        for _ in 0..5 {
            started_rx.recv().await.unwrap();
        }
        server_tcp.shutdown(Shutdown::Both).unwrap();

        for task in tasks {
            let (read_err, write_err) = task.await;
            assert_1006(&read_err, "pending read");
            assert_1006(&write_err, "pending write");
        }
        // Later operations fail the same way.
        assert!(matches!(
            client.open().await,
            Err(Error::ConnectionClosed {
                code: CloseCode::ABNORMAL,
                ..
            })
        ));
        assert!(matches!(
            client.accept().await,
            Err(Error::ConnectionClosed {
                code: CloseCode::ABNORMAL,
                ..
            })
        ));
        assert!(matches!(
            client.run().await,
            Err(Error::ConnectionClosed { .. })
        ));
        echo.await;
    })
    .await;
}

#[async_std::test]
async fn peer_vanishing_before_any_stream_fails_accept_with_1006() {
    within("vanish", async {
        let (client_ws, server_ws) = ws_pair().await;
        let conn = Connection::server(server_ws, Config::default()).expect("valid config");
        drop(client_ws);
        let err = conn.accept().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::ConnectionClosed {
                    code: CloseCode::ABNORMAL,
                    ..
                }
            ),
            "{err:?}"
        );
    })
    .await;
}
