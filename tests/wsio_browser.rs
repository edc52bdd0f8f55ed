//! What a `WsIo` serving browsers needs, over real TCP with a raw peer: text messages taken as
//! bytes when asked, keep-alive pings, an idle timeout that notices a dead peer, and `ping()`.

use crate::wsio_support;

use std::time::Duration;

use futures::{AsyncReadExt, StreamExt};
use ws_stream_mux::{
    async_tungstenite::tungstenite::Message, CloseCode, Error, WsEvent, WsIo, WsIoConfig,
};
use wsio_support::*;

#[async_std::test]
async fn text_messages_can_be_read_as_bytes() {
    let (server, mut client) = ws_pair().await;
    let mut io = WsIo::with_config(server, WsIoConfig::default().text_as_bytes(true)).unwrap();
    client.send(Message::text("héllo ")).await.unwrap();
    client
        .send(Message::binary(b"world".to_vec()))
        .await
        .unwrap();
    client.close(None).await.unwrap();
    let mut got = Vec::new();
    within("read", io.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, "héllo world".as_bytes());
}

#[async_std::test]
async fn text_messages_still_close_with_1003_by_default() {
    let (server, mut client) = ws_pair().await;
    let mut io = WsIo::new(server);
    client.send(Message::text("no")).await.unwrap();
    let err = within("read", io.read_to_end(&mut Vec::new()))
        .await
        .unwrap_err();
    assert!(matches!(
        Error::from_io(&err),
        Some(Error::Protocol(ws_stream_mux::ProtoError::TextMessage))
    ));
}

#[async_std::test]
async fn keep_alive_pings_a_quiet_peer_and_ping_measures_the_round_trip() {
    let (server, client) = ws_pair().await;
    let config = WsIoConfig::default().keep_alive_interval(Some(Duration::from_millis(50)));
    let mut io = WsIo::with_config(server, config).unwrap();
    let mut events = io.events();
    // The peer answers pings (tungstenite does while it reads).
    let peer = async_std::task::spawn(async move {
        let mut client = client;
        let mut pings = 0;
        while let Some(Ok(message)) = client.next().await {
            if let Message::Ping(_) = message {
                pings += 1;
            }
        }
        pings
    });
    let rtt = within("ping", io.ping()).await.expect("pong");
    assert_eq!(io.rtt(), Some(rtt));
    // The pong of that ping is an event too: count on the next one.
    while let Some(Some(_)) = futures::FutureExt::now_or_never(events.next()) {}
    // A keep-alive ping goes out while the connection is read; its pong is an event.
    let reader = async {
        let mut buf = [0u8; 1];
        io.read(&mut buf).await
    };
    let pong = async {
        while let Some(event) = events.next().await {
            if matches!(event, WsEvent::Pong(_)) {
                break;
            }
        }
    };
    futures::pin_mut!(reader);
    within(
        "a keep-alive pong",
        futures::future::select(reader, Box::pin(pong)),
    )
    .await;
    within("close", io.close_with(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    assert!(
        within("peer", peer).await >= 2,
        "the ping and a keep-alive ping"
    );
}

#[async_std::test]
async fn an_idle_timeout_notices_a_dead_peer() {
    let (server, client) = ws_pair().await;
    let config = WsIoConfig::default()
        .idle_timeout(Some(Duration::from_millis(200)))
        .close_timeout(Some(Duration::from_millis(200)));
    let mut io = WsIo::with_config(server, config).unwrap();
    // A peer that never reads nor writes (a browser tab that died without closing TCP).
    let err = within("read", io.read_to_end(&mut Vec::new()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            Error::from_io(&err),
            Some(Error::TimedOut(ws_stream_mux::Timeout::Idle))
        ),
        "{err:?}"
    );
    drop(client);
}
