//! `start` (new apps only) and `startOrRestart`/`startOrReload` (start what
//! is new, restart or reload what runs with the file's new options).

use super::{error, reply};
use crate::daemon::app::{settled, Op, Progress};
use crate::daemon::lifecycle::Daemon;
use rsup_proto::app::AppSpec;
use rsup_proto::control::{ApplyAction, ReloadOptions, Reply};
use std::sync::Arc;

/// Starts every app, refusing all of them if any name is taken (names are
/// taken at once, before anything starts), and answers once each instance
/// is ready or has failed.
pub async fn start(daemon: &Daemon, apps: Vec<AppSpec>) -> Reply {
    let counts: Vec<u32> = apps.iter().map(|a| a.instances).collect();
    let created = match daemon.apps.create(apps) {
        Ok(created) => created,
        Err(message) => return error(message),
    };
    // In file order, so that ids follow it as PM2's do.
    let mut outcomes = Vec::new();
    for (app, count) in created.into_iter().zip(counts) {
        outcomes.push(settled(app.run(Op::Start(count)).await).await);
    }
    reply(daemon, outcomes)
}

/// Brings the running apps in line with a config file, app by app; the
/// first failure ends it.
pub async fn apply(
    daemon: &Daemon,
    apps: Vec<AppSpec>,
    action: ApplyAction,
    options: ReloadOptions,
    progress: &Progress,
) -> Reply {
    let mut outcomes = Vec::new();
    for spec in apps {
        let (app, created) = match daemon.apps.get_or_create(&spec) {
            Ok(found) => found,
            Err(message) => {
                outcomes.push(Err(message));
                break;
            }
        };
        let op = if created {
            let _ = progress.send(Reply::Progress {
                message: format!("starting {}", spec.name),
            });
            Op::Start(spec.instances)
        } else {
            Op::Apply {
                spec: Arc::new(spec),
                action,
                options,
                progress: progress.clone(),
            }
        };
        let outcome = if created {
            settled(app.run(op).await).await
        } else {
            app.run(op).await
        };
        let failed = outcome.is_err();
        outcomes.push(outcome);
        if failed {
            break;
        }
    }
    reply(daemon, outcomes)
}
