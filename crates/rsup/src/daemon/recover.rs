//! After a daemon was killed (SIGKILL, a panic, the OOM killer): bring its
//! apps back under supervision from the state file it left.
//!
//! Its processes may still run, re-parented to init, and still serve: each
//! holds a copy of its app's listening sockets. Their pipes and message
//! channels died with the daemon, though, so they are replaced, as a reload
//! would: the new daemon takes a copy of each listening socket back from a
//! process that holds it (`pidfd_getfd`), starts the app's instances on
//! those same sockets, and only once they have settled stops the old
//! processes with their kill signal. The accept queue never closes, so no
//! connection is refused; in a Node app, rsup's preload saw its channel
//! close and drains on that signal (npm/rsup/lib/listen-drain.js), so no
//! request fails. Where a socket cannot be taken back (no process
//! holds it any more, or the kernel refuses), the old processes are stopped
//! first and the app starts on new sockets, with a gap.

use super::app::{settled, Op};
use super::lifecycle::Daemon;
use super::log_paths::pid_path;
use super::pid_file;
use super::sockets::SavedSocket;
use super::state_file::{self, AppState, DaemonState};
use super::stop::Target;
use nix::sys::signal::Signal;
use rsup_proto::app::AppSpec;
use std::os::fd::{FromRawFd, OwnedFd};
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

/// Brings every app of `state` back, one after another.
pub async fn recover(daemon: &Daemon, state: DaemonState) {
    daemon.apps.env.ids_from(state.next_id);
    let names: Vec<&str> = state.apps.iter().map(|a| a.spec.name.as_str()).collect();
    tracing::warn!(
        "a previous daemon (pid {}) ended without stopping its apps; taking over {}",
        state.daemon_pid,
        names.join(", ")
    );
    for app in &state.apps {
        recover_app(daemon, app).await;
    }
}

async fn recover_app(daemon: &Daemon, app: &AppState) {
    bring_back(daemon, app).await;
    // The old processes are gone, and so go their pid files; the new
    // instances have new ids, and files of their own.
    for r in &app.instances {
        pid_file::remove(&pid_path(&app.spec, r.id, &daemon.apps.env.home));
    }
}

async fn bring_back(daemon: &Daemon, app: &AppState) {
    let survivors = survivors(app);
    let taken = take_sockets(&app.sockets, &survivors);
    if taken.is_none() {
        stop(app, &survivors).await;
    }
    let mut spec = app.spec.clone();
    spec.instances = app.instances.len().max(1) as u32;
    let count = spec.instances;
    // An app started meanwhile under the same name wins: it was asked for
    // after the crash.
    let created = match daemon.apps.create(vec![spec]) {
        Ok(mut created) => created.remove(0),
        Err(e) => {
            tracing::warn!(app = %app.spec.name, "not recovered: {e}");
            stop(app, &survivors).await;
            return;
        }
    };
    let on_old_sockets = taken.is_some();
    if let Some(taken) = taken {
        let mut sockets = created.context.sockets.lock().unwrap();
        for (saved, fd) in taken {
            sockets.adopt(&saved, fd);
        }
    }
    if let Err(e) = settled(created.run(Op::Start(count)).await).await {
        tracing::error!(app = %app.spec.name, "recovering: {e}");
    }
    if on_old_sockets {
        tracing::info!(
            app = %app.spec.name,
            "started again on the sockets it had; stopping the processes left behind"
        );
        stop(app, &survivors).await;
    }
}

/// The pids of the app's processes that still run.
pub fn survivors(app: &AppState) -> Vec<u32> {
    app.instances
        .iter()
        .filter(|r| r.still_running())
        .filter_map(|r| r.pid)
        .filter(|pid| *pid > 1)
        .collect()
}

/// A copy of every saved socket, each from a surviving process that holds
/// it; `None` unless all of them could be had.
fn take_sockets(saved: &[SavedSocket], survivors: &[u32]) -> Option<Vec<(SavedSocket, OwnedFd)>> {
    if saved.is_empty() || survivors.is_empty() {
        return None;
    }
    saved
        .iter()
        .map(|s| {
            let fd = survivors
                .iter()
                .find_map(|pid| take_socket(*pid, s.inode))?;
            Some((s.clone(), fd))
        })
        .collect()
}

/// A copy of the socket with `inode` held by `pid`, if it holds one and
/// the kernel lets us take it.
fn take_socket(pid: u32, inode: u64) -> Option<OwnedFd> {
    let wanted = format!("socket:[{inode}]");
    let target_fd: i32 = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()))?
        .file_name()
        .to_str()?
        .parse()
        .ok()?;
    // SAFETY: plain system calls; each descriptor returned is new and ours.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0);
        if pidfd < 0 {
            return None;
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let fd = libc::syscall(
            libc::SYS_pidfd_getfd,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            target_fd,
            0,
        );
        if fd < 0 {
            tracing::warn!(
                pid,
                "cannot take a listening socket back: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(OwnedFd::from_raw_fd(fd as i32))
    }
}

/// Stops the processes left behind: the kill signal to each (its group
/// with treekill), then SIGKILL to what is left at `kill_timeout`.
async fn stop(app: &AppState, survivors: &[u32]) {
    if survivors.is_empty() {
        return;
    }
    tracing::warn!(
        app = %app.spec.name,
        "stopping {} process(es) left by the previous daemon: {survivors:?}",
        survivors.len()
    );
    stop_processes(&app.spec, survivors).await;
}

/// Stops processes this daemon did not start (it has no channel to them)
/// with the app's kill signal, each (its group with treekill), then
/// SIGKILL to what is left at `kill_timeout`.
pub async fn stop_processes(spec: &AppSpec, pids: &[u32]) {
    let signal = Signal::from_str(&spec.kill_signal).unwrap_or(Signal::SIGINT);
    let timeout = Duration::from_millis(spec.kill_timeout_ms);
    stop_pids(signal, timeout, spec.treekill, pids).await;
}

/// Sends `signal` to each of `pids` (with `tree`, to its group), then
/// SIGKILL to what is left after `timeout`.
pub async fn stop_pids(signal: Signal, timeout: Duration, tree: bool, pids: &[u32]) {
    let targets: Vec<Target> = pids.iter().map(|pid| Target::new(*pid, tree)).collect();
    for t in &targets {
        t.signal(signal);
    }
    let deadline = Instant::now() + timeout;
    while targets.iter().any(Target::alive) && Instant::now() < deadline {
        sleep(POLL).await;
    }
    for t in targets.iter().filter(|t| t.alive()) {
        t.signal(Signal::SIGKILL);
    }
}
