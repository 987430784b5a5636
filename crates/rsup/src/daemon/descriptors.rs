//! The daemon's file descriptors: what it inherited is closed at start, its
//! soft limit raised, and one held in reserve so that a client is still
//! answered when descriptors run out; a warning that would repeat with
//! every failed accept is logged once and counted.

use super::spawn;
use std::fs;
use std::os::fd::RawFd;

/// How long the accept loop rests after a failed accept.
pub const ACCEPT_REST: std::time::Duration = std::time::Duration::from_millis(100);

pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One descriptor held back for the moment the daemon runs out: released,
/// it lets one more client connect, so `rsup ping` is still answered when
/// the apps' pipes and sockets use every other descriptor. It comes back
/// once a descriptor is free again.
pub struct ReserveDescriptor(Option<fs::File>);

impl ReserveDescriptor {
    pub fn open() -> Self {
        let mut reserve = ReserveDescriptor(None);
        reserve.refill();
        reserve
    }

    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }

    pub fn refill(&mut self) {
        if self.0.is_none() {
            self.0 = fs::File::open("/dev/null").ok();
        }
    }

    /// Whether there was one to release.
    pub fn release(&mut self) -> bool {
        self.0.take().is_some()
    }
}

/// A warning that can repeat many times a second (an accept failing for as
/// long as descriptors run out): logged once, then counted, with a count
/// once a minute, so the daemon's log stays small.
pub struct RepeatedWarning {
    what: &'static str,
    last: Option<String>,
    suppressed: u64,
    logged_at: std::time::Instant,
}

impl RepeatedWarning {
    const SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

    pub fn new(what: &'static str) -> Self {
        RepeatedWarning {
            what,
            last: None,
            suppressed: 0,
            logged_at: std::time::Instant::now(),
        }
    }

    pub fn warn(&mut self, message: String) {
        if self.last.as_ref() == Some(&message) && self.logged_at.elapsed() < Self::SUMMARY_EVERY {
            self.suppressed += 1;
            return;
        }
        self.flush();
        tracing::warn!("{}: {message}", self.what);
        self.last = Some(message);
        self.logged_at = std::time::Instant::now();
    }

    /// The failures stopped: says how many went unlogged, if any.
    pub fn ended(&mut self) {
        self.flush();
        if self.last.take().is_some() {
            tracing::info!("{}: working again", self.what);
        }
    }

    fn flush(&mut self) {
        if self.suppressed > 0 {
            tracing::warn!(
                "{}: {}: same message again: suppressed {} times",
                self.what,
                self.last.as_deref().unwrap_or_default(),
                self.suppressed
            );
            self.suppressed = 0;
        }
    }
}

/// Closes every descriptor above stderr. Only called before anything in
/// this process opens one of its own.
pub fn close_inherited_descriptors() {
    // SAFETY: no descriptor above 2 belongs to anything in this process yet.
    let closed = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
    if closed == 0 {
        return;
    }
    // Kernels before 5.9: the open ones, from /proc. The listing's own
    // descriptor is in it; it is closed (and then skipped) before the rest.
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; EBADF for the listing's own is harmless.
        unsafe { libc::close(fd) };
    }
}

/// Closes every descriptor above stderr but those in `keep`: what a
/// previous image of the daemon kept open for this one.
pub fn close_inherited_descriptors_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd > 2).collect();
    keep.sort_unstable();
    let mut first = 3;
    for fd in keep.into_iter().chain([RawFd::MAX]) {
        if fd > first {
            // SAFETY: as in `close_inherited_descriptors`: nothing in this
            // image has opened a descriptor yet.
            unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    first as libc::c_uint,
                    (fd - 1) as libc::c_uint,
                    0 as libc::c_uint,
                )
            };
        }
        first = fd.saturating_add(1);
    }
}

/// Raises the soft descriptor limit to the hard one: each instance costs
/// the daemon about six descriptors (its channels, output pipes, log files
/// and pidfd), so the common soft limit of 1,024 ran out near 170
/// instances. Apps start with the limit the daemon was started with, as
/// under PM2 (see `spawn`). Returns the old and new soft limits.
pub fn raise_descriptor_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    spawn::set_child_descriptor_limit(limit);
    // An unlimited hard limit cannot be a soft one beyond fs.nr_open.
    let nr_open = fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let target = limit.rlim_max.min(nr_open);
    if target <= limit.rlim_cur {
        return None;
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads `raised`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return None;
    }
    Some((limit.rlim_cur, target))
}
