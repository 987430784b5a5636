//! Copies a child's stdout or stderr into its log file, optionally putting a
//! timestamp in front of every line.
//!
//! The file is opened in append mode, so several instances can share one
//! file (`merge_logs`) and a truncation (logrotate's `copytruncate`) needs
//! nothing more: the next write lands at the new end. A file moved or
//! deleted away is noticed (its path no longer names the open file; checked
//! at most once a second) and opened again at its path.
//!
//! `reloadLogs` has every copier open its files again at once (see
//! [`log_reopen`]).
//!
//! Rotation (pm2-logrotate's settings, see [`log_rotate`]) happens here,
//! between whole lines: while a log is rotated, its copiers hand it whole
//! lines only, as they do the combined log.
//!
//! A log that cannot be written never holds up the child: the pipe is
//! always read. While the file cannot be opened or written (disk full,
//! folder missing), output waits in a bounded backlog and writing is retried
//! every second; once it works the backlog goes out, after a line saying how
//! much was dropped meanwhile. How each file fares is published in a
//! [`LogHealth`] that `list` and `describe` read.

use super::freeze::{self, Reader};
use super::log_lines::{Formatter, LineFormat, WholeLines, HOLD_LIMIT};
use super::log_reopen;
use super::log_rotate::{self, Gate};
use rsup_proto::app::LogRotate;
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::mem::MaybeUninit;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::task::JoinHandle;

/// Most output held per stream while its log cannot be written; beyond it
/// the oldest goes.
const BACKLOG_LIMIT: usize = 1024 * 1024;
/// How often writing is tried again after a failure.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How often the path is compared with the open file, to follow a file
/// moved or deleted by log rotation.
const MOVE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Most read at once from a process's stdout or stderr (on the stack,
/// see [`poll_chunk`]).
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct LogTarget {
    pub path: PathBuf,
    /// The log both streams write (`log_file`), which gets whole lines
    /// only, so that a line of one stream never cuts through the other's.
    pub combined: Option<PathBuf>,
    pub format: LineFormat,
    /// The app's own rotation setting (`log_rotate`).
    pub rotate: Option<LogRotate>,
    /// Pauses the copier before the daemon re-executes itself.
    pub freeze: Option<Arc<freeze::Gate>>,
}

/// Writes out the unfinished lines held for the logs.
fn release_held<S: Sink>(
    own: &mut LogFile<S>,
    own_lines: &mut WholeLines,
    shared: Option<&mut (LogFile<S>, WholeLines)>,
    now: Instant,
) {
    if own_lines.holding() {
        own.write(&own_lines.release(), now);
    }
    if let Some((log, lines)) = shared {
        if lines.holding() {
            log.write(&lines.release(), now);
        }
    }
}

/// Starts copying `stream` into `target` until the stream ends (the
/// process and every descendant holding the pipe have closed it).
///
/// The task is small (it lives as long as the process, two per process):
/// it reads into a buffer on the stack and writes what it read before it
/// waits again ([`poll_chunk`]), the combined log's part is boxed (most
/// apps have none), and one timer, made when first needed, serves both
/// the retry and the release of held lines.
pub fn spawn_copier<R>(mut stream: R, target: LogTarget) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    // Opened before the task runs, so that a log that cannot be opened is
    // already reported when the command that launched the process replies.
    let now = Instant::now();
    let rotate = target.rotate.as_ref();
    let mut own = open_path(&target.path, now, rotate);
    // The start of a line held back from the own log while it is rotated.
    let mut own_lines = WholeLines::default();
    let mut shared = target
        .combined
        .as_deref()
        .map(|path| Box::new((open_path(path, now, rotate), WholeLines::default())));
    let mut reopen = log_reopen::register();
    let mut freeze = target.freeze.as_ref().map(Reader::register);
    let mut formatter = Formatter::new(target.format);
    tokio::spawn(async move {
        // When the unfinished lines held for the logs are let go.
        let mut release_at: Option<Instant> = None;
        // Made when first needed: most copiers never hold a line or retry.
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            let retry = [Some(&own), shared.as_deref().map(|(log, _)| log)]
                .into_iter()
                .flatten()
                .filter_map(LogFile::retry_at)
                .min();
            let due = retry.into_iter().chain(release_at).min();
            if let Some(at) = due.map(tokio::time::Instant::from_std) {
                match &mut timer {
                    Some(t) if t.deadline() == at => {}
                    Some(t) => t.as_mut().reset(at),
                    None => timer = Some(Box::pin(tokio::time::sleep_until(at))),
                }
            }
            // Reading goes on whatever the files do: a child blocked on a
            // full pipe would hang.
            tokio::select! {
                biased;
                // Between reads, with every line held written out: what is
                // unread stays in the pipe for the daemon's next image.
                _ = async { freeze.as_mut().unwrap().asked().await }, if freeze.is_some() => {
                    release_at = None;
                    release_held(&mut own, &mut own_lines, shared.as_deref_mut(), Instant::now());
                    freeze.as_mut().unwrap().pause().await;
                }
                more = std::future::poll_fn(|cx| poll_chunk(&mut stream, cx, |read| {
                    let now = Instant::now();
                    let text = formatter.format(read);
                    let framed = own_lines.pass(&text, own.rotating());
                    if !framed.is_empty() {
                        own.write(&framed, now);
                    }
                    let mut holding = own_lines.holding();
                    if let Some((log, lines)) = shared.as_deref_mut() {
                        let whole = lines.take(&text);
                        if !whole.is_empty() {
                            log.write(&whole, now);
                        }
                        holding |= lines.holding();
                    }
                    release_at = match (holding, release_at) {
                        (false, _) => None,
                        (true, Some(at)) => Some(at),
                        (true, None) => Some(now + HOLD_LIMIT),
                    };
                })) => if !more {
                    break;
                },
                _ = async { timer.as_mut().unwrap().await }, if due.is_some() => {
                    let now = Instant::now();
                    if retry == due {
                        own.retry(now);
                        if let Some((log, _)) = shared.as_deref_mut() {
                            log.retry(now);
                        }
                    }
                    if release_at == due {
                        release_at = None;
                        release_held(&mut own, &mut own_lines, shared.as_deref_mut(), now);
                    }
                }
                round = reopen.asked() => {
                    let now = Instant::now();
                    own.reopen(now);
                    if let Some((log, _)) = shared.as_deref_mut() {
                        log.reopen(now);
                    }
                    reopen.answer(round);
                }
            }
        }
        // A last line without its newline still ends the record cleanly.
        let rest = formatter.finish();
        let now = Instant::now();
        let mut own_rest = own_lines.take(&rest).into_owned();
        own_rest.extend(own_lines.finish());
        own.hold(&own_rest);
        own.finish(now);
        if let Some(shared) = shared {
            let (mut log, mut lines) = *shared;
            let mut whole = lines.take(&rest).into_owned();
            whole.extend(lines.finish());
            log.hold(&whole);
            log.finish(now);
        }
    })
}

/// Reads what `stream` has into a buffer on the stack and hands it to
/// `take` at once: `Ready(true)` once taken, `Ready(false)` at its end
/// (or on an error, which ends a pipe too). A copier holds no buffer
/// while it waits, and most processes are quiet most of the time.
fn poll_chunk<R: AsyncRead + Unpin>(
    stream: &mut R,
    cx: &mut Context<'_>,
    take: impl FnOnce(&[u8]),
) -> Poll<bool> {
    let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut buf = ReadBuf::uninit(&mut chunk);
    match Pin::new(stream).poll_read(cx, &mut buf) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
            take(buf.filled());
            Poll::Ready(true)
        }
        Poll::Ready(_) => Poll::Ready(false),
    }
}

fn open_path(path: &Path, now: Instant, rotate: Option<&LogRotate>) -> LogFile<PathSink> {
    LogFile::open_gated(
        PathSink(path.to_path_buf()),
        health(path),
        BACKLOG_LIMIT,
        now,
        log_rotate::gate(path, rotate),
    )
}

/// Opens a log file for appending, creating it (0640) when missing. In a
/// folder others can write, someone could have planted a symbolic link
/// there (to a file of ours, which would receive the app's output) or a
/// file of their own (which they could read): so a link is never followed
/// (O_NOFOLLOW) and an existing file must be this user's or root's. The
/// refusal says why, for the daemon's log. `/dev/stdout` and `/dev/stderr`
/// are links by nature and name the daemon's own output, as in containers.
pub fn open_log(path: &Path) -> std::io::Result<File> {
    use std::io::Error;
    let own_output = path == Path::new("/dev/stdout") || path == Path::new("/dev/stderr");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(if own_output { 0 } else { libc::O_NOFOLLOW })
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::new(
                ErrorKind::PermissionDenied,
                "it is a symbolic link, and rsup does not write logs through links",
            ),
            _ => e,
        })?;
    if !own_output {
        check_owner(&file)?;
    }
    Ok(file)
}

/// A log file must be this user's or root's: rsup neither writes nor
/// empties a file someone else planted.
pub fn check_owner(file: &File) -> std::io::Result<()> {
    let owner = file.metadata()?.uid();
    if owner != nix::unistd::geteuid().as_raw() && owner != 0 {
        return Err(std::io::Error::new(
            ErrorKind::PermissionDenied,
            format!("it belongs to uid {owner}, and rsup writes logs only into files of its own user or root"),
        ));
    }
    Ok(())
}

/// How writing one log file goes, shared by every copier writing it (the
/// instances of a `merge_logs` app, both processes during a reload) and by
/// the instances that report on it.
#[derive(Debug, Default)]
pub struct LogHealth(Mutex<HealthState>);

#[derive(Debug, Default)]
struct HealthState {
    report: HealthReport,
    /// Dropped at the end of a stream, not yet said in the file: the next
    /// copier of the file says it.
    unsaid: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Why the file cannot be written now; `None` once it can again.
    pub error: Option<String>,
    /// Output thrown away for want of a writable file, in all.
    pub dropped_bytes: u64,
}

impl LogHealth {
    pub fn report(&self) -> HealthReport {
        self.0.lock().unwrap().report.clone()
    }

    pub(super) fn failing(&self, error: &str) {
        self.0.lock().unwrap().report.error = Some(error.to_string());
    }

    pub(super) fn writing(&self) {
        self.0.lock().unwrap().report.error = None;
    }

    pub(super) fn dropped(&self, bytes: u64) {
        self.0.lock().unwrap().report.dropped_bytes += bytes;
    }

    /// A stream ended with output still held (`held`, lost now) and
    /// `unsaid` bytes dropped earlier that the file does not mention yet.
    fn ended_failing(&self, held: u64, unsaid: u64) {
        let mut state = self.0.lock().unwrap();
        state.report.dropped_bytes += held;
        state.unsaid += held + unsaid;
    }

    fn take_unsaid(&self) -> u64 {
        std::mem::take(&mut self.0.lock().unwrap().unsaid)
    }
}

/// Every log file's health, by path. The copiers are started from a path
/// alone, and so is the instance that reports on them: the path is what
/// they share. Entries live as long as someone holds them.
static HEALTH: LazyLock<Mutex<HealthByPath>> = LazyLock::new(Default::default);

type HealthByPath = HashMap<PathBuf, Weak<LogHealth>>;

/// The health of the log file at `path`, the same for every caller while
/// any of them holds it.
pub fn health(path: &Path) -> Arc<LogHealth> {
    let mut all = HEALTH.lock().unwrap();
    if let Some(h) = all.get(path).and_then(Weak::upgrade) {
        return h;
    }
    all.retain(|_, h| h.strong_count() > 0);
    let h = Arc::new(LogHealth::default());
    all.insert(path.to_path_buf(), Arc::downgrade(&h));
    h
}

/// Where a copier's bytes go: the file at a path in the daemon, stand-ins
/// that fail on demand in tests.
trait Sink {
    type File: Write;
    fn open(&mut self) -> std::io::Result<Self::File>;
    /// The path no longer names `file`: it was moved, deleted or replaced.
    fn moved(&self, file: &Self::File) -> bool;
    /// How large the open file is now.
    fn size(&self, file: &Self::File) -> Option<u64>;
    fn name(&self) -> String;
}

struct PathSink(PathBuf);

impl Sink for PathSink {
    type File = File;

    fn open(&mut self) -> std::io::Result<File> {
        open_log(&self.0)
    }

    fn moved(&self, file: &File) -> bool {
        match (file.metadata(), std::fs::metadata(&self.0)) {
            (Ok(open), Ok(now)) => (open.dev(), open.ino()) != (now.dev(), now.ino()),
            _ => true,
        }
    }

    fn size(&self, file: &File) -> Option<u64> {
        file.metadata().ok().map(|m| m.len())
    }

    fn name(&self) -> String {
        self.0.display().to_string()
    }
}

/// Output waiting to be written, at most `limit` bytes of it.
struct Backlog {
    bytes: VecDeque<u8>,
    limit: usize,
    /// Dropped since the log last said so.
    dropped: u64,
}

impl Backlog {
    fn new(limit: usize) -> Self {
        Backlog {
            bytes: VecDeque::new(),
            limit,
            dropped: 0,
        }
    }

    /// Adds output, dropping the oldest beyond the limit; returns how many
    /// bytes were dropped.
    fn push(&mut self, chunk: &[u8]) -> u64 {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(self.limit);
        if excess == 0 {
            return 0;
        }
        // Cut after the end of the line the excess ends in, so what is kept
        // starts with a whole line; only a line longer than everything kept
        // is cut inside.
        let cut = self
            .bytes
            .range(excess - 1..)
            .position(|b| *b == b'\n')
            .map_or(excess, |i| excess + i);
        self.bytes.drain(..cut);
        self.dropped += cut as u64;
        cut as u64
    }

    /// The oldest bytes, in one piece.
    fn front(&self) -> &[u8] {
        let (a, b) = self.bytes.as_slices();
        if a.is_empty() {
            b
        } else {
            a
        }
    }

    fn consume(&mut self, n: usize) {
        self.bytes.drain(..n);
        // Only an outage fills the backlog: its memory goes once written.
        if self.bytes.is_empty() {
            self.bytes = VecDeque::new();
        }
    }
}

/// One stream's log file: writes what it can, holds the rest while the
/// file cannot be written, and tries again.
struct LogFile<S: Sink> {
    sink: S,
    file: Option<S::File>,
    backlog: Backlog,
    /// Why the last attempt failed; `None` while writing works.
    failure: Option<String>,
    /// While failing, no attempt before this.
    retry_at: Instant,
    /// No check for a moved file before this.
    check_at: Instant,
    /// The last byte written did not end a line.
    mid_line: bool,
    health: Arc<LogHealth>,
    /// Shared with the path's other writers, for rotation.
    gate: Option<Arc<Gate>>,
    /// The rotation the open file belongs to.
    generation: u64,
}

impl<S: Sink> LogFile<S> {
    /// Opens the file at once, so a failure is known from the start.
    #[cfg(test)]
    fn open(sink: S, health: Arc<LogHealth>, limit: usize, now: Instant) -> Self {
        Self::open_gated(sink, health, limit, now, None)
    }

    fn open_gated(
        sink: S,
        health: Arc<LogHealth>,
        limit: usize,
        now: Instant,
        gate: Option<Arc<Gate>>,
    ) -> Self {
        let generation = gate.as_ref().map_or(0, |g| *g.write_lock());
        let mut backlog = Backlog::new(limit);
        backlog.dropped = health.take_unsaid();
        let mut log = LogFile {
            sink,
            file: None,
            backlog,
            failure: None,
            retry_at: now,
            check_at: now + MOVE_CHECK_EVERY,
            mid_line: false,
            health,
            gate,
            generation,
        };
        log.attempt(now);
        log
    }

    /// Whether the file is rotated now: it must then get whole lines.
    fn rotating(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| g.policy().is_some())
    }

    /// Takes output: written at once while writing works, held otherwise
    /// (and the file tried again if that is due).
    fn write(&mut self, chunk: &[u8], now: Instant) {
        if self.failure.is_some() && now < self.retry_at {
            self.hold(chunk);
        } else {
            self.attempt_with(chunk, now);
        }
    }

    /// Adds output to the backlog without writing it yet.
    fn hold(&mut self, chunk: &[u8]) {
        let dropped = self.backlog.push(chunk);
        if dropped > 0 {
            self.health.dropped(dropped);
        }
    }

    /// When to try again, while writing fails.
    fn retry_at(&self) -> Option<Instant> {
        self.failure.as_ref().map(|_| self.retry_at)
    }

    /// The retry timer fired.
    fn retry(&mut self, now: Instant) {
        if now >= self.retry_at {
            self.attempt(now);
        }
    }

    /// Opens the file again at its path (reloadLogs), writing what is held.
    fn reopen(&mut self, now: Instant) {
        self.file = None;
        self.attempt(now);
    }

    /// The stream has ended: one last attempt, then whatever is still held
    /// is lost.
    fn finish(&mut self, now: Instant) {
        if self.failure.is_some() || !self.backlog.bytes.is_empty() {
            self.attempt(now);
        }
        let held = self.backlog.bytes.len() as u64;
        if self.failure.is_some() {
            self.health.ended_failing(held, self.backlog.dropped);
            if held > 0 {
                tracing::warn!(
                    "{}: {held} bytes of output lost: the stream ended while the log could not be written",
                    self.sink.name()
                );
            }
        }
    }

    fn attempt(&mut self, now: Instant) {
        self.attempt_with(&[], now);
    }

    /// Writes what is held, then `fresh`; what cannot be written is held.
    fn attempt_with(&mut self, fresh: &[u8], now: Instant) {
        let gate = self.gate.clone();
        // No rotation moves the file away while this writes into it.
        let lock = gate.as_deref().map(Gate::write_lock);
        if let Some(generation) = lock.as_deref() {
            if *generation != self.generation {
                // Rotated: the path names a new file.
                self.generation = *generation;
                self.file = None;
            }
        }
        let written = self.write_out(fresh, now);
        drop(lock);
        if written.is_ok() {
            self.rotate_if_full();
        }
        match written {
            Ok(()) => {
                if let Some(was) = self.failure.take() {
                    tracing::info!("{}: writing again ({was})", self.sink.name());
                }
                // Also clears what another copier of this file reported,
                // such as one whose process ended while it failed.
                self.health.writing();
            }
            Err((error, written)) => {
                self.hold(&fresh[written..]);
                // Opened afresh next time: a new file if this one went, a
                // new descriptor after an I/O error.
                self.file = None;
                if self.failure.is_none() {
                    tracing::warn!("{error}; holding output and retrying every second");
                }
                self.health.failing(&error);
                self.failure = Some(error);
                self.retry_at = now + RETRY_EVERY;
            }
        }
    }

    /// Rotates the file once it has reached its maximum size, between lines.
    fn rotate_if_full(&mut self) {
        let (Some(gate), Some(file)) = (&self.gate, &self.file) else {
            return;
        };
        if self.mid_line {
            return;
        }
        let Some(policy) = gate.policy() else {
            return;
        };
        if self.sink.size(file).is_some_and(|n| n >= policy.max_size) {
            gate.rotate(policy.max_size);
        }
    }

    /// On failure: why, and how much of `fresh` was written.
    fn write_out(&mut self, fresh: &[u8], now: Instant) -> Result<(), (String, usize)> {
        if let Some(file) = &self.file {
            if now >= self.check_at {
                self.check_at = now + MOVE_CHECK_EVERY;
                if self.sink.moved(file) {
                    self.file = None;
                }
            }
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = self
                    .sink
                    .open()
                    .map_err(|e| (format!("cannot open {}: {e}", self.sink.name()), 0))?;
                self.check_at = now + MOVE_CHECK_EVERY;
                self.file.insert(f)
            }
        };
        let failed = |e: std::io::Error, written| {
            (format!("cannot write {}: {e}", self.sink.name()), written)
        };
        if self.backlog.dropped > 0 {
            let reason = self
                .failure
                .as_deref()
                .unwrap_or("the log could not be written");
            let notice = format!(
                "{}rsup: {} bytes of output dropped here ({reason})\n",
                if self.mid_line { "\n" } else { "" },
                self.backlog.dropped
            );
            file.write_all(notice.as_bytes())
                .map_err(|e| failed(e, 0))?;
            self.mid_line = false;
            self.backlog.dropped = 0;
        }
        while !self.backlog.bytes.is_empty() {
            let front = self.backlog.front();
            let (n, error) = write_some(file, front);
            if n > 0 {
                self.mid_line = front[n - 1] != b'\n';
                self.backlog.consume(n);
            }
            if let Some(e) = error {
                return Err(failed(e, 0));
            }
        }
        let (n, error) = write_some(file, fresh);
        if n > 0 {
            self.mid_line = fresh[n - 1] != b'\n';
        }
        match error {
            Some(e) => Err(failed(e, n)),
            None => Ok(()),
        }
    }
}

/// Writes as much of `bytes` as the file takes: how much, and the error
/// that stopped it short.
fn write_some(file: &mut impl Write, bytes: &[u8]) -> (usize, Option<std::io::Error>) {
    let mut done = 0;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => return (done, Some(ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn copies_everything_and_terminates_the_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.log");
        let data: &[u8] = b"first\nsecond";
        spawn_copier(
            data,
            LogTarget {
                path: path.clone(),
                combined: None,
                format: LineFormat::Raw,
                rotate: None,
                freeze: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
    }

    #[tokio::test]
    async fn copies_output_much_larger_than_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let (mut tx, rx) = tokio::io::duplex(1536);
        let copier = spawn_copier(
            rx,
            LogTarget {
                path: path.clone(),
                combined: None,
                format: LineFormat::Stamped("T".into()),
                rotate: None,
                freeze: None,
            },
        );
        // One line far longer than any buffer, then many short ones, in
        // writes of every size.
        let mut data = vec![b'x'; READ_CHUNK * 5 + 7];
        data.push(b'\n');
        for i in 0..2000 {
            data.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        for piece in data.chunks(511) {
            tx.write_all(piece).await.unwrap();
        }
        drop(tx);
        copier.await.unwrap();
        let got = std::fs::read(&path).unwrap();
        let want: Vec<u8> = data
            .split_inclusive(|b| *b == b'\n')
            .flat_map(|l| [b"T: ".as_slice(), l].concat())
            .collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    }

    /// A stand-in for the file system: the files that the path has named
    /// in turn (the last is the current one), how much room is left, and
    /// whether the file can be opened at all.
    struct Disk {
        files: Vec<Vec<u8>>,
        /// Bytes that still fit; `None`: no limit.
        room: Option<usize>,
        openable: bool,
        opens: u32,
    }

    impl Disk {
        fn text(&self) -> String {
            String::from_utf8(self.files.last().unwrap().clone()).unwrap()
        }

        /// Log rotation: the file is moved away, a new one takes its path.
        fn rotate(&mut self) {
            self.files.push(Vec::new());
        }
    }

    #[derive(Clone)]
    struct TestSink(Arc<Mutex<Disk>>);

    struct TestFile {
        disk: Arc<Mutex<Disk>>,
        index: usize,
    }

    impl Write for TestFile {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut disk = self.disk.lock().unwrap();
            let n = disk.room.map_or(buf.len(), |room| room.min(buf.len()));
            if n == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            if let Some(room) = disk.room.as_mut() {
                *room -= n;
            }
            disk.files[self.index].extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink for TestSink {
        type File = TestFile;

        fn open(&mut self) -> std::io::Result<TestFile> {
            let mut disk = self.0.lock().unwrap();
            disk.opens += 1;
            if !disk.openable {
                return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
            }
            Ok(TestFile {
                disk: self.0.clone(),
                index: disk.files.len() - 1,
            })
        }

        fn moved(&self, file: &TestFile) -> bool {
            file.index != self.0.lock().unwrap().files.len() - 1
        }

        fn size(&self, file: &TestFile) -> Option<u64> {
            Some(self.0.lock().unwrap().files[file.index].len() as u64)
        }

        fn name(&self) -> String {
            "test.log".into()
        }
    }

    fn test_disk(room: Option<usize>, openable: bool) -> (TestSink, Arc<Mutex<Disk>>) {
        let disk = Arc::new(Mutex::new(Disk {
            files: vec![Vec::new()],
            room,
            openable,
            opens: 0,
        }));
        (TestSink(disk.clone()), disk)
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn the_backlog_drops_the_oldest_whole_lines() {
        let mut b = Backlog::new(16);
        assert_eq!(b.push(b"l1..\nl2..\nl3..\n"), 0);
        // 20 bytes: the 4 over the limit end inside the first line, which
        // goes whole.
        assert_eq!(b.push(b"l4..\n"), 5);
        assert_eq!(b.push(b"l5..\n"), 5);
        assert_eq!(b.bytes, b"l3..\nl4..\nl5..\n");
        assert_eq!(b.dropped, 10);
    }

    #[test]
    fn the_backlog_cuts_inside_a_line_only_when_it_must() {
        let mut b = Backlog::new(4);
        assert_eq!(b.push(b"abcdefgh"), 4);
        assert_eq!(b.bytes, b"efgh");
        // The rest of that line goes with the first newline after the cut.
        assert_eq!(b.push(b"ij\nk"), 7);
        assert_eq!(b.bytes, b"k");
    }

    #[test]
    fn after_a_full_disk_output_is_held_and_written_once_there_is_room() {
        let t0 = Instant::now();
        let (sink, disk) = test_disk(Some(6), true);
        let health = Arc::new(LogHealth::default());
        let mut log = LogFile::open(sink, health.clone(), 1024, t0);
        log.write(b"one\ntwo\n", t0);
        assert_eq!(disk.lock().unwrap().text(), "one\ntw");
        let error = health.report().error.expect("the failure is reported");
        assert!(error.starts_with("cannot write test.log: "), "{error}");
        assert_eq!(log.retry_at(), Some(ms(t0, 1000)));

        // New output before the retry is due is held, not tried.
        disk.lock().unwrap().room = None;
        log.write(b"three\n", ms(t0, 500));
        log.retry(ms(t0, 999));
        assert_eq!(disk.lock().unwrap().text(), "one\ntw");
        assert_eq!(disk.lock().unwrap().opens, 1);

        // Due: the file is opened again and the line finished, nothing lost.
        log.write(b"four\n", ms(t0, 1000));
        assert_eq!(disk.lock().unwrap().text(), "one\ntwo\nthree\nfour\n");
        assert_eq!(disk.lock().unwrap().opens, 2);
        assert_eq!(health.report(), HealthReport::default());
        assert_eq!(log.retry_at(), None);
        log.write(b"five\n", ms(t0, 1001));
        assert!(disk.lock().unwrap().text().ends_with("four\nfive\n"));
        // Output goes straight to the file again: no backlog memory held.
        assert_eq!(log.backlog.bytes.capacity(), 0);
    }

    #[test]
    fn retries_go_on_every_second_while_the_disk_stays_full() {
        let t0 = Instant::now();
        let (sink, disk) = test_disk(Some(0), true);
        let health = Arc::new(LogHealth::default());
        let mut log = LogFile::open(sink, health.clone(), 1024, t0);
        log.write(b"a\n", t0);
        for s in 1..=3 {
            log.retry(ms(t0, s * 1000));
            assert_eq!(log.retry_at(), Some(ms(t0, (s + 1) * 1000)));
        }
        assert_eq!(disk.lock().unwrap().opens, 4);
        assert!(health.report().error.is_some());
        assert_eq!(health.report().dropped_bytes, 0);
    }

    #[test]
    fn an_unopenable_log_is_reported_at_once_and_opened_when_it_can_be() {
        let t0 = Instant::now();
        let (sink, disk) = test_disk(None, false);
        let health = Arc::new(LogHealth::default());
        let mut log = LogFile::open(sink, health.clone(), 1024, t0);
        let error = health.report().error.expect("reported before any output");
        assert!(error.starts_with("cannot open test.log: "), "{error}");
        log.write(b"held\n", ms(t0, 10));
        disk.lock().unwrap().openable = true;
        // With no new output, the timer's retry delivers it.
        log.retry(ms(t0, 1000));
        assert_eq!(disk.lock().unwrap().text(), "held\n");
        assert_eq!(health.report(), HealthReport::default());
    }

    #[test]
    fn beyond_the_limit_the_log_says_how_much_was_dropped_where() {
        let t0 = Instant::now();
        let (sink, disk) = test_disk(Some(3), true);
        let health = Arc::new(LogHealth::default());
        let mut log = LogFile::open(sink, health.clone(), 8, t0);
        // The disk fills in the middle of a line...
        log.write(b"abcdef\n", t0);
        assert_eq!(disk.lock().unwrap().text(), "abc");
        // ...whose rest is then pushed out by newer output.
        log.write(b"0123456\n", ms(t0, 100));
        assert_eq!(health.report().dropped_bytes, 4);
        disk.lock().unwrap().room = None;
        log.retry(ms(t0, 1000));
        let text = disk.lock().unwrap().text();
        let (head, rest) = text.split_once('\n').unwrap();
        assert_eq!(head, "abc");
        assert!(
            rest.starts_with("rsup: 4 bytes of output dropped here (cannot write test.log: "),
            "{text}"
        );
        assert!(rest.ends_with(")\n0123456\n"), "{text}");
        // Said once: the next output follows plainly.
        log.write(b"next\n", ms(t0, 1001));
        assert!(disk.lock().unwrap().text().ends_with(")\n0123456\nnext\n"));
        assert_eq!(health.report().error, None);
        assert_eq!(health.report().dropped_bytes, 4);
    }

    #[test]
    fn a_moved_file_is_followed_checking_at_most_once_a_second() {
        let t0 = Instant::now();
        let (sink, disk) = test_disk(None, true);
        let mut log = LogFile::open(sink, Arc::new(LogHealth::default()), 1024, t0);
        log.write(b"a\n", t0);
        disk.lock().unwrap().rotate();
        log.write(b"b\n", ms(t0, 500));
        log.write(b"c\n", ms(t0, 1000));
        log.write(b"d\n", ms(t0, 1500));
        let disk = disk.lock().unwrap();
        assert_eq!(disk.files, [b"a\nb\n".to_vec(), b"c\nd\n".to_vec()]);
        assert_eq!(disk.opens, 2);
    }

    #[test]
    fn output_still_held_when_the_stream_ends_is_said_by_the_next_process() {
        let t0 = Instant::now();
        let (sink, disk) = test_disk(Some(0), true);
        let health = Arc::new(LogHealth::default());
        let mut log = LogFile::open(sink.clone(), health.clone(), 1024, t0);
        log.write(b"last words\n", t0);
        log.finish(ms(t0, 10));
        assert_eq!(health.report().dropped_bytes, 11);
        assert!(health.report().error.is_some());
        // The process restarts once there is room: its log says what was
        // lost, and the error clears though this copier never failed.
        disk.lock().unwrap().room = None;
        let mut log = LogFile::open(sink, health.clone(), 1024, ms(t0, 20));
        assert_eq!(health.report().error, None);
        log.write(b"hello again\n", ms(t0, 30));
        assert_eq!(
            disk.lock().unwrap().text(),
            "rsup: 11 bytes of output dropped here (the log could not be written)\nhello again\n"
        );
        assert_eq!(health.report().dropped_bytes, 11);
    }

    #[test]
    fn output_held_when_the_stream_ends_is_kept_if_the_last_attempt_works() {
        let t0 = Instant::now();
        let (sink, disk) = test_disk(Some(0), true);
        let health = Arc::new(LogHealth::default());
        let mut log = LogFile::open(sink, health.clone(), 1024, t0);
        log.write(b"last words\n", t0);
        disk.lock().unwrap().room = None;
        log.finish(ms(t0, 10));
        assert_eq!(disk.lock().unwrap().text(), "last words\n");
        assert_eq!(health.report(), HealthReport::default());
    }

    #[test]
    fn one_health_per_path_while_it_is_held() {
        let a = health(Path::new("/nowhere/shared-a.log"));
        let b = health(Path::new("/nowhere/shared-a.log"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &health(Path::new("/nowhere/other.log"))));
    }

    /// Real files: a folder in the way is reported as soon as the copier
    /// starts, and output held meanwhile arrives once the folder can be
    /// made.
    #[tokio::test]
    async fn a_log_whose_folder_cannot_be_made_is_written_once_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("logs");
        std::fs::write(&blocker, "a file where the folder should be").unwrap();
        let path = blocker.join("out.log");
        let (mut child, pipe) = tokio::io::duplex(64);
        let copier = spawn_copier(
            pipe,
            LogTarget {
                path: path.clone(),
                combined: None,
                format: LineFormat::Raw,
                rotate: None,
                freeze: None,
            },
        );
        let h = health(&path);
        let error = h.report().error.expect("reported when the copier starts");
        assert!(error.contains("cannot open"), "{error}");
        child.write_all(b"waited\n").await.unwrap();
        std::fs::remove_file(&blocker).unwrap();
        let text = wait_for_file(&path, "waited\n").await;
        assert_eq!(text, "waited\n");
        assert_eq!(h.report(), HealthReport::default());
        drop(child);
        copier.await.unwrap();
    }

    /// Real files: a log moved away (logrotate without copytruncate) is
    /// created again at its path and written there.
    #[tokio::test]
    async fn a_renamed_log_is_recreated_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let (mut child, pipe) = tokio::io::duplex(64);
        let copier = spawn_copier(
            pipe,
            LogTarget {
                path: path.clone(),
                combined: None,
                format: LineFormat::Raw,
                rotate: None,
                freeze: None,
            },
        );
        child.write_all(b"old\n").await.unwrap();
        wait_for_file(&path, "old\n").await;
        let rotated = dir.path().join("out.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        // Lines keep coming; once the check is due they go to a new file.
        let mut n = 0;
        let text = loop {
            n += 1;
            child
                .write_all(format!("line {n}\n").as_bytes())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok(text) = std::fs::read_to_string(&path) {
                break text;
            }
            assert!(n < 200, "the log was never created again");
        };
        let old = std::fs::read_to_string(&rotated).unwrap();
        // (A reloadLogs of a test running beside this one may have moved
        // the writing to the new file early.)
        assert!(old.starts_with("old\n"), "{old}");
        // Nothing lost or repeated between the two files.
        let all: Vec<String> = format!("{old}{text}").lines().map(String::from).collect();
        let expected: Vec<String> = std::iter::once("old".to_string())
            .chain((1..=all.len() - 1).map(|i| format!("line {i}")))
            .collect();
        assert_eq!(all, expected);
        drop(child);
        copier.await.unwrap();
    }

    /// The log of both streams gets whole lines: a line one stream has
    /// begun is not cut by the other's, and waits for its end.
    #[tokio::test]
    async fn two_streams_share_the_combined_log_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let (out_log, err_log) = (dir.path().join("out.log"), dir.path().join("err.log"));
        let all = dir.path().join("all.log");
        let copier = |pipe, path: &Path| {
            spawn_copier(
                pipe,
                LogTarget {
                    path: path.to_path_buf(),
                    combined: Some(all.clone()),
                    format: LineFormat::Raw,
                    rotate: None,
                    freeze: None,
                },
            )
        };
        let (mut out, out_pipe) = tokio::io::duplex(64);
        let (mut err, err_pipe) = tokio::io::duplex(64);
        let copiers = [copier(out_pipe, &out_log), copier(err_pipe, &err_log)];
        out.write_all(b"out-a").await.unwrap();
        wait_for_file(&out_log, "out-a").await;
        err.write_all(b"err-1\n").await.unwrap();
        wait_for_file(&all, "err-1\n").await;
        out.write_all(b"-b\nunfinished").await.unwrap();
        wait_for_file(&all, "out-a-b\n").await;
        drop((out, err));
        for c in copiers {
            c.await.unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&all).unwrap(),
            "err-1\nout-a-b\nunfinished\n"
        );
        assert_eq!(
            std::fs::read_to_string(&out_log).unwrap(),
            "out-a-b\nunfinished\n"
        );
        assert_eq!(std::fs::read_to_string(&err_log).unwrap(), "err-1\n");
    }

    /// reloadLogs: a removed log is created again before the answer, and
    /// what follows goes there.
    #[tokio::test]
    async fn reopening_recreates_a_removed_log_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let all = dir.path().join("all.log");
        let (mut child, pipe) = tokio::io::duplex(64);
        let copier = spawn_copier(
            pipe,
            LogTarget {
                path: path.clone(),
                combined: Some(all.clone()),
                format: LineFormat::Raw,
                rotate: None,
                freeze: None,
            },
        );
        child.write_all(b"before\n").await.unwrap();
        wait_for_file(&all, "before\n").await;
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(&all, dir.path().join("all.log.1")).unwrap();
        assert!(log_reopen::reopen_all().await >= 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        assert_eq!(std::fs::read_to_string(&all).unwrap(), "");
        child.write_all(b"after\n").await.unwrap();
        drop(child);
        copier.await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        assert_eq!(std::fs::read_to_string(&all).unwrap(), "after\n");
    }

    async fn wait_for_file(path: &Path, contains: &str) -> String {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(path) {
                if text.contains(contains) {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} never contained {contains:?}", path.display());
    }
}
