//! `WsIo` against real, independent WebSocket implementations, each installed by
//! `.ci/setup/20-peers.sh`: a Node `ws` client, a Python `websockets` client and a page in headless
//! Chromium. Each sends binary messages (empty ones and up to 1 MiB) to a `WsIo` echo server over
//! TCP on 127.0.0.1, checks the echoed bytes, and closes with 4000 and a reason carrying its
//! verdict; the Rust side checks the bytes it received and the close code and reason.
//!
//! A peer that is not installed is skipped with a loud message, except in CI (`CI=true`), where
//! the test fails instead.

use crate::wsio_support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use async_std::net::TcpListener;
use futures::{AsyncReadExt, AsyncWriteExt};
use ws_stream_mux::{async_tungstenite, CloseCode, Error, WsIo};
use wsio_support::*;

/// Message sizes the peers send: an empty message, sizes around 64 KiB and up to 1 MiB.
const SIZES: [usize; 9] = [1, 10, 0, 1000, 65_535, 65_536, 65_537, 300_000, 1 << 20];

/// The bytes of all messages, as the peers build them: byte i of message m is
/// (i*31 + m*7 + 1) mod 256.
fn expected_stream() -> Vec<u8> {
    SIZES
        .iter()
        .enumerate()
        .flat_map(|(m, &n)| (0..n).map(move |i| ((i * 31 + m * 7 + 1) & 0xff) as u8))
        .collect()
}

fn sizes_arg() -> String {
    SIZES.map(|n| n.to_string()).join(",")
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// Returns `true` if the test may go on; a missing tool fails in CI and is skipped loudly
/// elsewhere.
fn available(tool: &str, found: bool) -> bool {
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{tool} is not installed, and CI must run this test (see .ci/setup/20-peers.sh)");
    }
    // Straight to the process's stderr: the test harness would swallow `eprintln!` of a test that
    // passes.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n******** SKIPPED: {tool} is not installed; run `bash .ci/setup/20-peers.sh` ********\n"
    );
    false
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// What the echo server saw: the bytes it read, and how the connection ended.
struct Received {
    bytes: Vec<u8>,
    ended: Option<Error>,
}

/// Accepts one WebSocket on `listener` and echoes every byte until the end of stream.
async fn echo_once(listener: TcpListener) -> Received {
    let (tcp, _) = listener.accept().await.expect("accept");
    let ws = async_tungstenite::accept_async(tcp)
        .await
        .expect("server handshake");
    let mut io = WsIo::new(ws);
    let mut bytes = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = io.read(&mut buf).await.expect("read from the peer");
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        io.write_all(&buf[..n]).await.expect("echo");
        io.flush().await.expect("flush the echo");
    }
    Received {
        bytes,
        ended: io.ended(),
    }
}

fn assert_received(received: &Received, reason: &str) {
    let expected = expected_stream();
    assert_eq!(received.bytes.len(), expected.len(), "byte count");
    assert!(
        received.bytes == expected,
        "the bytes differ from what the peer sent"
    );
    match &received.ended {
        Some(Error::ConnectionClosed { code, reason: got }) => {
            assert_eq!(*code, CloseCode(4000));
            assert_eq!(got, reason, "the peer's close reason carries its verdict");
        }
        other => panic!("expected a close with 4000, got {other:?}"),
    }
}

/// Runs a peer process to the end against an echo server; returns what the server received.
async fn run_against(mut peer: Command, what: &str) -> Received {
    let (listener, url) = listen().await;
    let server = async_std::task::spawn(echo_once(listener));
    peer.arg(&url).arg(sizes_arg()).arg("4000").arg(what);
    peer.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = peer.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
    // The peer scripts give up by themselves after 60 s.
    let output = within(
        what,
        async_std::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("wait for the peer");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("RESULT ok"),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    within("echo server", server).await
}

#[async_std::test]
async fn node_ws_client_echoes_through_a_wsio_server() {
    let ws_module = peers_dir().join("node_modules/ws/package.json");
    let Some(node) = find_in_path("node") else {
        available("node", false);
        return;
    };
    if !available(
        "the npm package ws (tests/peers/node_modules)",
        ws_module.is_file(),
    ) {
        return;
    }
    let mut peer = Command::new(node);
    peer.arg(peers_dir().join("ws_echo_client.mjs"));
    let received = run_against(peer, "node").await;
    assert_received(&received, "node ok");
}

#[async_std::test]
async fn python_websockets_client_echoes_through_a_wsio_server() {
    let python = peers_dir().join(".venv/bin/python");
    let found = python.is_file()
        && Command::new(&python)
            .args(["-c", "import websockets"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !available("Python websockets (tests/peers/.venv)", found) {
        return;
    }
    let mut peer = Command::new(python);
    peer.arg(peers_dir().join("websockets_echo_client.py"));
    let received = run_against(peer, "python").await;
    assert_received(&received, "python ok");
}

/// Kills the browser and its helper processes (its own process group) however the test ends.
struct Browser {
    child: std::process::Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Serves the test page to every request on `listener` (404 for anything else).
async fn serve_page(listener: TcpListener) {
    let page = std::fs::read(peers_dir().join("chromium_echo.html")).expect("read the page");
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let page = page.clone();
        async_std::task::spawn(async move {
            let mut head = Vec::new();
            let mut byte = [0; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                match tcp.read(&mut byte).await {
                    Ok(1) => head.push(byte[0]),
                    _ => return,
                }
            }
            let response = if head.starts_with(b"GET /?") {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    page.len()
                )
                .into_bytes();
                r.extend_from_slice(&page);
                r
            } else {
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
            };
            let _ = tcp.write_all(&response).await;
            let _ = tcp.close().await;
        });
    }
}

#[async_std::test]
async fn chromium_page_echoes_through_a_wsio_server() {
    let chromium = find_in_path("chromium")
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file()));
    let Some(chromium) = chromium else {
        available("chromium (Debian package)", false);
        return;
    };
    let (ws_listener, ws_url) = listen().await;
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let page_url = format!(
        "http://{}/?ws={ws_url}&sizes={}&code=4000&reason=chromium",
        http.local_addr().expect("http addr"),
        sizes_arg()
    );
    async_std::task::spawn(serve_page(http));
    let server = async_std::task::spawn(echo_once(ws_listener));

    // A fresh profile, named by our process and the (unique while bound) WebSocket port.
    let profile = std::env::temp_dir().join(format!(
        "wsio-chromium-{}-{}",
        std::process::id(),
        ws_listener_port(&ws_url)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).expect("profile dir");
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(&page_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromium")
    };
    let browser = Browser { child, profile };
    // Starting a browser on a loaded machine is slow: the safety net is generous.
    let received = match async_std::future::timeout(STEP * 2, server).await {
        Ok(received) => received,
        Err(_) => panic!("chromium did not finish the echo within {:?}", STEP * 2),
    };
    drop(browser);
    assert_received(&received, "chromium ok");
}

/// The port of a `ws://127.0.0.1:PORT/` URL (to name the browser profile uniquely).
fn ws_listener_port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(0)
}
