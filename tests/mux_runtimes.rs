//! The same echo under tokio (through tokio-util's compat layer) and under smol: the library
//! assumes no runtime.

use crate::common;

use common::pattern;
use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{CloseCode, Config, Connection};

/// Opens `streams` streams on `client`, echoes 8 MiB over each through `server`, closes with 1000.
/// `spawn` runs a future on the runtime under test.
async fn echo_scenario<S>(client: Connection, server: Connection, streams: u64, spawn: S)
where
    S: Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
{
    let accept_loop = {
        let server = server.clone();
        async move {
            while let Ok(stream) = server.accept().await {
                let (mut r, mut w) = stream.split();
                futures::io::copy(&mut r, &mut w).await.expect("echo");
                w.close().await.expect("echo fin");
            }
        }
    };
    spawn(Box::pin(accept_loop));
    for i in 0..streams {
        let stream = client.open().await.expect("open");
        let data = pattern(i, 8 << 20);
        let (mut r, mut w) = stream.split();
        let write = async {
            w.write_all(&data).await.expect("write");
            w.close().await.expect("fin");
        };
        let read = async {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.expect("read");
            got
        };
        let ((), got) = futures::join!(write, read);
        assert!(got == data, "echo differs on stream {i}");
    }
    client
        .close(CloseCode::NORMAL, "done")
        .await
        .expect("close");
}

#[test]
fn echo_under_tokio() {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = async_tungstenite::accept_async(tcp.compat()).await.unwrap();
            Connection::server(ws, Config::default()).expect("valid config")
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (ws, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp.compat())
            .await
            .unwrap();
        let client = Connection::client(ws, Config::default()).expect("valid config");
        let server = server.await.unwrap();
        let work = echo_scenario(client, server, 3, |fut| {
            tokio::spawn(fut);
        });
        tokio::time::timeout(common::SAFETY, work)
            .await
            .expect("tokio echo hung");
    });
}

#[test]
fn echo_under_smol() {
    smol::block_on(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = smol::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let ws = async_tungstenite::accept_async(tcp).await.unwrap();
            Connection::server(ws, Config::default()).expect("valid config")
        });
        let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
        let (ws, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .unwrap();
        let client = Connection::client(ws, Config::default()).expect("valid config");
        let server = server.await;
        let work = echo_scenario(client, server, 3, |fut| smol::spawn(fut).detach());
        let timeout = async {
            smol::Timer::after(common::SAFETY).await;
            panic!("smol echo hung");
        };
        futures::future::select(Box::pin(work), Box::pin(timeout)).await;
    });
}
