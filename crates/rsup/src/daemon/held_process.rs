//! A process the daemon goes on supervising without having started it:
//! across re-executing itself (`rsup update`, see [`super::reexec`]) the
//! same pid stays its parent, so the process stays its child; after a
//! crash (see [`super::adopt`]) the keeper is its parent, reaps it and
//! reports its exit. What the daemon knew of the process and the
//! descriptors of its pipes and channels, kept open, are all it needs to
//! go on supervising it, through a pidfd.

use super::keeper_link::KeeperLink;
use super::launcher::ChildProcess;
use super::spawn::{copy_output, LaunchRequest, Launched};
use super::stop::Target;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::unix::pipe;
use tokio::net::UnixStream;

/// A running process as the next image of the daemon takes it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldProcess {
    pub pid: u32,
    /// When it started (see `state_file::process_start`); `None` once it
    /// has exited, unreaped.
    pub pid_started: Option<u64>,
    /// The read ends of its stdout and stderr pipes.
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
    /// The daemon's ends of its worker and Node channels.
    pub worker: RawFd,
    pub node: Option<RawFd>,
    /// How long it has run.
    pub uptime_ms: u64,
    pub ephemeral_requests: usize,
    pub said_ready: bool,
    pub listened: bool,
    pub drained: bool,
    /// It was online (else still launching).
    pub online: bool,
    /// A pidfd of the process, for one that is not this daemon's child
    /// (whose pid the keeper may reap, and the kernel give out again).
    #[serde(default)]
    pub pidfd: Option<RawFd>,
}

impl HeldProcess {
    /// Every descriptor that must live through the exec.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> {
        [
            self.stdout,
            self.stderr,
            Some(self.worker),
            self.node,
            self.pidfd,
        ]
        .into_iter()
        .flatten()
    }
}

/// Takes the descriptors of `held` over and watches its process, as
/// [`super::spawn::launch`] does for a new one.
pub fn reattach(held: &HeldProcess, req: &LaunchRequest) -> io::Result<Launched> {
    // SAFETY: the exec state names each descriptor once, and this is the
    // one place that takes it.
    let take = |fd: RawFd| unsafe { OwnedFd::from_raw_fd(fd) };
    let out = held.stdout.map(take);
    let err = held.stderr.map(take);
    let worker = stream(take(held.worker))?;
    let node = held.node.map(take).map(stream).transpose()?;
    let pipe_of = |fd: OwnedFd| pipe::Receiver::from_owned_fd(fd);
    let out = out.map(pipe_of).transpose()?;
    let err = err.map(pipe_of).transpose()?;
    let output_fds = [held.stdout, held.stderr];
    let (log_copiers, relay) = copy_output(req, out, err);
    let mut child = match held.pidfd {
        Some(fd) => PidfdChild::with_pidfd(held.pid, take(fd)),
        None => PidfdChild::open(held.pid),
    };
    child.keeper = req.keeper.cloned();
    Ok(Launched {
        child: Box::new(child),
        pid: held.pid,
        node_channel: node,
        worker_channel: worker,
        log_copiers,
        output_fds,
        relay,
    })
}

fn stream(fd: OwnedFd) -> io::Result<UnixStream> {
    let std = std::os::unix::net::UnixStream::from(fd);
    std.set_nonblocking(true)?;
    UnixStream::from_std(std)
}

/// How long the keeper may take to report an exit it reaps.
const KEEPER_REPORT: Duration = Duration::from_secs(5);

/// A new pidfd of `pid`, if it runs.
pub fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new
    // descriptor, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    // SAFETY: a descriptor just returned to us.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A process not started by this image (so not one of tokio's), watched
/// through a pidfd: reaped with `waitid` if it is a child of this
/// process, else its exit status is the keeper's report.
pub struct PidfdChild {
    pid: u32,
    /// `None` when the process could not be found at all.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// Once reaped, so that the pid is never signalled again.
    status: Option<ExitStatus>,
    /// Who reaps it when it is not this process's child.
    pub keeper: Option<Arc<KeeperLink>>,
}

impl PidfdChild {
    pub fn open(pid: u32) -> PidfdChild {
        let child = PidfdChild::watching(pid, pidfd_open(pid));
        if child.pidfd.is_none() {
            tracing::warn!(pid, "cannot watch the process: it is gone");
        }
        child
    }

    /// With a pidfd opened while the pid was surely the process's.
    pub fn with_pidfd(pid: u32, pidfd: OwnedFd) -> PidfdChild {
        PidfdChild::watching(pid, Some(pidfd))
    }

    fn watching(pid: u32, pidfd: Option<OwnedFd>) -> PidfdChild {
        // SAFETY: an OwnedFd keeps its descriptor for its whole life.
        let pidfd = pidfd
            .and_then(|fd| unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok());
        PidfdChild {
            pid,
            pidfd,
            status: None,
            keeper: None,
        }
    }

    async fn reaped(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Some(pidfd) = &self.pidfd else {
            return Err(io::Error::other("the process was gone"));
        };
        loop {
            let mut ready = pidfd.readable().await?;
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
            match waitid(Id::PIDFd(pidfd.get_ref().as_fd()), flags) {
                Ok(WaitStatus::StillAlive) => ready.clear_ready(),
                Ok(status) => {
                    let status = exit_status(status);
                    self.status = Some(status);
                    return Ok(status);
                }
                // Not our child: it has exited (the pidfd is readable),
                // and the keeper reaps it.
                Err(nix::errno::Errno::ECHILD) => {
                    let reported = match &self.keeper {
                        Some(keeper) => keeper.exit_status(self.pid, KEEPER_REPORT).await,
                        None => None,
                    };
                    let Some(status) = reported else {
                        return Err(io::Error::other("it ended; how is not known"));
                    };
                    self.status = Some(status);
                    return Ok(status);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `pidfd_send_signal`; with `probe`, signal 0 (whether it still runs).
fn send_signal(pidfd: std::os::fd::BorrowedFd, signal: Signal, probe: bool) -> nix::Result<()> {
    let signo = if probe { 0 } else { signal as libc::c_int };
    // SAFETY: a pidfd we hold, a signal number, no siginfo, no flags.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            signo,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if sent < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

/// The status `std` would have reported for a child that ended so.
fn exit_status(status: WaitStatus) -> ExitStatus {
    match status {
        WaitStatus::Exited(_, code) => ExitStatus::from_raw((code & 0xff) << 8),
        WaitStatus::Signaled(_, signal, core) => {
            ExitStatus::from_raw(signal as i32 | if core { 0x80 } else { 0 })
        }
        _ => ExitStatus::from_raw(0),
    }
}

impl ChildProcess for PidfdChild {
    fn wait(&mut self) -> Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send + '_>> {
        Box::pin(self.reaped())
    }

    fn signal(&self, signal: Signal, group: bool) -> nix::Result<()> {
        let Some(pidfd) = &self.pidfd else {
            return Err(nix::errno::Errno::ESRCH);
        };
        if self.status.is_some() {
            return Err(nix::errno::Errno::ESRCH);
        }
        if group {
            // While the leader lives, its group id is its own.
            send_signal(pidfd.get_ref().as_fd(), signal, true)?;
            return Target::new(self.pid, true).try_signal(signal);
        }
        // Through the pidfd: the keeper may have reaped it, and the pid
        // be another process's.
        send_signal(pidfd.get_ref().as_fd(), signal, false)
    }

    fn pidfd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(|fd| fd.get_ref().as_raw_fd())
    }

    fn group_alive(&self) -> bool {
        Target::new(self.pid, true).alive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[tokio::test]
    async fn a_child_started_elsewhere_is_reaped_with_its_status() {
        let spawn = |script: &str| {
            std::process::Command::new("sh")
                .args(["-c", script])
                .process_group(0)
                .spawn()
                .unwrap()
        };
        // Children of this process, not tokio's: as after an exec.
        let exits = spawn("exit 3");
        let mut child = PidfdChild::open(exits.id());
        assert_eq!(child.wait().await.unwrap().code(), Some(3));
        // Reaped: never signalled again, and waiting again says the same.
        assert!(child.signal(Signal::SIGTERM, false).is_err());
        assert_eq!(child.wait().await.unwrap().code(), Some(3));

        let sleeps = spawn("exec sleep 30");
        let mut child = PidfdChild::open(sleeps.id());
        assert!(child.group_alive());
        child.signal(Signal::SIGTERM, true).unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        std::mem::forget((exits, sleeps));
    }

    #[test]
    fn statuses_read_as_std_reads_them() {
        let pid = nix::unistd::Pid::from_raw(1);
        assert_eq!(exit_status(WaitStatus::Exited(pid, 0)).code(), Some(0));
        assert_eq!(exit_status(WaitStatus::Exited(pid, 42)).code(), Some(42));
        let killed = exit_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        assert_eq!((killed.code(), killed.signal()), (None, Some(9)));
        let dumped = exit_status(WaitStatus::Signaled(pid, Signal::SIGSEGV, true));
        assert_eq!(dumped.signal(), Some(libc::SIGSEGV));
        assert!(dumped.core_dumped());
    }
}
