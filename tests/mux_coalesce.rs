//! `Config::coalesce_writes`: small writes travel in full DATA messages, and nothing written sits
//! unsent while its writer waits on the connection.

use crate::common;

use async_tungstenite::tungstenite::Message;
use common::{conn_pair, within, ws_pair};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use ws_stream_mux::{Config, Connection};

fn coalescing() -> Config {
    Config::default().coalesce_writes(true)
}

#[async_std::test]
async fn one_mib_in_1_kib_writes_travels_in_16_messages() {
    within("coalesce count", async {
        let (mut raw, server_ws) = ws_pair().await;
        let server = Connection::server(server_ws, coalescing()).expect("valid config");
        // The raw client opens stream 0 with a 4 MiB window.
        raw.send(Message::binary(vec![0, 0, 1, 0, 0x40, 0, 0]))
            .await
            .unwrap();
        let mut stream = server.accept().await.unwrap();
        let write = async {
            let chunk = [7u8; 1024];
            for _ in 0..1024 {
                stream.write_all(&chunk).await.unwrap();
            }
            stream.flush().await.unwrap();
        };
        let count = async {
            let (mut data_messages, mut bytes) = (0, 0);
            while bytes < 1 << 20 {
                match raw.next().await.expect("open").expect("message") {
                    Message::Binary(msg) if msg[..3] == [0, 0, 0] => {
                        data_messages += 1;
                        bytes += msg.len() - 3;
                    }
                    Message::Binary(_) => {} // our ACK
                    other => panic!("unexpected {other:?}"),
                }
            }
            (data_messages, bytes)
        };
        let ((), (data_messages, bytes)) = futures::join!(write, count);
        assert_eq!(bytes, 1 << 20);
        assert_eq!(data_messages, 16, "1 MiB in 64 KiB DATA messages");
    })
    .await;
}

#[async_std::test]
async fn request_then_read_needs_no_flush() {
    within("coalesce request/response", async {
        let (client, server) = conn_pair(coalescing(), coalescing()).await;
        async_std::task::spawn(async move {
            while let Ok(stream) = server.accept().await {
                let (mut r, mut w) = stream.split();
                let mut buf = [0u8; 64];
                // Echo without ever flushing: waiting for the next request releases the reply.
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut stream = client.open().await.unwrap();
        for i in 0..50u8 {
            stream.write_all(&[i; 10]).await.unwrap();
            let mut reply = [0u8; 10];
            stream.read_exact(&mut reply).await.unwrap();
            assert_eq!(reply, [i; 10]);
        }
    })
    .await;
}
