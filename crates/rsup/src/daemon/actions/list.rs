//! `list` (and what `describe` and `logs` show): the instances a target
//! names, with their state and resource use.

use crate::daemon::instance::InstanceHandle;
use crate::daemon::lifecycle::Daemon;
use rsup_proto::app::ProcessInfo;
use rsup_proto::control::{Reply, Target};

pub fn list(daemon: &Daemon, target: Option<&Target>) -> Reply {
    let handles = match target {
        None => daemon.apps.instances(),
        Some(target) => match daemon.apps.resolve_instances(target) {
            Ok(h) => h,
            Err(message) => return Reply::Error { message },
        },
    };
    let processes = describe(daemon, &handles);
    if target.is_none() {
        // A full list sees every live pid: forget the others' samples.
        let live: Vec<u32> = processes.iter().filter_map(|p| p.pid).collect();
        daemon.sampler.lock().unwrap().retain(&live);
    }
    Reply::Done { processes }
}

pub fn describe(daemon: &Daemon, handles: &[InstanceHandle]) -> Vec<ProcessInfo> {
    let mut sampler = daemon.sampler.lock().unwrap();
    handles
        .iter()
        .map(|h| {
            let state = h.state();
            let usage = state.pid.map(|pid| sampler.sample(pid));
            ProcessInfo {
                id: h.identity.id,
                name: h.identity.name.clone(),
                instance: h.identity.instance,
                status: state.status,
                pid: state.pid,
                restarts: state.restarts,
                unstable_restarts: state.unstable_restarts,
                started_at_ms: state.started_at_ms,
                cpu_percent: usage.as_ref().map_or(0.0, |u| u.cpu_percent),
                memory_bytes: usage.as_ref().map_or(0, |u| u.memory_bytes),
                last_exit: state.last_exit,
                out_log: h.identity.out_log.clone(),
                err_log: h.identity.err_log.clone(),
                spec: (*state.spec).clone(),
            }
        })
        .collect()
}
