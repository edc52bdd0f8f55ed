//! A raw peer — a plain async-tungstenite client writing hand-built messages — against our
//! server: every kind of bad input gets the behaviour WIRE.md asks for, and nothing else is harmed.

use crate::common;

use std::io;

use async_std::net::TcpStream;
use async_tungstenite::{tungstenite::Message, WebSocketStream};
use common::{within, ws_pair};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use pharos::{Events, Observable};
use ws_stream_mux::{CloseCode, Config, Connection, Error, ProtoError, StreamId, WsEvent};

struct Raw(WebSocketStream<TcpStream>);

impl Raw {
    async fn send(&mut self, bytes: &[u8]) {
        self.0
            .send(Message::binary(bytes.to_vec()))
            .await
            .expect("raw send");
    }

    /// The next binary message from our server.
    async fn recv(&mut self) -> Vec<u8> {
        loop {
            match self
                .0
                .next()
                .await
                .expect("raw: connection ended")
                .expect("raw recv")
            {
                Message::Binary(b) => return b.to_vec(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("raw: expected a binary message, got {other:?}"),
            }
        }
    }

    /// The Close frame our server sends; returns its code.
    async fn expect_close(&mut self) -> u16 {
        loop {
            match self.0.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Binary(_))) => continue,
                other => panic!("raw: expected a Close frame, got {other:?}"),
            }
        }
    }
}

async fn setup(window: u32) -> (Raw, Connection, Events<WsEvent>) {
    let (client, server) = ws_pair().await;
    let config = Config::default().window(window);
    let mut conn = Connection::server(server, config).expect("valid config");
    let events = conn.observe(Default::default()).await.unwrap();
    (Raw(client), conn, events)
}

const ACK_1000: [u8; 4] = [0, 0, 0x03, 0xe8];

fn msg(id: &[u8], kind: u8, body: &[u8]) -> Vec<u8> {
    [id, &[0, kind], body].concat()
}

async fn next_matching(events: &mut Events<WsEvent>, want: impl Fn(&WsEvent) -> bool) -> WsEvent {
    loop {
        let event = events.next().await.expect("events ended");
        if want(&event) {
            return event;
        }
    }
}

fn inner(err: &io::Error) -> &Error {
    Error::from_io(err).unwrap_or_else(|| panic!("not our error: {err:?}"))
}

#[async_std::test]
async fn overflow_fails_that_stream_only() {
    within("overflow", async {
        let (mut raw, conn, mut events) = setup(16).await;
        raw.send(&msg(&[0], 1, &ACK_1000)).await;
        let mut s = conn.accept().await.unwrap();
        assert_eq!(
            raw.recv().await,
            msg(&[0], 1, &[0, 0, 0, 16]),
            "our ACK carries the window"
        );

        raw.send(&msg(&[0], 0, &[9u8; 17])).await;
        let err = s.read(&mut [0u8; 32]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(inner(&err), Error::StreamOverflow(0)));
        assert_eq!(
            raw.recv().await,
            msg(&[0], 2, &[0, 2]),
            "ERROR Read, code 2"
        );
        assert_eq!(
            raw.recv().await,
            msg(&[0], 2, &[1, 2]),
            "ERROR Write, code 2"
        );
        next_matching(&mut events, |e| {
            matches!(e, WsEvent::StreamOverflow { id: StreamId(0) })
        })
        .await;

        // Another stream works.
        raw.send(&msg(&[2], 1, &ACK_1000)).await;
        raw.send(&msg(&[2], 0, b"ok")).await;
        let mut s2 = conn.accept().await.unwrap();
        let mut got = [0u8; 2];
        s2.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ok");
    })
    .await;
}

#[async_std::test]
async fn malformed_message_on_a_known_stream_fails_that_stream_only() {
    within("malformed", async {
        let (mut raw, conn, mut events) = setup(1024).await;
        raw.send(&msg(&[0], 1, &ACK_1000)).await;
        let mut s = conn.accept().await.unwrap();
        raw.recv().await; // our ACK

        raw.send(&msg(&[0], 1, &[0, 0])).await; // ACK body of 2 bytes
        let err = s.read(&mut [0u8; 8]).await.unwrap_err();
        assert!(matches!(inner(&err), Error::StreamParse(0)), "{err:?}");
        assert_eq!(raw.recv().await, msg(&[0], 2, &[0, 1]));
        assert_eq!(raw.recv().await, msg(&[0], 2, &[1, 1]));
        next_matching(&mut events, |e| {
            matches!(e, WsEvent::StreamParseError { id: StreamId(0) })
        })
        .await;

        // Unknown type, bad shutdown byte: on a new stream, with the connection still fine.
        raw.send(&msg(&[2], 1, &ACK_1000)).await;
        let mut s2 = conn.accept().await.unwrap();
        raw.recv().await;
        raw.send(&msg(&[2], 3, &[7])).await;
        let err = s2.read(&mut [0u8; 8]).await.unwrap_err();
        assert!(matches!(inner(&err), Error::StreamParse(2)));
    })
    .await;
}

#[async_std::test]
async fn first_message_other_than_ack_is_a_parse_error_for_that_id() {
    within("first not ACK", async {
        let (mut raw, conn, mut events) = setup(1024).await;
        raw.send(&msg(&[2], 0, b"data first")).await;
        raw.send(&msg(&[4], 1, &ACK_1000)).await;
        let s = conn.accept().await.unwrap();
        assert_eq!(s.id(), StreamId(4), "stream 2 was refused, 4 accepted");
        assert_eq!(raw.recv().await, msg(&[2], 2, &[0, 1]));
        assert_eq!(raw.recv().await, msg(&[2], 2, &[1, 1]));
        next_matching(&mut events, |e| {
            matches!(e, WsEvent::StreamParseError { id: StreamId(2) })
        })
        .await;
    })
    .await;
}

#[async_std::test]
async fn text_message_closes_with_1003() {
    within("text", async {
        let (mut raw, conn, mut events) = setup(1024).await;
        raw.0.send(Message::text("hello")).await.unwrap();
        let err = conn.accept().await.unwrap_err();
        assert!(
            matches!(err, Error::Protocol(ProtoError::TextMessage)),
            "{err:?}"
        );
        assert_eq!(raw.expect_close().await, 1003);
        // Complete the closing handshake: the raw side replies, our side closes TCP.
        let ((), run) = futures::join!(async { while raw.0.next().await.is_some() {} }, conn.run());
        assert!(
            matches!(run, Err(Error::Protocol(ProtoError::TextMessage))),
            "{run:?}"
        );
        next_matching(&mut events, |e| {
            matches!(e, WsEvent::TextReceived { len: 5 })
        })
        .await;
        let closed = next_matching(&mut events, |e| matches!(e, WsEvent::Closed { .. })).await;
        assert!(matches!(
            closed,
            WsEvent::Closed {
                code: CloseCode(1003),
                ..
            }
        ));
    })
    .await;
}

#[async_std::test]
async fn message_on_our_own_parity_that_we_never_opened_closes_with_1002() {
    within("own parity", async {
        let (mut raw, conn, _events) = setup(1024).await;
        raw.send(&msg(&[1], 1, &ACK_1000)).await; // odd ids are the server's
        let err = conn.accept().await.unwrap_err();
        assert!(
            matches!(err, Error::Protocol(ProtoError::UnopenedStream(1))),
            "{err:?}"
        );
        assert_eq!(raw.expect_close().await, 1002);
    })
    .await;
}

#[async_std::test]
async fn unparseable_stream_id_closes_with_1002() {
    for bytes in [&[][..], &[0x40][..], &[0xc0, 0, 0][..]] {
        within("bad id", async {
            let (mut raw, conn, _events) = setup(1024).await;
            raw.send(bytes).await;
            let err = conn.accept().await.unwrap_err();
            assert!(
                matches!(err, Error::Protocol(ProtoError::BadStreamId)),
                "{err:?}"
            );
            assert_eq!(raw.expect_close().await, 1002);
        })
        .await;
    }
}

#[async_std::test]
async fn non_minimal_varints_are_accepted_and_shortest_forms_sent() {
    within("varints", async {
        let (mut raw, conn, _events) = setup(1024).await;
        raw.send(&msg(&[0x40, 0x00], 1, &ACK_1000)).await; // id 0 in two bytes
        let mut s = conn.accept().await.unwrap();
        assert_eq!(s.id(), StreamId(0));
        assert_eq!(
            raw.recv().await,
            msg(&[0], 1, &[0, 0, 4, 0]),
            "shortest id in our ACK"
        );
        raw.send(&msg(&[0x80, 0, 0, 0], 0, b"hey")).await; // id 0 in four bytes
        let mut got = [0u8; 3];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hey");
        s.write_all(b"yo").await.unwrap();
        assert_eq!(raw.recv().await, msg(&[0], 0, b"yo"));
        // An ERROR code in a non-minimal form: 4001 in eight bytes.
        raw.send(&msg(&[0], 2, &[0, 0xc0, 0, 0, 0, 0, 0, 0x0f, 0xa1]))
            .await;
        let err = s.read(&mut got).await.unwrap_err();
        assert!(
            matches!(inner(&err), Error::Reset(c) if c.0 == 4001),
            "{err:?}"
        );
    })
    .await;
}

#[async_std::test]
async fn ack_of_zero_empty_data_and_late_messages_are_tolerated() {
    within("quirks", async {
        let (mut raw, conn, _events) = setup(1024).await;
        raw.send(&msg(&[0], 1, &ACK_1000)).await;
        let mut s = conn.accept().await.unwrap();
        raw.recv().await;
        raw.send(&msg(&[0], 1, &[0, 0, 0, 0])).await; // ACK of 0
        raw.send(&msg(&[0], 0, b"")).await; // empty DATA
        raw.send(&msg(&[0], 0, b"fine")).await;
        raw.send(&msg(&[0], 3, &[0])).await; // FIN
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"fine");
        s.close().await.unwrap();
        assert_eq!(raw.recv().await, msg(&[0], 3, &[0]), "our FIN");
        drop(s);
        // The stream is over on both sides; late ACKs and mirror replies are ignored.
        raw.send(&msg(&[0], 1, &ACK_1000)).await;
        raw.send(&msg(&[0], 3, &[1])).await;
        raw.send(&msg(&[0], 2, &[0, 9])).await;
        raw.send(&msg(&[2], 1, &ACK_1000)).await;
        let s2 = conn
            .accept()
            .await
            .expect("connection survives late messages");
        assert_eq!(s2.id(), StreamId(2));
    })
    .await;
}

#[async_std::test]
async fn close_frame_without_code_is_reported_as_1005() {
    within("1005", async {
        let (mut raw, mut conn, _) = setup(1024).await;
        let mut events = conn.observe(Default::default()).await.unwrap();
        raw.0.send(Message::Close(None)).await.unwrap();
        let err = conn.accept().await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::ConnectionClosed {
                    code: CloseCode::NO_STATUS,
                    ..
                }
            ),
            "{err:?}"
        );
        let frame = next_matching(&mut events, |e| matches!(e, WsEvent::CloseFrame { .. })).await;
        assert!(matches!(
            frame,
            WsEvent::CloseFrame {
                code: CloseCode::NO_STATUS,
                ..
            }
        ));
    })
    .await;
}

#[async_std::test]
async fn message_larger_than_the_limit_closes_with_1009() {
    within("1009", async {
        let (mut raw, conn, _events) = setup(16).await;
        // The default limit is the window plus the largest header: 26 bytes here.
        raw.send(&msg(&[0], 0, &[0u8; 30])).await;
        let err = conn.accept().await.unwrap_err();
        assert!(
            matches!(err, Error::Protocol(ProtoError::MessageTooBig { max: 26 })),
            "{err:?}"
        );
        assert_eq!(raw.expect_close().await, 1009);
    })
    .await;
}
