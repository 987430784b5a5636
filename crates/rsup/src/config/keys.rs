//! The app keys PM2 knows (lib/API/schema.json plus the `cmd`/`command`
//! script aliases of Common.verifyConfs), sorted into the ones rsup reads
//! and the ones it accepts but ignores.
//!
//! PM2 also accepts the camelCase spelling of every key (`killTimeout`), so
//! [`lookup`] does too.

/// Keys rsup implements: canonical name and PM2's aliases for it.
pub const USED: &[(&str, &[&str])] = &[
    ("script", &["exec", "cmd", "command"]),
    ("name", &[]),
    ("args", &[]),
    ("cwd", &[]),
    ("exec_interpreter", &["interpreter"]),
    ("node_args", &["interpreter_args", "interpreterArgs"]),
    ("instances", &[]),
    ("exec_mode", &[]),
    ("env", &[]),
    ("wait_ready", &[]),
    ("listen_timeout", &[]),
    ("kill_timeout", &[]),
    ("kill_signal", &[]),
    ("shutdown_with_message", &[]),
    ("treekill", &[]),
    ("autorestart", &[]),
    ("max_restarts", &[]),
    ("min_uptime", &[]),
    ("restart_delay", &[]),
    ("exp_backoff_restart_delay", &[]),
    ("instance_var", &[]),
    ("out_file", &["out", "output", "out_log"]),
    ("error_file", &["error", "err", "err_file", "err_log"]),
    ("merge_logs", &["combine_logs"]),
    ("log_date_format", &[]),
    ("time", &[]),
    ("port", &[]),
    ("cron_restart", &["cron"]),
    ("watch", &[]),
    ("ignore_watch", &[]),
    ("watch_delay", &[]),
    ("namespace", &[]),
    ("pid_file", &["pid"]),
    ("max_memory_restart", &[]),
    ("stop_exit_codes", &[]),
    ("increment_var", &[]),
    ("log_file", &["log"]),
    ("log_type", &[]),
    ("log_rotate", &[]),
    ("append_env_to_name", &[]),
];

/// PM2 features rsup does not have: accepted, with a warning when they are
/// switched on, because the user expects them to do something.
pub const IGNORED: &[(&str, &[&str])] = &[
    ("watch_options", &[]),
    ("disable_logs", &[]),
    ("name_prefix", &[]),
    ("filter_env", &[]),
    ("uid", &["user"]),
    ("gid", &[]),
    ("kill_retry_time", &[]),
    ("autostart", &[]),
    ("force", &[]),
    ("post_update", &[]),
    ("install_url", &[]),
    ("io", &[]),
];

/// PM2 monitoring and bookkeeping switches that have no meaning outside
/// PM2: accepted without a word so that existing files stay quiet.
pub const SILENT: &[&str] = &[
    "vizion",
    "pmx",
    "automation",
    "source_map_support",
    "disable_source_map_support",
    "trace",
    "disable_trace",
    "v8",
    "event_loop_inspector",
    "deep_monitoring",
    "username",
    "windowsHide",
    "write",
    "execute_command",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Canonical name of a key rsup reads.
    Used(&'static str),
    /// Canonical name of a PM2 key rsup ignores.
    Ignored(&'static str),
    Silent,
    /// `env_<name>`, with `<name>`.
    EnvVariant,
    Unknown,
}

/// `kill_timeout` → `killTimeout`, the spelling PM2 derives for every key.
fn camel(key: &str) -> String {
    let mut out = String::new();
    for (i, part) in key.split('_').enumerate() {
        if i > 0 && part.len() > 1 {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push_str(part);
        }
    }
    out
}

fn find(table: &[(&'static str, &[&str])], key: &str) -> Option<&'static str> {
    table.iter().find_map(|(canonical, aliases)| {
        (*canonical == key || aliases.contains(&key) || camel(canonical) == key)
            .then_some(*canonical)
    })
}

pub fn lookup(key: &str) -> Known {
    if let Some(c) = find(USED, key) {
        return Known::Used(c);
    }
    if let Some(c) = find(IGNORED, key) {
        return Known::Ignored(c);
    }
    if SILENT.contains(&key) || SILENT.iter().any(|s| camel(s) == key) {
        return Known::Silent;
    }
    if key.len() > 4 && key.starts_with("env_") {
        return Known::EnvVariant;
    }
    Known::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_camel_case() {
        assert_eq!(lookup("interpreter"), Known::Used("exec_interpreter"));
        assert_eq!(lookup("execInterpreter"), Known::Used("exec_interpreter"));
        assert_eq!(lookup("interpreterArgs"), Known::Used("node_args"));
        assert_eq!(lookup("nodeArgs"), Known::Used("node_args"));
        assert_eq!(lookup("killTimeout"), Known::Used("kill_timeout"));
        assert_eq!(
            lookup("expBackoffRestartDelay"),
            Known::Used("exp_backoff_restart_delay")
        );
        assert_eq!(lookup("combine_logs"), Known::Used("merge_logs"));
        assert_eq!(lookup("err_log"), Known::Used("error_file"));
        assert_eq!(lookup("output"), Known::Used("out_file"));
        assert_eq!(lookup("cmd"), Known::Used("script"));
        assert_eq!(
            lookup("maxMemoryRestart"),
            Known::Used("max_memory_restart")
        );
        assert_eq!(lookup("cron"), Known::Used("cron_restart"));
        assert_eq!(lookup("pid"), Known::Used("pid_file"));
        assert_eq!(lookup("stopExitCodes"), Known::Used("stop_exit_codes"));
        assert_eq!(lookup("env_production"), Known::EnvVariant);
        assert_eq!(lookup("vizion"), Known::Silent);
        assert_eq!(lookup("scirpt"), Known::Unknown);
        assert_eq!(lookup("env_"), Known::Unknown);
    }
}
