//! The message-level adapter against real peers over TCP: an async-tungstenite WebSocket, and a
//! raw TCP peer that writes frames by hand where a well-behaved library would refuse to.

use std::{io, time::Duration};

use async_std::{
    future::timeout,
    net::{TcpListener, TcpStream},
};
use async_tungstenite::{
    client_async,
    tungstenite::{protocol::frame::coding::CloseCode as WsCloseCode, Message},
    WebSocketStream,
};
use futures::{channel::oneshot, AsyncReadExt, AsyncWriteExt, StreamExt};
use ws_stream_mux::{
    handshake::{accept, AcceptConfig},
    CloseCode, DataMessage, Error, MessageConfig, MessageSocket, ProtoError,
};

const SAFETY: Duration = Duration::from_secs(30);

type Peer = WebSocketStream<TcpStream>;

/// Our `MessageSocket` (the server side, through `handshake::accept`) and an async-tungstenite
/// client as the peer.
async fn pair(config: MessageConfig) -> (MessageSocket, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = async_std::task::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept(tcp, &AcceptConfig::default()).await.unwrap().0
    });
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (peer, _) = client_async(format!("ws://127.0.0.1:{port}/"), tcp)
        .await
        .unwrap();
    (
        MessageSocket::new(server.await, config).expect("valid config"),
        peer,
    )
}

/// Our `MessageSocket` and a raw TCP peer that has done the upgrade and now writes frames by hand.
async fn raw_pair() -> (MessageSocket, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = async_std::task::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        accept(tcp, &AcceptConfig::default()).await.unwrap().0
    });
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "));
    (
        MessageSocket::new(server.await, MessageConfig::default()).expect("valid config"),
        tcp,
    )
}

/// A masked client frame.
fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![first_byte, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads one unmasked server frame and returns its first byte and payload.
async fn server_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 2];
    timeout(SAFETY, tcp.read_exact(&mut header))
        .await
        .expect("a frame")
        .unwrap();
    assert_eq!(header[1] & 0x80, 0, "server frames are not masked");
    let len = (header[1] & 0x7f) as usize;
    assert!(len < 126, "a short frame");
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await.unwrap();
    (header[0], payload)
}

async fn next(peer: &mut Peer) -> Message {
    timeout(SAFETY, peer.next())
        .await
        .expect("peer receives")
        .expect("open")
        .unwrap()
}

async fn read(socket: &MessageSocket) -> Result<DataMessage, Error> {
    timeout(SAFETY, socket.read()).await.expect("read ends")
}

#[async_std::test]
async fn messages_flow_both_ways() {
    let (socket, mut peer) = pair(MessageConfig::default()).await;
    socket.write("héllo").await.unwrap();
    socket.write(vec![0u8, 255]).await.unwrap();
    assert_eq!(next(&mut peer).await, Message::text("héllo"));
    assert_eq!(next(&mut peer).await, Message::binary(vec![0u8, 255]));

    peer.send(Message::text("back")).await.unwrap();
    peer.send(Message::binary(vec![7u8; 100_000]))
        .await
        .unwrap();
    peer.send(Message::Ping(b"x".to_vec().into()))
        .await
        .unwrap();
    peer.send(Message::text("")).await.unwrap();
    assert_eq!(read(&socket).await.unwrap(), DataMessage::text("back"));
    let big = read(&socket).await.unwrap();
    assert_eq!(big.len(), 100_000);
    // The Ping was answered inside, never returned.
    assert_eq!(read(&socket).await.unwrap(), DataMessage::text(""));
    assert_eq!(next(&mut peer).await, Message::Pong(b"x".to_vec().into()));
}

#[async_std::test]
async fn ping_reads_by_itself_and_keeps_messages_for_read() {
    let (socket, mut peer) = pair(MessageConfig::default()).await;
    let (sent, all_sent) = oneshot::channel();
    async_std::task::spawn(async move {
        for i in 0..3u8 {
            peer.send(Message::binary(vec![i])).await.unwrap();
        }
        sent.send(()).unwrap();
        // Reading answers our ping.
        while let Some(Ok(_)) = peer.next().await {}
    });
    all_sent.await.unwrap();
    // Nobody reads: the ping reads the three messages (they come before its Pong) and keeps them.
    let rtt = timeout(SAFETY, socket.ping()).await.expect("pong").unwrap();
    assert!(rtt < SAFETY);
    for i in 0..3u8 {
        assert_eq!(read(&socket).await.unwrap(), DataMessage::binary(vec![i]));
    }
}

#[async_std::test]
async fn ping_completes_while_another_task_reads() {
    // A ping whose Pong another task read must be woken by that task: the socket itself does not
    // wake anyone for data a poll found already there. The race is widest when the reader's first
    // poll comes after the ping's, so repeat it on fresh connections. The ping timeout is longer
    // than the safety net, so a lost wake-up shows as a ping that never completes: a hang that
    // the safety net names, rather than an elapsed time to compare.
    let ping_timeout = SAFETY * 4;
    for round in 0..100 {
        let (socket, mut peer) = pair(MessageConfig::default().ping_timeout(ping_timeout)).await;
        let reader = {
            let socket = socket.clone();
            async_std::task::spawn(async move { socket.read().await })
        };
        let peer_task = async_std::task::spawn(async move {
            // Answers the pings by reading, and replies to one message.
            while let Some(Ok(message)) = peer.next().await {
                if message == Message::text("reply please") {
                    peer.send(Message::text("reply")).await.unwrap();
                }
            }
        });
        for i in 0..3 {
            timeout(SAFETY, socket.ping())
                .await
                .unwrap_or_else(|_| panic!("round {round} ping {i} missed its wake-up (hang)"))
                .expect("pong");
        }
        socket.write("reply please").await.unwrap();
        let message = timeout(SAFETY, reader).await.expect("reader ends").unwrap();
        assert_eq!(message, DataMessage::text("reply"));
        drop(peer_task);
    }
}

#[async_std::test]
async fn ping_waits_for_room_when_the_inbox_is_full() {
    let (socket, mut peer) = pair(MessageConfig::default().max_buffered(2)).await;
    let (sent, all_sent) = oneshot::channel();
    async_std::task::spawn(async move {
        for i in 0..5u8 {
            peer.send(Message::binary(vec![i])).await.unwrap();
        }
        sent.send(()).unwrap();
        while let Some(Ok(_)) = peer.next().await {}
    });
    all_sent.await.unwrap();
    let ping = {
        let socket = socket.clone();
        async_std::task::spawn(async move { socket.ping().await })
    };
    // With two messages kept and three more before the Pong, the ping cannot finish alone.
    let mut ping = Box::pin(ping);
    assert!(
        timeout(Duration::from_millis(300), &mut ping)
            .await
            .is_err(),
        "the ping read past its inbox limit"
    );
    assert!(format!("{socket:?}").contains("buffered: 2"), "{socket:?}");
    for i in 0..5u8 {
        assert_eq!(read(&socket).await.unwrap(), DataMessage::binary(vec![i]));
    }
    timeout(SAFETY, ping).await.expect("pong").unwrap();
}

#[async_std::test]
async fn ping_times_out_when_no_pong_comes() {
    let (socket, _peer) =
        pair(MessageConfig::default().ping_timeout(Duration::from_millis(200))).await;
    // The peer never reads, so it never answers.
    let err = timeout(SAFETY, socket.ping())
        .await
        .expect("gives up")
        .unwrap_err();
    match &err {
        Error::TimedOut(ws_stream_mux::Timeout::Ping) => {}
        other => panic!("expected a timeout, got {other}"),
    }
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::TimedOut);
}

#[async_std::test]
async fn a_cancelled_ping_is_forgotten() {
    let (socket, mut peer) = pair(MessageConfig::default()).await;
    {
        let ping = socket.ping();
        futures::pin_mut!(ping);
        assert!(futures::poll!(&mut ping).is_pending());
    } // dropped: its Pong will be ignored
    async_std::task::spawn(async move {
        while let Some(Ok(message)) = peer.next().await {
            if let Message::Text(text) = message {
                peer.send(Message::Text(text)).await.unwrap();
            }
        }
    });
    timeout(SAFETY, socket.ping()).await.expect("pong").unwrap();
    socket.write("after").await.unwrap();
    assert_eq!(read(&socket).await.unwrap(), DataMessage::text("after"));
    assert!(!format!("{socket:?}").contains("pings: 1"), "{socket:?}");
}

#[async_std::test]
async fn close_sends_the_frame_once_and_returns_when_the_peer_answered() {
    let (socket, mut peer) = pair(MessageConfig::default()).await;
    assert!(matches!(
        socket.close(CloseCode(1002), "").await,
        Err(Error::InvalidCloseCode(CloseCode(1002)))
    ));
    assert!(matches!(
        socket.close(CloseCode::NORMAL, &"x".repeat(124)).await,
        Err(Error::CloseReasonTooLong(124))
    ));
    // Refused closes sent nothing: the connection still works.
    socket.write("still open").await.unwrap();
    assert_eq!(next(&mut peer).await, Message::text("still open"));

    // The peer reads our Close frame (tungstenite answers it) and then the end of TCP.
    let peer_side = async_std::task::spawn(async move {
        let frame = match next(&mut peer).await {
            Message::Close(Some(frame)) => frame,
            other => panic!("expected a Close frame, got {other:?}"),
        };
        while peer.next().await.is_some() {}
        frame
    });
    socket.close(CloseCode(4321), "bye").await.unwrap();
    let frame = timeout(SAFETY, peer_side).await.expect("TCP closed");
    assert_eq!(frame.code, WsCloseCode::from(4321));
    assert_eq!(frame.reason.as_str(), "bye");

    assert!(matches!(
        socket.close(CloseCode::NORMAL, "").await,
        Err(Error::AlreadyClosed)
    ));
    assert!(matches!(
        socket.write("late").await,
        Err(Error::AlreadyClosed)
    ));
    assert!(matches!(socket.ping().await, Err(Error::AlreadyClosed)));
    // Reads end with our close.
    assert!(matches!(
        read(&socket).await,
        Err(Error::ConnectionClosed { code: CloseCode(4321), reason }) if reason == "bye"
    ));
}

#[async_std::test]
async fn close_gives_up_after_the_close_timeout_and_abandons_what_could_not_leave() {
    let (socket, mut peer) =
        pair(MessageConfig::default().close_timeout(Duration::from_millis(200))).await;
    // A message far larger than the socket buffers, while the peer does not read: the write
    // blocks half way, and the Close frame has to queue behind it.
    let writer = {
        let socket = socket.clone();
        async_std::task::spawn(async move { socket.write(vec![1u8; 15 << 20]).await })
    };
    let mut writer = Box::pin(writer);
    assert!(
        timeout(Duration::from_millis(300), &mut writer)
            .await
            .is_err(),
        "socket buffers absorbed 15 MiB"
    );
    let err = timeout(SAFETY, socket.close(CloseCode::GOING_AWAY, "timeout"))
        .await
        .expect("close gives up")
        .unwrap_err();
    assert!(
        matches!(&err, Error::TimedOut(ws_stream_mux::Timeout::Close)),
        "{err}"
    );
    assert!(matches!(
        socket.close(CloseCode::NORMAL, "").await,
        Err(Error::AlreadyClosed)
    ));
    // The message never left whole: its write says so, and the peer sees TCP end without a
    // Close frame.
    let written = timeout(SAFETY, writer).await.expect("writer ends");
    assert!(written.is_err(), "{written:?}");
    loop {
        match timeout(SAFETY, peer.next()).await.expect("peer ends") {
            Some(Ok(Message::Close(_))) => panic!("a Close frame got through"),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
}

#[async_std::test]
async fn peer_close_frame_ends_reads_with_its_code() {
    let (socket, mut peer) = pair(MessageConfig::default()).await;
    peer.send(Message::text("last")).await.unwrap();
    peer.close(Some(async_tungstenite::tungstenite::protocol::CloseFrame {
        code: WsCloseCode::from(4001),
        reason: "done here".into(),
    }))
    .await
    .unwrap();
    assert_eq!(read(&socket).await.unwrap(), DataMessage::text("last"));
    for _ in 0..2 {
        assert!(matches!(
            read(&socket).await,
            Err(Error::ConnectionClosed { code: CloseCode(4001), reason }) if reason == "done here"
        ));
    }
    assert!(matches!(
        socket.close(CloseCode::NORMAL, "").await,
        Err(Error::AlreadyClosed)
    ));
    // Our side echoed the Close frame, completing the handshake.
    match next(&mut peer).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, WsCloseCode::from(4001)),
        other => panic!("expected the echo, got {other:?}"),
    }
}

#[async_std::test]
async fn connection_ending_without_close_frame_is_1006() {
    let (socket, peer) = pair(MessageConfig::default()).await;
    drop(peer);
    for _ in 0..2 {
        assert!(matches!(
            read(&socket).await,
            Err(Error::ConnectionClosed {
                code: CloseCode::ABNORMAL,
                ..
            })
        ));
    }
    assert!(matches!(
        socket.write("x").await,
        Err(Error::ConnectionClosed {
            code: CloseCode::ABNORMAL,
            ..
        })
    ));
}

#[async_std::test]
async fn invalid_utf8_is_answered_with_1007() {
    let (socket, mut tcp) = raw_pair().await;
    tcp.write_all(&client_frame(0x81, &[0xff, 0xfe]))
        .await
        .unwrap();
    assert!(matches!(
        read(&socket).await,
        Err(Error::Protocol(ProtoError::InvalidUtf8))
    ));
    let (first, payload) = server_frame(&mut tcp).await;
    assert_eq!(first, 0x88, "a Close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1007);
}

#[async_std::test]
async fn protocol_violations_are_answered_with_1002() {
    for bad in [
        client_frame(0xc1, b"rsv1 set"), // reserved bit without an extension
        client_frame(0x83, b"reserved opcode"), // opcode 3
        client_frame(0x09, b"fragmented ping"), // control frame without FIN
        client_frame(0x80, b"continuation of nothing"),
    ] {
        let (socket, mut tcp) = raw_pair().await;
        tcp.write_all(&bad).await.unwrap();
        assert!(
            matches!(
                read(&socket).await,
                Err(Error::Protocol(ProtoError::WebSocket(_)))
            ),
            "{bad:?}"
        );
        let (first, payload) = server_frame(&mut tcp).await;
        assert_eq!(first, 0x88, "a Close frame for {bad:?}");
        assert_eq!(
            u16::from_be_bytes([payload[0], payload[1]]),
            1002,
            "{bad:?}"
        );
    }
}

#[async_std::test]
async fn a_close_frame_without_code_reads_as_1005() {
    let (socket, mut tcp) = raw_pair().await;
    tcp.write_all(&client_frame(0x88, b"")).await.unwrap();
    assert!(matches!(
        read(&socket).await,
        Err(Error::ConnectionClosed {
            code: CloseCode::NO_STATUS,
            ..
        })
    ));
    let (first, _) = server_frame(&mut tcp).await;
    assert_eq!(first, 0x88, "the Close frame is echoed");
}

#[async_std::test]
async fn data_sent_before_our_close_is_still_read() {
    let (socket, mut peer) = pair(MessageConfig::default()).await;
    // Already in our TCP buffer when we close: the peer may send until it answers our Close.
    peer.send(Message::text("in flight")).await.unwrap();
    let peer_replies = async_std::task::spawn(async move { while peer.next().await.is_some() {} });
    socket.close(CloseCode(4000), "enough").await.unwrap();
    assert_eq!(read(&socket).await.unwrap(), DataMessage::text("in flight"));
    assert!(matches!(
        read(&socket).await,
        Err(Error::ConnectionClosed {
            code: CloseCode(4000),
            ..
        })
    ));
    timeout(SAFETY, peer_replies).await.expect("TCP closed");
}

#[async_std::test]
async fn connection_ending_before_the_reply_to_our_close_is_1006() {
    let (socket, mut tcp) = raw_pair().await;
    let closing = {
        let socket = socket.clone();
        async_std::task::spawn(async move { socket.close(CloseCode::NORMAL, "").await })
    };
    let (first, _) = server_frame(&mut tcp).await;
    assert_eq!(first, 0x88, "our Close frame");
    drop(tcp); // no reply
    assert!(matches!(
        timeout(SAFETY, closing).await.expect("close ends"),
        Err(Error::ConnectionClosed {
            code: CloseCode::ABNORMAL,
            ..
        })
    ));
    assert!(matches!(
        read(&socket).await,
        Err(Error::ConnectionClosed {
            code: CloseCode::ABNORMAL,
            ..
        })
    ));
}

#[async_std::test]
async fn a_protocol_violation_after_our_close_ends_the_connection() {
    let (socket, mut tcp) = raw_pair().await;
    let closing = {
        let socket = socket.clone();
        async_std::task::spawn(async move { socket.close(CloseCode::NORMAL, "").await })
    };
    let (first, _) = server_frame(&mut tcp).await;
    assert_eq!(first, 0x88, "our Close frame");
    tcp.write_all(&client_frame(0x83, b"reserved opcode"))
        .await
        .unwrap();
    assert!(matches!(
        timeout(SAFETY, closing).await.expect("close ends"),
        Err(Error::Protocol(ProtoError::WebSocket(_)))
    ));
    assert!(matches!(
        read(&socket).await,
        Err(Error::Protocol(ProtoError::WebSocket(_)))
    ));
    // A Close frame already went out, so nothing more is sent: TCP just closes.
    let mut rest = Vec::new();
    timeout(SAFETY, tcp.read_to_end(&mut rest))
        .await
        .expect("TCP closed")
        .unwrap();
    assert!(rest.is_empty(), "sent after our Close frame: {rest:?}");
}

#[async_std::test]
async fn a_write_that_left_before_the_end_succeeds() {
    let (socket, mut peer) = pair(MessageConfig::default()).await;
    let write = socket.write(vec![1u8; 15 << 20]);
    futures::pin_mut!(write);
    // Handed to the socket, but the peer does not read yet: the flush waits, and the write is not
    // polled again until the connection is over.
    assert!(futures::poll!(&mut write).is_pending());
    let peer_task = async_std::task::spawn(async move {
        assert_eq!(next(&mut peer).await.len(), 15 << 20);
        peer.close(Some(async_tungstenite::tungstenite::protocol::CloseFrame {
            code: WsCloseCode::from(4002),
            reason: "got it".into(),
        }))
        .await
        .unwrap();
        while peer.next().await.is_some() {}
    });
    // Our read flushes the rest of the message while it waits, then finishes the closing.
    assert!(matches!(
        read(&socket).await,
        Err(Error::ConnectionClosed {
            code: CloseCode(4002),
            ..
        })
    ));
    timeout(SAFETY, write)
        .await
        .expect("write ends")
        .expect("the message left before the connection ended");
    timeout(SAFETY, peer_task).await.expect("peer ends");
}

#[async_std::test]
async fn a_write_that_never_left_fails_with_the_end() {
    let (socket, peer) = pair(MessageConfig::default()).await;
    let write = socket.write(vec![1u8; 15 << 20]);
    futures::pin_mut!(write);
    assert!(futures::poll!(&mut write).is_pending());
    drop(peer); // with most of the message unsent
    assert!(matches!(
        read(&socket).await,
        Err(Error::ConnectionClosed {
            code: CloseCode::ABNORMAL,
            ..
        })
    ));
    assert!(matches!(
        timeout(SAFETY, write).await.expect("write ends"),
        Err(Error::ConnectionClosed {
            code: CloseCode::ABNORMAL,
            ..
        })
    ));
}
