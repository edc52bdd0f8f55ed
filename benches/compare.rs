//! Side by side, in one process on one machine: raw TCP, raw async-tungstenite,
//! ws_stream_tungstenite 0.15, yamux 0.14 over ws_stream_tungstenite, qmux 0.6 (QMux over
//! WebSocket, under tokio) and this crate (`WsIo`, one `WsStream`, many `WsStream`s, with and
//! without a spawned `run()` driver; under tokio speaking either the @matrixai/ws protocol or
//! QMux-02), over real TCP on 127.0.0.1 with TCP_NODELAY; and TCP through the `tunnel` example
//! against TCP straight to its target.
//!
//! The benchmark is its own package in the workspace (`benches/Cargo.toml`), so that the crates it
//! measures against are no dependencies of the library. From the repository root:
//!
//! ```text
//! cargo bench -p ws_stream_mux_bench --bench compare              # full run
//! cargo bench -p ws_stream_mux_bench --bench compare -- --quick   # quick smoke run (about a minute)
//! WS_BENCH_QUICK=1 cargo bench -p ws_stream_mux_bench --bench compare   # the same
//! cargo bench -p ws_stream_mux_bench --bench compare -- --only qmux     # only what matches
//! ```
//!
//! Run by `cargo test -p ws_stream_mux_bench --benches` (no `--bench` argument), it does the quick
//! run. It prints Markdown tables and the ratios the crate aims for; it never fails on a missed
//! target (only on a broken transfer or a hang), so it can serve as a CI smoke test.

mod support;

use std::{fmt::Write as _, process::Command, time::Duration};

use support::{
    active,
    bulk::{self, Contender},
    measure::{self, Sample},
    rtt,
    runtime::Rt,
    streams, tokio_mux, tunnel, Named,
};

/// Sizes of one run.
struct Plan {
    quick: bool,
    rounds: usize,
    /// Bytes per bulk round.
    bulk_total: u64,
    many_streams: usize,
    many_per_stream: u64,
    many_rounds: usize,
    round_trips: usize,
    opens: usize,
    idle_streams: usize,
    /// One active stream among idle ones: the idle stream counts, rounds, round trips and bulk
    /// echo bytes per round.
    active_idle: Vec<usize>,
    active_rounds: usize,
    active_trips: usize,
    active_bulk: u64,
    /// Bytes per round through the tunnel (and directly), and rounds.
    tunnel_total: u64,
    tunnel_rounds: usize,
    /// Safety net per measurement: a hang fails loudly instead of running for ever.
    limit: Duration,
    /// Only the measurements whose name contains this (`--only TEXT` or `WS_BENCH_ONLY`; several
    /// alternatives separated by `|`), for profiling one of them.
    only: Option<String>,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

impl Plan {
    fn wants(&self, what: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| only.split('|').any(|part| what.contains(part)))
    }

    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                quick,
                rounds: 3,
                bulk_total: 16 * MIB,
                many_streams: 16,
                many_per_stream: MIB,
                many_rounds: 3,
                round_trips: 1_000,
                opens: 1_000,
                idle_streams: 10_000,
                active_idle: vec![0, 1_000],
                active_rounds: 2,
                active_trips: 500,
                active_bulk: 4 * MIB,
                tunnel_total: 16 * MIB,
                tunnel_rounds: 3,
                limit: Duration::from_secs(60),
                only: None,
            }
        } else {
            Plan {
                quick,
                rounds: 5,
                bulk_total: GIB,
                many_streams: 16,
                many_per_stream: 64 * MIB,
                many_rounds: 3,
                round_trips: 10_000,
                opens: 10_000,
                idle_streams: 10_000,
                active_idle: vec![0, 1_000, 10_000],
                active_rounds: 3,
                active_trips: 3_000,
                active_bulk: 64 * MIB,
                tunnel_total: 256 * MIB,
                tunnel_rounds: 5,
                limit: Duration::from_secs(600),
                only: None,
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--idle-child") {
        return idle_child(&args[pos + 1..]);
    }
    let quick = std::env::var("WS_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
        || args.iter().any(|a| a == "--quick")
        // `cargo test --benches` runs this without `--bench`: a smoke run there.
        || !args.iter().any(|a| a == "--bench");
    let mut plan = Plan::new(quick);
    // For iterating on one change: a smaller bulk size than the full run's.
    if let Some(mib) = std::env::var("WS_BENCH_BULK_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        plan.bulk_total = mib * MIB;
        plan.many_per_stream = (mib * MIB / 16).max(MIB);
    }
    plan.only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|pos| args.get(pos + 1).cloned())
        .or_else(|| {
            std::env::var("WS_BENCH_ONLY")
                .ok()
                .filter(|v| !v.is_empty())
        });
    let mut report = Report::default();
    report.header(&plan);

    run_bulk(&plan, &mut report);
    run_many(&plan, &mut report);
    run_rtt(&plan, &mut report);
    run_opens(&plan, &mut report);
    run_idle(&plan, &mut report);
    run_tokio(&plan, &mut report);
    run_qmux(&plan, &mut report);
    run_tunnel(&plan, &mut report);
    run_active(&plan, &mut report);
    report.targets();
}

/// Runs `fut` on async-std under the plan's safety net.
fn block_on<T>(plan: &Plan, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    async_std::task::block_on(async {
        match async_std::future::timeout(plan.limit, fut).await {
            Ok(v) => v,
            Err(_) => panic!("{what}: not done after {:?}: hang", plan.limit),
        }
    })
}

/// Runs `round` for every wanted contender, round after round: A, B, C, then A, B, C again.
/// On a shared machine whose speed drifts, interleaving spreads a slow phase over every
/// contender instead of penalising whichever happened to run during it.
fn interleaved<C: Copy, R>(
    plan: &Plan,
    rounds: usize,
    contenders: &[C],
    name: impl Fn(C) -> String,
    mut round: impl FnMut(C, &str) -> R,
) -> Vec<(C, Vec<R>)> {
    let wanted: Vec<(C, String)> = contenders
        .iter()
        .map(|&c| (c, name(c)))
        .filter(|(_, what)| plan.wants(what))
        .collect();
    let mut results: Vec<(C, Vec<R>)> = wanted.iter().map(|(c, _)| (*c, Vec::new())).collect();
    for _ in 0..rounds {
        for ((contender, what), (_, samples)) in wanted.iter().zip(results.iter_mut()) {
            samples.push(round(*contender, what));
        }
    }
    results
}

/// The median of each contender's rounds, logged.
fn medians<C: Named>(label: &str, results: Vec<(C, Vec<Sample>)>) -> Vec<(C, Sample)> {
    results
        .into_iter()
        .map(|(c, samples)| {
            let m = measure::median(&samples);
            eprintln!(
                "  {label}, {}: {:.3} s (median of {})",
                c.label(),
                m.wall.as_secs_f64(),
                samples.len()
            );
            (c, m)
        })
        .collect()
}

fn mib_per_s(bytes: u64, s: Sample) -> f64 {
    bytes as f64 / MIB as f64 / s.wall.as_secs_f64()
}

fn cpu_per_gib(bytes: u64, s: Sample) -> f64 {
    s.cpu.as_secs_f64() / (bytes as f64 / GIB as f64)
}

fn run_bulk(plan: &Plan, report: &mut Report) {
    for write_size in [64 * KIB as usize, KIB as usize] {
        let label = format!("bulk {write_size} B writes");
        let results = interleaved(
            plan,
            plan.rounds,
            &Contender::BULK,
            |c| format!("{label}, {}", c.name()),
            |c, what| block_on(plan, what, bulk::round(c, plan.bulk_total, write_size)),
        );
        let rows = medians(&label, results);
        report.throughput_table(
            &format!(
                "Bulk, one direction, {} writes, 64 KiB read buffer ({} per round, median of {} rounds, async-std)",
                size(write_size as u64),
                size(plan.bulk_total),
                plan.rounds
            ),
            plan.bulk_total,
            &rows,
        );
        report.bulk.push((write_size, plan.bulk_total, rows));
    }
}

fn run_many(plan: &Plan, report: &mut Report) {
    let total = plan.many_per_stream * plan.many_streams as u64;
    let label = format!("{} streams", plan.many_streams);
    let results = interleaved(
        plan,
        plan.many_rounds,
        &[
            Contender::RawTcp,
            Contender::YamuxOverWst,
            Contender::OursStream,
        ],
        |c| format!("{label}, {}", c.name()),
        |c, what| {
            block_on(
                plan,
                what,
                bulk::many_round(c, plan.many_streams, plan.many_per_stream),
            )
        },
    );
    let rows = medians(&label, results);
    let mut named: Vec<(String, Sample)> = rows
        .iter()
        .map(|(c, m)| {
            let name = match c {
                Contender::RawTcp => format!("raw TCP, {} connections", plan.many_streams),
                Contender::OursStream => format!("ours: {} WsStreams", plan.many_streams),
                other => format!("{}, {} streams", other.name(), plan.many_streams),
            };
            (name, *m)
        })
        .collect();
    report.throughput_table_named(
        &format!(
            "{} streams × {} at once, 64 KiB writes, aggregate (median of {} rounds, async-std)",
            plan.many_streams,
            size(plan.many_per_stream),
            plan.many_rounds
        ),
        total,
        &mut named,
    );
    report.many = Some((total, rows));
}

fn run_rtt(plan: &Plan, report: &mut Report) {
    const ROUNDS: usize = 5;
    let per_round = plan.round_trips.div_ceil(ROUNDS);
    let results = interleaved(
        plan,
        ROUNDS,
        &Contender::ALL,
        |c| format!("64 B round trips, {}", c.name()),
        |c, what| block_on(plan, what, rtt::round_trips(c, per_round)),
    );
    let mut rows = Vec::new();
    for (contender, rounds) in results {
        let mut lat: Vec<Duration> = rounds.into_iter().flatten().collect();
        let median = measure::percentile(&mut lat, 50.0);
        let p99 = measure::percentile(&mut lat, 99.0);
        eprintln!(
            "  64 B round trips, {}: median {median:?}, p99 {p99:?}",
            contender.name()
        );
        rows.push((contender, median, p99));
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### 64-byte request/response round trips ({} sequential, in {ROUNDS} interleaved rounds, async-std)\n",
        per_round * ROUNDS
    );
    let _ = writeln!(t, "| contender | median µs | p99 µs |");
    let _ = writeln!(t, "|---|---:|---:|");
    for (c, median, p99) in &rows {
        let _ = writeln!(
            t,
            "| {} | {:.1} | {:.1} |",
            c.name(),
            micros(*median),
            micros(*p99)
        );
    }
    report.push(t);
    report.rtt = rows;
}

fn run_opens(plan: &Plan, report: &mut Report) {
    const PARALLEL: usize = 16;
    let contenders = [Contender::YamuxOverWst, Contender::OursStream];
    let sequential = interleaved(
        plan,
        3,
        &contenders,
        |c| format!("open/echo/close, {}", c.name()),
        |c, what| block_on(plan, what, streams::open_echo_close(c, plan.opens)),
    );
    let parallel = interleaved(
        plan,
        3,
        &contenders,
        |c| format!("open/echo/close {PARALLEL} at a time, {}", c.name()),
        |c, what| {
            block_on(
                plan,
                what,
                streams::open_echo_close_parallel(c, plan.opens, PARALLEL),
            )
        },
    );
    let rate = |results| -> Vec<(Contender, f64)> {
        medians("open/echo/close (sequential, then 16 at a time)", results)
            .into_iter()
            .map(|(c, m)| (c, plan.opens as f64 / m.wall.as_secs_f64()))
            .collect()
    };
    let (sequential, parallel) = (rate(sequential), rate(parallel));
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### Stream open + 1-byte echo + close both ways ({} streams, median of 3 interleaved rounds, async-std)\n",
        plan.opens
    );
    let _ = writeln!(
        t,
        "| contender | streams per second, one after another | {PARALLEL} at a time |"
    );
    let _ = writeln!(t, "|---|---:|---:|");
    for c in contenders {
        let find = |rows: &[(Contender, f64)]| {
            rows.iter()
                .find(|(r, _)| *r == c)
                .map_or("-".to_owned(), |(_, v)| format!("{v:.0}"))
        };
        if sequential.iter().chain(&parallel).any(|(r, _)| *r == c) {
            let _ = writeln!(
                t,
                "| {} | {} | {} |",
                c.name(),
                find(&sequential),
                find(&parallel)
            );
        }
    }
    report.push(t);
    report.opens = sequential;
    report.opens_parallel = parallel;
}

/// Runs the idle-streams measurement in a fresh process, so that memory the allocator kept from
/// the earlier workloads does not hide what the streams cost.
fn run_idle(plan: &Plan, report: &mut Report) {
    let mut rows = Vec::new();
    for (contender, name) in [
        (Contender::YamuxOverWst, "yamux"),
        (Contender::OursStream, "ours"),
    ] {
        if !plan.wants(&format!("idle streams, {}", contender.name())) {
            continue;
        }
        let exe = std::env::current_exe().expect("own executable");
        let out = Command::new(exe)
            .args(["--idle-child", name, &plan.idle_streams.to_string()])
            .output()
            .expect("run the idle-streams child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let parsed = stdout.lines().find_map(streams::IdleReport::from_line);
        match (out.status.success(), parsed) {
            (true, Some(r)) => {
                eprintln!(
                    "  idle streams, {}: {:.0} B per stream, concurrent echo {:?}",
                    contender.name(),
                    r.per_stream(),
                    r.concurrent
                );
                rows.push((contender, r));
            }
            _ => panic!(
                "idle-streams child for {name} failed ({}):\n{}\n{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### {} idle streams on one connection (fresh process; both ends live in it)\n",
        plan.idle_streams
    );
    let _ = writeln!(
        t,
        "| contender | resident before | after | per stream, both ends | per end | 1-byte echo on all at once |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    for (c, r) in &rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.0} B | {:.0} B | ok, {:.0} ms |",
            c.name(),
            size(r.rss_before),
            size(r.rss_after),
            r.per_stream(),
            r.per_stream() / 2.0,
            r.concurrent.as_secs_f64() * 1000.0
        );
    }
    report.push(t);
    report.idle = rows;
}

fn idle_child(args: &[String]) {
    let contender = match args.first().map(String::as_str) {
        Some("ours") => Contender::OursStream,
        Some("yamux") => Contender::YamuxOverWst,
        other => panic!("--idle-child: unknown contender {other:?}"),
    };
    let n: usize = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .expect("--idle-child: stream count");
    let report = async_std::task::block_on(async {
        async_std::future::timeout(
            Duration::from_secs(300),
            streams::idle_streams(contender, n),
        )
        .await
        .expect("idle streams: hang")
    });
    println!("{}", report.to_line());
}

/// A multi-threaded tokio runtime with 2 workers (one per core of the reference machine).
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `fut` as a task on one of `runtime`'s workers, like the tasks it spawns (not on the
/// thread that blocks: wake-ups to that thread cost a thread hand-off each, which made round trips
/// jump between two modes from round to round), under the plan's safety net. (async-std: spawn
/// the future and `block_on` its handle for the same effect.)
fn on_tokio<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    what: &str,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    runtime.block_on(async {
        match tokio::time::timeout(plan.limit, tokio::spawn(fut)).await {
            Ok(v) => v.unwrap_or_else(|err| panic!("{what}: {err}")),
            Err(_) => panic!("{what}: not done after {:?}: hang", plan.limit),
        }
    })
}

fn run_tokio(plan: &Plan, report: &mut Report) {
    let runtime = tokio_runtime();
    let write_size = 64 * KIB as usize;
    let results = interleaved(
        plan,
        plan.rounds,
        &[
            Contender::RawTungstenite,
            Contender::OursWsIo,
            Contender::OursStream,
        ],
        |c| format!("tokio bulk, {}", c.name()),
        |c, what| {
            runtime.block_on(async {
                tokio::time::timeout(
                    plan.limit,
                    bulk::tokio_round(c, plan.bulk_total, write_size),
                )
                .await
                .unwrap_or_else(|_| panic!("{what}: hang"))
            })
        },
    );
    let rows = medians("tokio bulk", results);
    // The same contenders on async-std, from the bulk table.
    let async_std_rows: Vec<(Contender, Sample)> = report
        .bulk
        .iter()
        .find(|(w, _, _)| *w == write_size)
        .map(|(_, _, rows)| {
            rows.iter()
                .filter(|(c, _)| {
                    rows_has(
                        &[
                            Contender::RawTungstenite,
                            Contender::OursWsIo,
                            Contender::OursStream,
                        ],
                        *c,
                    )
                })
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### Bulk, 64 KiB writes, by runtime ({} per round, median of {} rounds; tokio: multi-threaded, 2 workers)\n",
        size(plan.bulk_total),
        plan.rounds
    );
    let _ = writeln!(
        t,
        "| contender | async-std MiB/s | tokio MiB/s | async-std CPU s/GiB | tokio CPU s/GiB |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|");
    for (c, tokio_m) in &rows {
        let std_m = async_std_rows.iter().find(|(a, _)| a == c).map(|(_, m)| *m);
        let _ = writeln!(
            t,
            "| {} | {} | {:.0} | {} | {:.2} |",
            c.name(),
            std_m.map_or("-".into(), |m| format!(
                "{:.0}",
                mib_per_s(plan.bulk_total, m)
            )),
            mib_per_s(plan.bulk_total, *tokio_m),
            std_m.map_or("-".into(), |m| format!(
                "{:.2}",
                cpu_per_gib(plan.bulk_total, m)
            )),
            cpu_per_gib(plan.bulk_total, *tokio_m),
        );
    }
    report.push(t);
}

/// Our multiplexed streams next to qmux's, all under tokio (qmux needs it): ours speaking the
/// @matrixai/ws protocol and ours speaking QMux-02, each with `run()` spawned on both ends and
/// driven by its handles, and qmux with its defaults; then the issue's targets for ours speaking
/// QMux against qmux.
fn run_qmux(plan: &Plan, report: &mut Report) {
    use tokio_mux::Contender as T;
    const PARALLEL: usize = 16;
    let runtime = tokio_runtime();
    let write_size = 64 * KIB as usize;

    let bulk = medians(
        "tokio bulk",
        interleaved(
            plan,
            plan.rounds,
            &T::ALL,
            |c| format!("qmux table: bulk, {}", c.label()),
            |c, what| {
                on_tokio(
                    &runtime,
                    plan,
                    what,
                    tokio_mux::bulk(c, plan.bulk_total, write_size),
                )
            },
        ),
    );
    let many_total = plan.many_per_stream * plan.many_streams as u64;
    let many = medians(
        "tokio many streams",
        interleaved(
            plan,
            plan.many_rounds,
            &T::ALL,
            |c| format!("qmux table: {} streams, {}", plan.many_streams, c.label()),
            |c, what| {
                on_tokio(
                    &runtime,
                    plan,
                    what,
                    tokio_mux::many(c, plan.many_streams, plan.many_per_stream),
                )
            },
        ),
    );
    const RTT_ROUNDS: usize = 5;
    let per_round = plan.round_trips.div_ceil(RTT_ROUNDS);
    let rtt: Vec<(T, Duration, Duration)> = interleaved(
        plan,
        RTT_ROUNDS,
        &T::ALL,
        |c| format!("qmux table: 64 B round trips, {}", c.label()),
        |c, what| on_tokio(&runtime, plan, what, tokio_mux::round_trips(c, per_round)),
    )
    .into_iter()
    .map(|(c, rounds)| {
        let mut lat: Vec<Duration> = rounds.into_iter().flatten().collect();
        let (median, p99) = (
            measure::percentile(&mut lat, 50.0),
            measure::percentile(&mut lat, 99.0),
        );
        eprintln!(
            "  tokio 64 B round trips, {}: median {median:?}, p99 {p99:?}",
            c.label()
        );
        (c, median, p99)
    })
    .collect();
    let opens = medians(
        "tokio open/echo/close",
        interleaved(
            plan,
            3,
            &T::ALL,
            |c| format!("qmux table: open/echo/close, {}", c.label()),
            |c, what| on_tokio(&runtime, plan, what, tokio_mux::opens(c, plan.opens)),
        ),
    );
    let opens_parallel = medians(
        "tokio open/echo/close 16 at a time",
        interleaved(
            plan,
            3,
            &T::ALL,
            |c| {
                format!(
                    "qmux table: open/echo/close {PARALLEL} at a time, {}",
                    c.label()
                )
            },
            |c, what| {
                on_tokio(
                    &runtime,
                    plan,
                    what,
                    tokio_mux::opens_parallel(c, plan.opens, PARALLEL),
                )
            },
        ),
    );

    // (workload, unit, higher is better, value per contender)
    type Metric = (String, &'static str, bool, Vec<(T, f64)>);
    let mut metrics: Vec<Metric> = Vec::new();
    let rate = |rows: &[(T, Sample)], bytes: u64| -> Vec<(T, f64)> {
        rows.iter()
            .map(|(c, m)| (*c, mib_per_s(bytes, *m)))
            .collect()
    };
    metrics.push((
        format!(
            "bulk, one stream, 64 KiB writes ({})",
            size(plan.bulk_total)
        ),
        "MiB/s",
        true,
        rate(&bulk, plan.bulk_total),
    ));
    metrics.push((
        format!(
            "{} streams × {} at once, 64 KiB writes",
            plan.many_streams,
            size(plan.many_per_stream)
        ),
        "MiB/s",
        true,
        rate(&many, many_total),
    ));
    metrics.push((
        format!("64 B round trip, median ({})", per_round * RTT_ROUNDS),
        "µs",
        false,
        rtt.iter().map(|(c, m, _)| (*c, micros(*m))).collect(),
    ));
    metrics.push((
        "64 B round trip, p99".into(),
        "µs",
        false,
        rtt.iter().map(|(c, _, p)| (*c, micros(*p))).collect(),
    ));
    let per_second = |rows: &[(T, Sample)]| -> Vec<(T, f64)> {
        rows.iter()
            .map(|(c, m)| (*c, plan.opens as f64 / m.wall.as_secs_f64()))
            .collect()
    };
    metrics.push((
        format!(
            "open + 1-byte echo + close, one after another ({})",
            plan.opens
        ),
        "streams/s",
        true,
        per_second(&opens),
    ));
    metrics.push((
        format!("open + 1-byte echo + close, {PARALLEL} at a time"),
        "streams/s",
        true,
        per_second(&opens_parallel),
    ));
    // The process's CPU time (both ends, every thread) next to the rates: how much work each
    // does, and (CPU over wall time) how many cores it kept busy.
    let cpu_per = |rows: &[(T, Sample)], per: f64| -> Vec<(T, f64)> {
        rows.iter()
            .map(|(c, m)| (*c, m.cpu.as_secs_f64() / per))
            .collect()
    };
    let cores = |rows: &[(T, Sample)]| -> Vec<(T, f64)> {
        rows.iter()
            .map(|(c, m)| (*c, m.cpu.as_secs_f64() / m.wall.as_secs_f64()))
            .collect()
    };
    metrics.push((
        "bulk: CPU time per GiB".into(),
        "CPU s",
        false,
        cpu_per(&bulk, plan.bulk_total as f64 / GIB as f64),
    ));
    metrics.push((
        "bulk: cores busy (CPU / wall)".into(),
        "cores",
        true,
        cores(&bulk),
    ));
    metrics.push((
        format!("{} streams: CPU time per GiB", plan.many_streams),
        "CPU s",
        false,
        cpu_per(&many, many_total as f64 / GIB as f64),
    ));
    metrics.push((
        "open/echo/close one after another: CPU per stream".into(),
        "CPU µs",
        false,
        cpu_per(&opens, plan.opens as f64 / 1e6),
    ));
    metrics.push((
        format!("open/echo/close {PARALLEL} at a time: CPU per stream"),
        "CPU µs",
        false,
        cpu_per(&opens_parallel, plan.opens as f64 / 1e6),
    ));
    metrics.push((
        format!("open/echo/close {PARALLEL} at a time: cores busy"),
        "cores",
        true,
        cores(&opens_parallel),
    ));

    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### Ours vs qmux 0.6 under tokio (multi-threaded, 2 workers; bulk median of {}, 16 streams median of {}, opens median of 3 interleaved rounds)\n",
        plan.rounds, plan.many_rounds
    );
    let _ = writeln!(
        t,
        "Ours speaks either protocol behind the same API, chosen at the handshake: the \
         @matrixai/ws protocol, or QMux-02 when the client offers `qmux-02` (made with \
         `ws_stream_mux::tokio::accept` and `connect_qmux` with `run()` spawned; without a driver \
         over the same handshake). Each side keeps its defaults (ours, either protocol: 1 MiB \
         stream windows, 16 MiB per connection; QMux records of at most 16,382 bytes, the \
         minimum max_record_size; qmux: 256 KiB streams, 1 MiB per connection, one WebSocket \
         message per frame of at most 16 KiB), so the windows differ. Every socket has \
         TCP_NODELAY. Ratios are ours / qmux (wire: ours speaking @matrixai/ws): above 1 is \
         better for ours in MiB/s and streams/s, below 1 in µs. CPU: the process's user + \
         system time (both ends, every thread) per GiB or per stream; cores busy: that CPU time \
         over the wall time.\n"
    );
    let ours = [
        T::OursDriven,
        T::OursNoDriver,
        T::OursQmuxDriven,
        T::OursQmuxNoDriver,
    ];
    let _ = write!(t, "| workload | unit |");
    for c in ours.iter().chain(&[T::QMux]) {
        let _ = write!(t, " {} |", c.name());
    }
    for c in ours {
        let _ = write!(t, " {} / qmux |", c.short());
    }
    let _ = writeln!(t, "\n|---|---|{}", "---:|".repeat(2 * ours.len() + 1));
    let find = |values: &[(T, f64)], c: T| values.iter().find(|(r, _)| *r == c).map(|(_, v)| *v);
    for (workload, unit, _higher, values) in &metrics {
        let show = |v: Option<f64>| {
            v.map_or("-".to_owned(), |v| {
                if v >= 100.0 {
                    format!("{v:.0}")
                } else if v >= 10.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.2}")
                }
            })
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "-".to_owned(),
        };
        let qmux = find(values, T::QMux);
        let _ = write!(t, "| {workload} | {unit} |");
        for c in ours.iter().chain(&[T::QMux]) {
            let _ = write!(t, " {} |", show(find(values, *c)));
        }
        for c in ours {
            let _ = write!(t, " {} |", ratio(find(values, c), qmux));
        }
        let _ = writeln!(t);
    }

    // The issue's targets for ours speaking QMux (run() spawned) against qmux.
    let ratio_of = |index: usize| {
        let values = &metrics[index].3;
        find(values, T::OursQmuxDriven)
            .zip(find(values, T::QMux))
            .map(|(ours, qmux)| ours / qmux)
    };
    // (target, index into `metrics`, goal, higher is better)
    let goals: [(&str, usize, f64, bool); 4] = [
        ("bulk, one stream, 64 KiB writes", 0, 1.2, true),
        ("64 B round trip (median)", 2, 1.0, false),
        ("open + echo + close, one after another", 4, 1.2, true),
        ("open + echo + close, 16 at a time", 5, 1.2, true),
    ];
    let mut listed = false;
    for (name, index, goal, higher) in goals {
        let Some(r) = ratio_of(index) else { continue };
        if !listed {
            let _ = writeln!(t, "\nTargets, {} / qmux 0.6.6:\n", T::OursQmuxDriven.name());
            listed = true;
        }
        let met = if higher { r >= goal } else { r <= goal };
        let sign = if higher { "≥" } else { "≤" };
        let _ = writeln!(
            t,
            "- {name}: {r:.2}× (goal {sign} {goal}×): **{}**",
            if met { "met" } else { "MISSED" }
        );
        report.qmux.push((
            format!("{name}, ours QMux-02 (run() spawned) vs qmux 0.6.6"),
            format!("{sign} {goal}×"),
            r,
            met,
        ));
    }
    report.push(t);
}

/// TCP through the `tunnel` example (one WebSocket, a stream per TCP connection), over either
/// protocol, against TCP straight to the target: one connection, to a sink and echoed.
fn run_tunnel(plan: &Plan, report: &mut Report) {
    use tunnel::{Path, Target};
    let runtime = tokio_runtime();
    let cases: Vec<(Path, Target)> = [Target::Sink, Target::Echo]
        .into_iter()
        .flat_map(|t| Path::ALL.map(|p| (p, t)))
        .collect();
    let rows = medians(
        "tunnel",
        interleaved(
            plan,
            plan.tunnel_rounds,
            &cases,
            Named::label,
            |(path, target), what| {
                on_tokio(
                    &runtime,
                    plan,
                    what,
                    tunnel::round(path, target, plan.tunnel_total),
                )
            },
        ),
    );
    if rows.is_empty() {
        return;
    }
    let rate = |p: Path, t: Target| {
        rows.iter().find(|(c, _)| *c == (p, t)).map(|(_, m)| {
            (
                mib_per_s(plan.tunnel_total, *m),
                cpu_per_gib(plan.tunnel_total, *m),
            )
        })
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### TCP through the tunnel example vs direct TCP ({} per round, one TCP connection, 64 KiB writes, median of {} interleaved rounds, tokio: 2 workers)\n",
        size(plan.tunnel_total),
        plan.tunnel_rounds
    );
    let _ = writeln!(
        t,
        "client TCP → tunnel client → one WebSocket → tunnel server → target TCP, all on \
         127.0.0.1 with TCP_NODELAY, forwarded by `examples/tunnel.rs`'s `forward` (defaults: \
         `Config::default()`); direct: client TCP → target. Sink: one direction, timed until the \
         target counted the last byte. Echo: the client writes while it reads everything back; \
         MiB/s counts the bytes once. × direct: this path's rate over direct TCP's.\n"
    );
    let _ = writeln!(
        t,
        "| path | to a sink MiB/s | × direct | CPU s/GiB | echoed MiB/s | × direct | CPU s/GiB |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|");
    let cell = |v: Option<(f64, f64)>, direct: Option<(f64, f64)>| {
        let rate = v.map_or("-".to_owned(), |(r, _)| format!("{r:.0}"));
        let ratio = match (v, direct) {
            (Some((r, _)), Some((d, _))) => format!("{:.2}×", r / d),
            _ => "-".to_owned(),
        };
        let cpu = v.map_or("-".to_owned(), |(_, c)| format!("{c:.2}"));
        format!("{rate} | {ratio} | {cpu}")
    };
    for p in Path::ALL {
        let (sink, echo) = (rate(p, Target::Sink), rate(p, Target::Echo));
        if sink.is_none() && echo.is_none() {
            continue;
        }
        let _ = writeln!(
            t,
            "| {} | {} | {} |",
            p.name(),
            cell(sink, rate(Path::Direct, Target::Sink)),
            cell(echo, rate(Path::Direct, Target::Echo)),
        );
    }
    report.push(t);
}

/// One active stream among N idle ones, each idle stream with a task parked in `read()` on both
/// ends: the work for one message must not grow with the idle streams.
fn run_active(plan: &Plan, report: &mut Report) {
    use active::Contender as A;
    /// Without a driver every message wakes every parked task: beyond this many idle streams a
    /// round would take minutes.
    const NO_DRIVER_UP_TO: usize = 1_000;
    let runtime = tokio_runtime();
    // Each contender's idle counts back to back: its ratios to its own 0-idle figures then
    // compare measurements a few seconds apart, whatever the shared machine does meanwhile.
    let cases: Vec<(A, usize)> = A::ALL
        .iter()
        .flat_map(|&c| plan.active_idle.iter().map(move |&n| (c, n)))
        .filter(|&(c, n)| c != A::OursNoDriver || n <= NO_DRIVER_UP_TO)
        .collect();
    let results = interleaved(
        plan,
        plan.active_rounds,
        &cases,
        |case| format!("active among idle: {}", case.label()),
        |(c, n), what| {
            let fut = active::round(c, n, plan.active_trips, plan.active_bulk);
            let round = match c.runtime() {
                // Both as a task on the runtime's threads, like the tasks the round spawns.
                Rt::Tokio => on_tokio(&runtime, plan, what, fut),
                Rt::AsyncStd => block_on(plan, what, async_std::task::spawn(fut)),
            };
            eprintln!(
                "  {what}: set-up {:.2} s, echo {:.0} MiB/s",
                round.setup.as_secs_f64(),
                mib_per_s(plan.active_bulk, round.bulk)
            );
            round
        },
    );
    struct Row {
        contender: A,
        idle: usize,
        setup: Duration,
        median: Duration,
        p99: Duration,
        bulk: f64,
    }
    let rows: Vec<Row> = results
        .into_iter()
        .map(|((contender, idle), rounds)| {
            let mut setups: Vec<Duration> = rounds.iter().map(|r| r.setup).collect();
            let bulks: Vec<Sample> = rounds.iter().map(|r| r.bulk).collect();
            let mut lat: Vec<Duration> = rounds.into_iter().flat_map(|r| r.latencies).collect();
            Row {
                contender,
                idle,
                setup: measure::median_of(&mut setups),
                median: measure::percentile(&mut lat, 50.0),
                p99: measure::percentile(&mut lat, 99.0),
                bulk: mib_per_s(plan.active_bulk, measure::median(&bulks)),
            }
        })
        .collect();
    let base = |c: A| rows.iter().find(|r| r.contender == c && r.idle == 0);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### One active stream among N idle ones ({} round trips of 64 B and a {} echo per round, {} interleaved round{})\n",
        plan.active_trips,
        size(plan.active_bulk),
        plan.active_rounds,
        if plan.active_rounds == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        t,
        "Each idle stream has a task parked in `read()` on both ends. Set-up: opening the idle \
         streams until each was answered. Echo: the client writes in 64 KiB writes while it reads \
         the echo back. × 0 idle: this figure over the same contender's with no idle streams.\n"
    );
    let _ = writeln!(
        t,
        "| contender | idle streams | set-up s | RTT median µs | × 0 idle | RTT p99 µs | × 0 idle | echo MiB/s | × 0 idle |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ratio = |v: f64, b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{:.2}×", v / b));
    for r in &rows {
        let b = base(r.contender);
        let _ = writeln!(
            t,
            "| {} | {} | {:.2} | {:.1} | {} | {:.1} | {} | {:.0} | {} |",
            r.contender.name(),
            r.idle,
            r.setup.as_secs_f64(),
            micros(r.median),
            ratio(micros(r.median), b.map(|b| micros(b.median))),
            micros(r.p99),
            ratio(micros(r.p99), b.map(|b| micros(b.p99))),
            r.bulk,
            ratio(r.bulk, b.map(|b| b.bulk)),
        );
    }
    let most = plan.active_idle.iter().copied().max().unwrap_or(0);
    if most > NO_DRIVER_UP_TO {
        let _ = writeln!(
            t,
            "\n{} is not run with more than {NO_DRIVER_UP_TO} idle streams: every message wakes \
             every parked task, so a round would take minutes.",
            A::OursNoDriver.name()
        );
    }
    if most > 0 {
        let _ = writeln!(t);
        if most < 10_000 {
            let _ = writeln!(
                t,
                "Targets are stated for 10,000 idle streams; this run checks them at {most}."
            );
        }
        for c in [A::OursTokio, A::OursQmuxTokio, A::OursAsyncStd] {
            let (Some(b), Some(r)) = (
                base(c),
                rows.iter().find(|r| r.contender == c && r.idle == most),
            ) else {
                continue;
            };
            let rtt = r.median.as_secs_f64() / b.median.as_secs_f64();
            let bulk = r.bulk / b.bulk;
            let verdict = |met: bool| if met { "met" } else { "MISSED" };
            let _ = writeln!(
                t,
                "- {}, {most} idle: RTT median {rtt:.2}× its 0-idle figure (goal ≤ 1.25×): **{}**; \
                 echo {bulk:.2}× (goal ≥ 0.85×): **{}**",
                c.name(),
                verdict(rtt <= 1.25),
                verdict(bulk >= 0.85),
            );
            report.active.push((c.name(), most, rtt, bulk));
        }
    }
    report.push(t);
}

fn rows_has(set: &[Contender], c: Contender) -> bool {
    set.contains(&c)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn size(bytes: u64) -> String {
    if bytes >= GIB && bytes % GIB == 0 {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// Each contender's median.
type Rows = Vec<(Contender, Sample)>;

/// Collects the tables and the numbers the targets are computed from.
#[derive(Default)]
struct Report {
    /// Per write size: bytes per round and each contender's median.
    bulk: Vec<(usize, u64, Rows)>,
    many: Option<(u64, Vec<(Contender, Sample)>)>,
    rtt: Vec<(Contender, Duration, Duration)>,
    opens: Vec<(Contender, f64)>,
    opens_parallel: Vec<(Contender, f64)>,
    idle: Vec<(Contender, streams::IdleReport)>,
    /// One active stream among idle ones: contender, idle streams, RTT median and echo
    /// throughput as ratios to its 0-idle figures.
    active: Vec<(&'static str, usize, f64, f64)>,
    /// Ours speaking QMux vs qmux: target, goal, ratio, met.
    qmux: Vec<(String, String, f64, bool)>,
}

impl Report {
    fn push(&mut self, table: String) {
        println!("{table}");
    }

    fn header(&self, plan: &Plan) {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .unwrap_or_default();
        println!(
            "## ws_stream_mux side-by-side benchmark ({} run)\n",
            if plan.quick { "quick" } else { "full" }
        );
        println!(
            "Machine: {cores} cores ({cpu}), Linux {kernel}. Both ends run in this one process over \
             TCP on 127.0.0.1 with TCP_NODELAY; runtime async-std 1.13 unless noted. CPU s/GiB is the \
             process's user+system time (sender and receiver together) per GiB moved."
        );
        if plan.quick {
            println!("\nQuick mode: sizes are scaled far down; the numbers are a smoke test, not a measurement.");
        } else {
            println!(
                "\nBulk rounds move {} each ({} rounds per contender and write size, interleaved: \
                 A, B, C, A, B, C, ...). The sections up to the runtime comparison take about 5 \
                 minutes on 2 cores; ours vs qmux and one active stream among up to {} idle ones \
                 come on top.",
                size(plan.bulk_total),
                plan.rounds,
                plan.active_idle.iter().copied().max().unwrap_or(0)
            );
        }
    }

    fn throughput_table(&mut self, title: &str, bytes: u64, rows: &[(Contender, Sample)]) {
        let mut named: Vec<(String, Sample)> = rows
            .iter()
            .map(|(c, s)| (c.name().to_owned(), *s))
            .collect();
        self.throughput_table_named(title, bytes, &mut named);
    }

    fn throughput_table_named(&mut self, title: &str, bytes: u64, rows: &mut [(String, Sample)]) {
        let mut t = String::new();
        let _ = writeln!(t, "\n### {title}\n");
        let _ = writeln!(t, "| contender | MiB/s | CPU s/GiB |");
        let _ = writeln!(t, "|---|---:|---:|");
        for (name, m) in rows.iter() {
            let _ = writeln!(
                t,
                "| {} | {:.0} | {:.2} |",
                name,
                mib_per_s(bytes, *m),
                cpu_per_gib(bytes, *m)
            );
        }
        self.push(t);
    }

    fn bulk_rate(&self, write_size: usize, c: Contender) -> f64 {
        self.bulk
            .iter()
            .find(|(w, _, _)| *w == write_size)
            .and_then(|(_, total, rows)| {
                rows.iter()
                    .find(|(r, _)| *r == c)
                    .map(|(_, m)| mib_per_s(*total, *m))
            })
            .unwrap_or(f64::NAN)
    }

    fn targets(&self) {
        let mut t = String::new();
        let _ = writeln!(t, "\n### Targets (ratios from this run)\n");
        let _ = writeln!(t, "| target | goal | this run | met |");
        let _ = writeln!(t, "|---|---:|---:|:---:|");
        let mut line = |name: &str, goal: &str, value: f64, met: bool, unit: &str| {
            let _ = writeln!(
                t,
                "| {name} | {goal} | {value:.2}{unit} | {} |",
                if met { "yes" } else { "**no**" }
            );
        };
        let (k64, k1) = (64 * KIB as usize, KIB as usize);
        for (w, label) in [(k64, "64 KiB"), (k1, "1 KiB")] {
            let ours = self.bulk_rate(w, Contender::OursStream);
            let raw = self.bulk_rate(w, Contender::RawTungstenite);
            let yamux = self.bulk_rate(w, Contender::YamuxOverWst);
            line(
                &format!("one WsStream bulk ({label} writes) vs raw async-tungstenite"),
                "≥ 0.9×",
                ours / raw,
                ours / raw >= 0.9,
                "×",
            );
            let corked = self.bulk_rate(w, Contender::OursStreamCoalesced);
            line(
                &format!(
                    "one WsStream with coalesce_writes bulk ({label} writes) vs raw async-tungstenite"
                ),
                "≥ 0.9×",
                corked / raw,
                corked / raw >= 0.9,
                "×",
            );
            line(
                &format!("one WsStream bulk ({label} writes) vs yamux over ws_stream_tungstenite"),
                "≥ 1.5×",
                ours / yamux,
                ours / yamux >= 1.5,
                "×",
            );
        }
        if let Some((total, rows)) = &self.many {
            let rate = |c| {
                rows.iter()
                    .find(|(r, _)| *r == c)
                    .map_or(f64::NAN, |(_, m)| mib_per_s(*total, *m))
            };
            let ratio = rate(Contender::OursStream) / rate(Contender::YamuxOverWst);
            line(
                "16 streams aggregate vs yamux over ws_stream_tungstenite",
                "≥ 1.3×",
                ratio,
                ratio >= 1.3,
                "×",
            );
        }
        let rtt = |c| {
            self.rtt
                .iter()
                .find(|(r, _, _)| *r == c)
                .map_or(f64::NAN, |(_, m, _)| m.as_secs_f64())
        };
        let ours = rtt(Contender::OursStream);
        let r = ours / rtt(Contender::RawTungstenite);
        line(
            "64 B round trip (median), WsStream vs raw async-tungstenite",
            "≤ 1.25×",
            r,
            r <= 1.25,
            "×",
        );
        let r = ours / rtt(Contender::YamuxOverWst);
        line(
            "64 B round trip (median), WsStream vs yamux over ws_stream_tungstenite",
            "≤ 0.6×",
            r,
            r <= 0.6,
            "×",
        );
        let r = self.bulk_rate(k1, Contender::OursWsIo)
            / self.bulk_rate(k1, Contender::WsStreamTungstenite);
        line(
            "WsIo bulk with 1 KiB writes vs ws_stream_tungstenite",
            "≥ 2×",
            r,
            r >= 2.0,
            "×",
        );
        if let Some((_, rate)) = self.opens.iter().find(|(c, _)| *c == Contender::OursStream) {
            line(
                "stream open + echo + close per second, one after another",
                "≥ 10000",
                *rate,
                *rate >= 10_000.0,
                "/s",
            );
        }
        if let Some((_, rate)) = self
            .opens_parallel
            .iter()
            .find(|(c, _)| *c == Contender::OursStream)
        {
            line(
                "stream open + echo + close per second, 16 at a time",
                "≥ 10000",
                *rate,
                *rate >= 10_000.0,
                "/s",
            );
        }
        if let Some((_, idle)) = self.idle.iter().find(|(c, _)| *c == Contender::OursStream) {
            let per_end = idle.per_stream() / 2.0 / 1024.0;
            line(
                "resident memory per idle stream (per end)",
                "≤ 2 KiB",
                per_end,
                per_end <= 2.0,
                " KiB",
            );
            line(
                &format!("{} concurrent streams work", idle.streams),
                "yes",
                idle.streams as f64,
                idle.streams >= 10_000,
                " streams",
            );
        }
        for (name, goal, ratio, met) in &self.qmux {
            line(name, goal, *ratio, *met, "×");
        }
        for (name, idle, rtt, bulk) in &self.active {
            line(
                &format!("{name}: 64 B round trip (median) among {idle} idle streams vs none"),
                "≤ 1.25×",
                *rtt,
                *rtt <= 1.25,
                "×",
            );
            line(
                &format!("{name}: echo throughput among {idle} idle streams vs none"),
                "≥ 0.85×",
                *bulk,
                *bulk >= 0.85,
                "×",
            );
        }
        println!("{t}");
    }
}
