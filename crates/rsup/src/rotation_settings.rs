//! Log rotation settings, in pm2-logrotate's words: its keys and values
//! (`max_size 10M`, `retain 30`, `compress true`, `dateFormat`,
//! `rotateInterval`), read from an app's `log_rotate` and from the global
//! settings `rsup set pm2-logrotate:<key> <value>` keeps in
//! `<RSUP_HOME>/module_conf.json` (PM2 keeps them in the same file, shaped
//! the same way). The daemon rotates with the [`Policy`] both give.

use crate::config::date_format;
use crate::cron_pattern;
use crate::home::Home;
use anyhow::{Context, Result};
use rsup_proto::app::{defaults, LogRotate, RotateSettings};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The module name PM2 users type before each key.
pub const MODULE: &str = "pm2-logrotate";

/// How the logs of a file are rotated, every setting decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub max_size: u64,
    /// Rotated files kept; `u32::MAX`: all.
    pub retain: u32,
    pub compress: bool,
    /// chrono's format of the date in rotated names.
    pub date_format: String,
    /// Cron pattern of the rotation by date.
    pub rotate_interval: String,
}

/// The policy for a log: the app's own setting over the global one; no
/// rotation when neither asks for it or the app turns it off.
pub fn policy(app: Option<&LogRotate>, global: Option<&RotateSettings>) -> Option<Policy> {
    let settings = match (app, global) {
        (Some(LogRotate::Off), _) | (None, None) => return None,
        (Some(LogRotate::On(own)), Some(global)) => own.over(global),
        (Some(LogRotate::On(own)), None) => own.clone(),
        (None, Some(global)) => global.clone(),
    };
    let pattern = settings
        .date_format
        .as_deref()
        .unwrap_or(defaults::ROTATE_DATE_FORMAT);
    Some(Policy {
        max_size: settings.max_size.unwrap_or(defaults::ROTATE_MAX_SIZE),
        retain: settings.retain.unwrap_or(defaults::ROTATE_RETAIN),
        compress: settings.compress.unwrap_or(false),
        date_format: date_format::to_chrono(pattern).format,
        rotate_interval: settings
            .rotate_interval
            .unwrap_or_else(|| defaults::ROTATE_INTERVAL.to_string()),
    })
}

/// Sets pm2-logrotate's `key` to `value` (as typed after `pm2 set`);
/// returns a note for keys accepted that change nothing in rsup.
pub fn set(
    settings: &mut RotateSettings,
    key: &str,
    value: &str,
) -> Result<Option<String>, String> {
    let value = value.trim();
    let bad = |what: &str| format!("pm2-logrotate:{key} must be {what}, got {value:?}");
    match key {
        "max_size" => settings.max_size = Some(size(value).ok_or_else(|| bad("a size such as 10M, 500K, 1G or a number of bytes"))?),
        "retain" => {
            settings.retain = Some(match value {
                "all" | "none" => u32::MAX,
                _ => value.parse().map_err(|_| bad("a number of files or \"all\""))?,
            })
        }
        "enableRetain" => {
            if !boolean(value).ok_or_else(|| bad("true or false"))? {
                settings.retain = Some(u32::MAX);
            }
        }
        "compress" => settings.compress = Some(boolean(value).ok_or_else(|| bad("true or false"))?),
        "dateFormat" => {
            let converted = date_format::to_chrono(value);
            if value.is_empty() || value.contains('/') || converted.format.contains('/') {
                return Err(bad("a date pattern without \"/\" (it is part of a file name)"));
            }
            settings.date_format = Some(value.to_string());
        }
        "rotateInterval" => {
            cron_pattern::check(value).map_err(|e| format!("pm2-logrotate:{key}: {e}"))?;
            settings.rotate_interval = Some(value.to_string());
        }
        "workerInterval" => {
            value.parse::<u64>().map_err(|_| bad("a number of seconds"))?;
            return Ok(Some(format!(
                "pm2-logrotate:{key} changes nothing: rsup checks a log's size as it writes it"
            )));
        }
        "rotateModule" => {
            boolean(value).ok_or_else(|| bad("true or false"))?;
            return Ok(Some(format!(
                "pm2-logrotate:{key} changes nothing: rsup runs no modules"
            )));
        }
        "TZ" => {
            return Err("pm2-logrotate:TZ is not supported: rotated files are named in the daemon's local time (set TZ in its environment)".to_string())
        }
        _ => {
            return Err(format!(
                "pm2-logrotate has no setting {key:?} (max_size, retain, compress, dateFormat, rotateInterval, enableRetain, workerInterval, rotateModule)"
            ))
        }
    }
    Ok(None)
}

/// pm2-logrotate's sizes: a number of bytes, or with K, M or G after it.
pub fn size(text: &str) -> Option<u64> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower.char_indices().last()? {
        (i, 'k') => (&lower[..i], 1024),
        (i, 'm') => (&lower[..i], 1024 * 1024),
        (i, 'g') => (&lower[..i], 1024 * 1024 * 1024),
        _ => (lower, 1),
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(unit).filter(|n| *n > 0)
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A JSON value as `pm2 set` would have typed it.
pub fn typed(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An app's `log_rotate`: `true` (the global settings, or pm2-logrotate's
/// defaults), `false` (none, whatever the global settings say), or an
/// object of pm2-logrotate's keys.
pub fn from_config(key: &str, v: &Value) -> Result<LogRotate, String> {
    match v {
        Value::Bool(false) => Ok(LogRotate::Off),
        Value::Bool(true) => Ok(LogRotate::On(RotateSettings::default())),
        Value::Object(map) => {
            let mut settings = RotateSettings::default();
            for (k, v) in map {
                set(&mut settings, k, &typed(v)).map_err(|e| format!("\"{key}\": {e}"))?;
            }
            Ok(LogRotate::On(settings))
        }
        _ => Err(format!(
            "\"{key}\" must be true, false or an object of pm2-logrotate settings such as {{\"max_size\": \"10M\", \"retain\": 30}}"
        )),
    }
}

/// The global settings, as `rsup set` keeps them.
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(home: &Home) -> Store {
        Store {
            path: home.dir.join("module_conf.json"),
        }
    }

    /// The whole file: `{ "pm2-logrotate": { key: value, … } }`.
    fn read_all(&self) -> Result<Map<String, Value>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a JSON object", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// The raw values `rsup set` stored; `None` while rotation is not on.
    pub fn values(&self) -> Result<Option<Map<String, Value>>> {
        Ok(match self.read_all()?.remove(MODULE) {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        })
    }

    /// The global settings; `None` while global rotation is off. Values
    /// that no longer read are skipped with a warning each.
    pub fn settings(&self) -> Result<(Option<RotateSettings>, Vec<String>)> {
        let Some(values) = self.values()? else {
            return Ok((None, Vec::new()));
        };
        let mut settings = RotateSettings::default();
        let mut warnings = Vec::new();
        for (k, v) in &values {
            if let Err(e) = set(&mut settings, k, &typed(v)) {
                warnings.push(format!("{}: {e}", self.path.display()));
            }
        }
        Ok((Some(settings), warnings))
    }

    /// Turns global rotation on (`install`) or off (`uninstall`).
    pub fn enable(&self, on: bool) -> Result<()> {
        let mut all = self.read_all()?;
        if on {
            all.entry(MODULE)
                .or_insert_with(|| Value::Object(Map::new()));
        } else {
            all.remove(MODULE);
        }
        self.write(&all)
    }

    /// Stores one checked setting, turning global rotation on.
    pub fn put(&self, key: &str, value: &str) -> Result<Option<String>> {
        let note = set(&mut RotateSettings::default(), key, value).map_err(anyhow::Error::msg)?;
        let mut all = self.read_all()?;
        let entry = all
            .entry(MODULE)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        entry
            .as_object_mut()
            .expect("just made an object")
            .insert(key.to_string(), Value::String(value.trim().to_string()));
        self.write(&all)?;
        Ok(note)
    }

    /// Forgets one setting (`Some`), or every one (`None`): each falls
    /// back to its default. Rotation stays on or off as it was. Whether
    /// anything was there to forget.
    pub fn remove(&self, key: Option<&str>) -> Result<bool> {
        let mut all = self.read_all()?;
        let Some(Value::Object(values)) = all.get_mut(MODULE) else {
            return Ok(false);
        };
        let removed = match key {
            Some(key) => values.remove(key).is_some(),
            None => !std::mem::take(values).is_empty(),
        };
        if removed {
            self.write(&all)?;
        }
        Ok(removed)
    }

    fn write(&self, all: &Map<String, Value>) -> Result<()> {
        let text = serde_json::to_string_pretty(all)? + "\n";
        crate::private_file::write_atomic(&self.path, text.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_pm2_logrotate_reads_them() {
        assert_eq!(size("10M"), Some(10 * 1024 * 1024));
        assert_eq!(size("1k"), Some(1024));
        assert_eq!(size("2G"), Some(2 << 30));
        assert_eq!(size("512"), Some(512));
        assert_eq!(size("300KB"), Some(300 * 1024));
        assert_eq!(size("0"), None);
        assert_eq!(size("ten"), None);
        assert_eq!(size(""), None);
    }

    #[test]
    fn keys_are_checked_and_named_in_errors() {
        let mut s = RotateSettings::default();
        assert_eq!(set(&mut s, "max_size", "1K"), Ok(None));
        assert_eq!(set(&mut s, "retain", "7"), Ok(None));
        assert_eq!(set(&mut s, "compress", "true"), Ok(None));
        assert_eq!(set(&mut s, "rotateInterval", "*/2 * * * * *"), Ok(None));
        assert_eq!(set(&mut s, "dateFormat", "YYYY-MM-DD"), Ok(None));
        assert_eq!(s.max_size, Some(1024));
        assert_eq!(s.retain, Some(7));
        assert_eq!(s.compress, Some(true));
        assert!(set(&mut s, "workerInterval", "30").unwrap().is_some());
        let e = set(&mut s, "max_size", "big").unwrap_err();
        assert!(e.starts_with("pm2-logrotate:max_size must be"), "{e}");
        assert!(set(&mut s, "rotateInterval", "61 * * * *")
            .unwrap_err()
            .contains("invalid cron pattern"));
        assert!(set(&mut s, "dateFormat", "YYYY/MM").is_err());
        assert!(set(&mut s, "nope", "1").unwrap_err().contains("no setting"));
        assert_eq!(set(&mut s, "enableRetain", "false"), Ok(None));
        assert_eq!(s.retain, Some(u32::MAX));
    }

    #[test]
    fn the_apps_setting_goes_over_the_global_one_over_the_defaults() {
        let global = RotateSettings {
            max_size: Some(100),
            compress: Some(true),
            ..Default::default()
        };
        let own = LogRotate::On(RotateSettings {
            retain: Some(3),
            compress: Some(false),
            ..Default::default()
        });
        let p = policy(Some(&own), Some(&global)).unwrap();
        assert_eq!((p.max_size, p.retain, p.compress), (100, 3, false));
        assert_eq!(p.date_format, "%Y-%m-%d_%H-%M-%S");
        assert_eq!(p.rotate_interval, "0 0 * * *");
        assert_eq!(policy(Some(&LogRotate::Off), Some(&global)), None);
        assert_eq!(policy(None, None), None);
        let p = policy(None, Some(&global)).unwrap();
        assert_eq!((p.max_size, p.retain), (100, 30));
    }

    #[test]
    fn config_values_may_be_numbers_and_booleans() {
        let v: Value = serde_json::json!({"max_size": 2048, "retain": 5, "compress": true});
        let LogRotate::On(s) = from_config("log_rotate", &v).unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.max_size, s.retain, s.compress),
            (Some(2048), Some(5), Some(true))
        );
        let e = from_config("log_rotate", &serde_json::json!({"retain": "x"})).unwrap_err();
        assert!(e.starts_with("\"log_rotate\": pm2-logrotate:retain"), "{e}");
        assert!(from_config("log_rotate", &serde_json::json!(3)).is_err());
    }

    #[test]
    fn the_store_keeps_pm2s_shape() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            dir: dir.path().to_path_buf(),
        };
        let store = Store::new(&home);
        assert_eq!(store.settings().unwrap().0, None);
        store.enable(true).unwrap();
        assert_eq!(store.settings().unwrap().0, Some(RotateSettings::default()));
        store.put("max_size", "1K").unwrap();
        assert!(store.put("retain", "x").is_err());
        let text = std::fs::read_to_string(dir.path().join("module_conf.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["pm2-logrotate"]["max_size"], "1K");
        assert_eq!(store.settings().unwrap().0.unwrap().max_size, Some(1024));
        store.put("retain", "4").unwrap();
        assert!(store.remove(Some("max_size")).unwrap());
        assert!(!store.remove(Some("max_size")).unwrap(), "already gone");
        let kept = store.settings().unwrap().0.unwrap();
        assert_eq!((kept.max_size, kept.retain), (None, Some(4)));
        assert!(store.remove(None).unwrap());
        assert_eq!(store.settings().unwrap().0, Some(RotateSettings::default()));
        store.enable(false).unwrap();
        assert_eq!(store.settings().unwrap().0, None);
        assert!(!store.remove(None).unwrap(), "rotation stays off");
        assert_eq!(store.settings().unwrap().0, None);
    }
}
