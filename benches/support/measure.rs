//! Clocks, CPU time, resident memory and the statistics of rounds.

use std::time::{Duration, Instant};

/// One timed round: wall time and the CPU time the whole process spent in it (every thread: the
/// sending and the receiving side both run in this process).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    pub cpu: Duration,
}

/// Measures `wall` and process CPU time around a section.
pub struct Stopwatch {
    start: Instant,
    cpu: Duration,
}

impl Stopwatch {
    pub fn start() -> Self {
        Self {
            cpu: process_cpu(),
            start: Instant::now(),
        }
    }

    pub fn stop(self) -> Sample {
        let wall = self.start.elapsed();
        Sample {
            wall,
            cpu: process_cpu().saturating_sub(self.cpu),
        }
    }
}

/// User + system CPU time of the whole process so far.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we hand it and nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Resident set size of this process in bytes (from /proc/self/statm).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1) as u64
}

/// The median of the rounds' wall times and of their CPU times (each taken separately).
pub fn median(samples: &[Sample]) -> Sample {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    let mut cpus: Vec<Duration> = samples.iter().map(|s| s.cpu).collect();
    Sample {
        wall: median_of(&mut walls),
        cpu: median_of(&mut cpus),
    }
}

pub fn median_of(values: &mut [Duration]) -> Duration {
    percentile(values, 50.0)
}

/// The `p`-th percentile (nearest rank) of `values`.
pub fn percentile(values: &mut [Duration], p: f64) -> Duration {
    assert!(!values.is_empty(), "no samples");
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}
