//! Cutting a byte stream into `\n`-terminated lines, with a length limit.
//!
//! Push-based, so it serves every reader alike: the daemon's and the CLI's
//! buffered readers feed it what `fill_buf` returns, the addon what each
//! `recvmsg` returns.

use super::{FrameError, MAX_LINE};

/// Holds the unfinished line between chunks. It never holds more than the
/// limit, whatever the peer sends: a line that grows past it is refused
/// once, and the rest of it is dropped as it arrives.
#[derive(Debug)]
pub struct LineBuffer {
    partial: Vec<u8>,
    limit: usize,
    /// Inside a refused line: its bytes are skipped up to its newline.
    discarding: bool,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    /// A buffer refusing lines longer than [`MAX_LINE`] bytes.
    pub fn new() -> Self {
        Self::with_limit(MAX_LINE)
    }

    /// A smaller limit, so tests can exceed it cheaply.
    pub(crate) fn with_limit(limit: usize) -> Self {
        LineBuffer {
            partial: Vec::new(),
            limit,
            discarding: false,
        }
    }

    /// Takes bytes of `chunk` up to and including its first newline.
    /// Returns how many it took and what they finished: a line (without
    /// its newline), or [`FrameError::TooLong`] as soon as the current
    /// line outgrows the limit, or nothing.
    pub fn feed(&mut self, chunk: &[u8]) -> (usize, Option<Result<Vec<u8>, FrameError>>) {
        let newline = memchr::memchr(b'\n', chunk);
        let used = newline.map_or(chunk.len(), |i| i + 1);
        let content = &chunk[..newline.unwrap_or(chunk.len())];
        if self.discarding {
            self.discarding = newline.is_none();
            return (used, None);
        }
        if self.partial.len() + content.len() > self.limit {
            // Give the memory back: a hostile peer may do this repeatedly.
            self.partial = Vec::new();
            self.discarding = newline.is_none();
            return (used, Some(Err(FrameError::TooLong)));
        }
        self.partial.extend_from_slice(content);
        match newline {
            Some(_) => (used, Some(Ok(std::mem::take(&mut self.partial)))),
            None => (used, None),
        }
    }

    /// Every line `chunk` finishes, in order, refused ones as errors; what
    /// follows the last newline waits for the next chunk. Run the iterator
    /// to its end: bytes it has not reached when dropped are not kept.
    #[must_use = "the lines are only taken from `chunk` as the iterator runs"]
    pub fn push<'a>(&'a mut self, chunk: &'a [u8]) -> Lines<'a> {
        Lines {
            buffer: self,
            rest: chunk,
        }
    }

    /// At end of stream: the final line if it had no newline. A peer that
    /// closes right after its last message without one still counts.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let discarding = std::mem::take(&mut self.discarding);
        let last = std::mem::take(&mut self.partial);
        (!discarding && !last.is_empty()).then_some(last)
    }

    /// Bytes of the unfinished line held.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// The lines of one chunk; see [`LineBuffer::push`].
pub struct Lines<'a> {
    buffer: &'a mut LineBuffer,
    rest: &'a [u8],
}

impl Iterator for Lines<'_> {
    type Item = Result<Vec<u8>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let (used, line) = self.buffer.feed(self.rest);
            self.rest = &self.rest[used..];
            if line.is_some() {
                return line;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(buffer: &mut LineBuffer, chunk: &[u8]) -> Vec<Result<Vec<u8>, ()>> {
        buffer.push(chunk).map(|l| l.map_err(drop)).collect()
    }

    #[test]
    fn splits_lines_across_chunks_and_keeps_a_final_partial_one() {
        let mut b = LineBuffer::new();
        assert!(lines(&mut b, b"{\"a\"").is_empty());
        assert_eq!(
            lines(&mut b, b":1}\n{\"b\":2}\n{"),
            [Ok(b"{\"a\":1}".to_vec()), Ok(b"{\"b\":2}".to_vec())]
        );
        assert_eq!(lines(&mut b, b"\n"), [Ok(b"{".to_vec())]);
        assert_eq!(lines(&mut b, b"\nlast"), [Ok(Vec::new())]);
        assert_eq!(b.finish(), Some(b"last".to_vec()));
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn refuses_an_overlong_line_once_and_goes_on_after_it() {
        let mut b = LineBuffer::new();
        assert_eq!(lines(&mut b, &vec![b'x'; MAX_LINE]), []);
        assert_eq!(b.pending(), MAX_LINE);
        assert_eq!(lines(&mut b, b"x"), [Err(())]);
        assert_eq!(b.pending(), 0);
        assert_eq!(lines(&mut b, &vec![b'x'; MAX_LINE]), []);
        assert_eq!(b.pending(), 0);
        assert_eq!(lines(&mut b, b"rest\nok\n"), [Ok(b"ok".to_vec())]);
    }

    #[test]
    fn a_refused_final_line_is_not_returned_at_the_end() {
        let mut b = LineBuffer::with_limit(3);
        assert_eq!(lines(&mut b, b"abcd"), [Err(())]);
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn feed_stops_after_the_first_newline() {
        let mut b = LineBuffer::new();
        let (used, line) = b.feed(b"ab\ncd\n");
        assert_eq!((used, line.unwrap().unwrap()), (3, b"ab".to_vec()));
        assert!(matches!(b.feed(b"cd"), (2, None)));
    }

    /// What a buffer with `limit` must give for `input`, however chunked.
    fn expected(input: &[u8], limit: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut pieces: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
        // What follows the last newline is a line only when not empty.
        if pieces.last().is_some_and(|l| l.is_empty()) {
            pieces.pop();
        }
        pieces
            .into_iter()
            .map(|l| {
                if l.len() > limit {
                    Err(())
                } else {
                    Ok(l.to_vec())
                }
            })
            .collect()
    }

    /// Bytes with plenty of newlines, and cut points to chunk them at.
    fn chunked_input() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
        let byte = prop_oneof![1 => Just(b'\n'), 4 => any::<u8>()];
        (
            prop::collection::vec(byte, 0..600),
            prop::collection::vec(any::<usize>(), 0..12),
        )
    }

    fn run(input: &[u8], cuts: &[usize], limit: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        let mut b = LineBuffer::with_limit(limit);
        let mut got = Vec::new();
        let mut start = 0;
        for end in cuts {
            got.extend(lines(&mut b, &input[start..end]));
            assert!(b.pending() <= limit, "holds {} > {limit}", b.pending());
            start = end;
        }
        got.extend(b.finish().map(Ok));
        got
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_lines_of_the_whole((input, cuts) in chunked_input()) {
            prop_assert_eq!(run(&input, &cuts, input.len()), expected(&input, input.len()));
        }

        #[test]
        fn overlong_lines_are_refused_in_place_with_bounded_memory(
            (input, cuts) in chunked_input(),
            limit in 0usize..40,
        ) {
            prop_assert_eq!(run(&input, &cuts, limit), expected(&input, limit));
        }
    }
}
