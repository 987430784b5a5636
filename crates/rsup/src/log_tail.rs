//! The last lines of a log file, read from its end so a large log is never
//! loaded whole: what `rsup logs` prints first, and what a failed reload
//! shows of the new process.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The bytes of the last `n` lines among the first `end` bytes of `file`,
/// found by reading backwards `chunk` bytes at a time so a large log is
/// never loaded whole. A final line without a newline counts as a line.
pub fn last_lines(file: &mut File, n: usize, end: u64, chunk: usize) -> io::Result<Vec<u8>> {
    if n == 0 || end == 0 {
        return Ok(Vec::new());
    }
    let mut buf = vec![0; chunk];
    let mut pos = end;
    let mut start = 0;
    let mut newlines = 0;
    'scan: while pos > 0 {
        let len = chunk.min(usize::try_from(pos).unwrap_or(usize::MAX));
        pos -= len as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..len])?;
        for i in (0..len).rev() {
            let at = pos + i as u64;
            // The newline ending the last line does not start another one.
            if buf[i] == b'\n' && at != end - 1 {
                newlines += 1;
                if newlines == n {
                    start = at + 1;
                    break 'scan;
                }
            }
        }
    }
    file.seek(SeekFrom::Start(start))?;
    let mut data = Vec::new();
    file.take(end - start).read_to_end(&mut data)?;
    Ok(data)
}

/// The last `n` lines of the file at `path` as text, for messages; empty
/// when it cannot be read.
pub fn last_lines_text(path: &Path, n: usize) -> String {
    const CHUNK: usize = 8 * 1024;
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let end = file.metadata().map_or(0, |m| m.len());
    let data = last_lines(&mut file, n, end, CHUNK).unwrap_or_default();
    let text = String::from_utf8_lossy(&data);
    text.strip_suffix('\n').unwrap_or(&text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(last_lines_text(&path, 2), "two\nthree");
        assert_eq!(last_lines_text(&path, 9), "one\ntwo\nthree");
        assert_eq!(last_lines_text(&dir.path().join("none"), 2), "");
    }
}
