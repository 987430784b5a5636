//! Copies a child's stdout or stderr into its log file, optionally putting a
//! timestamp in front of every line.
//!
//! The file is opened in append mode at every launch, so several instances
//! can share one file (`merge_logs`) and an external rotation that renames
//! the file is picked up at the next restart.

use chrono::Local;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

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
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // Keep reading even without a file: a child blocked on a full
            // pipe would hang.
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(f) = file.as_mut() {
                let out = stamper.stamp(&buf[..n]);
                if let Err(e) = f.write_all(&out) {
                    tracing::warn!("writing {}: {e}", target.path.display());
                    file = None;
                }
            }
        }
        // A last line without its newline still ends the record cleanly.
        if let (Some(f), true) = (file.as_mut(), stamper.mid_line) {
            let _ = f.write_all(b"\n");
        }
    })
}

/// Opens a log file for appending, creating it (0640) when missing. In a
/// folder others can write, someone could have planted a symbolic link
/// there (to a file of ours, which would receive the app's output) or a
/// file of their own (which they could read): so a link is never followed
/// (O_NOFOLLOW) and an existing file must be this user's or root's. The
/// refusal says why, for the daemon's log. `/dev/stdout` and `/dev/stderr`
/// are links by nature and name the daemon's own output, as in containers.
pub fn open_log(path: &Path) -> std::io::Result<File> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::MetadataExt;
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
    let owner = file.metadata()?.uid();
    if !own_output && owner != nix::unistd::geteuid().as_raw() && owner != 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("it belongs to uid {owner}, and rsup writes logs only into files of its own user or root"),
        ));
    }
    Ok(file)
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

    fn stamp(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Some(format) = &self.format else {
            self.mid_line = chunk.last() != Some(&b'\n');
            return chunk.to_vec();
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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_each_line_once_across_chunks() {
        let mut s = Stamper::new(Some("T".into()));
        let mut out = s.stamp(b"a\nb");
        out.extend(s.stamp(b"c\n\nd\n"));
        assert_eq!(String::from_utf8(out).unwrap(), "T: a\nT: bc\nT: \nT: d\n");
    }

    #[test]
    fn passes_bytes_through_without_format() {
        let mut s = Stamper::new(None);
        assert_eq!(s.stamp(b"x\ny"), b"x\ny");
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
}
