//! CPU and memory of a process, read from `/proc`, as `rsup list` shows.

use std::collections::HashMap;
use std::time::Instant;

use procfs::prelude::*;

/// Remembers the previous CPU reading of each pid, so CPU use is reported
/// over the time between two lists, as PM2 does; the first reading is the
/// average since the process started.
#[derive(Default)]
pub struct Sampler {
    last: HashMap<u32, (u64, Instant)>,
}

pub struct Usage {
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

impl Sampler {
    pub fn sample(&mut self, pid: u32) -> Usage {
        let stat = i32::try_from(pid)
            .ok()
            .and_then(|pid| procfs::process::Process::new(pid).ok())
            .and_then(|p| p.stat().ok());
        let Some(stat) = stat else {
            return Usage {
                cpu_percent: 0.0,
                memory_bytes: 0,
            };
        };
        let now = Instant::now();
        let hz = procfs::ticks_per_second() as f64;
        // User plus system time, in clock ticks.
        let ticks = stat.utime + stat.stime;
        let cpu_percent = match self.last.get(&pid) {
            Some((prev, at)) if now > *at && ticks >= *prev => {
                let secs = now.duration_since(*at).as_secs_f64();
                (ticks - prev) as f64 / hz / secs * 100.0
            }
            _ => {
                let alive = procfs::Uptime::current()
                    .ok()
                    .map(|u| u.uptime - stat.starttime as f64 / hz);
                match alive {
                    Some(a) if a > 0.0 => ticks as f64 / hz / a * 100.0,
                    _ => 0.0,
                }
            }
        };
        self.last.insert(pid, (ticks, now));
        Usage {
            cpu_percent: (cpu_percent * 10.0).round() / 10.0,
            memory_bytes: stat.rss_bytes().get(),
        }
    }

    /// Forgets pids that no longer run.
    pub fn retain(&mut self, live: &[u32]) {
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
        s.retain(&[]);
        assert!(s.last.is_empty());
    }

    #[test]
    fn second_sample_measures_the_interval() {
        let mut s = Sampler::default();
        s.sample(std::process::id());
        let until = Instant::now() + std::time::Duration::from_millis(200);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        assert!(s.sample(std::process::id()).cpu_percent > 0.0);
    }

    #[test]
    fn a_missing_process_reads_as_zero() {
        let usage = Sampler::default().sample(u32::MAX - 1);
        assert_eq!(usage.memory_bytes, 0);
        assert_eq!(usage.cpu_percent, 0.0);
    }
}
