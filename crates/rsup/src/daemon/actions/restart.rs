//! `restart` (all targeted instances at once) and `reload` (one instance at
//! a time, so the others keep serving).

use super::{done, error, for_each, targeted, Progress};
use crate::daemon::instance::InstanceHandle;
use crate::daemon::lifecycle::Daemon;
use rsup_proto::app::AppSpec;
use rsup_proto::app::Status;
use rsup_proto::control::{Reply, Target};
use std::sync::Arc;

pub async fn restart(daemon: &Arc<Daemon>, target: &Target) -> Reply {
    let handles = match targeted(daemon, target) {
        Ok(h) => h,
        Err(e) => return error(e),
    };
    for_each(&handles, |h| async move { h.restart(None).await }).await;
    done(daemon, &handles)
}

/// Restarts instance by instance, waiting for each to be ready before the
/// next, and stops at the first one that fails to come back.
pub async fn reload(daemon: &Arc<Daemon>, target: &Target, progress: &Progress) -> Reply {
    let handles = match targeted(daemon, target) {
        Ok(h) => h,
        Err(e) => return error(e),
    };
    match reload_instances(&handles, None, progress).await {
        Ok(()) => done(daemon, &handles),
        Err(message) => error(message),
    }
}

/// Reloads `handles` in order, giving each `spec` if set.
pub async fn reload_instances(
    handles: &[InstanceHandle],
    spec: Option<Arc<AppSpec>>,
    progress: &Progress,
) -> Result<(), String> {
    for h in handles {
        let name = &h.identity.name;
        let id = h.identity.id;
        let _ = progress.send(Reply::Progress {
            message: format!("reloading {name} (id {id})"),
        });
        h.restart(spec.clone()).await;
        let status = h.state().status;
        if status != Status::Online {
            return Err(format!(
                "{name} (id {id}) did not come back online after reload (status: {}); see {}",
                status.as_str(),
                h.identity.err_log.display()
            ));
        }
        let _ = progress.send(Reply::Progress {
            message: format!("{name} (id {id}) is online"),
        });
    }
    Ok(())
}
