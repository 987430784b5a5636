//! `reload`: each named app replaces its instances without a gap, with
//! the options `update` changes. Apps go one after another, and the first
//! failure ends the reload: what was not reached keeps its old processes.

use super::{error, reply, targeted};
use crate::daemon::app::{Op, Progress};
use crate::daemon::lifecycle::Daemon;
use rsup_proto::control::{ReloadOptions, Reply, SpecUpdate, Target};

pub async fn reload(
    daemon: &Daemon,
    target: &Target,
    options: ReloadOptions,
    update: SpecUpdate,
    progress: &Progress,
) -> Reply {
    // `systemctl reload` runs `rsup reload all`: the unit shows reloading
    // until every app is done.
    let _reloading = (*target == Target::All).then(crate::daemon::systemd::Reloading::begin);
    let chosen = match targeted(daemon, target, &update) {
        Ok(chosen) => chosen,
        Err(message) => return error(message),
    };
    let mut outcomes = Vec::new();
    for (app, selection) in chosen {
        let outcome = app
            .run(Op::Reload {
                selection,
                options,
                update: update.clone(),
                progress: progress.clone(),
            })
            .await;
        let failed = outcome.is_err();
        outcomes.push(outcome);
        if failed {
            break;
        }
    }
    reply(daemon, outcomes)
}
