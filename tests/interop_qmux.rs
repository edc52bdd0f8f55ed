//! QMux against qmux 0.6.6, the deployed Rust implementation (its own WebSocket client and
//! server, tokio-tungstenite 0.30), over real TCP on 127.0.0.1 under tokio.
//!
//! Every scenario runs twice: our server with a qmux client, and a qmux server with our client;
//! within each, streams are opened by both sides. Content is checked byte for byte.
#![cfg(feature = "tokio")]

use std::{future::Future, time::Duration};

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt};
use qmux::Version;
use tokio::net::TcpListener;
use web_transport_trait::{Error as _, RecvStream as _, SendStream as _, Session as _};
use ws_stream_mux::{
    handshake::AcceptConfig, Config, Connection, Error, ErrorCode, Protocol, QmuxProtocols,
    QmuxVersion,
};

const APP: &str = "interop";

fn offer() -> QmuxProtocols {
    QmuxProtocols::default().application(APP)
}

/// A generous safety net: a hang fails loudly instead of stalling the suite.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Roles {
    /// Our server, a qmux client.
    OursServes,
    /// A qmux server, our client.
    QmuxServes,
}

const BOTH: [Roles; 2] = [Roles::OursServes, Roles::QmuxServes];

/// A connected pair: (ours, theirs).
async fn connect(roles: Roles, ours: Config, theirs: qmux::Config) -> (Connection, qmux::Session) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    match roles {
        Roles::OursServes => {
            let accept = AcceptConfig::default().protocols(offer().subprotocols());
            let server = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                ws_stream_mux::tokio::accept(tcp, &accept, ours).await
            });
            let client = qmux::ws::Client::new()
                .with_protocol(APP, &[Version::QMux02])
                .with_session_config(theirs)
                .connect(&url)
                .await
                .expect("qmux client connects");
            let (conn, request) = server.await.unwrap().expect("our server accepts");
            assert_eq!(request.protocol.as_deref(), Some("qmux-02.interop"));
            assert_eq!(conn.protocol(), Protocol::Qmux(QmuxVersion::V02));
            assert_eq!(client.protocol(), Some(APP));
            (conn, client)
        }
        Roles::QmuxServes => {
            let server = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                qmux::ws::Server::new()
                    .with_protocol(APP, &[Version::QMux02, Version::QMux01])
                    .with_session_config(theirs)
                    .accept(tcp)
                    .await
            });
            let conn = ws_stream_mux::tokio::connect_qmux(&url, &offer(), ours)
                .await
                .expect("our client connects");
            let session = server.await.unwrap().expect("qmux server accepts");
            assert_eq!(conn.protocol(), Protocol::Qmux(QmuxVersion::V02));
            assert_eq!(session.protocol(), Some(APP));
            (conn, session)
        }
    }
}

/// qmux's side of an echo: every bidirectional stream it accepts is read to its end and sent
/// back, then finished.
fn qmux_echoes(session: qmux::Session) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut send, mut recv)) = session.accept_bi().await {
            tokio::spawn(async move {
                let data = recv.read_all().await.expect("qmux reads the stream");
                send.write_all(&data).await.expect("qmux echoes");
                send.finish().expect("qmux finishes");
                let _ = send.closed().await;
            });
        }
    })
}

/// Our side of an echo.
fn ours_echoes(conn: Connection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(mut stream) = conn.accept().await {
            tokio::spawn(async move {
                let mut data = Vec::new();
                stream.read_to_end(&mut data).await.expect("we read");
                stream.write_all(&data).await.expect("we echo");
                stream.close().await.expect("we finish");
            });
        }
    })
}

async fn ours_round_trip(conn: &Connection, seed: u64, len: usize) {
    let data = pattern(seed, len);
    let stream = conn.open().await.expect("we open");
    let (mut writer, mut reader) = stream.into_split();
    let write = async {
        writer.write_all(&data).await.expect("we write");
        writer.close().await.expect("our FIN");
    };
    let read = async {
        let mut back = Vec::new();
        reader
            .read_to_end(&mut back)
            .await
            .expect("we read the echo");
        back
    };
    let ((), back) = futures::join!(write, read);
    assert!(back == data, "stream {seed}: echo differs");
}

async fn qmux_round_trip(session: &qmux::Session, seed: u64, len: usize) {
    let data = pattern(seed, len);
    let (mut send, mut recv) = session.open_bi().await.expect("qmux opens");
    let write = async {
        send.write_all(&data).await.expect("qmux writes");
        send.finish().expect("qmux finishes");
    };
    let read = async { recv.read_all().await.expect("qmux reads the echo") };
    let ((), back) = futures::join!(write, read);
    assert!(back == data, "stream {seed}: echo differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_on_one_and_a_hundred_streams_both_ways() {
    for roles in BOTH {
        let (conn, session) = connect(roles, Config::default(), qmux::Config::default()).await;
        let theirs = qmux_echoes(session.clone());
        let ours = ours_echoes(conn.clone());
        within("one stream each way", async {
            ours_round_trip(&conn, 1, 300_000).await;
            qmux_round_trip(&session, 2, 300_000).await;
        })
        .await;
        within("a hundred streams each way", async {
            let ours_open = futures::future::join_all(
                (0..100).map(|i| ours_round_trip(&conn, 100 + i, 10_000 + i as usize * 97)),
            );
            let theirs_open = futures::future::join_all(
                (0..100).map(|i| qmux_round_trip(&session, 300 + i, 10_000 + i as usize * 89)),
            );
            futures::join!(ours_open, theirs_open);
        })
        .await;
        within("close", conn.close_application(ErrorCode(0), "done"))
            .await
            .unwrap_or_else(|err| panic!("{roles:?}: close: {err}"));
        theirs.abort();
        ours.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_and_stops_carry_their_codes_both_ways() {
    for roles in BOTH {
        let (conn, session) = connect(roles, Config::default(), qmux::Config::default()).await;
        within("codes", async {
            // Our reset reaches qmux's reader.
            let mut ours = conn.open().await.unwrap();
            ours.write_all(b"partial").await.unwrap();
            ours.flush().await.unwrap();
            let (_, mut recv) = session.accept_bi().await.unwrap();
            ours.reset(ErrorCode(4001)).unwrap();
            let err = recv.read_all().await.expect_err("reset");
            assert_eq!(err.stream_error(), Some(4001), "{roles:?}: {err}");

            // qmux's stop reaches our writer.
            let mut ours = conn.open().await.unwrap();
            ours.write_all(b"x").await.unwrap();
            ours.flush().await.unwrap();
            let (_, mut recv) = session.accept_bi().await.unwrap();
            recv.stop(4002);
            let err = loop {
                match ours.write_all(&[0; 1024]).await {
                    Ok(()) => {}
                    Err(err) => break err,
                }
            };
            assert!(
                matches!(Error::from_io(&err), Some(Error::Stopped(ErrorCode(4002)))),
                "{roles:?}: {err}"
            );

            // qmux's reset reaches our reader.
            let (mut send, _recv) = session.open_bi().await.unwrap();
            send.write_all(b"abc").await.unwrap();
            let mut accepted = conn.accept().await.unwrap();
            send.reset(4003);
            let mut sink = Vec::new();
            let err = accepted.read_to_end(&mut sink).await.expect_err("reset");
            assert!(
                matches!(Error::from_io(&err), Some(Error::Reset(ErrorCode(4003)))),
                "{roles:?}: {err}"
            );

            // Our stop reaches qmux's writer (qmux answers it when it next writes).
            let (mut send, _recv) = session.open_bi().await.unwrap();
            send.write_all(b"abc").await.unwrap();
            let mut accepted = conn.accept().await.unwrap();
            accepted.stop(ErrorCode(4004)).unwrap();
            let err = loop {
                match send.write_all(&[0; 1024]).await {
                    Ok(()) => {}
                    Err(err) => break err,
                }
            };
            assert_eq!(err.stream_error(), Some(4004), "{roles:?}: {err}");
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_stream_and_connection_windows_both_ways() {
    for roles in BOTH {
        let ours_config = Config::default().window(1024).receive_budget(4096);
        let mut theirs_config = qmux::Config::default();
        theirs_config.max_stream_data_bidi_local = 1024;
        theirs_config.max_stream_data_bidi_remote = 1024;
        theirs_config.max_stream_data_uni = 1024;
        theirs_config.max_data = 4096;
        let (conn, session) = connect(roles, ours_config, theirs_config).await;
        let theirs = qmux_echoes(session.clone());
        let ours = ours_echoes(conn.clone());
        within("bulk through small windows", async {
            futures::join!(
                futures::future::join_all((0..4).map(|i| ours_round_trip(&conn, i, 100_000))),
                futures::future::join_all((0..4).map(|i| qmux_round_trip(&session, i, 100_000))),
            );
        })
        .await;
        theirs.abort();
        ours.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unidirectional_streams_and_datagrams_both_ways() {
    for roles in BOTH {
        let (conn, session) = connect(roles, Config::default(), qmux::Config::default()).await;
        within("uni and datagrams", async {
            let ours_data = pattern(7, 1_200_000);
            let mut send = conn.open_uni().await.unwrap();
            let write = async {
                send.write_all(&ours_data).await.unwrap();
                send.close().await.unwrap();
            };
            let read = async {
                session
                    .accept_uni()
                    .await
                    .unwrap()
                    .read_all()
                    .await
                    .unwrap()
            };
            let ((), got) = futures::join!(write, read);
            assert!(got == ours_data, "{roles:?}: qmux got our uni stream");

            let theirs_data = pattern(8, 1_200_000);
            let mut send = session.open_uni().await.unwrap();
            let write = async {
                send.write_all(&theirs_data).await.unwrap();
                send.finish().unwrap();
            };
            let read = async {
                let mut recv = conn.accept_uni().await.unwrap();
                let mut got = Vec::new();
                recv.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = futures::join!(write, read);
            assert!(got == theirs_data, "{roles:?}: we got qmux's uni stream");

            // Datagrams: the peer's limit is known once its parameters came (they have: a
            // stream went through).
            assert_eq!(conn.max_datagram_size(), Some(16_379));
            conn.send_datagram(Bytes::from_static(b"ours")).unwrap();
            assert_eq!(session.recv_datagram().await.unwrap(), "ours");
            session
                .send_datagram(Bytes::from_static(b"theirs"))
                .unwrap();
            assert_eq!(conn.read_datagram().await.unwrap(), "theirs");
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_close_codes_and_reasons_reach_both_ends() {
    for roles in BOTH {
        let (conn, session) = connect(roles, Config::default(), qmux::Config::default()).await;
        within(
            "our close",
            conn.close_application(ErrorCode(42), "interop complete"),
        )
        .await
        .unwrap_or_else(|err| panic!("{roles:?}: {err}"));
        let err = within("qmux sees it", session.closed()).await;
        assert_eq!(
            err.session_error(),
            Some((42, "interop complete".to_owned())),
            "{roles:?}: {err}"
        );

        // qmux 0.6.6 sometimes ends the TCP connection without its APPLICATION_CLOSE reaching
        // us (we then see 1006, truthfully: no close arrived). Seen in about half the runs on an
        // idle machine, never when loaded. Whenever its close does arrive, we must report exactly
        // its code and reason; and it must arrive in at least one of several sessions, so a
        // broken close still fails here.
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (conn, session) = connect(roles, Config::default(), qmux::Config::default()).await;
            session.close(43, "bye");
            let err = within("we see it", conn.closed()).await;
            match &err {
                Error::ApplicationClosed { code: 43, reason } if reason == "bye" => {
                    seen.clear();
                    break;
                }
                Error::ConnectionClosed { code, .. } if code.0 == 1006 => seen.push(err),
                _ => panic!("{roles:?}: {err}"),
            }
        }
        assert!(
            seen.is_empty(),
            "{roles:?}: qmux's close never arrived: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_session_stays_open_past_the_idle_timeout() {
    for roles in BOTH {
        // qmux closes a session it has not heard from for its idle timeout; we answer its
        // QX_PINGs and send our own keep-alive, so a session with nothing to say stays open.
        let mut theirs = qmux::Config::default();
        theirs.max_idle_timeout = 1_500;
        theirs.rtt_interval = Duration::ZERO;
        let ours = Config::default().idle_timeout(Some(Duration::from_millis(1_500)));
        let (conn, session) = connect(roles, ours, theirs).await;
        let echo = qmux_echoes(session.clone());
        // The quiet time is what this test is about: four idle timeouts.
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(!conn.is_closed(), "{roles:?}: {:?}", conn.close_reason());
        within("still open", ours_round_trip(&conn, 9, 1000)).await;
        let rtt = within("our QX_PING", conn.ping()).await.unwrap();
        assert!(rtt < Duration::from_secs(30));
        echo.abort();
    }
}

/// A raw WebSocket client that negotiated QMux and breaks its rules: we answer with
/// CONNECTION_CLOSE carrying the RFC 9000 code, then a Close frame with 1002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_close_a_peer_that_breaks_the_rules_with_its_error_code() {
    use async_tungstenite::tungstenite::Message;
    use futures::StreamExt as _;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    for (record, code) in [
        // A STREAM frame before the transport parameters: PROTOCOL_VIOLATION.
        (&b"\x0e\x00\x00\x01x"[..], 0x0a_u8),
        // A record over 16,382 bytes: FRAME_ENCODING_ERROR.
        (&[0u8; 16_383][..], 0x07),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = AcceptConfig::default().protocols(offer().subprotocols());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let (conn, _) = ws_stream_mux::tokio::accept(tcp, &accept, Config::default())
                .await
                .unwrap();
            conn.closed().await
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = ws_stream_mux::connect::request_with_protocols(
            &format!("ws://{addr}/"),
            &["qmux-02".to_owned()],
        )
        .unwrap();
        let (mut raw, _) = async_tungstenite::client_async(request, tcp.compat())
            .await
            .unwrap();
        raw.send(Message::Binary(Bytes::copy_from_slice(record)))
            .await
            .unwrap();
        let mut frames = Vec::new();
        let mut close = None;
        within("our answer", async {
            while let Some(Ok(message)) = raw.next().await {
                match message {
                    Message::Binary(data) => frames.push(data),
                    Message::Close(frame) => {
                        close = frame.map(|f| u16::from(f.code));
                        break;
                    }
                    _ => {}
                }
            }
        })
        .await;
        // Our parameters, then CONNECTION_CLOSE (type 0x1c) with the code.
        assert!(frames[0].starts_with(b"\xff\x51\x53\x30\x0d\x0a\x0d\x0a"));
        assert_eq!(&frames[1][..2], &[0x1c, code], "{frames:02x?}");
        assert_eq!(close, Some(1002));
        let err = within("our side ends", server).await.unwrap();
        assert!(matches!(err, Error::Protocol(_)), "{err}");
    }
}
