//! Plumbing for the interop tests against `@matrixai/ws`: a Node peer (`tests/interop/peer.js`)
//! on one end of a real `wss://` connection over 127.0.0.1, our [`Connection`] on the other.
#![allow(dead_code)]

pub mod node;
pub mod parts;
pub mod tls;

use std::{future::Future, time::Duration};

use async_std::net::{TcpListener, TcpStream};
use futures::StreamExt;
use pharos::Observable;
use ws_stream_mux::{CloseCode, Config, Connection, WsEvent};

pub use node::{JsPeer, Role};

/// Generous safety net for one step: a step that needs it has hung, and says so.
pub const SAFETY: Duration = Duration::from_secs(150);

/// Runs `fut` under the safety timeout, panicking loudly if it hangs.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match async_std::future::timeout(SAFETY, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still not done after {SAFETY:?} (hang)"),
    }
}

/// A control run without us: two Node peers play `server_part` and `client_part` of `case`
/// against each other. It shows that the scripts agree with the library they drive, so that a
/// failure against our side is ours.
pub async fn js_pair(case: &str, server_part: &str, client_part: &str) {
    let tls = tls::tls();
    let mut server = JsPeer::spawn_with(Role::Server, case, server_part, None, tls, false);
    let port = server.port().await;
    let client = JsPeer::spawn_with(Role::Client, case, client_part, Some(port), tls, false);
    client.finish().await;
    server.finish().await;
}

/// One connection between us and a Node peer playing `js_part` of `case`.
pub struct Session {
    pub conn: Connection,
    js: JsPeer,
    events: async_std::task::JoinHandle<Vec<WsEvent>>,
}

impl Session {
    /// Starts the Node peer in `js_role` and connects to it (or lets it connect to us) over TLS.
    pub async fn start(js_role: Role, case: &str, js_part: &str, config: Config) -> Self {
        let tls = tls::tls();
        let (conn, js) = match js_role {
            Role::Server => {
                let mut js = JsPeer::spawn(Role::Server, case, js_part, None, tls);
                let port = js.port().await;
                let tcp = within("tcp connect", TcpStream::connect(("127.0.0.1", port)))
                    .await
                    .expect("connect to the Node server");
                tcp.set_nodelay(true).expect("nodelay");
                let url = format!("wss://127.0.0.1:{port}/");
                let (ws, _) = within(
                    "tls + websocket handshake",
                    ws_stream_mux::tls::connect(&url, tcp, tls.client.clone()),
                )
                .await
                .expect("wss handshake with the Node server");
                (Connection::client(ws, config).expect("valid config"), js)
            }
            Role::Client => {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let port = listener.local_addr().expect("addr").port();
                let js = JsPeer::spawn(Role::Client, case, js_part, Some(port), tls);
                let (tcp, _) = within("tcp accept", listener.accept())
                    .await
                    .expect("accept the Node client");
                tcp.set_nodelay(true).expect("nodelay");
                let (ws, _request) = within(
                    "tls + websocket handshake",
                    ws_stream_mux::tls::accept(tcp, tls.server.clone(), &Default::default()),
                )
                .await
                .expect("wss handshake with the Node client");
                (Connection::server(ws, config).expect("valid config"), js)
            }
        };
        let mut observed = conn.clone();
        let mut events = observed
            .observe(Default::default())
            .await
            .expect("observe events");
        let events = async_std::task::spawn(async move {
            let mut all = Vec::new();
            while let Some(event) = events.next().await {
                all.push(event);
            }
            all
        });
        Self { conn, js, events }
    }

    /// Runs our `part` on the connection, then [`Session::end`]. If our part panics, the Node
    /// peer's side of the story (its trace, its own verdict) is printed before the panic goes on.
    pub async fn run<Fut>(
        self,
        part: impl FnOnce(Connection) -> Fut,
        code: CloseCode,
    ) -> Vec<WsEvent>
    where
        Fut: Future<Output = ()>,
    {
        use futures::FutureExt;
        let outcome = std::panic::AssertUnwindSafe(part(self.conn.clone()))
            .catch_unwind()
            .await;
        match outcome {
            Ok(()) => self.end(code).await,
            Err(panic) => {
                let Session { conn, js, .. } = self;
                drop(conn);
                let report = js.report_after_failure(Duration::from_secs(10)).await;
                eprintln!("our side failed; the Node peer said:\n{report}");
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Drives the connection to its end, lets go of it (so the TCP connection closes), checks that
    /// the Node peer's part succeeded and returns every event we observed.
    ///
    /// Fails if the connection did not end with a Close frame carrying `code`, or if the peer made
    /// any stream fail: the JS side's quirks must be tolerated, not treated as errors.
    pub async fn end(self, code: CloseCode) -> Vec<WsEvent> {
        let Session { conn, js, events } = self;
        let ended = within("connection end", conn.run()).await;
        drop(conn);
        js.finish().await;
        ended.expect("the connection ended with a Close frame");
        let events = within("events", events).await;
        for event in &events {
            assert!(
                !matches!(
                    event,
                    WsEvent::StreamParseError { .. }
                        | WsEvent::StreamOverflow { .. }
                        | WsEvent::StreamRefused { .. }
                        | WsEvent::Error(_)
                        | WsEvent::TextReceived { .. }
                ),
                "the JS peer made something fail: {event:?}\nall events: {events:#?}"
            );
        }
        match events.last() {
            Some(WsEvent::Closed { code: got, .. }) => {
                assert_eq!(*got, code, "close code; events: {events:#?}")
            }
            other => panic!("the last event is not Closed but {other:?}"),
        }
        events
    }
}
