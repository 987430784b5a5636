//! From what the user wrote (file values and flags) to a complete
//! [`AppSpec`]: flags over file values, PM2's defaults, absolute paths,
//! instance count, execution mode, interpreter and environment.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rsup_proto::app::{defaults, merge_env, AppSpec, ExecMode};

use super::fields::{self, EnvMap, LogFileSetting, RawApp, Watch};
use super::interpreter::{self, which};
use super::{date_format, name, signal, Context, Overrides};

/// Variables of the CLI's environment that must not reach an app: they
/// describe the CLI's own Node IPC channel or cluster worker identity, and
/// an app inheriting them would talk to a channel that is not its own.
const NOT_INHERITED: &[&str] = &[
    "NODE_CHANNEL_FD",
    "NODE_CHANNEL_SERIALIZATION_MODE",
    "NODE_UNIQUE_ID",
];

pub struct Resolved {
    pub spec: AppSpec,
    pub warnings: Vec<String>,
}

/// Where the app comes from, which changes a few of PM2's rules.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An ecosystem file: relative paths start at the file's directory.
    File,
    /// `rsup start <script>`: relative paths start at the CLI's cwd, and
    /// `-i` asks for cluster mode outright as PM2's CLI does.
    Script,
}

/// PM2's default name: the script's file name without its last extension
/// (`api.server.js` → `api.server`; a leading dot is kept).
pub fn default_name(script: &str) -> String {
    let base = script
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(script);
    match base.rfind('.') {
        Some(dot) if dot > 0 => base[..dot].to_string(),
        _ => base.to_string(),
    }
}

/// Resolves one app. `raw.name` must already be set (the caller needs the
/// names first, for `--only`, `--name` and duplicate checks). `base` is
/// the directory relative paths in the file start from.
pub fn resolve(
    mut raw: RawApp,
    ov: &Overrides,
    ctx: &Context,
    base: &Path,
    origin: Origin,
) -> Result<Resolved, String> {
    let mut warnings = Vec::new();
    let name = raw.name.clone().expect("name is set before resolving");
    let home = ctx.env.get("HOME").map(String::as_str);

    // Flags win over the file.
    let instances = match &ov.instances {
        Some(text) => Some(parse_instances_flag(text)?),
        None => raw.instances,
    };
    let explicit_mode = ov.exec_mode.or(raw.exec_mode);
    if ov.interpreter.is_some() {
        raw.interpreter = ov.interpreter.clone();
    }
    let mut node_args_unset = false;
    if let Some(text) = &ov.node_args {
        let words = fields::split_words(text).map_err(|e| format!("--node-args: {e}"))?;
        if words == ["null"] {
            // PM2 removes an option given as "null".
            raw.node_args = Some(Vec::new());
            node_args_unset = true;
        } else if !words.is_empty() {
            // `--node-args ""` leaves the file's value, as an absent flag does.
            raw.node_args = Some(words);
        }
    }
    if !ov.args.is_empty() {
        raw.args = Some(ov.args.clone());
    }

    let cwd = match (&ov.cwd, &raw.cwd) {
        (Some(flag), _) => absolute(&ctx.cwd, flag),
        (None, Some(text)) => absolute(base, &expand_home(text, home)),
        (None, None) => absolute(base, Path::new(".")),
    };
    if !cwd.is_dir() {
        return Err(format!("cwd is not a directory: {}", cwd.display()));
    }

    let script_text = raw.script.clone().ok_or("\"script\" is required")?;
    let mut args = raw.args.take().unwrap_or_default();
    let mut node_args = raw.node_args.take().unwrap_or_default();

    // `script` and how to run it.
    let (script, interpreter, node) = match locate_script(&script_text, &cwd, ctx, home)? {
        Located::CommandLine(line) => {
            // PM2 runs a script containing spaces with `bash -c`.
            let shell = which("bash", &ctx.env, &cwd)
                .or_else(|| which("sh", &ctx.env, &cwd))
                .ok_or("\"script\" is a command line, but neither bash nor sh is in PATH")?;
            if !args.is_empty() {
                warnings.push("\"args\" are ignored when \"script\" is a command line".into());
            }
            args = vec!["-c".into(), line];
            (shell, None, false)
        }
        Located::File(path) => {
            let (interpreter, node) =
                choose_interpreter(raw.interpreter.as_deref(), &path, &cwd, ctx)?;
            (path, interpreter, node)
        }
    };
    if interpreter.is_none() && !node_args.is_empty() {
        warnings.push("\"node_args\" are ignored: the script runs without an interpreter".into());
        node_args.clear();
    }

    // Instances and mode. PM2 (Common.sink.determineExecMode) picks cluster
    // when `instances` is given for a Node script and no mode is; its CLI
    // picks cluster for any `-i`. Cluster mode needs Node, so anything else
    // runs in fork mode whatever was asked.
    let asked_cluster = explicit_mode == Some(ExecMode::Cluster)
        || (origin == Origin::Script && ov.instances.is_some() && explicit_mode.is_none());
    let mut exec_mode = match explicit_mode {
        Some(mode) => mode,
        None if instances.is_some() && (node || origin == Origin::Script) => ExecMode::Cluster,
        None => ExecMode::Fork,
    };
    if exec_mode == ExecMode::Cluster && !node {
        if asked_cluster {
            warnings.push(
                "cluster mode needs a Node script; running the instances in fork mode".into(),
            );
        }
        exec_mode = ExecMode::Fork;
    }
    let instance_count = count_instances(instances, ctx.cpus);
    // PM2 (Common.verifyConfs) merges logs by default unless cluster mode
    // was asked for or a non-zero `instances` was given; each instance then
    // gets its own log file.
    let merge_logs = ov
        .merge_logs
        .or(raw.merge_logs)
        .unwrap_or(!asked_cluster && !matches!(instances, Some(n) if n != 0));

    let env = build_env(&raw, ov, ctx, interpreter.as_deref(), &mut warnings);

    let kill_signal = match (&ov.kill_signal, &raw.kill_signal) {
        (Some(flag), _) => signal::resolve(Some(("--kill-signal", flag)), &ctx.env)?,
        (None, Some(k)) => signal::resolve(Some((&format!("\"{}\"", k.key), &k.value)), &ctx.env)?,
        (None, None) => signal::resolve(None, &ctx.env)?,
    };

    let log_date_format = match &ov.log_date_format {
        Some(pattern) => {
            let converted = date_format::to_chrono(pattern);
            warnings.extend(converted.warning("--log-date-format", pattern));
            Some(converted.format)
        }
        None => raw.log_date_format.clone(),
    };
    let log_type = match &ov.log_type {
        Some(text) => fields::log_type("--log-type", text, &mut warnings),
        None => raw.log_type.unwrap_or_default(),
    };
    let time = ov.time.or(raw.time).unwrap_or(false) || log_date_format.is_some();

    // Log paths given on the command line are relative to where the user
    // typed them; those in a file to the app's cwd, as PM2 resolves them.
    let log_path = |flag: &Option<PathBuf>, file: &Option<String>| match (flag, file) {
        (Some(p), _) => Some(absolute(&ctx.cwd, p)),
        (None, Some(text)) if text == "NULL" => Some(PathBuf::from("/dev/null")),
        (None, Some(text)) => Some(absolute(&cwd, &expand_home(text, home))),
        (None, None) => None,
    };
    let out_file = log_path(&ov.out_file, &raw.out_file);
    let error_file = log_path(&ov.error_file, &raw.error_file);
    let key = |flag: &Option<PathBuf>, flag_name: &'static str, file_key: &'static str| {
        if flag.is_some() {
            flag_name
        } else {
            file_key
        }
    };
    check_log_file(
        key(&ov.out_file, "--output", "\"out_file\""),
        out_file.as_deref(),
    )?;
    check_log_file(
        key(&ov.error_file, "--error", "\"error_file\""),
        error_file.as_deref(),
    )?;
    // PM2's `-l` without a path, or `log_file: true`: `<logs>/<name>.log`.
    let default_log = || Some(ctx.logs_dir.join(format!("{name}.log")));
    let log_file = match (&ov.log_file, &raw.log_file) {
        (Some(Some(p)), _) => Some(absolute(&ctx.cwd, p)),
        (Some(None), _) | (None, Some(LogFileSetting::Default)) => default_log(),
        (None, Some(LogFileSetting::Path(text))) if text == "NULL" => {
            Some(PathBuf::from("/dev/null"))
        }
        (None, Some(LogFileSetting::Path(text))) => Some(absolute(&cwd, &expand_home(text, home))),
        (None, Some(LogFileSetting::Off) | None) => None,
    };
    check_log_file(
        if ov.log_file.is_some() {
            "--log"
        } else {
            "\"log_file\""
        },
        log_file.as_deref(),
    )?;

    let watch = watch_paths(ov, &raw, ctx, &cwd);
    let namespace = match (&ov.namespace, raw.namespace.take()) {
        (Some(flag), _) => name::check_namespace(flag)
            .map(|()| flag.clone())
            .map_err(|e| format!("--namespace: {e}"))?,
        (None, Some(text)) => name::check_namespace(&text)
            .map(|()| text)
            .map_err(|e| format!("\"namespace\": {e}"))?,
        (None, None) => defaults::NAMESPACE.to_string(),
    };
    // Relative to where the user typed it, or to the app's cwd in a file,
    // as the log paths are.
    let pid_file = match (&ov.pid_file, &raw.pid_file) {
        (Some(p), _) => Some(absolute(&ctx.cwd, p)),
        (None, Some(text)) => Some(absolute(&cwd, &expand_home(text, home))),
        (None, None) => None,
    };
    let max_memory_restart_bytes = match &ov.max_memory_restart {
        Some(text) => {
            let bytes = fields::parse_memory_size(text)
                .map_err(|e| format!("--max-memory-restart {e}, got {text:?}"))?;
            (bytes > 0).then_some(bytes)
        }
        None => raw.max_memory_restart_bytes,
    };
    let stop_exit_codes = if ov.stop_exit_codes.is_empty() {
        raw.stop_exit_codes.take().unwrap_or_default()
    } else {
        ov.stop_exit_codes.clone()
    };
    // PM2_PROCESS_INSTANCE_VAR names it for every app, as PM2's daemon
    // reads it: over the app's own `instance_var`.
    let instance_var = match (ctx.env.get("PM2_PROCESS_INSTANCE_VAR"), &ov.instance_var) {
        (Some(var), _) if !var.is_empty() => variable_name("PM2_PROCESS_INSTANCE_VAR", var)?,
        (_, Some(flag)) => variable_name("--instance-var", flag)?,
        _ => match raw.instance_var.take() {
            Some(text) => variable_name("\"instance_var\"", &text)?,
            None => defaults::INSTANCE_VAR.to_string(),
        },
    };
    let increment_var = match raw.increment_var.take() {
        Some(text) => Some(increment_variable(
            &text,
            &merge_env(&env.inherited, &env.unset, &env.own),
        )?),
        None => None,
    };
    // PM2 stops every app with the `shutdown` message when its daemon has
    // PM2_KILL_USE_MESSAGE set, whatever the app says.
    let shutdown_with_message = ov
        .shutdown_with_message
        .or(raw.shutdown_with_message)
        .unwrap_or(false)
        || kill_use_message(&ctx.env);

    let spec = AppSpec {
        watch,
        name,
        script: script.to_string_lossy().into_owned(),
        args,
        cwd,
        interpreter,
        node_args,
        node_args_unset,
        node,
        instances: instance_count,
        exec_mode,
        env: env.own,
        inherited_env: env.inherited,
        env_unset: env.unset,
        wait_ready: ov.wait_ready.or(raw.wait_ready).unwrap_or(false),
        listen_timeout_ms: ov
            .listen_timeout_ms
            .or(raw.listen_timeout_ms)
            .unwrap_or(defaults::LISTEN_TIMEOUT_MS),
        kill_timeout_ms: ov
            .kill_timeout_ms
            .or(raw.kill_timeout_ms)
            .unwrap_or(defaults::KILL_TIMEOUT_MS),
        kill_signal,
        shutdown_with_message,
        treekill: raw.treekill.unwrap_or(true),
        autorestart: ov.autorestart.or(raw.autorestart).unwrap_or(true),
        max_restarts: ov
            .max_restarts
            .or(raw.max_restarts)
            .unwrap_or(defaults::MAX_RESTARTS),
        min_uptime_ms: ov
            .min_uptime_ms
            .or(raw.min_uptime_ms)
            .unwrap_or(defaults::MIN_UPTIME_MS),
        restart_delay_ms: ov.restart_delay_ms.or(raw.restart_delay_ms).unwrap_or(0),
        exp_backoff_restart_delay_ms: ov
            .exp_backoff_restart_delay_ms
            .or(raw.exp_backoff_restart_delay_ms)
            .unwrap_or(0),
        instance_var,
        out_file,
        error_file,
        merge_logs,
        log_date_format,
        time,
        namespace,
        pid_file,
        log_file,
        max_memory_restart_bytes,
        log_type,
        stop_exit_codes,
        increment_var,
        ignore_watch: match (&ov.ignore_watch, &raw.ignore_watch) {
            (flag, _) if !flag.is_empty() => flag.clone(),
            (_, Some(file)) => file.clone(),
            _ => vec![],
        },
        watch_delay_ms: ov
            .watch_delay_ms
            .or(raw.watch_delay_ms)
            .unwrap_or(defaults::WATCH_DELAY_MS),
        cron_restart: match &ov.cron_restart {
            Some(pattern) => {
                crate::cron_pattern::check(pattern).map_err(|e| format!("--cron: {e}"))?;
                Some(pattern.clone())
            }
            None => raw.cron_restart.clone(),
        },
        log_rotate: raw.log_rotate.clone(),
    };
    Ok(Resolved { spec, warnings })
}

/// What to watch: `--watch` paths relative to where it was typed, the
/// file's relative to the app's folder; the app's folder for a bare
/// `--watch` or `watch: true`.
fn watch_paths(ov: &Overrides, raw: &RawApp, ctx: &Context, cwd: &Path) -> Vec<PathBuf> {
    match (&ov.watch, &raw.watch) {
        (Some(flag), _) if flag.is_empty() => vec![cwd.to_path_buf()],
        (Some(flag), _) => flag.iter().map(|p| absolute(&ctx.cwd, p)).collect(),
        (None, Some(Watch::Cwd)) => vec![cwd.to_path_buf()],
        (None, Some(Watch::Paths(paths))) => {
            paths.iter().map(|p| absolute(cwd, Path::new(p))).collect()
        }
        (None, Some(Watch::Off) | None) => vec![],
    }
}

/// A variable name for `instance_var`/`--instance-var`: something an
/// environment can hold.
fn variable_name(origin: &str, text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(['=', '\0']) {
        return Err(format!(
            "{origin} must be a variable name (not empty, without \"=\"), got {text:?}"
        ));
    }
    Ok(text.to_string())
}

/// `increment_var`: a variable name whose value in the app's environment,
/// if it has one, is the whole number the count starts from.
fn increment_variable(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let name = variable_name("\"increment_var\"", text)?;
    if let Some(value) = env.get(&name) {
        if value.trim().parse::<i64>().is_err() {
            return Err(format!(
                "\"increment_var\" counts {name} up from its value in env, which must be a whole number, got {value:?}"
            ));
        }
    }
    Ok(name)
}

/// PM2_KILL_USE_MESSAGE set to anything but "", "false" or "0".
fn kill_use_message(env: &BTreeMap<String, String>) -> bool {
    env.get("PM2_KILL_USE_MESSAGE")
        .is_some_and(|v| !matches!(v.trim(), "" | "false" | "0"))
}

/// `-i` as typed: a number, `max`, 0 (= max) or negative (= CPUs minus n).
pub fn parse_instances_flag(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t == "max" {
        return Ok(0);
    }
    t.parse()
        .map_err(|_| format!("--instances must be a number or \"max\", got {text:?}"))
}

/// PM2's God.prepare: 0 → one per CPU, negative → CPUs minus n, at least 1.
pub fn count_instances(instances: Option<i64>, cpus: u32) -> u32 {
    let cpus = i64::from(cpus.max(1));
    let n = match instances {
        None => 1,
        Some(0) => cpus,
        Some(n) if n < 0 => cpus + n,
        Some(n) => n,
    };
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

enum Located {
    File(PathBuf),
    /// A script with spaces that is no file: a command line for the shell.
    CommandLine(String),
}

/// PM2's rule (Common.prepareAppConf): the script relative to the cwd,
/// else a command found in `PATH`. Unlike PM2, a path that exists wins
/// over the "contains a space, so it is a command line" rule.
fn locate_script(
    text: &str,
    cwd: &Path,
    ctx: &Context,
    home: Option<&str>,
) -> Result<Located, String> {
    if text.trim().is_empty() {
        return Err("\"script\" is empty".into());
    }
    let path = absolute(cwd, &expand_home(text, home));
    if path.is_dir() {
        return Err(format!("script is a directory: {}", path.display()));
    }
    if path.exists() {
        return Ok(Located::File(path));
    }
    if text.trim().contains(char::is_whitespace) {
        return Ok(Located::CommandLine(text.trim().to_string()));
    }
    if !text.contains('/') {
        if let Some(found) = which(text, &ctx.env, cwd) {
            return Ok(Located::File(found));
        }
    }
    Err(format!("script not found: {}", path.display()))
}

/// The interpreter as an absolute path (`None`: run the script itself), and
/// whether it is Node.
fn choose_interpreter(
    given: Option<&str>,
    script: &Path,
    cwd: &Path,
    ctx: &Context,
) -> Result<(Option<String>, bool), String> {
    let find = |program: &str| {
        which(program, &ctx.env, cwd)
            .map(|p| p.to_string_lossy().into_owned())
            .ok_or_else(|| format!("interpreter {program:?} not found in PATH"))
    };
    let direct = || {
        let executable =
            std::fs::metadata(script).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
        if executable {
            Ok((None, false))
        } else {
            Err(format!(
                "{} is not executable; make it so (chmod +x) or set \"interpreter\"",
                script.display()
            ))
        }
    };
    match given.map(str::trim) {
        Some("none") => direct(),
        Some("") => Err("\"interpreter\" is empty".into()),
        Some(program) => Ok((Some(find(program)?), interpreter::is_node(program))),
        None => match interpreter::by_extension(script) {
            interpreter::Default::Program(program) => {
                Ok((Some(find(program)?), interpreter::is_node(program)))
            }
            interpreter::Default::Python => ["python3", "python"]
                .iter()
                .find_map(|p| which(p, &ctx.env, cwd))
                .map(|p| (Some(p.to_string_lossy().into_owned()), false))
                .ok_or_else(|| "interpreter \"python3\" (or \"python\") not found in PATH".into()),
            interpreter::Default::Direct => direct(),
        },
    }
}

/// What an app inherits of the CLI's environment `env`: all of it but the
/// variables of the CLI's own Node channel.
pub fn inherited_env(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter()
        .filter(|(k, _)| !NOT_INHERITED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// An app's environment, in the parts [`AppSpec`] keeps apart.
struct Environment {
    own: BTreeMap<String, String>,
    inherited: BTreeMap<String, String>,
    unset: Vec<String>,
}

/// The app's own variables, in PM2's order (Common.mergeEnvironmentVariables
/// and prepareAppConf): `deploy.<name>.env`, then `env`, then `port` as
/// `PORT`, then `env_<name>` for `--env <name>`; and the CLI's environment,
/// which every instance inherits under them.
fn build_env(
    raw: &RawApp,
    ov: &Overrides,
    ctx: &Context,
    interpreter: Option<&str>,
    warnings: &mut Vec<String>,
) -> Environment {
    let inherited = inherited_env(&ctx.env);
    let mut own = BTreeMap::new();
    let mut unset = Vec::new();
    let mut overlay = |vars: &EnvMap, own: &mut BTreeMap<String, String>| {
        for (k, v) in vars {
            match v {
                Some(v) => {
                    own.insert(k.clone(), v.clone());
                }
                // `null` removes the variable, inherited or set before.
                None => {
                    own.remove(k);
                    if !unset.contains(k) {
                        unset.push(k.clone());
                    }
                }
            }
        }
    };
    if ov.env_name.is_some() {
        overlay(&raw.deploy_env, &mut own);
    }
    overlay(&raw.env, &mut own);
    if let Some(port) = raw.port {
        own.insert("PORT".into(), port.to_string());
    }
    if let Some(env_name) = &ov.env_name {
        match raw.env_variants.get(env_name) {
            Some(vars) => overlay(vars, &mut own),
            // PM2 warns and goes on with `env` alone.
            None => warnings.push(format!(
                "\"env_{env_name}\" is not defined; using \"env\" only"
            )),
        }
    }
    // PM2 sets this for Python so that print() output reaches the log
    // promptly; the user's own value is kept.
    if interpreter.is_some_and(|i| i.contains("python"))
        && !own.contains_key("PYTHONUNBUFFERED")
        && !inherited.contains_key("PYTHONUNBUFFERED")
    {
        own.insert("PYTHONUNBUFFERED".into(), "1".into());
    }
    unset.retain(|k| !own.contains_key(k));
    Environment {
        own,
        inherited,
        unset,
    }
}

/// `~` and `~/x` relative to the CLI user's home, as PM2 (resolveHome).
fn expand_home(text: &str, home: Option<&str>) -> PathBuf {
    match (text.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(format!("{home}{rest}"))
        }
        _ => PathBuf::from(text),
    }
}

/// `p` made absolute against `base`, with `.` and `..` removed without
/// touching the file system (symlinks stay as written, as with PM2's
/// `path.resolve`).
pub fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = base.join(p);
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Refuses, before anything starts, a log file the daemon would refuse
/// to open (daemon/log_writer.rs): a symbolic link, or a file of another
/// user than this one or root. Either could have been planted in a shared
/// folder to receive the app's output; said here, the refusal is an error
/// of `rsup start` rather than a line in the daemon's log.
fn check_log_file(key: &str, path: Option<&Path>) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = path else { return Ok(()) };
    if path == Path::new("/dev/stdout") || path == Path::new("/dev/stderr") {
        return Ok(());
    }
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        // Missing: the daemon creates it.
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{key}: {} is a symbolic link; rsup does not write logs through links",
            path.display()
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "{key}: {} belongs to uid {}; rsup writes logs only into files of its own user or root",
            path.display(),
            meta.uid()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(default_name("app.js"), "app");
        assert_eq!(default_name("./src/api.server.js"), "api.server");
        assert_eq!(default_name("/usr/bin/redis-server"), "redis-server");
        assert_eq!(default_name(".hidden"), ".hidden");
        assert_eq!(default_name("npm"), "npm");
    }

    #[test]
    fn instance_counts() {
        assert_eq!(count_instances(None, 8), 1);
        assert_eq!(count_instances(Some(4), 8), 4);
        assert_eq!(count_instances(Some(0), 8), 8);
        assert_eq!(count_instances(Some(-1), 8), 7);
        assert_eq!(count_instances(Some(-8), 8), 1);
        assert_eq!(count_instances(Some(-20), 2), 1);
        assert_eq!(count_instances(Some(0), 0), 1);
        assert_eq!(parse_instances_flag("max").unwrap(), 0);
        assert_eq!(parse_instances_flag("-1").unwrap(), -1);
        assert!(parse_instances_flag("many").is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(
            absolute(Path::new("/a/b"), Path::new("../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(
            absolute(Path::new("/a"), Path::new("/x/y")),
            PathBuf::from("/x/y")
        );
        assert_eq!(
            expand_home("~/logs", Some("/home/u")),
            PathBuf::from("/home/u/logs")
        );
        assert_eq!(
            expand_home("~other", Some("/home/u")),
            PathBuf::from("~other")
        );
    }
}
