//! `flush [target]`: empties the log files of the processes a target names
//! (out, error and combined logs); with no target, those of every process
//! and the daemon's own log, as PM2 empties its `pm2.log`. Files that do not
//! exist stay absent; the writers go on at the start of the emptied files.

use super::{describe, error};
use crate::daemon::app::Progress;
use crate::daemon::lifecycle::Daemon;
use crate::daemon::log_writer::check_owner;
use rsup_proto::control::{Reply, Target};
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub fn flush(daemon: &Daemon, target: Option<&Target>, progress: &Progress) -> Reply {
    let handles = match daemon
        .apps
        .resolve_instances(target.unwrap_or(&Target::All))
    {
        Ok(handles) => handles,
        Err(message) => return error(message),
    };
    let mut files: Vec<PathBuf> = Vec::new();
    if target.is_none() {
        files.push(daemon.apps.env.home.daemon_log());
    }
    for h in &handles {
        let id = &h.identity;
        for path in [&id.out_log, &id.err_log]
            .into_iter()
            .chain(&id.combined_log)
        {
            // /dev/null, /dev/stdout: nothing to empty.
            if !path.starts_with("/dev") && !files.contains(path) {
                files.push(path.clone());
            }
        }
    }
    let mut failures = Vec::new();
    for path in &files {
        match empty(path) {
            Ok(true) => {
                let _ = progress.send(Reply::Progress {
                    message: format!("flushed {}", path.display()),
                });
            }
            Ok(false) => {}
            Err(e) => failures.push(format!("cannot flush {}: {e}", path.display())),
        }
    }
    if !failures.is_empty() {
        return error(failures.join("\n"));
    }
    Reply::Done {
        processes: describe(daemon, &handles),
    }
}

/// Truncates the file at `path` to nothing; `false` when there is none. A
/// link or a file of another user is refused, as the log writer refuses
/// to write them.
fn empty(path: &Path) -> std::io::Result<bool> {
    let file = match OpenOptions::new()
        .write(true)
        // A FIFO put there must not hang the daemon.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::new(
                ErrorKind::PermissionDenied,
                "it is a symbolic link, and rsup does not write logs through links",
            ))
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Ok(false);
    }
    check_owner(&file)?;
    file.set_len(0)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empties_files_leaves_missing_ones_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("api-out.log");
        std::fs::write(&log, "old output\n").unwrap();
        assert!(empty(&log).unwrap());
        assert_eq!(std::fs::read(&log).unwrap(), b"");

        let missing = dir.path().join("none.log");
        assert!(!empty(&missing).unwrap());
        assert!(!missing.exists());

        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        std::fs::write(&log, "kept\n").unwrap();
        let e = empty(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&log).unwrap(), b"kept\n");

        // A folder where a log would be is said, not taken for a file.
        assert!(empty(dir.path()).is_err());
    }
}
