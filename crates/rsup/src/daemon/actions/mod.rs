//! What each control request does. One file per family of commands; the
//! instance tasks do the actual process work.

mod apply;
mod restart;
mod start;
mod stop;

pub use start::start;
pub use stop::stop_everything;

use super::instance::InstanceHandle;
use super::lifecycle::Daemon;
use rsup_proto::app::ProcessInfo;
use rsup_proto::control::{Reply, Request, Target};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// Where an action reports its steps as they happen.
pub type Progress = UnboundedSender<Reply>;

pub async fn handle(daemon: &Arc<Daemon>, request: Request, progress: Progress) -> Reply {
    match request {
        Request::Ping => Reply::Pong {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Start { apps } => start::start(daemon, apps).await,
        Request::Stop { target } => stop::stop(daemon, &target).await,
        Request::Restart { target } => restart::restart(daemon, &target).await,
        Request::Reload { target, options } => {
            restart::reload(daemon, &target, options, &progress).await
        }
        Request::Scale { name, instances } => restart::scale(daemon, &name, instances).await,
        Request::Delete { target } => stop::delete(daemon, &target).await,
        Request::Apply {
            apps,
            action,
            options,
        } => apply::apply(daemon, apps, action, options, &progress).await,
        Request::List => {
            let all = daemon.registry.lock().unwrap().all();
            let processes = describe(daemon, &all);
            // A full list sees every live pid: forget the others' samples.
            let live: Vec<u32> = processes.iter().filter_map(|p| p.pid).collect();
            daemon.sampler.lock().unwrap().retain(&live);
            Reply::Done { processes }
        }
        Request::Kill => {
            stop_everything(daemon).await;
            Reply::Done { processes: vec![] }
        }
    }
}

/// The instances a target names.
fn targeted(daemon: &Daemon, target: &Target) -> Result<Vec<InstanceHandle>, String> {
    let registry = daemon.registry.lock().unwrap();
    let ids = registry.resolve(target)?;
    Ok(registry.handles(&ids))
}

/// Runs `f` on every handle at once and waits for all of them.
async fn for_each<F, Fut>(handles: &[InstanceHandle], f: F)
where
    F: Fn(InstanceHandle) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for h in handles {
        set.spawn(f(h.clone()));
    }
    while set.join_next().await.is_some() {}
}

/// The final reply describing `handles`.
fn done(daemon: &Daemon, handles: &[InstanceHandle]) -> Reply {
    Reply::Done {
        processes: describe(daemon, handles),
    }
}

pub fn describe(daemon: &Daemon, handles: &[InstanceHandle]) -> Vec<ProcessInfo> {
    let mut sampler = daemon.sampler.lock().unwrap();
    handles
        .iter()
        .map(|h| {
            let state = h.state();
            let usage = state.pid.map(|pid| sampler.sample(pid));
            ProcessInfo {
                id: h.identity.id,
                name: h.identity.name.clone(),
                instance: h.identity.instance,
                status: state.status,
                pid: state.pid,
                restarts: state.restarts,
                unstable_restarts: state.unstable_restarts,
                started_at_ms: state.started_at_ms,
                cpu_percent: usage.as_ref().map_or(0.0, |u| u.cpu_percent),
                memory_bytes: usage.as_ref().map_or(0, |u| u.memory_bytes),
                last_exit: state.last_exit,
                out_log: h.identity.out_log.clone(),
                err_log: h.identity.err_log.clone(),
                spec: (*state.spec).clone(),
            }
        })
        .collect()
}

fn error(message: impl Into<String>) -> Reply {
    Reply::Error {
        message: message.into(),
    }
}
