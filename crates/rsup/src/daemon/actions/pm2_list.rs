//! `jlist`'s list in PM2's shape, written mostly from kept bytes: the
//! bulk of each process (its app's options and environment, escaped) is
//! written once per spec and kept, one [`OptionsTemplate`] for all the
//! instances of an app; each process's paths, state and figures, a few
//! hundred bytes, are written on every list. A list of a thousand
//! processes is then mostly a copy of a megabyte, while what is kept for
//! it is a few kilobytes per app, not one per instance.

use super::list::{log_report, node_version};
use crate::daemon::instance::{Identity, InstanceHandle, InstanceState};
use crate::daemon::lifecycle::Daemon;
use crate::daemon::metrics::Usage;
use rsup_proto::app::AppSpec;
use rsup_proto::control::Reply;
use rsup_proto::framing::encode;
use rsup_proto::pm2::{write_process, Options, OptionsTemplate, State};
use std::collections::hash_map::{Entry, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// One spec's [`OptionsTemplate`].
struct Kept {
    /// Held so that no other spec can have its address (the key) while
    /// it is kept.
    spec: Arc<AppSpec>,
    template: OptionsTemplate,
}

/// Which template an instance uses: its spec's (by address), and its
/// instance number when the template holds something of it
/// ([`OptionsTemplate::per_instance`]).
type Key = (usize, Option<u32>);

/// What the daemon keeps from one list to the next (see [`Daemon`]).
#[derive(Default)]
pub struct ListMemory {
    /// The templates of the listed instances' specs. Those of specs no
    /// instance or app holds any more are dropped by the next list.
    kept: Mutex<HashMap<Key, Kept>>,
    /// The memory of the largest list, written to the client and given
    /// back ([`ListMemory::recycle`]): a megabyte taken fresh from the
    /// system for every list costs more in page faults than writing it
    /// does.
    spare: Mutex<Vec<u8>>,
}

impl ListMemory {
    /// Keeps a list line's memory for the next list, once it is sent.
    pub fn recycle(&self, mut line: Vec<u8>) {
        line.clear();
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if line.capacity() > spare.capacity() {
            *spare = line;
        }
    }

    /// The size of the kept memory; for tests.
    #[cfg(test)]
    pub fn spare_capacity(&self) -> usize {
        self.spare.lock().unwrap().capacity()
    }
}

/// The reply to a list in PM2's shape ([`Reply::Pm2List`]) of these
/// instances, encoded: the same bytes as serializing it.
pub fn line(daemon: &Daemon, handles: &[InstanceHandle]) -> Vec<u8> {
    let states: Vec<InstanceState> = handles.iter().map(InstanceHandle::state).collect();
    let pids: Vec<Option<u32>> = states.iter().map(|s| s.pid).collect();
    let usages = daemon.usage.of_each(&pids);
    // The lock only guards a cache: one a panic left half-updated is
    // still entries that each match their spec.
    let memory = &daemon.list_memory;
    let mut kept = memory.kept.lock().unwrap_or_else(PoisonError::into_inner);
    // A spec that is gone is held by nothing but its entry.
    kept.retain(|_, k| Arc::strong_count(&k.spec) > 1);
    // The template, the paths, the state and the figures.
    let per_process = kept.values().map(|k| k.template.len()).max().unwrap_or(0) + 1024;
    let mut line =
        std::mem::take(&mut *memory.spare.lock().unwrap_or_else(PoisonError::into_inner));
    line.reserve(64 + per_process * handles.len());
    line.extend_from_slice(br#"{"reply":"pm2_list","processes":["#);
    for (i, ((handle, state), usage)) in handles.iter().zip(&states).zip(usages).enumerate() {
        if i > 0 {
            line.push(b',');
        }
        let node_version = node_version(daemon, state);
        let (log_error, dropped) = log_report(&state.log_health);
        let now = state_now(
            &handle.identity,
            state,
            usage,
            node_version.as_deref(),
            (log_error.as_deref(), dropped),
        );
        let options = options(&handle.identity, state);
        let written = template(&mut kept, &options, &state.spec)
            .and_then(|template| write_process(&mut line, template, &options, &now));
        if let Err(e) = written {
            // A string or number that JSON cannot hold; not one rsup has.
            return encode(&Reply::Error {
                message: format!("cannot write the list: {e}"),
            });
        }
    }
    line.extend_from_slice(b"]}\n");
    line
}

/// The instance's options as PM2's list shows them.
fn options<'a>(identity: &'a Identity, state: &'a InstanceState) -> Options<'a> {
    let spec = &state.spec;
    Options {
        // The name the app has now (it may have been renamed).
        name: &spec.name,
        instance: identity.instance,
        spec,
        out_log: &identity.out_log,
        err_log: &identity.err_log,
        combined_log: identity.combined_log.as_deref(),
        pid_file: &identity.pid_file,
    }
}

/// The template for `options`, of `spec`, written now if none is kept.
fn template<'a>(
    kept: &'a mut HashMap<Key, Kept>,
    options: &Options,
    spec: &Arc<AppSpec>,
) -> serde_json::Result<&'a OptionsTemplate> {
    let instance = OptionsTemplate::per_instance(spec).then_some(options.instance);
    let entry = match kept.entry((Arc::as_ptr(spec) as usize, instance)) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => entry.insert(Kept {
            spec: spec.clone(),
            template: OptionsTemplate::new(options)?,
        }),
    };
    Ok(&entry.template)
}

/// What changes between lists: the instance's state, log health and
/// figures (`usage`, when it runs) now; `node_version` and `log_error`
/// are the instance's, passed in to be borrowed.
fn state_now<'a>(
    identity: &'a Identity,
    state: &'a InstanceState,
    usage: Option<Usage>,
    node_version: Option<&'a str>,
    (log_error, log_dropped_bytes): (Option<&'a str>, u64),
) -> State<'a> {
    State {
        id: identity.id,
        name: &state.spec.name,
        node: state.spec.node,
        status: state.status,
        pid: state.pid,
        started_at_ms: state.started_at_ms,
        created_at_ms: identity.created_at_ms,
        unique_id: &identity.unique_id,
        node_version,
        restarts: state.restarts,
        unstable_restarts: state.unstable_restarts,
        last_exit: state.last_exit.as_ref(),
        log_error,
        log_dropped_bytes,
        memory_bytes: usage.as_ref().map_or(0, |u| u.memory_bytes),
        cpu_percent: usage.as_ref().map_or(0.0, |u| u.cpu_percent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::app::{AppHandle, Op, Selection};
    use rsup_proto::control::SpecUpdate;
    use serde_json::{json, Value};

    /// Restarts every instance of `app` with the name "renamed".
    async fn restart_renamed(app: &AppHandle) {
        let rename = SpecUpdate {
            name: Some("renamed".into()),
            ..Default::default()
        };
        app.run(Op::Restart {
            selection: Selection::All,
            update: rename,
        })
        .await
        .unwrap();
    }

    /// Every process of the daemon's list, as JSON.
    fn processes(daemon: &Daemon) -> Vec<Value> {
        let line = line(daemon, &daemon.apps.instances());
        // Nothing after the array: the CLI prints it as sent.
        assert!(line.ends_with(b"]}\n"));
        let reply: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(reply["reply"], "pm2_list");
        // As the server does: the next list is written in its memory.
        daemon.list_memory.recycle(line);
        reply["processes"].as_array().unwrap().clone()
    }

    #[tokio::test]
    async fn a_list_shows_every_change_since_the_last() {
        let home = tempfile::tempdir().unwrap();
        let daemon = Daemon::for_tests(home.path());
        let sleeper = crate::test_support::sleeper("sleeper", 2);
        let app = daemon.apps.create(vec![sleeper]).unwrap().remove(0);
        app.run(Op::Start(2)).await.unwrap();

        let first = processes(&daemon);
        assert_eq!(first.len(), 2);
        assert_eq!(first[1]["pm2_env"]["NODE_APP_INSTANCE"], 1);
        let pid = first[0]["pid"].as_u64().unwrap();
        assert!(pid > 0);
        assert_eq!(first[0]["pm2_env"]["status"], "online");
        assert_eq!(first[0]["pm2_env"]["restart_time"], 0);

        // New figures.
        let figures = Usage {
            cpu_percent: 12.34,
            memory_bytes: 4321,
        };
        daemon.usage.replace([(pid as u32, figures)].into());
        let measured = processes(&daemon);
        assert_eq!(measured[0]["monit"], json!({ "memory": 4321, "cpu": 12.3 }));

        // A restart with a new name: new options, process and count.
        restart_renamed(&app).await;
        let renamed = processes(&daemon);
        for p in &renamed {
            assert_eq!(p["name"], "renamed");
            assert_eq!(p["pm2_env"]["name"], "renamed");
            assert_eq!(p["pm2_env"]["env"]["renamed"], json!({}));
            assert!(p["pm2_env"]["env"].get("sleeper").is_none());
            assert_eq!(p["pm2_env"]["restart_time"], 1);
        }
        assert_ne!(renamed[0]["pid"], pid);

        // Stopped: status, pid and figures.
        app.run(Op::Stop(Selection::All)).await.unwrap();
        for p in processes(&daemon) {
            assert_eq!(p["pid"], 0);
            assert_eq!(p["pm2_env"]["status"], "stopped");
            assert_eq!(p["monit"], json!({ "memory": 0, "cpu": 0 }));
        }
        app.run(Op::Remove(Selection::All)).await.unwrap();
        assert!(processes(&daemon).is_empty());
    }

    #[tokio::test]
    async fn the_instances_of_an_app_share_one_template_while_its_spec_lives() {
        let home = tempfile::tempdir().unwrap();
        let daemon = Daemon::for_tests(home.path());
        let kept = || daemon.list_memory.kept.lock().unwrap().len();
        let sleeper = crate::test_support::sleeper("sleeper", 3);
        let app = daemon.apps.create(vec![sleeper]).unwrap().remove(0);
        app.run(Op::Start(3)).await.unwrap();
        let listed = processes(&daemon);
        assert_eq!(listed.len(), 3);
        // Each with its own paths and instance variable.
        for (i, p) in listed.iter().enumerate() {
            let id = p["pm_id"].as_u64().unwrap();
            assert_eq!(p["pm2_env"]["NODE_APP_INSTANCE"], i as u64);
            for key in ["pm_out_log_path", "pm_err_log_path", "pm_pid_path"] {
                let path = p["pm2_env"][key].as_str().unwrap();
                assert!(path.contains(&format!("-{id}.")), "{path}");
            }
        }
        assert_eq!(kept(), 1);

        // Updated together, they share the new spec; the old one's
        // template goes with it.
        restart_renamed(&app).await;
        assert!(processes(&daemon).iter().all(|p| p["name"] == "renamed"));
        assert_eq!(kept(), 1);

        // An increment_var counts up by instance: a template each.
        let mut counting = crate::test_support::sleeper("counting", 2);
        counting.increment_var = Some("PORT".into());
        counting.env.insert("PORT".into(), "3000".into());
        let other = daemon.apps.create(vec![counting]).unwrap().remove(0);
        other.run(Op::Start(2)).await.unwrap();
        let listed = processes(&daemon);
        let ports: Vec<&Value> = listed[3..].iter().map(|p| &p["pm2_env"]["PORT"]).collect();
        assert_eq!(ports, [3000, 3001]);
        assert_eq!(kept(), 3);
        for app in [app, other] {
            app.run(Op::Remove(Selection::All)).await.unwrap();
        }
        assert!(processes(&daemon).is_empty());
    }
}
