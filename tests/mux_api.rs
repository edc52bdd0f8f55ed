//! The stream and connection API in quinn's model, over real TCP: graceful endings that do not
//! fail, owned halves, codes on every kind of ending, priorities of the send side, coalescing that
//! keeps its promise, events before the ends they explain, and the connection's lifecycle.

use crate::common;

use std::{io, time::Duration};

use common::{conn_pair, within};
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt, StreamExt};
use ws_stream_mux::{CloseCode, Config, Connection, Error, ErrorCode, Half, WsEvent, WsStream};

fn inner(err: &io::Error) -> &Error {
    Error::from_io(err).unwrap_or_else(|| panic!("not our error: {err:?}"))
}

/// A stream opened by the client and accepted by the server, its first byte delivered.
async fn open_pair(client: &Connection, server: &Connection) -> (WsStream, WsStream) {
    let mut c = client.open().await.expect("open");
    let hello = async {
        c.write_all(b"!").await?;
        // With coalesce_writes nothing else waits on the client here: the byte needs a flush.
        c.flush().await
    };
    let (wrote, accepted) = futures::join!(hello, server.accept());
    wrote.expect("hello byte");
    let mut s = accepted.expect("accept");
    let mut first = [0u8; 1];
    s.read_exact(&mut first).await.expect("hello byte arrives");
    (c, s)
}

async fn driven_pair(client: Config, server: Config) -> (Connection, Connection) {
    let (c, s) = conn_pair(client, server).await;
    async_std::task::spawn(c.run());
    async_std::task::spawn(s.run());
    (c, s)
}

#[async_std::test]
async fn a_stop_after_every_byte_left_does_not_fail_the_finish() {
    within("graceful end", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        let (mut c, mut s) = open_pair(&client, &server).await;
        c.write_all(b"request").await.unwrap();
        c.flush().await.expect("the request left");
        let mut request = [0u8; 7];
        s.read_exact(&mut request).await.unwrap();
        // The server has what it wanted and drops the stream before the FIN came: STOP 0.
        drop(s);
        assert_eq!(c.stopped().await.expect("stopped"), Some(ErrorCode(0)));
        // Everything had left: finishing is not an error.
        c.flush().await.expect("flush after the stop");
        c.close().await.expect("close after the stop");
        // Writing more is: the peer does not read any more.
        assert!(matches!(
            inner(&c.write(b"more").await.unwrap_err()),
            Error::Finished | Error::Stopped(ErrorCode(0))
        ));
    })
    .await;
}

#[async_std::test]
async fn stopped_resolves_once_everything_left_without_a_stop() {
    within("stopped", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        let (mut c, mut s) = open_pair(&client, &server).await;
        c.write_all(b"all of it").await.unwrap();
        c.finish().unwrap();
        assert_eq!(c.stopped().await.expect("delivered"), None);
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"all of it");
    })
    .await;
}

#[async_std::test]
async fn owned_halves_in_separate_tasks_keep_reset_and_stop() {
    within("owned halves", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        let (c, s) = open_pair(&client, &server).await;
        let (mut c_send, mut c_recv) = c.into_split();
        let (mut s_send, mut s_recv) = s.into_split();
        let resetter = async_std::task::spawn(async move {
            c_send.write_all(b"partial").await.unwrap();
            c_send.reset(ErrorCode(4001)).unwrap();
            c_send
        });
        let stopper = async_std::task::spawn(async move {
            c_recv.stop(ErrorCode(4002)).unwrap();
            c_recv
        });
        let _keep = (resetter.await, stopper.await);
        let mut buf = Vec::new();
        let err = s_recv.read_to_end(&mut buf).await.unwrap_err();
        assert!(
            matches!(inner(&err), Error::Reset(ErrorCode(4001))),
            "{err}"
        );
        assert_eq!(s_send.stopped().await.unwrap(), Some(ErrorCode(4002)));
        let err = s_send.write_all(b"x").await.unwrap_err();
        assert!(
            matches!(inner(&err), Error::Stopped(ErrorCode(4002))),
            "{err}"
        );
    })
    .await;
}

#[async_std::test]
async fn reset_after_close_is_no_error() {
    within("reset after close", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        let (mut c, mut s) = open_pair(&client, &server).await;
        c.write_all(b"done").await.unwrap();
        c.close().await.unwrap();
        // The FIN left: nothing is left to abort, and saying so is not an error.
        c.reset(ErrorCode(8)).expect("reset after close");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("a clean end");
        assert_eq!(got, b"done");
    })
    .await;
}

#[async_std::test]
async fn dropped_streams_end_with_their_drop_code_and_panics_never_read_as_a_clean_end() {
    within("drop codes", async {
        let config = Config::default().drop_code(ErrorCode(99));
        let (client, server) = driven_pair(config.clone(), config).await;

        // The connection's default drop code.
        let (c, s) = open_pair(&client, &server).await;
        drop(s);
        assert_eq!(c.stopped().await.unwrap(), Some(ErrorCode(99)));

        // A stream's own drop code, as a cancelled call would set it.
        let (c, s) = open_pair(&client, &server).await;
        s.set_drop_code(ErrorCode(4444)).unwrap();
        drop(s);
        assert_eq!(c.stopped().await.unwrap(), Some(ErrorCode(4444)));

        // A handler that panics: its stream is reset, never finished.
        let (mut c, s) = open_pair(&client, &server).await;
        let handler = async_std::task::spawn(async move {
            let _stream = s;
            panic!("the handler failed");
        });
        assert!(handler.catch_unwind().await.is_err());
        let err = c.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(matches!(inner(&err), Error::Reset(ErrorCode(99))), "{err}");
        let _ = c.write_all(b"x").await;
    })
    .await;
}

#[async_std::test]
async fn abort_ends_both_directions_with_one_code() {
    within("abort", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        let (mut c, mut s) = open_pair(&client, &server).await;
        c.abort(ErrorCode(4100)).unwrap();
        let err = s.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(
            matches!(inner(&err), Error::Reset(ErrorCode(4100))),
            "{err}"
        );
        assert_eq!(s.stopped().await.unwrap(), Some(ErrorCode(4100)));
    })
    .await;
}

#[async_std::test]
async fn read_chunk_hands_out_the_bytes_then_none_at_the_end() {
    within("read_chunk", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        let (mut c, mut s) = open_pair(&client, &server).await;
        let write = async {
            c.write_all(&[3u8; 100_000]).await.unwrap();
            c.close().await.unwrap();
        };
        let read = async {
            let mut total = 0;
            while let Some(chunk) = s.read_chunk(64 * 1024).await.unwrap() {
                assert!(!chunk.is_empty() && chunk.len() <= 64 * 1024);
                assert!(chunk.iter().all(|&b| b == 3));
                total += chunk.len();
            }
            total
        };
        let ((), total) = futures::join!(write, read);
        assert_eq!(total, 100_000);
    })
    .await;
}

#[async_std::test]
async fn a_partial_coalesced_message_leaves_when_a_reader_already_waits() {
    for driven in [false, true] {
        within("coalescing with a waiting reader", async {
            let config = Config::default().coalesce_writes(true);
            let (client, server) = conn_pair(config.clone(), config).await;
            if driven {
                async_std::task::spawn(client.run());
                async_std::task::spawn(server.run());
            }
            let (mut c, mut s) = open_pair(&client, &server).await;
            let (c2, mut s2) = open_pair(&client, &server).await;
            // A task already waits on the connection (reading another stream)...
            let waiting = async_std::task::spawn(async move {
                let mut c2 = c2;
                let mut buf = [0u8; 1];
                let _ = c2.read(&mut buf).await;
            });
            // ...so a small write, never flushed, still leaves.
            c.write_all(b"small").await.unwrap();
            let mut got = [0u8; 5];
            s.read_exact(&mut got)
                .await
                .expect("the partial message left");
            assert_eq!(&got, b"small");
            s2.close().await.unwrap();
            waiting.await;
        })
        .await;
    }
}

#[async_std::test]
async fn the_event_that_explains_an_end_comes_before_the_end() {
    within("event order", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        let mut events = client.events();
        let (mut c, mut s) = open_pair(&client, &server).await;
        s.reset(ErrorCode(4242)).unwrap();
        let err = c.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(matches!(inner(&err), Error::Reset(ErrorCode(4242))));
        // The read saw the reset: its event is already there.
        let mut seen = false;
        while let Some(Some(event)) = events.next().now_or_never() {
            if let WsEvent::StreamShutdown {
                half: Half::Read,
                code: Some(ErrorCode(4242)),
                ..
            } = event
            {
                seen = true;
            }
        }
        assert!(seen, "the reset's event came after the read saw it");
    })
    .await;
}

#[async_std::test]
async fn closed_is_closed_ping_stats_and_the_close_reason() {
    within("lifecycle", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        assert!(!client.is_closed());
        let rtt = client.ping().await.expect("pong");
        assert_eq!(client.rtt(), Some(rtt));
        let (mut c, mut s) = open_pair(&client, &server).await;
        c.write_all(&[0u8; 10_000]).await.unwrap();
        c.close().await.unwrap();
        s.read_to_end(&mut Vec::new()).await.unwrap();
        let stats = client.stats();
        assert_eq!(stats.streams_opened, 1);
        assert!(stats.bytes_sent >= 10_000, "{stats:?}");
        assert!(stats.messages_sent >= 3, "{stats:?}");
        assert_eq!(server.stats().streams_accepted, 1);
        assert!(server.stats().peak_buffered > 0);

        let closed = async_std::task::spawn({
            let server = server.clone();
            async move { server.closed().await }
        });
        client.close(CloseCode(4000), "done").await.unwrap();
        assert!(client.is_closed());
        match closed.await {
            Error::ConnectionClosed { code, reason } => {
                assert_eq!((code, reason.as_str()), (CloseCode(4000), "done"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            server.close_reason(),
            Some(Error::ConnectionClosed {
                code: CloseCode(4000),
                ..
            })
        ));
    })
    .await;
}

#[async_std::test]
async fn shutdown_refuses_new_streams_lets_open_ones_finish_then_closes() {
    within("shutdown", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        let mut events = client.events();
        let (mut c, mut s) = open_pair(&client, &server).await;
        let mut shutdown = Box::pin(server.shutdown(
            CloseCode::GOING_AWAY,
            "maintenance",
            Some(Duration::from_secs(60)),
        ));
        // The shutdown starts at its first poll.
        assert!(futures::poll!(shutdown.as_mut()).is_pending());
        // The server opens nothing new...
        assert!(matches!(server.open().await, Err(Error::ShuttingDown)));
        // ...and refuses the client's new streams...
        let mut refused = client.open().await.unwrap();
        let err = refused.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(matches!(inner(&err), Error::Reset(_)), "{err}");
        while let Some(event) = events.next().await {
            if matches!(event, WsEvent::StreamShutdown { id, .. } if id == refused.id()) {
                break;
            }
        }
        drop(refused);
        // ...while the open stream carries on until both ends are done with it.
        c.write_all(b"still flowing").await.unwrap();
        c.close().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"still flowing");
        s.close().await.unwrap();
        c.read_to_end(&mut Vec::new()).await.unwrap();
        drop((c, s));
        shutdown.await.expect("closed once the stream was over");
        assert!(matches!(
            client.closed().await,
            Error::ConnectionClosed {
                code: CloseCode::GOING_AWAY,
                ..
            }
        ));
    })
    .await;
}

#[async_std::test]
async fn shutdown_closes_anyway_at_its_deadline() {
    within("shutdown deadline", async {
        let (client, server) = driven_pair(Config::default(), Config::default()).await;
        let (_c, mut s) = open_pair(&client, &server).await;
        server
            .shutdown(CloseCode::GOING_AWAY, "", Some(Duration::from_millis(100)))
            .await
            .expect("closed at the deadline");
        let err = s.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(matches!(
            inner(&err),
            Error::ConnectionClosed {
                code: CloseCode::GOING_AWAY,
                ..
            }
        ));
    })
    .await;
}
