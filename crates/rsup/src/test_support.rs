//! Values shared by unit tests in several modules.

use rsup_proto::app::{defaults, AppSpec, ExecMode};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An app whose instances sleep until stopped (`sleep 1000`, not Node).
pub fn sleeper(name: &str, instances: u32) -> AppSpec {
    let mut spec = spec();
    spec.name = name.into();
    spec.script = "sleep".into();
    spec.args = vec!["1000".into()];
    spec.interpreter = None;
    spec.node = false;
    spec.cwd = "/".into();
    spec.env = [("PATH".to_string(), "/usr/bin:/bin".to_string())].into();
    spec.instances = instances;
    spec
}

/// A Node app with PM2's defaults, for tests to adjust.
pub fn spec() -> AppSpec {
    AppSpec {
        name: "app".into(),
        script: "/srv/app/server.js".into(),
        args: vec![],
        cwd: PathBuf::from("/srv/app"),
        interpreter: Some("node".into()),
        node_args: vec![],
        node_args_unset: false,
        node: true,
        instances: 1,
        exec_mode: ExecMode::Fork,
        env: BTreeMap::new(),
        inherited_env: BTreeMap::new(),
        env_unset: vec![],
        wait_ready: false,
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
        log_type: Default::default(),
        stop_exit_codes: vec![],
        increment_var: None,
        cron_restart: None,
        watch: vec![],
        ignore_watch: vec![],
        watch_delay_ms: defaults::WATCH_DELAY_MS,
        log_rotate: None,
    }
}
