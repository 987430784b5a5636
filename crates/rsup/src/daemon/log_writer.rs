//! Copies a child's stdout or stderr into its log file, optionally putting a
//! timestamp in front of every line.
//!
//! The file is opened in append mode at every launch, so several instances
//! can share one file (`merge_logs`) and an external rotation that renames
//! the file is picked up at the next restart.

use chrono::Local;
use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

/// Read buffer of a new copier. Most processes write little, and a
/// thousand quiet instances should not hold 32 KB of buffers each.
const FIRST_READ: usize = 512;
/// A copier whose reads keep filling its buffer doubles it, up to this.
const MAX_READ: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct LogTarget {
    pub path: PathBuf,
    /// chrono format of the line prefix; `None` writes lines unchanged.
    pub timestamp_format: Option<String>,
}

/// Starts copying `stream` into `target` until the stream ends (the
/// process and every descendant holding the pipe have closed it).
pub fn spawn_copier<R>(mut stream: R, target: LogTarget) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut file = match open_log(&target.path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("cannot open log {}: {e}", target.path.display());
                None
            }
        };
        let mut stamper = Stamper::new(target.timestamp_format);
        let mut buf = vec![0u8; FIRST_READ];
        loop {
            // Keep reading even without a file: a child blocked on a full
            // pipe would hang.
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let full = n == buf.len();
            if let Some(f) = file.as_mut() {
                let out = stamper.stamp(&buf[..n]);
                if let Err(e) = f.write_all(&out) {
                    tracing::warn!("writing {}: {e}", target.path.display());
                    file = None;
                }
            }
            if full && buf.len() < MAX_READ {
                buf.resize(buf.len() * 2, 0);
            }
        }
        // A last line without its newline still ends the record cleanly.
        if let (Some(f), true) = (file.as_mut(), stamper.mid_line) {
            let _ = f.write_all(b"\n");
        }
    })
}

pub fn open_log(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Inserts a timestamp at the start of each line of a byte stream that
/// arrives in arbitrary chunks.
struct Stamper {
    format: Option<String>,
    mid_line: bool,
}

impl Stamper {
    fn new(format: Option<String>) -> Self {
        Stamper {
            format,
            mid_line: false,
        }
    }

    fn stamp<'a>(&mut self, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(format) = &self.format else {
            self.mid_line = chunk.last() != Some(&b'\n');
            return Cow::Borrowed(chunk);
        };
        let prefix = format!("{}: ", Local::now().format(format));
        let mut out = Vec::with_capacity(chunk.len() + prefix.len() * 2);
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            if !self.mid_line {
                out.extend_from_slice(prefix.as_bytes());
            }
            out.extend_from_slice(piece);
            self.mid_line = piece.last() != Some(&b'\n');
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_each_line_once_across_chunks() {
        let mut s = Stamper::new(Some("T".into()));
        let mut out = s.stamp(b"a\nb").into_owned();
        out.extend_from_slice(&s.stamp(b"c\n\nd\n"));
        assert_eq!(String::from_utf8(out).unwrap(), "T: a\nT: bc\nT: \nT: d\n");
    }

    #[test]
    fn passes_bytes_through_without_format() {
        let mut s = Stamper::new(None);
        assert_eq!(&*s.stamp(b"x\ny"), b"x\ny");
        assert!(s.mid_line);
    }

    #[tokio::test]
    async fn copies_everything_and_terminates_the_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.log");
        let data: &[u8] = b"first\nsecond";
        spawn_copier(
            data,
            LogTarget {
                path: path.clone(),
                timestamp_format: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
    }

    #[tokio::test]
    async fn copies_output_much_larger_than_the_first_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let (mut tx, rx) = tokio::io::duplex(FIRST_READ * 3);
        let copier = spawn_copier(
            rx,
            LogTarget {
                path: path.clone(),
                timestamp_format: Some("T".into()),
            },
        );
        // One line far longer than any buffer, then many short ones, in
        // writes of every size.
        let mut data = vec![b'x'; MAX_READ * 5 + 7];
        data.push(b'\n');
        for i in 0..2000 {
            data.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        use tokio::io::AsyncWriteExt;
        for piece in data.chunks(FIRST_READ - 1) {
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
}
