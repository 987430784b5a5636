//! Reading one line at a time from a buffered reader, blocking (std) or
//! async (tokio, with the `tokio` feature), through [`LineBuffer`].
//!
//! Both return `Ok(true)` with the line in `buf` (cleared first, newline
//! removed), `Ok(false)` at end of stream, and an
//! [`io::ErrorKind::InvalidData`] error for a line longer than
//! [`MAX_LINE`](super::MAX_LINE): the peer is broken or hostile, and the
//! stream is no longer at a line boundary, so the caller drops it.

use super::LineBuffer;
use std::io::{self, BufRead};

/// Reads one line from a blocking reader.
pub fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut lines = LineBuffer::new();
    loop {
        let chunk = r.fill_buf()?;
        let (used, done) = step(&mut lines, chunk, buf);
        r.consume(used);
        if let Some(done) = done {
            return done;
        }
    }
}

/// Reads one line from an async reader.
#[cfg(feature = "tokio")]
pub async fn read_line_async<R>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<bool>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    let mut lines = LineBuffer::new();
    loop {
        let chunk = r.fill_buf().await?;
        let (used, done) = step(&mut lines, chunk, buf);
        r.consume(used);
        if let Some(done) = done {
            return done;
        }
    }
}

/// Feeds one chunk (empty at end of stream). Returns the bytes to consume
/// and, once the line is settled, the reader's result.
fn step(
    lines: &mut LineBuffer,
    chunk: &[u8],
    buf: &mut Vec<u8>,
) -> (usize, Option<io::Result<bool>>) {
    buf.clear();
    if chunk.is_empty() {
        return match lines.finish() {
            Some(last) => {
                *buf = last;
                (0, Some(Ok(true)))
            }
            None => (0, Some(Ok(false))),
        };
    }
    match lines.feed(chunk) {
        (used, None) => (used, None),
        (used, Some(Ok(line))) => {
            *buf = line;
            (used, Some(Ok(true)))
        }
        (used, Some(Err(e))) => (
            used,
            Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::MAX_LINE;
    use proptest::prelude::*;
    use std::io::BufReader;

    fn all_lines(data: &[u8], capacity: usize) -> io::Result<Vec<Vec<u8>>> {
        let mut r = BufReader::with_capacity(capacity, data);
        let (mut buf, mut got) = (Vec::new(), Vec::new());
        while read_line(&mut r, &mut buf)? {
            got.push(buf.clone());
        }
        Ok(got)
    }

    #[test]
    fn splits_lines_and_keeps_a_final_partial_one() {
        let got = all_lines(b"one\ntwo\n\nthree", 2).unwrap();
        assert_eq!(got, [&b"one"[..], b"two", b"", b"three"]);
    }

    #[test]
    fn refuses_an_endless_line() {
        let err = all_lines(&vec![b'x'; MAX_LINE + 10], 8192).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn takes_a_line_of_exactly_the_limit() {
        let mut data = vec![b'x'; MAX_LINE];
        data.push(b'\n');
        assert_eq!(all_lines(&data, 8192).unwrap()[0].len(), MAX_LINE);
    }

    proptest! {
        #[test]
        fn any_buffer_size_reads_the_lines_of_the_input(
            data in prop::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..300),
            capacity in 1usize..40,
        ) {
            let mut want: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
            if want.last().is_some_and(|l| l.is_empty()) {
                want.pop();
            }
            prop_assert_eq!(all_lines(&data, capacity).unwrap(), want);
        }
    }

    #[cfg(feature = "tokio")]
    mod in_tokio {
        use super::*;
        use tokio::io::BufReader;

        #[tokio::test]
        async fn splits_lines_and_keeps_a_final_partial_one() {
            let data: &[u8] = b"one\ntwo\nthree";
            let mut r = BufReader::with_capacity(2, data);
            let (mut buf, mut got) = (Vec::new(), Vec::new());
            while read_line_async(&mut r, &mut buf).await.unwrap() {
                got.push(String::from_utf8(buf.clone()).unwrap());
            }
            assert_eq!(got, ["one", "two", "three"]);
        }

        #[tokio::test]
        async fn refuses_an_endless_line() {
            let data = vec![b'x'; MAX_LINE + 10];
            let mut r = BufReader::new(&data[..]);
            let err = read_line_async(&mut r, &mut Vec::new()).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
    }
}
