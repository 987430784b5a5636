//! `reset`: the restart counters of the instances a target names go back
//! to zero (PM2's `reset`); nothing is stopped or started.

use super::{error, Reply};
use crate::daemon::lifecycle::Daemon;
use rsup_proto::control::Target;

pub async fn reset(daemon: &Daemon, target: &Target) -> Reply {
    let chosen = match daemon.apps.resolve_instances(target) {
        Ok(chosen) => chosen,
        Err(message) => return error(message),
    };
    for h in &chosen {
        h.reset().await;
    }
    Reply::Done {
        processes: super::describe(daemon, &chosen),
    }
}
