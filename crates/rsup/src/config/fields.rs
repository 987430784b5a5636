//! Reading one app object of an ecosystem file into typed, still
//! unresolved values. Types follow PM2's schema: numbers may be written as
//! numeric strings (PM2 parses them), `null` means "not given", and every
//! error names the key as the user wrote it.

use std::collections::BTreeMap;

use rsup_proto::app::{ExecMode, LogType};
use serde_json::{Map, Value};

use super::date_format;
use super::keys::{self, Known};

/// Variable name → value; `None` removes a variable inherited from the CLI.
pub type EnvMap = BTreeMap<String, Option<String>>;

/// A value together with the key it was written under, for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<T> {
    pub key: String,
    pub value: T,
}

#[derive(Debug, Default)]
pub struct RawApp {
    pub name: Option<String>,
    pub script: Option<String>,
    pub args: Option<Vec<String>>,
    pub cwd: Option<String>,
    pub interpreter: Option<String>,
    pub node_args: Option<Vec<String>>,
    /// As written: 0 means "max", negative means "CPUs minus n".
    pub instances: Option<i64>,
    pub exec_mode: Option<ExecMode>,
    pub env: EnvMap,
    /// `env_<name>` blocks, by `<name>`.
    pub env_variants: BTreeMap<String, EnvMap>,
    pub wait_ready: Option<bool>,
    pub listen_timeout_ms: Option<u64>,
    pub kill_timeout_ms: Option<u64>,
    pub kill_signal: Option<Keyed<String>>,
    pub shutdown_with_message: Option<bool>,
    pub treekill: Option<bool>,
    pub autorestart: Option<bool>,
    pub max_restarts: Option<u32>,
    pub min_uptime_ms: Option<u64>,
    pub restart_delay_ms: Option<u64>,
    pub exp_backoff_restart_delay_ms: Option<u64>,
    pub instance_var: Option<String>,
    pub out_file: Option<String>,
    pub error_file: Option<String>,
    pub merge_logs: Option<bool>,
    /// Already converted to a chrono format.
    pub log_date_format: Option<String>,
    pub time: Option<bool>,
    pub port: Option<u64>,
    /// Checked: a pattern croner reads.
    pub cron_restart: Option<String>,
    /// `true` (the app's folder) or the paths to watch; `false`: none.
    pub watch: Option<Watch>,
    pub ignore_watch: Option<Vec<String>>,
    pub watch_delay_ms: Option<u64>,
    pub namespace: Option<String>,
    pub pid_file: Option<String>,
    /// In bytes; 0 (no limit) is `None`.
    pub max_memory_restart_bytes: Option<u64>,
    pub stop_exit_codes: Option<Vec<i32>>,
    pub increment_var: Option<String>,
    pub log_file: Option<LogFileSetting>,
    pub log_type: Option<LogType>,
    pub log_rotate: Option<rsup_proto::app::LogRotate>,
    /// With `--env <name>`, the app is named `<name>-<env>`.
    pub append_env_to_name: Option<bool>,
    /// The file's `deploy.<name>.env` for `--env <name>`: under `env`.
    pub deploy_env: EnvMap,
}

/// PM2's `watch`: a switch, or the paths to watch.
#[derive(Debug, Clone, PartialEq)]
pub enum Watch {
    Off,
    /// The app's working folder.
    Cwd,
    Paths(Vec<String>),
}

/// PM2's `log_file`: a path, `true` for `<logs>/<name>.log`, or `false`
/// (or `""`) for none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFileSetting {
    Default,
    Path(String),
    Off,
}

#[derive(Debug)]
pub struct Read {
    pub app: RawApp,
    pub warnings: Vec<String>,
}

/// Reads one app object. Unknown and unsupported keys become warnings;
/// a value of the wrong type is an error.
pub fn read(obj: &Map<String, Value>) -> Result<Read, String> {
    let mut warnings = Vec::new();
    let mut used: BTreeMap<&'static str, (&str, &Value)> = BTreeMap::new();
    let mut app = RawApp::default();

    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        match keys::lookup(key) {
            Known::Used(canonical) => {
                if let Some((other, _)) = used.get(canonical) {
                    // PM2 lets the canonical spelling win over its aliases.
                    let (keep, drop) = if key == canonical {
                        (key.as_str(), *other)
                    } else {
                        (*other, key.as_str())
                    };
                    warnings.push(format!(
                        "\"{drop}\" and \"{keep}\" both given; using \"{keep}\""
                    ));
                    if keep == *other {
                        continue;
                    }
                }
                used.insert(canonical, (key, value));
            }
            Known::Ignored(canonical) => {
                if is_switched_on(canonical, value) {
                    warnings.push(format!("\"{key}\" is not supported by rsup and is ignored"));
                }
            }
            Known::Silent => {}
            Known::EnvVariant => {
                app.env_variants
                    .insert(key["env_".len()..].to_string(), env_map(key, value)?);
            }
            Known::Unknown => warnings.push(format!("unknown key \"{key}\" is ignored")),
        }
    }

    for (canonical, (key, v)) in used {
        match canonical {
            "script" => app.script = Some(string(key, v)?),
            "name" => app.name = Some(string(key, v)?),
            "args" => app.args = Some(words(key, v)?),
            "cwd" => app.cwd = Some(string(key, v)?),
            "exec_interpreter" => app.interpreter = Some(string(key, v)?),
            "node_args" => app.node_args = Some(words(key, v)?),
            "instances" => app.instances = Some(instances(key, v)?),
            "exec_mode" => app.exec_mode = Some(exec_mode(key, v)?),
            "env" => app.env = env_map(key, v)?,
            "wait_ready" => app.wait_ready = Some(boolean(key, v)?),
            "listen_timeout" => app.listen_timeout_ms = Some(whole(key, v)?),
            "kill_timeout" => app.kill_timeout_ms = Some(whole(key, v)?),
            "kill_signal" => {
                app.kill_signal = Some(Keyed {
                    key: key.to_string(),
                    value: string(key, v)?,
                })
            }
            "shutdown_with_message" => app.shutdown_with_message = Some(boolean(key, v)?),
            "treekill" => app.treekill = Some(boolean(key, v)?),
            "autorestart" => app.autorestart = Some(boolean(key, v)?),
            "max_restarts" => {
                let n = whole(key, v)?;
                app.max_restarts =
                    Some(u32::try_from(n).map_err(|_| format!("\"{key}\" is too large: {n}"))?);
            }
            "min_uptime" => app.min_uptime_ms = Some(duration(key, v)?),
            "restart_delay" => app.restart_delay_ms = Some(whole(key, v)?),
            "exp_backoff_restart_delay" => app.exp_backoff_restart_delay_ms = Some(whole(key, v)?),
            "instance_var" => app.instance_var = Some(string(key, v)?),
            "out_file" => app.out_file = Some(string(key, v)?),
            "error_file" => app.error_file = Some(string(key, v)?),
            "merge_logs" => app.merge_logs = Some(boolean(key, v)?),
            "log_date_format" => {
                let pattern = string(key, v)?;
                let converted = date_format::to_chrono(&pattern);
                warnings.extend(converted.warning(&format!("\"{key}\""), &pattern));
                app.log_date_format = Some(converted.format);
            }
            "time" => app.time = Some(boolean(key, v)?),
            "port" => app.port = Some(whole(key, v)?),
            "watch" => {
                app.watch = Some(match v {
                    Value::Bool(false) | Value::Null => Watch::Off,
                    Value::Bool(true) => Watch::Cwd,
                    _ => Watch::Paths(words(key, v)?),
                })
            }
            "ignore_watch" => app.ignore_watch = Some(words(key, v)?),
            "watch_delay" => app.watch_delay_ms = Some(whole(key, v)?),
            "cron_restart" => {
                let pattern = string(key, v)?;
                crate::cron_pattern::check(&pattern).map_err(|e| format!("\"{key}\": {e}"))?;
                app.cron_restart = Some(pattern);
            }
            "namespace" => app.namespace = Some(string(key, v)?),
            "pid_file" => app.pid_file = Some(string(key, v)?),
            "max_memory_restart" => app.max_memory_restart_bytes = memory(key, v)?,
            "stop_exit_codes" => app.stop_exit_codes = Some(exit_codes(key, v)?),
            "increment_var" => app.increment_var = Some(string(key, v)?),
            "log_file" => app.log_file = Some(log_file(key, v)?),
            "log_type" => {
                let text = string(key, v)?;
                app.log_type = Some(log_type(&format!("\"{key}\""), &text, &mut warnings));
            }
            "log_rotate" => app.log_rotate = Some(crate::rotation_settings::from_config(key, v)?),
            "append_env_to_name" => app.append_env_to_name = Some(boolean(key, v)?),
            other => unreachable!("key {other} is in keys::USED but not read"),
        }
    }
    Ok(Read { app, warnings })
}

/// `watch: false`, `autostart: true` and the like ask for what rsup does
/// anyway, so they deserve no warning.
fn is_switched_on(canonical: &str, value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Bool(true) => canonical != "autostart",
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The offending value as JSON, cut short so the message stays one line.
pub fn got(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn string(key: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!("\"{key}\" must be a string, got {}", got(v))),
    }
}

/// PM2 writes JSON for `log_type` "json", and the lines as they are for
/// anything else ("raw" says so): another word is likely a mistake.
pub fn log_type(what: &str, text: &str, warnings: &mut Vec<String>) -> LogType {
    match text {
        "json" => LogType::Json,
        "raw" => LogType::Text,
        _ => {
            warnings.push(format!(
                "{what} is {text:?}, which is not \"json\": lines are written as they are"
            ));
            LogType::Text
        }
    }
}

fn log_file(key: &str, v: &Value) -> Result<LogFileSetting, String> {
    match v {
        Value::Bool(true) => Ok(LogFileSetting::Default),
        Value::Bool(false) => Ok(LogFileSetting::Off),
        Value::String(s) if s.is_empty() => Ok(LogFileSetting::Off),
        Value::String(s) => Ok(LogFileSetting::Path(s.clone())),
        _ => Err(format!(
            "\"{key}\" must be a path, true or false, got {}",
            got(v)
        )),
    }
}

fn boolean(key: &str, v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("\"{key}\" must be true or false, got {}", got(v)))
}

/// An integer from a JSON number or a numeric string, as PM2 accepts both.
fn integer(v: &Value) -> Option<i64> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15).then_some(f as i64)
}

fn whole(key: &str, v: &Value) -> Result<u64, String> {
    integer(v)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("\"{key}\" must be a whole number ≥ 0, got {}", got(v)))
}

fn instances(key: &str, v: &Value) -> Result<i64, String> {
    if v.as_str().is_some_and(|s| s.trim() == "max") {
        return Ok(0);
    }
    integer(v).ok_or_else(|| format!("\"{key}\" must be a number or \"max\", got {}", got(v)))
}

fn exec_mode(key: &str, v: &Value) -> Result<ExecMode, String> {
    match v.as_str() {
        Some("fork" | "fork_mode") => Ok(ExecMode::Fork),
        Some("cluster" | "cluster_mode") => Ok(ExecMode::Cluster),
        _ => Err(format!(
            "\"{key}\" must be \"fork\" or \"cluster\" (or \"fork_mode\"/\"cluster_mode\"), got {}",
            got(v)
        )),
    }
}

/// PM2's `min_uptime`: milliseconds, or a string with an h/m/s unit; PM2
/// rejects plain numbers under 100 ms.
fn duration(key: &str, v: &Value) -> Result<u64, String> {
    let bad = || {
        format!(
            "\"{key}\" must be milliseconds or a string like \"10s\", \"5m\", \"1h\", got {}",
            got(v)
        )
    };
    if let Some(s) = v.as_str() {
        let s = s.trim();
        let (digits, unit) = match s.char_indices().last() {
            Some((i, c @ ('h' | 'm' | 's'))) => (&s[..i], Some(c)),
            _ => (s, None),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let scale = match unit {
            Some('h') => 3_600_000,
            Some('m') => 60_000,
            Some('s') => 1000,
            _ => 1,
        };
        return n.checked_mul(scale).ok_or_else(bad);
    }
    let n = integer(v)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(bad)?;
    if n < 100 {
        return Err(format!("\"{key}\" must be at least 100 ms, got {n}"));
    }
    Ok(n)
}

/// PM2's `max_memory_restart`: bytes, or a string of digits with a K, M
/// or G unit (powers of 1024). Zero means no limit.
fn memory(key: &str, v: &Value) -> Result<Option<u64>, String> {
    let bytes = match v {
        Value::String(s) => parse_memory_size(s),
        _ => integer(v)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| "must be bytes or a size like \"200M\", \"1G\", \"300K\"".to_string()),
    }
    .map_err(|e| format!("\"{key}\" {e}, got {}", got(v)))?;
    Ok((bytes > 0).then_some(bytes))
}

/// `200M`, `1G`, `300K` (`MB`, `GB`, `KB` and lower case too) or plain
/// bytes, as PM2 reads a memory size.
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let bad = || "must be bytes or a size like \"200M\", \"1G\", \"300K\"".to_string();
    let t = text.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix('B')
        .filter(|r| r.ends_with(['K', 'M', 'G']))
        .unwrap_or(&t);
    let (digits, scale) = match t.char_indices().last() {
        Some((i, 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'M')) => (&t[..i], 1 << 20),
        Some((i, 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(bad)
}

/// PM2's `stop_exit_codes`: one code, or a list (an array, or a string of
/// codes separated by spaces).
fn exit_codes(key: &str, v: &Value) -> Result<Vec<i32>, String> {
    let bad = |item: &Value| {
        format!(
            "\"{key}\" must be exit codes (whole numbers from 0 to 255), got {}",
            got(item)
        )
    };
    let one = |item: &Value| {
        integer(item)
            .filter(|n| (0..=255).contains(n))
            .map(|n| n as i32)
            .ok_or_else(|| bad(item))
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::String(s) if s.split_whitespace().count() > 1 => s
            .split_whitespace()
            .map(|w| one(&Value::String(w.to_string())))
            .collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// A list of arguments: an array, or one string split as a shell would.
fn words(key: &str, v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => split_words(s).map_err(|e| format!("\"{key}\": {e}")),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(format!(
                    "\"{key}\" must hold strings or numbers, got {}",
                    got(item)
                )),
            })
            .collect(),
        _ => Err(format!(
            "\"{key}\" must be a string or an array of strings, got {}",
            got(v)
        )),
    }
}

/// Splits `args: "--port 80 --name 'a b'"` into words as a POSIX shell
/// would, without expansion: quotes group, backslash escapes.
pub fn split_words(line: &str) -> Result<Vec<String>, &'static str> {
    // The crate's only error is a quote left open.
    shell_words::split(line).map_err(|_| "unterminated quote")
}

/// An `env`/`env_<name>` object. Scalars become strings; objects and arrays
/// become their JSON text as PM2 does; `null` unsets the variable.
pub fn env_map(key: &str, v: &Value) -> Result<EnvMap, String> {
    let Value::Object(vars) = v else {
        return Err(format!(
            "\"{key}\" must be an object of variables, got {}",
            got(v)
        ));
    };
    Ok(vars
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            (name.clone(), text)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_json(v: Value) -> Result<Read, String> {
        read(v.as_object().unwrap())
    }

    #[test]
    fn words_split_as_a_shell_would() {
        assert_eq!(
            split_words("  --port  80 -v ").unwrap(),
            ["--port", "80", "-v"]
        );
        assert!(split_words("").unwrap().is_empty());
        assert_eq!(
            split_words(r#"--name 'a b' --msg "say \"hi\"" x\ y --e=''"#).unwrap(),
            ["--name", "a b", "--msg", "say \"hi\"", "x y", "--e="]
        );
        assert_eq!(split_words(r#"key="v w""#).unwrap(), ["key=v w"]);
        assert_eq!(split_words("''").unwrap(), [""]);
        for open in ["'abc", "\"abc", "a \"b\\\""] {
            assert_eq!(split_words(open), Err("unterminated quote"), "{open}");
        }
    }

    #[test]
    fn unterminated_quote_names_the_key() {
        let e = read_json(json!({"script": "a.js", "args": "--name 'a b"})).unwrap_err();
        assert_eq!(e, "\"args\": unterminated quote");
    }

    #[test]
    fn aliases_fill_canonical_fields() {
        let r = read_json(json!({
            "exec": "a.js", "interpreter": "/usr/bin/node", "interpreter_args": "--inspect --max-old-space-size=100",
            "out": "o.log", "err": "e.log", "combine_logs": true, "killTimeout": "3000",
            "exec_mode": "cluster_mode", "instances": "max"
        }))
        .unwrap();
        let a = r.app;
        assert_eq!(a.script.as_deref(), Some("a.js"));
        assert_eq!(a.interpreter.as_deref(), Some("/usr/bin/node"));
        assert_eq!(
            a.node_args.unwrap(),
            ["--inspect", "--max-old-space-size=100"]
        );
        assert_eq!(a.out_file.as_deref(), Some("o.log"));
        assert_eq!(a.error_file.as_deref(), Some("e.log"));
        assert_eq!(a.merge_logs, Some(true));
        assert_eq!(a.kill_timeout_ms, Some(3000));
        assert_eq!(a.exec_mode, Some(ExecMode::Cluster));
        assert_eq!(a.instances, Some(0));
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn canonical_key_wins_over_alias() {
        let r = read_json(json!({"script": "a.js", "out": "x.log", "out_file": "y.log"})).unwrap();
        assert_eq!(r.app.out_file.as_deref(), Some("y.log"));
        assert_eq!(r.warnings.len(), 1);
        let r = read_json(json!({"script": "a.js", "out_file": "y.log", "out": "x.log"})).unwrap();
        assert_eq!(r.app.out_file.as_deref(), Some("y.log"));
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = read_json(json!({"script": "a.js", "instances": true})).unwrap_err();
        assert_eq!(e, "\"instances\" must be a number or \"max\", got true");
        let e = read_json(json!({"script": "a.js", "autorestart": "no"})).unwrap_err();
        assert_eq!(e, "\"autorestart\" must be true or false, got \"no\"");
        let e = read_json(json!({"script": "a.js", "killTimeout": -1})).unwrap_err();
        assert!(e.starts_with("\"killTimeout\""), "{e}");
        let e = read_json(json!({"script": "a.js", "exec_mode": "threads"})).unwrap_err();
        assert!(e.starts_with("\"exec_mode\""), "{e}");
        let e = read_json(json!({"script": "a.js", "env": "X=1"})).unwrap_err();
        assert!(e.starts_with("\"env\""), "{e}");
        let e = read_json(json!({"script": 5})).unwrap_err();
        assert!(e.starts_with("\"script\" must be a string"), "{e}");
        let e = read_json(json!({"script": "a.js", "instances": "lots"})).unwrap_err();
        assert!(e.contains("\"lots\""), "{e}");
        let r = read_json(json!({"script": "a.js", "log_date_format": "YYYY Q"})).unwrap();
        assert_eq!(r.app.log_date_format.as_deref(), Some("%Y Q"));
        assert!(
            r.warnings[0].starts_with("\"log_date_format\" \"YYYY Q\": \"Q\" are no date tokens"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn min_uptime_units() {
        let m = |v: Value| {
            read_json(json!({"script": "a", "min_uptime": v})).map(|r| r.app.min_uptime_ms)
        };
        assert_eq!(m(json!(2000)).unwrap(), Some(2000));
        assert_eq!(m(json!("10s")).unwrap(), Some(10_000));
        assert_eq!(m(json!("2m")).unwrap(), Some(120_000));
        assert_eq!(m(json!("1h")).unwrap(), Some(3_600_000));
        assert_eq!(m(json!("1500")).unwrap(), Some(1500));
        assert!(m(json!(50)).unwrap_err().contains("at least 100"));
        assert!(m(json!("10 minutes")).is_err());
        assert!(m(json!(true)).is_err());
    }

    #[test]
    fn env_values() {
        let r = read_json(json!({
            "script": "a",
            "env": {"A": "x", "PORT": 3000, "DEBUG": true, "CONF": {"k": 1}, "GONE": null},
            "env_production": {"A": "prod"}
        }))
        .unwrap();
        let env = r.app.env;
        assert_eq!(env["A"].as_deref(), Some("x"));
        assert_eq!(env["PORT"].as_deref(), Some("3000"));
        assert_eq!(env["DEBUG"].as_deref(), Some("true"));
        assert_eq!(env["CONF"].as_deref(), Some("{\"k\":1}"));
        assert_eq!(env["GONE"], None);
        assert_eq!(
            r.app.env_variants["production"]["A"].as_deref(),
            Some("prod")
        );
        let e = read_json(json!({"script": "a", "env_staging": []})).unwrap_err();
        assert!(e.starts_with("\"env_staging\""), "{e}");
    }

    #[test]
    fn unknown_and_unsupported_keys_warn() {
        let r = read_json(json!({
            "script": "a", "scirpt": "b", "uid": "www", "name_prefix": "x",
            "vizion": false, "pmx": true, "autostart": true, "gid": null
        }))
        .unwrap();
        assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("unknown key \"scirpt\"")));
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("\"uid\" is not supported")));
        assert!(r.warnings.iter().any(|w| w.contains("\"name_prefix\"")));
    }

    #[test]
    fn memory_sizes_in_pm2_units() {
        let m = |v: Value| {
            read_json(json!({"script": "a", "max_memory_restart": v}))
                .map(|r| r.app.max_memory_restart_bytes)
        };
        assert_eq!(m(json!("200M")).unwrap(), Some(200 << 20));
        assert_eq!(m(json!("1G")).unwrap(), Some(1 << 30));
        assert_eq!(m(json!("300K")).unwrap(), Some(300 << 10));
        assert_eq!(m(json!("300kb")).unwrap(), Some(300 << 10));
        assert_eq!(m(json!("19M")).unwrap(), Some(19 << 20));
        assert_eq!(m(json!(1048576)).unwrap(), Some(1 << 20));
        assert_eq!(m(json!("4096")).unwrap(), Some(4096));
        assert_eq!(m(json!(0)).unwrap(), None);
        for bad in [
            json!("lots"),
            json!("1.5G"),
            json!("M"),
            json!("-1M"),
            json!(true),
            json!(-5),
        ] {
            let e = m(bad.clone()).unwrap_err();
            assert!(
                e.starts_with("\"max_memory_restart\" must be"),
                "{bad}: {e}"
            );
        }
        assert_eq!(parse_memory_size("20M"), Ok(20 << 20));
        assert!(parse_memory_size("20T").is_err());
        assert!(parse_memory_size("99999999999999G").is_err());
    }

    #[test]
    fn stop_exit_codes_one_or_many() {
        let c = |v: Value| {
            read_json(json!({"script": "a", "stop_exit_codes": v})).map(|r| r.app.stop_exit_codes)
        };
        assert_eq!(c(json!([12, 42])).unwrap(), Some(vec![12, 42]));
        assert_eq!(c(json!(42)).unwrap(), Some(vec![42]));
        assert_eq!(c(json!("42")).unwrap(), Some(vec![42]));
        assert_eq!(c(json!("3 42")).unwrap(), Some(vec![3, 42]));
        assert_eq!(c(json!(["0", 2])).unwrap(), Some(vec![0, 2]));
        for bad in [
            json!([256]),
            json!("x"),
            json!([-1]),
            json!({}),
            json!([1.5]),
        ] {
            let e = c(bad.clone()).unwrap_err();
            assert!(
                e.starts_with("\"stop_exit_codes\" must be exit codes"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn args_array_and_string() {
        let r = read_json(json!({"script": "a", "args": ["--port", 80]})).unwrap();
        assert_eq!(r.app.args.unwrap(), ["--port", "80"]);
        let r = read_json(json!({"script": "a", "args": "--name 'a b'"})).unwrap();
        assert_eq!(r.app.args.unwrap(), ["--name", "a b"]);
        assert!(read_json(json!({"script": "a", "args": [{}]})).is_err());
    }
}
