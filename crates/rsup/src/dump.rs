//! `save` (`dump`) and `resurrect`: the apps the daemon runs, written to
//! `<home>/dump.pm2` (PM2's file name, so scripts that look for it find
//! it) and started again from it, after a reboot or a `kill`.
//!
//! The file holds each app's resolved spec, environment included, so it is
//! private to the user like the rest of the home folder.

use crate::home::Home;
use anyhow::{bail, Context, Result};
use rsup_proto::app::{AppSpec, ProcessInfo};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Changes when the file's meaning changes; older versions are refused
/// with a clear message rather than misread.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Dump {
    rsup_dump: u32,
    apps: Vec<AppSpec>,
}

pub fn path(home: &Home) -> PathBuf {
    home.dir.join("dump.pm2")
}

fn backup_path(home: &Home) -> PathBuf {
    home.dir.join("dump.pm2.bak")
}

/// One spec per app, in the order of the list, each with as many instances
/// as the list has of it.
pub fn apps_of(processes: &[ProcessInfo]) -> Vec<AppSpec> {
    let mut apps: Vec<AppSpec> = Vec::new();
    for p in processes {
        match apps.iter_mut().find(|a| a.name == p.name) {
            Some(app) => app.instances += 1,
            None => apps.push(AppSpec {
                instances: 1,
                ..p.spec.clone()
            }),
        }
    }
    apps
}

/// Writes the dump, keeping the previous one as `dump.pm2.bak`. An empty
/// list replaces a dump only with `force`, as in PM2: a `save` run by
/// mistake after `kill` must not wipe what a reboot would bring back.
/// Returns the path written, or `None` when nothing was.
pub fn save(home: &Home, apps: &[AppSpec], force: bool) -> Result<Option<PathBuf>> {
    if apps.is_empty() && !force {
        return Ok(None);
    }
    let path = path(home);
    if path.exists() {
        std::fs::copy(&path, backup_path(home))
            .with_context(|| format!("backing up {}", path.display()))?;
    }
    let dump = Dump {
        rsup_dump: VERSION,
        apps: apps.to_vec(),
    };
    let data = serde_json::to_vec_pretty(&dump)?;
    crate::private_file::write_atomic(&path, &data)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

/// The apps of the dump, or of its backup when the dump is unreadable;
/// `None` when neither exists.
pub fn load(home: &Home) -> Result<Option<(PathBuf, Vec<AppSpec>)>> {
    let mut first_error = None;
    for path in [path(home), backup_path(home)] {
        match read(&path) {
            Ok(Some(apps)) => return Ok(Some((path, apps))),
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

fn read(path: &Path) -> Result<Option<Vec<AppSpec>>> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if data.first() == Some(&b'[') {
        bail!(
            "{}: this is a dump written by PM2; rsup cannot read it (start the apps from their ecosystem file, then `rsup save`)",
            path.display()
        );
    }
    let dump: Dump = serde_json::from_slice(&data)
        .with_context(|| format!("{}: not a dump rsup can read", path.display()))?;
    if dump.rsup_dump != VERSION {
        bail!(
            "{}: dump format {} is not the {VERSION} this rsup reads",
            path.display(),
            dump.rsup_dump
        );
    }
    Ok(Some(dump.apps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::spec;

    fn proc_of(name: &str, id: u32) -> ProcessInfo {
        ProcessInfo {
            id,
            name: name.into(),
            instance: id,
            status: rsup_proto::app::Status::Online,
            pid: Some(100 + id),
            restarts: 0,
            unstable_restarts: 0,
            started_at_ms: None,
            created_at_ms: 0,
            unique_id: String::new(),
            node_version: None,
            cpu_percent: 0.0,
            memory_bytes: 0,
            last_exit: None,
            out_log: "/o".into(),
            err_log: "/e".into(),
            combined_log: None,
            pid_file: "/p".into(),
            spec: AppSpec {
                name: name.into(),
                instances: 7,
                ..spec()
            },
            log_error: None,
            log_dropped_bytes: 0,
        }
    }

    #[test]
    fn one_app_per_name_with_its_instance_count() {
        let procs = [proc_of("api", 0), proc_of("worker", 1), proc_of("api", 2)];
        let apps = apps_of(&procs);
        let counts: Vec<(&str, u32)> = apps
            .iter()
            .map(|a| (a.name.as_str(), a.instances))
            .collect();
        assert_eq!(counts, [("api", 2), ("worker", 1)]);
    }

    #[test]
    fn saved_apps_come_back_and_the_previous_dump_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            dir: dir.path().into(),
        };
        assert!(load(&home).unwrap().is_none());
        let first = apps_of(&[proc_of("api", 0)]);
        save(&home, &first, false).unwrap().unwrap();
        let second = apps_of(&[proc_of("worker", 0)]);
        save(&home, &second, false).unwrap().unwrap();
        assert_eq!(load(&home).unwrap().unwrap().1, second);
        assert_eq!(read(&backup_path(&home)).unwrap().unwrap(), first);
        // An empty list is no reason to forget the apps, unless forced.
        assert!(save(&home, &[], false).unwrap().is_none());
        assert_eq!(load(&home).unwrap().unwrap().1, second);
        save(&home, &[], true).unwrap().unwrap();
        assert!(load(&home).unwrap().unwrap().1.is_empty());
    }

    #[test]
    fn a_broken_dump_falls_back_to_the_backup_and_a_pm2_dump_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home {
            dir: dir.path().into(),
        };
        let apps = apps_of(&[proc_of("api", 0)]);
        save(&home, &apps, false).unwrap();
        save(&home, &apps, false).unwrap();
        std::fs::write(path(&home), "{ half").unwrap();
        assert_eq!(load(&home).unwrap().unwrap().1, apps);
        std::fs::write(path(&home), "[{\"name\":\"x\"}]").unwrap();
        std::fs::remove_file(backup_path(&home)).unwrap();
        let e = load(&home).unwrap_err().to_string();
        assert!(e.contains("written by PM2"), "{e}");
    }
}
