//! `start`: new apps, each with its instances.

use super::{done, error};
use crate::daemon::instance::InstanceHandle;
use crate::daemon::lifecycle::Daemon;
use rsup_proto::app::AppSpec;
use rsup_proto::control::Reply;
use std::sync::Arc;

/// Starts every app, refusing all of them if any name already runs, and
/// returns once each instance is ready or has failed.
pub async fn start(daemon: &Arc<Daemon>, apps: Vec<AppSpec>) -> Reply {
    {
        let registry = daemon.registry.lock().unwrap();
        if let Some(app) = apps.iter().find(|a| !registry.ids_of(&a.name).is_empty()) {
            return error(format!(
                "app \"{}\" is already running; use restart, reload or delete",
                app.name
            ));
        }
    }
    let mut started = Vec::new();
    for app in apps {
        let app = Arc::new(app);
        started.extend(start_instances(daemon, &app, app.instances).await);
    }
    done(daemon, &started)
}

/// Adds `count` instances of `spec` and waits until each is ready or has
/// failed.
pub async fn start_instances(
    daemon: &Arc<Daemon>,
    spec: &Arc<AppSpec>,
    count: u32,
) -> Vec<InstanceHandle> {
    let mut handles = Vec::new();
    let mut settled = Vec::new();
    for _ in 0..count {
        let mut registry = daemon.registry.lock().unwrap();
        let identity = registry.new_identity(spec, &daemon.home);
        let (handle, ready) = InstanceHandle::start(identity, spec.clone(), daemon.shared.clone());
        registry.insert(handle.clone());
        handles.push(handle);
        settled.push(ready);
    }
    for ready in settled {
        let _ = ready.await;
    }
    handles
}
