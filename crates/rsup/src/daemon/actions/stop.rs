//! `stop`, `delete`, and stopping everything when the daemon exits.

use super::{describe, done, for_each, targeted};
use crate::daemon::instance::InstanceHandle;
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
    remove_instances(daemon, &handles).await;
    Reply::Done {
        processes: describe(daemon, &handles),
    }
}

/// Stops `handles` and forgets them. An app left with no instance gives up
/// its sockets.
pub async fn remove_instances(daemon: &Daemon, handles: &[InstanceHandle]) {
    for_each(handles, |h| async move { h.remove().await }).await;
    let mut registry = daemon.registry.lock().unwrap();
    for h in handles {
        registry.remove(h.identity.id);
    }
    let mut sockets = daemon.shared.sockets.lock().unwrap();
    for h in handles {
        if registry.ids_of(&h.identity.name).is_empty() {
            sockets.release(&h.identity.name);
        }
    }
}

/// Keeps the `wanted` instances with the lowest indexes in `handles` and
/// removes the rest.
pub async fn shrink_to(daemon: &Daemon, handles: &mut Vec<InstanceHandle>, wanted: usize) {
    handles.sort_by_key(|h| h.identity.instance);
    if handles.len() > wanted {
        let extra = handles.split_off(wanted);
        remove_instances(daemon, &extra).await;
    }
}

/// Stops every instance gracefully, all at once, and forgets them.
pub async fn stop_everything(daemon: &Arc<Daemon>) {
    let _ = delete(daemon, &Target::from("all")).await;
}
