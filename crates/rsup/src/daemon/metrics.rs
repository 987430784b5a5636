//! CPU and memory of a process, read from `/proc`, as `rsup list` shows.

use std::collections::HashMap;
use std::time::Instant;

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
        let memory_bytes = resident_bytes(pid).unwrap_or(0);
        let now = Instant::now();
        let cpu_percent = match cpu_ticks(pid) {
            Some((ticks, start_ticks)) => {
                let hz = clock_ticks_per_second();
                let pct = match self.last.get(&pid) {
                    Some((prev, at)) if now > *at && ticks >= *prev => {
                        let secs = now.duration_since(*at).as_secs_f64();
                        (ticks - prev) as f64 / hz / secs * 100.0
                    }
                    _ => {
                        let alive = uptime_secs().map(|u| u - start_ticks as f64 / hz);
                        match alive {
                            Some(a) if a > 0.0 => ticks as f64 / hz / a * 100.0,
                            _ => 0.0,
                        }
                    }
                };
                self.last.insert(pid, (ticks, now));
                pct
            }
            None => 0.0,
        };
        Usage {
            cpu_percent: (cpu_percent * 10.0).round() / 10.0,
            memory_bytes,
        }
    }

    /// Forgets pids that no longer run.
    pub fn retain(&mut self, live: &[u32]) {
        self.last.retain(|pid, _| live.contains(pid));
    }
}

fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// (utime + stime, starttime) in clock ticks.
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field numbers from proc(5), minus the two before the name's end.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start: u64 = fields.get(19)?.parse().ok()?;
    Some((utime + stime, start))
}

fn uptime_secs() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as f64
    } else {
        100.0
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
    fn a_missing_process_reads_as_zero() {
        let usage = Sampler::default().sample(u32::MAX - 1);
        assert_eq!(usage.memory_bytes, 0);
        assert_eq!(usage.cpu_percent, 0.0);
    }
}
