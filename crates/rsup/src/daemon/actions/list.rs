//! `list` (and what `describe` and `logs` show): the instances a target
//! names, with their state and resource use; `env`: the same with the
//! environment they inherit.

use crate::daemon::instance::{Identity, InstanceHandle, InstanceState};
use crate::daemon::lifecycle::Daemon;
use crate::daemon::log_writer::LogHealth;
use crate::daemon::metrics::Usage;
use rsup_proto::app::{AppSpec, ProcessInfo};
use rsup_proto::control::{Reply, Target};
use rsup_proto::framing::encode;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// The reply to `list`, encoded: a [`Reply::Done`] of every
/// [`ProcessInfo`], written from the instances' states with their specs
/// borrowed, so a list of a thousand processes copies no spec or
/// environment. An app whose spec carries an inherited environment has it
/// left out once, not once per instance. With `pm2`, a [`Reply::Pm2List`]
/// (see [`super::pm2_list`]).
pub fn list_line(daemon: &Daemon, target: Option<&Target>, pm2: bool) -> Vec<u8> {
    let handles = match target {
        None => daemon.apps.instances(),
        Some(target) => match daemon.apps.resolve_instances(target) {
            Ok(h) => h,
            Err(message) => return encode(&Reply::Error { message }),
        },
    };
    if pm2 {
        return super::pm2_list::line(daemon, &handles);
    }
    let states: Vec<InstanceState> = handles.iter().map(|h| h.state()).collect();
    let mut shown: HashMap<*const AppSpec, Option<AppSpec>> = HashMap::new();
    for state in &states {
        shown
            .entry(Arc::as_ptr(&state.spec))
            .or_insert_with(|| without_inherited(&state.spec));
    }
    let processes: Vec<ProcessInfo<&AppSpec>> = handles
        .iter()
        .zip(&states)
        .map(|(h, state)| {
            let spec = shown[&Arc::as_ptr(&state.spec)]
                .as_ref()
                .unwrap_or(&state.spec);
            let usage = state.pid.map(|pid| daemon.usage.of(pid));
            ProcessInfo {
                node_version: node_version(daemon, state),
                ..report_with(&h.identity, state, usage, spec)
            }
        })
        .collect();
    // About a kilobyte per process: sized once, rather
    // than grown (and copied) step by step to a megabyte.
    let mut line = Vec::with_capacity(1024 * (processes.len() + 1));
    let written = serde_json::to_writer(
        &mut line,
        &ListReply {
            reply: "done",
            processes,
        },
    );
    match written {
        Ok(()) => {
            line.push(b'\n');
            line
        }
        // A path that is not UTF-8 has no JSON form.
        Err(e) => encode(&Reply::Error {
            message: format!("cannot write the list: {e}"),
        }),
    }
}

/// `spec` less its inherited environment, when it has one.
fn without_inherited(spec: &AppSpec) -> Option<AppSpec> {
    (!spec.inherited_env.is_empty()).then(|| {
        let mut shown = spec.clone();
        shown.inherited_env.clear();
        shown
    })
}

/// [`Reply::Done`], tag first, as it is encoded.
#[derive(Serialize)]
struct ListReply<'a> {
    reply: &'static str,
    processes: Vec<ProcessInfo<&'a AppSpec>>,
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
    handles
        .iter()
        .map(|h| {
            let state = h.state();
            let usage = state.pid.map(|pid| daemon.usage.of(pid));
            ProcessInfo {
                node_version: node_version(daemon, &state),
                ..process_info(&h.identity, state, usage, inherited)
            }
        })
        .collect()
}

/// The Node version a Node app's interpreter reports.
pub(super) fn node_version(daemon: &Daemon, state: &InstanceState) -> Option<String> {
    let spec = &state.spec;
    spec.node
        .then(|| daemon.node_versions.of(spec.interpreter.as_deref()?))
        .flatten()
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
    let mut spec = (*state.spec).clone();
    if !inherited {
        spec.inherited_env.clear();
    }
    report_with(identity, &state, usage, &()).with_spec(spec)
}

/// The report of an instance in this state, with `spec` as its spec.
fn report_with<'a, S: ?Sized>(
    identity: &Identity,
    state: &InstanceState,
    usage: Option<Usage>,
    spec: &'a S,
) -> ProcessInfo<&'a S> {
    let (log_error, log_dropped_bytes) = log_report(&state.log_health);
    ProcessInfo {
        id: identity.id,
        // The name the app has now (it may have been renamed).
        name: state.spec.name.clone(),
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
        last_exit: state.last_exit.clone(),
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
/// Nothing is allocated for logs that are well, as most are: a list does
/// this for every instance.
pub(super) fn log_report(files: &[Arc<LogHealth>]) -> (Option<String>, u64) {
    let mut error: Option<String> = None;
    let mut dropped = 0;
    for (i, file) in files.iter().enumerate() {
        if files[..i].iter().any(|seen| Arc::ptr_eq(seen, file)) {
            continue;
        }
        let report = file.report();
        dropped += report.dropped_bytes;
        match (&mut error, report.error) {
            (Some(errors), Some(e)) => {
                errors.push_str("; ");
                errors.push_str(&e);
            }
            (None, e) => error = e,
            (Some(_), None) => {}
        }
    }
    (error, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::app::{Op, Selection};
    use serde_json::Value;

    /// A reply's processes, without the figures measured at the time.
    fn unmeasured(line: &[u8]) -> Value {
        let mut reply: Value = serde_json::from_slice(line).unwrap();
        for p in reply["processes"].as_array_mut().unwrap() {
            let p = p.as_object_mut().unwrap();
            assert!(p.remove("cpu_percent").unwrap().is_number());
            assert!(p.remove("memory_bytes").unwrap().is_number());
        }
        reply
    }

    #[tokio::test]
    async fn a_list_line_is_the_reply_of_every_process_info() {
        let home = tempfile::tempdir().unwrap();
        let daemon = Daemon::for_tests(home.path());
        let mut sleeper = crate::test_support::sleeper("sleeper", 2);
        sleeper.inherited_env = [("SHELL_ONLY".to_string(), "x".to_string())].into();
        let mut idle = sleeper.clone();
        idle.name = "idle".into();
        idle.instances = 1;
        idle.inherited_env.clear();
        let apps = daemon.apps.create(vec![sleeper, idle]).unwrap();
        apps[0].run(Op::Start(2)).await.unwrap();
        apps[1].run(Op::Start(1)).await.unwrap();
        apps[1].run(Op::Stop(Selection::All)).await.unwrap();

        let line = list_line(&daemon, None, false);
        let all = daemon.apps.instances();
        let expected = encode(&Reply::Done {
            processes: describe(&daemon, &all),
        });
        assert_eq!(unmeasured(&line), unmeasured(&expected));
        let reply: Value = serde_json::from_slice(&line).unwrap();
        let processes = reply["processes"].as_array().unwrap();
        assert_eq!(processes.len(), 3);
        assert!(processes[0]["memory_bytes"].as_u64().unwrap() > 0);
        // The inherited environment stays out of lists.
        assert!(processes[0]["spec"].get("inherited_env").is_none());
        assert_eq!(processes[0]["spec"]["env"]["PATH"], "/usr/bin:/bin");
        assert_eq!(processes[2]["status"], "stopped");

        // In PM2's shape: byte for byte the reply of what PM2's list of the
        // same reports, with the figures fixed for both.
        let figures = all
            .iter()
            .filter_map(|h| h.state().pid)
            .map(|pid| (pid, daemon.usage.of(pid)))
            .collect();
        daemon.usage.replace(figures);
        let line = list_line(&daemon, None, true);
        let mut expected = br#"{"reply":"pm2_list","processes":"#.to_vec();
        let reports = describe(&daemon, &all);
        serde_json::to_writer(&mut expected, &rsup_proto::pm2::MonitorData(&reports)).unwrap();
        expected.extend_from_slice(b"}\n");
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            String::from_utf8(expected).unwrap()
        );
        let pm2: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(pm2["reply"], "pm2_list");
        assert_eq!(pm2["processes"][0]["pm2_env"]["PATH"], "/usr/bin:/bin");
        assert!(pm2["processes"][0]["pm2_env"].get("SHELL_ONLY").is_none());

        let named = list_line(&daemon, Some(&Target::Name("idle".into())), false);
        let named: Value = serde_json::from_slice(&named).unwrap();
        assert_eq!(named["processes"].as_array().unwrap().len(), 1);
        let none = list_line(&daemon, Some(&Target::Name("nope".into())), true);
        let none: Value = serde_json::from_slice(&none).unwrap();
        assert_eq!(none["reply"], "error");

        for app in apps {
            app.run(Op::Remove(Selection::All)).await.unwrap();
        }
    }

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
