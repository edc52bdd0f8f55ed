//! Echo over one and many multiplexed streams, over real TCP.

mod common;

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
