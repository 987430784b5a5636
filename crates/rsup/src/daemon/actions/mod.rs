//! What each control request does: find the apps it names, hand each the
//! operation, and describe the result. The apps do the work, one operation
//! at a time each (see [`super::app`]).

mod flush;
mod list;
mod reload;
mod reload_logs;
mod reset;
mod scale;
mod signal;
mod start;
pub mod subscribe;

pub use list::describe;
pub use start::start;

use super::app::{Op, Outcome, Progress, Selection};
use super::lifecycle::Daemon;
use rsup_proto::control::{Reply, Request, Target};
use std::sync::Arc;

pub async fn handle(daemon: &Arc<Daemon>, request: Request, progress: Progress) -> Reply {
    match request {
        Request::Ping => Reply::Pong {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Start { apps } => start::start(daemon, apps).await,
        Request::Stop { target } => on_each_app(daemon, &target, Op::Stop).await,
        Request::Restart { target } => on_each_app(daemon, &target, Op::Restart).await,
        Request::Reload { target, options } => {
            reload::reload(daemon, &target, options, &progress).await
        }
        Request::Scale { name, count } => scale::scale(daemon, &name, count).await,
        Request::Delete { target } => on_each_app(daemon, &target, Op::Remove).await,
        Request::Apply {
            apps,
            action,
            options,
        } => start::apply(daemon, apps, action, options, &progress).await,
        Request::Signal { signal, targets } => signal::signal(daemon, &signal, &targets).await,
        Request::Reset { target } => reset::reset(daemon, &target).await,
        Request::List { target } => list::list(daemon, target.as_ref()),
        Request::ReloadLogs => reload_logs::reload_logs(daemon).await,
        Request::Flush { target } => flush::flush(daemon, target.as_ref(), &progress),
        Request::Kill => {
            stop_everything(daemon).await;
            Reply::Done { processes: vec![] }
        }
        // The server hands the connection to `retire` before this.
        Request::HandOver { .. } => error("a hand-over needs its own connection"),
        // The server hands a subscription its connection instead.
        Request::Subscribe { .. } => error("a subscription needs its own connection"),
    }
}

/// Gives every app the target names its operation, all at once, and
/// answers once all are done.
async fn on_each_app(daemon: &Daemon, target: &Target, op: impl Fn(Selection) -> Op) -> Reply {
    let chosen = match daemon.apps.resolve(target) {
        Ok(chosen) => chosen,
        Err(message) => return error(message),
    };
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
    crate::daemon::systemd::stopping();
    let _ = on_each_app(daemon, &Target::All, Op::Remove).await;
}

fn error(message: impl Into<String>) -> Reply {
    Reply::Error {
        message: message.into(),
    }
}
