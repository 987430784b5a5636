//! `startOrRestart` / `startOrReload` / `startOrGracefulReload`: bring the
//! running apps in line with a config file.

use super::restart::reload_instances;
use super::start::start_instances;
use super::stop::shrink_to;
use super::{done, error, for_each, Progress};
use crate::daemon::instance::InstanceHandle;
use crate::daemon::lifecycle::Daemon;
use rsup_proto::app::AppSpec;
use rsup_proto::control::{ApplyAction, ReloadOptions, Reply};
use std::sync::Arc;

pub async fn apply(
    daemon: &Arc<Daemon>,
    apps: Vec<AppSpec>,
    action: ApplyAction,
    options: ReloadOptions,
    progress: &Progress,
) -> Reply {
    let mut touched: Vec<InstanceHandle> = Vec::new();
    for app in apps {
        let spec = Arc::new(app);
        let mut running: Vec<InstanceHandle> = {
            let registry = daemon.registry.lock().unwrap();
            let ids = registry.ids_of(&spec.name);
            registry.handles(&ids)
        };
        if running.is_empty() {
            let _ = progress.send(Reply::Progress {
                message: format!("starting {}", spec.name),
            });
            touched.extend(start_instances(daemon, &spec, spec.instances).await);
            continue;
        }
        // Fewer instances than before: the highest indexes go.
        let wanted = spec.instances as usize;
        shrink_to(daemon, &mut running, wanted).await;
        match action {
            ApplyAction::Restart => {
                let new = spec.clone();
                for_each(&running, move |h| {
                    let new = new.clone();
                    async move { h.restart(Some(new)).await }
                })
                .await;
            }
            ApplyAction::Reload => {
                if let Err(message) =
                    reload_instances(daemon, &running, Some(spec.clone()), options, progress).await
                {
                    return error(message);
                }
            }
        }
        touched.extend(running.iter().cloned());
        let missing = wanted.saturating_sub(running.len()) as u32;
        if missing > 0 {
            touched.extend(start_instances(daemon, &spec, missing).await);
        }
    }
    done(daemon, &touched)
}
