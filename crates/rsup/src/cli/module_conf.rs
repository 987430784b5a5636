//! `set`, `get`, `conf`, `unset`, `install` and `uninstall`, for the one
//! PM2 module rsup has built in: pm2-logrotate. PM2 users' scripts keep
//! working: `rsup install pm2-logrotate` turns rotation of every log on
//! (with pm2-logrotate's defaults), `rsup set pm2-logrotate:max_size 10M`
//! sets a value (and turns it on), `rsup unset pm2-logrotate:max_size`
//! puts it back to its default, `rsup conf` shows them all, `rsup
//! uninstall pm2-logrotate` turns rotation off.
//! The settings live in `<RSUP_HOME>/module_conf.json`; a running daemon
//! is told at once.

use super::client::{connect_existing, send};
use crate::home::Home;
use crate::rotation_settings::{Store, MODULE};
use anyhow::{bail, Result};
use rsup_proto::control::{Reply, Request};

pub fn set(home: &Home, key: &str, value: &str) -> Result<i32> {
    let setting = module_key(key)?;
    home.ensure()?;
    if let Some(note) = Store::new(home).put(setting, value)? {
        eprintln!("rsup: warning: {note}");
    }
    println!("[rsup] {key} = {}", value.trim());
    tell_daemon(home)?;
    Ok(0)
}

/// `get` alone prints every setting; `get pm2-logrotate:<key>` one value
/// (an error when it is not set, as PM2's), `get pm2-logrotate` the
/// module's settings as `conf` shows them.
pub fn get(home: &Home, key: Option<&str>) -> Result<i32> {
    let values = Store::new(home).values()?;
    match key {
        None => {
            if let Some(values) = values {
                for (k, v) in values {
                    println!("{MODULE}:{k}: {}", crate::rotation_settings::typed(&v));
                }
            }
        }
        Some(MODULE) => {
            show(values.as_ref());
            println!("Modules configuration. Copy/Paste line to edit values.");
        }
        Some(key) => {
            let setting = module_key(key)?;
            let Some(v) = values.as_ref().and_then(|m| m.get(setting)) else {
                bail!("{key} is not set (rsup conf lists the settings)");
            };
            println!("{}", crate::rotation_settings::typed(v));
        }
    }
    Ok(0)
}

/// `conf` shows every setting as the line that sets it; `conf <key>` is
/// `get <key>`, `conf <key> <value>` is `set` (PM2's API `conf`, and its
/// `config` command).
pub fn conf(home: &Home, key: Option<&str>, value: Option<&str>) -> Result<i32> {
    match (key, value) {
        (Some(key), Some(value)) => set(home, key, value),
        (Some(key), None) => get(home, Some(key)),
        (None, _) => {
            show(Store::new(home).values()?.as_ref());
            Ok(0)
        }
    }
}

/// `unset pm2-logrotate:<key>`: the setting goes back to its default;
/// `unset pm2-logrotate` or `unset all`: every setting does. Rotation
/// stays on (only `uninstall` turns it off). Then every setting is shown,
/// as PM2 does; a key that was not set is no error.
pub fn unset(home: &Home, key: &str) -> Result<i32> {
    let setting = match key {
        "all" | MODULE => None,
        key => Some(module_key(key)?),
    };
    let store = Store::new(home);
    if store.remove(setting)? {
        tell_daemon(home)?;
    }
    show(store.values()?.as_ref());
    Ok(0)
}

/// PM2's display of module settings: the module, then the command that
/// sets each value.
fn show(values: Option<&serde_json::Map<String, serde_json::Value>>) {
    let Some(values) = values else { return };
    println!("Module: {MODULE}");
    for (k, v) in values {
        println!(
            "$ rsup set {MODULE}:{k} {}",
            crate::rotation_settings::typed(v)
        );
    }
}

/// `install`/`uninstall pm2-logrotate`: rotation of every log on or off.
pub fn install(home: &Home, module: &str, on: bool) -> Result<i32> {
    if module != MODULE {
        bail!("{module}: rsup installs no PM2 modules; it has {MODULE} built in");
    }
    home.ensure()?;
    Store::new(home).enable(on)?;
    println!(
        "[rsup] log rotation {}",
        if on {
            "on (pm2-logrotate's settings)"
        } else {
            "off"
        }
    );
    tell_daemon(home)?;
    Ok(0)
}

fn module_key(key: &str) -> Result<&str> {
    match key.split_once(':') {
        Some((MODULE, setting)) if !setting.is_empty() => Ok(setting),
        _ => bail!("{key}: rsup keeps only {MODULE} settings (set {MODULE}:max_size 10M)"),
    }
}

/// A running daemon reads the settings again on `reloadLogs`.
fn tell_daemon(home: &Home) -> Result<()> {
    if let Some(stream) = connect_existing(home)? {
        if let Reply::Error { message } = send(stream, &Request::ReloadLogs, |_| {})? {
            bail!(message)
        }
    }
    Ok(())
}
