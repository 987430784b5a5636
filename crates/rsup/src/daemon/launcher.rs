//! The seam between an instance's lifecycle and the operating system:
//! starting a process, signalling it, waiting for its exit. The daemon
//! uses [`OsLauncher`]; unit tests put in a fake whose processes become
//! ready, exit or ignore signals when the test says, on a paused clock.

use super::spawn::{launch, LaunchRequest, Launched};
use super::stop::Target;
use nix::sys::signal::Signal;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitStatus;

/// Starts an instance's processes.
pub trait Launcher: Send + Sync {
    fn launch(&self, req: &LaunchRequest) -> std::io::Result<Launched>;
}

/// A started process, as the lifecycle sees it.
pub trait ChildProcess: Send + Sync {
    /// Its exit status once it has exited (and been reaped). Cancel-safe:
    /// it is raced against other events.
    fn wait(&mut self) -> Pin<Box<dyn Future<Output = std::io::Result<ExitStatus>> + Send + '_>>;
    /// Sends `signal` to the process, or with `group` to its whole process
    /// group.
    fn signal(&self, signal: Signal, group: bool) -> nix::Result<()>;
    /// Whether anything of its process group is left.
    fn group_alive(&self) -> bool;
    /// Its pidfd, where the daemon watches it through one.
    fn pidfd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

/// Real processes (see [`launch`]).
pub struct OsLauncher;

impl Launcher for OsLauncher {
    fn launch(&self, req: &LaunchRequest) -> std::io::Result<Launched> {
        launch(req)
    }
}

/// A real child process, in its own process group.
pub struct OsChild {
    pub child: tokio::process::Child,
    pub pid: u32,
}

impl ChildProcess for OsChild {
    fn wait(&mut self) -> Pin<Box<dyn Future<Output = std::io::Result<ExitStatus>> + Send + '_>> {
        Box::pin(self.child.wait())
    }

    fn signal(&self, signal: Signal, group: bool) -> nix::Result<()> {
        // The child is not reaped before `wait` returns, so its pid cannot
        // have gone to another process.
        Target::new(self.pid, group).try_signal(signal)
    }

    fn group_alive(&self) -> bool {
        Target::new(self.pid, true).alive()
    }
}

#[cfg(test)]
pub mod fake;
