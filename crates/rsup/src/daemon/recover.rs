//! After a daemon was killed (SIGKILL, a panic, the OOM killer): bring its
//! apps back under supervision from the state file it left.
//!
//! Its processes may still run, re-parented to init, but what tied them to
//! the daemon died with it: their output pipes, their message channels and
//! the listening sockets the daemon held. So they are stopped the way their
//! app says (kill signal, SIGKILL at `kill_timeout`), never left behind as
//! orphans holding the ports, and each app is started again with its saved
//! options and instance count.

use super::actions;
use super::lifecycle::Daemon;
use super::state_file::{self, AppState, DaemonState};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::str::FromStr;
use std::time::Duration;
use tokio::time::{sleep, Instant};

const POLL: Duration = Duration::from_millis(50);

/// Whether `state` is a previous daemon's of this boot, with apps to bring
/// back.
pub fn worth_recovering(state: &DaemonState) -> bool {
    !state.apps.is_empty()
        && state.daemon_pid != std::process::id()
        && !state.boot_id.is_empty()
        && state.boot_id == state_file::boot_id()
}

/// Stops what the previous daemon left running, then starts its apps again.
pub async fn recover(daemon: &Daemon, state: DaemonState) {
    daemon.apps.env.ids_from(state.next_id);
    for app in &state.apps {
        stop_survivors(app).await;
    }
    let specs = state.apps.iter().map(|a| {
        let mut spec = a.spec.clone();
        spec.instances = a.instances.len() as u32;
        spec
    });
    let names: Vec<String> = state.apps.iter().map(|a| a.spec.name.clone()).collect();
    // An app started meanwhile under the same name wins: it was asked for
    // after the crash.
    let specs: Vec<_> = specs
        .filter(|s| {
            daemon
                .apps
                .resolve(&rsup_proto::control::Target::Name(s.name.clone()))
                .is_err()
        })
        .collect();
    tracing::warn!(
        "a previous daemon (pid {}) ended without stopping its apps; starting {} again",
        state.daemon_pid,
        names.join(", ")
    );
    if let rsup_proto::control::Reply::Error { message } = actions::start(daemon, specs).await {
        tracing::error!("recovering apps: {message}");
    }
}

/// Stops the app's processes that still run: the kill signal to each (its
/// group with treekill), then SIGKILL to what is left at `kill_timeout`.
async fn stop_survivors(app: &AppState) {
    let spec = &app.spec;
    let survivors: Vec<u32> = app
        .instances
        .iter()
        .filter(|r| r.still_running())
        .filter_map(|r| r.pid)
        .filter(|pid| *pid > 1)
        .collect();
    if survivors.is_empty() {
        return;
    }
    tracing::warn!(
        app = %spec.name,
        "stopping {} process(es) left by the previous daemon: {survivors:?}",
        survivors.len()
    );
    let signal = Signal::from_str(&spec.kill_signal).unwrap_or(Signal::SIGINT);
    let target = |pid: u32| {
        if spec.treekill {
            Pid::from_raw(-(pid as i32))
        } else {
            Pid::from_raw(pid as i32)
        }
    };
    for pid in &survivors {
        let _ = kill(target(*pid), signal);
    }
    let deadline = Instant::now() + Duration::from_millis(spec.kill_timeout_ms);
    let alive = |pid: &u32| {
        if spec.treekill {
            kill(Pid::from_raw(-(*pid as i32)), None).is_ok()
        } else {
            state_file::process_start(*pid).is_some()
        }
    };
    while survivors.iter().any(alive) && Instant::now() < deadline {
        sleep(POLL).await;
    }
    for pid in survivors.iter().filter(|p| alive(p)) {
        let _ = kill(target(*pid), Signal::SIGKILL);
    }
}
