//! `sendSignal`: a signal to the main process of each running instance the
//! targets name, as PM2 sends it (not to the process group, and not to
//! instances that are not running). An instance named twice gets it once.

use super::{error, Reply};
use crate::daemon::lifecycle::Daemon;
use nix::sys::signal::Signal;
use rsup_proto::control::Target;
use std::str::FromStr;

pub async fn signal(daemon: &Daemon, name: &str, targets: &[Target]) -> Reply {
    let Ok(signal) = Signal::from_str(name) else {
        return error(format!("not a signal name: {name:?}"));
    };
    let mut chosen = Vec::new();
    for target in targets {
        match daemon.apps.resolve_instances(target) {
            Ok(found) => chosen.extend(found),
            Err(message) => return error(message),
        }
    }
    chosen.sort_by_key(|h| h.identity.id);
    chosen.dedup_by_key(|h| h.identity.id);
    let by_id_alone = matches!(targets, [Target::Id(_)]);
    let mut reached = Vec::new();
    let mut missed = Vec::new();
    for h in chosen {
        match h.signal(signal).await {
            Ok(()) => reached.push(h),
            Err(why) => missed.push(why),
        }
    }
    // Named alone by id, an instance that is not running is an error;
    // named as a group, it is enough that one process got the signal.
    if reached.is_empty() || by_id_alone && !missed.is_empty() {
        return error(missed.join("\n"));
    }
    Reply::Done {
        processes: super::describe(daemon, &reached),
    }
}
