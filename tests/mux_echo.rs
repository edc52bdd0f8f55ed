//! Echo over one and many multiplexed streams, over real TCP.

use crate::common;

use common::{conn_pair, pattern, within};
use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{Config, Connection, WsStream};

/// Echoes every accepted stream until the connection closes.
async fn echo_server(conn: Connection) {
    while let Ok(stream) = conn.accept().await {
        async_std::task::spawn(async move {
            let (mut r, mut w) = stream.split();
            futures::io::copy(&mut r, &mut w).await.expect("echo copy");
            w.close().await.expect("echo fin");
        });
    }
}

/// Writes `data` on `stream`, finishes, reads the echo to the end and checks it.
async fn round_trip(stream: WsStream, data: Vec<u8>) {
    let (mut r, mut w) = stream.split();
    let writer = async {
        w.write_all(&data).await.expect("write");
        w.close().await.expect("fin");
    };
    let reader = async {
        let mut echoed = Vec::with_capacity(data.len());
        r.read_to_end(&mut echoed).await.expect("read echo");
        echoed
    };
    let ((), echoed) = futures::join!(writer, reader);
    assert_eq!(echoed.len(), data.len(), "echo length");
    assert!(echoed == data, "echo content differs");
}

#[async_std::test]
async fn echo_one_stream_8_mib() {
    within("one stream", async {
        let (client, server) = conn_pair(Config::default(), Config::default()).await;
        async_std::task::spawn(echo_server(server));
        let stream = client.open().await.expect("open");
        round_trip(stream, pattern(1, 8 << 20)).await;
    })
    .await;
}

#[async_std::test]
async fn echo_100_concurrent_streams_8_mib_each() {
    within("100 streams", async {
        let (client, server) = conn_pair(Config::default(), Config::default()).await;
        async_std::task::spawn(echo_server(server));
        let mut tasks = Vec::new();
        for i in 0..100u64 {
            let stream = client.open().await.expect("open");
            tasks.push(async_std::task::spawn(round_trip(
                stream,
                pattern(i, 8 << 20),
            )));
        }
        for task in tasks {
            task.await;
        }
    })
    .await;
}

/// Read and write halves of every stream live in different tasks on both sides, with a tiny
/// window so that writers sleep on credit and readers on data over and over: a lost wake-up would
/// hang here.
#[async_std::test]
async fn split_halves_in_separate_tasks_with_a_tiny_window() {
    within("split halves", async {
        let tiny = Config::default().window(64);
        let (client, server) = conn_pair(tiny.clone(), tiny).await;
        async_std::task::spawn(async move {
            while let Ok(stream) = server.accept().await {
                let (mut r, mut w) = stream.split();
                let (tx, rx) = async_std::channel::bounded::<Vec<u8>>(4);
                async_std::task::spawn(async move {
                    let mut buf = vec![0u8; 100];
                    loop {
                        let n = r.read(&mut buf).await.expect("server read");
                        if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                            break;
                        }
                    }
                });
                async_std::task::spawn(async move {
                    while let Ok(chunk) = rx.recv().await {
                        w.write_all(&chunk).await.expect("server write");
                    }
                    w.close().await.expect("server fin");
                });
            }
        });
        let mut tasks = Vec::new();
        for i in 0..8u64 {
            let (mut r, mut w) = client.open().await.expect("open").split();
            let data = pattern(100 + i, 256 * 1024);
            let expected = data.clone();
            tasks.push(async_std::task::spawn(async move {
                w.write_all(&data).await.expect("write");
                w.close().await.expect("fin");
            }));
            tasks.push(async_std::task::spawn(async move {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.expect("read");
                assert!(got == expected, "echo differs on stream {i}");
            }));
        }
        for task in tasks {
            task.await;
        }
    })
    .await;
}
