//! The process list in PM2's shape: what PM2's `getMonitorData` returns and
//! `pm2 jlist` / `pm2 prettylist` print, filled with rsup's values, so that
//! scripts and tools written for PM2 read rsup's processes.
//!
//! Each process is `{ pid, name, pm2_env, pm_id, monit: { memory, cpu } }`.
//! `pm2_env` carries PM2's keys in PM2's order: the app's options, the
//! instance variable (`NODE_APP_INSTANCE: N`), the app's environment merged
//! in at the top level as PM2 merges it, then the process's state (`status`,
//! `pm_uptime`, `restart_time`, ...). Keys PM2 only has for its own
//! machinery (vizion, km_link, ...) are left out; rsup's own
//! extras (`kill_signal`, `log_error`, `log_dropped_bytes`) are added.
//!
//! The list is written straight from borrowed [`ProcessInfo`]s by
//! [`MonitorData`]'s `Serialize`, so `jlist` of thousands of processes copies
//! no environment; [`monitor_data`] builds the same as a [`Value`]. The
//! daemon writes the same bytes from an [`OptionsTemplate`] (the app's
//! options and environment, kept while the spec stays, one for all its
//! instances) and [`write_process`] (each process's paths and state, each
//! list), so a list of thousands writes each environment once, not once
//! per list, and keeps it once per app, not once per instance.

use crate::app::{AppSpec, ExitInfo, LogType, ProcessInfo, Status};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::path::Path;

/// PM2's `getMonitorData` for these processes.
pub fn monitor_data(processes: &[ProcessInfo]) -> Value {
    // Every key is a string and every number finite: this cannot fail.
    serde_json::to_value(MonitorData(processes)).expect("a process list is JSON")
}

/// The processes in PM2's shape, serialized without copying them.
/// The daemon writes it from reports whose spec is borrowed.
pub struct MonitorData<'a, A = AppSpec>(pub &'a [ProcessInfo<A>]);

impl<A: Borrow<AppSpec>> Serialize for MonitorData<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for p in self.0 {
            seq.serialize_element(&Process(p))?;
        }
        seq.end()
    }
}

struct Process<'a, A>(&'a ProcessInfo<A>);

impl<A: Borrow<AppSpec>> Serialize for Process<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (options, state) = (options_of(self.0), state_of(self.0));
        let mut map = s.serialize_map(Some(5))?;
        // PM2 shows 0 for a process that is not running.
        map.serialize_entry("pid", &state.pid.unwrap_or(0))?;
        map.serialize_entry("name", options.name)?;
        map.serialize_entry("pm2_env", &Pm2Env(&options, &state))?;
        tail_entries(&mut map, &state)?;
        map.end()
    }
}

/// What PM2's list shows of an instance that stays while its spec does:
/// `name` and `pm2_env`'s options and environment.
pub struct Options<'a> {
    pub name: &'a str,
    pub instance: u32,
    pub spec: &'a AppSpec,
    pub out_log: &'a Path,
    pub err_log: &'a Path,
    pub combined_log: Option<&'a Path>,
    pub pid_file: &'a Path,
}

/// What PM2's list shows of an instance that changes while it runs: its
/// process, counters and figures.
pub struct State<'a> {
    pub id: u32,
    /// The app's name, for `axm_options`.
    pub name: &'a str,
    /// Whether the app runs on Node.
    pub node: bool,
    pub status: Status,
    pub pid: Option<u32>,
    pub started_at_ms: Option<u64>,
    pub created_at_ms: u64,
    pub unique_id: &'a str,
    pub node_version: Option<&'a str>,
    pub restarts: u32,
    pub unstable_restarts: u32,
    pub last_exit: Option<&'a ExitInfo>,
    pub log_error: Option<&'a str>,
    pub log_dropped_bytes: u64,
    pub memory_bytes: u64,
    pub cpu_percent: f64,
}

fn options_of<A: Borrow<AppSpec>>(p: &ProcessInfo<A>) -> Options<'_> {
    Options {
        name: &p.name,
        instance: p.instance,
        spec: p.spec.borrow(),
        out_log: &p.out_log,
        err_log: &p.err_log,
        combined_log: p.combined_log.as_deref(),
        pid_file: &p.pid_file,
    }
}

fn state_of<A: Borrow<AppSpec>>(p: &ProcessInfo<A>) -> State<'_> {
    State {
        id: p.id,
        name: &p.name,
        node: p.spec.borrow().node,
        status: p.status,
        pid: p.pid,
        started_at_ms: p.started_at_ms,
        created_at_ms: p.created_at_ms,
        unique_id: &p.unique_id,
        node_version: p.node_version.as_deref(),
        restarts: p.restarts,
        unstable_restarts: p.unstable_restarts,
        last_exit: p.last_exit.as_ref(),
        log_error: p.log_error.as_deref(),
        log_dropped_bytes: p.log_dropped_bytes,
        memory_bytes: p.memory_bytes,
        cpu_percent: p.cpu_percent,
    }
}

/// The options of one process in PM2's shape less what is the instance's
/// own (its log and pid paths, its instance variable), for
/// [`write_process`]. It depends only on the spec (and, with an
/// `increment_var`, on the instance: [`OptionsTemplate::per_instance`]),
/// so a list can write it once for all the instances of an app and keep it.
pub struct OptionsTemplate {
    /// `"name":…,"pm2_env":{` and the options before the paths.
    head: Vec<u8>,
    /// `,` and the options between the paths and the instance variable.
    middle: Vec<u8>,
    /// The environment merged in at the top level, after a `,`; empty
    /// when there is none.
    env: Vec<u8>,
}

impl OptionsTemplate {
    /// Writes the template of `options` (their paths and instance aside).
    pub fn new(options: &Options) -> serde_json::Result<OptionsTemplate> {
        struct Opening<'a>(&'a Options<'a>);
        impl Serialize for Opening<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("name", self.0.name)?;
                map.serialize_entry("pm2_env", &Group(Part::Head, self.0))?;
                map.end()
            }
        }
        // `{"name":…,"pm2_env":{…}}` less the braces around it and the one
        // closing `pm2_env`, which the rest of its entries follow.
        let mut head = serde_json::to_vec(&Opening(options))?;
        head.truncate(head.len() - 2);
        head.remove(0);
        let mut middle = Vec::new();
        append_entries(&mut middle, &Group(Part::Middle, options))?;
        let mut env = Vec::new();
        append_entries(&mut env, &Group(Part::Env, options))?;
        Ok(OptionsTemplate { head, middle, env })
    }

    /// Whether the template holds something of one instance (the value of
    /// an `increment_var`), so that each instance needs its own.
    pub fn per_instance(spec: &AppSpec) -> bool {
        spec.increment_var.is_some()
    }

    /// Its size in bytes, about what a process of it takes in a list.
    pub fn len(&self) -> usize {
        self.head.len() + self.middle.len() + self.env.len()
    }

    /// Whether it is empty; never.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends one process in PM2's shape to `out`, byte for byte what
/// [`MonitorData`] writes for it, from the [`OptionsTemplate`] of its spec,
/// its own options and its state.
pub fn write_process(
    out: &mut Vec<u8>,
    template: &OptionsTemplate,
    options: &Options,
    state: &State,
) -> serde_json::Result<()> {
    /// Entries written as a map of their own, whose opening brace becomes
    /// the comma that continues the map they belong to.
    fn continue_map(out: &mut Vec<u8>, entries: &impl Serialize) -> serde_json::Result<()> {
        let at = out.len();
        serde_json::to_writer(&mut *out, entries)?;
        out[at] = b',';
        Ok(())
    }
    struct StateOnly<'a>(&'a State<'a>);
    impl Serialize for StateOnly<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(None)?;
            state_entries(&mut m, self.0)?;
            m.end()
        }
    }
    struct Tail<'a>(&'a State<'a>);
    impl Serialize for Tail<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(None)?;
            tail_entries(&mut m, self.0)?;
            m.end()
        }
    }
    out.extend_from_slice(b"{\"pid\":");
    serde_json::to_writer(&mut *out, &state.pid.unwrap_or(0))?;
    out.push(b',');
    out.extend_from_slice(&template.head);
    append_entries(out, &Group(Part::Paths, options))?;
    out.extend_from_slice(&template.middle);
    append_entries(out, &Group(Part::Instance, options))?;
    out.extend_from_slice(&template.env);
    // Closes `pm2_env`, then the process.
    continue_map(out, &StateOnly(state))?;
    continue_map(out, &Tail(state))
}

/// Appends `entries`, a map, as the continuation of the map being written
/// (`,"key":value…`, nothing when it has none).
fn append_entries(out: &mut Vec<u8>, entries: &impl Serialize) -> serde_json::Result<()> {
    let at = out.len();
    serde_json::to_writer(&mut *out, entries)?;
    if out.len() == at + 2 {
        out.truncate(at);
    } else {
        out[at] = b',';
        out.pop();
    }
    Ok(())
}

/// One run of `pm2_env`'s option entries, in their order.
#[derive(Clone, Copy)]
enum Part {
    /// The app's options before the paths.
    Head,
    /// The instance's log and pid paths.
    Paths,
    /// The app's options after them.
    Middle,
    /// The instance variable.
    Instance,
    /// The environment, merged in at the top level.
    Env,
}

/// The entries of one [`Part`], as a map of their own.
struct Group<'a>(Part, &'a Options<'a>);

impl Serialize for Group<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        part_entries(&mut m, self.0, self.1)?;
        m.end()
    }
}

/// What follows `pm2_env` in a process.
fn tail_entries<M: SerializeMap>(map: &mut M, state: &State) -> Result<(), M::Error> {
    map.serialize_entry("pm_id", &state.id)?;
    map.serialize_entry("monit", &Monit(state))
}

struct Monit<'a>(&'a State<'a>);

impl Serialize for Monit<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("memory", &self.0.memory_bytes)?;
        // One decimal, as PM2 rounds it.
        let cpu = (self.0.cpu_percent * 10.0).round() / 10.0;
        map.serialize_entry("cpu", &JsNumber(cpu))?;
        map.end()
    }
}

/// Every key `pm2_env` writes itself, sorted: an environment variable of
/// the same name is not merged in over it (PM2 lets some of them overwrite
/// its own, such as `name`; a list must not say two things).
const OWN_KEYS: [&str; 52] = [
    "args",
    "autorestart",
    "axm_actions",
    "axm_dynamic",
    "axm_monitor",
    "axm_options",
    "created_at",
    "cron_restart",
    "env",
    "exec_interpreter",
    "exec_mode",
    "exit_code",
    "exp_backoff_restart_delay",
    "ignore_watch",
    "increment_var",
    "instance_var",
    "instances",
    "kill_signal",
    "kill_timeout",
    "listen_timeout",
    "log_date_format",
    "log_dropped_bytes",
    "log_error",
    "log_type",
    "max_memory_restart",
    "max_restarts",
    "merge_logs",
    "min_uptime",
    "name",
    "namespace",
    "node_args",
    "node_version",
    "pm_cwd",
    "pm_err_log_path",
    "pm_exec_path",
    "pm_id",
    "pm_log_path",
    "pm_out_log_path",
    "pm_pid_path",
    "pm_uptime",
    "restart_delay",
    "restart_time",
    "shutdown_with_message",
    "status",
    "stop_exit_codes",
    "time",
    "treekill",
    "unique_id",
    "unstable_restarts",
    "wait_ready",
    "watch",
    "watch_delay",
];

fn own_key(key: &str) -> bool {
    // Every one starts in lower case, most variables do not: one byte
    // settles most of them.
    key.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && OWN_KEYS.binary_search(&key).is_ok()
}

struct Pm2Env<'a>(&'a Options<'a>, &'a State<'a>);

impl Serialize for Pm2Env<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        option_entries(&mut m, self.0)?;
        state_entries(&mut m, self.1)?;
        m.end()
    }
}

/// `pm2_env`'s entries from the app's options and environment.
fn option_entries<M: SerializeMap>(m: &mut M, p: &Options) -> Result<(), M::Error> {
    for part in [
        Part::Head,
        Part::Paths,
        Part::Middle,
        Part::Instance,
        Part::Env,
    ] {
        part_entries(m, part, p)?;
    }
    Ok(())
}

/// The entries of one run of [`option_entries`].
fn part_entries<M: SerializeMap>(m: &mut M, part: Part, p: &Options) -> Result<(), M::Error> {
    let spec = p.spec;
    let increment = increment_var(spec, p.instance);
    let instance_var = spec.instance_var.as_str();
    match part {
        // The app's options, as PM2 keeps them.
        Part::Head => {
            m.serialize_entry("name", &p.name)?;
            m.serialize_entry("namespace", &spec.namespace)?;
            if !spec.args.is_empty() {
                m.serialize_entry("args", &spec.args)?;
            }
            m.serialize_entry(
                "env",
                &Env {
                    vars: &spec.env,
                    increment,
                    app: p.name,
                },
            )?;
            m.serialize_entry("merge_logs", &spec.merge_logs)?;
            m.serialize_entry("autorestart", &spec.autorestart)?;
            if spec.watch.is_empty() {
                m.serialize_entry("watch", &false)?;
            } else {
                let paths: Vec<_> = spec.watch.iter().map(|p| p.to_string_lossy()).collect();
                m.serialize_entry("watch", &paths)?;
                if !spec.ignore_watch.is_empty() {
                    m.serialize_entry("ignore_watch", &spec.ignore_watch)?;
                }
                m.serialize_entry("watch_delay", &spec.watch_delay_ms)?;
            }
            m.serialize_entry("instance_var", &spec.instance_var)?;
            m.serialize_entry("treekill", &spec.treekill)?;
            if !spec.node_args_unset {
                m.serialize_entry("node_args", &spec.node_args)?;
            }
            m.serialize_entry("pm_exec_path", &spec.script)?;
            m.serialize_entry("pm_cwd", &spec.cwd.to_string_lossy())?;
            m.serialize_entry(
                "exec_interpreter",
                spec.interpreter.as_deref().unwrap_or("none"),
            )?;
            m.serialize_entry("exec_mode", spec.exec_mode.pm2_name())?;
            m.serialize_entry("instances", &spec.instances)?;
        }
        Part::Paths => {
            m.serialize_entry("pm_out_log_path", &p.out_log.to_string_lossy())?;
            m.serialize_entry("pm_err_log_path", &p.err_log.to_string_lossy())?;
            if let Some(log) = p.combined_log {
                m.serialize_entry("pm_log_path", &log.to_string_lossy())?;
            }
            m.serialize_entry("pm_pid_path", &p.pid_file.to_string_lossy())?;
        }
        Part::Middle => {
            m.serialize_entry("wait_ready", &spec.wait_ready)?;
            m.serialize_entry("listen_timeout", &spec.listen_timeout_ms)?;
            m.serialize_entry("kill_timeout", &spec.kill_timeout_ms)?;
            m.serialize_entry("kill_signal", &spec.kill_signal)?;
            m.serialize_entry("shutdown_with_message", &spec.shutdown_with_message)?;
            m.serialize_entry("max_restarts", &spec.max_restarts)?;
            m.serialize_entry("min_uptime", &spec.min_uptime_ms)?;
            m.serialize_entry("restart_delay", &spec.restart_delay_ms)?;
            m.serialize_entry(
                "exp_backoff_restart_delay",
                &spec.exp_backoff_restart_delay_ms,
            )?;
            m.serialize_entry("time", &spec.time)?;
            if let Some(format) = &spec.log_date_format {
                m.serialize_entry("log_date_format", format)?;
            }
            if spec.log_type == LogType::Json {
                m.serialize_entry("log_type", "json")?;
            }
            if !spec.stop_exit_codes.is_empty() {
                m.serialize_entry("stop_exit_codes", &spec.stop_exit_codes)?;
            }
            if let Some(var) = &spec.increment_var {
                m.serialize_entry("increment_var", var)?;
            }
            if let Some(bytes) = spec.max_memory_restart_bytes {
                m.serialize_entry("max_memory_restart", &bytes)?;
            }
            if let Some(pattern) = &spec.cron_restart {
                m.serialize_entry("cron_restart", pattern)?;
            }
        }
        // The instance's own variables, then its environment over the top
        // level: PM2 merges `env` into `pm2_env` (objects excepted).
        Part::Instance => {
            if !own_key(instance_var) {
                m.serialize_entry(instance_var, &p.instance)?;
            }
        }
        Part::Env => {
            let increment = increment.filter(|(var, _)| !own_key(var) && *var != instance_var);
            if let Some((var, value)) = increment {
                m.serialize_entry(var, &JsNumber(value))?;
            }
            for (key, value) in &spec.env {
                let mine = own_key(key)
                    || key == instance_var
                    || increment.is_some_and(|(var, _)| var == key);
                if !mine {
                    m.serialize_entry(key, value)?;
                }
            }
        }
    }
    Ok(())
}

/// `pm2_env`'s entries from the process's state, after the options.
fn state_entries<M: SerializeMap>(m: &mut M, p: &State) -> Result<(), M::Error> {
    m.serialize_entry("status", p.status.as_str())?;
    m.serialize_entry("pm_uptime", &p.started_at_ms.unwrap_or(p.created_at_ms))?;
    // PM2's slots for what @pm2/io reports from inside the app: rsup
    // has none of it. PM2 gives every Node app its name there.
    m.serialize_entry("axm_actions", &[(); 0])?;
    m.serialize_entry("axm_monitor", &Empty)?;
    m.serialize_entry("axm_options", &ModuleName(p.node.then_some(p.name)))?;
    m.serialize_entry("axm_dynamic", &Empty)?;
    m.serialize_entry("created_at", &p.created_at_ms)?;
    m.serialize_entry("unique_id", &p.unique_id)?;
    if let Some(version) = p.node_version {
        m.serialize_entry("node_version", version)?;
    }
    m.serialize_entry("pm_id", &p.id)?;
    m.serialize_entry("restart_time", &p.restarts)?;
    m.serialize_entry("unstable_restarts", &p.unstable_restarts)?;
    if let Some(exit) = p.last_exit {
        // `null` when a signal ended it, as PM2 has it in fork mode.
        m.serialize_entry("exit_code", &exit.code)?;
    }
    if let Some(error) = p.log_error {
        m.serialize_entry("log_error", error)?;
    }
    if p.log_dropped_bytes > 0 {
        m.serialize_entry("log_dropped_bytes", &p.log_dropped_bytes)?;
    }
    Ok(())
}

/// PM2's `increment_var` and the value the instance's process was given
/// ([`AppSpec::instance_variables`]), as a number. `None` without one.
fn increment_var(spec: &AppSpec, instance: u32) -> Option<(&str, f64)> {
    let var = spec.increment_var.as_deref()?;
    let (_, value) = spec
        .instance_variables(instance)
        .into_iter()
        .skip(1) // the instance variable comes first
        .find(|(name, _)| name == var)?;
    Some((var, value.parse().ok()?))
}

/// `pm2_env.env`: the app's environment, the `increment_var` as a number,
/// and PM2's slot for the app's module configuration (`<name>: {}`), which
/// PM2 gives every app.
struct Env<'a> {
    vars: &'a BTreeMap<String, String>,
    increment: Option<(&'a str, f64)>,
    app: &'a str,
}

impl Serialize for Env<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (key, value) in self.vars {
            match self.increment {
                Some((var, n)) if var == key => m.serialize_entry(key, &JsNumber(n))?,
                _ => m.serialize_entry(key, value)?,
            }
        }
        if let Some((var, n)) = self.increment {
            if !self.vars.contains_key(var) {
                m.serialize_entry(var, &JsNumber(n))?;
            }
        }
        let app_taken =
            self.vars.contains_key(self.app) || self.increment.is_some_and(|(v, _)| v == self.app);
        if !app_taken {
            m.serialize_entry(self.app, &Empty)?;
        }
        m.end()
    }
}

struct Empty;

impl Serialize for Empty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

/// `axm_options`: `{ module_name }` for a Node app, else empty.
struct ModuleName<'a>(Option<&'a str>);

impl Serialize for ModuleName<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(usize::from(self.0.is_some())))?;
        if let Some(name) = self.0 {
            m.serialize_entry("module_name", name)?;
        }
        m.end()
    }
}

/// A number written as JavaScript writes it: whole numbers without `.0`.
struct JsNumber(f64);

impl Serialize for JsNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        let n = self.0;
        if n.fract() == 0.0 && n.abs() < EXACT {
            s.serialize_i64(n as i64)
        } else {
            s.serialize_f64(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{defaults, ExecMode, ExitInfo, Status};
    use serde_json::json;
    use std::path::PathBuf;

    fn spec() -> AppSpec {
        AppSpec {
            name: "api".into(),
            script: "/srv/api/server.js".into(),
            args: vec![],
            cwd: PathBuf::from("/srv/api"),
            interpreter: Some("node".into()),
            node_args: vec![],
            node_args_unset: false,
            node: true,
            instances: 2,
            exec_mode: ExecMode::Cluster,
            env: [("PORT", "3000"), ("NODE_ENV", "production")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            wait_ready: true,
            listen_timeout_ms: defaults::LISTEN_TIMEOUT_MS,
            kill_timeout_ms: defaults::KILL_TIMEOUT_MS,
            kill_signal: defaults::KILL_SIGNAL.into(),
            shutdown_with_message: false,
            treekill: true,
            autorestart: true,
            max_restarts: defaults::MAX_RESTARTS,
            min_uptime_ms: defaults::MIN_UPTIME_MS,
            restart_delay_ms: 0,
            exp_backoff_restart_delay_ms: 0,
            instance_var: defaults::INSTANCE_VAR.into(),
            out_file: None,
            error_file: None,
            merge_logs: false,
            log_date_format: None,
            time: false,
            namespace: defaults::NAMESPACE.into(),
            pid_file: None,
            log_file: None,
            max_memory_restart_bytes: None,
            log_type: LogType::Text,
            stop_exit_codes: vec![],
            increment_var: None,
            cron_restart: None,
            watch: vec![],
            ignore_watch: vec![],
            watch_delay_ms: defaults::WATCH_DELAY_MS,
            log_rotate: None,
            inherited_env: Default::default(),
            env_unset: vec![],
        }
    }

    fn info(id: u32, instance: u32, spec: AppSpec) -> ProcessInfo {
        ProcessInfo {
            id,
            name: spec.name.clone(),
            instance,
            status: Status::Online,
            pid: Some(4000 + id),
            restarts: 3,
            unstable_restarts: 1,
            started_at_ms: Some(1_700_000_100_000),
            created_at_ms: 1_700_000_000_000,
            unique_id: String::new(),
            node_version: None,
            cpu_percent: 12.345,
            memory_bytes: 52_000_000,
            last_exit: None,
            out_log: format!("/h/logs/api-out-{id}.log").into(),
            err_log: format!("/h/logs/api-error-{id}.log").into(),
            combined_log: None,
            pid_file: format!("/h/pids/api-{id}.pid").into(),
            spec,
            log_error: None,
            log_dropped_bytes: 0,
        }
    }

    /// `p` written from `template` reads byte for byte as PM2's list of
    /// it, serialized whole.
    fn assert_written_whole(template: &OptionsTemplate, p: &ProcessInfo) {
        let whole = serde_json::to_vec(&MonitorData(std::slice::from_ref(p))).unwrap();
        let mut parts = b"[".to_vec();
        write_process(&mut parts, template, &options_of(p), &state_of(p)).unwrap();
        parts.push(b']');
        assert_eq!(
            String::from_utf8(parts).unwrap(),
            String::from_utf8(whole).unwrap()
        );
    }

    /// `s` with every option PM2's list shows set to something.
    fn with_every_option(mut s: AppSpec) -> AppSpec {
        s.log_date_format = Some("YYYY".into());
        s.log_type = LogType::Json;
        s.stop_exit_codes = vec![0];
        s.increment_var = Some("PORT".into());
        s.max_memory_restart_bytes = Some(1 << 20);
        s.cron_restart = Some("0 3 * * *".into());
        s.watch = vec!["/srv/api/src".into()];
        s.ignore_watch = vec!["*.log".into()];
        s
    }

    /// `p` with a combined log, a last exit and a log error.
    fn with_every_field(mut p: ProcessInfo) -> ProcessInfo {
        p.combined_log = Some("/h/logs/api.log".into());
        p.last_exit = Some(ExitInfo {
            code: None,
            signal: Some("SIGKILL".into()),
            at_ms: 1,
        });
        p.log_error = Some("cannot write".into());
        p.log_dropped_bytes = 9;
        p
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn each_process_is_pid_name_pm2_env_pm_id_monit() {
        let list = monitor_data(&[info(0, 0, spec()), info(1, 1, spec())]);
        let procs = list.as_array().unwrap();
        assert_eq!(procs.len(), 2);
        let p = &procs[1];
        assert_eq!(keys(p), ["pid", "name", "pm2_env", "pm_id", "monit"]);
        assert_eq!(p["pid"], 4001);
        assert_eq!(p["name"], "api");
        assert_eq!(p["pm_id"], 1);
        assert_eq!(p["monit"], json!({ "memory": 52_000_000, "cpu": 12.3 }));
        let env = &p["pm2_env"];
        assert_eq!(env["pm_id"], 1);
        assert_eq!(env["name"], "api");
        assert_eq!(env["namespace"], "default");
        assert_eq!(env["status"], "online");
        assert_eq!(env["exec_mode"], "cluster_mode");
        assert_eq!(env["instances"], 2);
        assert_eq!(env["restart_time"], 3);
        assert_eq!(env["unstable_restarts"], 1);
        assert_eq!(env["pm_uptime"], 1_700_000_100_000u64);
        assert_eq!(env["created_at"], 1_700_000_000_000u64);
        assert_eq!(env["pm_exec_path"], "/srv/api/server.js");
        assert_eq!(env["pm_cwd"], "/srv/api");
        assert_eq!(env["exec_interpreter"], "node");
        assert_eq!(env["node_args"], json!([]));
        assert_eq!(env["pm_out_log_path"], "/h/logs/api-out-1.log");
        assert_eq!(env["pm_err_log_path"], "/h/logs/api-error-1.log");
        assert_eq!(env["pm_pid_path"], "/h/pids/api-1.pid");
        assert_eq!(env["instance_var"], "NODE_APP_INSTANCE");
        assert_eq!(env["NODE_APP_INSTANCE"], 1);
        assert_eq!(env["wait_ready"], true);
        assert_eq!(env["kill_timeout"], 1600);
        assert_eq!(env["kill_signal"], "SIGINT");
        assert_eq!(env["max_restarts"], 16);
        assert_eq!(env["min_uptime"], 1000);
        assert_eq!(env["watch"], false);
        for empty in ["axm_monitor", "axm_dynamic"] {
            assert_eq!(env[empty], json!({}));
        }
        assert_eq!(env["axm_actions"], json!([]));
        assert_eq!(env["listen_timeout"], 3000);
        assert_eq!(env["merge_logs"], false);
        assert_eq!(env["autorestart"], true);
        assert_eq!(env["treekill"], true);
        assert_eq!(env["axm_options"], json!({ "module_name": "api" }));
        // Only what the process has.
        for absent in [
            "args",
            "pm_log_path",
            "exit_code",
            "log_error",
            "log_dropped_bytes",
        ] {
            assert!(env.get(absent).is_none(), "{absent} in {env}");
        }
        let order = keys(env);
        assert_eq!(order[..3], ["name", "namespace", "env"]);
        let at = |k: &str| order.iter().position(|o| *o == k).unwrap();
        assert!(at("pm_pid_path") < at("NODE_APP_INSTANCE"));
        assert!(at("NODE_APP_INSTANCE") < at("PORT"));
        assert!(at("PORT") < at("status"));
        assert!(at("status") < at("pm_id"));
        assert_eq!(*order.last().unwrap(), "unstable_restarts");
    }

    #[test]
    fn the_env_is_merged_into_pm2_env_except_over_its_own_keys() {
        let mut s = spec();
        s.env.insert("name".into(), "inherited".into());
        s.env.insert("status".into(), "x".into());
        s.env.insert("NODE_APP_INSTANCE".into(), "7".into());
        let list = monitor_data(&[info(0, 0, s)]);
        let env = &list[0]["pm2_env"];
        assert_eq!(env["PORT"], "3000");
        assert_eq!(env["NODE_ENV"], "production");
        assert_eq!(env["name"], "api");
        assert_eq!(env["status"], "online");
        assert_eq!(env["NODE_APP_INSTANCE"], 0);
        // `env` itself holds the environment as the app has it, and PM2's
        // empty module configuration under the app's name.
        assert_eq!(env["env"]["name"], "inherited");
        assert_eq!(env["env"]["NODE_APP_INSTANCE"], "7");
        assert_eq!(env["env"]["api"], json!({}));
        assert!(env.get("api").is_none(), "objects are not merged");
        // The JSON has each key once (a Value would hide a repeat).
        let text = serde_json::to_string(&MonitorData(&[info(0, 0, spec())])).unwrap();
        assert_eq!(text.matches("\"status\":").count(), 1);
        assert_eq!(text.matches("\"name\":").count(), 2);
    }

    #[test]
    fn every_key_pm2_env_writes_is_known_as_its_own() {
        assert!(OWN_KEYS.windows(2).all(|w| w[0] < w[1]), "OWN_KEYS sorted");
        assert!(OWN_KEYS
            .iter()
            .all(|k| k.as_bytes()[0].is_ascii_lowercase()));
        let mut s = with_every_option(spec());
        s.env.clear();
        s.args = vec!["--port".into()];
        let p = with_every_field(info(0, 0, s));
        let list = monitor_data(&[p]);
        let env = &list[0]["pm2_env"];
        for key in keys(env) {
            assert!(
                own_key(key) || key == "NODE_APP_INSTANCE" || key == "PORT",
                "{key} is not in OWN_KEYS"
            );
        }
        assert_eq!(env["args"], json!(["--port"]));
        assert_eq!(env["pm_log_path"], "/h/logs/api.log");
        assert_eq!(env["exit_code"], Value::Null);
        assert_eq!(env["log_type"], "json");
        assert_eq!(env["stop_exit_codes"], json!([0]));
        assert_eq!(env["max_memory_restart"], 1 << 20);
        assert_eq!(env["cron_restart"], "0 3 * * *");
        assert_eq!(env["watch"], json!(["/srv/api/src"]));
        assert_eq!(env["ignore_watch"], json!(["*.log"]));
        assert_eq!(env["watch_delay"], 1000);
        assert_eq!(env["log_error"], "cannot write");
        assert_eq!(env["log_dropped_bytes"], 9);
    }

    #[test]
    fn increment_var_counts_up_by_instance_as_a_number() {
        let mut s = spec();
        s.increment_var = Some("PORT".into());
        let list = monitor_data(&[info(0, 0, s.clone()), info(1, 1, s.clone())]);
        for (i, port) in [(0, 3000), (1, 3001)] {
            let env = &list[i]["pm2_env"];
            assert_eq!(env["PORT"], port);
            assert_eq!(env["env"]["PORT"], port);
            assert_eq!(env["increment_var"], "PORT");
        }
        // Not a number in env: counts from 0, as PM2's Number(...) || 0.
        s.env.insert("PORT".into(), "http".into());
        s.increment_var = Some("SLOT".into());
        let list = monitor_data(&[info(5, 2, s)]);
        assert_eq!(list[0]["pm2_env"]["SLOT"], 2);
        assert_eq!(list[0]["pm2_env"]["env"]["SLOT"], 2);
    }

    #[test]
    fn a_process_that_does_not_run_shows_pid_0_and_its_last_exit() {
        let mut p = info(3, 0, spec());
        p.status = Status::Stopped;
        p.pid = None;
        p.started_at_ms = None;
        p.cpu_percent = 0.0;
        p.memory_bytes = 0;
        p.last_exit = Some(ExitInfo {
            code: Some(2),
            signal: None,
            at_ms: 5,
        });
        p.spec.node = false;
        p.spec.interpreter = None;
        p.spec.exec_mode = ExecMode::Fork;
        let list = monitor_data(&[p]);
        let p = &list[0];
        assert_eq!(p["pid"], 0);
        assert_eq!(p["monit"], json!({ "memory": 0, "cpu": 0 }));
        let env = &p["pm2_env"];
        assert_eq!(env["status"], "stopped");
        assert_eq!(env["exit_code"], 2);
        assert_eq!(env["pm_uptime"], 1_700_000_000_000u64);
        assert_eq!(env["exec_mode"], "fork_mode");
        assert_eq!(env["exec_interpreter"], "none");
        assert_eq!(env["axm_options"], json!({}));
        for (status, name) in [
            (Status::Launching, "launching"),
            (Status::Stopping, "stopping"),
            (Status::WaitingRestart, "waiting restart"),
            (Status::Errored, "errored"),
        ] {
            let mut p = info(0, 0, spec());
            p.status = status;
            assert_eq!(monitor_data(&[p])[0]["pm2_env"]["status"], name);
        }
    }

    /// Processes that show every optional key, and none of them.
    fn assorted() -> Vec<ProcessInfo> {
        let mut full = with_every_option(spec());
        full.args = vec!["--port".into(), "é\"q".into()];
        full.env.insert("QUOTED".into(), "a\"b\\c\n".into());
        full.env.insert("name".into(), "inherited".into());
        let mut p = with_every_field(info(0, 1, full));
        p.node_version = Some("20.1.0".into());
        p.unique_id = "4b1c".into();
        let mut bare = info(7, 0, spec());
        bare.spec.node = false;
        bare.spec.interpreter = None;
        bare.spec.node_args_unset = true;
        bare.spec.env.clear();
        bare.status = Status::Stopped;
        bare.pid = None;
        bare.started_at_ms = None;
        bare.cpu_percent = 0.0;
        bare.memory_bytes = 0;
        vec![p, bare, info(2, 2, spec())]
    }

    #[test]
    fn written_in_parts_it_is_the_same_bytes() {
        for p in assorted() {
            assert_written_whole(&OptionsTemplate::new(&options_of(&p)).unwrap(), &p);
        }
    }

    /// One template serves every instance of a spec without an
    /// `increment_var`, whatever its paths and instance variable.
    #[test]
    fn instances_of_one_spec_share_a_template() {
        let mut combined = info(5, 3, spec());
        combined.combined_log = Some("/h/logs/api.log".into());
        let mut own_var = info(6, 4, spec());
        own_var.spec.instance_var = "INSTANCE_ID".into();
        own_var.spec.env.clear();
        let mut taken_var = info(7, 5, spec());
        taken_var.spec.instance_var = "name".into();
        for (p, first) in [
            (info(1, 1, spec()), info(0, 0, spec())),
            (combined, info(0, 0, spec())),
            (own_var.clone(), {
                let mut first = own_var.clone();
                first.instance = 0;
                first
            }),
            (taken_var.clone(), {
                let mut first = taken_var;
                first.instance = 0;
                first
            }),
        ] {
            assert!(!OptionsTemplate::per_instance(&p.spec));
            assert_written_whole(&OptionsTemplate::new(&options_of(&first)).unwrap(), &p);
        }
        let mut incremented = spec();
        incremented.increment_var = Some("PORT".into());
        assert!(OptionsTemplate::per_instance(&incremented));
    }

    #[test]
    fn written_directly_it_is_the_same_json_as_the_value() {
        let mut p = info(0, 0, spec());
        p.cpu_percent = 3.0;
        let procs = [p, info(1, 1, spec())];
        let direct = serde_json::to_string(&MonitorData(&procs)).unwrap();
        assert_eq!(direct, monitor_data(&procs).to_string());
        // Whole numbers as JavaScript writes them.
        assert!(direct.contains("\"cpu\":3}"), "{direct}");
        assert_eq!(
            serde_json::to_string(&MonitorData::<AppSpec>(&[])).unwrap(),
            "[]"
        );
    }
}
