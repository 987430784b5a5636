//! Descriptors: what the daemon and its apps inherit, the daemon's
//! descriptor limit, and a daemon that runs out of descriptors.

use crate::harness::*;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn daemon_pid(r: &Rsup) -> i32 {
    std::fs::read_to_string(r.home.path().join("rsup.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn try_lock(path: &Path) -> bool {
    let file = File::open(path).unwrap();
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// The descriptor numbers in a listing of /proc/<pid>/fd, sorted.
fn numbers(listing: &str) -> Vec<u32> {
    let mut fds: Vec<u32> = listing
        .split([',', '\n'])
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

fn open_descriptors(pid: i32) -> Vec<u32> {
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

#[test]
fn the_shells_descriptors_reach_neither_the_daemon_nor_its_apps() {
    let r = Rsup::new();
    // `( flock 9; rsup start … ) 9>lockfile`: the CLI that starts the
    // daemon holds a locked, inheritable descriptor.
    let lockfile = r.path("lockfile");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lockfile)
        .unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let held = lock.as_raw_fd();
    let mut cmd = r.cmd();
    cmd.args(["start", "/bin/ls", "--name", "lister", "--no-autorestart"])
        .args(["--", "-l", "/proc/self/fd"]);
    // SAFETY: dup2 is async-signal-safe; it leaves fd 9 inheritable.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(held, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert_success(&cmd.output().unwrap());
    drop(lock);
    // The CLI is gone and we closed ours: only the daemon or its app could
    // still hold the lock.
    assert!(
        try_lock(&lockfile),
        "the lock is still held after the CLI exited"
    );

    // What a plain (not Node) app gets: 0-2, the worker channel at 3, and
    // nothing else (the listing's own directory takes the next number).
    let listing = wait_for("the listing in the app's log", || {
        let out = std::fs::read_to_string(r.home.path().join("logs/lister-out.log")).ok()?;
        out.contains("-> /proc/").then_some(out)
    });
    let fds: Vec<(u32, &str)> = listing
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            Some((left.rsplit(' ').next()?.parse().ok()?, target))
        })
        .collect();
    let just_numbers: Vec<u32> = fds.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(just_numbers, [0, 1, 2, 3, 4], "{listing}");
    assert!(fds[3].1.starts_with("socket:"), "{listing}");
    assert!(fds[4].1.starts_with("/proc/"), "{listing}");

    // A Node app's children, spawned or exec'd through a shell, get
    // neither of its channels.
    assert_success(&r.start_fixture("fds.js", "node-fds", &[], &[]));
    let report = r.wait_report("report", "shell ");
    assert!(report.contains(&"channel 4".to_string()), "{report:?}");
    for line in &report[1..] {
        let (how, listing) = line.split_once(' ').unwrap();
        assert_eq!(numbers(listing), [0, 1, 2, 3], "{how}: {line}");
    }

    // The daemon itself kept nothing of the shell's either.
    let pid = daemon_pid(&r);
    for fd in open_descriptors(pid) {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap_or_default();
        assert_ne!(target, lockfile, "the daemon holds the lock file at {fd}");
    }
}

#[test]
fn a_daemon_started_with_a_low_soft_limit_runs_a_hundred_apps() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `limit`.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    if limit.rlim_max < 2048 {
        eprintln!(
            "skipped: the hard descriptor limit is only {}",
            limit.rlim_max
        );
        return;
    }
    let r = Rsup::new();
    // 64 descriptors run out near ten instances; the daemon raises its soft
    // limit to the hard one.
    let low = libc::rlimit {
        rlim_cur: 64,
        rlim_max: limit.rlim_max,
    };
    let mut cmd = r.cmd();
    cmd.arg("ls");
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &low) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert_success(&cmd.output().unwrap());
    let out = r.run(&[
        "start",
        "/bin/sleep",
        "--name",
        "many",
        "-i",
        "100",
        "--",
        "1000",
    ]);
    assert_success(&out);
    let procs = wait_for("100 instances online", || {
        let procs = r.jlist();
        let online = procs
            .iter()
            .filter(|p| p.status == rsup_proto::app::Status::Online)
            .count();
        (online == 100).then_some(procs)
    });
    // Apps start with the limit the daemon was started with, as under PM2.
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", procs[0].pid.unwrap())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().nth(3),
        Some("64"),
        "{open_files}"
    );
}

/// User and system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Sets the soft descriptor limit of `pid` (the hard one stays: lowering
/// it could not be undone), returning the one it had.
fn set_descriptor_limit(pid: i32, soft: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit writes into `old` only.
    let read = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(read, 0, "prlimit: {}", std::io::Error::last_os_error());
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: prlimit only reads `limit`.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

#[test]
fn out_of_descriptors_the_daemon_rests_logs_little_and_still_answers() {
    let r = Rsup::new();
    r.ok(&["ls"]);
    let pid = daemon_pid(&r);
    // No new descriptor fits: the limit is the lowest free number.
    let open = open_descriptors(pid);
    let lowest_free = (0..).find(|n| !open.contains(n)).unwrap();
    let before = set_descriptor_limit(pid, u64::from(lowest_free));
    // Whatever happens below, the daemon gets descriptors back, so that
    // the harness's `rsup kill` reaches it.
    let _restore = RestoreLimit(pid, before);
    let log = r.home.path().join("rsup.log");
    let lines = || std::fs::read_to_string(&log).unwrap().lines().count();
    let (lines_before, ticks_before) = (lines(), cpu_ticks(pid));

    // Two silent clients, and a ping behind them: each accept fails.
    let socket = r.home.path().join("rsup.sock");
    let silent = [
        UnixStream::connect(&socket).unwrap(),
        UnixStream::connect(&socket).unwrap(),
    ];
    let mut ping = r
        .cmd()
        .arg("ping")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watched = Duration::from_secs(2);
    std::thread::sleep(watched);
    let (lines_after, ticks_after) = (lines(), cpu_ticks(pid));
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert!(
        ticks_after - ticks_before < ticks_per_second / 2,
        "the daemon used {} ticks of CPU in {watched:?}",
        ticks_after - ticks_before
    );
    assert!(
        lines_after - lines_before <= 5,
        "rsup.log grew by {} lines in {watched:?}",
        lines_after - lines_before
    );

    // The silent clients leave; the ping is answered, still without a
    // descriptor to spare.
    drop(silent);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = ping.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = ping.kill();
            panic!("rsup ping was not answered");
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let out = ping.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    r.ok(&["ping"]);
    // Nothing was left open by the clients served at the limit.
    assert!(open_descriptors(pid).len() <= open.len());
}

struct RestoreLimit(i32, u64);

impl Drop for RestoreLimit {
    fn drop(&mut self) {
        set_descriptor_limit(self.0, self.1);
    }
}
