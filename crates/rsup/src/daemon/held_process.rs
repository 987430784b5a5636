//! A process the daemon keeps across re-executing itself (`rsup update`,
//! see [`super::reexec`]): the same pid stays its parent, so the process
//! stays its child; what it knew of the process and the descriptors of its
//! pipes and channels, kept open through the exec, are all the next image
//! needs to go on supervising it, through a pidfd.

use super::launcher::ChildProcess;
use super::spawn::{copy_output, LaunchRequest, Launched};
use super::stop::Target;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::ExitStatus;
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
}

impl HeldProcess {
    /// Every descriptor that must live through the exec.
    pub fn fds(&self) -> impl Iterator<Item = RawFd> {
        [self.stdout, self.stderr, Some(self.worker), self.node]
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
    Ok(Launched {
        child: Box::new(PidfdChild::open(held.pid)),
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

/// A child of this process not started by it (so not one of tokio's),
/// watched through a pidfd and reaped with `waitid`.
pub struct PidfdChild {
    pid: u32,
    /// `None` when the process could not be found at all.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// Once reaped, so that the pid is never signalled again.
    status: Option<ExitStatus>,
}

impl PidfdChild {
    pub fn open(pid: u32) -> PidfdChild {
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor, or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
        let pidfd = (fd >= 0)
            // SAFETY: a descriptor just returned to us.
            .then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
            // SAFETY: an OwnedFd keeps its descriptor for its whole life.
            .and_then(|fd| unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok());
        if pidfd.is_none() {
            tracing::warn!(pid, "cannot watch the process: it is gone");
        }
        PidfdChild {
            pid,
            pidfd,
            status: None,
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
                Err(e) => return Err(e.into()),
            }
        }
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
        // Unreaped, the pid is still this process's.
        if self.status.is_some() || self.pidfd.is_none() {
            return Err(nix::errno::Errno::ESRCH);
        }
        Target::new(self.pid, group).try_signal(signal)
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
