//! The client connect rule (RFC 6455 §4.1): one connection per host:port in CONNECTING at a time,
//! proved with a server that answers only when the test lets it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_std::{
    future::timeout,
    net::{TcpListener, TcpStream},
};
use futures::{
    channel::{mpsc, oneshot},
    future::BoxFuture,
    poll, FutureExt, StreamExt,
};
use ws_stream_mux::{
    connect::{connect, ConnectConfig, Connector},
    handshake::{accept, AcceptConfig, HandshakeError, PathPolicy},
    DataMessage, MessageConfig, MessageSocket,
};

const SAFETY: Duration = Duration::from_secs(20);

/// A server that reports every TCP connection and answers its upgrade only when released.
struct SlowServer {
    url: String,
    arrivals: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
}

impl SlowServer {
    async fn start(config: AcceptConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "ws://127.0.0.1:{}/ws",
            listener.local_addr().unwrap().port()
        );
        let (report, arrivals) = mpsc::unbounded();
        async_std::task::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (release, released) = oneshot::channel();
                if report.unbounded_send(release).is_err() {
                    return;
                }
                let config = config.clone();
                async_std::task::spawn(async move {
                    // A dropped release means "never answer": hold the connection until the
                    // client gives up.
                    if released.await.is_err() {
                        return;
                    }
                    if let Ok((ws, _)) = accept(tcp, &config).await {
                        let socket =
                            MessageSocket::new(ws, MessageConfig::default()).expect("valid config");
                        while let Ok(message) = socket.read().await {
                            let _ = socket.write(message).await;
                        }
                    }
                });
            }
        });
        Self { url, arrivals }
    }

    /// The next TCP connection's release handle.
    async fn next_arrival(&mut self) -> oneshot::Sender<()> {
        timeout(SAFETY, self.arrivals.next())
            .await
            .expect("a connection arrives")
            .expect("server running")
    }
}

type Log = Arc<Mutex<Vec<&'static str>>>;

/// Connects to `url`, recording in `log` when the dial happens.
fn connect_logged(
    connector: &Connector,
    url: &str,
    log: &Log,
    name: &'static str,
) -> BoxFuture<'static, Result<MessageSocket, HandshakeError>> {
    let (connector, url, log) = (connector.clone(), url.to_owned(), log.clone());
    async move {
        let (ws, _) = connector
            .connect(url, move |address| {
                log.lock().unwrap().push(name);
                TcpStream::connect(address)
            })
            .await?;
        Ok(MessageSocket::new(ws, MessageConfig::default()).expect("valid config"))
    }
    .boxed()
}

async fn assert_echoes(socket: &MessageSocket) {
    socket.write("ping?").await.unwrap();
    let echoed = timeout(SAFETY, socket.read()).await.expect("echo").unwrap();
    assert_eq!(echoed, DataMessage::text("ping?"));
}

#[async_std::test]
async fn same_host_waits_its_turn_other_hosts_do_not() {
    let mut slow = SlowServer::start(AcceptConfig::default()).await;
    let mut other = SlowServer::start(AcceptConfig::default()).await;
    let connector = Connector::default();
    let log = Log::default();

    // A reaches the server, which holds its upgrade: A is CONNECTING.
    let a = async_std::task::spawn(connect_logged(&connector, &slow.url, &log, "a"));
    let release_a = slow.next_arrival().await;

    // B to the same host:port does not even dial while A is connecting.
    let mut b = connect_logged(&connector, &slow.url, &log, "b");
    assert!(poll!(&mut b).is_pending());
    assert_eq!(*log.lock().unwrap(), ["a"]);

    // C to another host:port goes ahead meanwhile.
    let c = async_std::task::spawn(connect_logged(&connector, &other.url, &log, "c"));
    other.next_arrival().await.send(()).unwrap();
    let c = timeout(SAFETY, c).await.expect("c connects").unwrap();
    assert_echoes(&c).await;
    assert!(poll!(&mut b).is_pending());
    assert_eq!(*log.lock().unwrap(), ["a", "c"]);

    // Once A is through, B takes its turn.
    release_a.send(()).unwrap();
    let a = timeout(SAFETY, a).await.expect("a connects").unwrap();
    assert_echoes(&a).await;
    let b = async_std::task::spawn(b);
    slow.next_arrival().await.send(()).unwrap();
    let b = timeout(SAFETY, b).await.expect("b connects").unwrap();
    assert_echoes(&b).await;
    assert_eq!(*log.lock().unwrap(), ["a", "c", "b"]);
}

#[async_std::test]
async fn many_concurrent_connects_are_serialised() {
    let mut slow = SlowServer::start(AcceptConfig::default()).await;
    let connector = Connector::default();
    let log = Log::default();
    let names = ["0", "1", "2", "3", "4"];
    let tasks: Vec<_> = names
        .iter()
        .map(|name| async_std::task::spawn(connect_logged(&connector, &slow.url, &log, name)))
        .collect();
    // Each arrival is released only after checking that nobody else has dialed meanwhile: at
    // any moment exactly as many dials happened as connections reached the server.
    for arrived in 1..=names.len() {
        let release = slow.next_arrival().await;
        assert_eq!(log.lock().unwrap().len(), arrived);
        release.send(()).unwrap();
    }
    for task in tasks {
        let socket = timeout(SAFETY, task).await.expect("connects").unwrap();
        assert_echoes(&socket).await;
    }
}

#[async_std::test]
async fn a_timed_out_connect_frees_the_turn() {
    let mut slow = SlowServer::start(AcceptConfig::default()).await;
    let connector = Connector::new(ConnectConfig::default().timeout(Duration::from_millis(300)));
    let log = Log::default();

    let first = async_std::task::spawn(connect_logged(&connector, &slow.url, &log, "first"));
    let hold = slow.next_arrival().await; // never released
    let outcome = timeout(SAFETY, first).await.expect("the connect gives up");
    assert!(
        matches!(outcome, Err(HandshakeError::TimedOut)),
        "{:?}",
        outcome.err()
    );

    let second = async_std::task::spawn(connect_logged(&connector, &slow.url, &log, "second"));
    slow.next_arrival().await.send(()).unwrap();
    let socket = timeout(SAFETY, second).await.expect("connects").unwrap();
    assert_echoes(&socket).await;
    drop(hold);
}

#[async_std::test]
async fn a_cancelled_connect_frees_the_turn() {
    let mut slow = SlowServer::start(AcceptConfig::default()).await;
    let connector = Connector::default();
    let log = Log::default();

    let mut first = connect_logged(&connector, &slow.url, &log, "first");
    let mut second = connect_logged(&connector, &slow.url, &log, "second");
    assert!(poll!(&mut first).is_pending());
    let _hold = slow.next_arrival().await;
    assert!(poll!(&mut second).is_pending());
    assert_eq!(*log.lock().unwrap(), ["first"]);

    drop(first);
    let second = async_std::task::spawn(second);
    slow.next_arrival().await.send(()).unwrap();
    let socket = timeout(SAFETY, second).await.expect("connects").unwrap();
    assert_echoes(&socket).await;
}

#[async_std::test]
async fn refused_upgrade_reports_the_status() {
    let mut slow =
        SlowServer::start(AcceptConfig::default().paths(PathPolicy::only(["/other"]))).await;
    let connector = Connector::default();
    let attempt =
        async_std::task::spawn(connect_logged(&connector, &slow.url, &Log::default(), "x"));
    slow.next_arrival().await.send(()).unwrap();
    let outcome = timeout(SAFETY, attempt).await.expect("answered");
    assert!(
        matches!(outcome, Err(HandshakeError::Refused(404))),
        "{:?}",
        outcome.err()
    );
}

#[async_std::test]
async fn bad_urls_and_dial_failures_are_typed() {
    let outcome = connect("http://127.0.0.1/", TcpStream::connect).await;
    assert!(matches!(outcome, Err(HandshakeError::InvalidRequest(_))));

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let outcome = connect(format!("ws://127.0.0.1:{port}/"), TcpStream::connect).await;
    match outcome {
        Err(HandshakeError::Io(err)) => {
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("expected a refused dial, got {:?}", other.err()),
    }
}

#[async_std::test]
async fn process_wide_connect_works() {
    let mut slow = SlowServer::start(AcceptConfig::default()).await;
    let url = slow.url.clone();
    let attempt = async_std::task::spawn(async move { connect(url, TcpStream::connect).await });
    slow.next_arrival().await.send(()).unwrap();
    let (ws, response) = timeout(SAFETY, attempt).await.expect("connects").unwrap();
    assert_eq!(response.status(), 101);
    assert_echoes(&MessageSocket::new(ws, MessageConfig::default()).expect("valid config")).await;
}
