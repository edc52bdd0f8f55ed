//! Running `wstest` and the echo peers it tests.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use async_std::net::{TcpListener, TcpStream};
use ws_stream_mux::{
    connect::Connector,
    handshake::{accept, AcceptConfig},
    DataMessage, Error, MessageConfig, MessageSocket,
};

/// The case groups we claim: everything but compression (12.*, 13.*).
pub const CASES: [&str; 10] = [
    "1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*",
];

/// A generous bound on one suite run; the measured time is printed by each test.
const SUITE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The `wstest` installed by `.ci/setup/40-autobahn.sh`, or `None` (after saying so loudly) when
/// it is missing outside CI. Under CI a missing suite is a failure, not a skip.
pub fn wstest() -> Option<PathBuf> {
    let venv = std::env::var_os("AUTOBAHN_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/ws_stream_mux/autobahn-venv")
        });
    let wstest = venv.join("bin/wstest");
    if wstest.is_file() {
        return Some(wstest);
    }
    let message = format!(
        "AUTOBAHN TESTSUITE NOT INSTALLED: {} is missing. Run `bash .ci/setup/40-autobahn.sh` \
         (needs pyenv's CPython 2.7.18) or set AUTOBAHN_VENV.",
        wstest.display()
    );
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{message}");
    }
    eprintln!("\n!!!!!!!!!! SKIPPED: {message}\n");
    None
}

/// An empty directory under cargo's per-test temporary directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// A port nobody listens on right now, for the fuzzingserver (which cannot report a port it
/// chose itself).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local address").port()
}

/// A running `wstest`; dropping it stops the process.
pub struct Wstest {
    child: Option<Child>,
    exited: mpsc::Receiver<()>,
}

impl Wstest {
    pub fn start(wstest: &Path, dir: &Path, mode: &str, spec: &serde_json::Value) -> Self {
        let spec_path = dir.join("spec.json");
        std::fs::write(&spec_path, spec.to_string()).expect("write the spec");
        let log = std::fs::File::create(dir.join("wstest.log")).expect("create the log");
        let child = Command::new(wstest)
            .args(["--mode", mode, "--spec"])
            .arg(&spec_path)
            .arg("--webport=0")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("start wstest");
        let (tell, exited) = mpsc::channel();
        let pid = child.id();
        // A watchdog so that a hung suite fails the test instead of hanging CI: it ends the
        // wstest we started, by its id, if the suite overruns.
        std::thread::spawn(move || {
            let _keep = tell;
            std::thread::sleep(SUITE_TIMEOUT);
            let _ = Command::new("kill").arg(pid.to_string()).status();
        });
        Self {
            child: Some(child),
            exited,
        }
    }

    /// Waits for `wstest` to exit by itself (fuzzingclient mode) and checks that it did not
    /// overrun.
    pub fn wait(mut self) {
        let mut child = self.child.take().expect("started");
        let status = child.wait().expect("wait for wstest");
        assert!(
            self.exited.try_recv().is_err(),
            "wstest overran {SUITE_TIMEOUT:?} and was killed"
        );
        assert!(status.success(), "wstest failed: {status}");
    }
}

impl Drop for Wstest {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The suite's verdicts for one agent, read from its `index.json`.
pub struct Verdicts(BTreeMap<String, (String, String)>);

impl Verdicts {
    pub fn read(index: &Path) -> Self {
        let text = std::fs::read_to_string(index)
            .unwrap_or_else(|e| panic!("read {}: {e}", index.display()));
        let json: serde_json::Value = serde_json::from_str(&text).expect("index.json is JSON");
        let agents = json.as_object().expect("index.json maps agents");
        assert_eq!(agents.len(), 1, "one agent in {}", index.display());
        let cases = agents
            .values()
            .next()
            .and_then(|c| c.as_object())
            .expect("cases");
        let verdict = |case: &serde_json::Value, key: &str| {
            case.get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("MISSING")
                .to_owned()
        };
        Self(
            cases
                .iter()
                .map(|(id, case)| {
                    (
                        id.clone(),
                        (verdict(case, "behavior"), verdict(case, "behaviorClose")),
                    )
                })
                .collect(),
        )
    }

    /// Prints the tally and fails on any FAILED (or missing) verdict.
    pub fn assert_no_failures(&self, who: &str) {
        let mut tally = BTreeMap::<&str, usize>::new();
        for (behavior, close) in self.0.values() {
            *tally.entry(behavior).or_default() += 1;
            *tally
                .entry(if close == "OK" {
                    "close OK"
                } else {
                    "close other"
                })
                .or_default() += 1;
        }
        eprintln!("autobahn {who}: {} cases: {tally:?}", self.0.len());
        let bad: Vec<_> = self
            .0
            .iter()
            .filter(|(_, (b, c))| {
                [b, c]
                    .iter()
                    .any(|v| *v == "FAILED" || *v == "MISSING" || *v == "UNIMPLEMENTED")
            })
            .collect();
        // 1.* to 10.* hold 300-odd cases; far fewer means the suite did not run them.
        assert!(self.0.len() > 250, "only {} cases ran", self.0.len());
        assert!(
            bad.is_empty(),
            "{who}: {} failing cases: {bad:?}",
            bad.len()
        );
    }
}

/// The message settings of the echo peers. The suite sends messages of up to 16 MiB.
fn message_config() -> MessageConfig {
    MessageConfig::default()
}

/// Echoes every message back until the connection ends.
async fn echo(socket: MessageSocket) {
    loop {
        let message: DataMessage = match socket.read().await {
            Ok(message) => message,
            Err(_) => return,
        };
        if socket.write(message).await.is_err() {
            return;
        }
    }
}

/// Starts the echo server on an ephemeral port and returns the port.
pub async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local address").port();
    async_std::task::spawn(async move {
        let config = AcceptConfig::default();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let config = config.clone();
            async_std::task::spawn(async move {
                let _ = tcp.set_nodelay(true);
                if let Ok((ws, _)) = accept(tcp, &config).await {
                    echo(MessageSocket::new(ws, message_config()).expect("valid config")).await;
                }
            });
        }
    });
    port
}

/// Lets the fuzzingserver at `url` run every case against our client, then asks it to write the
/// reports.
pub async fn echo_client(url: &str, port: u16) {
    wait_until_listening(port).await;
    let connector = Connector::default();
    let open = |path: String| {
        let connector = connector.clone();
        async move {
            let (ws, _) = connector
                .connect(path, |address| async move {
                    let tcp = TcpStream::connect(address).await?;
                    tcp.set_nodelay(true)?;
                    Ok(tcp)
                })
                .await
                .expect("connect to the fuzzingserver");
            MessageSocket::new(ws, message_config()).expect("valid config")
        }
    };

    let counter = open(format!("{url}/getCaseCount")).await;
    let count: usize = match counter.read().await.expect("case count") {
        DataMessage::Text(text) => text.as_str().parse().expect("a number"),
        other => panic!("case count came as {other:?}"),
    };
    assert!(count > 250, "the suite offers {count} cases");
    for case in 1..=count {
        echo(open(format!("{url}/runCase?case={case}&agent=ws_stream_mux")).await).await;
    }
    let reporter = open(format!("{url}/updateReports?agent=ws_stream_mux")).await;
    loop {
        match reporter.read().await {
            Ok(_) => continue,
            Err(Error::ConnectionClosed { .. }) => break,
            Err(other) => panic!("updateReports: {other}"),
        }
    }
}

/// Waits (bounded) until the freshly started fuzzingserver accepts connections: it does not
/// announce readiness in any other way.
async fn wait_until_listening(port: u16) {
    for _ in 0..600 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        async_std::task::sleep(Duration::from_millis(100)).await;
    }
    panic!("the fuzzingserver did not listen on port {port} within 60 s");
}
