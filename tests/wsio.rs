//! `WsIo` over real TCP on 127.0.0.1 against a raw async-tungstenite peer: data both ways, empty
//! messages, coalescing, events, close codes both ways, protocol errors, abrupt drops, the ping
//! flood, the client-side close timeout, and concurrent reading and writing.

use crate::wsio_support;

use std::io;

use futures::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use pharos::Observable;
use ws_stream_mux::{
    async_tungstenite::tungstenite::{
        protocol::{frame::coding::CloseCode as WireCode, CloseFrame},
        Message,
    },
    CloseCode, Error, ProtoError, WsEvent, WsIo, WsIoConfig,
};
use wsio_support::*;

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: WireCode::from(code),
        reason: reason.into(),
    }))
}

fn typed(err: &io::Error) -> &Error {
    Error::from_io(err).unwrap_or_else(|| panic!("not one of our errors: {err:?}"))
}

#[async_std::test]
async fn bytes_round_trip_between_two_wsio() {
    let (server, client) = ws_pair().await;
    let mut server = WsIo::new(server);
    let mut client = WsIo::new(client);
    let data = pattern(300_000, 7);

    let echo = async {
        let mut got = vec![0; data.len()];
        server.read_exact(&mut got).await.expect("server read");
        server.write_all(&got).await.expect("server write");
        server.flush().await.expect("server flush");
        // The client's close arrives: end of stream, then our side of the handshake completes.
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.expect("server eof"), 0);
        server
            .close()
            .await
            .expect("server close after peer closed");
    };
    let talk = async {
        client.write_all(&data).await.expect("client write");
        client.flush().await.expect("client flush");
        let mut back = vec![0; data.len()];
        client.read_exact(&mut back).await.expect("client read");
        assert_eq!(back, data);
        client.close().await.expect("client close");
    };
    within("echo", futures::future::join(echo, talk)).await;
}

#[async_std::test]
async fn a_read_spans_several_messages_and_lines_cross_message_boundaries() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    for part in ["ab", "cd", "ef", "hel", "lo\nwor", "ld\n"] {
        peer.feed(Message::binary(part.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    peer.flush().await.unwrap();

    let mut six = [0; 6];
    within("read 6", io.read_exact(&mut six)).await.unwrap();
    assert_eq!(&six, b"abcdef");
    let mut io = futures::io::BufReader::new(io);
    let mut line = String::new();
    within("line 1", io.read_line(&mut line)).await.unwrap();
    assert_eq!(line, "hello\n");
    line.clear();
    within("line 2", io.read_line(&mut line)).await.unwrap();
    assert_eq!(line, "world\n");
}

#[async_std::test]
async fn empty_binary_messages_are_skipped_by_read_and_buf_read() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    for part in ["", "x", "", "", "y", ""] {
        peer.feed(Message::binary(part.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    peer.feed(close_frame(1000, "")).await.unwrap();
    peer.flush().await.unwrap();

    // AsyncBufRead directly: never an empty slice before the end.
    let first = within("fill_buf", io.fill_buf()).await.unwrap().to_vec();
    assert_eq!(first, b"x");
    io.consume_unpin(1);
    let second = within("fill_buf", io.fill_buf()).await.unwrap().to_vec();
    assert_eq!(second, b"y");
    io.consume_unpin(1);
    // Then plain reads: the end of stream, after the close handshake.
    let mut rest = Vec::new();
    within("read to end", io.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());
    assert!(matches!(
        io.ended(),
        Some(Error::ConnectionClosed {
            code: CloseCode::NORMAL,
            ..
        })
    ));
}

#[async_std::test]
async fn a_zero_length_write_sends_nothing() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    assert_eq!(io.write(&[]).await.unwrap(), 0);
    io.flush().await.unwrap();
    io.write_all(b"a").await.unwrap();
    io.flush().await.unwrap();
    let (closed, (messages, close)) = within(
        "close",
        futures::future::join(io.close(), binaries_until_close(&mut peer)),
    )
    .await;
    closed.unwrap();
    assert_eq!(
        messages,
        vec![b"a".to_vec()],
        "no empty message before the data"
    );
    assert_eq!(close, Some((1000, String::new())));
}

/// Writes `total` bytes in `chunk`-byte writes, then closes; returns what the peer received.
async fn write_in_chunks(config: WsIoConfig, total: usize, chunk: usize) -> Vec<Vec<u8>> {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::with_config(server, config).unwrap();
    let data = pattern(total, 3);
    let writer = async {
        for piece in data.chunks(chunk) {
            io.write_all(piece).await.unwrap();
        }
        io.close().await.unwrap();
    };
    let (_, (messages, close)) = within(
        "chunked writes",
        futures::future::join(writer, binaries_until_close(&mut peer)),
    )
    .await;
    assert_eq!(close, Some((1000, String::new())));
    assert_eq!(messages.concat(), data, "bytes arrive intact and in order");
    messages
}

#[async_std::test]
async fn small_writes_are_coalesced_into_full_messages() {
    // 1 MiB in 1 KiB writes with the default 64 KiB messages: 16 messages, not 1024.
    let messages = write_in_chunks(WsIoConfig::default(), 1 << 20, 1024).await;
    assert_eq!(messages.len(), 16);
    assert!(messages.iter().all(|m| m.len() == 64 * 1024));

    // 10,000 bytes in 10-byte writes with 1,024-byte messages: 9 full ones and the rest.
    let messages =
        write_in_chunks(WsIoConfig::default().write_message_size(1024), 10_000, 10).await;
    let sizes: Vec<usize> = messages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [vec![1024; 9], vec![784]].concat());
}

#[async_std::test]
async fn flush_sends_what_was_written_as_one_message() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    for word in ["one ", "message ", "please"] {
        io.write_all(word.as_bytes()).await.unwrap();
    }
    io.flush().await.unwrap();
    match next_data(&mut peer).await {
        Some(Message::Binary(data)) => assert_eq!(&data[..], b"one message please"),
        other => panic!("expected one binary message, got {other:?}"),
    }
}

#[async_std::test]
async fn a_read_that_waits_sends_buffered_writes() {
    // Request/response without an explicit flush must not deadlock.
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    io.write_all(b"request").await.unwrap();
    let responder = async {
        match next_data(&mut peer).await {
            Some(Message::Binary(data)) => assert_eq!(&data[..], b"request"),
            other => panic!("expected the request, got {other:?}"),
        }
        peer.send(Message::binary(b"response".to_vec()))
            .await
            .unwrap();
        peer
    };
    let mut response = [0; 8];
    let (read, _peer) = within(
        "request/response",
        futures::future::join(io.read_exact(&mut response), responder),
    )
    .await;
    read.unwrap();
    assert_eq!(&response, b"response");
}

#[async_std::test]
async fn events_report_pings_pongs_and_the_close_frame() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    let events = io.observe(Default::default()).await.unwrap();
    peer.feed(Message::Ping(b"p1".to_vec().into()))
        .await
        .unwrap();
    peer.feed(Message::Pong(b"p2".to_vec().into()))
        .await
        .unwrap();
    peer.feed(close_frame(4001, "bye")).await.unwrap();
    peer.flush().await.unwrap();

    let mut rest = Vec::new();
    assert_eq!(
        within("read to end", io.read_to_end(&mut rest))
            .await
            .unwrap(),
        0
    );
    drop(io);
    let events = all_events(events).await;
    let summary: Vec<String> = events
        .iter()
        .map(|e| match e {
            WsEvent::Ping(d) => format!("ping {}", String::from_utf8_lossy(d)),
            WsEvent::Pong(d) => format!("pong {}", String::from_utf8_lossy(d)),
            WsEvent::CloseFrame { code, reason } => format!("close frame {code} {reason}"),
            WsEvent::Closed { code, reason } => format!("closed {code} {reason}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "ping p1",
            "pong p2",
            "close frame 4001 bye",
            "closed 4001 bye"
        ]
    );
    // The ping was answered.
    match within("pong", peer.next()).await {
        Some(Ok(Message::Pong(data))) => assert_eq!(&data[..], b"p1"),
        other => panic!("expected our pong, got {other:?}"),
    }
}

#[async_std::test]
async fn a_ping_flood_is_answered_without_overflowing_the_stack() {
    const PINGS: usize = 200_000;
    let (server, peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    let events = io.events();

    // The peer floods while it reads what we answer (a peer that does not read is closed with
    // 1008, see the bounds tests).
    let (mut sink, mut stream) = peer.split();
    let flood = async move {
        for _ in 0..PINGS {
            sink.feed(Message::Ping(Default::default())).await.unwrap();
        }
        sink.feed(Message::binary(b"after the flood".to_vec()))
            .await
            .unwrap();
        sink.feed(close_frame(1000, "")).await.unwrap();
        sink.flush().await.unwrap();
        sink
    };
    let answers = async move {
        let mut pongs = 0;
        let mut close = None;
        while let Some(message) = within("peer reads", stream.next()).await {
            match message.unwrap() {
                Message::Pong(_) => pongs += 1,
                Message::Close(frame) => close = frame.map(|f| u16::from(f.code)),
                other => panic!("unexpected {other:?}"),
            }
        }
        (pongs, close)
    };
    let reader = async {
        let mut got = Vec::new();
        io.read_to_end(&mut got).await.unwrap();
        got
    };
    let (_, (pongs, close), got) =
        within("ping flood", futures::future::join3(flood, answers, reader)).await;
    assert_eq!(got, b"after the flood");
    assert_eq!(close, Some(1000));
    // Pongs to pings still unanswered when a newer one arrives are merged (RFC 6455 §5.5.3).
    assert!((1..=PINGS).contains(&pongs), "{pongs} pongs");
    drop(io);
    // The observer never read while the flood came: it holds at most its queue, the oldest
    // dropped and counted, and the end last.
    let dropped = events.dropped();
    let seen = all_events(events).await;
    let pings = seen
        .iter()
        .filter(|e| matches!(e, WsEvent::Ping(_)))
        .count();
    assert!(
        seen.len() <= WsIoConfig::DEFAULT_EVENT_QUEUE,
        "{} events kept",
        seen.len()
    );
    assert!(
        matches!(seen.last(), Some(WsEvent::Closed { .. })),
        "{:?}",
        seen.last()
    );
    assert_eq!(
        pings as u64 + dropped,
        PINGS as u64,
        "every ping is seen or counted as dropped"
    );
}

#[async_std::test]
async fn a_text_message_is_an_event_then_close_1003_then_a_read_error() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    let events = io.observe(Default::default()).await.unwrap();
    peer.feed(Message::binary(b"before".to_vec()))
        .await
        .unwrap();
    peer.feed(Message::text("hello")).await.unwrap();
    peer.flush().await.unwrap();

    let mut before = [0; 6];
    within("data before the text", io.read_exact(&mut before))
        .await
        .unwrap();
    assert_eq!(&before, b"before");
    let (read, (_, close)) = within(
        "text handling",
        futures::future::join(io.read(&mut [0; 16]), binaries_until_close(&mut peer)),
    )
    .await;
    assert_eq!(close.map(|c| c.0), Some(1003));
    let err = read.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    match typed(&err) {
        Error::Protocol(p) => {
            assert_eq!(p, &ProtoError::TextMessage);
            assert_eq!(p.close_code(), CloseCode::UNSUPPORTED_DATA);
        }
        other => panic!("{other:?}"),
    }
    // The error is sticky, writes are refused.
    assert_eq!(
        io.read(&mut [0; 4]).await.unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    assert_eq!(
        io.write(b"x").await.unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    drop(io);
    let events = all_events(events).await;
    assert!(
        matches!(events[0], WsEvent::TextReceived { len: 5 }),
        "{events:?}"
    );
    assert!(
        matches!(
            events.last(),
            Some(WsEvent::Closed {
                code: CloseCode(1003),
                ..
            })
        ),
        "{events:?}"
    );
}

#[async_std::test]
async fn a_message_over_the_limit_closes_with_1009() {
    let (server, mut peer) = ws_pair().await;
    let config = WsIoConfig::default().max_message_size(1000);
    let mut io = WsIo::with_config(server, config).unwrap();
    peer.feed(Message::binary(vec![1; 1000])).await.unwrap();
    peer.feed(Message::binary(vec![2; 1001])).await.unwrap();
    peer.flush().await.unwrap();

    let mut got = Vec::new();
    let (read, (_, close)) = within(
        "too big",
        futures::future::join(io.read_to_end(&mut got), binaries_until_close(&mut peer)),
    )
    .await;
    assert_eq!(close.map(|c| c.0), Some(1009));
    assert_eq!(got, vec![1; 1000], "the message at the limit is delivered");
    let err = read.unwrap_err();
    assert!(
        matches!(
            typed(&err),
            Error::Protocol(ProtoError::MessageTooBig { max: 1000 })
        ),
        "{err:?}"
    );
}

#[async_std::test]
async fn a_bad_frame_closes_with_1002() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    // A masked frame with the reserved data opcode 3, written under tungstenite's feet.
    within(
        "raw write",
        peer.get_mut().write_all(&[0x83, 0x80, 1, 2, 3, 4]),
    )
    .await
    .unwrap();
    let (read, (_, close)) = within(
        "bad frame",
        futures::future::join(io.read(&mut [0; 16]), binaries_until_close(&mut peer)),
    )
    .await;
    assert_eq!(close.map(|c| c.0), Some(1002));
    let err = read.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(
        matches!(typed(&err), Error::Protocol(ProtoError::WebSocket(_))),
        "{err:?}"
    );
}

#[async_std::test]
async fn close_with_sends_the_code_and_reason() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    io.write_all(b"last words").await.unwrap();
    let (closed, (messages, close)) = within(
        "close_with",
        futures::future::join(
            io.close_with(CloseCode(4000), "see you"),
            binaries_until_close(&mut peer),
        ),
    )
    .await;
    closed.unwrap();
    assert_eq!(
        messages,
        vec![b"last words".to_vec()],
        "buffered bytes go before the Close"
    );
    assert_eq!(close, Some((4000, "see you".to_owned())));
    // After our close: reads are at the end, writes are refused.
    assert_eq!(io.read(&mut [0; 4]).await.unwrap(), 0);
    let err = io.write(b"more").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    assert!(
        matches!(io.ended(), Some(Error::ConnectionClosed { code: CloseCode(4000), reason }) if reason == "see you")
    );
    // A second close is no error for AsyncWrite, but close_with says it did not send its code.
    io.close().await.unwrap();
    assert!(matches!(
        io.close_with(CloseCode(4001), "").await,
        Err(Error::AlreadyClosed)
    ));
}

#[async_std::test]
async fn poll_close_sends_1000() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    let (closed, (_, close)) = within(
        "close",
        futures::future::join(io.close(), binaries_until_close(&mut peer)),
    )
    .await;
    closed.unwrap();
    assert_eq!(close, Some((1000, String::new())));
}

#[async_std::test]
async fn close_with_rejects_codes_and_reasons_an_application_may_not_send() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    for code in [1002, 1005, 1006, 1011, 3000, 5000] {
        assert!(matches!(
            io.close_with(CloseCode(code), "").await,
            Err(Error::InvalidCloseCode(CloseCode(c))) if c == code
        ));
    }
    let long = "x".repeat(124);
    assert!(matches!(
        io.close_with(CloseCode::NORMAL, &long).await,
        Err(Error::CloseReasonTooLong(124))
    ));
    // Nothing was sent: the connection still carries data.
    io.write_all(b"still open").await.unwrap();
    io.flush().await.unwrap();
    match next_data(&mut peer).await {
        Some(Message::Binary(data)) => assert_eq!(&data[..], b"still open"),
        other => panic!("{other:?}"),
    }
}

#[async_std::test]
async fn the_peer_closing_with_4000_is_end_of_stream_with_its_code_in_events() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    let events = io.observe(Default::default()).await.unwrap();
    peer.feed(Message::binary(b"data".to_vec())).await.unwrap();
    peer.feed(close_frame(4000, "peer done")).await.unwrap();
    peer.flush().await.unwrap();

    let mut got = Vec::new();
    within("read to end", io.read_to_end(&mut got))
        .await
        .unwrap();
    assert_eq!(got, b"data");
    // Our reply completed the handshake and TCP was closed by us (the server).
    let (_, close) = binaries_until_close(&mut peer).await;
    assert_eq!(
        close,
        Some((4000, "peer done".to_owned())),
        "the close frame is echoed"
    );
    assert!(
        matches!(io.ended(), Some(Error::ConnectionClosed { code: CloseCode(4000), reason }) if reason == "peer done")
    );
    // Writing after the peer closed: NotConnected.
    assert_eq!(
        io.write(b"x").await.unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    // close() after the peer's close is fine; close_with reports that its code was not sent.
    io.close().await.unwrap();
    assert!(matches!(
        io.close_with(CloseCode(4002), "").await,
        Err(Error::AlreadyClosed)
    ));
    drop(io);
    let events = all_events(events).await;
    assert!(
        matches!(&events[0], WsEvent::CloseFrame { code: CloseCode(4000), reason } if reason == "peer done")
    );
    assert!(
        matches!(&events[1], WsEvent::Closed { code: CloseCode(4000), reason } if reason == "peer done")
    );
}

#[async_std::test]
async fn the_peer_closing_with_an_error_code_fails_reads_with_it() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    peer.send(close_frame(1011, "server exploded"))
        .await
        .unwrap();
    let err = within("read", io.read(&mut [0; 4])).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    assert!(
        matches!(typed(&err), Error::ConnectionClosed { code: CloseCode(1011), reason } if reason == "server exploded")
    );
}

#[async_std::test]
async fn an_abrupt_drop_is_an_error_with_1006_not_end_of_stream() {
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    let events = io.observe(Default::default()).await.unwrap();
    peer.send(Message::binary(b"partial".to_vec()))
        .await
        .unwrap();
    drop(peer); // TCP closes without a Close frame

    let mut got = Vec::new();
    let err = within("read", io.read_to_end(&mut got)).await.unwrap_err();
    assert_eq!(got, b"partial");
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    assert!(
        matches!(
            typed(&err),
            Error::ConnectionClosed {
                code: CloseCode::ABNORMAL,
                ..
            }
        ),
        "{err:?}"
    );
    // Sticky, and writes are refused.
    assert!(io.read(&mut [0; 1]).await.is_err());
    assert_eq!(
        io.write(b"x").await.unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    // close() cannot pretend all was well either.
    let err = io.close().await.unwrap_err();
    assert!(matches!(
        typed(&err),
        Error::ConnectionClosed {
            code: CloseCode::ABNORMAL,
            ..
        }
    ));
    drop(io);
    let events = all_events(events).await;
    assert!(
        matches!(
            events.last(),
            Some(WsEvent::Closed {
                code: CloseCode::ABNORMAL,
                ..
            })
        ),
        "{events:?}"
    );
}

#[async_std::test]
async fn the_close_returns_once_the_peer_answered_without_waiting_for_tcp() {
    let (server, client) = ws_pair().await;
    let mut io = WsIo::new(client);
    let events = io.events();
    let (done_tx, done_rx) = futures::channel::oneshot::channel::<()>();
    // A server that answers the Close frame but keeps TCP open until the client is done.
    let server = async_std::task::spawn(async move {
        let mut server = server;
        while let Some(Ok(_)) = server.next().await {}
        let _ = done_rx.await;
        drop(server);
    });
    within("close", io.close_with(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    let _ = done_tx.send(());
    server.await;
    assert!(matches!(
        io.ended(),
        Some(Error::ConnectionClosed {
            code: CloseCode::NORMAL,
            ..
        })
    ));
    assert_eq!(
        io.read(&mut [0; 1]).await.unwrap(),
        0,
        "a completed handshake is end of stream"
    );
    drop(io);
    let events = all_events(events).await;
    assert!(
        matches!(
            events.last(),
            Some(WsEvent::Closed {
                code: CloseCode::NORMAL,
                ..
            })
        ),
        "{events:?}"
    );
}

#[async_std::test]
async fn a_server_wsio_closes_tcp_after_the_handshake_while_still_held() {
    let (server, mut client) = ws_pair().await;
    let mut io = WsIo::new(server);
    client.send(close_frame(1000, "")).await.unwrap();
    let mut rest = Vec::new();
    within("server eof", io.read_to_end(&mut rest))
        .await
        .unwrap();
    // `io` is still alive here; the client's stream must still end (TCP closed by the server).
    let (_, close) = binaries_until_close(&mut client).await;
    assert_eq!(close, Some((1000, String::new())));
    drop(io);
}

#[async_std::test]
async fn reading_and_writing_concurrently_from_two_tasks() {
    const LEN: usize = 4 << 20;
    let (server, client) = ws_pair().await;
    let config = WsIoConfig::default().write_message_size(16 * 1024);
    let server = WsIo::with_config(server, config.clone()).unwrap();
    let client = WsIo::with_config(client, config).unwrap();

    // Each side writes LEN bytes in one task while another task reads the peer's LEN bytes.
    let side = |io: WsIo<async_std::net::TcpStream>, seed: u8| async move {
        let (mut reader, mut writer) = io.split();
        let write = async_std::task::spawn(async move {
            writer.write_all(&pattern(LEN, seed)).await.unwrap();
            writer.flush().await.unwrap();
            writer
        });
        let read = async_std::task::spawn(async move {
            let mut got = vec![0; LEN];
            reader.read_exact(&mut got).await.unwrap();
            (reader, got)
        });
        let (writer, (reader, got)) = futures::future::join(write, read).await;
        (reader.reunite(writer).unwrap(), got)
    };
    let ((mut server, from_client), (mut client, from_server)) = within(
        "both directions",
        futures::future::join(side(server, 1), side(client, 2)),
    )
    .await;
    assert!(
        from_client == pattern(LEN, 2),
        "server received the client's bytes"
    );
    assert!(
        from_server == pattern(LEN, 1),
        "client received the server's bytes"
    );
    within(
        "close",
        futures::future::join(client.close(), server.close()),
    )
    .await
    .0
    .unwrap();
}

#[async_std::test]
async fn an_invalid_config_is_a_clear_error() {
    let (server, _client) = ws_pair().await;
    match WsIo::with_config(server, WsIoConfig::default().write_message_size(0)) {
        Err(Error::InvalidConfig(what)) => assert!(what.contains("write_message_size")),
        other => panic!("{other:?}"),
    }
}

/// A waker that reports each wake-up on a channel, so that a test can await it.
fn reporting_waker() -> (
    std::task::Waker,
    futures::channel::mpsc::UnboundedReceiver<()>,
) {
    struct Report(futures::channel::mpsc::UnboundedSender<()>);
    impl futures::task::ArcWake for Report {
        fn wake_by_ref(this: &std::sync::Arc<Self>) {
            let _ = this.0.unbounded_send(());
        }
    }
    let (tx, rx) = futures::channel::mpsc::unbounded();
    (futures::task::waker(std::sync::Arc::new(Report(tx))), rx)
}

/// Two tasks share one WsIo (as with `split`): the writer waits for room in the socket, then the
/// reader's poll, finding nothing to read, flushes the socket as a side effect and so registers
/// itself for the socket's write readiness too. When the peer drains the socket, the writer must
/// be woken — whether the reader is polled again (`poll_reader_again`) or not.
async fn writer_is_woken_despite_a_reader_flushing(
    flush_each_write: bool,
    poll_reader_again: bool,
) {
    use futures::{AsyncRead, AsyncWrite};
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };
    let (server, mut peer) = ws_pair().await;
    let mut io = WsIo::new(server);
    let (writer_waker, mut writer_woken) = reporting_waker();
    let (reader_waker, mut reader_woken) = reporting_waker();
    let chunk = vec![7u8; 64 * 1024];

    // The writer fills the socket until it has to wait (the peer reads nothing yet): in
    // `poll_flush`, or in `poll_write` with a full buffer of its own.
    let mut writer_cx = Context::from_waker(&writer_waker);
    let mut written = 0usize;
    loop {
        let mut io = Pin::new(&mut io);
        match io.as_mut().poll_write(&mut writer_cx, &chunk) {
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(err)) => panic!("{err}"),
            Poll::Pending => break,
        }
        if flush_each_write && io.poll_flush(&mut writer_cx).is_pending() {
            break;
        }
        assert!(written < 1 << 30, "the socket never filled up");
    }
    let mut reader_cx = Context::from_waker(&reader_waker);
    assert!(Pin::new(&mut io)
        .poll_read(&mut reader_cx, &mut [0; 16])
        .is_pending());

    let drain = async_std::task::spawn(async move {
        let mut received = 0usize;
        while let Some(Ok(message)) = peer.next().await {
            received += message.len();
        }
        received
    });
    within("the writer to be woken", async {
        loop {
            futures::select! {
                _ = writer_woken.next() => break,
                _ = reader_woken.next() => {
                    if poll_reader_again {
                        let mut buf = [0; 16];
                        let read = Pin::new(&mut io).poll_read(&mut reader_cx, &mut buf);
                        assert!(read.is_pending());
                    }
                }
            }
        }
    })
    .await;
    within("close", io.close()).await.unwrap();
    assert!(within("drain", drain).await >= written);
}

#[async_std::test]
async fn a_writer_waiting_in_flush_is_woken_when_a_read_flushes_for_it() {
    writer_is_woken_despite_a_reader_flushing(true, true).await;
}

#[async_std::test]
async fn a_writer_waiting_with_a_full_buffer_is_woken_when_a_read_sends_it() {
    writer_is_woken_despite_a_reader_flushing(false, true).await;
}

#[async_std::test]
async fn a_waiting_writer_is_woken_even_if_the_reader_is_not_polled_again() {
    writer_is_woken_despite_a_reader_flushing(true, false).await;
    writer_is_woken_despite_a_reader_flushing(false, false).await;
}
