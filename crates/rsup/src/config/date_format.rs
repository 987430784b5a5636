//! PM2's `log_date_format` is a day.js pattern; the daemon formats with
//! chrono. The pattern is converted here, once, the way day.js reads it:
//! day.js turns every pattern into some text (letters that are no token
//! are printed as they are), so no pattern is refused; letters it prints
//! as they are get a warning, since they are usually a mistake (`Do`, `X`
//! and `Q` need day.js plugins that PM2 does not load).

/// A pattern in chrono's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub format: String,
    /// Letters day.js prints as they are (other than `T`, the ISO date and
    /// time separator), for a warning.
    pub literal_letters: Vec<char>,
}

impl Converted {
    /// A warning for `key`, when some letters are no date token.
    pub fn warning(&self, key: &str, pattern: &str) -> Option<String> {
        if self.literal_letters.is_empty() {
            return None;
        }
        let letters: String = self.literal_letters.iter().collect();
        Some(format!(
            "{key} {pattern:?}: {letters:?} are no date tokens and are written as they are \
             (tokens: YYYY YY MMMM MMM MM M DD D dddd ddd dd d HH H hh h mm m ss s SSS Z ZZ A a, [literal])"
        ))
    }
}

/// Tokens as day.js's format matches them (its REGEX_FORMAT: `Y{1,4}`,
/// `M{1,4}`, `D{1,2}`, `d{1,4}`, `H{1,2}`, `h{1,2}`, `a`, `A`, `m{1,2}`,
/// `s{1,2}`, `Z{1,2}`, `SSS`), longest first.
const TOKENS: &[(&str, &str)] = &[
    ("YYYY", "%Y"),
    // day.js has no meaning for these and prints the zone without colon.
    ("YYY", "%z"),
    ("YY", "%y"),
    ("Y", "%z"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("M", "%-m"),
    ("DD", "%d"),
    ("D", "%-d"),
    ("dddd", "%A"),
    ("ddd", "%a"),
    // day.js prints two letters ("Mo"); chrono has no such field.
    ("dd", "%a"),
    ("d", "%w"),
    ("HH", "%H"),
    ("H", "%-H"),
    ("hh", "%I"),
    ("h", "%-I"),
    ("a", "%P"),
    ("A", "%p"),
    ("mm", "%M"),
    ("m", "%-M"),
    ("ss", "%S"),
    ("s", "%-S"),
    ("ZZ", "%z"),
    ("Z", "%:z"),
    ("SSS", "%3f"),
];

/// Converts a day.js pattern such as `YYYY-MM-DD HH:mm:ss Z` to chrono's
/// `%Y-%m-%d %H:%M:%S %:z`. `[text]` is literal, as in day.js.
pub fn to_chrono(pattern: &str) -> Converted {
    let mut format = String::new();
    let mut literal_letters = Vec::new();
    let mut rest = pattern;
    'outer: while let Some(c) = rest.chars().next() {
        if c == '[' {
            // day.js: `[` up to the next `]`, with something between.
            if let Some(end) = rest.find(']').filter(|end| *end > 1) {
                push_literal(&mut format, &rest[1..end]);
                rest = &rest[end + 1..];
                continue;
            }
        }
        for (token, spec) in TOKENS {
            if rest.starts_with(token) {
                format.push_str(spec);
                rest = &rest[token.len()..];
                continue 'outer;
            }
        }
        if c.is_ascii_alphabetic() && c != 'T' && !literal_letters.contains(&c) {
            literal_letters.push(c);
        }
        push_literal(&mut format, &c.to_string());
        rest = &rest[c.len_utf8()..];
    }
    Converted {
        format,
        literal_letters,
    }
}

fn push_literal(out: &mut String, text: &str) {
    for c in text.chars() {
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_chrono;
    use chrono::TimeZone;

    fn format(pattern: &str) -> String {
        to_chrono(pattern).format
    }

    #[test]
    fn common_patterns() {
        assert_eq!(format("YYYY-MM-DD HH:mm:ss Z"), "%Y-%m-%d %H:%M:%S %:z");
        assert_eq!(format("YYYY-MM-DDTHH:mm:ss"), "%Y-%m-%dT%H:%M:%S");
        assert_eq!(format("HH:mm:ss.SSS ZZ"), "%H:%M:%S.%3f %z");
        assert_eq!(format("[at] h:mm A, 100%"), "at %-I:%M %p, 100%%");
        assert!(to_chrono("YYYY-MM-DDTHH:mm:ss").literal_letters.is_empty());
    }

    #[test]
    fn converted_format_renders() {
        let f = format("YYYY-MM-DD HH:mm:ss.SSS Z");
        let t = chrono::FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2024, 3, 5, 7, 8, 9)
            .unwrap();
        assert_eq!(t.format(&f).to_string(), "2024-03-05 07:08:09.000 +01:00");
    }

    /// Whatever is typed, day.js prints something, and so does rsup: the
    /// random format of PM2's log-custom test runs.
    #[test]
    fn any_pattern_renders_as_day_js_reads_it() {
        let t = chrono::FixedOffset::east_opt(0)
            .unwrap()
            .with_ymd_and_hms(2024, 3, 5, 14, 8, 9)
            .unwrap();
        let c = to_chrono("YYYY asdsd asd asd sad asd ");
        assert!(c.literal_letters.is_empty());
        assert_eq!(
            t.format(&c.format).to_string(),
            "2024 pm9292 pm92 pm92 9pm2 pm92 "
        );
        // Letters that are no token pass through, with a warning.
        let c = to_chrono("Do Q X [");
        assert_eq!(t.format(&c.format).to_string(), "5o Q X [");
        assert_eq!(c.literal_letters, ['o', 'Q', 'X']);
        let w = c.warning("--log-date-format", "Do Q X [").unwrap();
        assert!(
            w.starts_with("--log-date-format \"Do Q X [\": \"oQX\" are no date tokens"),
            "{w}"
        );
        // Longest token first; SS alone is no token; [] is no literal.
        assert_eq!(format("SSSS []"), "%3fS []");
        assert_eq!(format("MMMMM Y"), "%B%-m %z");
    }
}
