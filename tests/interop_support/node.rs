//! Running `tests/interop/peer.js` as a child process: spawn, learn its port, wait for its verdict.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, OnceLock},
    thread::JoinHandle,
    time::Duration,
};

use futures::channel::oneshot;

use super::tls::Tls;

/// How long a Node peer may take for its whole part. The peer's own limit is lower, so it reports
/// what it was waiting for before we give up on it.
const PEER_LIMIT: Duration = Duration::from_secs(150);
const PEER_OWN_LIMIT_MS: u64 = 120_000;

/// Where `.ci/setup/30-interop.sh` installed the Node packages.
fn node_modules() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("WS_STREAM_MUX_INTEROP_NODE_MODULES")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop-node/node_modules")
            });
        assert!(
            dir.join("@matrixai/ws/package.json").is_file(),
            "the Node peers are not installed in {}: run `bash .ci/setup/30-interop.sh` \
             (npm ci of tests/interop/package-lock.json) first",
            dir.display()
        );
        dir
    })
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/peer.js")
}

/// The role the Node peer plays on the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It listens; we connect.
    Server,
    /// We listen; it connects.
    Client,
}

/// A running `peer.js`. Dropping it before [`JsPeer::finish`] kills the process.
pub struct JsPeer {
    what: String,
    child: Arc<Mutex<Child>>,
    listening: Option<oneshot::Receiver<u16>>,
    exited: Option<oneshot::Receiver<std::io::Result<ExitStatus>>>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl JsPeer {
    /// Starts `node peer.js <role> <case> <part> [port] --strict`: the other side is ours and
    /// must follow WIRE.md to the letter.
    pub fn spawn(role: Role, case: &str, part: &str, port: Option<u16>, tls: &Tls) -> Self {
        Self::spawn_with(role, case, part, port, tls, true)
    }

    /// Starts `node peer.js <role> <case> <part> [port]`, checking the other side strictly or
    /// not (a JS peer is not strict: it has quirks).
    pub fn spawn_with(
        role: Role,
        case: &str,
        part: &str,
        port: Option<u16>,
        tls: &Tls,
        strict: bool,
    ) -> Self {
        let role_arg = match role {
            Role::Server => "server",
            Role::Client => "client",
        };
        let mut cmd = Command::new("node");
        cmd.arg(script()).args([role_arg, case, part]);
        if let Some(port) = port {
            cmd.arg(port.to_string());
        }
        if strict {
            cmd.arg("--strict");
        }
        cmd.env("NODE_PATH", node_modules())
            .env("INTEROP_CERT_PEM", &tls.cert_pem)
            .env("INTEROP_KEY_PEM", &tls.key_pem)
            .env("INTEROP_TIMEOUT_MS", PEER_OWN_LIMIT_MS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("node peer.js {role_arg} {case} {part}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot start node ({e}); is Node.js installed?"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let child = Arc::new(Mutex::new(child));

        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_thread = {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = BufReader::new(stderr_pipe).read_to_string(&mut text);
                stderr
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_str(&text);
            })
        };

        // stdout carries `listening <port>` (servers only); its end means the process is exiting.
        let (port_tx, port_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = oneshot::channel();
        {
            let child = child.clone();
            std::thread::spawn(move || {
                let mut port_tx = Some(port_tx);
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(port) = line.strip_prefix("listening ") {
                        if let (Some(tx), Ok(port)) = (port_tx.take(), port.trim().parse()) {
                            let _ = tx.send(port);
                        }
                    }
                }
                let status = child.lock().unwrap_or_else(|p| p.into_inner()).wait();
                let _ = exit_tx.send(status);
            });
        }
        Self {
            what,
            child,
            listening: Some(port_rx),
            exited: Some(exit_rx),
            stderr,
            stderr_thread: Some(stderr_thread),
        }
    }

    /// The port a server peer listens on.
    pub async fn port(&mut self) -> u16 {
        let rx = self.listening.take().expect("port() called twice");
        match async_std::future::timeout(PEER_LIMIT, rx).await {
            Ok(Ok(port)) => port,
            Ok(Err(_)) => {
                let report = self.report().await;
                panic!("{}: exited without listening\n{report}", self.what)
            }
            Err(_) => panic!("{}: did not listen within {PEER_LIMIT:?}", self.what),
        }
    }

    /// Waits for the peer to exit and fails the test unless it exited 0 (its part went as
    /// expected).
    pub async fn finish(mut self) {
        let report = self.report().await;
        assert!(
            report.starts_with("exit status: 0"),
            "{}: failed\n{report}",
            self.what
        );
        if std::env::var_os("INTEROP_TRACE").is_some() {
            // The peer traced every message; show it (run with --nocapture to see it).
            eprintln!("{}:\n{report}", self.what);
        }
    }

    /// After our side failed: gives the peer `grace` to notice and exit, kills it otherwise, and
    /// returns what it said.
    pub async fn report_after_failure(mut self, grace: Duration) -> String {
        let report = self.report_within(grace).await;
        format!("{}:\n{report}", self.what)
    }

    async fn report(&mut self) -> String {
        self.report_within(PEER_LIMIT).await
    }

    /// Waits for the exit and returns its status followed by the peer's stderr.
    async fn report_within(&mut self, limit: Duration) -> String {
        let Some(exited) = self.exited.take() else {
            return "already reported".into();
        };
        let status = match async_std::future::timeout(limit, exited).await {
            Ok(Ok(Ok(status))) => format!("{status}"),
            Ok(Ok(Err(e))) => format!("cannot wait for it: {e}"),
            Ok(Err(_)) => "lost track of it".into(),
            Err(_) => {
                self.kill();
                format!("still running after {limit:?}; killed")
            }
        };
        if let Some(thread) = self.stderr_thread.take() {
            let _ = thread.join();
        }
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        format!("{status}\n--- stderr of the Node peer ---\n{stderr}")
    }

    fn kill(&self) {
        // Ends only our own child, by its handle; an error means it already exited.
        let _ = self.child.lock().unwrap_or_else(|p| p.into_inner()).kill();
    }
}

impl Drop for JsPeer {
    fn drop(&mut self) {
        if self.exited.is_some() {
            self.kill();
        }
    }
}
