//! Keep-alive: Pings after a quiet interval, a close with 1001 after an idle timeout, and a live
//! peer (answering Pings) that is never timed out.

use crate::common;

use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use common::{within, ws_pair};
use futures::StreamExt;
use pharos::Observable;
use ws_stream_mux::{Config, Connection, Error, WsEvent};

fn config(interval: Option<u64>, idle: Option<u64>) -> Config {
    Config::default()
        .keep_alive_interval(interval.map(Duration::from_millis))
        .idle_timeout(idle.map(Duration::from_millis))
}

#[async_std::test]
async fn quiet_connection_is_pinged_and_pongs_are_observed() {
    within("pings", async {
        let (mut raw, server_ws) = ws_pair().await;
        let mut server =
            Connection::server(server_ws, config(Some(30), None)).expect("valid config");
        let mut events = server.observe(Default::default()).await.unwrap();
        let driver = async_std::task::spawn(server.run());
        // The raw client reads (and so answers every Ping with a Pong).
        let mut pings = 0;
        while pings < 3 {
            match raw.next().await.expect("open").expect("message") {
                Message::Ping(_) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        let mut pongs = 0;
        while pongs < 2 {
            if let WsEvent::Pong(_) = events.next().await.expect("events") {
                pongs += 1;
            }
        }
        raw.close(None).await.unwrap();
        while raw.next().await.is_some() {}
        driver.await.expect("closed with a Close frame");
    })
    .await;
}

#[async_std::test]
async fn silent_peer_is_closed_with_1001_after_the_idle_timeout() {
    within("idle timeout", async {
        let (mut raw, server_ws) = ws_pair().await;
        let server = Connection::server(server_ws, config(None, Some(150))).expect("valid config");
        // The raw client neither sends nor reads until the server gave up on it.
        let err = server.accept().await.unwrap_err();
        assert!(
            matches!(err, Error::TimedOut(ws_stream_mux::Timeout::Idle)),
            "expected the idle timeout, got {err:?}"
        );
        match raw.next().await.expect("close frame").expect("message") {
            Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected a Close frame, got {other:?}"),
        }
    })
    .await;
}

#[async_std::test]
async fn peer_answering_pings_outlives_the_idle_timeout() {
    within("live peer", async {
        let (mut raw, server_ws) = ws_pair().await;
        // Pinged after every 100 ms of quiet, timed out after 2 s of silence. A ping goes out
        // only once the interval passed without a word from the peer, so 30 pings span at least
        // 3 s — one and a half idle timeouts — by construction, whatever the machine's load; the
        // peer's Pongs must keep the connection open all along. The timeout is 20 intervals, so
        // that only a peer silent for 2 s (not a test task the scheduler kept waiting for a
        // moment) is timed out.
        let server =
            Connection::server(server_ws, config(Some(100), Some(2000))).expect("valid config");
        let driver = async_std::task::spawn(server.run());
        let mut pings = 0;
        while pings < 30 {
            match raw.next().await.expect("open").expect("message") {
                Message::Ping(_) => pings += 1,
                other => panic!("connection not kept alive: {other:?}"),
            }
        }
        raw.close(None).await.unwrap();
        while raw.next().await.is_some() {}
        driver
            .await
            .expect("closed by the peer, not by the idle timeout");
    })
    .await;
}
