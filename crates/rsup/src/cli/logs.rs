//! `rsup logs`: printing and following instances' log files.
//!
//! The CLI reads the files itself rather than asking the daemon to stream
//! them, so `rsup logs` works the same whether or not the daemon is busy.
//! Following polls the files: it is portable, needs no dependency, and a
//! delay of a poll interval is invisible to someone reading logs.

use crate::log_tail::last_lines;
use chrono::{Local, SecondsFormat, Utc};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How much of a file is read at a time when looking for its last lines.
const TAIL_CHUNK: usize = 64 * 1024;
const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// How often `logs` asks which processes its target names now.
const RESCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Most bytes taken from one file per poll, so a burst of output cannot
/// exhaust memory; the rest is read on the next round, without sleeping.
const MAX_READ_PER_POLL: u64 = 1 << 20;
/// A line this long without a newline is printed anyway rather than held.
const MAX_PENDING: usize = 1 << 20;
/// The time in front of PM2's `--format` lines (its `YYYY-MM-DD-HH:mm:ssZZ`).
const FORMAT_TIMESTAMP: &str = "%Y-%m-%d-%H:%M:%S%z";

/// Which output a log file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
    /// The daemon's own log.
    Daemon,
}

/// One log file of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSource {
    /// Printed before each line, e.g. `0|api`.
    pub label: String,
    pub path: PathBuf,
    pub stream: Stream,
    /// The instance's id and app name, for `--json` and `--format`.
    pub id: u32,
    pub name: String,
}

/// How lines are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    /// `0|api | line`; streamed lines get the time in front in this chrono
    /// format, if any (`--timestamp`).
    Prefixed { timestamp: Option<String> },
    /// The lines alone, those of standard error on stderr (`--raw`).
    Raw,
    /// PM2's `--json`: one object per streamed line.
    Json,
    /// PM2's `--format`: `timestamp=… app=… id=… type=… message=…`.
    Format,
}

/// Where lines go, and how.
pub struct Printer<O: Write, E: Write> {
    pub out: O,
    pub err: E,
    style: Style,
    /// Labels are padded to this.
    width: usize,
    /// Shown on a grey background wherever it occurs in streamed lines
    /// (`--highlight`).
    pub highlight: Option<Vec<u8>>,
}

impl<O: Write, E: Write> Printer<O, E> {
    pub fn new(out: O, err: E, style: Style) -> Self {
        Printer {
            out,
            err,
            style,
            width: 0,
            highlight: None,
        }
    }

    fn header(&mut self, log: &LogFile, lines: usize) -> io::Result<()> {
        writeln!(self.out, "{} last {lines} lines:", log.path.display())
    }

    /// A line of a file's last lines.
    fn tail_line(&mut self, log: &LogFile, line: &[u8]) -> io::Result<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.style == Style::Raw {
            return self.raw(log, line);
        }
        write!(self.out, "{:<w$} | ", log.label, w = self.width)?;
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }

    /// A line written since `logs` began.
    fn streamed_line(&mut self, log: &LogFile, line: &[u8]) -> io::Result<()> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let stream = match log.stream {
            Stream::Out => "out",
            Stream::Err => "err",
            Stream::Daemon => "",
        };
        match &self.style {
            Style::Raw => self.raw(log, line),
            Style::Prefixed { timestamp } => {
                if let Some(format) = timestamp {
                    write!(self.out, "{} ", Local::now().format(format))?;
                }
                write!(self.out, "{:<w$} | ", log.label, w = self.width)?;
                // Logs need not be UTF-8; pass the bytes through untouched.
                match &self.highlight {
                    Some(word) => write_highlighted(&mut self.out, line, word)?,
                    None => self.out.write_all(line)?,
                }
                self.out.write_all(b"\n")
            }
            Style::Json => {
                #[derive(serde::Serialize)]
                struct Record<'a> {
                    message: &'a str,
                    timestamp: String,
                    #[serde(rename = "type")]
                    stream: &'a str,
                    process_id: u32,
                    app_name: &'a str,
                }
                let record = Record {
                    message: &String::from_utf8_lossy(line),
                    timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
                    stream,
                    process_id: log.id,
                    app_name: &log.name,
                };
                serde_json::to_writer(&mut self.out, &record)?;
                self.out.write_all(b"\n")
            }
            Style::Format => {
                write!(
                    self.out,
                    "timestamp={} app={} id={} type={} message=",
                    Local::now().format(FORMAT_TIMESTAMP),
                    log.name,
                    log.id,
                    if log.stream == Stream::Err {
                        "error"
                    } else {
                        stream
                    },
                )?;
                self.out.write_all(line)?;
                self.out.write_all(b"\n")
            }
        }
    }

    fn raw(&mut self, log: &LogFile, line: &[u8]) -> io::Result<()> {
        let to: &mut dyn Write = if log.stream == Stream::Err {
            &mut self.err
        } else {
            &mut self.out
        };
        to.write_all(line)?;
        to.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.err.flush()
    }
}

/// For each log file, a header (`/path/api-out.log last 15 lines:`) and its
/// last `lines` lines, each prefixed by its label. Files that do not exist
/// yet are skipped; a file shared by several sources is printed once.
pub fn print_tail<O: Write, E: Write>(
    sources: &[LogSource],
    lines: usize,
    p: &mut Printer<O, E>,
) -> io::Result<()> {
    let files = group_by_path(sources);
    p.width = label_width(&files);
    for f in &files {
        let mut file = match File::open(&f.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(with_path(e, &f.path)),
        };
        let end = file.metadata().map_err(|e| with_path(e, &f.path))?.len();
        print_block(&mut file, f, end, lines, p)?;
    }
    p.flush()
}

/// Prints lines appended to the files from now on until `stop` is set.
///
/// Copes with a file that appears later (read from its start), is
/// truncated (read again from its start) or is replaced, as by log rotation
/// (the rest of the old file is read, then the new one from its start). A
/// line is printed once its newline has been written.
/// The log files of the processes a target names now, each with the
/// offset its new output starts at (see [`super::log_baseline`]); asked
/// every [`RESCAN_INTERVAL`] while following, so that processes started
/// after `logs` began are followed too, as PM2's `logs` does.
pub type Rescan = Box<dyn FnMut() -> Vec<(LogSource, u64)> + Send>;

pub fn follow<O: Write, E: Write>(
    sources: &[LogSource],
    p: &mut Printer<O, E>,
    stop: &AtomicBool,
    rescan: Option<Rescan>,
) -> io::Result<()> {
    Follower::new(sources)?.with_rescan(rescan).run(p, stop)
}

/// `rsup logs` without `--nostream`: the last `lines` lines of each file,
/// then the lines that follow, until `stop` is set.
///
/// The files are opened before their tails are printed and followed from
/// exactly where the tails ended, so no line is lost or printed twice.
pub fn tail_then_follow<O: Write, E: Write>(
    sources: &[LogSource],
    lines: usize,
    p: &mut Printer<O, E>,
    stop: &AtomicBool,
    rescan: Option<Rescan>,
) -> io::Result<()> {
    let mut follower = Follower::new(sources)?.with_rescan(rescan);
    p.width = follower.width;
    for t in &mut follower.tracked {
        if let Some(file) = &mut t.file {
            print_block(file, &t.log, t.offset, lines, p)?;
        }
    }
    p.flush()?;
    follower.run(p, stop)
}

/// `line`, with each `word` in it on a grey background (chalk's
/// `bgBlackBright`, which PM2 uses).
fn write_highlighted(out: &mut impl Write, line: &[u8], word: &[u8]) -> io::Result<()> {
    let mut rest = line;
    while let Some(at) = (!word.is_empty())
        .then(|| rest.windows(word.len()).position(|w| w == word))
        .flatten()
    {
        out.write_all(&rest[..at])?;
        out.write_all(b"\x1b[100m")?;
        out.write_all(word)?;
        out.write_all(b"\x1b[49m")?;
        rest = &rest[at + word.len()..];
    }
    out.write_all(rest)
}

/// One file to print, with the label its lines get.
struct LogFile {
    path: PathBuf,
    label: String,
    stream: Stream,
    id: u32,
    name: String,
}

/// Sources by path, in the order first named.
fn group_by_path(sources: &[LogSource]) -> Vec<LogFile> {
    let mut firsts: Vec<&LogSource> = Vec::new();
    for s in sources {
        if !firsts.iter().any(|f| f.path == s.path) {
            firsts.push(s);
        }
    }
    firsts
        .into_iter()
        .map(|first| {
            let labels: Vec<&str> = sources
                .iter()
                .filter(|s| s.path == first.path)
                .map(|s| s.label.as_str())
                .collect();
            LogFile {
                path: first.path.clone(),
                label: shared_label(&labels),
                stream: first.stream,
                id: first.id,
                name: first.name.clone(),
            }
        })
        .collect()
}

/// Label for a file several sources write to (merged logs). Its lines
/// cannot be told apart, so `0|api` would be a lie when `1|api` writes there
/// too: use the common app name when the labels are `id|name`.
fn shared_label(labels: &[&str]) -> String {
    let first = labels[0];
    if labels.iter().all(|l| *l == first) {
        return first.to_string();
    }
    let name = |l: &str| l.split_once('|').map(|(_, n)| n.to_string());
    match name(first) {
        Some(n) if labels.iter().all(|l| name(l).as_ref() == Some(&n)) => n,
        _ => first.to_string(),
    }
}

fn label_width(files: &[LogFile]) -> usize {
    files
        .iter()
        .map(|f| f.label.chars().count())
        .max()
        .unwrap_or(0)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The header and last `lines` lines of the first `end` bytes of `file`.
fn print_block<O: Write, E: Write>(
    file: &mut File,
    log: &LogFile,
    end: u64,
    lines: usize,
    p: &mut Printer<O, E>,
) -> io::Result<()> {
    if lines == 0 {
        return Ok(());
    }
    p.header(log, lines)?;
    let data = last_lines(file, lines, end, TAIL_CHUNK).map_err(|e| with_path(e, &log.path))?;
    for line in split_lines(&data) {
        p.tail_line(log, line)?;
    }
    writeln!(p.out)
}

/// Lines of `data`, without their newlines; no empty line after a final
/// newline.
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty = data.is_empty();
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.split(|b| *b == b'\n').filter(move |_| !empty)
}

struct Follower {
    tracked: Vec<Tracked>,
    width: usize,
    rescan: Option<Rescan>,
}

impl Follower {
    /// Opens every file that exists now, positioned at its current end.
    fn new(sources: &[LogSource]) -> io::Result<Follower> {
        let files = group_by_path(sources);
        let width = label_width(&files);
        let tracked = files
            .into_iter()
            .map(Tracked::at_end)
            .collect::<io::Result<_>>()?;
        Ok(Follower {
            tracked,
            width,
            rescan: None,
        })
    }

    fn with_rescan(mut self, rescan: Option<Rescan>) -> Follower {
        self.rescan = rescan;
        self
    }

    /// Starts following the files of processes that appeared since the
    /// last rescan, each from where its new output begins.
    fn add_new_files(&mut self) {
        let Some(rescan) = &mut self.rescan else {
            return;
        };
        let found = rescan();
        let fresh: Vec<LogSource> = found
            .iter()
            .map(|(source, _)| source.clone())
            .filter(|s| !self.tracked.iter().any(|t| t.log.path == s.path))
            .collect();
        for log in group_by_path(&fresh) {
            let offset = found
                .iter()
                .find(|(s, _)| s.path == log.path)
                .map_or(0, |(_, offset)| *offset);
            self.width = self.width.max(log.label.chars().count());
            self.tracked.push(Tracked::at(log, offset));
        }
    }

    fn run<O: Write, E: Write>(
        &mut self,
        p: &mut Printer<O, E>,
        stop: &AtomicBool,
    ) -> io::Result<()> {
        p.width = self.width;
        let mut lines = Vec::new();
        let mut rescanned = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if rescanned.elapsed() >= RESCAN_INTERVAL {
                self.add_new_files();
                p.width = self.width;
                rescanned = std::time::Instant::now();
            }
            let mut more = false;
            for t in &mut self.tracked {
                more |= t.poll(&mut lines);
                for line in lines.drain(..) {
                    p.streamed_line(&t.log, &line)?;
                }
            }
            p.flush()?;
            if !more {
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        Ok(())
    }
}

/// Where following one file has got to.
struct Tracked {
    log: LogFile,
    /// `None` until the file exists.
    file: Option<File>,
    /// Device and inode of `file`, to notice when the path names another.
    id: (u64, u64),
    /// Bytes of `file` already consumed.
    offset: u64,
    /// The start of a line whose newline has not been written yet.
    pending: Vec<u8>,
}

impl Tracked {
    fn at_end(log: LogFile) -> io::Result<Tracked> {
        let mut t = Tracked {
            log,
            file: None,
            id: (0, 0),
            offset: 0,
            pending: Vec::new(),
        };
        match File::open(&t.log.path) {
            Ok(file) => {
                let meta = file.metadata().map_err(|e| with_path(e, &t.log.path))?;
                t.id = (meta.dev(), meta.ino());
                t.offset = meta.len();
                t.file = Some(file);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(with_path(e, &t.log.path)),
        }
        Ok(t)
    }

    /// Appends to `lines` the lines completed since the last poll. Returns
    /// whether more data is waiting already. Read errors are not fatal: the
    /// file is reopened on a later poll.
    fn poll(&mut self, lines: &mut Vec<Vec<u8>>) -> bool {
        if self.file.is_none() {
            // Appeared since the last poll: everything in it is new.
            self.open_from_start();
        }
        let Some(file) = &self.file else {
            return false;
        };
        match std::fs::metadata(&self.log.path) {
            Ok(m) if (m.dev(), m.ino()) != self.id => {
                // Replaced (rotated): finish what was written to the old
                // file, then start on the new one.
                while self.read_available(lines) {}
                self.flush_pending(lines);
                self.open_from_start();
            }
            // Same file; or the path is gone for now (mid-rotation), and
            // what we hold may still be written to.
            _ => {
                let len = match file.metadata() {
                    Ok(m) => m.len(),
                    Err(_) => {
                        self.file = None;
                        return false;
                    }
                };
                if len < self.offset {
                    // Truncated (copytruncate rotation, `rsup flush`).
                    self.flush_pending(lines);
                    self.offset = 0;
                }
            }
        }
        self.read_available(lines)
    }

    /// A file first seen while following: read from `offset` on (from
    /// its start if it does not exist yet).
    fn at(log: LogFile, offset: u64) -> Tracked {
        let mut t = Tracked {
            log,
            file: None,
            id: (0, 0),
            offset: 0,
            pending: Vec::new(),
        };
        t.open_from_start();
        if let Some(file) = &t.file {
            let len = file.metadata().map_or(0, |m| m.len());
            t.offset = offset.min(len);
        }
        t
    }

    fn open_from_start(&mut self) {
        self.file = None;
        self.offset = 0;
        if let Ok(file) = File::open(&self.log.path) {
            if let Ok(meta) = file.metadata() {
                self.id = (meta.dev(), meta.ino());
                self.file = Some(file);
            }
        }
    }

    /// Reads from `offset` on, at most `MAX_READ_PER_POLL` bytes; returns
    /// whether that limit was reached.
    fn read_available(&mut self, lines: &mut Vec<Vec<u8>>) -> bool {
        let Some(file) = &mut self.file else {
            return false;
        };
        let mut buf = Vec::new();
        let read = file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.take(MAX_READ_PER_POLL).read_to_end(&mut buf));
        if read.is_err() {
            self.file = None;
            return false;
        }
        self.offset += buf.len() as u64;
        self.take_lines(&buf, lines);
        buf.len() as u64 == MAX_READ_PER_POLL
    }

    fn take_lines(&mut self, data: &[u8], lines: &mut Vec<Vec<u8>>) {
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(&rest[..nl]);
            lines.push(line);
            rest = &rest[nl + 1..];
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() >= MAX_PENDING {
            self.flush_pending(lines);
        }
    }

    /// The held partial line, printed because no newline will come for it.
    fn flush_pending(&mut self, lines: &mut Vec<Vec<u8>>) {
        if !self.pending.is_empty() {
            lines.push(std::mem::take(&mut self.pending));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    fn source(label: &str, path: &Path) -> LogSource {
        let (id, name) = label.split_once('|').unwrap_or(("0", label));
        LogSource {
            label: label.into(),
            path: path.to_path_buf(),
            stream: Stream::Out,
            id: id.parse().unwrap_or(0),
            name: name.into(),
        }
    }

    fn err_source(label: &str, path: &Path) -> LogSource {
        LogSource {
            stream: Stream::Err,
            ..source(label, path)
        }
    }

    fn append(path: &Path, data: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(data.as_bytes()).unwrap();
    }

    fn tail_string(sources: &[LogSource], lines: usize) -> String {
        let mut p = Printer::new(Vec::new(), io::sink(), Style::Prefixed { timestamp: None });
        print_tail(sources, lines, &mut p).unwrap();
        String::from_utf8(p.out).unwrap()
    }

    /// The last `n` lines the simple way, to check `last_lines` against.
    fn naive_last(data: &[u8], n: usize) -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        if all.last().is_some_and(Vec::is_empty) {
            all.pop();
        }
        all[all.len().saturating_sub(n)..].to_vec()
    }

    #[test]
    fn tail_prints_exactly_the_last_lines_of_a_large_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        let body: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        assert!(body.len() > 2 * TAIL_CHUNK);
        append(&path, &body);

        let got = tail_string(&[source("0|api", &path)], 15);
        let mut want = format!("{} last 15 lines:\n", path.display());
        for i in 19_985..20_000 {
            want.push_str(&format!("0|api | line {i}\n"));
        }
        want.push('\n');
        assert_eq!(got, want);
    }

    #[test]
    fn last_lines_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let cases: [&[u8]; 7] = [
            b"",
            b"\n",
            b"\n\n\n",
            b"one",
            b"one\ntwo\nthree",
            b"one\ntwo\nthree\n",
            b"a\n\nbb\nccc\n\ndddd\neeeee\n",
        ];
        for data in cases {
            std::fs::write(&path, data).unwrap();
            for chunk in [1, 2, 3, 7, 64] {
                for n in 0..8 {
                    let mut f = File::open(&path).unwrap();
                    let got = last_lines(&mut f, n, data.len() as u64, chunk).unwrap();
                    let got: Vec<Vec<u8>> = split_lines(&got).map(<[u8]>::to_vec).collect();
                    assert_eq!(got, naive_last(data, n), "{data:?} n={n} chunk={chunk}");
                }
            }
        }
    }

    #[test]
    fn tail_handles_a_last_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        append(&path, "a\nb\nc");
        let got = tail_string(&[source("0|api", &path)], 2);
        assert!(got.ends_with("0|api | b\n0|api | c\n\n"), "{got:?}");
    }

    #[test]
    fn tail_skips_missing_files_and_prints_shared_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let merged = dir.path().join("api.log");
        let missing = dir.path().join("web-out.log");
        append(&merged, "from both\n");
        let sources = [
            source("0|api", &merged),
            source("0|api", &merged),
            source("1|api", &merged),
            source("2|web", &missing),
        ];
        let got = tail_string(&sources, 10);
        assert_eq!(
            got,
            format!("{} last 10 lines:\napi   | from both\n\n", merged.display())
        );
        assert_eq!(tail_string(&sources[3..], 10), "");
        assert_eq!(tail_string(&sources, 0), "");
    }

    #[test]
    fn labels_are_padded_to_align() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let b = dir.path().join("b.log");
        append(&a, "x\n");
        append(&b, "y\r\n");
        let got = tail_string(&[source("0|a", &a), source("10|longer", &b)], 1);
        assert!(got.contains("\n0|a       | x\n"), "{got:?}");
        assert!(got.contains("\n10|longer | y\n"), "{got:?}");
    }

    #[test]
    fn shared_label_prefers_the_app_name() {
        assert_eq!(shared_label(&["0|api", "0|api"]), "0|api");
        assert_eq!(shared_label(&["0|api", "1|api"]), "api");
        assert_eq!(shared_label(&["0|api", "1|web"]), "0|api");
        assert_eq!(shared_label(&["x", "y"]), "x");
    }

    fn tracked(path: &Path) -> Tracked {
        Tracked::at_end(LogFile {
            path: path.to_path_buf(),
            label: "0|api".into(),
            stream: Stream::Out,
            id: 0,
            name: "api".into(),
        })
        .unwrap()
    }

    fn poll(t: &mut Tracked) -> Vec<String> {
        let mut lines = Vec::new();
        t.poll(&mut lines);
        lines
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn poll_holds_partial_lines_until_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        append(&path, "old\n");
        let mut t = tracked(&path);
        assert!(poll(&mut t).is_empty());
        append(&path, "one\npar");
        assert_eq!(poll(&mut t), ["one"]);
        assert!(poll(&mut t).is_empty());
        append(&path, "tial\ntwo\n");
        assert_eq!(poll(&mut t), ["partial", "two"]);
    }

    #[test]
    fn poll_restarts_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        append(&path, "a long line before truncation\n");
        let mut t = tracked(&path);
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(poll(&mut t), ["new"]);
        append(&path, "next\n");
        assert_eq!(poll(&mut t), ["next"]);
    }

    #[test]
    fn poll_finishes_a_rotated_file_then_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        append(&path, "old\n");
        let mut t = tracked(&path);
        append(&path, "last words\nunfinished");
        std::fs::rename(&path, dir.path().join("api-out.log.1")).unwrap();
        // Mid-rotation the path is missing: keep reading the old file.
        assert_eq!(poll(&mut t), ["last words"]);
        append(&path, "fresh\n");
        assert_eq!(poll(&mut t), ["unfinished", "fresh"]);
    }

    #[test]
    fn poll_reads_a_file_that_appears_later_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        let mut t = tracked(&path);
        assert!(poll(&mut t).is_empty());
        append(&path, "first\n");
        assert_eq!(poll(&mut t), ["first"]);
    }

    #[derive(Clone, Default)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);

    impl SharedBuf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }

        /// Waits, within a deadline, until the output contains `needle`.
        fn wait_for(&self, needle: &str) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.text().contains(needle) {
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {needle:?}; output so far:\n{}",
                    self.text()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    impl Write for SharedBuf {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    type TestPrinter = Printer<SharedBuf, SharedBuf>;

    /// Runs `f` in a thread with a stop flag and a printer whose stdout
    /// and stderr both go to one shared buffer.
    fn spawn<F>(
        f: F,
    ) -> (
        SharedBuf,
        Arc<AtomicBool>,
        std::thread::JoinHandle<io::Result<()>>,
    )
    where
        F: FnOnce(&mut TestPrinter, &AtomicBool) -> io::Result<()> + Send + 'static,
    {
        spawn_styled(Style::Prefixed { timestamp: None }, f)
    }

    fn spawn_styled<F>(
        style: Style,
        f: F,
    ) -> (
        SharedBuf,
        Arc<AtomicBool>,
        std::thread::JoinHandle<io::Result<()>>,
    )
    where
        F: FnOnce(&mut TestPrinter, &AtomicBool) -> io::Result<()> + Send + 'static,
    {
        let buf = SharedBuf::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let mut p = Printer::new(buf.clone(), buf.clone(), style);
            let stop = stop.clone();
            std::thread::spawn(move || f(&mut p, &stop))
        };
        (buf, stop, handle)
    }

    /// Follows `sources`, opened before returning so that anything written
    /// afterwards counts as new.
    fn spawn_follow(
        sources: &[LogSource],
    ) -> (
        SharedBuf,
        Arc<AtomicBool>,
        std::thread::JoinHandle<io::Result<()>>,
    ) {
        spawn_follow_styled(Style::Prefixed { timestamp: None }, sources)
    }

    fn spawn_follow_styled(
        style: Style,
        sources: &[LogSource],
    ) -> (
        SharedBuf,
        Arc<AtomicBool>,
        std::thread::JoinHandle<io::Result<()>>,
    ) {
        let mut follower = Follower::new(sources).unwrap();
        spawn_styled(style, move |p, stop| follower.run(p, stop))
    }

    #[test]
    fn follow_prints_appended_lines() {
        let dir = tempfile::tempdir().unwrap();
        let out_log = dir.path().join("api-out.log");
        let err_log = dir.path().join("api-error.log");
        append(&out_log, "already there\n");
        let (buf, stop, handle) =
            spawn_follow(&[source("0|api", &out_log), source("0|api", &err_log)]);
        append(&out_log, "hello\npart");
        buf.wait_for("0|api | hello\n");
        append(&err_log, "oops\n");
        buf.wait_for("0|api | oops\n");
        append(&out_log, "ial\n");
        buf.wait_for("0|api | partial\n");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        let text = buf.text();
        assert!(!text.contains("already there"), "{text}");
        assert!(!text.contains("| part\n"), "{text}");
    }

    #[test]
    fn follow_survives_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        append(&path, "some earlier output, longer than what follows\n");
        let (buf, stop, handle) = spawn_follow(&[source("0|api", &path)]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, "after flush\n");
        buf.wait_for("0|api | after flush\n");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        assert!(!buf.text().contains("earlier"));
    }

    #[test]
    fn follow_moves_to_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        append(&path, "old\n");
        let (buf, stop, handle) = spawn_follow(&[source("0|api", &path)]);
        append(&path, "before rotation\n");
        buf.wait_for("0|api | before rotation\n");
        std::fs::rename(&path, dir.path().join("api-out.log.1")).unwrap();
        append(&path, "after rotation\n");
        buf.wait_for("0|api | after rotation\n");
        append(&path, "and more\n");
        buf.wait_for("0|api | and more\n");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        assert_eq!(
            buf.text(),
            "0|api | before rotation\n0|api | after rotation\n0|api | and more\n"
        );
    }

    #[test]
    fn follow_picks_up_a_file_created_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        let (buf, stop, handle) = spawn_follow(&[source("0|api", &path)]);
        append(&path, "first words\n");
        buf.wait_for("0|api | first words\n");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
    }

    #[test]
    fn highlight_marks_every_occurrence() {
        let mut out = Vec::new();
        write_highlighted(&mut out, b"GET /a GET", b"GET").unwrap();
        assert_eq!(out, b"\x1b[100mGET\x1b[49m /a \x1b[100mGET\x1b[49m");
        let mut out = Vec::new();
        write_highlighted(&mut out, b"plain", b"").unwrap();
        assert_eq!(out, b"plain");
    }

    #[test]
    fn new_files_found_while_following_are_read_from_their_new_output() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a-out.log"), dir.path().join("b-out.log"));
        append(&b, "old\n");
        let found = vec![(source("1|b", &b), 4)];
        let mut follower = Follower::new(&[source("0|a", &a)])
            .unwrap()
            .with_rescan(Some(Box::new(move || found.clone())));
        append(&b, "new\n");
        let (buf, stop, handle) =
            spawn_styled(Style::Prefixed { timestamp: None }, move |p, stop| {
                follower.run(p, stop)
            });
        buf.wait_for("1|b | new\n");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        assert!(!buf.text().contains("old"));
    }

    #[test]
    fn follow_runs_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        append(&path, "before\n");
        let sources = [source("0|api", &path)];
        let (buf, stop, handle) = spawn(move |out, stop| follow(&sources, out, stop, None));
        // `follow` starts at the end of the file whenever its thread gets to
        // run, so keep writing until a line shows up.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut i = 0;
        while !buf.text().contains("| tick") {
            assert!(Instant::now() < deadline, "follow printed nothing");
            append(&path, &format!("tick {i}\n"));
            i += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        assert!(!buf.text().contains("before"));
    }

    #[test]
    fn tail_then_follow_neither_loses_nor_repeats_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-out.log");
        append(&path, "one\ntwo\nthree\n");
        let sources = [source("0|api", &path)];
        let (buf, stop, handle) =
            spawn(move |out, stop| tail_then_follow(&sources, 2, out, stop, None));
        buf.wait_for("last 2 lines:");
        append(&path, "four\n");
        buf.wait_for("0|api | four\n");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        assert_eq!(
            buf.text(),
            format!(
                "{} last 2 lines:\n0|api | two\n0|api | three\n\n0|api | four\n",
                path.display()
            )
        );
    }

    /// `--raw`: the lines alone, those of standard error on stderr; the
    /// headers stay, as in PM2.
    #[test]
    fn raw_lines_go_to_stdout_and_stderr_by_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (out_log, err_log) = (dir.path().join("o.log"), dir.path().join("e.log"));
        append(&out_log, "fine\n");
        append(&err_log, "broken\n");
        let mut p = Printer::new(Vec::new(), Vec::new(), Style::Raw);
        let sources = [source("0|api", &out_log), err_source("0|api", &err_log)];
        print_tail(&sources, 5, &mut p).unwrap();
        let (out, err) = (
            String::from_utf8(p.out).unwrap(),
            String::from_utf8(p.err).unwrap(),
        );
        assert_eq!(
            out,
            format!(
                "{} last 5 lines:\nfine\n\n{} last 5 lines:\n\n",
                out_log.display(),
                err_log.display()
            )
        );
        assert_eq!(err, "broken\n");
    }

    /// `--json`: PM2's objects, the line without its newline.
    #[test]
    fn json_style_streams_pm2_objects() {
        let dir = tempfile::tempdir().unwrap();
        let (out_log, err_log) = (dir.path().join("o.log"), dir.path().join("e.log"));
        let (buf, stop, handle) = spawn_follow_styled(
            Style::Json,
            &[source("4|api", &out_log), err_source("4|api", &err_log)],
        );
        append(&out_log, "hello \"you\"\r\n");
        buf.wait_for("hello");
        append(&err_log, "oops\n");
        buf.wait_for("oops");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        let records: Vec<serde_json::Value> = buf
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2);
        // PM2's key order.
        let first = buf.text().lines().next().unwrap().to_string();
        assert!(
            first.starts_with(r#"{"message":"hello \"you\"","timestamp":""#),
            "{first}"
        );
        assert!(
            first.ends_with(r#"","type":"out","process_id":4,"app_name":"api"}"#),
            "{first}"
        );
        assert_eq!(records[0]["message"], "hello \"you\"");
        assert_eq!(records[0]["type"], "out");
        assert_eq!(records[0]["process_id"], 4);
        assert_eq!(records[0]["app_name"], "api");
        assert!(records[0]["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(records[1]["message"], "oops");
        assert_eq!(records[1]["type"], "err");
    }

    /// `--format` and `--timestamp`: PM2's key=value lines, and the time in
    /// front of each streamed line.
    #[test]
    fn format_and_timestamp_styles() {
        let dir = tempfile::tempdir().unwrap();
        let err_log = dir.path().join("e.log");
        let (buf, stop, handle) =
            spawn_follow_styled(Style::Format, &[err_source("2|web", &err_log)]);
        append(&err_log, "oops\n");
        buf.wait_for("oops");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        let text = buf.text();
        assert!(text.starts_with("timestamp=20"), "{text}");
        assert!(
            text.ends_with(" app=web id=2 type=error message=oops\n"),
            "{text}"
        );

        let timestamp = Some("[at] %Y".to_string());
        let (buf, stop, handle) =
            spawn_follow_styled(Style::Prefixed { timestamp }, &[source("2|web", &err_log)]);
        append(&err_log, "again\n");
        buf.wait_for("again");
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        let year = Local::now().format("%Y").to_string();
        assert_eq!(buf.text(), format!("[at] {year} 2|web | again\n"));
    }
}
