//! What each verb does on the client side, and what the verbs share
//! (`start` lives in [`super::start`]; stop, restart, reload and delete
//! in [`super::operate`]).

use super::args::{ApplyArgs, Command, ReloadFlags, StartArgs, StartupArgs};
use super::client::{check_answers, connect, connect_existing, send, send_raw};
use super::{inspect, log_verbs, monit, operate, render, start, startup};
use crate::config::{self, Context as ConfigContext, Overrides};
use crate::dump;
use crate::home::Home;
use anyhow::{bail, Context, Result};
use rsup_proto::app::{AppSpec, ProcessInfo, Status};
use rsup_proto::control::{ApplyAction, ReloadOptions, Reply, Request, ScaleCount, Target};
use rsup_proto::pm2::MonitorData;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

pub fn run(command: Command) -> Result<i32> {
    if let Command::Daemon {
        exec_state_version: true,
        ..
    } = command
    {
        println!("{}", crate::daemon::EXEC_STATE_VERSION);
        return Ok(0);
    }
    let home = Home::from_env()?;
    match command {
        Command::Daemon {
            exec_state: Some(state),
            ..
        } => {
            crate::daemon::run_reexecuted(home, &state)?;
            Ok(0)
        }
        Command::Keeper { resurrect } => crate::keeper::run(home, resurrect),
        Command::Daemon {
            keeper_fd: Some(fd),
            adopt,
            resurrect,
            ..
        } => {
            // The first daemon resurrects; the next ones take over.
            let apps = if resurrect && adopt.is_none() {
                dump::load(&home)?.map(|(_, apps)| apps).unwrap_or_default()
            } else {
                vec![]
            };
            crate::daemon::run_kept(home, fd, adopt.as_deref(), apps)?;
            Ok(0)
        }
        Command::Daemon { resurrect, .. } => {
            let apps = if resurrect {
                dump::load(&home)?.map(|(_, apps)| apps).unwrap_or_default()
            } else {
                vec![]
            };
            let health = crate::daemon::HealthOptions::from_env().map_err(anyhow::Error::msg)?;
            crate::daemon::run(home, apps, health)?;
            Ok(0)
        }
        Command::Update => super::update::update(&home),
        Command::Start(args) => start::start(&home, *args),
        Command::Stop(a) => operate::operate(&home, operate::Verb::Stop, &a.targets, &a.file),
        Command::Restart(a) => {
            operate::operate(&home, operate::Verb::Restart(a.update), &a.targets, &a.file)
        }
        Command::Reload(a) if a.if_any && list(&home)?.is_empty() => {
            println!("[rsup] no process runs: nothing to reload");
            Ok(0)
        }
        Command::Reload(a) => operate::operate(
            &home,
            operate::Verb::Reload(a.restart.update, a.options.into()),
            &a.restart.targets,
            &a.restart.file,
        ),
        Command::Scale { name, count } => scale(&home, &name, &count),
        Command::Delete(a) => operate::operate(&home, operate::Verb::Delete, &a.targets, &a.file),
        Command::SendSignal { signal, targets } => send_signal(&home, &signal, &targets),
        Command::Reset { target } => act(&home, Request::Reset { target: t(&target) }),
        Command::Pid { target } => pid(&home, target.as_deref()),
        Command::List => {
            print_table(&list(&home)?);
            Ok(0)
        }
        Command::Jlist { native: true } => jlist_native(&home),
        Command::Jlist { native: false } => jlist(&home),
        Command::Prettylist => prettylist(&home),
        Command::Monit => monit::run(|| list(&home)),
        Command::Describe { target } => describe(&home, &target),
        Command::Logs(args) => log_verbs::logs(&home, args),
        Command::Flush { target } => log_verbs::flush(&home, target.as_deref()),
        Command::ReloadLogs => log_verbs::reload_logs(&home),
        Command::Set { key, value } => super::module_conf::set(&home, &key, &value),
        Command::Get { key } => super::module_conf::get(&home, key.as_deref()),
        Command::Conf { key, value } => {
            super::module_conf::conf(&home, key.as_deref(), value.as_deref())
        }
        Command::Unset { key } => super::module_conf::unset(&home, &key),
        Command::Install { module } => super::module_conf::install(&home, &module, true),
        Command::Uninstall { module } => super::module_conf::install(&home, &module, false),
        Command::Env { target } => env(&home, &target),
        Command::StartOrRestart(a) => apply(&home, a, ApplyAction::Restart),
        Command::StartOrReload(a) | Command::StartOrGracefulReload(a) => {
            apply(&home, a, ApplyAction::Reload)
        }
        Command::Save { force } => save(&home, force),
        Command::Resurrect => resurrect(&home),
        Command::Cleardump => {
            let path = dump::save(&home, &[], true)?.unwrap_or_else(|| dump::path(&home));
            println!("[rsup] {} now holds no app", path.display());
            Ok(0)
        }
        Command::Init { mode } => super::init::init(
            &std::env::current_dir().context("cannot read the current folder")?,
            mode.as_deref(),
        ),
        Command::Startup(a) => startup(a),
        Command::Unstartup(a) => unstartup(a),
        Command::Ping => ping(&home),
        Command::Kill => kill(&home),
        Command::NodeApi => super::node_api::run(&home),
    }
}

fn t(s: &str) -> Target {
    Target::parse(s)
}

/// Sends a request, prints its progress, then the table; non-zero on error.
pub(super) fn request(home: &Home, req: &Request) -> Result<Vec<ProcessInfo>> {
    let stream = connect(home)?;
    if !matches!(req, Request::List { .. }) {
        check_answers(home)?;
    }
    let reply = send(stream, req, |m| println!("[rsup] {m}"))?;
    match reply {
        Reply::Done { processes } => Ok(processes),
        Reply::Error { message } => bail!(message),
        Reply::Pong { .. }
        | Reply::Progress { .. }
        | Reply::Subscribed
        | Reply::Pm2List { .. }
        | Reply::Updated { .. } => {
            bail!("unexpected reply from the daemon")
        }
    }
}

fn act(home: &Home, req: Request) -> Result<i32> {
    request(home, &req)?;
    print_table(&list(home)?);
    Ok(0)
}

/// Prints the process list in PM2's shape, as JSON (`pm2 jlist`): as the
/// daemon wrote it, or shaped here when the daemon predates that.
fn jlist(home: &Home) -> Result<i32> {
    let request = Request::List {
        target: None,
        pm2: true,
    };
    let line = send_raw(connect(home)?, &request)?;
    make_room(std::io::stdout(), line.len());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match list_json(&line)? {
        ListJson::Pm2(json) => out.write_all(json.as_bytes())?,
        ListJson::Native(json) => {
            let procs: Vec<ProcessInfo> =
                serde_json::from_str(json).context("unreadable reply from the rsup daemon")?;
            serde_json::to_writer(&mut out, &MonitorData(&procs))?;
        }
    }
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(0)
}

/// Lets `out` (stdout) hold `len` bytes, so that a list of a megabyte is written
/// at once and this process ends, instead of waiting for the reader to
/// take it 64 KiB (a pipe) or 200 KiB (a socket, as Node's `spawn` gives)
/// at a time. As far as the system allows: a pipe up to
/// `fs.pipe-max-size` (1 MiB by default), a socket up to
/// `net.core.wmem_max`. Anything else is left as it is.
fn make_room(out: impl std::os::fd::AsFd, len: usize) {
    use nix::errno::Errno;
    use nix::fcntl::{fcntl, FcntlArg::F_SETPIPE_SZ};
    use nix::sys::socket::{setsockopt, sockopt::SndBuf};
    const SMALL: usize = 64 * 1024;
    const PIPE_MAX_UNPRIVILEGED: usize = 1 << 20;
    if len <= SMALL {
        return;
    }
    let Ok(wanted) = i32::try_from(len + 4096) else {
        return;
    };
    match fcntl(&out, F_SETPIPE_SZ(wanted)) {
        Err(Errno::EPERM) => {
            let _ = fcntl(&out, F_SETPIPE_SZ(PIPE_MAX_UNPRIVILEGED as i32));
        }
        // Not a pipe.
        Err(Errno::EBADF) => {
            let _ = setsockopt(&out, SndBuf, &(wanted as usize));
        }
        _ => {}
    }
}

/// Prints the process list in PM2's shape as `pm2 prettylist` does: Node's
/// `util.inspect` of it.
fn prettylist(home: &Home) -> Result<i32> {
    let text = prettylist_text(&list_fast(home)?);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(0)
}

fn prettylist_text(procs: &[ProcessInfo]) -> String {
    // Node writes the first 100 entries of an array and only counts the
    // rest: only those are built.
    let shown = procs.len().min(inspect::MAX_ARRAY_LENGTH);
    let mut list = rsup_proto::pm2::monitor_data(&procs[..shown]);
    if let serde_json::Value::Array(entries) = &mut list {
        entries.resize(procs.len(), serde_json::Value::Null);
    }
    inspect::inspect(&list)
}

/// Prints the daemon's own records of its processes as it sent them
/// (`jlist --native`, for rsup's tests and tools): the same JSON as parsing
/// it into [`ProcessInfo`]s and writing them again, without the cost of
/// doing so for thousands of processes.
fn jlist_native(home: &Home) -> Result<i32> {
    let line = native_list_line(home)?;
    let json = jlist_json(&line)?;
    let mut out = std::io::stdout().lock();
    out.write_all(json.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(0)
}

/// The `processes` array of a `done` reply; the message of an `error`.
fn jlist_json(line: &[u8]) -> Result<&str> {
    match list_json(line)? {
        ListJson::Native(json) => Ok(json),
        ListJson::Pm2(_) => bail!("unexpected reply from the daemon"),
    }
}

/// A list reply's `processes` array, unparsed.
#[derive(Debug, PartialEq)]
enum ListJson<'a> {
    /// Of [`ProcessInfo`]s (`done`).
    Native(&'a str),
    /// In PM2's shape (`pm2_list`).
    Pm2(&'a str),
}

/// How the daemon opens a list in PM2's shape; the array and `}` follow,
/// and nothing else.
const PM2_LIST_OPENING: &[u8] = br#"{"reply":"pm2_list","processes":"#;

/// The `processes` array of a list reply; the message of an `error`.
fn list_json(line: &[u8]) -> Result<ListJson<'_>> {
    // A list in PM2's shape as the daemon writes it is passed on as it
    // is: checking a megabyte of JSON costs the CLI more than the rest of
    // `jlist` does.
    let whole = line.strip_suffix(b"\n").unwrap_or(line);
    if let Some(array) = whole
        .strip_prefix(PM2_LIST_OPENING)
        .and_then(|rest| rest.strip_suffix(b"}"))
        .filter(|array| array.starts_with(b"[") && array.ends_with(b"]"))
    {
        let array = std::str::from_utf8(array).context("unreadable reply from the rsup daemon")?;
        return Ok(ListJson::Pm2(array));
    }
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        reply: &'a str,
        #[serde(borrow)]
        processes: Option<&'a serde_json::value::RawValue>,
        message: Option<String>,
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let raw: Raw = serde_json::from_slice(line).context("unreadable reply from the rsup daemon")?;
    match (raw.reply, raw.processes, raw.message) {
        ("done", Some(p), _) if p.get().starts_with('[') => Ok(ListJson::Native(p.get())),
        ("pm2_list", Some(p), _) if p.get().starts_with('[') => Ok(ListJson::Pm2(p.get())),
        ("error", _, Some(message)) => bail!(message),
        _ => bail!("unexpected reply from the daemon"),
    }
}

/// Every process, read straight from the reply's `processes` array: the
/// generic reply parser buffers a tagged reply whole first, which costs
/// more than the rest of `jlist` for thousands of processes.
fn list_fast(home: &Home) -> Result<Vec<ProcessInfo>> {
    let line = native_list_line(home)?;
    serde_json::from_str(jlist_json(&line)?).context("unreadable reply from the rsup daemon")
}

/// The daemon's reply to a list of every process in its own records, as
/// it came.
fn native_list_line(home: &Home) -> Result<Vec<u8>> {
    let request = Request::List {
        target: None,
        pm2: false,
    };
    send_raw(connect(home)?, &request)
}

pub fn list(home: &Home) -> Result<Vec<ProcessInfo>> {
    request(
        home,
        &Request::List {
            target: None,
            pm2: false,
        },
    )
}

/// The processes a target names, as the daemon resolves it for every verb.
pub(super) fn select(home: &Home, target: &str) -> Result<Vec<ProcessInfo>> {
    request(
        home,
        &Request::List {
            target: Some(t(target)),
            pm2: false,
        },
    )
}

pub fn print_table(procs: &[ProcessInfo]) {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    print!(
        "{}",
        render::process_table(procs, crate::daemon::now_ms(), color)
    );
}

pub(super) fn context(home: &Home) -> Result<ConfigContext> {
    Ok(ConfigContext {
        cwd: std::env::current_dir()?,
        env: std::env::vars().collect(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        logs_dir: home.logs_dir(),
    })
}

pub(super) fn overrides(a: &StartArgs) -> Overrides {
    Overrides {
        name: a.name.clone(),
        instances: a.instances.clone(),
        wait_ready: a.wait_ready.then_some(true),
        listen_timeout_ms: a.listen_timeout,
        kill_timeout_ms: a.kill_timeout,
        kill_signal: a.kill_signal.clone(),
        shutdown_with_message: a.shutdown_with_message.then_some(true),
        env_name: a.env.clone(),
        cwd: a.cwd.clone(),
        interpreter: a.interpreter.clone(),
        // Split with the config's shell rules, so quotes work as in the file.
        node_args: a.node_args.clone(),
        autorestart: a.no_autorestart.then_some(false),
        max_restarts: a.max_restarts,
        min_uptime_ms: a.min_uptime,
        restart_delay_ms: a.restart_delay,
        exp_backoff_restart_delay_ms: a.exp_backoff_restart_delay,
        time: a.time.then_some(true),
        merge_logs: a.merge_logs.then_some(true),
        log_date_format: a.log_date_format.clone(),
        out_file: a.out_file.clone(),
        error_file: a.error_file.clone(),
        namespace: a.namespace.clone(),
        pid_file: a.pid_file.clone(),
        max_memory_restart: a.max_memory_restart.clone(),
        stop_exit_codes: a.stop_exit_codes.iter().map(|&c| i32::from(c)).collect(),
        instance_var: a.instance_var.clone(),
        log_file: a.log_file.clone(),
        log_type: a.log_type.clone(),
        exec_mode: a.execute_command.then_some(rsup_proto::app::ExecMode::Fork),
        args: a.args.clone(),
        only: a.only.clone(),
        cron_restart: a.cron.clone(),
        watch: a.watch.clone(),
        ignore_watch: a.ignore_watch.clone(),
        watch_delay_ms: a.watch_delay,
    }
}

/// Reads apps from a config file (`-`: from stdin) or a script, printing
/// warnings.
pub(super) fn load(home: &Home, script: &str, ov: &Overrides) -> Result<Vec<AppSpec>> {
    let ctx = context(home)?;
    let loaded = if script == STDIN {
        config::load_config_text("stdin", &read_stdin()?, ov, &ctx)?
    } else if config::is_config_file(script) {
        config::load_config_file(std::path::Path::new(script), ov, &ctx)?
    } else {
        config::app_from_script(script, ov, &ctx)?
    };
    for w in &loaded.warnings {
        eprintln!("rsup: warning: {w}");
    }
    if loaded.apps.is_empty() {
        bail!("{script}: no app to start");
    }
    Ok(loaded.apps)
}

/// The target that stands for a config read from stdin, as in PM2.
pub(super) const STDIN: &str = "-";

/// What was piped to the CLI: PM2 reads a config from stdin for `-`.
pub(super) fn read_stdin() -> Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .context("reading the apps from stdin")?;
    if text.trim().is_empty() {
        bail!("-: nothing was read from stdin (pipe a JSON app list into rsup)");
    }
    Ok(text)
}

fn apply(home: &Home, a: ApplyArgs, action: ApplyAction) -> Result<i32> {
    let ov = Overrides {
        env_name: a.env.clone(),
        only: a.only.clone(),
        ..Overrides::default()
    };
    let apps = load(home, &a.config, &ov)?;
    let touched = request(
        home,
        &Request::Apply {
            apps,
            action,
            options: a.reload.into(),
        },
    )?;
    print_table(&list(home)?);
    Ok(report_failures(&touched))
}

/// Names instances that did not come up; exit code 1 if any.
pub(super) fn report_failures(procs: &[ProcessInfo]) -> i32 {
    let mut failed = false;
    for p in procs {
        let why = match p.status {
            Status::Online => continue,
            Status::Errored => format!("failed to start (errored after {} restarts)", p.restarts),
            Status::Stopped => match &p.last_exit {
                Some(exit) if exit.code == Some(0) => continue,
                Some(exit) => match (&exit.signal, exit.code) {
                    (Some(signal), _) => format!("was killed by {signal}"),
                    (None, code) => format!("exited with code {}", code.unwrap_or(-1)),
                },
                None => continue,
            },
            other => format!(
                "is not online ({}, {} restarts)",
                other.as_str(),
                p.restarts
            ),
        };
        failed = true;
        eprintln!(
            "rsup: {} (id {}) {why}; see {}",
            p.name,
            p.id,
            p.err_log.display()
        );
    }
    i32::from(failed)
}

fn describe(home: &Home, target: &str) -> Result<i32> {
    for p in select(home, target)? {
        println!("{}", render::describe(&p, crate::daemon::now_ms()));
    }
    Ok(0)
}

/// PM2's `env <id>`: every variable the process was given, `KEY: value`,
/// sorted; a line naming each process first when the target names several.
fn env(home: &Home, target: &str) -> Result<i32> {
    let procs = request(home, &Request::Environment { target: t(target) })?;
    let several = procs.len() > 1;
    let mut out = std::io::stdout().lock();
    for p in &procs {
        if several {
            writeln!(out, "--- {} (id {})", p.name, p.id)?;
        }
        let mut vars = p.spec.process_env();
        vars.extend(crate::daemon::pm2_variables_of(p));
        for (k, v) in vars {
            writeln!(out, "{k}: {v}")?;
        }
    }
    Ok(0)
}

impl From<ReloadFlags> for ReloadOptions {
    fn from(f: ReloadFlags) -> Self {
        ReloadOptions {
            parallel: f.parallel,
            strict_ready: f.strict_ready,
        }
    }
}

fn scale(home: &Home, name: &str, count: &str) -> Result<i32> {
    let count = ScaleCount::parse(count).map_err(|e| anyhow::anyhow!("scale: {e}"))?;
    act(
        home,
        Request::Scale {
            name: name.to_string(),
            count,
        },
    )
}

fn save(home: &Home, force: bool) -> Result<i32> {
    match save_apps(home, force)? {
        (count, Some(path)) => println!("[rsup] saved {count} app(s) in {}", path.display()),
        (_, None) => {
            println!(
                "[rsup] no app runs: {} left as it was",
                dump::path(home).display()
            );
            println!("[rsup] to save an empty list: rsup save --force");
        }
    }
    Ok(0)
}

/// Writes the running apps to the dump; how many, and where (`None` when
/// none runs and not `force`: the file is left as it was).
pub(super) fn save_apps(home: &Home, force: bool) -> Result<(usize, Option<PathBuf>)> {
    // With the environment each app inherited, which lists leave out.
    let whole = request(
        home,
        &Request::Environment {
            target: Target::All,
        },
    )?;
    let apps = dump::apps_of(&whole);
    Ok((apps.len(), dump::save(home, &apps, force)?))
}

fn resurrect(home: &Home) -> Result<i32> {
    let started = resurrect_apps(home, |path| {
        println!("[rsup] restoring the apps saved in {}", path.display())
    })?;
    print_table(&list(home)?);
    Ok(report_failures(&started))
}

/// Starts the apps of the dump that do not run (`reading` is told which
/// file), and returns their processes; none when there is no dump.
pub(super) fn resurrect_apps(home: &Home, reading: impl FnOnce(&Path)) -> Result<Vec<ProcessInfo>> {
    let Some((path, apps)) = dump::load(home)? else {
        eprintln!(
            "rsup: nothing to resurrect: no {} (write it with `rsup save`)",
            dump::path(home).display()
        );
        return Ok(vec![]);
    };
    reading(&path);
    let running = list(home)?;
    let missing: Vec<AppSpec> = apps
        .into_iter()
        .filter(|a| !running.iter().any(|p| p.name == a.name))
        .collect();
    if missing.is_empty() {
        return Ok(vec![]);
    }
    request(
        home,
        &Request::Start {
            apps: missing,
            force: false,
        },
    )
}

fn startup(a: StartupArgs) -> Result<i32> {
    let unit = startup::unit_for(a.user.as_deref(), a.home.as_deref())?;
    if !a.install {
        print!("{}", unit.render());
        eprintln!(
            "rsup: to install it: sudo env PATH=\"$PATH\" {} startup systemd -u {} --install",
            unit.exe.display(),
            unit.user
        );
        eprintln!("rsup: then `rsup save` the apps to bring back at boot");
        return Ok(0);
    }
    let path = startup::install(&unit, &a.unit_dir)?;
    println!("[rsup] wrote {}", path.display());
    println!("[rsup] `rsup save` the apps it should bring back at boot");
    Ok(0)
}

fn unstartup(a: StartupArgs) -> Result<i32> {
    let unit = startup::unit_for(a.user.as_deref(), a.home.as_deref())?;
    match startup::uninstall(&unit, &a.unit_dir)? {
        Some(path) => println!("[rsup] removed {}", path.display()),
        None => println!(
            "[rsup] no {} in {}",
            unit.service_name(),
            a.unit_dir.display()
        ),
    }
    Ok(0)
}

fn send_signal(home: &Home, signal: &str, targets: &[String]) -> Result<i32> {
    let signal = config::signal_name(signal)
        .ok_or_else(|| anyhow::anyhow!("sendSignal: not a signal name: {signal:?}"))?;
    let signalled = request(
        home,
        &Request::Signal {
            signal: signal.clone(),
            targets: targets.iter().map(|s| t(s)).collect(),
        },
    )?;
    for p in &signalled {
        println!(
            "[rsup] {signal} sent to {} (id {}, pid {})",
            p.name,
            p.id,
            p.pid.unwrap_or(0)
        );
    }
    Ok(0)
}

/// PM2's `pid`: one line per process, 0 for one that is not running.
fn pid(home: &Home, target: Option<&str>) -> Result<i32> {
    let procs = match target {
        Some(target) => select(home, target)?,
        None => list(home)?,
    };
    for p in procs {
        println!("{}", p.pid.unwrap_or(0));
    }
    Ok(0)
}

fn ping(home: &Home) -> Result<i32> {
    let Some(stream) = connect_existing(home)? else {
        println!("rsup daemon is not running ({})", home.dir.display());
        return Ok(1);
    };
    match send(stream, &Request::Ping, |_| {})? {
        Reply::Pong { pid, version, .. } => {
            println!("rsup daemon is running (pid {pid}, version {version})");
            Ok(0)
        }
        Reply::Error { message } => bail!(message),
        _ => bail!("unexpected reply from the daemon"),
    }
}

fn kill(home: &Home) -> Result<i32> {
    let Some(stream) = connect_existing(home)? else {
        println!("rsup daemon is not running");
        return Ok(0);
    };
    if let Reply::Error { message } = send(stream, &Request::Kill, |m| println!("[rsup] {m}"))? {
        bail!(message);
    }
    wait_until_stopped(home)?;
    println!("rsup daemon stopped");
    Ok(0)
}

/// The daemon exits right after answering `kill`; waits (5 s at most)
/// until it has: its socket is gone, and so is its pid file, which it
/// removes last.
pub(super) fn wait_until_stopped(home: &Home) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while (connect_existing(home)?.is_some() || home.pid_file().exists())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsup_proto::app::ExitInfo;
    use rsup_proto::framing::encode;
    use std::path::PathBuf;

    fn info(id: u32) -> ProcessInfo {
        let mut spec = crate::test_support::spec();
        spec.env
            .insert("QUOTE\"D".into(), "line\nbreak \u{e9}".into());
        ProcessInfo {
            id,
            name: format!("app-{id}"),
            instance: id,
            status: Status::Online,
            pid: Some(100 + id),
            restarts: 2,
            unstable_restarts: 0,
            started_at_ms: Some(1_700_000_000_000),
            created_at_ms: 1_600_000_000_000,
            unique_id: String::new(),
            node_version: None,
            cpu_percent: 12.3,
            memory_bytes: 1 << 20,
            last_exit: Some(ExitInfo {
                code: None,
                signal: Some("SIGKILL".into()),
                at_ms: 1,
            }),
            out_log: PathBuf::from("/l/out.log"),
            err_log: PathBuf::from("/l/err.log"),
            combined_log: None,
            pid_file: PathBuf::from("/h/pids/app-0.pid"),
            spec,
            log_error: Some("cannot write /l/out.log: full".into()),
            log_dropped_bytes: 7,
        }
    }

    #[test]
    fn jlist_prints_what_parsing_and_writing_again_would() {
        for processes in [vec![], vec![info(0), info(1)]] {
            let line = encode(&Reply::Done {
                processes: processes.clone(),
            });
            let parsed: Vec<ProcessInfo> =
                match rsup_proto::framing::decode::<Reply>(&line).unwrap() {
                    Reply::Done { processes } => processes,
                    _ => unreachable!(),
                };
            assert_eq!(parsed, processes);
            assert_eq!(
                jlist_json(&line).unwrap(),
                serde_json::to_string(&parsed).unwrap()
            );
        }
    }

    /// A process as PM2's e2e scripts start them: `start echo.js` from the
    /// fixtures folder, with the CLI's environment.
    fn echo(id: u32, name: &str) -> ProcessInfo {
        let mut p = info(id);
        p.name = name.into();
        p.instance = 0;
        p.spec.name = name.into();
        p.spec.script = "/t/fixtures/echo.js".into();
        p.spec.cwd = "/t/fixtures".into();
        p.spec.env = [("HOME", "/root"), ("PATH", "/usr/bin:/bin")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p.out_log = format!("/root/.pm2/logs/{name}-out.log").into();
        p.err_log = format!("/root/.pm2/logs/{name}-error.log").into();
        p.pid_file = format!("/root/.pm2/pids/{name}-{id}.pid").into();
        p.restarts = 1;
        p.log_error = None;
        p.log_dropped_bytes = 0;
        p
    }

    /// What PM2's e2e scripts count with `grep -o` in `prettylist`.
    fn count(text: &str, pattern: &str) -> usize {
        text.matches(pattern).count()
    }

    #[test]
    fn prettylist_has_what_pm2_scripts_count_once_per_process() {
        let mut stopped = echo(1, "ECHONEST");
        stopped.status = Status::Stopped;
        stopped.pid = None;
        let text = prettylist_text(&[echo(0, "echo"), stopped]);
        assert_eq!(count(&text, "online"), 1);
        assert_eq!(count(&text, "stopped"), 1);
        assert_eq!(count(&text, "restart_time: 1"), 2);
        assert_eq!(count(&text, "restart_time"), 2);
        assert_eq!(count(&text, "fork_mode"), 2);
        assert_eq!(count(&text, "NODE_APP_INSTANCE: 0"), 2);
        // The top level, pm2_env and @pm2/io's module name, as under PM2.
        assert_eq!(count(&text, "name: 'echo'"), 3);
        // ... and its log paths, pid path and module slot in env.
        assert_eq!(count(&text, "ECHONEST"), 7);
        assert_eq!(count(&text, "echo.js"), 2, "pm_exec_path only");
        assert_eq!(count(&text, "node_args: []"), 2);
        assert!(text.contains("\n      pm_out_log_path: '/root/.pm2/logs/echo-out.log',\n"));
        assert!(text.contains("\n    pm_id: 1,\n"));
    }

    #[test]
    fn prettylist_counts_what_it_does_not_show_as_node_does() {
        let procs: Vec<ProcessInfo> = (0..103).map(|i| echo(i, "many")).collect();
        let text = prettylist_text(&procs);
        assert_eq!(
            text,
            inspect::inspect(&rsup_proto::pm2::monitor_data(&procs))
        );
        assert!(
            text.ends_with("  },\n  ... 3 more items\n]"),
            "{}",
            &text[text.len() - 200..]
        );
        assert_eq!(count(&text, "online"), 100);
    }

    #[test]
    fn prettylist_shows_the_increment_var_as_pm2_does() {
        let procs: Vec<ProcessInfo> = (0..2)
            .map(|i| {
                let mut p = echo(i, "sample-increment");
                p.instance = i;
                p.spec.exec_mode = rsup_proto::app::ExecMode::Cluster;
                p.spec.increment_var = Some("PORT".into());
                p.spec.env.insert("PORT".into(), "3000".into());
                p
            })
            .collect();
        let text = prettylist_text(&procs);
        assert_eq!(count(&text, "PORT: 3000"), 2);
        assert_eq!(count(&text, "PORT: 3001"), 2);
        assert_eq!(count(&text, "exec_mode: 'cluster_mode'"), 2);
        assert_eq!(count(&text, "NODE_APP_INSTANCE: 1"), 1);
    }

    #[test]
    fn a_list_in_pm2_shape_is_printed_as_sent_and_an_older_daemons_is_shaped_here() {
        let pm2 = br#"{"reply":"pm2_list","processes":[{"pid":1}]}"#;
        assert_eq!(list_json(pm2).unwrap(), ListJson::Pm2(r#"[{"pid":1}]"#));
        let sent = b"{\"reply\":\"pm2_list\",\"processes\":[{\"pid\":1},{}]}\n";
        assert_eq!(list_json(sent).unwrap(), ListJson::Pm2(r#"[{"pid":1},{}]"#));
        // Written otherwise, it is read as JSON.
        let spaced = br#"{ "reply": "pm2_list", "processes": [ {"pid": 2} ] }"#;
        assert_eq!(
            list_json(spaced).unwrap(),
            ListJson::Pm2(r#"[ {"pid": 2} ]"#)
        );
        // Not what `jlist --native` and the table read.
        assert!(jlist_json(pm2).is_err());
        let older = encode(&Reply::Done {
            processes: vec![info(0)],
        });
        let ListJson::Native(json) = list_json(&older).unwrap() else {
            panic!("a done reply is a native list");
        };
        let procs: Vec<ProcessInfo> = serde_json::from_str(json).unwrap();
        assert_eq!(procs, vec![info(0)]);
    }

    #[test]
    fn stdout_is_made_room_for_a_list_as_far_as_the_system_allows() {
        use nix::fcntl::{fcntl, FcntlArg::F_GETPIPE_SZ};
        use nix::sys::socket::{getsockopt, sockopt::SndBuf};
        let limit = |name: &str| -> usize {
            let text = std::fs::read_to_string(format!("/proc/sys/{name}")).unwrap();
            text.trim().parse().unwrap()
        };
        let len = 900 * 1024;
        let (_read, write) = nix::unistd::pipe().unwrap();
        make_room(&write, len);
        let pipe = fcntl(&write, F_GETPIPE_SZ).unwrap() as usize;
        assert!(pipe >= len.min(limit("fs/pipe-max-size")), "{pipe}");
        let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        make_room(&socket, len);
        let room = getsockopt(&socket, SndBuf).unwrap();
        assert!(room >= len.min(limit("net/core/wmem_max")), "{room}");
        // Small output leaves it as it is.
        let (_read, write) = nix::unistd::pipe().unwrap();
        make_room(&write, 1000);
        assert_eq!(fcntl(&write, F_GETPIPE_SZ).unwrap(), 64 * 1024);
    }

    #[test]
    fn jlist_reports_the_daemons_error() {
        let line = encode(&Reply::Error {
            message: "boom".into(),
        });
        assert_eq!(jlist_json(&line).unwrap_err().to_string(), "boom");
        let pong = encode(&Reply::Pong {
            pid: 1,
            version: "x".into(),
        });
        assert!(jlist_json(&pong).is_err());
        assert!(jlist_json(b"not json\n").is_err());
    }
}
