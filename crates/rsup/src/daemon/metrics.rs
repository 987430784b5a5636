//! CPU and memory of a process, read from `/proc`, as `rsup list` shows
//! them and as `/metrics` gives them. Lists read the figures
//! [`super::usage`] keeps; this reads them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use procfs::prelude::*;
use procfs::process::Stat;
use procfs::FromRead;

/// Remembers the previous CPU reading of each pid, so CPU use is reported
/// over the time between two lists, as PM2 does; the first reading is the
/// average since the process started.
#[derive(Default)]
pub struct Sampler {
    /// Per pid: CPU ticks, when they were read, and the figure given then.
    last: HashMap<u32, (u64, Instant, f64)>,
}

/// The shortest interval a CPU figure is measured over: ticks come in
/// 10 ms steps, so one tick over a few milliseconds (two lists in a row)
/// would read as hundreds of percent.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The CPUs this machine gives us, read once: finding out reads cgroup
/// files, too much to do for every process of every list.
fn cpus() -> f64 {
    static CPUS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as f64)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

impl Usage {
    /// What is shown for a process that is gone.
    pub const NONE: Usage = Usage {
        cpu_percent: 0.0,
        memory_bytes: 0,
    };
}

/// `/proc/<pid>/stat`, read with one open and one read: what the figures
/// come from, read for every process every few seconds.
fn stat_of(pid: u32) -> Option<Stat> {
    use std::io::Read;
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    // The line is a few hundred bytes; a command name of at most 64 bytes
    // bounds it well below this.
    let mut buf = [0u8; 1024];
    let n = file.read(&mut buf).ok()?;
    Stat::from_read(&buf[..n]).ok()
}

/// The resident memory of `pid` (the figure `list` shows), without
/// touching any CPU reading; `None` when it is gone.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    Some(stat_of(pid)?.rss_bytes().get())
}

/// The figures of a process measured for the first time: its CPU use
/// averaged since it started.
pub fn first_reading(pid: u32) -> Usage {
    match stat_of(pid) {
        Some(stat) => average_since_start(&stat),
        None => Usage::NONE,
    }
}

fn average_since_start(stat: &Stat) -> Usage {
    let hz = procfs::ticks_per_second() as f64;
    let ticks = stat.utime + stat.stime;
    let alive = procfs::Uptime::current()
        .ok()
        .map(|u| u.uptime - stat.starttime as f64 / hz);
    let cpu_percent = match alive {
        Some(a) if a > 0.0 => ticks as f64 / hz / a * 100.0,
        _ => 0.0,
    };
    Usage {
        cpu_percent: capped(cpu_percent),
        memory_bytes: stat.rss_bytes().get(),
    }
}

/// A process cannot use more than every CPU; one decimal, as shown.
fn capped(cpu_percent: f64) -> f64 {
    (cpu_percent.min(100.0 * cpus()) * 10.0).round() / 10.0
}

/// The CPU time `pid` has used since it started (user plus system, in
/// seconds: what Prometheus rates) and its resident memory; `None` when it
/// is gone.
pub fn cpu_seconds_and_memory(pid: u32) -> Option<(f64, u64)> {
    let process = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?;
    let stat = process.stat().ok()?;
    let seconds = (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64;
    Some((seconds, stat.rss_bytes().get()))
}

impl Sampler {
    pub fn sample(&mut self, pid: u32) -> Usage {
        self.sample_at(pid, Instant::now())
    }

    fn sample_at(&mut self, pid: u32, now: Instant) -> Usage {
        let Some(stat) = stat_of(pid) else {
            return Usage::NONE;
        };
        let hz = procfs::ticks_per_second() as f64;
        // User plus system time, in clock ticks.
        let ticks = stat.utime + stat.stime;
        let cpu_percent = match self.last.get(&pid) {
            // Too soon to measure again: the last figure stands.
            Some((prev, at, given)) if now.duration_since(*at) < MIN_INTERVAL && ticks >= *prev => {
                return Usage {
                    cpu_percent: *given,
                    memory_bytes: stat.rss_bytes().get(),
                };
            }
            Some((prev, at, _)) if now > *at && ticks >= *prev => {
                let secs = now.duration_since(*at).as_secs_f64();
                capped((ticks - prev) as f64 / hz / secs * 100.0)
            }
            _ => average_since_start(&stat).cpu_percent,
        };
        self.last.insert(pid, (ticks, now, cpu_percent));
        Usage {
            cpu_percent,
            memory_bytes: stat.rss_bytes().get(),
        }
    }

    /// Forgets pids that no longer run.
    pub fn retain(&mut self, live: &HashSet<u32>) {
        self.last.retain(|pid, _| live.contains(pid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let mut s = Sampler::default();
        let usage = s.sample(std::process::id());
        assert!(usage.memory_bytes > 1024 * 1024);
        assert!(usage.cpu_percent >= 0.0);
        assert!(s.last.contains_key(&std::process::id()));
        s.retain(&HashSet::new());
        assert!(s.last.is_empty());
    }

    #[test]
    fn second_sample_measures_the_interval() {
        let mut s = Sampler::default();
        let start = Instant::now();
        s.sample_at(std::process::id(), start);
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        let later = start + MIN_INTERVAL + Duration::from_millis(100);
        assert!(s.sample_at(std::process::id(), later).cpu_percent > 0.0);
    }

    #[test]
    fn samples_close_together_repeat_the_last_figure() {
        let mut s = Sampler::default();
        let me = std::process::id();
        let start = Instant::now();
        let first = s.sample_at(me, start).cpu_percent;
        let until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        // 30 ms of spinning over 5 ms would read as 600 %.
        let soon = s
            .sample_at(me, start + Duration::from_millis(5))
            .cpu_percent;
        assert_eq!(soon, first);
        assert!(soon <= 100.0 * cpus());
    }

    #[test]
    fn resident_memory_of_ours_and_of_none() {
        assert!(resident_bytes(std::process::id()).unwrap() > 1024 * 1024);
        assert_eq!(resident_bytes(u32::MAX - 1), None);
    }

    #[test]
    fn totals_of_ours_and_of_none() {
        let (cpu, memory) = cpu_seconds_and_memory(std::process::id()).unwrap();
        assert!(cpu >= 0.0 && memory > 1024 * 1024);
        assert_eq!(cpu_seconds_and_memory(u32::MAX - 1), None);
    }

    #[test]
    fn a_missing_process_reads_as_zero() {
        assert_eq!(Sampler::default().sample(u32::MAX - 1), Usage::NONE);
        assert_eq!(first_reading(u32::MAX - 1), Usage::NONE);
    }

    #[test]
    fn a_first_reading_leaves_no_history() {
        let usage = first_reading(std::process::id());
        assert!(usage.memory_bytes > 1024 * 1024);
        assert!((0.0..=100.0 * cpus()).contains(&usage.cpu_percent));
    }
}
