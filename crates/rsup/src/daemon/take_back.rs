//! Taking every app back with the processes that still run: what the next
//! image of a re-executed daemon does ([`super::reexec`]), and what the
//! daemon a keeper starts after a crash does ([`super::adopt`]).

use super::app::{settled, Adoption, Op};
use super::instance::Beginning;
use super::lifecycle::Daemon;
use super::reexec::HeldInstance;
use super::retire::Seat;
use super::sockets::SavedSocket;
use super::state_file::DaemonState;
use nix::fcntl::{Flock, FlockArg};
use rsup_proto::app::Status;
use std::fs::File;
use std::os::fd::OwnedFd;
use tokio::net::UnixListener;

/// Takes the seat (the pid file's lock, held on this open file, and the
/// control socket's listener) and returns the listener to serve.
pub fn take_seat(daemon: &Daemon, lock: OwnedFd, control: OwnedFd) -> Result<UnixListener, String> {
    let lock = Flock::lock(File::from(lock), FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| format!("the pid file is not locked: {e}"))?;
    let seat = Seat { lock, control };
    let listener = seat
        .control
        .try_clone()
        .map(std::os::unix::net::UnixListener::from)
        .and_then(|l| {
            l.set_nonblocking(true)?;
            UnixListener::from_std(l)
        })
        .map_err(|e| format!("taking the control socket: {e}"))?;
    daemon.retirement.set_seat(seat);
    Ok(listener)
}

/// How many processes were kept, and how many instances started anew.
pub struct Taken {
    pub kept: u32,
    pub started: u32,
}

/// Creates every app of `state` with its sockets, and each instance with
/// its process of `processes` if it has one; one that has none starts
/// anew unless it was down. `keep_restarts`: the restart counts go on
/// (else they start over, as after PM2's update).
pub async fn take_back(
    daemon: &Daemon,
    state: &DaemonState,
    mut sockets: Vec<(String, SavedSocket, OwnedFd)>,
    processes: &[HeldInstance],
    keep_restarts: bool,
) -> Result<Taken, String> {
    let apps = &daemon.apps;
    apps.env.ids_from(state.next_id);
    let specs = state
        .apps
        .iter()
        .map(|a| {
            let mut spec = a.spec.clone();
            spec.instances = a.instances.len().max(1) as u32;
            spec
        })
        .collect();
    let created = apps.create(specs)?;
    for app in &created {
        let mut held = app.context.sockets.lock().unwrap();
        for (_, saved, fd) in sockets.extract_if(.., |(name, ..)| *name == *app.name) {
            held.adopt(&saved, fd);
        }
    }
    let mut taken = Taken {
        kept: 0,
        started: 0,
    };
    let mut set = tokio::task::JoinSet::new();
    for (app, app_state) in created.into_iter().zip(&state.apps) {
        let adoptions: Vec<Adoption> = app_state
            .instances
            .iter()
            .map(|r| {
                let found = processes.iter().find(|h| h.id == r.id);
                let held = found.map(|h| h.process);
                let down = match r.status {
                    Status::Stopped | Status::Stopping => Some(Status::Stopped),
                    Status::Errored => Some(Status::Errored),
                    _ => None,
                };
                match (held, down) {
                    (Some(_), _) => taken.kept += 1,
                    (None, None) => taken.started += 1,
                    (None, Some(_)) => {}
                }
                Adoption {
                    id: r.id,
                    instance: r.instance,
                    beginning: Beginning {
                        restarts: if keep_restarts { r.restarts } else { 0 },
                        down: if held.is_some() { None } else { down },
                        held,
                    },
                    unique_id: found.map(|h| h.unique_id.clone()),
                }
            })
            .collect();
        set.spawn(async move { settled(app.run(Op::Adopt(adoptions)).await).await });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok(Err(e)) = joined {
            tracing::warn!("taking the apps back: {e}");
        }
    }
    Ok(taken)
}
