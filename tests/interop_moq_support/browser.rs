//! Headless Chromium for the page test: where it is, running it on a URL in a fresh profile (its
//! whole process group killed on drop), and a small static HTTP server for the page, the
//! @moq packages' files (loaded as they are published, through an import map) and the page's
//! progress reports.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use futures::channel::mpsc;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::{node_modules, peer_dir};

/// Chromium's path, or `None` when it is not installed: then the test is skipped with a loud
/// message, except in CI (`CI=true`), where that is a failure.
pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromium"))
                .find(|p| p.is_file())
        })
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.is_file()));
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "chromium is not installed, and CI must run this test (see .ci/setup/20-peers.sh)"
            );
        }
        // Straight to the process's stderr: the harness swallows a passing test's output.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n******** SKIPPED: chromium is not installed; \
             run `bash .ci/setup/20-peers.sh` ********\n"
        );
    }
    found
}

/// A headless Chromium showing one page. Dropping it kills the browser and its helper processes
/// (its own process group) and removes its profile.
pub struct Browser {
    child: Child,
    profile: PathBuf,
}

impl Browser {
    /// Opens `url` in a fresh profile named `name` (unique per test run).
    pub fn open(chromium: &Path, url: &str, name: &str) -> Self {
        let profile =
            std::env::temp_dir().join(format!("moq-chromium-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromium");
        Self { child, profile }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group is the one Chromium leads (process_group(0)): only processes we started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Serves, on `listener`, until the test ends:
/// - `/` and `/?…`: the page `tests/interop_moq/<page>`;
/// - `/node_modules/@moq/qmux/<file>.js` and `/node_modules/@moq/web-socket-stream/<file>.js`:
///   the installed packages' files, as JavaScript modules;
/// - `/report?<text>`: a line from the page (percent-encoded), handed to `reports`.
///
/// Everything else is a 404.
pub async fn serve(
    listener: TcpListener,
    page: &'static str,
    reports: mpsc::UnboundedSender<String>,
) {
    let page = std::fs::read(peer_dir().join(page)).expect("read the page");
    while let Ok((tcp, _)) = listener.accept().await {
        let page = page.clone();
        let reports = reports.clone();
        tokio::spawn(answer(tcp, page, reports));
    }
}

async fn answer(mut tcp: TcpStream, page: Vec<u8>, reports: mpsc::UnboundedSender<String>) {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head
        .strip_prefix("GET ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("");
    let (status, kind, body) = if target == "/" || target.starts_with("/?") {
        ("200 OK", "text/html; charset=utf-8", page)
    } else if let Some(text) = target.strip_prefix("/report?") {
        let _ = reports.unbounded_send(percent_decode(text));
        ("204 No Content", "text/plain", Vec::new())
    } else if let Some(file) = package_file(target) {
        match std::fs::read(&file) {
            Ok(body) => ("200 OK", "text/javascript; charset=utf-8", body),
            Err(_) => ("404 Not Found", "text/plain", Vec::new()),
        }
    } else {
        ("404 Not Found", "text/plain", Vec::new())
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let _ = tcp.write_all(&response).await;
    let _ = tcp.shutdown().await;
}

/// The installed file a `/node_modules/…` path names: only the two @moq packages' top-level
/// `.js` files, so that nothing else on the machine can be read through this server.
fn package_file(target: &str) -> Option<PathBuf> {
    let rest = target.strip_prefix("/node_modules/")?;
    let (package, file) = ["@moq/qmux/", "@moq/web-socket-stream/"]
        .into_iter()
        .find_map(|package| Some((package, rest.strip_prefix(package)?)))?;
    let plain = file
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    (plain && file.ends_with(".js") && !file.starts_with('.'))
        .then(|| node_modules().join(package).join(file))
}

/// Decodes `encodeURIComponent` output.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
