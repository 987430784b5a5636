//! `list` (and what `describe` and `logs` show): the instances a target
//! names, with their state and resource use; `env`: the same with the
//! environment they inherit.

use crate::daemon::instance::{Identity, InstanceHandle, InstanceState};
use crate::daemon::lifecycle::Daemon;
use crate::daemon::log_writer::LogHealth;
use crate::daemon::metrics::Usage;
use rsup_proto::app::ProcessInfo;
use rsup_proto::control::{Reply, Target};
use std::sync::Arc;

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

/// The processes `target` names, each spec whole (with the environment
/// its processes inherit, which lists leave out).
pub fn environment(daemon: &Daemon, target: &Target) -> Reply {
    match daemon.apps.resolve_instances(target) {
        Ok(handles) => Reply::Done {
            processes: report(daemon, &handles, true),
        },
        Err(message) => Reply::Error { message },
    }
}

/// What lists show about these instances: the inherited environment (the
/// whole environment of the shell that started them) is left out.
pub fn describe(daemon: &Daemon, handles: &[InstanceHandle]) -> Vec<ProcessInfo> {
    report(daemon, handles, false)
}

fn report(daemon: &Daemon, handles: &[InstanceHandle], inherited: bool) -> Vec<ProcessInfo> {
    let mut sampler = daemon.sampler.lock().unwrap();
    handles
        .iter()
        .map(|h| {
            let state = h.state();
            let usage = state.pid.map(|pid| sampler.sample(pid));
            let node_version = state
                .spec
                .node
                .then(|| daemon.node_versions.of(state.spec.interpreter.as_deref()?))
                .flatten();
            ProcessInfo {
                node_version,
                ..process_info(&h.identity, state, usage, inherited)
            }
        })
        .collect()
}

/// What is reported about an instance in this state; `usage` is its
/// process's CPU and memory, when measured. The inherited environment
/// (the whole environment of the shell that started it) is left out
/// unless `inherited`.
pub fn process_info(
    identity: &Identity,
    state: InstanceState,
    usage: Option<Usage>,
    inherited: bool,
) -> ProcessInfo {
    let (log_error, log_dropped_bytes) = log_report(&state.log_health);
    let mut spec = (*state.spec).clone();
    if !inherited {
        spec.inherited_env.clear();
    }
    ProcessInfo {
        id: identity.id,
        // The name the app has now (it may have been renamed).
        name: spec.name.clone(),
        instance: identity.instance,
        status: state.status,
        pid: state.pid,
        restarts: state.restarts,
        unstable_restarts: state.unstable_restarts,
        started_at_ms: state.started_at_ms,
        created_at_ms: identity.created_at_ms,
        unique_id: identity.unique_id.clone(),
        node_version: None,
        cpu_percent: usage.as_ref().map_or(0.0, |u| u.cpu_percent),
        memory_bytes: usage.as_ref().map_or(0, |u| u.memory_bytes),
        last_exit: state.last_exit,
        out_log: identity.out_log.clone(),
        err_log: identity.err_log.clone(),
        combined_log: identity.combined_log.clone(),
        pid_file: identity.pid_file.clone(),
        spec,
        log_error,
        log_dropped_bytes,
    }
}

/// What is wrong with an instance's logs now, and how much output they
/// have lost; a file that is two of its logs (out and error) counts once.
fn log_report(files: &[Arc<LogHealth>]) -> (Option<String>, u64) {
    let mut distinct: Vec<&Arc<LogHealth>> = Vec::new();
    for f in files {
        if !distinct.iter().any(|d| Arc::ptr_eq(d, f)) {
            distinct.push(f);
        }
    }
    let reports: Vec<_> = distinct.iter().map(|h| h.report()).collect();
    let errors: Vec<&str> = reports.iter().filter_map(|r| r.error.as_deref()).collect();
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    (error, reports.iter().map(|r| r.dropped_bytes).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_errors_are_joined_and_a_shared_file_counts_once() {
        let out = Arc::new(LogHealth::default());
        let err = Arc::new(LogHealth::default());
        assert_eq!(log_report(&[out.clone(), err.clone()]), (None, 0));
        out.failing("cannot write o.log: full");
        out.dropped(10);
        err.failing("cannot open e.log: gone");
        err.dropped(5);
        assert_eq!(
            log_report(&[out.clone(), err.clone()]),
            (
                Some("cannot write o.log: full; cannot open e.log: gone".into()),
                15
            )
        );
        assert_eq!(
            log_report(&[out.clone(), out.clone()]),
            (Some("cannot write o.log: full".into()), 10)
        );
        out.writing();
        assert_eq!(log_report(&[out.clone(), out]), (None, 10));
    }
}
