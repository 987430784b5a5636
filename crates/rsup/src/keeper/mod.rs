//! The keeper: a small process above the daemon that a daemon crash does
//! not take the apps with it.
//!
//! The daemon holds the read ends of every process's output pipes and its
//! ends of their channels; were they to close with it, the processes would
//! lose their output and their Node channel. So the daemon gives the keeper
//! a duplicate of each as it opens them ([`wire::ToKeeper::Keep`]), along
//! with its seat (the pid file's lock and the control socket's listener)
//! and the apps' listening sockets, and has it close them when done. The
//! keeper is the daemon's parent and a child subreaper, so the daemon's
//! processes become its children if the daemon dies, and it reaps them.
//!
//! When the daemon ends other than on its own (SIGKILL, a panic, the OOM
//! killer), the keeper starts the next daemon at once, handing it every
//! descriptor it kept ([`handed`]) and reporting the exits it reaps; that
//! daemon supervises the same processes again (`daemon/adopt.rs`). Clients
//! that connect meanwhile wait in the control socket's queue. A daemon
//! that ends with status 0 was asked to (`rsup kill`, a signal): the
//! keeper ends too. Should daemons keep ending, it gives up and ends,
//! and the next `rsup` command starts a daemon that replaces what runs
//! (`daemon/recover.rs`).
//!
//! It does nothing else, so that there is little in it to fail: no
//! runtime, no thread, one loop over a signalfd and the daemon's socket.

pub mod handed;
pub mod wire;

use crate::home::Home;
use anyhow::{Context, Result};
use handed::{Entry, Exit, Handed};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wire::{FromKeeper, Received, ToKeeper};

/// It gives up when daemons end this many times within [`WINDOW`].
const GIVE_UP_AFTER: usize = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Exits reaped while no daemon runs, kept for the next one at most.
const MAX_EXITS: usize = 10_000;

/// Runs the keeper and its first daemon (which, with `resurrect`, starts
/// the saved apps); returns the keeper's exit code.
pub fn run(home: Home, resurrect: bool) -> Result<i32> {
    crate::daemon::close_inherited_descriptors();
    // The daemon raises it again, and gives its apps the one it was
    // started with: this one.
    let limit = crate::daemon::raise_descriptor_limit().map(|(from, _)| from);
    home.ensure()?;
    crate::daemon::init_tracing();
    // SAFETY: prctl with these arguments only sets a flag of this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        anyhow::bail!(
            "cannot become the reaper of the daemon's processes: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut mask = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR2,
    ] {
        mask.add(signal);
    }
    mask.thread_block()?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    let home_log = home.daemon_log();
    let mut keeper = Keeper {
        exe: std::env::current_exe().context("locating the rsup binary")?,
        home,
        entries: BTreeMap::new(),
        daemon: None,
        exits: Vec::new(),
        ended: VecDeque::new(),
        limit,
        logs_to_file: crate::daemon::stderr_is(&home_log),
    };
    keeper.start(None, resurrect)?;
    Ok(keeper.serve(&signals))
}

struct Keeper {
    home: Home,
    /// What the next daemon runs: the binary the daemon last said it runs.
    exe: PathBuf,
    entries: BTreeMap<String, Kept>,
    daemon: Option<Running>,
    exits: Vec<Exit>,
    /// When daemons ended, lately.
    ended: VecDeque<Instant>,
    /// The soft descriptor limit the keeper was started with, when it
    /// raised its own.
    limit: Option<u64>,
    /// Its output goes to the daemon's log (started by the CLI, not by
    /// systemd): each daemon gets the file at that path then, since the
    /// one before may have rotated it.
    logs_to_file: bool,
}

struct Kept {
    pid: Option<u32>,
    meta: serde_json::Value,
    fds: Vec<OwnedFd>,
}

struct Running {
    pid: u32,
    link: Option<OwnedFd>,
    /// It said it serves.
    serving: bool,
    /// The first daemon: one that fails before it serves ends the keeper.
    first: bool,
    /// It said it ends, as asked.
    ending: bool,
}

impl Keeper {
    fn serve(&mut self, signals: &SignalFd) -> i32 {
        loop {
            let link = self.daemon.as_ref().and_then(|d| d.link.as_ref());
            let mut polled = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            if let Some(link) = link {
                polled.push(PollFd::new(link.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut polled, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    tracing::error!("keeper: poll: {e}");
                    return 1;
                }
            }
            let link_ready = polled
                .get(1)
                .and_then(|p| p.revents())
                .is_some_and(|r| !r.is_empty());
            drop(polled);
            if link_ready {
                self.read_link();
            }
            while let Ok(Some(info)) = signals.read_signal() {
                let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match signal {
                    Signal::SIGCHLD => {
                        if let Some(code) = self.reap() {
                            return code;
                        }
                    }
                    // Detached from any terminal: no reason to stop.
                    Signal::SIGHUP => {}
                    // Meant for the daemon (a stop, logs to reopen).
                    other => {
                        if let Some(d) = &self.daemon {
                            let _ = kill(Pid::from_raw(d.pid as i32), other);
                        }
                    }
                }
            }
        }
    }

    fn read_link(&mut self) {
        loop {
            let Some(link) = self.daemon.as_ref().and_then(|d| d.link.as_ref()) else {
                return;
            };
            match wire::recv::<ToKeeper>(link.as_fd()) {
                Ok(Received::Message(message, fds)) => self.obey(message, fds),
                Ok(Received::Bad(why)) => tracing::warn!("keeper: {why}"),
                Ok(Received::Closed) => {
                    // The daemon is ending; its exit comes as SIGCHLD.
                    if let Some(d) = &mut self.daemon {
                        d.link = None;
                    }
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("keeper: reading the daemon's messages: {e}");
                    if let Some(d) = &mut self.daemon {
                        d.link = None;
                    }
                    return;
                }
            }
        }
    }

    fn obey(&mut self, message: ToKeeper, fds: Vec<OwnedFd>) {
        match message {
            ToKeeper::Hello { exe } => {
                if let Some(d) = &mut self.daemon {
                    d.serving = true;
                }
                self.exe = exe;
            }
            ToKeeper::Keep { key, pid, meta } => {
                self.entries.insert(key, Kept { pid, meta, fds });
            }
            ToKeeper::Note { key, meta } => {
                if let Some(kept) = self.entries.get_mut(&key) {
                    match (&mut kept.meta, meta) {
                        (serde_json::Value::Object(old), serde_json::Value::Object(new)) => {
                            old.extend(new)
                        }
                        (old, new) => *old = new,
                    }
                }
            }
            ToKeeper::Forget { key } => {
                self.entries.remove(&key);
            }
            ToKeeper::Ending => {
                if let Some(d) = &mut self.daemon {
                    d.ending = true;
                }
            }
        }
    }

    /// Reaps every child that ended; `Some(code)` when the keeper ends.
    fn reap(&mut self) -> Option<i32> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status of a child it reaps.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return None;
            }
            let pid = pid as u32;
            if self.daemon.as_ref().is_some_and(|d| d.pid == pid) {
                if let Some(code) = self.daemon_ended(status) {
                    return Some(code);
                }
            } else {
                self.exited(pid, status);
            }
        }
    }

    /// A kept process ended: its daemon is told, or the next one.
    fn exited(&mut self, pid: u32, status: i32) {
        if !self.entries.values().any(|k| k.pid == Some(pid)) {
            return;
        }
        let exit = Exit { pid, status };
        let link = self.daemon.as_ref().and_then(|d| d.link.as_ref());
        let told = link.is_some_and(|link| {
            let message = FromKeeper::Exited { pid, status };
            wire::send(link.as_fd(), &message, &[]).is_ok()
        });
        if !told && self.exits.len() < MAX_EXITS {
            self.exits.push(exit);
        }
    }

    fn daemon_ended(&mut self, status: i32) -> Option<i32> {
        let running = self.daemon.take()?;
        // What it says goes to the log at its path now, rotated or not.
        if self.logs_to_file {
            if let Ok(log) = crate::daemon::open_daemon_log(&self.home) {
                let _ = nix::unistd::dup2_stderr(&log);
            }
        }
        let how = describe(status);
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            // Asked to end: its apps are stopped.
            return Some(0);
        }
        if running.ending {
            // It died while stopping them: what is left goes at once,
            // rather than on unsupervised.
            tracing::warn!(
                "keeper: the daemon (pid {}) {how} while it stopped its apps; killing what is left",
                running.pid
            );
            self.kill_processes();
            return Some(0);
        }
        if running.first && !running.serving {
            // It never took its seat: nothing of it to keep.
            tracing::error!(
                "keeper: the daemon (pid {}) {how} before it served",
                running.pid
            );
            return Some(1);
        }
        let now = Instant::now();
        self.ended.retain(|t| now.duration_since(*t) < WINDOW);
        self.ended.push_back(now);
        if self.ended.len() >= GIVE_UP_AFTER {
            tracing::error!(
                "keeper: daemons ended {} times within {} s (the last, pid {}, {how}); giving up. The apps' processes lose their output and channels; the next rsup command starts a daemon that replaces them",
                self.ended.len(),
                WINDOW.as_secs(),
                running.pid
            );
            return Some(1);
        }
        tracing::warn!(
            "keeper: the daemon (pid {}) {how}; starting the next one, which takes its processes over",
            running.pid
        );
        // A daemon that keeps ending is not started again at once.
        std::thread::sleep(Duration::from_millis(200) * (self.ended.len() as u32 - 1));
        match self.start(Some((how, running.pid)), false) {
            Ok(()) => None,
            Err(e) => {
                tracing::error!("keeper: starting the next daemon: {e:#}");
                Some(1)
            }
        }
    }

    /// SIGKILL to each process kept (its group, while it leads one).
    fn kill_processes(&self) {
        for kept in self.entries.values() {
            let (Some(pid), Some(pidfd)) = (kept.pid, kept.fds.first()) else {
                continue;
            };
            // SAFETY: a pidfd we hold; signal 0 then SIGKILL, no siginfo.
            let signal = |signo: libc::c_int| unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    signo,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                ) == 0
            };
            // Alive, so its pid is still its own, and its group's id.
            if signal(0) {
                let _ = kill(Pid::from_raw(-(pid as i32)), Signal::SIGKILL);
                signal(libc::SIGKILL);
            }
        }
    }

    /// Starts a daemon: the first, or the next after `previous` ended.
    fn start(&mut self, previous: Option<(String, u32)>, resurrect: bool) -> Result<()> {
        let (mine, theirs) = wire::pair()?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("daemon")
            .arg("--keeper-fd")
            .arg(theirs.as_raw_fd().to_string())
            .stdin(Stdio::null())
            .current_dir("/");
        if resurrect {
            cmd.arg("--resurrect");
        }
        if self.logs_to_file {
            let log = crate::daemon::open_daemon_log(&self.home)?;
            cmd.stdout(log.try_clone()?).stderr(log);
        }
        let mut inherited: Vec<RawFd> = vec![theirs.as_raw_fd()];
        let first = previous.is_none();
        if let Some((ended, previous_pid)) = previous {
            let handed = Handed {
                version: handed::VERSION,
                ended,
                previous_pid,
                entries: self
                    .entries
                    .iter()
                    .map(|(key, kept)| Entry {
                        key: key.clone(),
                        pid: kept.pid,
                        meta: kept.meta.clone(),
                        fds: kept.fds.iter().map(|fd| fd.as_raw_fd()).collect(),
                    })
                    .collect(),
                exits: std::mem::take(&mut self.exits),
            };
            let file = handed::path(&self.home.dir);
            let data = serde_json::to_vec(&handed)?;
            crate::private_file::write_atomic(&file, &data)
                .with_context(|| format!("writing {}", file.display()))?;
            cmd.arg("--adopt").arg(&file);
            inherited.extend(handed.fds());
        }
        let limit = self.limit;
        // SAFETY: sigprocmask, fcntl, getrlimit and setrlimit are
        // async-signal-safe,
        // and the list was made before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // The keeper reads its signals from a signalfd; the daemon
                // handles its own.
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                if let Some(soft) = limit {
                    let mut now = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut now);
                    now.rlim_cur = soft;
                    libc::setrlimit(libc::RLIMIT_NOFILE, &now);
                }
                for fd in &inherited {
                    if libc::fcntl(*fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        // Reaped by `reap`, with every other child.
        self.daemon = Some(Running {
            pid: child.id(),
            link: Some(mine),
            serving: false,
            first,
            ending: false,
        });
        Ok(())
    }
}

/// How a process ended, from its wait status.
fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        let signal = Signal::try_from(libc::WTERMSIG(status))
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| format!("signal {}", libc::WTERMSIG(status)));
        format!("was killed by {signal}")
    } else {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_set_their_fields_over_what_was_kept_and_forget_closes() {
        let mut keeper = Keeper {
            home: Home {
                dir: std::env::temp_dir(),
            },
            exe: PathBuf::from("rsup"),
            entries: BTreeMap::new(),
            daemon: None,
            exits: Vec::new(),
            ended: VecDeque::new(),
            limit: None,
            logs_to_file: false,
        };
        let file = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let keep = ToKeeper::Keep {
            key: "process/0/9".into(),
            pid: Some(9),
            meta: serde_json::json!({"id": 0, "listened": false, "said_ready": false}),
        };
        keeper.obey(keep, vec![file]);
        let note = ToKeeper::Note {
            key: "process/0/9".into(),
            meta: serde_json::json!({"listened": true}),
        };
        keeper.obey(note, vec![]);
        let kept = &keeper.entries["process/0/9"];
        assert_eq!(
            kept.meta,
            serde_json::json!({"id": 0, "listened": true, "said_ready": false})
        );
        // A kept process's exit is kept for the next daemon; another's not.
        keeper.exited(9, 0);
        keeper.exited(10, 0);
        assert_eq!(keeper.exits, [Exit { pid: 9, status: 0 }]);
        keeper.obey(
            ToKeeper::Forget {
                key: "process/0/9".into(),
            },
            vec![],
        );
        assert!(keeper.entries.is_empty());
    }

    #[test]
    fn exits_are_described_as_a_log_reads_them() {
        assert_eq!(describe(libc::SIGKILL), "was killed by SIGKILL");
        assert_eq!(describe(101 << 8), "exited with code 101");
    }
}
