//! Stopping a process the way PM2 does: the kill signal once (or the
//! `shutdown` message), then SIGKILL to whatever of the tree is left when
//! `kill_timeout` runs out.

use super::channels::Channels;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rsup_proto::app::AppSpec;
use rsup_proto::worker::SupervisorMessage;
use std::process::ExitStatus;
use std::str::FromStr;
use std::time::Duration;
use tokio::process::Child;
use tokio::time::{sleep, timeout_at, Instant};

/// How often to look for survivors of the process group once the main
/// process has exited. Only used in that case: the main process's exit
/// itself comes from the kernel.
const GROUP_POLL: Duration = Duration::from_millis(50);

/// Stops `child` and returns its exit status once it is gone.
pub async fn stop_process(
    child: &mut Child,
    pid: u32,
    spec: &AppSpec,
    channels: &mut Channels,
) -> std::io::Result<ExitStatus> {
    let deadline = Instant::now() + Duration::from_millis(spec.kill_timeout_ms);
    let target = Target::new(pid, spec.treekill);

    // The addon learns its deadline from this message; apps without it
    // never read it, which costs nothing.
    channels
        .send_worker(&SupervisorMessage::Shutdown {
            deadline_ms: spec.kill_timeout_ms,
        })
        .await;
    let told = spec.shutdown_with_message && channels.send_node_shutdown().await;
    if !told {
        // Config validation guarantees a known name; SIGINT is PM2's
        // default if it somehow is not.
        let signal = Signal::from_str(&spec.kill_signal).unwrap_or(Signal::SIGINT);
        target.signal(signal);
    }

    let status = match timeout_at(deadline, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            target.signal(Signal::SIGKILL);
            return child.wait().await;
        }
    };
    // The main process is gone; its descendants get until the deadline too.
    if spec.treekill {
        while target.group_alive() && Instant::now() < deadline {
            sleep(GROUP_POLL).await;
        }
        if target.group_alive() {
            target.signal(Signal::SIGKILL);
        }
    }
    Ok(status)
}

/// The main process, or its whole process group with `treekill`.
struct Target {
    pid: Pid,
    tree: bool,
}

impl Target {
    fn new(pid: u32, tree: bool) -> Target {
        Target {
            pid: Pid::from_raw(pid as i32),
            tree,
        }
    }

    fn signal(&self, signal: Signal) {
        // ESRCH (already gone) is the expected race, not an error.
        if self.tree {
            let _ = kill(Pid::from_raw(-self.pid.as_raw()), signal);
        } else {
            let _ = kill(self.pid, signal);
        }
    }

    fn group_alive(&self) -> bool {
        kill(Pid::from_raw(-self.pid.as_raw()), None).is_ok()
    }
}
