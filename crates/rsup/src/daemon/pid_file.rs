//! Each instance's pid file (PM2's `pids/<name>-<id>.pid`, or `-p`'s
//! `<stem>-<id>.<ext>`): written when a process of the instance starts or
//! takes over in a reload, removed when the instance has none.
//!
//! Scripts read these files to signal or watch the app, so the file is
//! replaced whole (a private file in the same folder, renamed over it):
//! a reader never sees half a pid, and a symbolic link planted at the path
//! is replaced, never followed. Failing to write one is said in the
//! daemon's log and never stops the app.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `pid` to `path` (the number alone, as PM2 writes it), creating
/// the folders above it.
pub fn write(path: &Path, pid: u32) {
    if let Err(e) = try_write(path, pid) {
        tracing::warn!("cannot write pid file {}: {e}", path.display());
    }
}

/// Removes the file; one that is already gone is no error.
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove pid file {}: {e}", path.display()),
    }
}

fn try_write(path: &Path, pid: u32) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(pid.to_string().as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/pids/api-3.pid");
        write(&path, 1234);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1234");
        write(&path, 99);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "99");
        // Nothing but the pid file is left in its folder.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["api-3.pid"]);
        remove(&path);
        assert!(!path.exists());
        remove(&path);
    }

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("echo-0.pid");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write(&path, 42);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "42");
    }
}
