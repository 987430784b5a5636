//! Reading apps from PM2 ecosystem files and `rsup start` flags into
//! fully resolved [`rsup_proto::app::AppSpec`]s.
//!
//! The rules are PM2's (lib/API/schema.json, lib/Common.js) unless a
//! comment says otherwise; the daemon receives complete specs and never
//! applies a default itself.

pub(crate) mod date_format;
mod error;
mod evaluate;
mod fields;
pub(crate) mod interpreter;
mod keys;
pub(crate) mod name;
#[cfg(test)]
mod proptests;
mod resolve;
mod signal;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rsup_proto::app::{AppSpec, ExecMode};
use serde_json::{Map, Value};

pub use error::ConfigError;
use resolve::Origin;
pub use signal::normalise as signal_name;

/// What the CLI knows about where it runs.
#[derive(Debug, Clone)]
pub struct Context {
    pub cwd: PathBuf,
    /// The CLI's own environment: apps inherit it, as under PM2, and `PATH`
    /// in it is where `node` and interpreters are looked up.
    pub env: BTreeMap<String, String>,
    pub cpus: u32,
    /// Where logs go by default (`RSUP_HOME/logs`).
    pub logs_dir: PathBuf,
}

/// Options from `rsup start` flags; `None` (or empty) = not given.
#[derive(Default, Debug, Clone)]
pub struct Overrides {
    pub name: Option<String>,
    /// As typed: "4", "max", "0", "-1".
    pub instances: Option<String>,
    pub wait_ready: Option<bool>,
    pub listen_timeout_ms: Option<u64>,
    pub kill_timeout_ms: Option<u64>,
    pub shutdown_with_message: Option<bool>,
    /// `--env production` selects `env_production`.
    pub env_name: Option<String>,
    pub cwd: Option<PathBuf>,
    pub interpreter: Option<String>,
    /// As typed, one string split as a shell would: `--node-args "--title 'a b'"`.
    pub node_args: Option<String>,
    pub autorestart: Option<bool>,
    pub max_restarts: Option<u32>,
    pub min_uptime_ms: Option<u64>,
    pub restart_delay_ms: Option<u64>,
    pub exp_backoff_restart_delay_ms: Option<u64>,
    pub time: Option<bool>,
    pub merge_logs: Option<bool>,
    pub log_date_format: Option<String>,
    pub out_file: Option<PathBuf>,
    pub error_file: Option<PathBuf>,
    /// `-l/--log`: `Some(None)` when given without a path, for PM2's
    /// `<logs>/<name>.log`.
    pub log_file: Option<Option<PathBuf>>,
    /// `--log-type`, as typed.
    pub log_type: Option<String>,
    /// `-x`: fork mode.
    pub exec_mode: Option<ExecMode>,
    pub kill_signal: Option<String>,
    pub namespace: Option<String>,
    /// `-p/--pid`: where each instance's pid goes, as `<stem>-<id>.<ext>`.
    pub pid_file: Option<PathBuf>,
    /// As typed: `200M`, `1G`, bytes.
    pub max_memory_restart: Option<String>,
    /// Empty = not given.
    pub stop_exit_codes: Vec<i32>,
    pub instance_var: Option<String>,
    /// After `--`.
    pub args: Vec<String>,
    /// PM2's `--only a,b`.
    pub only: Option<String>,
    pub cron_restart: Option<String>,
    /// `--watch`: `Some(empty)` watches the app's folder.
    pub watch: Option<Vec<PathBuf>>,
    pub ignore_watch: Vec<String>,
    pub watch_delay_ms: Option<u64>,
}

#[derive(Debug)]
pub struct Loaded {
    pub apps: Vec<AppSpec>,
    /// One line each, ready to print.
    pub warnings: Vec<String>,
}

/// PM2's test (Common.isConfigFile): the argument contains `.json`,
/// `.yml`, `.yaml`, `.config.js`, `.config.cjs` or `.config.mjs` anywhere,
/// so `ecosystem.config.js` and `pm2.prod.json` are files while `app.js`
/// is a script.
pub fn is_config_file(arg: &str) -> bool {
    [
        ".json",
        ".yml",
        ".yaml",
        ".config.js",
        ".config.cjs",
        ".config.mjs",
    ]
    .iter()
    .any(|ext| arg.contains(ext))
}

/// Reads every app of an ecosystem file, applies the flags in `ov` and
/// resolves each app completely.
pub fn load_config_file(path: &Path, ov: &Overrides, ctx: &Context) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let abs = resolve::absolute(&ctx.cwd, path);
    if !abs.exists() {
        return Err(ConfigError::FileNotFound { file, path: abs });
    }
    if abs.is_dir() {
        return Err(ConfigError::Unreadable {
            file,
            reason: "is a directory".into(),
        });
    }
    let value =
        evaluate::evaluate(&abs, &ctx.env, &ctx.cwd).map_err(|reason| ConfigError::Evaluate {
            file: file.clone(),
            reason,
        })?;
    // Apps in a file start from the file's directory. PM2 uses the shell's
    // cwd instead, which breaks `pm2 start /srv/app/ecosystem.config.js`
    // run from elsewhere; both agree when run from the file's directory.
    let base = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    load_config_value(&value, file, &base, ov, ctx)
}

/// Reads the apps of a config given as JSON text (PM2's options object
/// from the Node API), labelled `label` in messages. Relative paths start
/// at the CLI's cwd, as in PM2.
pub fn load_config_text(
    label: &str,
    text: &str,
    ov: &Overrides,
    ctx: &Context,
) -> Result<Loaded, ConfigError> {
    let value = serde_json::from_str(text).map_err(|e| ConfigError::Evaluate {
        file: label.to_string(),
        reason: format!("invalid JSON: {e}"),
    })?;
    load_config_value(&value, label.to_string(), &ctx.cwd, ov, ctx)
}

/// The apps of an evaluated config, `file` naming it in messages, with
/// relative paths from `base`.
fn load_config_value(
    value: &Value,
    file: String,
    base: &Path,
    ov: &Overrides,
    ctx: &Context,
) -> Result<Loaded, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        file: file.clone(),
        reason,
    };
    let objects = app_objects(value).map_err(invalid)?;

    let mut warnings = Vec::new();
    let mut apps = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        let label = app_label(obj, i);
        let app_error = |reason: String| ConfigError::App {
            file: file.clone(),
            app: label.clone(),
            reason,
        };
        let read = fields::read(obj).map_err(app_error)?;
        let mut raw = read.app;
        let Some(script) = raw.script.as_deref() else {
            return Err(app_error("\"script\" is required".into()));
        };
        let name = raw
            .name
            .clone()
            .unwrap_or_else(|| resolve::default_name(script));
        name::check(&name).map_err(|why| ConfigError::App {
            file: file.clone(),
            app: name_label(&name),
            reason: format!("invalid name: {why}"),
        })?;
        raw.name = Some(name);
        let prefix = format!(
            "{file}: {}: ",
            name_label(raw.name.as_deref().unwrap_or(""))
        );
        warnings.extend(read.warnings.into_iter().map(|w| format!("{prefix}{w}")));
        apps.push(raw);
    }

    let mut seen = BTreeSet::new();
    for app in &apps {
        let name = app.name.as_deref().unwrap_or("");
        if !seen.insert(name) {
            return Err(invalid(format!(
                "two apps are named {name:?}; names must be unique"
            )));
        }
    }

    if let Some(only) = &ov.only {
        let wanted: Vec<&str> = only
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        for w in &wanted {
            if !seen.contains(w) {
                let known: Vec<&str> = seen.iter().copied().collect();
                return Err(invalid(format!(
                    "--only: no app named {w:?} (apps: {})",
                    known.join(", ")
                )));
            }
        }
        apps.retain(|a| wanted.contains(&a.name.as_deref().unwrap_or("")));
    }

    // PM2 gives every app of the file the `--name`, which can only make
    // sense when one app is being started.
    if let Some(name) = &ov.name {
        if apps.len() != 1 {
            return Err(invalid(format!(
                "--name applies to one app, but {} are selected; choose one with --only",
                apps.len()
            )));
        }
        name::check(name)
            .map_err(|why| invalid(format!("--name {}: invalid name: {why}", name::shown(name))))?;
        apps[0].name = Some(name.clone());
    }

    let mut specs = Vec::new();
    for raw in apps {
        let label = name_label(raw.name.as_deref().unwrap_or(""));
        let resolved = resolve::resolve(raw, ov, ctx, base, Origin::File).map_err(|reason| {
            ConfigError::App {
                file: file.clone(),
                app: label.clone(),
                reason,
            }
        })?;
        warnings.extend(
            resolved
                .warnings
                .into_iter()
                .map(|w| format!("{file}: {label}: {w}")),
        );
        specs.push(resolved.spec);
    }
    Ok(Loaded {
        apps: specs,
        warnings,
    })
}

/// The app of `rsup start <script> [flags] [-- args]`.
pub fn app_from_script(script: &str, ov: &Overrides, ctx: &Context) -> Result<Loaded, ConfigError> {
    let name = ov
        .name
        .clone()
        .unwrap_or_else(|| resolve::default_name(script));
    name::check(&name).map_err(|why| ConfigError::Script {
        script: script.to_string(),
        reason: format!("invalid app name {}: {why}", name::shown(&name)),
    })?;
    let raw = fields::RawApp {
        name: Some(name),
        script: Some(script.to_string()),
        ..Default::default()
    };
    let resolved = resolve::resolve(raw, ov, ctx, &ctx.cwd, Origin::Script).map_err(|reason| {
        ConfigError::Script {
            script: script.to_string(),
            reason,
        }
    })?;
    let mut warnings = resolved.warnings;
    if let Some(env_name) = &ov.env_name {
        warnings.push(format!(
            "--env {env_name} applies to ecosystem files; it has no effect on a script"
        ));
    }
    if ov.only.is_some() {
        warnings.push("--only applies to ecosystem files; it has no effect on a script".into());
    }
    let warnings = warnings
        .into_iter()
        .map(|w| format!("{script}: {w}"))
        .collect();
    Ok(Loaded {
        apps: vec![resolved.spec],
        warnings,
    })
}

/// The apps of an evaluated file, as PM2 (API._processJsonConfig) finds
/// them: `apps`, else `pm2`, else the value itself; one object or an array.
fn app_objects(value: &Value) -> Result<Vec<&Map<String, Value>>, String> {
    let apps = match value {
        Value::Object(top) => top.get("apps").or_else(|| top.get("pm2")).unwrap_or(value),
        other => other,
    };
    let list: Vec<&Value> = match apps {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![apps],
        other => {
            return Err(format!(
                "expected an object with \"apps\", an app object or an array of apps, got {}",
                fields::got(other)
            ))
        }
    };
    if list.is_empty() {
        return Err("no apps defined".into());
    }
    list.into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_object()
                .ok_or_else(|| format!("app #{} must be an object, got {}", i + 1, fields::got(v)))
        })
        .collect()
}

/// A label for messages before the app is read: its name, else the name its
/// script gives it, else its position.
fn app_label(obj: &Map<String, Value>, index: usize) -> String {
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            ["script", "exec", "cmd", "command"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(Value::as_str))
                .map(resolve::default_name)
        });
    match name {
        Some(name) => name_label(&name),
        None => format!("app #{}", index + 1),
    }
}

fn name_label(name: &str) -> String {
    format!("app {}", name::shown(name))
}
