//! The daemon's whole state on disk (`RSUP_HOME/state.json`): every app's
//! options and every instance's id, index, pid and the pid's start time.
//! It is rewritten, atomically, shortly after anything changes, so that a
//! daemon that starts after one was killed knows what was running and which
//! of those processes still are.

use super::apps::Apps;
use super::sockets::SavedSocket;
use rsup_proto::app::{AppSpec, Status};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Changes that come together are written once.
const SETTLE: Duration = Duration::from_millis(100);

/// The format; a file of another version is not read.
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonState {
    pub version: u32,
    /// The boot the pids belong to: after a reboot they mean nothing.
    pub boot_id: String,
    pub daemon_pid: u32,
    /// The next `pm_id` to give out.
    pub next_id: u32,
    pub apps: Vec<AppState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppState {
    /// The options of the app's first instance.
    pub spec: AppSpec,
    pub instances: Vec<InstanceRecord>,
    /// The listening sockets the daemon holds for it.
    #[serde(default)]
    pub sockets: Vec<SavedSocket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: u32,
    pub instance: u32,
    pub status: Status,
    pub pid: Option<u32>,
    /// When the pid's process started, in clock ticks after boot (field 22
    /// of `/proc/<pid>/stat`): tells the process from a later one that got
    /// the same pid.
    pub pid_started: Option<u64>,
    pub restarts: u32,
}

impl InstanceRecord {
    /// Whether the recorded process still runs (same pid, same start).
    pub fn still_running(&self) -> bool {
        match (self.pid, self.pid_started) {
            (Some(pid), Some(started)) => process_start(pid) == Some(started),
            _ => false,
        }
    }
}

pub fn path(home_dir: &Path) -> PathBuf {
    home_dir.join("state.json")
}

/// The daemon's state now.
pub fn snapshot(apps: &Apps) -> DaemonState {
    let apps_state = apps
        .all()
        .iter()
        .filter_map(|app| {
            let instances = app.instances();
            let first = instances.first()?;
            let spec = (*first.state().spec).clone();
            let records = instances
                .iter()
                .map(|h| {
                    let state = h.state();
                    InstanceRecord {
                        id: h.identity.id,
                        instance: h.identity.instance,
                        status: state.status,
                        pid: state.pid,
                        pid_started: state.pid.and_then(process_start),
                        restarts: state.restarts,
                    }
                })
                .collect();
            let sockets = app.context.sockets.lock().unwrap().saved();
            Some(AppState {
                spec,
                instances: records,
                sockets,
            })
        })
        .collect();
    DaemonState {
        version: VERSION,
        boot_id: boot_id(),
        daemon_pid: std::process::id(),
        next_id: apps.env.peek_next_id(),
        apps: apps_state,
    }
}

/// Writes `state` to `path` whole (see [`crate::private_file`]).
pub fn write(path: &Path, state: &DaemonState) -> std::io::Result<()> {
    let data = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    crate::private_file::write_atomic(path, &data)
}

/// Reads a state file; `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<DaemonState>, String> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let state: DaemonState = serde_json::from_slice(&data)
        .map_err(|e| format!("{}: not a state file rsup can read: {e}", path.display()))?;
    if state.version != VERSION {
        return Err(format!(
            "{}: state file version {} is not {VERSION}",
            path.display(),
            state.version
        ));
    }
    Ok(Some(state))
}

/// Keeps the state file up to date until the daemon ends. While the
/// daemon prepares to re-execute itself the file is left as it is: the
/// next image writes it once it has every app back.
pub async fn keep_written(apps: Arc<Apps>, path: PathBuf) {
    loop {
        apps.env.changed.notified().await;
        tokio::time::sleep(SETTLE).await;
        if *apps.env.retiring.borrow() {
            continue;
        }
        let state = snapshot(&apps);
        if let Err(e) = write(&path, &state) {
            tracing::warn!("writing {}: {e}", path.display());
        }
        drop(state);
        super::give_back_freed_memory();
    }
}

/// This boot's id; empty where the kernel does not say.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// When `pid` started, in clock ticks after boot; `None` when it does not
/// run (or is a zombie).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) may hold spaces and parentheses: fields are
    // counted from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // `rest` starts at field 3 (state); field 22 is starttime.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DaemonState {
        let mut spec = crate::test_support::spec();
        spec.env.insert("K".into(), "v".into());
        DaemonState {
            version: VERSION,
            boot_id: boot_id(),
            daemon_pid: 42,
            next_id: 3,
            apps: vec![AppState {
                spec,
                instances: vec![InstanceRecord {
                    id: 2,
                    instance: 0,
                    status: Status::Online,
                    pid: Some(std::process::id()),
                    pid_started: process_start(std::process::id()),
                    restarts: 1,
                }],
                sockets: vec![SavedSocket {
                    address: rsup_proto::worker::ListenAddress::Tcp {
                        host: None,
                        port: 8080,
                    },
                    ephemeral_index: None,
                    inode: 7,
                }],
            }],
        }
    }

    #[test]
    fn the_state_is_written_out_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        assert_eq!(read(&path), Ok(None));
        let state = sample();
        write(&path, &state).unwrap();
        assert_eq!(read(&path), Ok(Some(state)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_damaged_or_foreign_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        let whole = serde_json::to_vec(&sample()).unwrap();
        std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.contains("state.json: not a state file"), "{err}");
        let mut other = sample();
        other.version = 99;
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(read(&path).unwrap_err().contains("version 99"));
    }

    #[test]
    fn a_record_knows_whether_its_process_still_runs() {
        let me = &sample().apps[0].instances[0];
        assert!(me.still_running());
        let mut reused = me.clone();
        reused.pid_started = reused.pid_started.map(|t| t + 1);
        assert!(!reused.still_running());
        let mut gone = me.clone();
        gone.pid = None;
        assert!(!gone.still_running());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// A damaged state file (any bytes, or a good one cut anywhere) is
        /// an error, never a panic.
        #[test]
        fn damaged_state_files_are_errors(bytes in any::<Vec<u8>>(), cut in any::<usize>()) {
            let dir = tempfile::tempdir().unwrap();
            let p = path(dir.path());
            std::fs::write(&p, &bytes).unwrap();
            let _ = read(&p);
            let whole = serde_json::to_vec(&tests_sample()).unwrap();
            let cut = cut % whole.len();
            std::fs::write(&p, &whole[..cut]).unwrap();
            prop_assert!(read(&p).is_err());
        }
    }

    fn tests_sample() -> DaemonState {
        DaemonState {
            version: VERSION,
            boot_id: "b".into(),
            daemon_pid: 1,
            next_id: 0,
            apps: vec![AppState {
                spec: crate::test_support::spec(),
                instances: vec![],
                sockets: vec![],
            }],
        }
    }
}
