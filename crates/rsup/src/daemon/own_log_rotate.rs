//! Rotation of the daemon's own log (`rsup.log`), with the global
//! settings, as pm2-logrotate rotates `pm2.log`. The daemon writes it
//! through its stdout and stderr, so a rotation renames the file, opens a
//! new one at the path and puts it in their place: each log line is one
//! write, so none is split, and the renamed file is compressed and pruned
//! only once nothing writes it any more.

use super::log_rotate;
use crate::cron_pattern;
use crate::home::Home;
use chrono::Local;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// How often the size is looked at.
const SIZE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Rotates the daemon's log for as long as the daemon runs, when its
/// stderr is that file (not under systemd or `--no-daemon`).
pub fn spawn(home: &Home) {
    let path = home.daemon_log();
    if !stderr_is(&path) {
        return;
    }
    tokio::spawn(async move {
        let mut changes = log_rotate::global_changes();
        loop {
            let policy = log_rotate::global_policy();
            let due = policy
                .as_ref()
                .and_then(|p| cron_pattern::next_delay(&p.rotate_interval, Local::now()));
            let wait = due.map_or(SIZE_CHECK_EVERY, |d| d.min(SIZE_CHECK_EVERY));
            tokio::select! {
                _ = changes.changed() => continue,
                _ = tokio::time::sleep(wait) => {}
            }
            let Some(policy) = policy else { continue };
            let size = std::fs::metadata("/proc/self/fd/2").map_or(0, |m| m.len());
            let by_date = due.is_some_and(|d| d <= wait);
            if size > 0 && (by_date || size >= policy.max_size) {
                let path = path.clone();
                let _ = tokio::task::spawn_blocking(move || rotate(&path, &policy)).await;
            }
        }
    });
}

/// Whether our stderr is the file at `path`.
/// Whether this process's stderr is the file at `path`.
pub fn stderr_is(path: &Path) -> bool {
    match (
        std::fs::metadata("/proc/self/fd/2"),
        std::fs::metadata(path),
    ) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

fn rotate(path: &Path, policy: &crate::rotation_settings::Policy) {
    let (rotated, _) = log_rotate::free_name(path, &log_rotate::date(&policy.date_format), 0);
    if let Err(e) = std::fs::rename(path, &rotated) {
        tracing::warn!("cannot rotate {}: {e}", path.display());
        return;
    }
    let home = Home {
        dir: path.parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    match super::lifecycle::open_daemon_log(&home) {
        Ok(file) => {
            for fd in [1, 2] {
                // SAFETY: dup2 onto our own standard descriptors, which
                // stay open throughout; only which file they name changes.
                unsafe { libc::dup2(file.as_raw_fd(), fd) };
            }
        }
        Err(e) => tracing::warn!("cannot open the daemon's log again: {e:#}"),
    }
    log_rotate::housekeep(path, rotated, policy);
}
