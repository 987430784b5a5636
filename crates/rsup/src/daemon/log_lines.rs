//! What a copier writes for the bytes a child sends: the output as it is,
//! lines with a timestamp in front, or one JSON record per line (PM2's
//! `log_type: 'json'`); and the whole lines of that, for the log both
//! streams share.
//!
//! Output arrives in chunks that end anywhere, so each form keeps the state
//! it needs across them.

use chrono::{Local, SecondsFormat, Utc};
use serde::Serialize;
use std::borrow::Cow;

/// A line this long without its newline is written anyway, so one endless
/// line cannot hold memory.
const MAX_HELD_LINE: usize = 64 * 1024;

/// How the lines of one stream are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFormat {
    /// As the app wrote them.
    Raw,
    /// `<time>: <line>`, the time in this chrono format, local time.
    Stamped(String),
    /// PM2's record, one per line.
    Json(JsonFields),
}

/// What each JSON record says besides its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFields {
    /// chrono format of `timestamp` (local time); `None`: ISO 8601 in UTC
    /// with milliseconds, as JavaScript's `toISOString()`.
    pub timestamp_format: Option<String>,
    /// `out` or `err`.
    pub stream: &'static str,
    pub id: u32,
    pub name: String,
}

/// PM2's record (lib/ProcessContainer.js), keys in its order.
#[derive(Serialize)]
struct Record<'a> {
    message: &'a str,
    timestamp: &'a str,
    #[serde(rename = "type")]
    stream: &'a str,
    process_id: u32,
    app_name: &'a str,
}

/// Turns one stream's chunks into what its log files receive.
pub struct Formatter {
    format: LineFormat,
    /// The last byte seen did not end a line.
    mid_line: bool,
    /// JSON: the start of a line whose newline has not come yet.
    held: Vec<u8>,
}

impl Formatter {
    pub fn new(format: LineFormat) -> Formatter {
        Formatter {
            format,
            mid_line: false,
            held: Vec::new(),
        }
    }

    /// What to write for `chunk`. Raw and stamped output passes at once,
    /// cut anywhere; JSON waits for each line's end.
    pub fn format<'a>(&mut self, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        if chunk.is_empty() {
            return Cow::Borrowed(chunk);
        }
        let out = match &self.format {
            LineFormat::Raw => Cow::Borrowed(chunk),
            LineFormat::Stamped(format) => {
                let prefix = format!("{}: ", Local::now().format(format));
                let mut out = Vec::with_capacity(chunk.len() + prefix.len() * 2);
                let mut mid_line = self.mid_line;
                for piece in chunk.split_inclusive(|b| *b == b'\n') {
                    if !mid_line {
                        out.extend_from_slice(prefix.as_bytes());
                    }
                    out.extend_from_slice(piece);
                    mid_line = piece.last() != Some(&b'\n');
                }
                Cow::Owned(out)
            }
            LineFormat::Json(fields) => {
                let mut out = Vec::new();
                for piece in chunk.split_inclusive(|b| *b == b'\n') {
                    self.held.extend_from_slice(piece);
                    if piece.last() == Some(&b'\n') || self.held.len() >= MAX_HELD_LINE {
                        push_record(&mut out, fields, &std::mem::take(&mut self.held));
                    }
                }
                Cow::Owned(out)
            }
        };
        self.mid_line = chunk.last() != Some(&b'\n');
        out
    }

    /// What is left to write when the stream ends: the end of an unfinished
    /// line, so the file ends with a whole one.
    pub fn finish(&mut self) -> Vec<u8> {
        match &self.format {
            LineFormat::Json(fields) => {
                let mut out = Vec::new();
                if !self.held.is_empty() {
                    push_record(&mut out, fields, &std::mem::take(&mut self.held));
                }
                out
            }
            _ if self.mid_line => b"\n".to_vec(),
            _ => Vec::new(),
        }
    }
}

fn push_record(out: &mut Vec<u8>, fields: &JsonFields, line: &[u8]) {
    let timestamp = match &fields.timestamp_format {
        Some(format) => Local::now().format(format).to_string(),
        None => Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    let record = Record {
        // Node decodes output the same way: invalid UTF-8 becomes U+FFFD.
        message: &String::from_utf8_lossy(line),
        timestamp: &timestamp,
        stream: fields.stream,
        process_id: fields.id,
        app_name: &fields.name,
    };
    // Serializing strings and numbers cannot fail.
    serde_json::to_writer(&mut *out, &record).expect("a log record serializes");
    out.push(b'\n');
}

/// Passes on whole lines only, holding the start of an unfinished one: what
/// goes into the log both streams write, so that a line of one never gets
/// cut by a line of the other. Output that never ends its line
/// (`process.stderr.write('x')`) is passed on as it is once it has waited
/// [`HOLD_LIMIT`], rather than held until the process exits.
#[derive(Default)]
pub struct WholeLines {
    held: Vec<u8>,
}

/// How long the start of a line waits for its end.
pub const HOLD_LIMIT: std::time::Duration = std::time::Duration::from_millis(200);

impl WholeLines {
    /// The lines `bytes` completes.
    pub fn take<'a>(&mut self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let end = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => 0,
        };
        if self.held.is_empty() && end == bytes.len() {
            return Cow::Borrowed(bytes);
        }
        let mut out = Vec::new();
        if end > 0 {
            out = std::mem::take(&mut self.held);
            out.extend_from_slice(&bytes[..end]);
        }
        self.held.extend_from_slice(&bytes[end..]);
        if self.held.len() >= MAX_HELD_LINE {
            out.append(&mut self.held);
        }
        Cow::Owned(out)
    }

    /// `bytes` as they are, or (`whole_only`) the lines they complete;
    /// what was held goes first either way.
    pub fn pass<'a>(&mut self, bytes: &'a [u8], whole_only: bool) -> Cow<'a, [u8]> {
        if whole_only {
            return self.take(bytes);
        }
        if self.held.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let mut out = std::mem::take(&mut self.held);
        out.extend_from_slice(bytes);
        Cow::Owned(out)
    }

    /// Whether the start of a line is waiting for its end.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// The unfinished line as it is, for a writer that waited long enough.
    pub fn release(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    /// The unfinished line, ended, when the stream ends.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.held);
        if !out.is_empty() {
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn json(timestamp_format: Option<&str>) -> Formatter {
        Formatter::new(LineFormat::Json(JsonFields {
            timestamp_format: timestamp_format.map(String::from),
            stream: "err",
            id: 3,
            name: "api".into(),
        }))
    }

    #[test]
    fn stamps_each_line_once_across_chunks() {
        let mut f = Formatter::new(LineFormat::Stamped("T".into()));
        let mut out = f.format(b"a\nb").into_owned();
        out.extend_from_slice(&f.format(b"c\n\nd\n"));
        assert_eq!(text(&out), "T: a\nT: bc\nT: \nT: d\n");
        assert!(f.finish().is_empty());
    }

    #[test]
    fn raw_output_passes_untouched_and_an_unfinished_line_is_ended() {
        let mut f = Formatter::new(LineFormat::Raw);
        assert!(matches!(f.format(b"x\ny"), Cow::Borrowed(b"x\ny")));
        assert_eq!(f.finish(), b"\n");
    }

    /// PM2's record: `message` keeps the line's newline, `timestamp` is
    /// `toISOString()` without a date format, keys in PM2's order.
    #[test]
    fn json_records_are_pm2s_one_per_line() {
        let mut f = json(None);
        let out = f.format(b"one\ntw").into_owned();
        let line = text(&out);
        let (start, rest) = line.split_at(r#"{"message":"one\n","timestamp":""#.len());
        assert_eq!(start, r#"{"message":"one\n","timestamp":""#);
        // 2024-03-05T07:08:09.123Z
        let (stamp, rest) = rest.split_at(24);
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{stamp}"
        );
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.',
            "{stamp}"
        );
        assert_eq!(
            rest,
            r#"","type":"err","process_id":3,"app_name":"api"}"#.to_owned() + "\n"
        );

        // The rest of the line comes later; the end of the stream ends it.
        let out = f.format(b"o\n\"quoted\" \xff\n");
        let records: Vec<serde_json::Value> = text(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records[0]["message"], "two\n");
        assert_eq!(records[1]["message"], "\"quoted\" \u{fffd}\n");
        assert!(f.format(b"last").is_empty());
        let end: serde_json::Value = serde_json::from_slice(&f.finish()).unwrap();
        assert_eq!(end["message"], "last");
        assert!(f.finish().is_empty());
    }

    #[test]
    fn json_timestamps_follow_the_date_format() {
        let mut f = json(Some("%Y"));
        let record: serde_json::Value = serde_json::from_slice(&f.format(b"x\n")).unwrap();
        assert_eq!(record["timestamp"], Local::now().format("%Y").to_string());
    }

    #[test]
    fn an_endless_line_is_written_in_pieces() {
        let mut f = json(None);
        let long = vec![b'x'; MAX_HELD_LINE + 10];
        let out = f.format(&long).into_owned();
        let record: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            record["message"].as_str().unwrap().len(),
            MAX_HELD_LINE + 10
        );

        let mut w = WholeLines::default();
        assert!(w.take(&long[..MAX_HELD_LINE - 1]).is_empty());
        assert_eq!(w.take(b"yz").len(), MAX_HELD_LINE + 1);
    }

    #[test]
    fn whole_lines_hold_what_is_unfinished() {
        let mut w = WholeLines::default();
        assert!(matches!(w.take(b"a\nb\n"), Cow::Borrowed(_)));
        assert_eq!(text(&w.take(b"c\nd")), "c\n");
        assert!(w.take(b"e").is_empty());
        assert_eq!(text(&w.take(b"f\ng")), "def\n");
        assert_eq!(text(&w.finish()), "g\n");
        assert!(w.finish().is_empty());
    }
}
