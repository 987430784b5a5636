//! Log rotation, done by the writers themselves (PM2 needs the
//! pm2-logrotate module for it). A log that grows past `max_size`, or any
//! non-empty log when the `rotateInterval` cron pattern fires, is renamed
//! `<stem>__<date><.ext>` (pm2-logrotate's name; `_1`, `_2`, … after the
//! date when that name is taken) and a new file takes its path. Then, off
//! the writers' path, the rotated file is gzipped (`compress`) and the
//! oldest rotated files beyond `retain` are deleted.
//!
//! Every writer of a path (both streams of an instance into `log_file`,
//! the instances of a `merge_logs` app) shares one [`Gate`]. Writers hold
//! it shared while they write and a rotation holds it alone while it
//! renames, so no write lands in a file already moved away; each writer
//! opens the path again when it sees the rotation's new generation. While
//! rotation is on, writers hand the file whole lines only, and a writer
//! asks for a rotation only after a line's end: no line is split across
//! files.

use crate::cron_pattern;
use crate::rotation_settings::{self, Policy};
use chrono::Local;
use rsup_proto::app::{LogRotate, RotateSettings};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, RwLock, RwLockReadGuard, Weak};
use tokio::sync::{oneshot, watch, Notify};

/// The global settings (`rsup set pm2-logrotate:…`); `None`: off.
static GLOBAL: LazyLock<watch::Sender<Option<RotateSettings>>> =
    LazyLock::new(|| watch::channel(None).0);

/// Every log path's gate, while a writer holds it.
static GATES: LazyLock<Mutex<HashMap<PathBuf, Weak<Gate>>>> = LazyLock::new(Default::default);

/// Reads the global settings `rsup set` keeps (at start and on
/// `reloadLogs`, which `rsup set` sends).
pub fn load_global(home: &crate::home::Home) {
    match rotation_settings::Store::new(home).settings() {
        Ok((settings, warnings)) => {
            for w in warnings {
                tracing::warn!("{w}");
            }
            set_global(settings);
        }
        Err(e) => tracing::warn!("log rotation settings: {e:#}"),
    }
}

/// The global policy, for the daemon's own log.
pub fn global_policy() -> Option<Policy> {
    rotation_settings::policy(None, GLOBAL.borrow().as_ref())
}

/// Wakes when the global settings change.
pub fn global_changes() -> watch::Receiver<Option<RotateSettings>> {
    GLOBAL.subscribe()
}

/// Replaces the global settings; every log follows at once.
pub fn set_global(settings: Option<RotateSettings>) {
    GLOBAL.send_replace(settings);
    let gates: Vec<Arc<Gate>> = GATES
        .lock()
        .unwrap()
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    for gate in gates {
        gate.refresh();
    }
}

/// What the writers of one path share.
pub struct Gate {
    path: PathBuf,
    /// Counts rotations; held shared by each write, alone by a rotation.
    generation: RwLock<u64>,
    /// The app's own setting, from the last writer that started.
    app: Mutex<Option<LogRotate>>,
    policy: Mutex<Option<Arc<Policy>>>,
    /// Wakes the timer when the policy changed.
    changed: Arc<Notify>,
    /// Compression and deletion of this log's rotated files, one at a time.
    housekeeping: Arc<Mutex<()>>,
    /// The date and counter of the last rotated name: a later rotation in
    /// the same second counts on from there, even once older files of that
    /// second are deleted, so names keep the rotations' order.
    last_name: Mutex<(String, u32)>,
    /// Dropped with the gate, which ends its timer. The timer starts with
    /// the first policy: a log that is not rotated (the default) has no
    /// task of its own.
    timer: Mutex<Option<oneshot::Sender<()>>>,
}

/// The gate of the log at `path`, with `app`'s setting; `None` for what is
/// no file to rotate (`/dev/null`, `/dev/stdout`).
pub fn gate(path: &Path, app: Option<&LogRotate>) -> Option<Arc<Gate>> {
    if path.starts_with("/dev") {
        return None;
    }
    let mut gates = GATES.lock().unwrap();
    if let Some(g) = gates.get(path).and_then(Weak::upgrade) {
        drop(gates);
        g.set_app(app);
        return Some(g);
    }
    gates.retain(|_, g| g.strong_count() > 0);
    let g = Arc::new(Gate {
        path: path.to_path_buf(),
        generation: RwLock::new(0),
        app: Mutex::new(app.cloned()),
        policy: Mutex::new(None),
        changed: Arc::new(Notify::new()),
        housekeeping: Arc::default(),
        last_name: Mutex::default(),
        timer: Mutex::new(None),
    });
    g.refresh();
    gates.insert(path.to_path_buf(), Arc::downgrade(&g));
    Some(g)
}

impl Gate {
    /// How the log is rotated now; `None`: it is not.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.lock().unwrap().clone()
    }

    /// Held while writing: the generation the file must be opened at.
    pub fn write_lock(&self) -> RwLockReadGuard<'_, u64> {
        self.generation.read().unwrap_or_else(|e| e.into_inner())
    }

    fn set_app(self: &Arc<Self>, app: Option<&LogRotate>) {
        let mut own = self.app.lock().unwrap();
        if own.as_ref() != app {
            *own = app.cloned();
            drop(own);
            self.refresh();
        }
    }

    fn refresh(self: &Arc<Self>) {
        let app = self.app.lock().unwrap().clone();
        let policy = rotation_settings::policy(app.as_ref(), GLOBAL.borrow().as_ref());
        let mut current = self.policy.lock().unwrap();
        if current.as_deref() != policy.as_ref() {
            *current = policy.map(Arc::new);
            self.changed.notify_one();
        }
        if current.is_some() {
            drop(current);
            self.start_timer();
        }
    }

    /// Starts the timer that rotates by date, unless it runs (or there is
    /// no runtime to run it: then only sizes rotate).
    fn start_timer(self: &Arc<Self>) {
        let mut timer = self.timer.lock().unwrap();
        if timer.is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (stop, stopped) = oneshot::channel();
        *timer = Some(stop);
        spawn_timer(Arc::downgrade(self), self.changed.clone(), stopped);
    }

    /// Whether the timer runs; for tests.
    #[cfg(test)]
    fn has_timer(&self) -> bool {
        self.timer.lock().unwrap().is_some()
    }

    /// Rotates the log if it holds at least `at_least` bytes (and any at
    /// all); whether it did.
    pub fn rotate(&self, at_least: u64) -> bool {
        let Some(policy) = self.policy() else {
            return false;
        };
        let mut generation = self.generation.write().unwrap_or_else(|e| e.into_inner());
        let size = match fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_file() => m.len(),
            _ => return false,
        };
        if size == 0 || size < at_least {
            // Another writer rotated it meanwhile, or it was flushed.
            return false;
        }
        let date = date(&policy.date_format);
        let mut last = self.last_name.lock().unwrap();
        let from = if last.0 == date { last.1 + 1 } else { 0 };
        let (rotated, n) = free_name(&self.path, &date, from);
        *last = (date, n);
        drop(last);
        if let Err(e) = fs::rename(&self.path, &rotated) {
            tracing::warn!("cannot rotate {}: {e}", self.path.display());
            return false;
        }
        // The path names a file at once, as before the rotation (for
        // whoever reads it); the writers open it on their next write.
        if let Err(e) = super::log_writer::open_log(&self.path) {
            tracing::warn!("cannot create {} again: {e}", self.path.display());
        }
        *generation += 1;
        drop(generation);
        let (log, lock) = (self.path.clone(), self.housekeeping.clone());
        let after = move || {
            let _one_at_a_time = lock.lock().unwrap_or_else(|e| e.into_inner());
            housekeep(&log, rotated, &policy);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(after)),
            Err(_) => after(),
        }
        true
    }
}

/// Rotates by date: sleeps until the pattern fires, for as long as the gate
/// lives; follows changes of the policy.
fn spawn_timer(gate: Weak<Gate>, changed: Arc<Notify>, mut stopped: oneshot::Receiver<()>) {
    tokio::spawn(async move {
        let mut global = GLOBAL.subscribe();
        loop {
            let delay = match gate.upgrade() {
                Some(g) => g
                    .policy()
                    .and_then(|p| cron_pattern::next_delay(&p.rotate_interval, Local::now())),
                None => return,
            };
            let fire = async {
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stopped => return,
                _ = global.changed() => {}
                _ = changed.notified() => {}
                _ = fire => {
                    if let Some(g) = gate.upgrade() {
                        g.rotate(0);
                    }
                }
            }
        }
    });
}

/// Now, as a rotated file's name has it.
pub(super) fn date(format: &str) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    if write!(text, "{}", Local::now().format(format)).is_err() {
        text = Local::now().format("%Y-%m-%d_%H-%M-%S").to_string();
    }
    text
}

/// `<stem>__<date><.ext>` beside `log`, with `_<n>` after the date from
/// counter `from` on, or when that name (or its `.gz`) is taken; the name
/// and its counter.
pub(super) fn free_name(log: &Path, date: &str, from: u32) -> (PathBuf, u32) {
    let (stem, ext) = split(log);
    (from..)
        .map(|n| {
            let counter = if n == 0 {
                String::new()
            } else {
                format!("_{n}")
            };
            (
                log.with_file_name(format!("{stem}__{date}{counter}{ext}")),
                n,
            )
        })
        .find(|(p, _)| !p.exists() && !with_suffix(p, ".gz").exists())
        .expect("some counter is free")
}

/// A log's file name as stem and extension (with its dot, or empty).
fn split(log: &Path) -> (String, String) {
    let stem = log.file_stem().unwrap_or_default().to_string_lossy();
    let ext = log
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (stem.into_owned(), ext)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// After a rotation: compress, then keep the newest `retain`.
pub(super) fn housekeep(log: &Path, rotated: PathBuf, policy: &Policy) {
    if policy.compress {
        if let Err(e) = compress(&rotated) {
            tracing::warn!("cannot compress {}: {e}", rotated.display());
        }
    }
    if policy.retain != u32::MAX {
        if let Err(e) = prune(log, policy.retain as usize) {
            tracing::warn!("cannot delete old rotated logs of {}: {e}", log.display());
        }
    }
}

/// `file` becomes `file.gz`, with `file`'s modification time (the order
/// of rotated files).
fn compress(file: &Path) -> io::Result<()> {
    use flate2::{write::GzEncoder, Compression};
    let mut input = File::open(file)?;
    let modified = input.metadata()?.modified()?;
    let part = with_suffix(file, ".gz.part");
    let output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&part)?;
    let mut gz = GzEncoder::new(output, Compression::default());
    let written = io::copy(&mut input, &mut gz)
        .and_then(|_| gz.finish())
        .and_then(|out| out.set_modified(modified))
        .and_then(|_| fs::rename(&part, with_suffix(file, ".gz")));
    if let Err(e) = written {
        let _ = fs::remove_file(&part);
        return Err(e);
    }
    fs::remove_file(file)
}

/// The rotated files of `log`, oldest first.
pub fn rotated_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let (stem, ext) = split(log);
    let prefix = format!("{stem}__");
    let gz_ext = format!("{ext}.gz");
    let dir = log.parent().unwrap_or(Path::new("."));
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(&prefix)
            && (name.ends_with(&gz_ext) || (name.ends_with(&ext) && !name.ends_with(".part")));
        if !ours {
            continue;
        }
        if let Ok(meta) = entry.metadata() {
            if meta.is_file() {
                // Files rotated within one tick of the clock share their
                // time: their names as rotated (before any `.gz`) tell
                // their order within a date, a longer counter a later one.
                let rotated_as = name.strip_suffix(".gz").unwrap_or(&name).to_owned();
                let key = (meta.modified()?, rotated_as.len(), rotated_as);
                found.push((key, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// Deletes the oldest rotated files of `log` beyond the newest `retain`.
fn prune(log: &Path, retain: usize) -> io::Result<()> {
    let files = rotated_files(log)?;
    let excess = files.len().saturating_sub(retain);
    for old in &files[..excess] {
        match fs::remove_file(old) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn settings(max_size: u64, retain: u32, compress: bool) -> LogRotate {
        LogRotate::On(RotateSettings {
            max_size: Some(max_size),
            retain: Some(retain),
            compress: Some(compress),
            ..Default::default()
        })
    }

    #[test]
    fn rotated_names_are_pm2_logrotates_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("api-out.log");
        assert_eq!(
            free_name(&log, "2026-01-05_10-00-00", 0).0,
            dir.path().join("api-out__2026-01-05_10-00-00.log")
        );
        fs::write(dir.path().join("api-out__D.log.gz"), "").unwrap();
        assert_eq!(
            free_name(&log, "D", 0),
            (dir.path().join("api-out__D_1.log"), 1)
        );
        assert_eq!(
            free_name(&log, "D", 5).0,
            dir.path().join("api-out__D_5.log")
        );
        assert_eq!(
            free_name(&dir.path().join("combined"), "D", 0).0,
            dir.path().join("combined__D")
        );
    }

    #[test]
    fn rotation_keeps_the_newest_and_compresses_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("api-out.log");
        let g = gate(&log, Some(&settings(4, 2, true))).unwrap();
        for i in 0..4 {
            fs::write(&log, format!("line {i}\n")).unwrap();
            assert!(g.rotate(4));
        }
        // Not full yet, or empty: nothing to do.
        fs::write(&log, "ab").unwrap();
        assert!(!g.rotate(4));
        fs::write(&log, "").unwrap();
        assert!(!g.rotate(0));
        assert_eq!(*g.write_lock(), 4);
        let kept = rotated_files(&log).unwrap();
        assert_eq!(kept.len(), 2, "{kept:?}");
        let text: Vec<String> = kept
            .iter()
            .map(|p| {
                assert!(p.to_string_lossy().ends_with(".log.gz"), "{p:?}");
                let mut s = String::new();
                flate2::read::GzDecoder::new(File::open(p).unwrap())
                    .read_to_string(&mut s)
                    .unwrap();
                s
            })
            .collect();
        assert_eq!(text, ["line 2\n", "line 3\n"]);
    }

    #[test]
    fn files_rotated_in_one_tick_keep_their_order_once_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("api-out.log");
        let older = dir.path().join("api-out__D_9.log.gz");
        let newer = dir.path().join("api-out__D_10.log");
        let tick = std::time::SystemTime::now();
        for file in [&older, &newer] {
            File::create(file).unwrap().set_modified(tick).unwrap();
        }
        assert_eq!(rotated_files(&log).unwrap(), [older, newer.clone()]);
        prune(&log, 1).unwrap();
        assert_eq!(rotated_files(&log).unwrap(), [newer]);
    }

    #[test]
    fn an_app_may_turn_rotation_off_and_nothing_rotates_without_a_setting() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("off.log");
        fs::write(&log, "x\n").unwrap();
        let g = gate(&log, Some(&LogRotate::Off)).unwrap();
        assert!(g.policy().is_none());
        assert!(!g.rotate(0));
        assert!(gate(Path::new("/dev/null"), None).is_none());
    }

    /// A log that is not rotated costs no task; one that starts being
    /// rotated gets its timer.
    #[tokio::test]
    async fn the_timer_starts_with_the_first_policy() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("api-out.log");
        let g = gate(&log, Some(&LogRotate::Off)).unwrap();
        assert!(!g.has_timer());
        let same = gate(&log, Some(&settings(4, 2, false))).unwrap();
        assert!(Arc::ptr_eq(&g, &same));
        assert!(g.policy().is_some());
        assert!(g.has_timer());
        // Turned off again, the timer stays until the gate goes.
        gate(&log, Some(&LogRotate::Off)).unwrap();
        assert!(g.has_timer());
    }
}
