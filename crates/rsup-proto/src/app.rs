//! Applications as the daemon runs them, and what it reports about them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// PM2's two execution modes. In fork mode each instance owns whatever it
/// binds; in cluster mode the supervisor owns the listening sockets and
/// hands them to every instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    #[default]
    Fork,
    Cluster,
}

impl ExecMode {
    /// The value PM2 puts in the `exec_mode` environment variable.
    pub fn pm2_name(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork_mode",
            ExecMode::Cluster => "cluster_mode",
        }
    }
}

/// One application, every option resolved: the CLI reads config files and
/// flags, applies PM2's defaults and sends this; the daemon never guesses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSpec {
    pub name: String,
    /// Absolute path of the script, or a command looked up in `PATH` when
    /// there is no interpreter.
    pub script: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Program that runs `script` (`node`, `python3`, …); `None` runs the
    /// script itself.
    pub interpreter: Option<String>,
    /// Arguments for the interpreter, before the script.
    pub node_args: Vec<String>,
    /// `--node-args null` removed them: PM2 then lists no `node_args` at
    /// all, where it lists `[]` for none given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub node_args_unset: bool,
    /// Whether the process is Node and so gets a Node IPC channel.
    pub node: bool,
    pub instances: u32,
    pub exec_mode: ExecMode,
    /// The app's own variables (ecosystem `env`, `env_<name>` and
    /// `deploy.<name>.env` with `--env`, `port`): what lists show.
    pub env: BTreeMap<String, String>,
    /// The environment of the CLI that started the app (or that last gave
    /// `--update-env`): every instance inherits it, under the app's own
    /// variables. Lists leave it out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inherited_env: BTreeMap<String, String>,
    /// Inherited variables the app's `env` sets to `null`: removed, whatever
    /// environment is inherited later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_unset: Vec<String>,
    pub wait_ready: bool,
    pub listen_timeout_ms: u64,
    pub kill_timeout_ms: u64,
    /// Signal name such as `SIGINT`.
    pub kill_signal: String,
    pub shutdown_with_message: bool,
    pub treekill: bool,
    pub autorestart: bool,
    pub max_restarts: u32,
    pub min_uptime_ms: u64,
    pub restart_delay_ms: u64,
    /// Starting delay of the exponential backoff; 0 means off.
    pub exp_backoff_restart_delay_ms: u64,
    /// Name of the variable holding the instance index.
    pub instance_var: String,
    pub out_file: Option<PathBuf>,
    pub error_file: Option<PathBuf>,
    pub merge_logs: bool,
    /// chrono format for log line prefixes; implies timestamps.
    pub log_date_format: Option<String>,
    /// Prefix log lines with a timestamp.
    pub time: bool,
    /// PM2's namespace: a group of apps that a target can name as a whole.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Where each instance's pid is written, as `<stem>-<id>.<ext>` (PM2's
    /// `pid_file`, `-p`); `None` writes `<home>/pids/<name>-<id>.pid`.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// A log holding both streams, besides `out_file` and `error_file`
    /// (PM2's `log_file`, `-l`).
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// Restart an instance whose resident memory goes above this many bytes.
    #[serde(default)]
    pub max_memory_restart_bytes: Option<u64>,
    /// How log lines are written.
    #[serde(default)]
    pub log_type: LogType,
    /// Exit codes after which the app is not restarted.
    #[serde(default)]
    pub stop_exit_codes: Vec<i32>,
    /// A variable counting up by instance from its value in `env`
    /// (PM2's `increment_var`).
    #[serde(default)]
    pub increment_var: Option<String>,
    /// A cron pattern (five fields, or six with seconds) at which the app
    /// is reloaded (PM2's `cron_restart`).
    #[serde(default)]
    pub cron_restart: Option<String>,
    /// Files and folders whose changes reload the app (PM2's `watch`);
    /// empty: not watched.
    #[serde(default)]
    pub watch: Vec<PathBuf>,
    /// Patterns of paths whose changes are not acted on (`ignore_watch`),
    /// besides dot files and `node_modules`.
    #[serde(default)]
    pub ignore_watch: Vec<String>,
    /// Quiet time after a change before the reload (`watch_delay`).
    #[serde(default = "default_watch_delay")]
    pub watch_delay_ms: u64,
    /// The app's own log rotation (`log_rotate`), over the global
    /// pm2-logrotate settings; `None`: the global settings alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_rotate: Option<LogRotate>,
}

fn default_watch_delay() -> u64 {
    defaults::WATCH_DELAY_MS
}

impl AppSpec {
    /// Each instance's environment before rsup's own variables: the
    /// inherited one less what the app unsets, under the app's own.
    pub fn process_env(&self) -> BTreeMap<String, String> {
        merge_env(&self.inherited_env, &self.env_unset, &self.env)
    }

    /// One variable of [`AppSpec::process_env`].
    pub fn process_var(&self, name: &str) -> Option<&String> {
        self.env.get(name).or_else(|| {
            (!self.env_unset.iter().any(|k| k == name))
                .then(|| self.inherited_env.get(name))
                .flatten()
        })
    }
}

/// An instance's environment before rsup's own variables: `inherited`
/// less `unset`, under the app's `own`.
pub fn merge_env(
    inherited: &BTreeMap<String, String>,
    unset: &[String],
    own: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = inherited
        .iter()
        .filter(|(k, _)| !unset.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

fn default_namespace() -> String {
    defaults::NAMESPACE.to_string()
}

impl AppSpec {
    /// The variables that differ from one instance to the next, as PM2
    /// gives them: `instance_var` holding the instance index, and
    /// `increment_var` counting up from its value in the environment (0
    /// when unset).
    /// The increment follows the index, so a replaced instance keeps its
    /// value and the values stay `base..base + instances`.
    pub fn instance_variables(&self, instance: u32) -> Vec<(String, String)> {
        let mut vars = vec![(self.instance_var.clone(), instance.to_string())];
        if let Some(var) = &self.increment_var {
            let base = self
                .process_var(var)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0);
            vars.push((var.clone(), (base + i64::from(instance)).to_string()));
        }
        vars
    }
}

/// How log lines are written (PM2's `log_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogType {
    /// The output as the app wrote it (with a timestamp prefix if asked).
    #[default]
    Text,
    /// One JSON object per line: message, stream, time, app name.
    Json,
}

/// An app's log rotation: off whatever the global settings say, or on
/// with these settings (each unset one taken from the global settings,
/// else pm2-logrotate's default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogRotate {
    Off,
    On(RotateSettings),
}

/// pm2-logrotate's settings, each optional; values checked when read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateSettings {
    /// Bytes after which a log is rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Rotated files kept per log; `u32::MAX`: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<u32>,
    /// gzip rotated files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// The date in rotated names, a day.js pattern (`dateFormat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_format: Option<String>,
    /// A cron pattern at which every non-empty log is rotated
    /// (`rotateInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_interval: Option<String>,
}

impl RotateSettings {
    /// These settings, each unset one taken from `under`.
    pub fn over(&self, under: &RotateSettings) -> RotateSettings {
        RotateSettings {
            max_size: self.max_size.or(under.max_size),
            retain: self.retain.or(under.retain),
            compress: self.compress.or(under.compress),
            date_format: self.date_format.clone().or(under.date_format.clone()),
            rotate_interval: self
                .rotate_interval
                .clone()
                .or(under.rotate_interval.clone()),
        }
    }
}

/// Defaults, PM2's where PM2 has one.
pub mod defaults {
    pub const LISTEN_TIMEOUT_MS: u64 = 3000;
    pub const KILL_TIMEOUT_MS: u64 = 1600;
    pub const KILL_SIGNAL: &str = "SIGINT";
    pub const MAX_RESTARTS: u32 = 16;
    pub const MIN_UPTIME_MS: u64 = 1000;
    /// Upper bound of the exponential backoff.
    pub const EXP_BACKOFF_MAX_MS: u64 = 15_000;
    /// Uptime after which the exponential backoff starts over.
    pub const EXP_BACKOFF_RESET_MS: u64 = 30_000;
    pub const INSTANCE_VAR: &str = "NODE_APP_INSTANCE";
    pub const LOG_DATE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f%:z";
    pub const NAMESPACE: &str = "default";
    pub const WATCH_DELAY_MS: u64 = 1000;
    /// pm2-logrotate's defaults.
    pub const ROTATE_MAX_SIZE: u64 = 10 * 1024 * 1024;
    pub const ROTATE_RETAIN: u32 = 30;
    pub const ROTATE_DATE_FORMAT: &str = "YYYY-MM-DD_HH-mm-ss";
    pub const ROTATE_INTERVAL: &str = "0 0 * * *";
}

/// Lifecycle state of one instance, named as PM2 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Started, not yet ready (waiting for `ready` or `listen_timeout`).
    Launching,
    Online,
    /// Told to stop; waiting for it to exit.
    Stopping,
    Stopped,
    /// Crashed and waiting out its restart delay.
    WaitingRestart,
    /// Crashed too often (`max_restarts`); stays down until restarted.
    Errored,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Launching => "launching",
            Status::Online => "online",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::WaitingRestart => "waiting restart",
            Status::Errored => "errored",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    /// Signal name when it was killed by a signal.
    pub signal: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// What the daemon reports about one instance (`jlist`, `describe`). The
/// daemon writes lists with the spec borrowed (`ProcessInfo<&AppSpec>`),
/// which encodes the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo<S = AppSpec> {
    /// PM2's `pm_id`: unique in the daemon, kept across restarts and reloads.
    pub id: u32,
    pub name: String,
    /// The instance index (`NODE_APP_INSTANCE`).
    pub instance: u32,
    pub status: Status,
    pub pid: Option<u32>,
    /// Restarts since the instance was started by a user command.
    pub restarts: u32,
    /// Consecutive restarts that came before `min_uptime`.
    pub unstable_restarts: u32,
    /// When the current process started, ms since the Unix epoch.
    pub started_at_ms: Option<u64>,
    /// When the instance was created (its first start), ms since the Unix
    /// epoch; kept across restarts and reloads (PM2's `created_at`).
    #[serde(default)]
    pub created_at_ms: u64,
    /// PM2's `unique_id`: a UUID of the instance, kept across restarts and
    /// reloads.
    #[serde(default)]
    pub unique_id: String,
    /// The version of Node its interpreter is (`20.11.1`), once known; `None`
    /// for an app that does not run on Node.
    #[serde(default)]
    pub node_version: Option<String>,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub last_exit: Option<ExitInfo>,
    pub out_log: PathBuf,
    pub err_log: PathBuf,
    /// The log of both streams (`log_file`), when the app has one.
    #[serde(default)]
    pub combined_log: Option<PathBuf>,
    /// Where the instance's pid is written.
    #[serde(default)]
    pub pid_file: PathBuf,
    pub spec: S,
    /// Why output cannot be written to a log file now (held in memory and
    /// retried meanwhile); `None` while every log is writable.
    #[serde(default)]
    pub log_error: Option<String>,
    /// Bytes of output thrown away, since the instance was created, for
    /// want of a writable log.
    #[serde(default)]
    pub log_dropped_bytes: u64,
}

impl<S> ProcessInfo<S> {
    /// The same report with `spec` in place of its spec.
    pub fn with_spec<T>(self, spec: T) -> ProcessInfo<T> {
        ProcessInfo {
            id: self.id,
            name: self.name,
            instance: self.instance,
            status: self.status,
            pid: self.pid,
            restarts: self.restarts,
            unstable_restarts: self.unstable_restarts,
            started_at_ms: self.started_at_ms,
            created_at_ms: self.created_at_ms,
            unique_id: self.unique_id,
            node_version: self.node_version,
            cpu_percent: self.cpu_percent,
            memory_bytes: self.memory_bytes,
            last_exit: self.last_exit,
            out_log: self.out_log,
            err_log: self.err_log,
            combined_log: self.combined_log,
            pid_file: self.pid_file,
            spec,
            log_error: self.log_error,
            log_dropped_bytes: self.log_dropped_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_json() -> serde_json::Value {
        serde_json::json!({
            "name": "a", "script": "/a.js", "args": [], "cwd": "/", "interpreter": "node",
            "node_args": [], "node": true, "instances": 1, "exec_mode": "fork",
            "env": {"PORT": "80", "HOME": "/app"},
            "wait_ready": false, "listen_timeout_ms": 3000, "kill_timeout_ms": 1600,
            "kill_signal": "SIGINT", "shutdown_with_message": false, "treekill": true,
            "autorestart": true, "max_restarts": 16, "min_uptime_ms": 1000,
            "restart_delay_ms": 0, "exp_backoff_restart_delay_ms": 0,
            "instance_var": "NODE_APP_INSTANCE", "out_file": null, "error_file": null,
            "merge_logs": true, "log_date_format": null, "time": false
        })
    }

    #[test]
    fn a_spec_without_an_inherited_environment_reads_with_its_env_whole() {
        // As older daemons wrote it: the inherited variables were in `env`.
        let spec: AppSpec = serde_json::from_value(spec_json()).unwrap();
        assert!(spec.inherited_env.is_empty() && spec.env_unset.is_empty());
        assert_eq!(spec.process_env(), spec.env);
        let written = serde_json::to_value(&spec).unwrap();
        assert!(written.get("inherited_env").is_none());
    }

    #[test]
    fn the_apps_variables_win_over_the_inherited_ones_and_unset_ones_go() {
        let mut spec: AppSpec = serde_json::from_value(spec_json()).unwrap();
        spec.inherited_env = [("HOME", "/root"), ("PATH", "/bin"), ("SECRET", "x")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        spec.env_unset = vec!["SECRET".into()];
        let env = spec.process_env();
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(pairs, [("HOME", "/app"), ("PATH", "/bin"), ("PORT", "80")]);
        for (name, value) in [
            ("HOME", Some("/app")),
            ("PATH", Some("/bin")),
            ("SECRET", None),
        ] {
            assert_eq!(spec.process_var(name).map(String::as_str), value, "{name}");
        }
        // increment_var counts up from an inherited value too.
        spec.increment_var = Some("PATH".into());
        spec.inherited_env.insert("PATH".into(), "7000".into());
        assert_eq!(
            spec.instance_variables(2)[1],
            ("PATH".into(), "7002".into())
        );
    }
}
