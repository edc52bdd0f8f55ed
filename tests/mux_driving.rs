//! Who drives a connection, over real TCP: with a spawned driver (`run()`), a stream's traffic
//! never polls the tasks parked on other streams; without one, every waiting task can drive and
//! none can be stranded. Each hazard a driving mode must survive is tested in that mode.

use crate::common;

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use common::{conn_pair, pattern, within};
use futures::{channel::oneshot, AsyncReadExt, AsyncWriteExt, FutureExt};
use ws_stream_mux::{Config, Connection, WsStream};

/// A future that counts its polls and says when it first had to wait.
struct Parked<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
    on_wait: Option<Arc<Countdown>>,
}

impl<F: Future> Future for Parked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let polled = self.inner.as_mut().poll(cx);
        if polled.is_pending() {
            if let Some(countdown) = self.on_wait.take() {
                countdown.tick();
            }
        }
        polled
    }
}

fn parked<F: Future>(inner: F, polls: &Arc<AtomicUsize>, on_wait: &Arc<Countdown>) -> Parked<F> {
    Parked {
        inner: Box::pin(inner),
        polls: Arc::clone(polls),
        on_wait: Some(Arc::clone(on_wait)),
    }
}

/// Completes once it was ticked `n` times.
struct Countdown {
    left: AtomicUsize,
    done: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl Countdown {
    fn new(n: usize) -> (Arc<Self>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let countdown = Arc::new(Self {
            left: AtomicUsize::new(n),
            done: std::sync::Mutex::new(Some(tx)),
        });
        (countdown, rx)
    }

    fn tick(&self) {
        if self.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Some(tx) = self.done.lock().unwrap().take() {
                let _ = tx.send(());
            }
        }
    }
}

/// Both ends with a spawned driver each, room for thousands of streams.
async fn driven_pair(config: Config) -> (Connection, Connection) {
    let config = config.max_streams(4096);
    let (client, server) = conn_pair(config.clone(), config).await;
    async_std::task::spawn(client.run());
    async_std::task::spawn(server.run());
    (client, server)
}

/// Opens `n` streams from the client, each announced to the server with one byte; returns the
/// client's and the server's ends.
async fn idle_streams(
    client: &Connection,
    server: &Connection,
    n: usize,
) -> (Vec<WsStream>, Vec<WsStream>) {
    let opener = async {
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let mut stream = client.open().await.expect("open");
            stream.write_all(b"!").await.expect("announce");
            streams.push(stream);
        }
        streams
    };
    let acceptor = async {
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let mut stream = server.accept().await.expect("accept");
            let mut byte = [0u8];
            stream.read_exact(&mut byte).await.expect("announcement");
            streams.push(stream);
        }
        streams
    };
    futures::join!(opener, acceptor)
}

/// Parks a task in `read()` on each stream, counting the polls; returns once every read is
/// parked. The tasks end when their stream ends.
async fn park_reads(streams: Vec<WsStream>, polls: &Arc<AtomicUsize>) {
    let (countdown, all_parked) = Countdown::new(streams.len());
    for mut stream in streams {
        let (polls, countdown) = (Arc::clone(polls), Arc::clone(&countdown));
        async_std::task::spawn(async move {
            let mut buf = [0u8; 16];
            let _ = parked(stream.read(&mut buf), &polls, &countdown).await;
        });
    }
    all_parked.await.expect("every read parked");
}

/// Echoes one stream on the server; moves `len` bytes through it from the client and checks
/// them. `halfway` fires once the first half of the echo is back.
async fn echo_through(
    client: &Connection,
    server: &Connection,
    len: usize,
    halfway: Option<oneshot::Sender<()>>,
) {
    let echo = async {
        let stream = server.accept().await.expect("accept the active stream");
        let (mut writer, mut reader) = stream.into_split();
        futures::io::copy(&mut reader, &mut writer)
            .await
            .expect("echo");
        writer.close().await.expect("echo FIN");
    };
    let drive = async {
        let stream = client.open().await.expect("open the active stream");
        let (mut writer, mut reader) = stream.into_split();
        let data = pattern(7, len);
        let write = async {
            writer.write_all(&data).await.expect("write");
            writer.close().await.expect("FIN");
        };
        let read = async {
            let mut got = vec![0u8; len / 2];
            reader.read_exact(&mut got).await.expect("the first half");
            if let Some(halfway) = halfway {
                let _ = halfway.send(());
            }
            reader.read_to_end(&mut got).await.expect("the rest");
            got
        };
        let ((), got) = futures::join!(write, read);
        assert!(got == data, "the echo differs");
    };
    futures::join!(echo, drive);
}

#[async_std::test]
async fn with_a_driver_idle_reads_are_not_polled_by_other_streams_traffic() {
    within("idle reads", async {
        const IDLE: usize = 2_000;
        let (client, server) = driven_pair(Config::default()).await;
        let (client_ends, server_ends) = idle_streams(&client, &server, IDLE).await;
        let polls = Arc::new(AtomicUsize::new(0));
        park_reads(client_ends, &polls).await;
        park_reads(server_ends, &polls).await;
        let before = polls.load(Ordering::SeqCst);

        echo_through(&client, &server, 16 << 20, None).await;

        let extra = polls.load(Ordering::SeqCst) - before;
        // 16 MiB each way is hundreds of messages; waking the parked reads for each would poll
        // them hundreds of thousands of times.
        assert!(extra <= 8, "{extra} polls of {} parked reads", 2 * IDLE);
    })
    .await;
}

#[async_std::test]
async fn with_a_driver_idle_accepts_and_credit_blocked_writers_are_not_polled() {
    within("idle accepts and writers", async {
        const ACCEPTS: usize = 50;
        const WRITERS: usize = 500;
        let (client, server) = driven_pair(Config::default().window(1024)).await;
        let polls = Arc::new(AtomicUsize::new(0));

        // Tasks parked in accept() on the client, to which the server opens no streams.
        let (countdown, accepts_parked) = Countdown::new(ACCEPTS);
        for _ in 0..ACCEPTS {
            let (client, polls, countdown) =
                (client.clone(), Arc::clone(&polls), Arc::clone(&countdown));
            async_std::task::spawn(async move {
                let _ = parked(client.accept(), &polls, &countdown).await;
            });
        }
        accepts_parked.await.expect("accepts parked");

        // Writers that spent their 1 KiB of credit on streams the server never reads.
        let (client_ends, _server_ends) = idle_streams(&client, &server, WRITERS).await;
        let (countdown, writers_blocked) = Countdown::new(WRITERS);
        for mut stream in client_ends {
            let (polls, countdown) = (Arc::clone(&polls), Arc::clone(&countdown));
            async_std::task::spawn(async move {
                let data = [0u8; 4096];
                let mut countdown = Some(countdown);
                loop {
                    let mut write = Box::pin(stream.write(&data));
                    let outcome = match futures::poll!(write.as_mut()) {
                        Poll::Ready(outcome) => outcome,
                        Poll::Pending => {
                            if let Some(countdown) = countdown.take() {
                                countdown.tick();
                            }
                            let unused = Countdown::new(1).0;
                            parked(write, &polls, &unused).await
                        }
                    };
                    if outcome.is_err() {
                        return;
                    }
                }
            });
        }
        writers_blocked.await.expect("writers blocked on credit");
        // A writer may have been parked before its last credit arrived: let the counts settle by
        // moving one message through the connection first.
        echo_through(&client, &server, 1024, None).await;
        let before = polls.load(Ordering::SeqCst);

        echo_through(&client, &server, 16 << 20, None).await;

        let extra = polls.load(Ordering::SeqCst) - before;
        assert!(
            extra <= 8,
            "{extra} polls of parked accepts and blocked writers"
        );
    })
    .await;
}

#[async_std::test]
async fn dropping_the_drivers_mid_transfer_hands_driving_back_to_the_handles() {
    within("drivers dropped", async {
        let (client, server) = conn_pair(Config::default(), Config::default()).await;
        let (client_driver, client_abort) = futures::future::abortable(client.run());
        let (server_driver, server_abort) = futures::future::abortable(server.run());
        async_std::task::spawn(client_driver);
        async_std::task::spawn(server_driver);
        let (halfway, halfway_rx) = oneshot::channel();
        let abort = async move {
            halfway_rx.await.expect("half of the echo came back");
            client_abort.abort();
            server_abort.abort();
        };
        futures::join!(
            echo_through(&client, &server, 16 << 20, Some(halfway)),
            abort
        );
    })
    .await;
}

#[async_std::test]
async fn without_a_driver_a_task_busy_elsewhere_does_not_stall_the_others() {
    within("busy task", async {
        let (client, server) = conn_pair(Config::default(), Config::default()).await;
        let (mut idle_client, mut idle_server) = {
            let (mut c, mut s) = idle_streams(&client, &server, 1).await;
            (c.remove(0), s.remove(0))
        };
        // Task A polls a read once — it drove the socket and registered — then blocks on
        // something else without dropping the read.
        let (release, released) = oneshot::channel::<()>();
        let busy = async_std::task::spawn(async move {
            let mut buf = [0u8; 8];
            {
                let read = idle_server.read(&mut buf);
                futures::pin_mut!(read);
                assert!(futures::poll!(&mut read).is_pending());
                released.await.expect("released");
            }
            idle_server
        });
        // Meanwhile other tasks move 16 MiB through another stream, driving for themselves.
        echo_through(&client, &server, 16 << 20, None).await;
        release.send(()).expect("release");
        let _ = busy.await;
        idle_client.close().await.expect("FIN");
    })
    .await;
}

#[async_std::test]
async fn without_a_driver_a_read_dropped_mid_transfer_strands_nobody() {
    within("dropped read", async {
        let (client, server) = conn_pair(Config::default(), Config::default()).await;
        let (_client_ends, mut server_ends) = idle_streams(&client, &server, 1).await;
        let mut idle = server_ends.remove(0);
        let (halfway, halfway_rx) = oneshot::channel();
        // A read that takes part in driving, cancelled half way through the transfer.
        let reader = async {
            let mut buf = [0u8; 8];
            futures::select! {
                _ = idle.read(&mut buf).fuse() => panic!("nothing was written to it"),
                _ = halfway_rx.fuse() => {}
            }
        };
        futures::join!(
            echo_through(&client, &server, 16 << 20, Some(halfway)),
            reader
        );
    })
    .await;
}

/// Split halves in separate tasks on both ends through a 64-byte window: a lost wake-up hangs.
async fn split_halves(driven: bool, owned: bool) {
    let config = Config::default().window(64).initial_window(64);
    let (client, server) = conn_pair(config.clone(), config).await;
    if driven {
        async_std::task::spawn(client.run());
        async_std::task::spawn(server.run());
    }
    const LEN: usize = 256 * 1024;
    let echo = async_std::task::spawn({
        let server = server.clone();
        async move {
            let stream = server.accept().await.expect("accept");
            let (mut writer, mut reader) = stream.into_split();
            futures::io::copy(&mut reader, &mut writer)
                .await
                .expect("echo");
            writer.close().await.expect("echo FIN");
        }
    });
    let stream = client.open().await.expect("open");
    let data = pattern(3, LEN);
    let got = if owned {
        let (mut writer, mut reader) = stream.into_split();
        let write = async_std::task::spawn({
            let data = data.clone();
            async move {
                writer.write_all(&data).await.expect("write");
                writer.close().await.expect("FIN");
            }
        });
        let read = async_std::task::spawn(async move {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.expect("read");
            got
        });
        write.await;
        read.await
    } else {
        let (mut reader, mut writer) = stream.split();
        let write = async_std::task::spawn({
            let data = data.clone();
            async move {
                writer.write_all(&data).await.expect("write");
                writer.close().await.expect("FIN");
            }
        });
        let read = async_std::task::spawn(async move {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.expect("read");
            got
        });
        write.await;
        read.await
    };
    echo.await;
    assert!(got == data, "the echo differs");
}

#[async_std::test]
async fn split_halves_in_separate_tasks_in_every_mode() {
    within("split halves", async {
        for driven in [false, true] {
            for owned in [false, true] {
                split_halves(driven, owned).await;
            }
        }
    })
    .await;
}
