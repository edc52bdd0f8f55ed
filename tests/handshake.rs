//! The checked server handshake over real TCP: hand-made request heads, asserted status lines and
//! headers, and the accepted WebSocket carrying messages.

use std::time::Duration;

use async_std::{
    future::timeout,
    net::{TcpListener, TcpStream},
};
use async_tungstenite::{tungstenite::protocol::Role, WebSocketStream};
use futures::{channel::oneshot, AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{
    handshake::{
        accept, AcceptConfig, HandshakeError, OriginPolicy, PathPolicy, Rejection, UpgradeRequest,
    },
    CloseCode, DataMessage, Error, MessageConfig, MessageSocket,
};

/// The sample key of RFC 6455 §1.3 and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const SAFETY: Duration = Duration::from_secs(20);

/// A parsed HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type ServerResult = Result<(WebSocketStream<TcpStream>, UpgradeRequest), HandshakeError>;

/// A server that accepts one connection with `config` and reports what `accept` returned.
async fn server(config: AcceptConfig) -> (u16, oneshot::Receiver<ServerResult>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (report, result) = oneshot::channel();
    async_std::task::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = report.send(accept(tcp, &config).await);
    });
    (port, result)
}

/// Reads the server's answer as an HTTP client does: the head, then `Content-Length` bytes of body.
async fn read_answer(tcp: &mut TcpStream) -> Answer {
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer_complete(&received) {
        let n = timeout(SAFETY, tcp.read(&mut chunk))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(n > 0, "connection closed inside the answer: {received:?}");
        received.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(received).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn answer_complete(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .split("\r\n")
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    body.len() >= length
}

/// Sends `head` to a fresh server and returns its answer and what `accept` returned.
async fn exchange(config: AcceptConfig, head: &[u8]) -> (Answer, ServerResult) {
    let (port, result) = server(config).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(head).await.unwrap();
    let answer = read_answer(&mut tcp).await;
    // Closing lets a server that lingers after an error answer finish at once.
    drop(tcp);
    let result = timeout(SAFETY, result).await.expect("accept ends").unwrap();
    (answer, result)
}

/// A valid request head with `extra` header lines added, or with the header lines named in
/// `remove` (lower case) left out.
fn request(remove: &[&str], extra: &[&str]) -> Vec<u8> {
    let base = [
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        &format!("Sec-WebSocket-Key: {KEY}"),
        "Sec-WebSocket-Version: 13",
    ];
    let mut head = String::from("GET /ws HTTP/1.1\r\n");
    for line in base.iter().copied().chain(extra.iter().copied()) {
        let name = line.split(':').next().unwrap().to_ascii_lowercase();
        if !remove.contains(&name.as_str()) || extra.contains(&line) {
            head.push_str(line);
            head.push_str("\r\n");
        }
    }
    head.push_str("\r\n");
    head.into_bytes()
}

async fn assert_rejected(config: AcceptConfig, head: &[u8], status: u16, expected: Rejection) {
    let (answer, result) = exchange(config, head).await;
    assert!(
        answer.body.ends_with('\n'),
        "a one-line reason: {:?}",
        answer.body
    );
    assert_eq!(
        answer.status,
        status,
        "{answer:?} for {:?}",
        String::from_utf8_lossy(head)
    );
    assert_eq!(answer.header("Connection"), Some("close"));
    assert_eq!(
        answer.header("Content-Length"),
        Some(answer.body.len().to_string().as_str()),
        "the body is complete"
    );
    match result {
        Err(HandshakeError::Rejected(rejection)) => assert_eq!(rejection, expected),
        Err(other) => panic!("expected rejection {expected:?}, got {other}"),
        Ok(_) => panic!("expected rejection {expected:?}, the request was accepted"),
    }
}

async fn assert_accepted(config: AcceptConfig, head: &[u8]) -> (Answer, UpgradeRequest) {
    let (answer, result) = exchange(config, head).await;
    assert_eq!(answer.status, 101, "{answer:?}");
    assert_eq!(answer.header("Sec-WebSocket-Accept"), Some(ACCEPT));
    assert!(answer
        .header("Upgrade")
        .unwrap()
        .eq_ignore_ascii_case("websocket"));
    assert!(answer
        .header("Connection")
        .unwrap()
        .eq_ignore_ascii_case("upgrade"));
    let (_, request) = result.expect("accepted");
    (answer, request)
}

#[async_std::test]
async fn valid_request_gets_101_and_a_working_websocket() {
    let (port, result) = server(AcceptConfig::default()).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(&request(&[], &["Origin: http://example.com"]))
        .await
        .unwrap();
    let answer = read_answer(&mut tcp).await;
    assert_eq!(answer.status, 101);
    assert_eq!(answer.header("Sec-WebSocket-Accept"), Some(ACCEPT));
    assert_eq!(answer.header("Sec-WebSocket-Protocol"), None);

    let (ws, upgrade) = result.await.unwrap().expect("accepted");
    assert_eq!(upgrade.path(), "/ws");
    assert_eq!(upgrade.host, "127.0.0.1");
    assert_eq!(upgrade.origin.as_deref(), Some("http://example.com"));
    assert_eq!(upgrade.header("sec-websocket-version"), Some(&b"13"[..]));

    // Both ends are ordinary async-tungstenite WebSockets.
    let server = MessageSocket::new(ws, MessageConfig::default()).expect("valid config");
    let client = MessageSocket::new(
        WebSocketStream::from_raw_socket(tcp, Role::Client, None).await,
        MessageConfig::default(),
    )
    .expect("valid config");
    client.write("hello").await.unwrap();
    assert_eq!(server.read().await.unwrap(), DataMessage::text("hello"));
    server.write(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(
        client.read().await.unwrap(),
        DataMessage::binary(vec![1u8, 2, 3])
    );
    // The close completes once the server answers, which it does while it is read.
    let (closed, read) = futures::join!(client.close(CloseCode(4000), "done"), server.read());
    closed.unwrap();
    assert!(matches!(
        read,
        Err(Error::ConnectionClosed { code: CloseCode(4000), reason }) if reason == "done"
    ));
}

#[async_std::test]
async fn async_tungstenite_client_connects() {
    let (port, result) = server(AcceptConfig::default().protocols(["v2", "v1"])).await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut request =
        async_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{port}/chat?room=1"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "v1, v2".parse().unwrap());
    let (client, response) = async_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "v2");
    let (server, upgrade) = result.await.unwrap().unwrap();
    assert_eq!(upgrade.target, "/chat?room=1");
    assert_eq!(upgrade.path(), "/chat");
    assert_eq!(upgrade.protocol.as_deref(), Some("v2"));

    let client = MessageSocket::new(client, MessageConfig::default()).expect("valid config");
    let server = MessageSocket::new(server, MessageConfig::default()).expect("valid config");
    server.write("over tungstenite").await.unwrap();
    assert_eq!(
        client.read().await.unwrap(),
        DataMessage::text("over tungstenite")
    );
}

#[async_std::test]
async fn header_names_and_tokens_are_case_insensitive() {
    let head = b"GET / HTTP/1.1\r\nhOsT: x\r\nUPGRADE: WebSocket\r\n\
        connection: keep-alive, UPGRADE\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        SEC-WEBSOCKET-VERSION: 13\r\n\r\n";
    assert_accepted(AcceptConfig::default(), head).await;
}

#[async_std::test]
async fn connection_tokens_may_be_spread_over_several_headers() {
    let head = request(
        &["connection"],
        &["Connection: keep-alive", "Connection: foo,  Upgrade ,bar"],
    );
    assert_accepted(AcceptConfig::default(), &head).await;
}

#[async_std::test]
async fn upgrade_header_must_name_websocket() {
    let c = AcceptConfig::default;
    assert_rejected(c(), &request(&["upgrade"], &[]), 400, Rejection::NoUpgrade).await;
    let h2c = request(&["upgrade"], &["Upgrade: h2c"]);
    assert_rejected(c(), &h2c, 400, Rejection::NoUpgrade).await;
    let listed = request(&["upgrade"], &["Upgrade: h2c, websocket"]);
    assert_accepted(c(), &listed).await;
}

#[async_std::test]
async fn connection_header_must_carry_upgrade() {
    let c = AcceptConfig::default;
    let none = request(&["connection"], &[]);
    assert_rejected(c(), &none, 400, Rejection::NoConnectionUpgrade).await;
    let keep_alive = request(&["connection"], &["Connection: keep-alive"]);
    assert_rejected(c(), &keep_alive, 400, Rejection::NoConnectionUpgrade).await;
    // A token that merely contains "upgrade" is not the token.
    let lookalike = request(&["connection"], &["Connection: upgrade-insecure"]);
    assert_rejected(c(), &lookalike, 400, Rejection::NoConnectionUpgrade).await;
}

#[async_std::test]
async fn key_must_be_base64_of_sixteen_bytes_and_appear_once() {
    let c = AcceptConfig::default;
    let cases = [
        vec![],
        vec!["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j"], // 15 bytes
        vec!["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXh4"], // 17 bytes
        vec!["Sec-WebSocket-Key: not*base64*at*all*here*!"],
        vec!["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"], // padding missing
    ];
    for extra in cases {
        let head = request(&["sec-websocket-key"], &extra);
        assert_rejected(c(), &head, 400, Rejection::BadKey).await;
    }
    let twice = request(&[], &[&format!("Sec-WebSocket-Key: {KEY}")]);
    assert_rejected(c(), &twice, 400, Rejection::BadKey).await;
}

#[async_std::test]
async fn other_versions_get_426_naming_13() {
    let c = AcceptConfig::default;
    for extra in [
        vec!["Sec-WebSocket-Version: 8"],
        vec!["Sec-WebSocket-Version: 13, 8"],
        vec![],
        vec!["Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"],
    ] {
        let head = request(&["sec-websocket-version"], &extra);
        let (answer, result) = exchange(c(), &head).await;
        assert_eq!(answer.status, 426, "{extra:?}: {answer:?}");
        assert_eq!(answer.header("Sec-WebSocket-Version"), Some("13"));
        assert!(matches!(
            result,
            Err(HandshakeError::Rejected(Rejection::UnsupportedVersion))
        ));
    }
}

#[async_std::test]
async fn request_line_and_host_are_checked() {
    let c = AcceptConfig::default;
    let post = String::from_utf8(request(&[], &[]))
        .unwrap()
        .replacen("GET", "POST", 1);
    assert_rejected(c(), post.as_bytes(), 400, Rejection::NotGet).await;
    let old = String::from_utf8(request(&[], &[]))
        .unwrap()
        .replacen("HTTP/1.1", "HTTP/1.0", 1);
    assert_rejected(c(), old.as_bytes(), 400, Rejection::HttpVersion).await;
    let no_host = request(&["host"], &[]);
    assert_rejected(c(), &no_host, 400, Rejection::Host).await;
    let two_hosts = request(&[], &["Host: other"]);
    assert_rejected(c(), &two_hosts, 400, Rejection::Host).await;
}

#[async_std::test]
async fn garbage_gets_400() {
    for garbage in [
        &b"hello there\r\n\r\n"[..],
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", // a TLS hello
        b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
    ] {
        let (answer, result) = exchange(AcceptConfig::default(), garbage).await;
        assert_eq!(answer.status, 400, "{garbage:?}");
        assert!(
            matches!(
                result,
                Err(HandshakeError::Rejected(Rejection::Malformed(_)))
            ),
            "{garbage:?}: {result:?}",
            result = result.map(|(_, r)| r)
        );
    }
}

#[async_std::test]
async fn heads_over_the_limit_get_400() {
    let c = || AcceptConfig::default().max_head_size(1024);
    let padding = format!("X-Padding: {}", "a".repeat(1100));
    let big = request(&[], &[&padding]);
    assert_rejected(c(), &big, 400, Rejection::HeadTooLarge).await;
    // A head that never ends is cut off at the limit, not buffered for ever.
    let endless = format!("GET / HTTP/1.1\r\n{padding}");
    assert_rejected(c(), endless.as_bytes(), 400, Rejection::HeadTooLarge).await;
    let many: Vec<String> = (0..100).map(|i| format!("X-{i}: y")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let many_headers = request(&[], &many);
    assert_rejected(
        AcceptConfig::default(),
        &many_headers,
        400,
        Rejection::HeadTooLarge,
    )
    .await;
}

#[async_std::test]
async fn bytes_after_the_head_get_400() {
    let mut head = request(&[], &[]);
    head.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // a masked text frame
    assert_rejected(
        AcceptConfig::default(),
        &head,
        400,
        Rejection::TrailingBytes,
    )
    .await;
}

#[async_std::test]
async fn connection_ending_inside_the_head_gets_400() {
    let (port, result) = server(AcceptConfig::default()).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let answer = read_answer(&mut tcp).await;
    assert_eq!(answer.status, 400);
    assert!(matches!(
        result.await.unwrap(),
        Err(HandshakeError::Rejected(Rejection::Incomplete))
    ));
}

#[async_std::test]
async fn slow_client_times_out_without_answer() {
    let config = AcceptConfig::default().timeout(Duration::from_millis(300));
    let (port, result) = server(config).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let outcome = timeout(SAFETY, result)
        .await
        .expect("accept gives up")
        .unwrap();
    assert!(matches!(outcome, Err(HandshakeError::TimedOut)));
    let mut rest = Vec::new();
    timeout(SAFETY, tcp.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty(), "no answer after a timeout: {rest:?}");
}

#[async_std::test]
async fn origin_policy_answers_403() {
    let allow =
        || AcceptConfig::default().origins(OriginPolicy::allow_list(["https://good.example"]));
    let bad = request(&[], &["Origin: https://evil.example"]);
    assert_rejected(allow(), &bad, 403, Rejection::OriginNotAllowed).await;
    let good = request(&[], &["Origin: HTTPS://GOOD.example"]);
    let (_, upgrade) = assert_accepted(allow(), &good).await;
    assert_eq!(upgrade.origin.as_deref(), Some("HTTPS://GOOD.example"));
    // Non-browser clients send no Origin; the allow-list lets them in.
    assert_accepted(allow(), &request(&[], &[])).await;
    let two = request(
        &[],
        &[
            "Origin: https://good.example",
            "Origin: https://evil.example",
        ],
    );
    assert_rejected(allow(), &two, 403, Rejection::OriginNotAllowed).await;

    let strict = || {
        AcceptConfig::default().origins(OriginPolicy::callback(|origin| {
            origin.is_some_and(|o| o.ends_with(".trusted"))
        }))
    };
    assert_rejected(
        strict(),
        &request(&[], &[]),
        403,
        Rejection::OriginNotAllowed,
    )
    .await;
    assert_accepted(strict(), &request(&[], &["Origin: http://a.trusted"])).await;
}

#[async_std::test]
async fn path_policy_answers_404() {
    let only = || AcceptConfig::default().paths(PathPolicy::only(["/ws"]));
    let other = String::from_utf8(request(&[], &[]))
        .unwrap()
        .replacen("/ws", "/other", 1);
    assert_rejected(only(), other.as_bytes(), 404, Rejection::PathNotFound).await;
    let query = String::from_utf8(request(&[], &[]))
        .unwrap()
        .replacen("/ws", "/ws?x=1", 1);
    assert_accepted(only(), query.as_bytes()).await;

    let prefix = || AcceptConfig::default().paths(PathPolicy::callback(|p| p.starts_with("/api/")));
    assert_accepted(
        prefix(),
        &String::from_utf8(request(&[], &[]))
            .unwrap()
            .replacen("/ws", "/api/x", 1)
            .into_bytes(),
    )
    .await;
    assert_rejected(prefix(), &request(&[], &[]), 404, Rejection::PathNotFound).await;
}

#[async_std::test]
async fn subprotocol_is_chosen_by_server_preference() {
    let config = || AcceptConfig::default().protocols(["mqtt", "chat"]);
    let head = request(&[], &["Sec-WebSocket-Protocol: chat, mqtt"]);
    let (answer, upgrade) = assert_accepted(config(), &head).await;
    assert_eq!(answer.header("Sec-WebSocket-Protocol"), Some("mqtt"));
    assert_eq!(upgrade.protocol.as_deref(), Some("mqtt"));

    let split = request(
        &[],
        &["Sec-WebSocket-Protocol: x", "Sec-WebSocket-Protocol: chat"],
    );
    let (answer, _) = assert_accepted(config(), &split).await;
    assert_eq!(answer.header("Sec-WebSocket-Protocol"), Some("chat"));

    let unknown = request(&[], &["Sec-WebSocket-Protocol: x, y"]);
    let (answer, upgrade) = assert_accepted(config(), &unknown).await;
    assert_eq!(answer.header("Sec-WebSocket-Protocol"), None);
    assert_eq!(upgrade.protocol, None);
}

#[async_std::test]
async fn rejection_converts_to_io_error() {
    let (_, result) = exchange(AcceptConfig::default(), b"POST / HTTP/1.1\r\n\r\n").await;
    let err = std::io::Error::from(result.map(|_| ()).unwrap_err());
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let inner = err
        .get_ref()
        .unwrap()
        .downcast_ref::<HandshakeError>()
        .unwrap();
    assert!(matches!(inner, HandshakeError::Rejected(r) if r.status() == 400));
}

#[async_std::test]
async fn server_closes_the_connection_after_an_error_answer() {
    // A complete head: nothing is left unread, the server closes at once.
    let (port, result) = server(AcceptConfig::default()).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(&request(&["host"], &[])).await.unwrap();
    assert_eq!(read_answer(&mut tcp).await.status, 400);
    let mut rest = Vec::new();
    timeout(SAFETY, tcp.read_to_end(&mut rest))
        .await
        .expect("closed")
        .unwrap();
    assert!(rest.is_empty());
    assert!(result.await.unwrap().is_err());

    // A head too large: the server discards what still arrives — until the client closes its
    // side, as an HTTP client does once it read the answer, or for `linger` at most — then
    // closes, and the client gets the whole answer rather than a reset. The linger is a generous
    // bound: the client's half-close, not the time, ends the wait, so a slow machine cannot turn
    // the flood into unread bytes and the close into a reset.
    let config = AcceptConfig::default().max_head_size(1024);
    let config = config.linger(SAFETY / 2);
    let (port, result) = server(config).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let flood = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(50_000));
    tcp.write_all(flood.as_bytes()).await.unwrap();
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_answer(&mut tcp).await.status, 400);
    let mut rest = Vec::new();
    timeout(SAFETY, tcp.read_to_end(&mut rest))
        .await
        .expect("closed")
        .unwrap();
    assert!(matches!(
        result.await.unwrap(),
        Err(HandshakeError::Rejected(Rejection::HeadTooLarge))
    ));
}
