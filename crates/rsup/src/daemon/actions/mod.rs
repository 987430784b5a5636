//! What each control request does: find the apps it names, hand each the
//! operation, and describe the result. The apps do the work, one operation
//! at a time each (see [`super::app`]).

mod flush;
pub mod list;
pub mod pm2_list;
mod reload;
mod reload_logs;
mod reset;
mod scale;
mod signal;
mod start;
pub mod subscribe;

pub use list::describe;
pub use start::start;

use super::app::{AppHandle, Op, Outcome, Progress, Selection};
use super::lifecycle::Daemon;
use rsup_proto::control::{Reply, Request, SpecUpdate, Target};
use std::sync::Arc;

pub async fn handle(daemon: &Arc<Daemon>, request: Request, progress: Progress) -> Reply {
    match request {
        Request::Ping => Reply::Pong {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Start { apps, force } => start::start(daemon, apps, force).await,
        Request::Stop { target } => on_each_app(daemon, &target, Op::Stop).await,
        Request::Restart { target, update } => restart(daemon, &target, update).await,
        Request::Reload {
            target,
            options,
            update,
        } => reload::reload(daemon, &target, options, update, &progress).await,
        Request::Scale { name, count } => scale::scale(daemon, &name, count).await,
        Request::Delete { target } => on_each_app(daemon, &target, Op::Remove).await,
        Request::Apply {
            apps,
            action,
            options,
        } => start::apply(daemon, apps, action, options, &progress).await,
        Request::Signal { signal, targets } => signal::signal(daemon, &signal, &targets).await,
        Request::Reset { target } => reset::reset(daemon, &target).await,
        // The server writes a list itself (`list::list_line`).
        Request::List { .. } => error("a list is written by the server"),
        Request::ReloadLogs => reload_logs::reload_logs(daemon).await,
        Request::Flush { target } => flush::flush(daemon, target.as_ref(), &progress),
        Request::Environment { target } => list::environment(daemon, &target),
        Request::Kill => {
            stop_everything(daemon).await;
            Reply::Done { processes: vec![] }
        }
        // The server hands the connection to `reexec` before this.
        Request::ReExec { .. } => error("an update needs its own connection"),
        // The server hands a subscription its connection instead.
        Request::Subscribe { .. } => error("a subscription needs its own connection"),
    }
}

/// Restarts what the target names, every app at once, with the options
/// `update` changes.
async fn restart(daemon: &Daemon, target: &Target, update: SpecUpdate) -> Reply {
    let chosen = match targeted(daemon, target, &update) {
        Ok(chosen) => chosen,
        Err(message) => return error(message),
    };
    run_on_each(daemon, chosen, |selection| Op::Restart {
        selection,
        update: update.clone(),
    })
    .await
}

/// The apps a target names for a verb that acts on processes: naming none
/// is an error, `all` included, as in PM2. For an update with a new name,
/// the one app named, renamed at once.
fn targeted(
    daemon: &Daemon,
    target: &Target,
    update: &SpecUpdate,
) -> Result<Vec<(AppHandle, Selection)>, String> {
    let mut chosen = daemon.apps.resolve(target)?;
    if chosen.is_empty() {
        return Err("no process found".into());
    }
    if let Some(name) = &update.name {
        if chosen.len() > 1 {
            return Err(format!(
                "--name gives one app a new name, but {target} names {} apps",
                chosen.len()
            ));
        }
        let (app, selection) = chosen.remove(0);
        chosen.push((daemon.apps.rename(&app, name)?, selection));
    }
    Ok(chosen)
}

/// Gives every app the target names its operation, all at once, and
/// answers once all are done.
async fn on_each_app(daemon: &Daemon, target: &Target, op: impl Fn(Selection) -> Op) -> Reply {
    match targeted(daemon, target, &SpecUpdate::default()) {
        Ok(chosen) => run_on_each(daemon, chosen, op).await,
        Err(message) => error(message),
    }
}

async fn run_on_each(
    daemon: &Daemon,
    chosen: Vec<(AppHandle, Selection)>,
    op: impl Fn(Selection) -> Op,
) -> Reply {
    let mut set = tokio::task::JoinSet::new();
    for (app, selection) in chosen {
        let op = op(selection);
        set.spawn(async move { app.run(op).await });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = set.join_next().await {
        outcomes.push(joined.unwrap_or_else(|e| Err(format!("internal error: {e}"))));
    }
    reply(daemon, outcomes)
}

/// One reply for the outcomes of several apps: every failure, or the
/// instances they concerned.
fn reply(daemon: &Daemon, outcomes: Vec<Outcome>) -> Reply {
    let mut handles = Vec::new();
    let mut failures = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(h) => handles.extend(h),
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        return error(failures.join("\n"));
    }
    handles.sort_by_key(|h| h.identity.id);
    Reply::Done {
        processes: describe(daemon, &handles),
    }
}

/// Stops every instance gracefully, all at once, and forgets them.
pub async fn stop_everything(daemon: &Daemon) {
    // Before anything is stopped: should the daemon die meanwhile, its
    // keeper must not start another.
    if let Some(keeper) = &daemon.apps.env.keeper {
        keeper.ending().await;
    }
    crate::daemon::systemd::stopping();
    daemon.readiness.stop_begins();
    let _ = on_each_app(daemon, &Target::All, Op::Remove).await;
}

fn error(message: impl Into<String>) -> Reply {
    Reply::Error {
        message: message.into(),
    }
}
