//! Stopping a process the way PM2 does, plus a drain step PM2 lacks: the
//! kill signal once (or the `shutdown` message), then SIGKILL to whatever of
//! the tree is left when `kill_timeout` runs out.

use super::process::Proc;
use super::sockets::AppSockets;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rsup_proto::app::AppSpec;
use rsup_proto::worker::{ShutdownReason, SupervisorMessage};
use std::process::ExitStatus;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::{sleep, sleep_until, Instant};

/// How often to look for survivors of the process group once the main
/// process has exited. Only used in that case: the main process's exit
/// itself comes from the kernel.
const GROUP_POLL: Duration = Duration::from_millis(50);

/// Stops the process and returns its exit status once it is gone.
/// `reason` tells the worker whether the app goes on (its clients are asked
/// to come back) or goes away.
pub async fn stop_process(
    proc: &mut Proc,
    spec: &AppSpec,
    sockets: &Mutex<AppSockets>,
    reason: ShutdownReason,
) -> std::io::Result<ExitStatus> {
    let deadline = Instant::now() + Duration::from_millis(spec.kill_timeout_ms);

    // The addon and the preload learn their deadline from this message;
    // apps without them never read it, which costs nothing.
    proc.channels
        .send_worker(&SupervisorMessage::Shutdown {
            deadline_ms: spec.kill_timeout_ms,
            reason: Some(reason),
        })
        .await;

    // A process that took its sockets from us runs the preload, which now
    // stops accepting and finishes in-flight requests. Giving it up to half
    // the timeout before the signal means even an app whose signal handler
    // exits at once loses no request.
    if proc.listened {
        let drain_deadline = Instant::now() + Duration::from_millis(spec.kill_timeout_ms / 2);
        if let Some(status) = serve_until(proc, sockets, drain_deadline, true).await {
            return finish(proc, status, spec, deadline).await;
        }
    }

    let told = spec.shutdown_with_message && proc.channels.send_node_shutdown().await;
    if !told {
        // Config validation guarantees a known name; SIGINT is PM2's
        // default if it somehow is not.
        let signal = Signal::from_str(&spec.kill_signal).unwrap_or(Signal::SIGINT);
        // ESRCH (already gone) is the expected race, not an error.
        let _ = proc.child.signal(signal, spec.treekill);
    }
    let status = match serve_until(proc, sockets, deadline, false).await {
        Some(status) => status,
        None => {
            let _ = proc.child.signal(Signal::SIGKILL, spec.treekill);
            return proc.child.wait().await;
        }
    };
    finish(proc, status, spec, deadline).await
}

/// Waits for the process to exit until `until`, still answering what it
/// asks meanwhile (a socket requested during shutdown must not leave it
/// waiting). Returns early, without an exit, when `until_drained` and the
/// process reports it has drained.
async fn serve_until(
    proc: &mut Proc,
    sockets: &Mutex<AppSockets>,
    until: Instant,
    until_drained: bool,
) -> Option<std::io::Result<ExitStatus>> {
    let mut events_open = true;
    loop {
        if until_drained && proc.drained {
            return None;
        }
        tokio::select! {
            status = proc.child.wait() => return Some(status),
            event = proc.events.recv(), if events_open => match event {
                Some(event) => proc.handle(*event, sockets).await,
                None => events_open = false,
            },
            _ = sleep_until(until) => return None,
        }
    }
}

/// The main process is gone; its descendants get until the deadline too.
async fn finish(
    proc: &mut Proc,
    status: std::io::Result<ExitStatus>,
    spec: &AppSpec,
    deadline: Instant,
) -> std::io::Result<ExitStatus> {
    if spec.treekill {
        while proc.child.group_alive() && Instant::now() < deadline {
            sleep(GROUP_POLL).await;
        }
        if proc.child.group_alive() {
            let _ = proc.child.signal(Signal::SIGKILL, true);
        }
    }
    proc.drain_logs().await;
    status
}

/// The main process, or its whole process group with `treekill`.
pub struct Target {
    pid: Pid,
    tree: bool,
}

impl Target {
    pub fn new(pid: u32, tree: bool) -> Target {
        Target {
            pid: Pid::from_raw(pid as i32),
            tree,
        }
    }

    /// Whether the pid can be signalled safely: 0 would be the daemon's
    /// own group and -1 (the group of 1) every process the daemon may
    /// signal.
    fn valid(&self) -> bool {
        self.pid.as_raw() > 1
    }

    pub fn signal(&self, signal: Signal) {
        // ESRCH (already gone) is the expected race, not an error.
        let _ = self.try_signal(signal);
    }

    /// Sends `signal`; an invalid pid is left alone, as if sent.
    pub fn try_signal(&self, signal: Signal) -> nix::Result<()> {
        if !self.valid() {
            return Ok(());
        }
        if self.tree {
            kill(Pid::from_raw(-self.pid.as_raw()), signal)
        } else {
            kill(self.pid, signal)
        }
    }

    fn group_alive(&self) -> bool {
        self.valid() && kill(Pid::from_raw(-self.pid.as_raw()), None).is_ok()
    }

    /// Whether anything of it is left: the group with `treekill`, else the
    /// process.
    pub fn alive(&self) -> bool {
        if self.tree {
            self.group_alive()
        } else {
            self.valid() && kill(self.pid, None).is_ok()
        }
    }
}
