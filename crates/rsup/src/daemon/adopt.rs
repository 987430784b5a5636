//! After a daemon crash: the daemon its keeper starts next takes over what
//! the previous one ran (see [`crate::keeper`]).
//!
//! The keeper hands over every descriptor the previous daemon had it keep:
//! the seat (the pid file's lock and the control socket's listener, so
//! clients waited in its queue), each app's listening sockets, and for
//! each process a pidfd, its worker channel, output pipes and Node
//! channel. The apps' options come from the state file. Each instance
//! takes its process back as after `rsup update` ([`super::take_back`]):
//! the same pid, sockets, logs and channels; restart counts go on. The
//! processes are the keeper's children now: it reaps them and reports
//! their exits (see [`super::held_process`]).
//!
//! What cannot be taken back is stopped, so that nothing runs unsupervised:
//! a second process of one instance (a reload was under way: the one the
//! state file names is kept), a process of an app the state file does not
//! list (started in the moment of the crash), and a process the state file
//! lists that the keeper does not hold.

use super::held_process::HeldProcess;
use super::lifecycle::{write_pm2_pid, Daemon};
use super::process::KeptProcess;
use super::recover::{stop_pids, stop_processes};
use super::reexec::HeldInstance;
use super::sockets::SavedSocket;
use super::state_file::{self, DaemonState, InstanceRecord};
use super::take_back::{self, Taken};
use crate::keeper::handed::Handed;
use rsup_proto::app::{AppSpec, Status};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;
use tokio::net::UnixListener;

/// The keeper's key for the daemon's seat.
pub const SEAT: &str = "seat";
const SOCKETS: &str = "sockets/";
const PROCESSES: &str = "process/";

/// A process the keeper held, with its descriptors in the order given:
/// pidfd, worker channel, then stdout, stderr and Node channel if it has
/// them.
struct Kept {
    key: String,
    meta: KeptProcess,
    fds: Vec<OwnedFd>,
}

pub async fn resume(daemon: &Arc<Daemon>, handed: Handed) -> Result<UnixListener, String> {
    let keeper = daemon
        .apps
        .env
        .keeper
        .clone()
        .ok_or("a hand-over comes with a keeper")?;
    for exit in &handed.exits {
        keeper.exited(exit.pid, exit.status);
    }
    let mut seat = None;
    let mut sockets = Vec::new();
    let mut processes = Vec::new();
    for entry in handed.entries {
        // SAFETY: the hand-over names each descriptor once, inherited for
        // this daemon, and this is the one place that takes it.
        let fds: Vec<OwnedFd> = entry
            .fds
            .iter()
            .map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) })
            .collect();
        if entry.key == SEAT && fds.len() == 2 {
            seat = Some(fds);
        } else if let Some(app) = entry.key.strip_prefix(SOCKETS) {
            match serde_json::from_value::<Vec<SavedSocket>>(entry.meta) {
                Ok(saved) if saved.len() == fds.len() => sockets.extend(
                    saved
                        .into_iter()
                        .zip(fds)
                        .map(|(s, fd)| (app.to_string(), s, fd)),
                ),
                _ => {
                    tracing::warn!(key = entry.key, "not understood: let go");
                    keeper.forget(entry.key);
                }
            }
        } else if entry.key.starts_with(PROCESSES) {
            match serde_json::from_value::<KeptProcess>(entry.meta) {
                Ok(meta)
                    if fds.len()
                        == 2 + [meta.stdout, meta.stderr, meta.node]
                            .iter()
                            .filter(|b| **b)
                            .count() =>
                {
                    processes.push(Kept {
                        key: entry.key,
                        meta,
                        fds,
                    })
                }
                _ => {
                    tracing::warn!(key = entry.key, "not understood: let go");
                    keeper.forget(entry.key);
                }
            }
        } else {
            keeper.forget(entry.key);
        }
    }
    let Some([lock, control]) = seat.and_then(|s| <[OwnedFd; 2]>::try_from(s).ok()) else {
        return Err("the keeper held no seat".into());
    };
    let listener = take_back::take_seat(daemon, lock, control)?;
    let home = &daemon.apps.env.home;
    crate::private_file::write_atomic(
        &home.pid_file(),
        format!("{}\n", std::process::id()).as_bytes(),
    )
    .map_err(|e| format!("writing {}: {e}", home.pid_file().display()))?;
    write_pm2_pid(home).map_err(|e| format!("{e:#}"))?;

    let state = match state_file::read(&state_file::path(&home.dir)) {
        Ok(Some(state)) => state,
        Ok(None) => empty_state(),
        Err(e) => {
            tracing::warn!("{e}; the processes it names are stopped");
            empty_state()
        }
    };
    tracing::warn!(
        "the daemon before this one (pid {}) {}; taking over its {} process(es)",
        handed.previous_pid,
        handed.ended,
        processes.len()
    );
    let (held, leftovers, unheld) = choose(&state, processes);
    for kept in leftovers {
        let spec = state
            .apps
            .iter()
            .find(|a| a.instances.iter().any(|r| r.id == kept.meta.id))
            .map(|a| &a.spec);
        tracing::warn!(
            pid = kept.meta.pid,
            id = kept.meta.id,
            "a process the state file does not name as its instance's: stopping it"
        );
        stop_unsupervised(spec, kept.meta.pid).await;
        keeper.forget(kept.key);
    }
    for (spec, pid) in unheld {
        tracing::warn!(pid, app = %spec.name, "a process the keeper did not hold: stopping it");
        stop_unsupervised(Some(&spec), pid).await;
    }
    let Taken { kept, started } =
        take_back::take_back(daemon, &state, sockets, &held, true).await?;
    tracing::info!(kept, started, "took over from the daemon that ended");
    Ok(listener)
}

fn empty_state() -> DaemonState {
    DaemonState {
        version: 0,
        boot_id: String::new(),
        daemon_pid: 0,
        next_id: 0,
        apps: vec![],
    }
}

/// Each instance's process: the one whose pid the state file names, else
/// the latest started; the others are left over. Also the processes the
/// state file names that the keeper does not hold, and still run.
fn choose(
    state: &DaemonState,
    mut processes: Vec<Kept>,
) -> (Vec<HeldInstance>, Vec<Kept>, Vec<(AppSpec, u32)>) {
    let mut held = Vec::new();
    let mut unheld = Vec::new();
    for app in &state.apps {
        for record in &app.instances {
            let mine = processes.extract_if(.., |k| k.meta.id == record.id);
            let mut mine: Vec<Kept> = mine.collect();
            mine.sort_by_key(|k| (Some(k.meta.pid) == record.pid, k.meta.started_ms));
            match mine.pop() {
                Some(kept) => held.push(hold(record, kept)),
                None if record.still_running() => {
                    unheld.extend(record.pid.map(|pid| (app.spec.clone(), pid)))
                }
                None => {}
            }
            processes.extend(mine);
        }
    }
    (held, processes, unheld)
}

fn hold(record: &InstanceRecord, kept: Kept) -> HeldInstance {
    let Kept { meta, fds, .. } = kept;
    let mut fds = fds.into_iter().map(IntoRawFd::into_raw_fd);
    let pidfd = fds.next();
    let worker = fds.next().unwrap_or(-1);
    let mut next_if = |has: bool| if has { fds.next() } else { None };
    let stdout = next_if(meta.stdout);
    let stderr = next_if(meta.stderr);
    let node = next_if(meta.node);
    HeldInstance {
        id: meta.id,
        unique_id: meta.unique_id,
        process: HeldProcess {
            pid: meta.pid,
            pid_started: None,
            stdout,
            stderr,
            worker,
            node,
            uptime_ms: super::instance::now_ms().saturating_sub(meta.started_ms),
            ephemeral_requests: meta.ephemeral_requests,
            said_ready: meta.said_ready,
            listened: meta.listened,
            drained: meta.drained,
            online: record.status == Status::Online,
            pidfd,
        },
    }
}

/// Stops a process nothing supervises, with its app's kill signal (or
/// PM2's default, SIGINT) and SIGKILL at its `kill_timeout`.
async fn stop_unsupervised(spec: Option<&AppSpec>, pid: u32) {
    match spec {
        Some(spec) => stop_processes(spec, &[pid]).await,
        None => {
            let timeout =
                std::time::Duration::from_millis(rsup_proto::app::defaults::KILL_TIMEOUT_MS);
            stop_pids(nix::sys::signal::Signal::SIGINT, timeout, true, &[pid]).await
        }
    }
}
