//! Fault injection for tests: a TCP proxy on 127.0.0.1 between a client and a server, each of
//! whose directions can be stalled, sliced into 1-byte segments, chunked at random, delayed, and
//! cut — closed or reset — after a given number of bytes or on command, at any point.
//!
//! The proxy runs on plain threads with blocking sockets, outside the async runtime under test:
//! a loaded or starved executor cannot slow the faults down, and what the proxy forwards does not
//! depend on how the test's tasks are scheduled. Each proxied connection (a [`Link`]) has two
//! threads, one per direction, each reading from one socket and writing to the other.
//!
//! ```text
//!   client ──── Up ────►  proxy  ──── Up ────►  server
//!   client ◄─── Down ───  (Link)  ◄─── Down ───  server
//! ```
//!
//! What a link starts with is a [`Plan`] set on the [`Proxy`] before the client connects (a cut
//! during the HTTP handshake must be in place before its first byte); everything can be changed
//! through the [`Link`] while the connection runs. [`wire`] reads a recorded direction back as
//! an HTTP head and WebSocket frames; [`rig`] puts a server behind a proxy and has the moves the
//! tests share.
#![allow(dead_code)] // each test uses a part

pub mod rig;
pub mod wire;

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Condvar, Mutex, MutexGuard,
    },
    thread,
    time::Duration,
};

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;

/// A direction of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the client to the server.
    Up,
    /// From the server to the client.
    Down,
}

impl Dir {
    pub const BOTH: [Dir; 2] = [Dir::Up, Dir::Down];

    fn index(self) -> usize {
        match self {
            Dir::Up => 0,
            Dir::Down => 1,
        }
    }
}

/// How a link is cut. Either way both ends lose the connection at once, without any further
/// byte; they differ in what TCP tells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A FIN to each end: reads see the end of the stream.
    Close,
    /// An RST to each end: reads and writes fail with "connection reset".
    Reset,
}

/// How the bytes of one direction are cut into writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// As they were read, in one write.
    #[default]
    AsRead,
    /// One byte per write, each its own TCP segment (the proxy's sockets are `TCP_NODELAY`).
    Bytes,
    /// Pieces of 1 to `max_piece` bytes, each after a pause of up to `max_pause`, drawn from a
    /// generator seeded with `seed`: the same seed slices the same bytes the same way.
    Random {
        seed: u64,
        max_piece: usize,
        max_pause: Duration,
    },
}

/// The faults of one direction.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// How forwarded bytes are cut into writes.
    pub shape: Shape,
    /// A pause before every write.
    pub delay: Duration,
    /// Nothing is forwarded (nor read) until released.
    pub stalled: bool,
    /// Cut the link the moment this many bytes (counted from the connection's first byte in
    /// this direction) have been forwarded; with 0, before the first.
    pub cut_after: Option<(u64, Cut)>,
    /// Keep a copy of everything forwarded, for [`Link::transcript`].
    pub record: bool,
}

/// What a new link starts with, per direction.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub up: Faults,
    pub down: Faults,
}

impl Plan {
    /// No fault, both directions recorded.
    pub fn record() -> Self {
        let record = Faults {
            record: true,
            ..Faults::default()
        };
        Plan {
            up: record.clone(),
            down: record,
        }
    }

    /// Cut the link once `bytes` bytes went `dir`.
    pub fn cut_after(dir: Dir, bytes: u64, how: Cut) -> Self {
        let mut plan = Plan::default();
        plan.faults_mut(dir).cut_after = Some((bytes, how));
        plan
    }

    /// Both directions shaped alike.
    pub fn shaped(shape: Shape) -> Self {
        let faults = Faults {
            shape,
            ..Faults::default()
        };
        Plan {
            up: faults.clone(),
            down: faults,
        }
    }

    pub fn faults_mut(&mut self, dir: Dir) -> &mut Faults {
        match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        }
    }
}

/// The receive buffer of the proxy's sockets. The kernel would otherwise grow it, up to
/// `tcp_rmem`'s maximum (32 MiB on some machines), so that a stalled direction would absorb an
/// unknown amount before the sender feels it. With it fixed, what a stalled direction holds is
/// bounded by this plus the sender's own send buffer (at most `wmem_max`, 4 MiB by default).
const RECEIVE_BUFFER: u32 = 64 * 1024;

/// How long a blocked write waits before it looks again whether the link was cut: a write to an
/// end that does not read blocks, and a cut must still end it.
const WRITE_RECHECK: Duration = Duration::from_millis(20);

/// How long [`Proxy::next_link`] waits: a generous safety net, like the tests' own.
const SAFETY: Duration = Duration::from_secs(60);

/// A proxy on an ephemeral port of 127.0.0.1 that forwards every connection to `upstream`.
pub struct Proxy {
    addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    links: mpsc::UnboundedReceiver<Link>,
    stopping: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `upstream` whose links start without faults.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let plan = Arc::new(Mutex::new(Plan::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (found, links) = mpsc::unbounded();
        let (accept_plan, accept_stopping) = (Arc::clone(&plan), Arc::clone(&stopping));
        thread::spawn(move || {
            for client in listener.incoming() {
                if accept_stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let plan = lock(&accept_plan).clone();
                // The test may have stopped listening for links; the link runs regardless.
                let _ = found.unbounded_send(Link::run(client, server, plan));
            }
        });
        Proxy {
            addr,
            plan,
            links,
            stopping,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The plan for the links accepted from now on.
    pub fn set_plan(&self, plan: Plan) {
        *lock(&self.plan) = plan;
    }

    /// The control of the next connection the proxy accepted, in the order they came.
    pub async fn next_link(&mut self) -> Link {
        match async_std::future::timeout(SAFETY, self.links.next()).await {
            Ok(Some(link)) => link,
            Ok(None) => panic!("the proxy's accept thread ended"),
            Err(_) => panic!("no connection reached the proxy within {SAFETY:?}"),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Wake the accept thread so that it sees it should end.
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One proxied connection, and the test's control of it. Cheap to clone.
#[derive(Clone)]
pub struct Link {
    shared: Arc<LinkShared>,
}

struct LinkShared {
    state: Mutex<LinkState>,
    /// Signalled when a stall is released or the link is cut.
    changed: Condvar,
}

struct LinkState {
    dirs: [DirState; 2],
    /// The link's two sockets (the client's end, the server's end), until it is cut or over.
    /// The forwarding threads hold their own handles; the last one closed ends the connection.
    sockets: Option<(TcpStream, TcpStream)>,
    /// Bytes forwarded each way when the link was cut.
    cut_at: Option<[u64; 2]>,
    /// Tests waiting until enough bytes went one way.
    forwarded_waiters: Vec<(Dir, u64, oneshot::Sender<()>)>,
    /// Tests waiting for the cut.
    cut_waiters: Vec<oneshot::Sender<[u64; 2]>>,
    /// Who still holds handles of the sockets: the two forwarding threads and `sockets`. The
    /// kernel ends a connection (FIN or RST) only once its last handle is closed.
    holders: usize,
    /// Tests waiting until nobody does.
    released_waiters: Vec<oneshot::Sender<()>>,
}

impl LinkState {
    /// One holder closed its handles; once none is left, both ends have been told.
    fn let_go(&mut self) {
        self.holders -= 1;
        if self.holders == 0 {
            for waiter in self.released_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

struct DirState {
    faults: Faults,
    forwarded: u64,
    transcript: Vec<u8>,
    /// The random shape's generator state.
    rng: u64,
    /// The sending end finished (FIN); it was passed on.
    ended: bool,
}

impl Link {
    fn run(client: TcpStream, server: TcpStream, plan: Plan) -> Link {
        for socket in [&client, &server] {
            socket.set_nodelay(true).expect("nodelay");
            socket
                .set_write_timeout(Some(WRITE_RECHECK))
                .expect("write timeout");
            set_receive_buffer(socket, RECEIVE_BUFFER).expect("receive buffer");
        }
        let dir_state = |faults: Faults| DirState {
            rng: match faults.shape {
                Shape::Random { seed, .. } => seed | 1,
                _ => 1,
            },
            faults,
            forwarded: 0,
            transcript: Vec::new(),
            ended: false,
        };
        let link = Link {
            shared: Arc::new(LinkShared {
                state: Mutex::new(LinkState {
                    dirs: [dir_state(plan.up), dir_state(plan.down)],
                    sockets: Some((
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    )),
                    cut_at: None,
                    forwarded_waiters: Vec::new(),
                    cut_waiters: Vec::new(),
                    holders: 3,
                    released_waiters: Vec::new(),
                }),
                changed: Condvar::new(),
            }),
        };
        // A cut after 0 bytes happens before anything is read.
        for dir in Dir::BOTH {
            let cut_after = link.lock().dirs[dir.index()].faults.cut_after;
            if let Some((0, how)) = cut_after {
                link.cut(how);
            }
        }
        let clones = |a: &TcpStream, b: &TcpStream| {
            (a.try_clone().expect("clone"), b.try_clone().expect("clone"))
        };
        let (up_from, up_to) = clones(&client, &server);
        // `forward` closes its handles when it returns.
        let up = link.clone();
        thread::spawn(move || {
            up.forward(Dir::Up, up_from, up_to);
            up.lock().let_go();
        });
        let down = link.clone();
        thread::spawn(move || {
            down.forward(Dir::Down, server, client);
            down.lock().let_go();
        });
        link
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        lock(&self.shared.state)
    }

    /// Stops forwarding `dir` (and reading from its sender) until [`release`](Self::release).
    pub fn stall(&self, dir: Dir) {
        self.lock().dirs[dir.index()].faults.stalled = true;
    }

    /// Forwards `dir` again.
    pub fn release(&self, dir: Dir) {
        self.lock().dirs[dir.index()].faults.stalled = false;
        self.shared.changed.notify_all();
    }

    /// Changes how `dir` is cut into writes.
    pub fn set_shape(&self, dir: Dir, shape: Shape) {
        let mut state = self.lock();
        let faults = &mut state.dirs[dir.index()];
        if let Shape::Random { seed, .. } = shape {
            faults.rng = seed | 1;
        }
        faults.faults.shape = shape;
    }

    /// Pauses `dir` for `delay` before every write.
    pub fn set_delay(&self, dir: Dir, delay: Duration) {
        self.lock().dirs[dir.index()].faults.delay = delay;
    }

    /// Cuts the link once `bytes` bytes in all went `dir` (at once if they already have).
    pub fn cut_after(&self, dir: Dir, bytes: u64, how: Cut) {
        let already = {
            let mut state = self.lock();
            let faults = &mut state.dirs[dir.index()];
            faults.faults.cut_after = Some((bytes, how));
            faults.forwarded >= bytes
        };
        if already {
            self.cut(how);
        }
    }

    /// Cuts the link now: no further byte goes either way, and both ends lose the connection.
    pub fn cut(&self, how: Cut) {
        let sockets = {
            let mut state = self.lock();
            if state.cut_at.is_some() {
                return;
            }
            let at = [state.dirs[0].forwarded, state.dirs[1].forwarded];
            state.cut_at = Some(at);
            for waiter in state.cut_waiters.drain(..) {
                let _ = waiter.send(at);
            }
            state.sockets.take()
        };
        self.shared.changed.notify_all();
        let Some((client, server)) = sockets else {
            return; // both ends had already finished
        };
        for socket in [&client, &server] {
            match how {
                Cut::Close => {
                    let _ = socket.shutdown(Shutdown::Both);
                }
                Cut::Reset => {
                    // SO_LINGER 0: closing the last handle sends an RST instead of a FIN. A
                    // read shutdown sends nothing and wakes the thread blocked reading, which
                    // then lets go of its handle.
                    let _ = set_zero_linger(socket);
                    let _ = socket.shutdown(Shutdown::Read);
                }
            }
        }
        drop((client, server));
        self.lock().let_go();
    }

    /// Resolves once the proxy closed every handle of both sockets: after a cut, both ends have
    /// been sent their FIN or RST (the threads let go at their own pace, one end before the
    /// other).
    pub async fn released(&self) {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            if state.holders == 0 {
                return;
            }
            state.released_waiters.push(tx);
        }
        let _ = rx.await;
    }

    /// Bytes forwarded `dir` so far.
    pub fn forwarded(&self, dir: Dir) -> u64 {
        self.lock().dirs[dir.index()].forwarded
    }

    /// Resolves once `bytes` bytes in all went `dir`, or the link was cut or ended first.
    pub async fn forwarded_at_least(&self, dir: Dir, bytes: u64) {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            let ended = state.cut_at.is_some() || state.dirs[dir.index()].ended;
            if ended || state.dirs[dir.index()].forwarded >= bytes {
                return;
            }
            state.forwarded_waiters.push((dir, bytes, tx));
        }
        // A sender dropped unfired means the link is gone: nothing more will come either.
        let _ = rx.await;
    }

    /// Resolves once the link was cut, with the bytes forwarded each way (up, down) by then;
    /// `None` if both ends finished without a cut.
    pub async fn was_cut(&self) -> Option<[u64; 2]> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            if state.cut_at.is_some() || state.dirs.iter().all(|d| d.ended) {
                return state.cut_at;
            }
            state.cut_waiters.push(tx);
        }
        rx.await.ok()
    }

    /// Bytes forwarded each way when the link was cut, if it was.
    pub fn cut_at(&self) -> Option<[u64; 2]> {
        self.lock().cut_at
    }

    /// Everything forwarded `dir`, if the plan recorded it.
    pub fn transcript(&self, dir: Dir) -> Vec<u8> {
        self.lock().dirs[dir.index()].transcript.clone()
    }

    /// The thread of one direction: reads what `from` sends and forwards it to `to`, faults
    /// applied, until either end finishes or the link is cut.
    fn forward(&self, dir: Dir, mut from: TcpStream, mut to: TcpStream) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // A stalled direction reads nothing either: what the sender writes waits in TCP.
            if !self.wait_while_stalled(dir) {
                return;
            }
            let n = match from.read(&mut buf) {
                // A cut wakes this read too: then nothing is passed on (a FIN would spoil a reset).
                Ok(_) | Err(_) if self.lock().cut_at.is_some() => return,
                Ok(0) => return self.pass_on_end(dir, &to),
                Ok(n) => n,
                // The sending end reset the connection: the other end loses it too.
                Err(_) => return self.cut(Cut::Reset),
            };
            if !self.send(dir, &buf[..n], &mut to) {
                return;
            }
        }
    }

    /// Waits while `dir` is stalled; `false` once the link is cut.
    fn wait_while_stalled(&self, dir: Dir) -> bool {
        let mut state = self.lock();
        while state.cut_at.is_none() && state.dirs[dir.index()].faults.stalled {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.cut_at.is_none()
    }

    /// Forwards `bytes` piece by piece as the direction's faults say; `false` once the link is
    /// cut (by the test, by the byte limit, or because an end failed).
    fn send(&self, dir: Dir, mut bytes: &[u8], to: &mut TcpStream) -> bool {
        while !bytes.is_empty() {
            if !self.wait_while_stalled(dir) {
                return false;
            }
            let (piece, pause, limit_reached) = self.next_piece(dir, bytes.len());
            if let Some(how) = limit_reached {
                self.cut(how);
                return false;
            }
            if !pause.is_zero() {
                thread::sleep(pause);
            }
            if !self.write_piece(to, &bytes[..piece]) {
                return false;
            }
            if let Some(how) = self.forwarded_piece(dir, &bytes[..piece]) {
                self.cut(how);
                return false;
            }
            bytes = &bytes[piece..];
        }
        true
    }

    /// The size of the next write (within `available`) and the pause before it; or the cut to
    /// make because the byte limit is reached.
    fn next_piece(&self, dir: Dir, available: usize) -> (usize, Duration, Option<Cut>) {
        let mut state = self.lock();
        let dir_state = &mut state.dirs[dir.index()];
        let (piece, pause) = match dir_state.faults.shape {
            Shape::AsRead => (available, Duration::ZERO),
            Shape::Bytes => (1, Duration::ZERO),
            Shape::Random {
                max_piece,
                max_pause,
                ..
            } => {
                let piece = 1 + (xorshift(&mut dir_state.rng) % max_piece.max(1) as u64) as usize;
                let nanos = max_pause.as_nanos() as u64;
                let pause = if nanos == 0 {
                    0
                } else {
                    xorshift(&mut dir_state.rng) % (nanos + 1)
                };
                (piece, Duration::from_nanos(pause))
            }
        };
        let mut piece = piece.min(available);
        if let Some((limit, how)) = dir_state.faults.cut_after {
            let left = limit.saturating_sub(dir_state.forwarded);
            if left == 0 {
                return (0, Duration::ZERO, Some(how));
            }
            piece = piece.min(left as usize);
        }
        (piece, dir_state.faults.delay + pause, None)
    }

    /// Counts and records a piece that went out; the cut to make if it reached the byte limit.
    fn forwarded_piece(&self, dir: Dir, piece: &[u8]) -> Option<Cut> {
        let mut state = self.lock();
        let dir_state = &mut state.dirs[dir.index()];
        dir_state.forwarded += piece.len() as u64;
        if dir_state.faults.record {
            dir_state.transcript.extend_from_slice(piece);
        }
        let forwarded = dir_state.forwarded;
        let cut = match dir_state.faults.cut_after {
            Some((limit, how)) if forwarded >= limit => Some(how),
            _ => None,
        };
        let mut waiting = Vec::new();
        for (waiting_dir, bytes, tx) in state.forwarded_waiters.drain(..) {
            if waiting_dir == dir && forwarded >= bytes {
                let _ = tx.send(());
            } else {
                waiting.push((waiting_dir, bytes, tx));
            }
        }
        state.forwarded_waiters = waiting;
        cut
    }

    /// Writes all of `piece`, looking every [`WRITE_RECHECK`] whether the link was cut meanwhile
    /// (an end that does not read blocks the write). `false` if it was, or the end is gone.
    fn write_piece(&self, to: &mut TcpStream, mut piece: &[u8]) -> bool {
        while !piece.is_empty() {
            if self.lock().cut_at.is_some() {
                return false;
            }
            match to.write(piece) {
                Ok(n) => piece = &piece[n..],
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    // The receiving end is gone: so is the connection, for the other end too.
                    self.cut(Cut::Reset);
                    return false;
                }
            }
        }
        true
    }

    /// The sender of `dir` finished: the receiver is told (FIN). Once both directions finished,
    /// the link is over.
    fn pass_on_end(&self, dir: Dir, to: &TcpStream) {
        let _ = to.shutdown(Shutdown::Write);
        let mut state = self.lock();
        state.dirs[dir.index()].ended = true;
        // Nothing more will go this way: whoever waits for bytes in it learns now.
        for (waiting_dir, bytes, tx) in std::mem::take(&mut state.forwarded_waiters) {
            if waiting_dir == dir {
                let _ = tx.send(());
            } else {
                state.forwarded_waiters.push((waiting_dir, bytes, tx));
            }
        }
        if state.dirs.iter().all(|d| d.ended) {
            // Over without a cut: nobody waits for one any more.
            if state.sockets.take().is_some() {
                state.let_go();
            }
            state.cut_waiters.clear();
        }
    }
}

/// Sets `SO_RCVBUF` on `socket` (through tokio's socket type, as for the linger), which also
/// turns the kernel's autotuning off for it.
fn set_receive_buffer(socket: &TcpStream, bytes: u32) -> io::Result<()> {
    let handle = tokio::net::TcpSocket::from_std_stream(socket.try_clone()?);
    handle.set_recv_buffer_size(bytes)
}

/// Sets `SO_LINGER` to zero on `socket` (through tokio's socket type, which can set it on any
/// TCP socket), so that its close resets the connection.
fn set_zero_linger(socket: &TcpStream) -> io::Result<()> {
    let handle = tokio::net::TcpSocket::from_std_stream(socket.try_clone()?);
    // The option belongs to the socket, not to this handle, which is closed here.
    handle.set_zero_linger()
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
