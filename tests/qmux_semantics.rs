//! QMux between two of ours over real TCP under async-std (no tokio): negotiation with the
//! runtime-free handshake helpers, streams with and without a driver, limits, the connection
//! window, uni streams, datagrams, keep-alive and the closing codes.

use crate::common;

use std::time::Duration;

use async_std::net::{TcpListener, TcpStream};
use bytes::Bytes;
use common::{pattern, within};
use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{
    connect::{request_with_protocols, selected_protocol, ConnectConfig, Connector},
    handshake::{accept, AcceptConfig},
    CloseCode, Config, Connection, Error, ErrorCode, Protocol, QmuxProtocols, QmuxVersion, Side,
};

/// A server that accepts QMux (and the @matrixai/ws protocol from clients offering nothing), and
/// a client offering `offer`.
async fn pair_offering(
    offer: &[String],
    client: Config,
    server: Config,
) -> (Connection, Connection) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept_config = AcceptConfig::default()
        .protocols(QmuxProtocols::default().subprotocols())
        .websocket(ws_stream_mux::websocket_config(&server));
    let server_side = async_std::task::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (ws, request) = accept(tcp, &accept_config).await.unwrap();
        let protocol = Protocol::from_subprotocol(request.protocol.as_deref());
        Connection::new(ws, Side::Server, protocol, server).unwrap()
    });
    let connector = Connector::new(
        ConnectConfig::default().websocket(ws_stream_mux::websocket_config(&client)),
    );
    let request = request_with_protocols(&format!("ws://{addr}/"), offer).unwrap();
    let (ws, response) = connector
        .connect(request, |address| async move {
            let tcp = TcpStream::connect(address).await?;
            tcp.set_nodelay(true)?;
            Ok(tcp)
        })
        .await
        .unwrap();
    let protocol = Protocol::from_subprotocol(selected_protocol(&response));
    let client = Connection::new(ws, Side::Client, protocol, client).unwrap();
    (client, server_side.await)
}

async fn qmux_pair(client: Config, server: Config) -> (Connection, Connection) {
    let offer = QmuxProtocols::default().application("test").subprotocols();
    let (c, s) = pair_offering(&offer, client, server).await;
    assert_eq!(c.protocol(), Protocol::Qmux(QmuxVersion::V02));
    assert_eq!(s.protocol(), Protocol::Qmux(QmuxVersion::V02));
    (c, s)
}

/// Echoes every stream the connection accepts.
fn echo_server(conn: Connection) -> async_std::task::JoinHandle<()> {
    async_std::task::spawn(async move {
        while let Ok(mut stream) = conn.accept().await {
            async_std::task::spawn(async move {
                let mut data = Vec::new();
                if stream.read_to_end(&mut data).await.is_ok() {
                    let _ = stream.write_all(&data).await;
                    let _ = stream.close().await;
                }
            });
        }
    })
}

async fn round_trip(conn: &Connection, seed: u64, len: usize) {
    let data = pattern(seed, len);
    let (mut send, mut recv) = conn.open().await.unwrap().into_split();
    let write = async {
        send.write_all(&data).await.unwrap();
        send.close().await.unwrap();
    };
    let read = async {
        let mut back = Vec::new();
        recv.read_to_end(&mut back).await.unwrap();
        back
    };
    let ((), back) = futures::join!(write, read);
    assert!(back == data, "stream {seed}: the echo differs");
}

#[async_std::test]
async fn the_same_server_speaks_qmux_or_matrixai_as_the_client_offers() {
    let (client, server) = pair_offering(&[], Config::default(), Config::default()).await;
    assert_eq!(
        (client.protocol(), server.protocol()),
        (Protocol::Wire, Protocol::Wire)
    );
    let (client, server) = qmux_pair(Config::default(), Config::default()).await;
    let echo = echo_server(server);
    within("an echo over QMux", round_trip(&client, 1, 100_000)).await;
    client.close(CloseCode::NORMAL, "").await.unwrap();
    within("the server's accept loop ends", echo).await;
}

#[async_std::test]
async fn many_streams_with_and_without_a_driver() {
    for driver in [false, true] {
        let (client, server) = qmux_pair(Config::default(), Config::default()).await;
        if driver {
            async_std::task::spawn(client.run());
            async_std::task::spawn(server.run());
        }
        let echo = echo_server(server);
        within("300 concurrent streams", async {
            futures::future::join_all(
                (0..300).map(|i| round_trip(&client, i, 1000 + i as usize * 37)),
            )
            .await
        })
        .await;
        client.close_application(ErrorCode(7), "bye").await.unwrap();
        within("the accept loop ends", echo).await;
    }
}

#[async_std::test]
async fn opens_wait_for_the_peers_stream_limit_and_proceed_as_streams_end() {
    let (client, server) = qmux_pair(Config::default(), Config::default().max_streams(4)).await;
    let echo = echo_server(server.clone());
    within("40 streams through a limit of 4", async {
        futures::future::join_all((0..40).map(|i| round_trip(&client, i, 5000))).await
    })
    .await;
    assert!(server.stats().streams_accepted >= 40);
    client.close(CloseCode::NORMAL, "").await.unwrap();
    within("accept loop", echo).await;
}

/// Streams stopped before they were read give their bytes back to the connection window: a
/// window of 64 KiB carries many times its size through streams half of which are dropped
/// unread.
#[async_std::test]
async fn stopped_streams_give_their_connection_credit_back() {
    let small = Config::default()
        .window(32 * 1024)
        .receive_budget(64 * 1024);
    let (client, server) = qmux_pair(Config::default(), small).await;
    let reader = async_std::task::spawn(async move {
        let mut kept = 0u64;
        for i in 0..64u64 {
            let mut stream = server.accept().await.unwrap();
            if i % 2 == 0 {
                drop(stream); // stopped unread: its bytes must still count as consumed
            } else {
                let mut data = Vec::new();
                stream.read_to_end(&mut data).await.unwrap();
                assert_eq!(data, pattern(i, 16 * 1024));
                kept += data.len() as u64;
            }
        }
        kept
    });
    within("1 MiB through a 64 KiB window", async {
        for i in 0..64u64 {
            let mut stream = client.open().await.unwrap();
            // A stream stopped by the reader fails its writes with the stop; that is fine.
            let _ = stream.write_all(&pattern(i, 16 * 1024)).await;
            let _ = stream.close().await;
        }
    })
    .await;
    assert_eq!(within("the reader", reader).await, 32 * 16 * 1024);
}

#[async_std::test]
async fn unidirectional_streams_and_datagrams() {
    let (client, server) = qmux_pair(Config::default(), Config::default().datagram_queue(4)).await;
    async_std::task::spawn(client.run());
    async_std::task::spawn(server.run());
    within("uni both ways", async {
        let mut send = client.open_uni().await.unwrap();
        send.write_all(&pattern(1, 200_000)).await.unwrap();
        send.close().await.unwrap();
        let mut recv = server.accept_uni().await.unwrap();
        let mut got = Vec::new();
        recv.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, pattern(1, 200_000));

        let mut send = server.open_uni().await.unwrap();
        send.write_all(b"server to client").await.unwrap();
        send.close().await.unwrap();
        let mut got = Vec::new();
        client
            .accept_uni()
            .await
            .unwrap()
            .read_to_end(&mut got)
            .await
            .unwrap();
        assert_eq!(got, b"server to client");
    })
    .await;
    within("datagrams", async {
        for i in 0..3u8 {
            client.send_datagram(Bytes::from(vec![i; 100])).unwrap();
        }
        for i in 0..3u8 {
            assert_eq!(server.read_datagram().await.unwrap(), vec![i; 100]);
        }
        let max = client.max_datagram_size().unwrap();
        assert!(matches!(
            client.send_datagram(Bytes::from(vec![0; max + 1])),
            Err(Error::DatagramTooLarge { .. })
        ));
    })
    .await;
    server
        .close_application(ErrorCode(1 << 40), "a code beyond 32 bits")
        .await
        .unwrap();
    let end = within("the client sees the close", client.closed()).await;
    assert!(
        matches!(&end, Error::ApplicationClosed { code, reason } if *code == 1 << 40 && reason == "a code beyond 32 bits"),
        "{end}"
    );
    assert!(end.is_clean_close());
    assert!(matches!(
        client.read_datagram().await,
        Err(Error::ApplicationClosed { .. })
    ));
}

#[async_std::test]
async fn a_quiet_connection_stays_open_when_one_side_has_an_idle_timeout() {
    // Only the server has an idle timeout; the client learns it from the server's parameters and
    // keeps the connection alive with QX_PINGs, which also keep the server hearing from it.
    let idle = Config::default().idle_timeout(Some(Duration::from_millis(900)));
    let (client, server) = qmux_pair(Config::default(), idle).await;
    async_std::task::spawn(client.run());
    async_std::task::spawn(server.run());
    // Four idle timeouts of silence from the application: the subject of this test.
    async_std::task::sleep(Duration::from_millis(3600)).await;
    assert!(!client.is_closed(), "{:?}", client.close_reason());
    assert!(!server.is_closed(), "{:?}", server.close_reason());
    let echo = echo_server(server);
    within("still works", round_trip(&client, 5, 1000)).await;
    client.close(CloseCode::NORMAL, "").await.unwrap();
    within("accept loop", echo).await;
}

#[async_std::test]
async fn a_graceful_shutdown_refuses_new_streams_and_lets_open_ones_finish() {
    let (client, server) = qmux_pair(Config::default(), Config::default()).await;
    async_std::task::spawn(client.run());
    // The server has no driver: its pending accept is what sends its transport parameters, which
    // the client's open waits for (QMux streams need the peer's limits).
    let accept = {
        let server = server.clone();
        async_std::task::spawn(async move { server.accept().await })
    };
    let mut early = within("open", client.open()).await.unwrap();
    early.write_all(b"before").await.unwrap();
    early.flush().await.unwrap();
    let mut accepted = within("accept", accept).await.unwrap();
    let shutdown = {
        let server = server.clone();
        async_std::task::spawn(async move {
            server
                .shutdown(CloseCode::NORMAL, "maintenance", None)
                .await
        })
    };
    // A stream opened now is refused: stopped and reset with code 0.
    let mut late = within("open", client.open()).await.unwrap();
    let mut sink = Vec::new();
    let err = within("the refusal", late.read_to_end(&mut sink))
        .await
        .expect_err("refused");
    assert!(
        matches!(Error::from_io(&err), Some(Error::Reset(ErrorCode(0)))),
        "{err}"
    );
    // The early stream finishes normally, then the connection closes.
    within("the early stream finishes", early.close())
        .await
        .unwrap();
    let mut got = Vec::new();
    within(
        "the server reads it to its end",
        accepted.read_to_end(&mut got),
    )
    .await
    .unwrap();
    assert_eq!(got, b"before");
    within("the server finishes it", accepted.close())
        .await
        .unwrap();
    drop(accepted);
    drop(early);
    drop(late);
    within("the shutdown completes", shutdown).await.unwrap();
    assert!(server.stats().streams_refused >= 1);
}
