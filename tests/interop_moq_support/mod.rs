//! Plumbing for `tests/interop_moq.rs`: the @moq/qmux Node peer (`tests/interop_moq/peer.mjs`)
//! as a child process, the bytes both sides agree on, and (in `browser`) headless Chromium with a
//! static file server for its page.

pub mod browser;

use std::{
    future::Future,
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, OnceLock},
    thread::JoinHandle,
    time::Duration,
};

use futures::channel::oneshot;

/// A generous safety net for one step: a step that needs it has hung, and says so.
pub const SAFETY: Duration = Duration::from_secs(60);

/// How long the Node peer may take for its whole part. Its own limit (`MOQ_PEER_TIMEOUT_MS`) is
/// lower, so that it reports what it was waiting for before we give up on it.
const PEER_LIMIT: Duration = Duration::from_secs(60);
const PEER_OWN_LIMIT_MS: u64 = 40_000;

/// Runs `fut` under the safety timeout, panicking loudly if it hangs.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(SAFETY, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: still not done after {SAFETY:?} (hang)"))
}

/// `len` bytes of xorshift32 output seeded by `seed`: `pattern()` in `peer.mjs` and in the
/// Chromium page computes the same bytes, so each side can check what the other sent.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b1).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Where `.ci/setup/31-moq.sh` installed @moq/qmux, @moq/web-socket-stream and ws.
pub fn node_modules() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("WS_STREAM_MUX_MOQ_NODE_MODULES")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop-moq/node_modules")
            });
        assert!(
            dir.join("@moq/qmux/package.json").is_file(),
            "@moq/qmux is not installed in {}: run `bash .ci/setup/31-moq.sh` \
             (npm ci of tests/interop_moq/package-lock.json) first",
            dir.display()
        );
        dir
    })
}

/// The peers' files: `peer.mjs`, the Chromium page.
pub fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop_moq")
}

/// The role the Node peer plays on the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It listens; we connect.
    Server,
    /// We listen; it connects.
    Client,
}

/// How a Node peer ended: its exit status and everything it logged.
#[derive(Debug, Clone)]
pub struct Exit {
    pub success: bool,
    pub report: String,
}

/// A running `peer.mjs`. Dropping it before it exited kills the process.
pub struct NodePeer {
    what: String,
    child: Arc<Mutex<Child>>,
    listening: Option<oneshot::Receiver<u16>>,
    exited: Option<oneshot::Receiver<std::io::Result<ExitStatus>>>,
    exit: Option<Exit>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl NodePeer {
    /// Starts `node peer.mjs <role> <case> [port]`.
    pub fn spawn(role: Role, case: &str, port: Option<u16>) -> Self {
        let role_arg = match role {
            Role::Server => "server",
            Role::Client => "client",
        };
        let mut cmd = Command::new("node");
        cmd.arg(peer_dir().join("peer.mjs")).args([role_arg, case]);
        if let Some(port) = port {
            cmd.arg(port.to_string());
        }
        cmd.env("MOQ_NODE_MODULES", node_modules())
            .env("MOQ_PEER_TIMEOUT_MS", PEER_OWN_LIMIT_MS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("node peer.mjs {role_arg} {case}");
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
                lock(&stderr).push_str(&text);
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
                let status = lock(&child).wait();
                let _ = exit_tx.send(status);
            });
        }
        Self {
            what,
            child,
            listening: Some(port_rx),
            exited: Some(exit_rx),
            exit: None,
            stderr,
            stderr_thread: Some(stderr_thread),
        }
    }

    /// The port a server peer listens on.
    pub async fn port(&mut self) -> u16 {
        let rx = self.listening.take().expect("port() called twice");
        match tokio::time::timeout(PEER_LIMIT, rx).await {
            Ok(Ok(port)) => port,
            Ok(Err(_)) => {
                let exit = self.exit().await;
                panic!("{}: exited without listening\n{}", self.what, exit.report)
            }
            Err(_) => panic!("{}: did not listen within {PEER_LIMIT:?}", self.what),
        }
    }

    /// Waits (without a limit: race it or wrap it) until the process exited, and says how.
    pub async fn exit(&mut self) -> Exit {
        if let Some(exit) = &self.exit {
            return exit.clone();
        }
        // Polled in place, so that a caller racing this against something else (and dropping
        // it) can wait again later.
        let exited = self.exited.as_mut().expect("set until the exit is known");
        let outcome = exited.await;
        self.exited = None;
        let (success, status) = match outcome {
            Ok(Ok(status)) => (status.success(), format!("{status}")),
            Ok(Err(e)) => (false, format!("cannot wait for it: {e}")),
            Err(_) => (false, "lost track of it".to_owned()),
        };
        if let Some(thread) = self.stderr_thread.take() {
            let _ = thread.join();
        }
        let report = format!(
            "{}: {status}\n--- stderr of the Node peer ---\n{}",
            self.what,
            lock(&self.stderr)
        );
        let exit = Exit { success, report };
        self.exit = Some(exit.clone());
        exit
    }

    /// Waits for the peer to exit and fails the test unless it exited 0 (its part went as
    /// expected).
    pub async fn finish(mut self) {
        let exit = match tokio::time::timeout(PEER_LIMIT, self.exit()).await {
            Ok(exit) => exit,
            Err(_) => {
                self.kill();
                panic!("{}: still running after {PEER_LIMIT:?}; killed", self.what)
            }
        };
        assert!(exit.success, "the Node peer failed\n{}", exit.report);
        if std::env::var_os("MOQ_TRACE").is_some() {
            // Run with --nocapture to see what the peer did.
            eprintln!("{}", exit.report);
        }
    }

    /// After our side failed: gives the peer `grace` to notice and exit, kills it otherwise, and
    /// returns what it said.
    pub async fn report_after_failure(mut self, grace: Duration) -> String {
        match tokio::time::timeout(grace, self.exit()).await {
            Ok(exit) => exit.report,
            Err(_) => {
                self.kill();
                let exit = self.exit().await;
                format!("(killed after {grace:?})\n{}", exit.report)
            }
        }
    }

    fn kill(&self) {
        // Ends only our own child, by its handle; an error means it already exited.
        let _ = lock(&self.child).kill();
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.kill();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
