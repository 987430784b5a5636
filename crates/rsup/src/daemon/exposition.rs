//! `/metrics`: the daemon's state in the Prometheus text format
//! (OpenMetrics 1.0), read afresh from the instances at each scrape; the
//! reloads come from their record ([`super::reload_record`]).

use super::health;
use super::lifecycle::Daemon;
use super::metrics::cpu_seconds_and_memory;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rsup_proto::app::Status;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every status, so that a dashboard sees 0 rather than nothing.
const STATUSES: [Status; 6] = [
    Status::Launching,
    Status::Online,
    Status::Stopping,
    Status::Stopped,
    Status::WaitingRestart,
    Status::Errored,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    app: String,
    status: &'static str,
}

/// One instance: its app, its `pm_id` and its `NODE_APP_INSTANCE`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    app: String,
    id: u32,
    instance: u32,
}

pub fn render(daemon: &Daemon) -> String {
    let by_status = Family::<StatusLabels, Gauge>::default();
    let restarts = Family::<InstanceLabels, Counter>::default();
    let cpu = Family::<InstanceLabels, Counter<f64, AtomicU64>>::default();
    let memory = Family::<InstanceLabels, Gauge>::default();
    let ready = Gauge::<i64>::default();

    let instances = daemon.apps.instances();
    let apps: BTreeSet<String> = instances
        .iter()
        .map(|h| h.state().spec.name.clone())
        .collect();
    for app in apps {
        for status in STATUSES {
            by_status
                .get_or_create(&StatusLabels {
                    app: app.clone(),
                    status: status.as_str(),
                })
                .set(0);
        }
    }
    for h in &instances {
        let state = h.state();
        let app = state.spec.name.clone();
        by_status
            .get_or_create(&StatusLabels {
                app: app.clone(),
                status: state.status.as_str(),
            })
            .inc();
        let labels = InstanceLabels {
            app,
            id: h.identity.id,
            instance: h.identity.instance,
        };
        restarts
            .get_or_create(&labels)
            .inc_by(state.restarts.into());
        if let Some((seconds, bytes)) = state.pid.and_then(cpu_seconds_and_memory) {
            cpu.get_or_create(&labels).inc_by(seconds);
            memory
                .get_or_create(&labels)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
    ready.set(health::ready(daemon).is_ok().into());

    let mut registry = Registry::default();
    registry.register(
        "rsup_ready",
        "1 while /readyz answers 200: every instance online and no stop begun",
        ready,
    );
    registry.register(
        "rsup_instances",
        "Instances of each app by status",
        by_status,
    );
    registry.register(
        "rsup_instance_restarts",
        "Restarts of each instance (crashes, restarts and reloads), as rsup list counts them",
        restarts,
    );
    registry.register(
        "rsup_instance_cpu_seconds",
        "CPU time used by the instance's current process, user and system",
        cpu,
    );
    registry.register(
        "rsup_instance_memory_bytes",
        "Resident memory of the instance's current process",
        memory,
    );
    daemon.apps.env.reloads.register(&mut registry);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}
