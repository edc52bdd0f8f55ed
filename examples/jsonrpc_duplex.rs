//! JSON-RPC 2.0 over one multiplexed WebSocket: one stream per call, and errors on two layers.
//!
//! ```text
//! cargo run --example jsonrpc_duplex --features tokio
//! ```
//!
//! The demo starts a server and a client on 127.0.0.1 in this one process and runs every case
//! below, printing what each end observed. `tests/example_jsonrpc.rs` drives the same functions
//! and asserts it.
//!
//! # One stream per call
//!
//! A call opens its own stream of the [`Connection`], writes its request there and reads its
//! response there. Nothing has to match responses to requests, a slow call holds up no other
//! (the connection interleaves the streams), and one call can be torn down — with a reason —
//! without touching the others.
//!
//! Each JSON-RPC message is one frame: tokio-util's `LengthDelimitedCodec` (a 4-byte length, then
//! the JSON text), at most [`MAX_FRAME`] bytes.
//!
//! - A **unary call**: the client writes the request and finishes its side (FIN); the server
//!   answers with one response and finishes its side.
//! - A **streaming (duplex) call**: after the request, both sides send *items* while the call
//!   runs — JSON-RPC notifications `{"jsonrpc":"2.0","method":"stream.item","params":…}`. The
//!   client's FIN says "no more items"; the server's response ends the call. The client may end
//!   its side with its own JSON-RPC error object instead (a response-shaped
//!   `{"jsonrpc":"2.0","id":…,"error":{…}}`), which the server's handler receives as an error.
//!
//! # Two layers of errors
//!
//! 1. **JSON-RPC error objects** (`{"code":…,"message":…,"data":…}`), in band, as messages on the
//!    stream: a handler failed (division by zero, an unknown method, invalid params), or the
//!    client gave up a streaming call and says why. The stream then ends normally.
//! 2. **Transport failures**, out of band. Sometimes no message can be sent: the handler is gone
//!    (cancelled, panicked), the framing can no longer be trusted (a frame that is not JSON), the
//!    caller stopped waiting. Such a call ends with a *stream error code*: a reset (our writing
//!    ends; the peer's reads fail with the code) plus a stop (our reading ends; the peer's writes
//!    fail with it). [`Failure::code`] and [`Failure::from_code`] map reasons to codes and back,
//!    so both ends name the same failure.
//!
//! | what happens                     | who ends the stream | how                               | the other end observes        |
//! |----------------------------------|---------------------|-----------------------------------|-------------------------------|
//! | the client drops a call          | client              | reset + stop, [`CANCELLED`]       | server: `Cancelled`           |
//! | `call_with_timeout` runs out     | client              | reset + stop, [`TIMED_OUT`]       | server: `TimedOut`            |
//! | a frame is not JSON(-RPC)        | the receiver        | reset + stop, [`BAD_FRAME`]       | the sender: `BadFrame`        |
//! | a handler panics                 | server (the drop)   | reset with the drop code [`HANDLER_PANICKED`] | client: `HandlerPanicked` |
//!
//! JSON that parses but is not a request gets JSON-RPC's own in-band answer (-32600 Invalid
//! Request): the frame was intact, so the stream can still carry the answer. Bytes that are not
//! JSON at all end the stream: after garbage, nothing on it is trustworthy.

#[cfg(feature = "tokio")]
#[tokio::main]
async fn main() -> Result<(), rpc::BoxError> {
    rpc::demo().await
}

#[cfg(not(feature = "tokio"))]
fn main() {
    eprintln!(
        "this example needs the tokio feature: cargo run --example jsonrpc_duplex --features tokio"
    );
    std::process::exit(2);
}

/// The protocol (client, server, error layers) and the demo.
#[cfg(feature = "tokio")]
pub mod rpc {
    use std::{
        collections::HashMap,
        fmt,
        future::Future,
        io,
        sync::{
            atomic::{AtomicU64, Ordering},
            Arc,
        },
        time::Duration,
    };

    use bytes::Bytes;
    use futures::{
        channel::mpsc::{self, UnboundedReceiver, UnboundedSender},
        SinkExt, StreamExt,
    };
    use serde_json::{json, Value};
    use tokio::{
        net::TcpListener,
        task::{Id as TaskId, JoinError, JoinSet},
    };
    use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
    use ws_stream_mux::{
        handshake::AcceptConfig, CloseCode, Config, Connection, Error, ErrorCode, RecvStream,
        SendStream, StreamId, WsStream,
    };

    /// The error type of the demo.
    pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

    /// The largest frame either end accepts; a longer one is a bad frame.
    pub const MAX_FRAME: usize = 1 << 20;

    /// The method name of the items of a streaming call.
    const ITEM_METHOD: &str = "stream.item";

    // ------------------------------------------------------------------------------------------
    // Layer 1: JSON-RPC error objects, in band.
    // ------------------------------------------------------------------------------------------

    /// A JSON-RPC error object: `{"code": …, "message": …, "data": …}`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct RpcError {
        /// The error code. -32768 to -32000 are JSON-RPC's own; applications use the others.
        pub code: i64,
        /// A short description.
        pub message: String,
        /// Anything else the receiver may want to know.
        pub data: Option<Value>,
    }

    impl RpcError {
        /// JSON-RPC: the JSON sent is not a valid request object.
        pub const INVALID_REQUEST: i64 = -32600;
        /// JSON-RPC: the method does not exist.
        pub const METHOD_NOT_FOUND: i64 = -32601;
        /// JSON-RPC: invalid method parameters.
        pub const INVALID_PARAMS: i64 = -32602;
        /// This application: `divide` by zero.
        pub const DIVISION_BY_ZERO: i64 = 1;
        /// This application: the server's answer to a streaming call the client gave up (its
        /// error object is the answer's `data`).
        pub const ABANDONED_BY_CLIENT: i64 = 2;
        /// This application: what the demo client says when it gives up a streaming call.
        pub const CLIENT_GAVE_UP: i64 = 100;

        /// An error object without data.
        pub fn new(code: i64, message: impl Into<String>) -> Self {
            Self {
                code,
                message: message.into(),
                data: None,
            }
        }

        /// The same error object with `data`.
        pub fn with_data(mut self, data: Value) -> Self {
            self.data = Some(data);
            self
        }

        fn invalid_params(message: impl Into<String>) -> Self {
            Self::new(Self::INVALID_PARAMS, message)
        }

        /// The object as JSON.
        pub fn to_json(&self) -> Value {
            let mut object = json!({ "code": self.code, "message": self.message });
            if let Some(data) = &self.data {
                object["data"] = data.clone();
            }
            object
        }

        /// Reads an error object; `None` if `value` is not one.
        pub fn from_json(value: &Value) -> Option<Self> {
            Some(Self {
                code: value.get("code")?.as_i64()?,
                message: value.get("message")?.as_str()?.to_owned(),
                data: value.get("data").cloned(),
            })
        }
    }

    impl fmt::Display for RpcError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "JSON-RPC error {}: {}", self.code, self.message)
        }
    }

    /// The JSON-RPC messages a call's stream carries.
    #[derive(Debug, Clone, PartialEq)]
    enum Message {
        /// The first message of every call.
        Request {
            id: Value,
            method: String,
            params: Value,
        },
        /// An item of a streaming call, either way (a notification: no id).
        Item(Value),
        /// The server's answer — or, in a streaming call, the client's error object.
        Response {
            id: Value,
            outcome: Result<Value, RpcError>,
        },
    }

    impl Message {
        fn to_json(&self) -> Value {
            match self {
                Message::Request { id, method, params } => {
                    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
                }
                Message::Item(item) => {
                    json!({ "jsonrpc": "2.0", "method": ITEM_METHOD, "params": item })
                }
                Message::Response {
                    id,
                    outcome: Ok(result),
                } => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
                Message::Response {
                    id,
                    outcome: Err(error),
                } => json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json() }),
            }
        }

        /// Reads a message; `None` for JSON that is none of ours.
        fn from_json(value: &Value) -> Option<Self> {
            if value.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
                return None;
            }
            let params = || value.get("params").cloned().unwrap_or(Value::Null);
            match (value.get("method"), value.get("id")) {
                (Some(method), None) if method == ITEM_METHOD => Some(Message::Item(params())),
                (Some(method), Some(id)) => Some(Message::Request {
                    id: id.clone(),
                    method: method.as_str()?.to_owned(),
                    params: params(),
                }),
                (None, Some(id)) => {
                    let outcome = match (value.get("result"), value.get("error")) {
                        (Some(result), None) => Ok(result.clone()),
                        (None, Some(error)) => Err(RpcError::from_json(error)?),
                        _ => return None,
                    };
                    Some(Message::Response {
                        id: id.clone(),
                        outcome,
                    })
                }
                _ => None,
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Layer 2: transport failures, as stream error codes.
    // ------------------------------------------------------------------------------------------

    /// Stream code: the client cancelled the call (dropped it, or [`StreamingCall::cancel`]).
    pub const CANCELLED: ErrorCode = ErrorCode(10);
    /// Stream code: the client stopped waiting ([`Client::call_with_timeout`]).
    pub const TIMED_OUT: ErrorCode = ErrorCode(11);
    /// Stream code: a frame was not JSON, or not the JSON-RPC message expected there.
    pub const BAD_FRAME: ErrorCode = ErrorCode(12);
    /// Stream code: the server's handler panicked.
    pub const HANDLER_PANICKED: ErrorCode = ErrorCode(13);

    /// Why a call ended without a JSON-RPC answer. Codes 0, 1 and 2 are the library's own (0:
    /// a stream dropped unread; 1 and 2: the peer broke the multiplexing protocol), so ours start
    /// at 10.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Failure {
        /// The client cancelled the call.
        Cancelled,
        /// The client gave up waiting.
        TimedOut,
        /// A frame could not be used: not JSON, too long, cut off, not the message expected.
        BadFrame,
        /// The handler panicked.
        HandlerPanicked,
        /// A code this application does not define (the library's 0, 1, 2, or a newer peer's).
        Other(ErrorCode),
    }

    impl Failure {
        /// The stream code that carries this reason (reason → code).
        pub fn code(self) -> ErrorCode {
            match self {
                Failure::Cancelled => CANCELLED,
                Failure::TimedOut => TIMED_OUT,
                Failure::BadFrame => BAD_FRAME,
                Failure::HandlerPanicked => HANDLER_PANICKED,
                Failure::Other(code) => code,
            }
        }

        /// The reason a stream code carries (code → reason).
        pub fn from_code(code: ErrorCode) -> Self {
            match code {
                CANCELLED => Failure::Cancelled,
                TIMED_OUT => Failure::TimedOut,
                BAD_FRAME => Failure::BadFrame,
                HANDLER_PANICKED => Failure::HandlerPanicked,
                other => Failure::Other(other),
            }
        }
    }

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Failure::Cancelled => f.write_str("cancelled"),
                Failure::TimedOut => f.write_str("timed out"),
                Failure::BadFrame => f.write_str("bad frame"),
                Failure::HandlerPanicked => f.write_str("handler panicked"),
                Failure::Other(code) => write!(f, "stream error code {code}"),
            }
        }
    }

    /// Why a call's stream can no longer carry messages.
    #[derive(Debug, Clone)]
    pub enum TransportError {
        /// The peer ended the stream with this failure's code.
        ByPeer(Failure),
        /// We ended it, with this failure's code (we rejected a frame, stopped waiting, …).
        ByUs(Failure),
        /// The connection under the stream is gone: no code, every call on it ended.
        Connection(Error),
    }

    impl TransportError {
        /// The failure, whichever end reported it; `None` when the connection ended.
        pub fn failure(&self) -> Option<Failure> {
            match self {
                TransportError::ByPeer(failure) | TransportError::ByUs(failure) => Some(*failure),
                TransportError::Connection(_) => None,
            }
        }
    }

    impl fmt::Display for TransportError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TransportError::ByPeer(failure) => {
                    write!(f, "{failure} (code {} from the peer)", failure.code())
                }
                TransportError::ByUs(failure) => {
                    write!(f, "{failure} (code {} sent by us)", failure.code())
                }
                TransportError::Connection(err) => write!(f, "connection lost: {err}"),
            }
        }
    }

    /// A failed read or write on a call's stream, as a transport error. The library's errors are
    /// `io::Error`s with its typed [`Error`] inside: that is where the peer's code is.
    fn transport_error(err: io::Error) -> TransportError {
        match Error::from_io(&err) {
            Some(Error::Reset(code) | Error::Stopped(code)) => {
                TransportError::ByPeer(Failure::from_code(*code))
            }
            Some(Error::LocallyEnded(code)) => TransportError::ByUs(Failure::from_code(*code)),
            _ => TransportError::Connection(Error::from(err)),
        }
    }

    /// Why a call did not produce a value — at either end.
    #[derive(Debug, Clone)]
    pub enum CallError {
        /// A JSON-RPC error object: on the client, the server's answer; in a streaming handler,
        /// the error object the client ended its side with.
        Rpc(RpcError),
        /// The call's stream broke (layer 2).
        Transport(TransportError),
        /// The peer finished its side where a message was due.
        Incomplete(&'static str),
    }

    impl From<TransportError> for CallError {
        fn from(err: TransportError) -> Self {
            CallError::Transport(err)
        }
    }

    impl fmt::Display for CallError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                CallError::Rpc(err) => err.fmt(f),
                CallError::Transport(err) => write!(f, "transport: {err}"),
                CallError::Incomplete(what) => f.write_str(what),
            }
        }
    }

    impl std::error::Error for CallError {}

    // ------------------------------------------------------------------------------------------
    // One call's stream, framed. Both ends use it.
    // ------------------------------------------------------------------------------------------

    /// A call's stream as JSON-RPC messages: length-delimited frames of JSON. The stream is split
    /// so that its halves can be framed separately and still be reset and stopped.
    struct CallStream {
        reader: FramedRead<RecvStream, LengthDelimitedCodec>,
        writer: FramedWrite<SendStream, LengthDelimitedCodec>,
    }

    impl CallStream {
        fn new(stream: WsStream) -> Self {
            let codec = || {
                LengthDelimitedCodec::builder()
                    .max_frame_length(MAX_FRAME)
                    .new_codec()
            };
            let (send, recv) = stream.into_split();
            Self {
                reader: FramedRead::new(recv, codec()),
                writer: FramedWrite::new(send, codec()),
            }
        }

        fn id(&self) -> StreamId {
            self.writer.get_ref().id()
        }

        /// Sends one message (the sink flushes it).
        async fn send(&mut self, message: &Message) -> Result<(), TransportError> {
            let json = serde_json::to_vec(&message.to_json()).expect("a JSON value serialises");
            self.send_frame(json.into()).await
        }

        /// Sends one frame as it is — also frames that are not JSON, for the demo.
        async fn send_frame(&mut self, frame: Bytes) -> Result<(), TransportError> {
            self.writer.send(frame).await.map_err(transport_error)
        }

        /// Finishes our side: after the frames sent, the peer reads the end (FIN).
        async fn finish(&mut self) -> Result<(), TransportError> {
            // Closing the sink flushes it, then shuts the stream's write side down. (The codec
            // encodes `Bytes` and `&[u8]`: name the item type for `close`.)
            SinkExt::<Bytes>::close(&mut self.writer)
                .await
                .map_err(transport_error)
        }

        /// The next frame as JSON; `Ok(None)` once the peer finished. A frame that is not JSON
        /// ends the stream with BAD_FRAME.
        async fn recv_json(&mut self) -> Result<Option<Value>, TransportError> {
            let frame = match self.reader.next().await {
                None => return Ok(None),
                Some(Ok(frame)) => frame,
                // The stream failed: the peer's code, or the connection.
                Some(Err(err)) if Error::from_io(&err).is_some() => {
                    return Err(transport_error(err))
                }
                // The codec refused the bytes (longer than MAX_FRAME, or cut off by a FIN).
                Some(Err(_)) => return Err(self.abort(Failure::BadFrame)),
            };
            match serde_json::from_slice(&frame) {
                Ok(json) => Ok(Some(json)),
                Err(_) => Err(self.abort(Failure::BadFrame)),
            }
        }

        /// The next message; `Ok(None)` once the peer finished. A frame that is not a JSON-RPC
        /// message ends the stream with BAD_FRAME.
        async fn recv(&mut self) -> Result<Option<Message>, TransportError> {
            let Some(json) = self.recv_json().await? else {
                return Ok(None);
            };
            match Message::from_json(&json) {
                Some(message) => Ok(Some(message)),
                None => Err(self.abort(Failure::BadFrame)),
            }
        }

        /// Ends both halves with `failure`'s code: a reset (the peer's reads fail with it) and a
        /// stop (the peer's writes fail with it). A half that already ended stays as it is.
        fn abort(&mut self, failure: Failure) -> TransportError {
            let code = failure.code();
            let _ = self.writer.get_mut().reset(code);
            let _ = self.reader.get_mut().stop(code);
            TransportError::ByUs(failure)
        }

        /// Resolves when the peer stops reading our side: how a server notices, while a handler
        /// works, that the client gave up.
        async fn peer_stopped(&self) -> TransportError {
            match self.writer.get_ref().stopped().await {
                Ok(Some(code)) => TransportError::ByPeer(Failure::from_code(code)),
                // Everything we wrote has left: nothing to watch any more. (Not reached: this
                // is only awaited before we answer.)
                Ok(None) => std::future::pending().await,
                Err(err) => transport_error(err.into()),
            }
        }

        /// The code the stream is reset with if it is dropped while its thread panics (and
        /// stopped with if it is dropped unread).
        fn set_drop_failure(&self, failure: Option<Failure>) {
            let code = failure.map_or(ErrorCode::UNKNOWN, Failure::code);
            self.writer
                .get_ref()
                .set_drop_code(code)
                .expect("our codes fit in a varint");
        }
    }

    // ------------------------------------------------------------------------------------------
    // The server.
    // ------------------------------------------------------------------------------------------

    /// What the server did with one call: for logs, the demo and the tests.
    #[derive(Debug, Clone)]
    pub struct CallReport {
        /// The call's stream.
        pub stream: StreamId,
        /// The method, once the request was read.
        pub method: Option<String>,
        /// What happened.
        pub outcome: Outcome,
    }

    /// A step of a call on the server.
    #[derive(Debug, Clone)]
    pub enum Outcome {
        /// The handler started.
        Started,
        /// The server answered: the handler's result or error object, or a JSON-RPC error for
        /// a request it could not take (invalid request, unknown method).
        Answered(Result<Value, RpcError>),
        /// The call ended without an answer: its stream broke.
        Broken(TransportError),
    }

    impl fmt::Display for Outcome {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Outcome::Started => f.write_str("started"),
                Outcome::Answered(Ok(result)) => write!(f, "answered {result}"),
                Outcome::Answered(Err(error)) => write!(f, "answered {error}"),
                Outcome::Broken(err) => write!(f, "broken: {err}"),
            }
        }
    }

    /// Where the server sends its [`CallReport`]s.
    pub type Reports = UnboundedSender<CallReport>;

    /// Serves calls on `conn` until the client closes it: one task per call, each call's report
    /// sent to `reports`.
    ///
    /// # Errors
    /// The connection's error if it ended other than with a clean close.
    pub async fn serve(conn: Connection, reports: Reports) -> Result<(), Error> {
        let mut calls = JoinSet::new();
        // Which stream each call's task serves, to name the call whose handler panicked.
        let mut stream_of_task = HashMap::new();
        let ended = loop {
            tokio::select! {
                accepted = conn.accept() => match accepted {
                    Ok(stream) => {
                        let stream_id = stream.id();
                        let task = calls.spawn(serve_call(stream, reports.clone()));
                        stream_of_task.insert(task.id(), stream_id);
                    }
                    Err(Error::ConnectionClosed { code, .. }) if code.is_clean() => break Ok(()),
                    Err(err) => break Err(err),
                },
                Some(finished) = calls.join_next_with_id() => {
                    report_panic(finished, &mut stream_of_task, &reports);
                }
            }
        };
        // Calls still running end with the connection; their panics are reported too.
        while let Some(finished) = calls.join_next_with_id().await {
            report_panic(finished, &mut stream_of_task, &reports);
        }
        ended
    }

    /// A call's task ended. If its handler panicked, the runtime dropped the task — and with it
    /// the stream — while unwinding, so the stream was reset with its drop code
    /// (HANDLER_PANICKED, see [`serve_call`]) and the client knows. Here the server learns it.
    fn report_panic(
        finished: Result<(TaskId, ()), JoinError>,
        stream_of_task: &mut HashMap<TaskId, StreamId>,
        reports: &Reports,
    ) {
        let (task, panicked) = match &finished {
            Ok((task, ())) => (*task, false),
            Err(err) => (err.id(), err.is_panic()),
        };
        let stream = stream_of_task.remove(&task);
        if let (true, Some(stream)) = (panicked, stream) {
            let _ = reports.unbounded_send(CallReport {
                stream,
                method: None,
                outcome: Outcome::Broken(TransportError::ByUs(Failure::HandlerPanicked)),
            });
        }
    }

    /// One call, from its request to its answer.
    async fn serve_call(stream: WsStream, reports: Reports) {
        let mut call = CallStream::new(stream);
        let stream_id = call.id();
        let report = |method: Option<&str>, outcome: Outcome| {
            let _ = reports.unbounded_send(CallReport {
                stream: stream_id,
                method: method.map(str::to_owned),
                outcome,
            });
        };

        // The request is the first frame. Bytes that are not JSON end the stream (BAD_FRAME).
        let request = match call.recv_json().await {
            Ok(Some(json)) => json,
            Ok(None) => return, // the client finished without asking anything
            Err(broken) => return report(None, Outcome::Broken(broken)),
        };
        // JSON that is not a request: the frame itself was fine, so JSON-RPC answers in band.
        let Some(Message::Request { id, method, params }) = Message::from_json(&request) else {
            let error = RpcError::new(RpcError::INVALID_REQUEST, "not a JSON-RPC request");
            let outcome = match answer(&mut call, Value::Null, Err(error.clone())).await {
                Ok(()) => Outcome::Answered(Err(error)),
                Err(broken) => Outcome::Broken(broken),
            };
            return report(None, outcome);
        };
        report(Some(&method), Outcome::Started);

        // While the handler runs, a panic must not look like a clean end to the client. The task
        // is dropped while unwinding and the stream with it; a stream dropped while its thread
        // panics is reset with its drop code — so the client's read fails with
        // HANDLER_PANICKED instead of ending.
        call.set_drop_failure(Some(Failure::HandlerPanicked));
        let handled = dispatch(&mut call, &method, params).await;
        call.set_drop_failure(None);

        let outcome = match handled {
            Ok(result) => Ok(result),
            Err(CallError::Rpc(error)) => Err(error),
            Err(CallError::Transport(broken)) => {
                return report(Some(&method), Outcome::Broken(broken))
            }
            // (Handlers here do not return it: a client's FIN is the end of its items.)
            Err(CallError::Incomplete(what)) => Err(RpcError::new(RpcError::INVALID_REQUEST, what)),
        };
        match answer(&mut call, id, outcome.clone()).await {
            Ok(()) => report(Some(&method), Outcome::Answered(outcome)),
            Err(broken) => report(Some(&method), Outcome::Broken(broken)),
        }
    }

    /// Sends the response and finishes the server's side.
    async fn answer(
        call: &mut CallStream,
        id: Value,
        outcome: Result<Value, RpcError>,
    ) -> Result<(), TransportError> {
        call.send(&Message::Response { id, outcome }).await?;
        call.finish().await
    }

    /// The methods of this server. Unary handlers are async functions of their params; a
    /// streaming handler also gets the call, to exchange items.
    async fn dispatch(
        call: &mut CallStream,
        method: &str,
        params: Value,
    ) -> Result<Value, CallError> {
        match method {
            "add" => unary(call, add(params)).await,
            "divide" => unary(call, divide(params)).await,
            "sleep" => unary(call, sleep(params)).await,
            "panic" => unary(call, panic_now(params)).await,
            "running_sum" => running_sum(Duplex { call }).await,
            "send_garbage" => send_garbage(call).await,
            other => Err(CallError::Rpc(RpcError::new(
                RpcError::METHOD_NOT_FOUND,
                format!("no method {other:?}"),
            ))),
        }
    }

    /// Runs a unary handler while watching the client. If the client gives up — it stops
    /// reading, with CANCELLED or TIMED_OUT — the handler future is dropped (Rust's
    /// cancellation: it stops at its current `.await`) and the call ends with the client's
    /// reason.
    async fn unary(
        call: &CallStream,
        handler: impl Future<Output = Result<Value, RpcError>>,
    ) -> Result<Value, CallError> {
        tokio::select! {
            result = handler => result.map_err(CallError::Rpc),
            gave_up = call.peer_stopped() => Err(CallError::Transport(gave_up)),
        }
    }

    fn two_numbers(params: &Value) -> Result<(f64, f64), RpcError> {
        match params.as_array().map(Vec::as_slice) {
            Some([a, b]) => match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(RpcError::invalid_params("expected two numbers")),
            },
            _ => Err(RpcError::invalid_params("expected [a, b]")),
        }
    }

    async fn add(params: Value) -> Result<Value, RpcError> {
        let (a, b) = two_numbers(&params)?;
        Ok(json!(a + b))
    }

    /// Fails with a JSON-RPC error object for a zero divisor (layer 1).
    async fn divide(params: Value) -> Result<Value, RpcError> {
        let (dividend, divisor) = two_numbers(&params)?;
        if divisor == 0.0 {
            return Err(
                RpcError::new(RpcError::DIVISION_BY_ZERO, "division by zero")
                    .with_data(json!({ "dividend": dividend })),
            );
        }
        Ok(json!(dividend / divisor))
    }

    /// Answers after `{"ms": …}` milliseconds: a slow call to cancel or time out.
    async fn sleep(params: Value) -> Result<Value, RpcError> {
        let ms = params
            .get("ms")
            .and_then(Value::as_u64)
            .ok_or_else(|| RpcError::invalid_params("expected {\"ms\": milliseconds}"))?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!("slept"))
    }

    /// A handler with a bug.
    async fn panic_now(_params: Value) -> Result<Value, RpcError> {
        panic!("deliberate panic in the `panic` handler (the demo shows what the client sees)");
    }

    /// The server's side of a streaming call: the client's items in, ours out.
    struct Duplex<'a> {
        call: &'a mut CallStream,
    }

    impl Duplex<'_> {
        /// The client's next item; `Ok(None)` once it finished sending. The client's own error
        /// object comes out as `Err(CallError::Rpc(..))`.
        async fn next_item(&mut self) -> Result<Option<Value>, CallError> {
            match self.call.recv().await? {
                None => Ok(None),
                Some(Message::Item(item)) => Ok(Some(item)),
                Some(Message::Response {
                    outcome: Err(client_error),
                    ..
                }) => Err(CallError::Rpc(client_error)),
                // A second request, a result: nothing the client may send here.
                Some(_) => Err(self.call.abort(Failure::BadFrame).into()),
            }
        }

        async fn send_item(&mut self, item: Value) -> Result<(), CallError> {
            Ok(self.call.send(&Message::Item(item)).await?)
        }
    }

    /// A streaming handler: answers every number the client sends with the running total, and
    /// the call with the final total once the client finished.
    async fn running_sum(mut duplex: Duplex<'_>) -> Result<Value, CallError> {
        let mut total = 0.0;
        loop {
            match duplex.next_item().await {
                Ok(Some(item)) => {
                    let number = item.as_f64().ok_or_else(|| {
                        CallError::Rpc(RpcError::invalid_params("items must be numbers"))
                    })?;
                    total += number;
                    duplex.send_item(json!(total)).await?;
                }
                Ok(None) => return Ok(json!(total)),
                // The client gave up and said why, in band: the handler sees its error object
                // and answers with its own, the client's inside, so the client knows it was
                // heard.
                Err(CallError::Rpc(client_error)) => {
                    let message = format!(
                        "sum abandoned at {total}: the client said {:?}",
                        client_error.message
                    );
                    return Err(CallError::Rpc(
                        RpcError::new(RpcError::ABANDONED_BY_CLIENT, message)
                            .with_data(client_error.to_json()),
                    ));
                }
                // Cancelled, timed out, a bad frame, the connection: nothing can be answered.
                Err(broken) => return Err(broken),
            }
        }
    }

    /// A deliberately broken method: its answer is not JSON. The client rejects it with
    /// BAD_FRAME, which we learn when it stops reading.
    async fn send_garbage(call: &mut CallStream) -> Result<Value, CallError> {
        call.send_frame(Bytes::from_static(b"<html>this is not JSON</html>"))
            .await?;
        Err(CallError::Transport(call.peer_stopped().await))
    }

    // ------------------------------------------------------------------------------------------
    // The client.
    // ------------------------------------------------------------------------------------------

    /// A JSON-RPC client: each call on its own stream of the connection. Cheap to clone; calls
    /// run concurrently.
    #[derive(Debug, Clone)]
    pub struct Client {
        conn: Connection,
        next_id: Arc<AtomicU64>,
    }

    /// A call in progress on the client. Dropping it before the call is over cancels the call.
    struct PendingCall {
        stream: CallStream,
        over: bool,
    }

    impl PendingCall {
        /// The call ended (answered, or its stream already broke): dropping it is now harmless.
        fn end(&mut self) {
            self.over = true;
        }
    }

    impl Drop for PendingCall {
        fn drop(&mut self) {
            if !self.over {
                // Dropping a stream finishes its write side (like quinn): right for a stream
                // that said all it had to say, wrong for a call abandoned half-way — the server
                // would read a cut-off request or item stream as complete. So a dropped call
                // aborts, with the reason: CANCELLED.
                self.stream.abort(Failure::Cancelled);
            }
        }
    }

    impl Client {
        /// A client on `conn`.
        pub fn new(conn: Connection) -> Self {
            Self {
                conn,
                next_id: Arc::new(AtomicU64::new(1)),
            }
        }

        /// The connection (to close it).
        pub fn connection(&self) -> &Connection {
            &self.conn
        }

        /// Calls `method`. Dropping the returned future cancels the call: the server sees
        /// CANCELLED.
        ///
        /// # Errors
        /// The server's error object ([`CallError::Rpc`]) or a transport failure.
        pub async fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
            self.call_within(method, params, None).await
        }

        /// Calls `method`, giving up after `limit`: the server then sees TIMED_OUT.
        ///
        /// # Errors
        /// As [`call`](Self::call); `Transport(ByUs(TimedOut))` when the limit ran out.
        pub async fn call_with_timeout(
            &self,
            method: &str,
            params: Value,
            limit: Duration,
        ) -> Result<Value, CallError> {
            self.call_within(method, params, Some(limit)).await
        }

        async fn call_within(
            &self,
            method: &str,
            params: Value,
            limit: Option<Duration>,
        ) -> Result<Value, CallError> {
            let id = self.next_id();
            let mut call = self.open().await?;
            let request = Message::Request {
                id: id.clone(),
                method: method.to_owned(),
                params,
            };
            let exchange = unary_exchange(&mut call.stream, request, &id);
            let result = match limit {
                None => exchange.await,
                // The timeout wraps the exchange, not the stream: when it fires we still hold
                // the stream and can tell the server why we leave — TIMED_OUT, where a plain
                // drop would say CANCELLED.
                Some(limit) => match tokio::time::timeout(limit, exchange).await {
                    Ok(result) => result,
                    Err(_elapsed) => Err(call.stream.abort(Failure::TimedOut).into()),
                },
            };
            call.end();
            result
        }

        /// Starts a streaming call: send items, read items, then the final response.
        ///
        /// # Errors
        /// A transport failure while opening the stream or sending the request.
        pub async fn call_streaming(
            &self,
            method: &str,
            params: Value,
        ) -> Result<StreamingCall, CallError> {
            let id = self.next_id();
            let mut call = self.open().await?;
            let request = Message::Request {
                id: id.clone(),
                method: method.to_owned(),
                params,
            };
            call.stream.send(&request).await?;
            Ok(StreamingCall { call, id })
        }

        /// Sends `frame` as a call's first frame, as it is, and returns the server's answer — to
        /// show what the server does with bytes that are not JSON (BAD_FRAME) or JSON that is
        /// not a request (-32600, in band).
        ///
        /// # Errors
        /// As [`call`](Self::call).
        pub async fn call_raw(&self, frame: &'static [u8]) -> Result<Value, CallError> {
            let mut call = self.open().await?;
            let result = async {
                call.stream.send_frame(Bytes::from_static(frame)).await?;
                call.stream.finish().await?;
                read_response(&mut call.stream, &Value::Null).await
            }
            .await;
            call.end();
            result?.map_err(CallError::Rpc)
        }

        fn next_id(&self) -> Value {
            json!(self.next_id.fetch_add(1, Ordering::Relaxed))
        }

        async fn open(&self) -> Result<PendingCall, CallError> {
            let stream = self.conn.open().await.map_err(TransportError::Connection)?;
            Ok(PendingCall {
                stream: CallStream::new(stream),
                over: false,
            })
        }
    }

    /// A unary call on its stream: the request, our FIN, the response.
    async fn unary_exchange(
        stream: &mut CallStream,
        request: Message,
        id: &Value,
    ) -> Result<Value, CallError> {
        stream.send(&request).await?;
        stream.finish().await?;
        read_response(stream, id).await?.map_err(CallError::Rpc)
    }

    /// Reads the server's response to call `id`, then the end of the server's side.
    async fn read_response(
        stream: &mut CallStream,
        id: &Value,
    ) -> Result<Result<Value, RpcError>, CallError> {
        match stream.recv().await? {
            Some(Message::Response {
                id: answered,
                outcome,
            }) if answered == *id => {
                read_end(stream).await?;
                Ok(outcome)
            }
            Some(_) => Err(stream.abort(Failure::BadFrame).into()),
            None => Err(CallError::Incomplete(
                "the server ended the call without a response",
            )),
        }
    }

    /// The server finishes its side after its response. Reading that end lets the stream end
    /// gracefully at both ends (dropping it unread would stop it with code 0).
    async fn read_end(stream: &mut CallStream) -> Result<(), CallError> {
        match stream.recv().await? {
            None => Ok(()),
            Some(_) => Err(stream.abort(Failure::BadFrame).into()),
        }
    }

    /// What a streaming call receives.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Reply {
        /// An item from the server; more follow.
        Item(Value),
        /// The server's result: the call is over.
        Done(Value),
    }

    impl fmt::Display for Reply {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Reply::Item(item) => write!(f, "item {item}"),
                Reply::Done(result) => write!(f, "result {result}"),
            }
        }
    }

    /// A streaming call on the client. Dropping it before it is over cancels it (CANCELLED).
    pub struct StreamingCall {
        call: PendingCall,
        id: Value,
    }

    impl StreamingCall {
        /// Sends an item to the server's handler.
        ///
        /// # Errors
        /// A transport failure (the server ended the call).
        pub async fn send(&mut self, item: Value) -> Result<(), CallError> {
            Ok(self.call.stream.send(&Message::Item(item)).await?)
        }

        /// Says "no more items" (FIN). The server's items and response still come.
        ///
        /// # Errors
        /// A transport failure.
        pub async fn finish_sending(&mut self) -> Result<(), CallError> {
            Ok(self.call.stream.finish().await?)
        }

        /// Ends our side with our own JSON-RPC error object instead of more items: the server's
        /// handler receives it as an error. The server's answer still comes.
        ///
        /// # Errors
        /// A transport failure.
        pub async fn send_error(&mut self, error: RpcError) -> Result<(), CallError> {
            let message = Message::Response {
                id: self.id.clone(),
                outcome: Err(error),
            };
            self.call.stream.send(&message).await?;
            Ok(self.call.stream.finish().await?)
        }

        /// The server's next item, or its result.
        ///
        /// # Errors
        /// The server's error object ([`CallError::Rpc`]) ends the call, as does a transport
        /// failure.
        pub async fn next(&mut self) -> Result<Reply, CallError> {
            let stream = &mut self.call.stream;
            let result = match stream.recv().await {
                Ok(Some(Message::Item(item))) => return Ok(Reply::Item(item)),
                Ok(Some(Message::Response { id, outcome })) if id == self.id => {
                    match read_end(stream).await {
                        Ok(()) => outcome.map(Reply::Done).map_err(CallError::Rpc),
                        Err(err) => Err(err),
                    }
                }
                Ok(Some(_)) => Err(stream.abort(Failure::BadFrame).into()),
                Ok(None) => Err(CallError::Incomplete(
                    "the server ended the call without a response",
                )),
                Err(broken) => Err(broken.into()),
            };
            self.call.end();
            result
        }

        /// Cancels the call: the server's handler sees CANCELLED on its next read or write.
        pub fn cancel(self) {
            // Dropping an unfinished call cancels it (see `PendingCall`).
            drop(self);
        }
    }

    // ------------------------------------------------------------------------------------------
    // The demo: every case, against ourselves.
    // ------------------------------------------------------------------------------------------

    /// A server on an ephemeral port of 127.0.0.1 serving one connection, and a client on it.
    /// Returns the client, the server's reports and its task.
    pub async fn start() -> Result<
        (
            Client,
            UnboundedReceiver<CallReport>,
            tokio::task::JoinHandle<Result<(), Error>>,
        ),
        BoxError,
    > {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("ws://{}/rpc", listener.local_addr()?);
        let (reports, server_log) = mpsc::unbounded();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let accept_config = AcceptConfig::default();
            let (conn, _request) =
                ws_stream_mux::tokio::accept(tcp, &accept_config, Config::default()).await?;
            serve(conn, reports).await
        });
        let conn = ws_stream_mux::tokio::connect(&url, Config::default()).await?;
        Ok((Client::new(conn), server_log, server))
    }

    /// The server's next report of a call's end (skipping "started").
    pub async fn next_outcome(server_log: &mut UnboundedReceiver<CallReport>) -> CallReport {
        loop {
            let report = server_log.next().await.expect("the server is running");
            if !matches!(report.outcome, Outcome::Started) {
                return report;
            }
        }
    }

    /// Waits until the server started a handler.
    pub async fn next_started(server_log: &mut UnboundedReceiver<CallReport>) -> CallReport {
        loop {
            let report = server_log.next().await.expect("the server is running");
            if matches!(report.outcome, Outcome::Started) {
                return report;
            }
        }
    }

    fn show<T: fmt::Display>(case: &str, client: &Result<T, CallError>, server: &CallReport) {
        let client = match client {
            Ok(value) => value.to_string(),
            Err(err) => err.to_string(),
        };
        println!(
            "{case}\n    client: {client}\n    server: {}",
            server.outcome
        );
    }

    fn check(ok: bool, what: &str) -> Result<(), BoxError> {
        if ok {
            Ok(())
        } else {
            Err(format!("unexpected: {what}").into())
        }
    }

    fn transport_failure<T>(result: &Result<T, CallError>) -> Option<Failure> {
        match result {
            Err(CallError::Transport(err)) => err.failure(),
            _ => None,
        }
    }

    fn broken_failure(report: &CallReport) -> Option<Failure> {
        match &report.outcome {
            Outcome::Broken(err) => err.failure(),
            _ => None,
        }
    }

    /// Runs every case and prints what each end observed.
    ///
    /// # Errors
    /// Any end observing something other than expected.
    pub async fn demo() -> Result<(), BoxError> {
        let (client, mut server_log, server) = start().await?;

        // Many calls at once, each on its own stream of the one connection.
        let sums =
            futures::future::try_join_all((1..=5).map(|i| client.call("add", json!([i, 10]))))
                .await?;
        let sums: Vec<String> = sums.iter().map(Value::to_string).collect();
        println!("five concurrent calls of add([i, 10]): {}", sums.join(", "));
        for _ in 0..5 {
            next_outcome(&mut server_log).await;
        }

        // Layer 1, server to client: the handler's error object.
        let divided = client.call("divide", json!([1, 0])).await;
        show(
            "divide by zero",
            &divided,
            &next_outcome(&mut server_log).await,
        );
        check(
            matches!(&divided, Err(CallError::Rpc(e)) if e.code == RpcError::DIVISION_BY_ZERO),
            "divide",
        )?;

        // A streaming call, items both ways.
        let mut sum = client.call_streaming("running_sum", Value::Null).await?;
        for number in [1, 2, 3] {
            sum.send(json!(number)).await?;
            println!("streaming: sent {number}, got {}", sum.next().await?);
        }
        sum.finish_sending().await?;
        let done = sum.next().await;
        show("streaming sum", &done, &next_outcome(&mut server_log).await);
        check(
            matches!(&done, Ok(Reply::Done(total)) if total == 6.0),
            "sum",
        )?;

        // Layer 1, client to server: the client ends a streaming call with its error object.
        let mut sum = client.call_streaming("running_sum", Value::Null).await?;
        sum.send(json!(40)).await?;
        sum.next().await?;
        let gave_up = RpcError::new(RpcError::CLIENT_GAVE_UP, "the user pressed stop");
        sum.send_error(gave_up.clone()).await?;
        let abandoned = sum.next().await;
        show(
            "streaming, the client sends an error object",
            &abandoned,
            &next_outcome(&mut server_log).await,
        );
        check(
            matches!(&abandoned, Err(CallError::Rpc(e))
                if e.code == RpcError::ABANDONED_BY_CLIENT
                    && e.data.as_ref() == Some(&gave_up.to_json())),
            "abandoned sum",
        )?;

        // Layer 2. Cancel a unary call: drop it once the server is working on it.
        tokio::select! {
            _ = client.call("sleep", json!({ "ms": 60_000 })) => {
                return Err("sleep(60 s) returned".into());
            }
            _ = next_started(&mut server_log) => {} // dropping `call` here cancels it
        }
        let cancelled = next_outcome(&mut server_log).await;
        println!("unary call dropped\n    server: {}", cancelled.outcome);
        check(
            broken_failure(&cancelled) == Some(Failure::Cancelled),
            "cancel",
        )?;

        // Cancel a streaming call: its handler sees CANCELLED on its next read.
        let mut sum = client.call_streaming("running_sum", Value::Null).await?;
        sum.send(json!(1)).await?;
        sum.next().await?; // the handler is running
        sum.cancel();
        let cancelled = next_outcome(&mut server_log).await;
        println!(
            "streaming call cancelled\n    server: {}",
            cancelled.outcome
        );
        check(
            broken_failure(&cancelled) == Some(Failure::Cancelled),
            "streaming cancel",
        )?;

        // A timeout: the client stops waiting and says so.
        let timed_out = client
            .call_with_timeout("sleep", json!({ "ms": 60_000 }), Duration::from_millis(200))
            .await;
        show(
            "timeout after 200 ms",
            &timed_out,
            &next_outcome(&mut server_log).await,
        );
        check(
            transport_failure(&timed_out) == Some(Failure::TimedOut),
            "timeout",
        )?;

        // Bad frames, both ways; and JSON that is no request, which JSON-RPC answers in band.
        let bad = client.call_raw(b"{ this is not JSON").await;
        show(
            "the client sends bytes that are not JSON",
            &bad,
            &next_outcome(&mut server_log).await,
        );
        check(
            transport_failure(&bad) == Some(Failure::BadFrame),
            "bad frame",
        )?;
        let garbage = client.call("send_garbage", Value::Null).await;
        show(
            "the server answers with bytes that are not JSON",
            &garbage,
            &next_outcome(&mut server_log).await,
        );
        check(
            transport_failure(&garbage) == Some(Failure::BadFrame),
            "garbage",
        )?;
        let not_a_request = client.call_raw(br#"{"hello": "world"}"#).await;
        show(
            "the client sends JSON that is not a request",
            &not_a_request,
            &next_outcome(&mut server_log).await,
        );

        // A handler panics.
        println!("(a handler panics next: the runtime prints its message)");
        let panicked = client.call("panic", Value::Null).await;
        show(
            "a handler panics",
            &panicked,
            &next_outcome(&mut server_log).await,
        );
        check(
            transport_failure(&panicked) == Some(Failure::HandlerPanicked),
            "panic",
        )?;

        // The connection carried all of it and is still fine.
        let after = client.call("add", json!([2, 2])).await?;
        println!("after all that, add([2, 2]) = {after}");
        client
            .connection()
            .close(CloseCode::NORMAL, "demo over")
            .await?;
        server.await??;
        println!("demo finished");
        Ok(())
    }
}
