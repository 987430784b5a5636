//! `watch`: a change under the app's watched paths reloads it, once the
//! files have been quiet for `watch_delay` (an editor's save or a `git
//! pull` is many events). Like PM2, dot files and `node_modules` are
//! ignored, and so are `ignore_watch` patterns; unlike PM2, so are the
//! app's own log and pid files, which would otherwise reload it for every
//! line it logs. Folders are watched one by one, skipping ignored ones, so
//! a `node_modules` of thousands of folders costs no inotify watch.

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use rsup_proto::app::AppSpec;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::{sleep_until, Instant};

/// Paths not acted on.
pub struct Ignore {
    patterns: GlobSet,
    /// rsup's home folder (its default logs and pid files).
    home: PathBuf,
    /// Log and pid files configured for the app; each instance's may carry
    /// its id (`out-3.log`).
    own_files: Vec<PathBuf>,
}

impl Ignore {
    pub fn new(spec: &AppSpec, home: &Path) -> Result<Ignore, String> {
        let mut set = GlobSetBuilder::new();
        for pattern in &spec.ignore_watch {
            let glob = Glob::new(pattern)
                .map_err(|e| format!("ignore_watch: {pattern:?} is not a pattern: {e}"))?;
            set.add(glob);
        }
        let patterns = set.build().map_err(|e| e.to_string())?;
        let own_files = [
            &spec.out_file,
            &spec.error_file,
            &spec.log_file,
            &spec.pid_file,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        Ok(Ignore {
            patterns,
            home: home.to_path_buf(),
            own_files,
        })
    }

    fn is_own(&self, path: &Path) -> bool {
        if path.starts_with(&self.home) {
            return true;
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        self.own_files.iter().any(|own| {
            let stem = own.file_stem().unwrap_or_default().to_string_lossy();
            own.parent() == path.parent()
                && (own.file_name() == path.file_name() || name.starts_with(&format!("{stem}-")))
        })
    }

    /// Whether a change at `path` (under `root`) is to be ignored: a dot
    /// file or folder or `node_modules` on the way, a pattern matching the
    /// path or one of its parts, or one of the app's own files.
    pub fn ignores(&self, root: &Path, path: &Path) -> bool {
        if self.is_own(path) {
            return true;
        }
        let relative = path.strip_prefix(root).unwrap_or(path);
        if relative.components().any(|c| {
            let part = c.as_os_str().to_string_lossy();
            part.starts_with('.') || part == "node_modules" || self.patterns.is_match(&*part)
        }) {
            return true;
        }
        self.patterns.is_match(relative) || self.patterns.is_match(path)
    }
}

pub struct FileWatch {
    watcher: RecommendedWatcher,
    roots: Vec<PathBuf>,
    ignore: Ignore,
    changes: UnboundedReceiver<PathBuf>,
    delay: Duration,
    /// The first change since the last reload, and when the quiet time
    /// after the latest one ends.
    pending: Option<(PathBuf, Instant)>,
}

impl FileWatch {
    /// Watches the app's paths; `None` when it has none. A path that cannot
    /// be watched is reported and skipped.
    pub fn start(spec: &AppSpec, home: &Path) -> Option<FileWatch> {
        if spec.watch.is_empty() {
            return None;
        }
        let ignore = match Ignore::new(spec, home) {
            Ok(ignore) => ignore,
            Err(e) => {
                tracing::warn!(app = %spec.name, "not watching: {e}");
                return None;
            }
        };
        let (tx, changes) = unbounded_channel();
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Reads and metadata-only events change nothing the app runs.
            if matches!(
                event.kind,
                EventKind::Access(_) | EventKind::Any | EventKind::Other
            ) {
                return;
            }
            for path in event.paths {
                let _ = tx.send(path);
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(app = %spec.name, "cannot watch files: {e}");
                return None;
            }
        };
        let mut watch = FileWatch {
            watcher,
            roots: spec.watch.clone(),
            ignore,
            changes,
            delay: Duration::from_millis(spec.watch_delay_ms),
            pending: None,
        };
        for root in spec.watch.clone() {
            watch.add_tree(&root, &root);
        }
        tracing::info!(app = %spec.name, "watching {:?}", spec.watch);
        Some(watch)
    }

    /// Watches `dir` and the folders under it that are not ignored.
    fn add_tree(&mut self, root: &Path, dir: &Path) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if let Err(e) = self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                tracing::warn!("cannot watch {}: {e}", dir.display());
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && !self.ignore.ignores(root, &path) {
                    stack.push(path);
                }
            }
        }
    }

    fn root_of(&self, path: &Path) -> Option<PathBuf> {
        self.roots.iter().find(|r| path.starts_with(r)).cloned()
    }

    /// The first changed path once changes have been quiet for the delay.
    /// Cancel-safe: what was seen is kept if the caller stops waiting.
    pub async fn changed(&mut self) -> PathBuf {
        loop {
            let due = self.pending.as_ref().map(|(_, due)| *due);
            tokio::select! {
                Some(path) = self.changes.recv() => {
                    let Some(root) = self.root_of(&path) else { continue };
                    if self.ignore.ignores(&root, &path) {
                        continue;
                    }
                    // A new folder: watch it, and what is already in it.
                    if path.is_dir() {
                        self.add_tree(&root, &path);
                    }
                    let due = Instant::now() + self.delay;
                    match &mut self.pending {
                        Some((_, at)) => *at = due,
                        None => self.pending = Some((path, due)),
                    }
                }
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    if let Some((path, _)) = self.pending.take() {
                        return path;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_dot_files_node_modules_patterns_and_the_apps_own_files() {
        let mut spec = crate::test_support::spec();
        spec.ignore_watch = vec!["*.log".into(), "tmp".into(), "src/gen/**".into()];
        spec.out_file = Some("/srv/app/logs/api-out.log".into());
        let ignore = Ignore::new(&spec, Path::new("/home/u/.rsup")).unwrap();
        let root = Path::new("/srv/app");
        for yes in [
            "/srv/app/.git/index",
            "/srv/app/node_modules/x/index.js",
            "/srv/app/a/b.log",
            "/srv/app/tmp/x.js",
            "/srv/app/src/gen/types.js",
            "/srv/app/logs/api-out.log",
            "/srv/app/logs/api-out-3.log",
            "/home/u/.rsup/logs/api-error.log",
        ] {
            assert!(ignore.ignores(root, Path::new(yes)), "{yes}");
        }
        for no in [
            "/srv/app/server.js",
            "/srv/app/src/routes/a.js",
            "/srv/app/logs/keep.txt",
        ] {
            assert!(!ignore.ignores(root, Path::new(no)), "{no}");
        }
        spec.ignore_watch = vec!["[".into()];
        assert!(Ignore::new(&spec, Path::new("/h")).is_err());
    }
}
