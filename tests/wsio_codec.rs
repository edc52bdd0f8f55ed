//! Framing a `WsIo` with codecs over real TCP on 127.0.0.1: asynchronous-codec (lines and
//! length-delimited) on async-std, and tokio-util codecs on a tokio runtime (`tokio` feature).

use crate::wsio_support;

use asynchronous_codec::{Bytes, Framed, LengthCodec, LinesCodec};
use futures::{SinkExt, StreamExt, TryStreamExt};
use ws_stream_mux::{CloseCode, WsIo};
use wsio_support::*;

/// Frame sizes around the 64 KiB message size and up to 1 MiB, the empty frame included.
const FRAME_SIZES: [usize; 9] = [0, 1, 100, 65_535, 65_536, 65_537, 200_000, 1 << 20, 3];

#[async_std::test]
async fn lines_round_trip_through_an_uppercasing_server() {
    let (server, client) = ws_pair().await;
    let server = async {
        let mut lines = Framed::new(WsIo::new(server), LinesCodec);
        while let Some(line) = lines.try_next().await.expect("server reads a line") {
            lines
                .send(line.to_uppercase())
                .await
                .expect("server answers");
        }
        // The client closed cleanly: end of stream, then our close completes too.
        lines.close().await.expect("server close");
    };
    let client = async {
        let mut lines = Framed::new(WsIo::new(client), LinesCodec);
        for i in 0..500 {
            lines
                .send(format!("line {i}: héllo\n"))
                .await
                .expect("client sends");
            let answer = lines
                .try_next()
                .await
                .expect("client reads")
                .expect("an answer");
            assert_eq!(answer, format!("LINE {i}: HÉLLO\n"));
        }
        let mut io = lines.into_inner();
        io.close_with(CloseCode::NORMAL, "done")
            .await
            .expect("client close");
    };
    within("lines", futures::future::join(server, client)).await;
}

#[async_std::test]
async fn length_delimited_frames_round_trip_in_a_batch() {
    let (server, client) = ws_pair().await;
    let server = async {
        let (mut sink, mut frames) = Framed::new(WsIo::new(server), LengthCodec).split();
        while let Some(frame) = frames.try_next().await.expect("server reads a frame") {
            sink.send(frame).await.expect("server echoes");
        }
        sink.close().await.expect("server close");
    };
    let client = async {
        let framed = Framed::new(WsIo::new(client), LengthCodec);
        let (mut sink, mut frames) = framed.split();
        let sent: Vec<Bytes> = FRAME_SIZES
            .iter()
            .enumerate()
            .map(|(i, &n)| pattern(n, i as u8).into())
            .collect();
        let send = async {
            // `feed` all, one flush: the frames share WebSocket messages.
            for frame in &sent {
                sink.feed(frame.clone()).await.expect("feed");
            }
            sink.flush().await.expect("flush");
            sink
        };
        let receive = async {
            let mut got = Vec::new();
            while got.len() < sent.len() {
                got.push(frames.try_next().await.expect("read").expect("a frame"));
            }
            got
        };
        let (mut sink, got) = futures::future::join(send, receive).await;
        assert_eq!(got.len(), sent.len());
        for (i, (got, sent)) in got.iter().zip(&sent).enumerate() {
            assert!(got == sent, "frame {i} of {} bytes differs", sent.len());
        }
        sink.close().await.expect("client close");
        assert!(
            frames.next().await.is_none(),
            "end of stream after the close handshake"
        );
    };
    within("length-delimited", futures::future::join(server, client)).await;
}

/// tokio-util's codecs over `WsIo`'s tokio traits, on a tokio runtime with tokio's TCP: the
/// library needs no async-std (async-tungstenite runs over tokio-util's compat layer).
#[cfg(feature = "tokio")]
mod tokio_codecs {
    use super::*;
    use std::future::Future;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::{
        codec::{Framed, LengthDelimitedCodec, LinesCodec},
        compat::TokioAsyncReadCompatExt,
    };
    use ws_stream_mux::async_tungstenite;

    async fn tokio_pair() -> (
        WsIo<tokio_util::compat::Compat<TcpStream>>,
        WsIo<tokio_util::compat::Compat<TcpStream>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = async {
            let (tcp, _) = listener.accept().await.expect("accept");
            let ws = async_tungstenite::accept_async(tcp.compat())
                .await
                .expect("accept ws");
            WsIo::new(ws)
        };
        let client = async {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let (ws, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp.compat())
                .await
                .expect("connect ws");
            WsIo::new(ws)
        };
        tokio_within("handshake", async { tokio::join!(server, client) }).await
    }

    async fn tokio_within<T>(what: &str, fut: impl Future<Output = T>) -> T {
        // The runtime has no timer enabled: the safety net is async-std's, which runs its own.
        within(what, fut).await
    }

    #[tokio::test]
    async fn tokio_util_lines_round_trip() {
        let (server, client) = tokio_pair().await;
        let server = tokio::spawn(async move {
            let mut lines = Framed::new(server, LinesCodec::new_with_max_length(1024));
            while let Some(line) = lines.next().await {
                let line = line.expect("server reads a line");
                lines
                    .send(format!("echo {line}"))
                    .await
                    .expect("server answers");
            }
            SinkExt::<String>::close(&mut lines)
                .await
                .expect("server close");
        });
        let mut lines = Framed::new(client, LinesCodec::new_with_max_length(1024));
        tokio_within("lines", async {
            for i in 0..200 {
                lines
                    .send(format!("message {i}"))
                    .await
                    .expect("client sends");
                let answer = lines.next().await.expect("an answer").expect("a line");
                assert_eq!(answer, format!("echo message {i}"));
            }
            SinkExt::<String>::close(&mut lines)
                .await
                .expect("client close");
        })
        .await;
        tokio_within("server", server).await.expect("server task");
    }

    #[tokio::test]
    async fn tokio_util_length_delimited_round_trip() {
        let (server, client) = tokio_pair().await;
        let server = tokio::spawn(async move {
            let mut frames = Framed::new(server, LengthDelimitedCodec::new());
            while let Some(frame) = frames.next().await {
                let frame = frame.expect("server reads a frame");
                frames.send(frame.freeze()).await.expect("server echoes");
            }
            SinkExt::<Bytes>::close(&mut frames)
                .await
                .expect("server close");
        });
        let mut frames = Framed::new(
            client,
            LengthDelimitedCodec::builder()
                .max_frame_length(2 << 20)
                .new_codec(),
        );
        tokio_within("frames", async {
            for (i, &n) in FRAME_SIZES.iter().enumerate() {
                let frame = Bytes::from(pattern(n, i as u8));
                frames.send(frame.clone()).await.expect("client sends");
                let echo = frames.next().await.expect("an echo").expect("a frame");
                assert!(echo == frame, "frame {i} of {n} bytes differs");
            }
            SinkExt::<Bytes>::close(&mut frames)
                .await
                .expect("client close");
            assert!(
                frames.next().await.is_none(),
                "end of stream after the close"
            );
        })
        .await;
        tokio_within("server", server).await.expect("server task");
    }
}
