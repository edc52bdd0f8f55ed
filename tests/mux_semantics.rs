//! Half-close, reset, stop, flow control, stream limits and connection close, over real TCP.

use crate::common;

use std::{io, task::Poll};

use common::{conn_pair, pattern, within};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use pharos::Observable;
use ws_stream_mux::{CloseCode, Config, Connection, Error, ErrorCode, Half, WsEvent};

fn inner(err: &io::Error) -> &Error {
    Error::from_io(err).unwrap_or_else(|| panic!("not our error: {err:?}"))
}

/// Opens a stream from the client and makes sure the server has accepted it.
async fn open_pair(
    client: &Connection,
    server: &Connection,
) -> (ws_stream_mux::WsStream, ws_stream_mux::WsStream) {
    let mut c = client.open().await.expect("open");
    // Writing waits for the server's ACK, which it sends while it is driven (here by accept).
    let (wrote, accepted) = futures::join!(c.write_all(b"!"), server.accept());
    wrote.expect("hello byte");
    let mut s = accepted.expect("accept");
    let mut first = [0u8; 1];
    s.read_exact(&mut first).await.expect("hello byte arrives");
    assert_eq!(s.id(), c.id());
    (c, s)
}

#[async_std::test]
async fn half_close_each_way() {
    within("half close", async {
        let (client, server) = conn_pair(Config::default(), Config::default()).await;
        let (mut c, mut s) = open_pair(&client, &server).await;

        // Client finishes; the server reads to the end but can still write.
        c.write_all(b"request").await.unwrap();
        c.close().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        assert!(matches!(
            inner(&c.write(b"x").await.unwrap_err()),
            Error::Finished
        ));

        s.write_all(b"response").await.unwrap();
        s.close().await.unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"response");
        // End of stream stays end of stream.
        assert_eq!(c.read(&mut [0u8; 4]).await.unwrap(), 0);
    })
    .await;
}

#[async_std::test]
async fn reset_and_stop_codes_reach_the_other_side_both_ways() {
    within("reset/stop", async {
        let (mut client, mut server) = conn_pair(Config::default(), Config::default()).await;
        let mut server_events = server.observe(Default::default()).await.unwrap();
        let mut client_events = client.observe(Default::default()).await.unwrap();

        // Reset (abort writing) from each side: the other side's read fails with the code.
        for client_resets in [true, false] {
            let (mut c, mut s) = open_pair(&client, &server).await;
            let (resetter, reader, reader_events) = if client_resets {
                (&mut c, &mut s, &mut server_events)
            } else {
                (&mut s, &mut c, &mut client_events)
            };
            resetter.reset(ErrorCode(4001)).unwrap();
            let err = reader.read(&mut [0u8; 8]).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
            assert!(
                matches!(inner(&err), Error::Reset(ErrorCode(4001))),
                "{err:?}"
            );
            let id = reader.id();
            loop {
                match reader_events.next().await.expect("event") {
                    WsEvent::StreamShutdown {
                        id: i,
                        half: Half::Read,
                        code,
                    } if i == id => {
                        assert_eq!(code, Some(ErrorCode(4001)));
                        break;
                    }
                    _ => continue,
                }
            }
            // The resetter's own write side is over; its read side is not.
            assert!(matches!(
                inner(&resetter.write(b"x").await.unwrap_err()),
                Error::LocallyEnded(ErrorCode(4001))
            ));
        }

        // Stop (stop reading) from each side: the other side's writes fail with the code.
        for client_stops in [true, false] {
            let (mut c, mut s) = open_pair(&client, &server).await;
            let (stopper, writer) = if client_stops {
                (&mut c, &mut s)
            } else {
                (&mut s, &mut c)
            };
            stopper.stop(ErrorCode(4002)).unwrap();
            let chunk = vec![7u8; 1024];
            let err = loop {
                // Writes succeed until the stop arrives, then fail.
                if let Err(err) = writer.write(&chunk).await {
                    break err;
                }
            };
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
            assert!(
                matches!(inner(&err), Error::Stopped(ErrorCode(4002))),
                "{err:?}"
            );
            assert!(matches!(
                inner(&stopper.read(&mut [0u8; 1]).await.unwrap_err()),
                Error::LocallyEnded(ErrorCode(4002))
            ));
        }
    })
    .await;
}

#[async_std::test]
async fn sixteen_byte_window_writer_waits_and_data_arrives_intact() {
    within("16-byte window", async {
        let small = Config::default().window(16);
        let (client, server) = conn_pair(small.clone(), small).await;
        let mut c = client.open().await.unwrap();
        // 16 bytes of credit once the server's ACK arrived (waiting on accept drives it).
        let (accepted, wrote) = futures::join!(server.accept(), c.write_all(&[1u8; 16]));
        let mut s = accepted.unwrap();
        wrote.unwrap();

        // No credit left and the server has read nothing: the writer must wait.
        let mut pending_write = c.write(&[2u8]);
        assert!(
            matches!(futures::poll!(&mut pending_write), Poll::Pending),
            "a write beyond the 16-byte window did not wait"
        );
        // Reading half the window grants credit back; the waiting write completes.
        let mut first = [0u8; 16];
        let (read, wrote) = futures::join!(s.read_exact(&mut first), pending_write);
        read.unwrap();
        assert_eq!(wrote.unwrap(), 1);
        assert_eq!(first, [1u8; 16]);

        // Now a megabyte through the 16-byte window, both ways at once.
        let data = pattern(16, 1 << 20);
        let (c_r, mut c_w) = c.split();
        let (mut s_r, mut s_w) = s.split();
        let send = async {
            c_w.write_all(&data).await.unwrap();
            c_w.close().await.unwrap();
        };
        let echo = async {
            let mut got = vec![0u8; 1];
            s_r.read_exact(&mut got).await.unwrap();
            assert_eq!(got, [2u8]);
            futures::io::copy(&mut s_r, &mut s_w).await.unwrap();
            s_w.close().await.unwrap();
        };
        let receive = async {
            let mut got = Vec::new();
            let mut c_r = c_r;
            c_r.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), (), got) = futures::join!(send, echo, receive);
        assert!(got == data, "content differs through a 16-byte window");
    })
    .await;
}

#[async_std::test]
async fn stream_limit_makes_opener_wait_and_refuses_excess_peer_streams() {
    within("stream limit", async {
        let one = Config::default().max_streams(1);

        // Our own limit: a second open waits until the first stream is over.
        let (client, server) = conn_pair(one.clone(), Config::default()).await;
        let (mut c, _s) = open_pair(&client, &server).await;
        let mut second = Box::pin(client.open());
        assert!(
            matches!(futures::poll!(&mut second), Poll::Pending),
            "open did not wait"
        );
        c.close().await.unwrap();
        drop(c);
        second.await.expect("open once a slot is free");

        // The peer's limit: a stream over it is refused with ERROR on both halves and an event;
        // the connection carries on.
        let (client, mut strict) = conn_pair(Config::default(), one).await;
        let mut events = strict.observe(Default::default()).await.unwrap();
        let (mut c1, mut s1) = open_pair(&client, &strict).await;
        // Nothing waits on the server's handles from here on: let its driver answer.
        async_std::task::spawn(strict.run());
        let mut refused = client.open().await.unwrap();
        let refused_id = refused.id();
        let mut buf = [0u8; 1];
        let (read, event) = futures::join!(refused.read(&mut buf), async {
            loop {
                if let WsEvent::StreamRefused { id } = events.next().await.expect("event") {
                    break id;
                }
            }
        });
        assert_eq!(event, refused_id);
        assert!(matches!(
            inner(&read.unwrap_err()),
            Error::Reset(ErrorCode::UNKNOWN)
        ));
        let err = refused.write_all(b"x").await.unwrap_err();
        assert!(
            matches!(inner(&err), Error::Stopped(ErrorCode::UNKNOWN)),
            "{err:?}"
        );
        // The connection and the admitted stream carry on.
        c1.write_all(b"still works").await.unwrap();
        let mut got = [0u8; 11];
        s1.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"still works");
    })
    .await;
}

#[async_std::test]
async fn close_with_code_and_reason_reaches_peer_streams_and_events() {
    within("close 4001", async {
        let (client, mut server) = conn_pair(Config::default(), Config::default()).await;
        let mut events = server.observe(Default::default()).await.unwrap();
        let (mut c, mut s) = open_pair(&client, &server).await;

        // Invalid arguments are clear errors and change nothing.
        for bad in [1002u16, 1005, 1006, 1011, 3000, 5000] {
            assert!(matches!(
                client.close(CloseCode(bad), "x").await,
                Err(Error::InvalidCloseCode(CloseCode(c))) if c == bad
            ));
        }
        let long = "x".repeat(124);
        assert!(matches!(
            client.close(CloseCode::NORMAL, &long).await,
            Err(Error::CloseReasonTooLong(124))
        ));

        let (closed, read) = futures::join!(client.close(CloseCode(4001), "bye now"), async {
            s.read(&mut [0u8; 8]).await
        });
        closed.expect("close handshake");
        let err = read.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        match inner(&err) {
            Error::ConnectionClosed { code, reason } => {
                assert_eq!(*code, CloseCode(4001));
                assert_eq!(reason, "bye now");
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut saw_frame = false;
        while let Some(event) = events.next().await {
            match event {
                WsEvent::CloseFrame { code, reason } => {
                    assert_eq!((code, reason.as_str()), (CloseCode(4001), "bye now"));
                    saw_frame = true;
                }
                WsEvent::Closed { code, reason } => {
                    assert_eq!((code, reason.as_str()), (CloseCode(4001), "bye now"));
                    break;
                }
                _ => {}
            }
        }
        assert!(saw_frame, "no CloseFrame event");
        // Reset and stop on a closed connection say why they cannot reach the peer.
        assert!(matches!(
            c.reset(ErrorCode(9)),
            Err(Error::ConnectionClosed {
                code: CloseCode(4001),
                ..
            })
        ));
        assert!(matches!(
            s.stop(ErrorCode(9)),
            Err(Error::ConnectionClosed {
                code: CloseCode(4001),
                ..
            })
        ));
        // A second close is a clear error.
        assert!(matches!(
            client.close(CloseCode::NORMAL, "").await,
            Err(Error::AlreadyClosed)
        ));
        assert!(server.accept().await.is_err());
    })
    .await;
}
