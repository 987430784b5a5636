//! Reading newline-framed messages with a length limit, for every channel
//! where the other side is not trusted (clients, children).

use rsup_proto::framing::MAX_LINE;
use std::io;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Reads one line into `buf` (cleared first). `Ok(false)` at end of stream.
/// A line longer than [`MAX_LINE`] is an error: the peer is broken or
/// hostile, and the caller drops the connection.
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            // A final unterminated line still counts as a message.
            return Ok(!buf.is_empty());
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > MAX_LINE + 1 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(take);
        if done {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    #[tokio::test]
    async fn splits_lines_and_keeps_a_final_partial_one() {
        let data: &[u8] = b"one\ntwo\nthree";
        let mut r = BufReader::with_capacity(2, data);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while read_line(&mut r, &mut buf).await.unwrap() {
            got.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(got, ["one\n", "two\n", "three"]);
    }

    #[tokio::test]
    async fn refuses_an_endless_line() {
        let data = vec![b'x'; MAX_LINE + 10];
        let mut r = BufReader::new(&data[..]);
        let mut buf = Vec::new();
        assert!(read_line(&mut r, &mut buf).await.is_err());
    }
}
