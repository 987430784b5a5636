//! Command-line syntax: PM2's verbs and flags where PM2 has them.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "rsup",
    version,
    about = "Process supervisor for Node apps: PM2's lifecycle, zero-downtime reloads",
    after_help = "State lives in RSUP_HOME (default ~/.rsup). The daemon starts on demand."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start scripts, the apps of ecosystem files (.config.js, .json, .yml;
    /// "-" reads JSON apps from stdin), or start again the processes a
    /// name, id or /regex/ names
    Start(Box<StartArgs>),
    /// Stop processes: names, ids, /regex/, "all", scripts or config files
    Stop(TargetArgs),
    /// Stop and start processes again, all at once
    Restart(RestartArgs),
    /// Replace processes without downtime: each new process starts beside
    /// the old one, which stops once the new one is ready (listening on the
    /// sockets rsup owns, or `ready` with --wait-ready). An app that binds
    /// its own port without rsup's preload is restarted instead
    Reload(ReloadArgs),
    /// Run N instances of an app ("N", "+N" for N more, "-N" for N fewer)
    Scale {
        name: String,
        #[arg(allow_hyphen_values = true)]
        count: String,
    },
    /// Stop processes and forget them
    #[command(visible_alias = "del")]
    Delete(TargetArgs),
    /// Send a signal to the processes of a name, id or namespace
    #[command(name = "sendSignal")]
    SendSignal {
        signal: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Set the restart counters of processes back to 0
    Reset { target: String },
    /// Print the pid of each process (of the target if given; 0 when stopped)
    Pid { target: Option<String> },
    /// Show the process table
    #[command(visible_aliases = ["ls", "status"])]
    List,
    /// Print the process list as JSON, in PM2's shape
    Jlist {
        /// The daemon's own records instead of PM2's shape
        #[arg(long, hide = true)]
        native: bool,
    },
    /// Print the process list in PM2's shape, as Node's util.inspect writes it
    Prettylist,
    /// Show everything about a process
    #[command(visible_aliases = ["show", "info", "desc"])]
    Describe { target: String },
    /// A live dashboard of every process and the selected one's logs
    Monit,
    /// Print the environment of a process (inherited and its own)
    Env { target: String },
    /// Print and follow log files
    #[command(visible_alias = "log")]
    Logs(LogsArgs),
    /// Empty the log files of processes (a name, an id, /regex/), or all
    /// of them and the daemon's own log
    Flush { target: Option<String> },
    /// Reopen every log file, as after log rotation
    #[command(name = "reloadLogs")]
    ReloadLogs,
    /// Set a pm2-logrotate setting (pm2-logrotate:max_size 10M), turning
    /// log rotation on
    Set { key: String, value: String },
    /// Print the pm2-logrotate settings, or one of them
    Get { key: Option<String> },
    /// Show the pm2-logrotate settings, get one (key) or set one (key value)
    #[command(alias = "config")]
    Conf {
        key: Option<String>,
        value: Option<String>,
    },
    /// Put a pm2-logrotate setting back to its default ("all": every one)
    Unset { key: String },
    /// `install pm2-logrotate`: rotate every log (pm2-logrotate is built in)
    Install { module: String },
    /// `uninstall pm2-logrotate`: stop rotating logs
    Uninstall { module: String },
    /// Start the apps of a config file that are not running, restart the rest
    #[command(name = "startOrRestart")]
    StartOrRestart(ApplyArgs),
    /// Start the apps of a config file that are not running, reload the rest
    #[command(name = "startOrReload")]
    StartOrReload(ApplyArgs),
    /// Like startOrReload (kept for PM2 compatibility)
    #[command(name = "startOrGracefulReload")]
    StartOrGracefulReload(ApplyArgs),
    /// Write the running apps to <home>/dump.pm2, for `resurrect`
    #[command(visible_alias = "dump")]
    Save {
        /// Write the file even when no app runs
        #[arg(long)]
        force: bool,
    },
    /// Start the apps of the last `save` that are not running
    Resurrect,
    /// Empty the saved list, so that `resurrect` starts nothing
    Cleardump,
    /// Write a sample ecosystem.config.js here (mode "simple": one app)
    #[command(visible_alias = "ecosystem")]
    Init { mode: Option<String> },
    /// Print, or with --install write, a systemd unit that starts the saved
    /// apps at boot
    Startup(StartupArgs),
    /// Disable and remove the unit `startup --install` wrote
    Unstartup(StartupArgs),
    /// Say whether the daemon runs
    Ping,
    /// Stop every app gracefully, then the daemon
    Kill,
    /// Re-execute the running daemon with this binary, in place
    ///
    /// After installing a new version: the daemon keeps its pid, every
    /// process keeps running (same pid, sockets, logs) and is supervised by
    /// the new version; restart counts start again at 0, as in PM2
    #[command(visible_alias = "updatePM2")]
    Update,
    /// Answer one call of the Node API (`require('rsup/pm2')`), read as a
    /// JSON line on stdin, with the daemon's replies on stdout
    #[command(name = "node-api", hide = true)]
    NodeApi,
    /// Run the daemon in the foreground (started on demand by other commands)
    #[command(hide = true)]
    Daemon {
        /// Start the apps of the last `save` first (what the systemd unit runs)
        #[arg(long)]
        resurrect: bool,
        /// Go on as the daemon that re-executed itself, from its state file
        #[arg(long, value_name = "FILE")]
        exec_state: Option<std::path::PathBuf>,
        /// Print the version of that state file this binary reads
        #[arg(long)]
        exec_state_version: bool,
        /// The keeper's end of the link to this daemon
        #[arg(long, value_name = "FD")]
        keeper_fd: Option<i32>,
        /// Take over the processes of the daemon that ended, as the keeper
        /// hands them over in FILE
        #[arg(long, value_name = "FILE", requires = "keeper_fd")]
        adopt: Option<std::path::PathBuf>,
    },
    /// Run the keeper of the daemon, which starts it (and the next, should
    /// it crash); what the systemd unit runs
    #[command(hide = true)]
    Keeper {
        /// The first daemon starts the apps of the last `save` first
        #[arg(long)]
        resurrect: bool,
    },
}

/// Which apps of a config file a verb acts on.
#[derive(Args, Debug, Default, Clone)]
pub struct FileFlags {
    /// With a config file: use env_<NAME> and deploy.<NAME>.env
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// With a config file: only these apps (comma separated)
    #[arg(long)]
    pub only: Option<String>,
}

#[derive(Args, Debug)]
pub struct TargetArgs {
    /// Names, ids, /regex/, "all", scripts, config files, or "-" (a config
    /// on stdin)
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub file: FileFlags,
}

/// Options a restart or reload changes.
#[derive(Args, Debug, Default, Clone)]
pub struct UpdateFlags {
    /// Give the processes this shell's environment instead of the one they
    /// were started with
    #[arg(short = 'a', long)]
    pub update_env: bool,
    /// Rename the app
    #[arg(short, long)]
    pub name: Option<String>,
    /// New arguments for the interpreter ("null" removes them)
    #[arg(long, allow_hyphen_values = true, value_name = "ARGS")]
    pub node_args: Option<String>,
}

#[derive(Args, Debug)]
pub struct RestartArgs {
    /// Names, ids, /regex/, "all", scripts, config files, or "-" (a config
    /// on stdin); apps of a config file that do not run are started
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub update: UpdateFlags,
    #[command(flatten)]
    pub file: FileFlags,
}

#[derive(Args, Debug)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub restart: RestartArgs,
    #[command(flatten)]
    pub options: ReloadFlags,
    /// Succeed when no process runs (what the systemd unit's ExecReload
    /// uses; a plain `reload all` fails on nothing, as PM2's does)
    #[arg(long, hide = true)]
    pub if_any: bool,
}

#[derive(Args, Debug, Default)]
pub struct StartArgs {
    /// Scripts, commands, ecosystem files or "-" (default: ecosystem.config.js)
    #[arg(value_name = "SCRIPT")]
    pub scripts: Vec<String>,
    #[arg(short, long)]
    pub name: Option<String>,
    /// Start a script that already runs once more (its processes join the
    /// app of that name)
    #[arg(short, long)]
    pub force: bool,
    /// With a name or id that runs: give it this shell's environment
    #[arg(short = 'a', long)]
    pub update_env: bool,
    /// Number of instances: N, "max" (one per CPU), 0, or -N (CPUs minus N)
    #[arg(short = 'i', long, allow_hyphen_values = true)]
    pub instances: Option<String>,
    /// Consider the app ready when it sends "ready" rather than at once
    #[arg(long)]
    pub wait_ready: bool,
    /// Milliseconds to wait for "ready" before considering the app ready
    #[arg(long, value_name = "MS")]
    pub listen_timeout: Option<u64>,
    /// Milliseconds between the kill signal and SIGKILL
    #[arg(long, value_name = "MS")]
    pub kill_timeout: Option<u64>,
    /// Signal sent to stop the app (default SIGINT, or RSUP_KILL_SIGNAL/PM2_KILL_SIGNAL)
    #[arg(long, value_name = "SIGNAL")]
    pub kill_signal: Option<String>,
    /// Stop the app by sending it the "shutdown" message instead of a signal
    #[arg(long)]
    pub shutdown_with_message: bool,
    /// Use env_<NAME> and deploy.<NAME>.env from the ecosystem file
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Only start these apps of the ecosystem file (comma separated)
    #[arg(long)]
    pub only: Option<String>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(long)]
    pub interpreter: Option<String>,
    /// Arguments for the interpreter, split as a shell would: "--title 'a b' --inspect"
    #[arg(long, allow_hyphen_values = true, value_name = "ARGS")]
    pub node_args: Option<String>,
    /// Do not restart the app when it exits
    #[arg(long)]
    pub no_autorestart: bool,
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<u32>,
    /// Milliseconds a run must last to count as stable
    #[arg(long, value_name = "MS")]
    pub min_uptime: Option<u64>,
    #[arg(long, value_name = "MS")]
    pub restart_delay: Option<u64>,
    /// Restart crashed apps after an exponentially growing delay, starting at MS
    #[arg(long, value_name = "MS")]
    pub exp_backoff_restart_delay: Option<u64>,
    /// Prefix log lines with a timestamp
    #[arg(long)]
    pub time: bool,
    /// Timestamp format of log lines (PM2/moment style, e.g. "YYYY-MM-DD HH:mm:ss")
    #[arg(long, value_name = "FORMAT")]
    pub log_date_format: Option<String>,
    /// All instances write to the same log files
    #[arg(long)]
    pub merge_logs: bool,
    /// stdout log file
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub out_file: Option<PathBuf>,
    /// stderr log file
    #[arg(short = 'e', long = "error", value_name = "FILE")]
    pub error_file: Option<PathBuf>,
    /// Reload the app on this cron schedule ("0 3 * * *"; six fields: seconds first)
    #[arg(
        short = 'c',
        long,
        visible_alias = "cron-restart",
        value_name = "PATTERN"
    )]
    pub cron: Option<String>,
    /// Reload the app when files change: in these paths, or its folder
    #[arg(long, num_args = 0.., value_name = "PATHS")]
    pub watch: Option<Vec<PathBuf>>,
    /// Changes to ignore, besides dot files and node_modules (globs)
    #[arg(long, num_args = 1.., value_name = "PATTERNS")]
    pub ignore_watch: Vec<String>,
    /// Quiet time after a change before reloading: seconds, or "4000ms"
    #[arg(long, value_name = "DELAY", value_parser = parse_watch_delay)]
    pub watch_delay: Option<u64>,
    /// Namespace of the app: a target naming it acts on all its apps
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Pid file of each instance, written as <stem>-<id>.<ext>
    #[arg(short = 'p', long = "pid", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Restart an instance whose memory goes above SIZE (200M, 1G, 300K, bytes)
    #[arg(long, value_name = "SIZE")]
    pub max_memory_restart: Option<String>,
    /// Exit codes after which the app is not restarted
    #[arg(long, num_args = 1.., value_name = "CODE")]
    pub stop_exit_codes: Vec<u8>,
    /// Variable holding the instance index (default NODE_APP_INSTANCE)
    #[arg(long, value_name = "NAME")]
    pub instance_var: Option<String>,
    /// Log file of both streams (default <RSUP_HOME>/logs/<name>.log)
    #[arg(short = 'l', long = "log", value_name = "FILE", num_args = 0..=1)]
    pub log_file: Option<Option<PathBuf>>,
    /// "json" writes each log line as a JSON object
    #[arg(long, value_name = "TYPE")]
    pub log_type: Option<String>,
    /// Run in fork mode
    #[arg(short = 'x', long)]
    pub execute_command: bool,
    /// Run in the foreground, without a daemon (for containers)
    #[arg(long)]
    pub no_daemon: bool,
    /// With --no-daemon: serve /livez, /readyz and /metrics on this port of
    /// every address, or on ADDR:PORT (default off, or RSUP_HEALTH_PORT)
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub health_port: Option<String>,
    /// With --health-port: on SIGTERM, /readyz answers 503 for MS before
    /// the apps stop (default 5000, or RSUP_DRAIN_DELAY)
    #[arg(long, value_name = "MS")]
    pub drain_delay: Option<u64>,
    #[command(flatten)]
    pub pm2_monitoring: Pm2MonitoringFlags,
    /// Arguments for the app, after --
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// PM2's switches for its own monitoring (PM2.io, vizion, tracing): they
/// mean nothing to rsup and are taken without a word, as the same keys in
/// an ecosystem file are, so that PM2 command lines keep working.
#[derive(Args, Debug, Default)]
pub struct Pm2MonitoringFlags {
    #[arg(long = "no-vizion", hide = true)]
    no_vizion: bool,
    #[arg(long = "no-pmx", hide = true)]
    no_pmx: bool,
    #[arg(long = "no-automation", hide = true)]
    no_automation: bool,
    #[arg(long, hide = true)]
    trace: bool,
    #[arg(long, hide = true)]
    disable_trace: bool,
    #[arg(long, hide = true)]
    v8: bool,
    #[arg(long, hide = true)]
    event_loop_inspector: bool,
    #[arg(long, hide = true)]
    deep_monitoring: bool,
    #[arg(long, hide = true)]
    source_map_support: bool,
    #[arg(long, hide = true)]
    disable_source_map_support: bool,
}

#[derive(Args, Debug)]
pub struct StartupArgs {
    /// Init system: only systemd
    #[arg(default_value = "systemd", value_parser = ["systemd"])]
    pub platform: String,
    /// The user the apps run as (default: you)
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// That user's home folder (default: from the password database)
    #[arg(long = "hp", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Write the unit (and enable it, in the system folder) instead of printing it
    #[arg(long)]
    pub install: bool,
    /// Folder of the unit file
    #[arg(long, value_name = "DIR", default_value = crate::cli::startup::SYSTEM_UNIT_DIR)]
    pub unit_dir: PathBuf,
}

/// PM2's `--watch-delay`: seconds (`4`, `1.5`), or milliseconds (`4000ms`).
fn parse_watch_delay(text: &str) -> Result<u64, String> {
    let bad = || format!("expected seconds (\"4\") or milliseconds (\"4000ms\"), got {text:?}");
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.trim().parse().map_err(|_| bad());
    }
    let secs: f64 = text.trim().parse().map_err(|_| bad())?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(bad());
    }
    Ok((secs * 1000.0).round() as u64)
}

#[derive(Args, Debug, Default)]
pub struct LogsArgs {
    /// Whose logs: a target as `stop` takes it (name, id, /regex/), or "all"
    pub target: Option<String>,
    /// Lines to show from the end of each file
    #[arg(long, default_value_t = 15)]
    pub lines: usize,
    /// Print the last lines and exit instead of following
    #[arg(long)]
    pub nostream: bool,
    /// Lines alone, without "id|name |" (those of stderr on stderr)
    #[arg(long)]
    pub raw: bool,
    /// Only standard output
    #[arg(long)]
    pub out: bool,
    /// Only standard error
    #[arg(long)]
    pub err: bool,
    /// Follow as JSON objects, one per line
    #[arg(long)]
    pub json: bool,
    /// Follow as key=value lines
    #[arg(long)]
    pub format: bool,
    /// Time in front of each new line (default format YYYY-MM-DD-HH:mm:ss)
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, default_missing_value = "YYYY-MM-DD-HH:mm:ss")]
    pub timestamp: Option<String>,
    /// Mark this text in each new line (a grey background)
    #[arg(long, value_name = "TEXT", num_args = 0..=1)]
    pub highlight: Option<Option<String>>,
}

#[derive(Args, Debug, Default, Clone, Copy)]
pub struct ReloadFlags {
    /// Instances replaced at the same time
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub parallel: u32,
    /// Fail the reload (keeping the old process) when a new process is not
    /// ready within listen_timeout, instead of taking it as ready as PM2 does
    #[arg(long)]
    pub strict_ready: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Ecosystem file
    pub config: String,
    /// Use env_<NAME> and deploy.<NAME>.env from the ecosystem file
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Only these apps of the file (comma separated)
    #[arg(long)]
    pub only: Option<String>,
    #[command(flatten)]
    pub reload: ReloadFlags,
}
