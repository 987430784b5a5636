//! `start` (new apps; a stopped app of the same script again; with `-f`,
//! more processes for an app) and `startOrRestart`/`startOrReload` (start
//! what is new, restart or reload what runs with the file's new options).

use super::{error, reply};
use crate::daemon::app::{settled, Op, Progress, Selection};
use crate::daemon::apps::Claim;
use crate::daemon::lifecycle::Daemon;
use rsup_proto::app::AppSpec;
use rsup_proto::control::{ApplyAction, ReloadOptions, Reply, SpecUpdate};
use std::sync::Arc;

/// Starts every app, or none when any is refused (names are claimed at
/// once, before anything starts; see [`crate::daemon::apps::Apps::claim`]),
/// and answers once each instance is ready or has failed.
pub async fn start(daemon: &Daemon, apps: Vec<AppSpec>, force: bool) -> Reply {
    // Learnt meanwhile, for the list that usually follows.
    for spec in apps.iter().filter(|s| s.node) {
        if let Some(interpreter) = &spec.interpreter {
            daemon.node_versions.of(interpreter);
        }
    }
    let claimed = match daemon.apps.claim(apps, force) {
        Ok(claimed) => claimed,
        Err(message) => return error(message),
    };
    // In file order, so that ids follow it as PM2's do.
    let mut outcomes = Vec::new();
    for (spec, claim) in claimed {
        let outcome = match claim {
            Claim::Created(app) => app.run(Op::Start(spec.instances)).await,
            Claim::StartAgain(app) => {
                app.run(Op::Restart {
                    selection: Selection::All,
                    update: SpecUpdate::default(),
                })
                .await
            }
            Claim::AddTo(app) => {
                let count = spec.instances;
                app.run(Op::Add {
                    spec: Arc::new(spec),
                    count,
                })
                .await
            }
        };
        outcomes.push(settled(outcome).await);
    }
    reply(daemon, outcomes)
}

/// Brings the running apps in line with a config file: the names of its
/// apps are taken at once, then app by app new ones start and running ones
/// restart or reload. After a failure the running apps not yet reached
/// keep their processes; the file's new apps still start.
pub async fn apply(
    daemon: &Daemon,
    apps: Vec<AppSpec>,
    action: ApplyAction,
    options: ReloadOptions,
    progress: &Progress,
) -> Reply {
    let found = match daemon.apps.get_or_create_all(&apps) {
        Ok(found) => found,
        Err(message) => return error(message),
    };
    let mut outcomes = Vec::new();
    let mut failed = false;
    for (spec, (app, created)) in apps.into_iter().zip(found) {
        if created {
            let _ = progress.send(Reply::Progress {
                message: format!("starting {}", spec.name),
            });
            outcomes.push(settled(app.run(Op::Start(spec.instances)).await).await);
            continue;
        }
        if failed {
            continue;
        }
        let outcome = app
            .run(Op::Apply {
                spec: Arc::new(spec),
                action,
                options,
                progress: progress.clone(),
            })
            .await;
        failed = outcome.is_err();
        outcomes.push(outcome);
    }
    reply(daemon, outcomes)
}
