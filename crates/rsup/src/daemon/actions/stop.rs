//! `stop`, `delete`, and stopping everything when the daemon exits.

use super::{describe, done, for_each, targeted};
use crate::daemon::lifecycle::Daemon;
use rsup_proto::control::{Reply, Target};
use std::sync::Arc;

pub async fn stop(daemon: &Arc<Daemon>, target: &Target) -> Reply {
    let handles = match targeted(daemon, target) {
        Ok(h) => h,
        Err(e) => return super::error(e),
    };
    for_each(&handles, |h| async move { h.stop().await }).await;
    done(daemon, &handles)
}

pub async fn delete(daemon: &Arc<Daemon>, target: &Target) -> Reply {
    let handles = match targeted(daemon, target) {
        Ok(h) => h,
        Err(e) => return super::error(e),
    };
    for_each(&handles, |h| async move { h.remove().await }).await;
    let processes = describe(daemon, &handles);
    let mut registry = daemon.registry.lock().unwrap();
    for h in &handles {
        registry.remove(h.identity.id);
    }
    // An app with no instance left gives up its sockets.
    let mut sockets = daemon.shared.sockets.lock().unwrap();
    for h in &handles {
        if registry.ids_of(&h.identity.name).is_empty() {
            sockets.release(&h.identity.name);
        }
    }
    Reply::Done { processes }
}

/// Stops every instance gracefully, all at once, and forgets them.
pub async fn stop_everything(daemon: &Arc<Daemon>) {
    let _ = delete(daemon, &Target::from("all")).await;
}
