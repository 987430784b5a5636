//! JSON-lines framing: one message per line, `\n`-terminated, UTF-8 JSON.
//!
//! [`encode`] and [`decode`] turn messages into lines and back;
//! [`LineBuffer`] cuts a byte stream into lines for every reader of a peer
//! (daemon, CLI, addon), with [`read_line`] and `read_line_async` (feature
//! `tokio`) wrapping it for buffered readers.

mod line_buffer;
#[cfg(test)]
mod proptests;
mod read;

pub use line_buffer::{LineBuffer, Lines};
pub use read::read_line;
#[cfg(feature = "tokio")]
pub use read::read_line_async;

use serde::{de::DeserializeOwned, Serialize};

/// Longest line either side accepts. A peer that sends more is misbehaving;
/// refusing it keeps a daemon's memory bounded whatever a client sends.
pub const MAX_LINE: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("message is not valid JSON for this protocol: {0}")]
    Json(#[from] serde_json::Error),
    #[error("message longer than {MAX_LINE} bytes")]
    TooLong,
}

/// Serialises `msg` as one line, newline included.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising our own plain data types cannot fail (no maps with
    // non-string keys, no failing Serialize impls).
    let mut out = serde_json::to_vec(msg).expect("protocol types always serialise");
    out.push(b'\n');
    out
}

/// Parses one line (with or without its trailing newline), of at most
/// [`MAX_LINE`] bytes without it, as [`LineBuffer`] counts.
pub fn decode<T: DeserializeOwned>(line: &[u8]) -> Result<T, FrameError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.len() > MAX_LINE {
        return Err(FrameError::TooLong);
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(serde_json::from_slice(line)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Reply, Request, Target};

    #[test]
    fn round_trips_a_request() {
        let req = Request::Stop {
            target: Target::from("api"),
        };
        let line = encode(&req);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let back: Request = decode(&line).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(decode::<Request>(b"{\"cmd\":\"no_such\"}\n").is_err());
        assert!(decode::<Request>(b"\xff\xfe").is_err());
        assert!(decode::<Reply>(b"").is_err());
        let huge = vec![b' '; MAX_LINE + 1];
        assert!(matches!(decode::<Request>(&huge), Err(FrameError::TooLong)));
    }
}
