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
use super::state_file::{self, AppState, DaemonState, InstanceRecord};
use super::take_back::{self, Taken};
use crate::keeper::handed::Handed;
use rsup_proto::app::{AppSpec, Status};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;
use tokio::net::UnixListener;

/// The keeper's key for the daemon's seat.
pub const SEAT: &str = "seat";
/// The keeper's key for the health endpoints' listener.
pub const HEALTH: &str = "health";
const SOCKETS: &str = "sockets/";
/// The keeper's keys for the apps' options (see `app`).
pub const APPS: &str = "app/";
const PROCESSES: &str = "process/";

/// A process the keeper held, with its descriptors in the order given:
/// pidfd, worker channel, then stdout, stderr and Node channel if it has
/// them.
struct Kept {
    key: String,
    meta: KeptProcess,
    /// Its app's options when it started.
    spec: Option<AppSpec>,
    fds: Vec<OwnedFd>,
}

/// The health endpoints' listener the keeper kept, if any.
pub fn take_health(handed: &mut Handed) -> Option<OwnedFd> {
    let at = handed
        .entries
        .iter()
        .position(|e| e.key == HEALTH && e.fds.len() == 1)?;
    let entry = handed.entries.remove(at);
    // SAFETY: as in `resume`: named once, inherited for this daemon.
    Some(unsafe { OwnedFd::from_raw_fd(entry.fds[0]) })
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
    let mut specs = std::collections::HashMap::new();
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
        } else if let Some(app) = entry.key.strip_prefix(APPS) {
            if let Ok(spec) = serde_json::from_value::<AppSpec>(entry.meta) {
                specs.insert(app.to_string(), spec);
            }
            // Kept again by each app this daemon creates.
            keeper.forget(entry.key);
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
                Ok(meta) if fds.len() == expected_fds(&meta) => processes.push(Kept {
                    key: entry.key,
                    meta,
                    spec: None,
                    fds,
                }),
                _ => {
                    tracing::warn!(key = entry.key, "not understood: let go");
                    keeper.forget(entry.key);
                }
            }
        } else {
            keeper.forget(entry.key);
        }
    }
    for kept in &mut processes {
        kept.spec = specs.get(&kept.meta.app).cloned();
    }
    let Some([lock, control]) = seat.and_then(|s| <[OwnedFd; 2]>::try_from(s).ok()) else {
        return Err("the keeper held no seat".into());
    };
    let listener = take_back::take_seat(daemon, lock, control)?;
    let home = &daemon.apps.env.home;
    write_locked_pid(daemon).map_err(|e| format!("writing {}: {e}", home.pid_file().display()))?;
    write_pm2_pid(home).map_err(|e| format!("{e:#}"))?;

    let mut state = match state_file::read(&state_file::path(&home.dir)) {
        Ok(Some(state)) => state,
        Ok(None) => empty_state(),
        Err(e) => {
            tracing::warn!("{e}; the processes it names are stopped");
            empty_state()
        }
    };
    complete(&mut state, &processes);
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
    // At once: should this daemon end too, the state file is what a daemon
    // started without a keeper recovers from.
    let path = state_file::path(&home.dir);
    if let Err(e) = state_file::write(&path, &state_file::snapshot(&daemon.apps)) {
        tracing::warn!("writing {}: {e}", path.display());
    }
    Ok(listener)
}

/// Writes this daemon's pid into the pid file it holds locked (in place:
/// a new file would not be the one locked).
fn write_locked_pid(daemon: &Daemon) -> nix::Result<()> {
    let Some((lock, _)) = daemon.retirement.seat_fds() else {
        return Err(nix::errno::Errno::EBADF);
    };
    // SAFETY: the seat's descriptor, open as long as the daemon runs.
    let lock = unsafe { std::os::fd::BorrowedFd::borrow_raw(lock) };
    nix::unistd::ftruncate(lock, 0)?;
    let line = format!("{}\n", std::process::id());
    nix::sys::uio::pwrite(lock, line.as_bytes(), 0)?;
    Ok(())
}

/// Adds to `state` the instances it does not list yet (it is written
/// shortly after a change, and the crash may have come first), from what
/// their processes were started with.
fn complete(state: &mut DaemonState, processes: &[Kept]) {
    for kept in processes {
        let id = kept.meta.id;
        let listed = state
            .apps
            .iter()
            .any(|a| a.instances.iter().any(|r| r.id == id));
        let Some(spec) = kept.spec.as_ref().filter(|_| !listed) else {
            continue;
        };
        let record = InstanceRecord {
            id,
            instance: kept.meta.instance,
            status: Status::Online,
            pid: Some(kept.meta.pid),
            pid_started: None,
            restarts: kept.meta.restarts,
        };
        match state.apps.iter_mut().find(|a| a.spec.name == spec.name) {
            Some(app) => app.instances.push(record),
            None => state.apps.push(AppState {
                spec: spec.clone(),
                instances: vec![record],
                sockets: vec![],
            }),
        }
        state.next_id = state.next_id.max(id + 1);
    }
}

/// A pidfd and the worker channel, then what it has of stdout, stderr and
/// a Node channel.
fn expected_fds(meta: &KeptProcess) -> usize {
    2 + [meta.stdout, meta.stderr, meta.node]
        .iter()
        .filter(|b| **b)
        .count()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(id: u32, pid: u32, started_ms: u64, spec: Option<AppSpec>) -> Kept {
        let null = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        Kept {
            key: format!("process/{id}/{pid}"),
            meta: KeptProcess {
                app: spec.as_ref().map_or("?".into(), |s| s.name.clone()),
                id,
                instance: id,
                restarts: 3,
                unique_id: format!("u{pid}"),
                pid,
                started_ms,
                ephemeral_requests: 0,
                said_ready: true,
                listened: true,
                drained: false,
                stdout: true,
                stderr: false,
                node: true,
            },
            spec,
            fds: vec![null(), null(), null(), null()],
        }
    }

    fn record(id: u32, pid: u32) -> InstanceRecord {
        InstanceRecord {
            id,
            instance: 0,
            status: Status::Online,
            pid: Some(pid),
            pid_started: None,
            restarts: 1,
        }
    }

    #[test]
    fn each_instance_keeps_the_process_the_state_names_else_the_latest() {
        let mut state = empty_state();
        state.apps.push(AppState {
            spec: crate::test_support::spec(),
            instances: vec![record(0, 100), record(1, 200)],
            sockets: vec![],
        });
        // Id 0: mid-reload, the state names the old one. Id 1: the state
        // names neither. Id 7: no app of the state has it.
        let processes = vec![
            kept(0, 100, 1, None),
            kept(0, 101, 2, None),
            kept(1, 201, 5, None),
            kept(1, 202, 9, None),
            kept(7, 700, 1, None),
        ];
        let (held, leftovers, unheld) = choose(&state, processes);
        let pids: Vec<u32> = held.iter().map(|h| h.process.pid).collect();
        assert_eq!(pids, [100, 202]);
        let mut left: Vec<u32> = leftovers.iter().map(|k| k.meta.pid).collect();
        left.sort();
        assert_eq!(left, [101, 201, 700]);
        assert!(unheld.is_empty());
        // Its descriptors in order: pidfd, worker, stdout, then the Node
        // channel (it has no stderr pipe).
        let p = &held[0].process;
        assert!(p.pidfd.is_some() && p.stdout.is_some() && p.node.is_some());
        assert_eq!(p.stderr, None);
        assert!(p.online && p.listened && p.said_ready);
        assert_eq!(held[0].unique_id, "u100");
    }

    #[test]
    fn instances_the_state_file_does_not_list_yet_come_from_their_process() {
        let mut state = empty_state();
        let spec = crate::test_support::spec();
        state.apps.push(AppState {
            spec: spec.clone(),
            instances: vec![record(0, 100)],
            sockets: vec![],
        });
        state.next_id = 1;
        let mut other = spec.clone();
        other.name = "other".into();
        let processes = vec![
            kept(0, 100, 1, Some(spec.clone())),
            // Scaled up just before the crash.
            kept(1, 101, 2, Some(spec.clone())),
            // Started just before the crash.
            kept(2, 102, 3, Some(other)),
            // Nothing says what it is.
            kept(3, 103, 3, None),
        ];
        complete(&mut state, &processes);
        let ids = |i: usize| -> Vec<u32> { state.apps[i].instances.iter().map(|r| r.id).collect() };
        assert_eq!(state.apps.len(), 2);
        assert_eq!(ids(0), [0, 1]);
        assert_eq!(
            (state.apps[1].spec.name.as_str(), ids(1)),
            ("other", vec![2])
        );
        assert_eq!(state.apps[1].instances[0].restarts, 3);
        assert_eq!(state.next_id, 3);
        let (held, leftovers, _) = choose(&state, processes);
        assert_eq!(held.len(), 3);
        assert_eq!(leftovers.len(), 1);
        assert_eq!(leftovers[0].meta.pid, 103);
    }
}
