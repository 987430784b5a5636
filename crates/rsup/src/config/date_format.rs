//! PM2's `log_date_format` is a dayjs/moment pattern; the daemon formats
//! with chrono. Converting here means a bad pattern fails at `rsup start`,
//! not silently in every log line.

/// Tokens, longest first so `YYYY` wins over `YY`.
const TOKENS: &[(&str, &str)] = &[
    ("YYYY", "%Y"),
    ("YY", "%y"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("M", "%-m"),
    ("DD", "%d"),
    ("D", "%-d"),
    ("dddd", "%A"),
    ("ddd", "%a"),
    ("d", "%w"),
    ("HH", "%H"),
    ("H", "%-H"),
    ("hh", "%I"),
    ("h", "%-I"),
    ("mm", "%M"),
    ("m", "%-M"),
    ("ss", "%S"),
    ("s", "%-S"),
    ("SSS", "%3f"),
    ("ZZ", "%z"),
    ("Z", "%:z"),
    ("A", "%p"),
    ("a", "%P"),
    ("X", "%s"),
];

/// Converts a moment/dayjs pattern such as `YYYY-MM-DD HH:mm:ss Z` to
/// chrono's `%Y-%m-%d %H:%M:%S %:z`. `[text]` is literal as in dayjs.
/// Letters that are not a known token are rejected, except `T` (the ISO
/// date/time separator, which dayjs also prints as is).
pub fn to_chrono(pattern: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    'outer: while let Some(c) = rest.chars().next() {
        if c == '[' {
            let Some(end) = rest.find(']') else {
                return Err(format!("unclosed [ in {pattern:?}"));
            };
            push_literal(&mut out, &rest[1..end]);
            rest = &rest[end + 1..];
            continue;
        }
        for (token, spec) in TOKENS {
            if rest.starts_with(token) {
                out.push_str(spec);
                rest = &rest[token.len()..];
                continue 'outer;
            }
        }
        if c.is_ascii_alphabetic() && c != 'T' {
            let run: String = rest.chars().take_while(|x| *x == c).collect();
            return Err(format!(
                "unsupported token {run:?} in {pattern:?} (supported: YYYY YY MMMM MMM MM M DD D \
                 dddd ddd d HH H hh h mm m ss s SSS Z ZZ A a X, [literal])"
            ));
        }
        push_literal(&mut out, &c.to_string());
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
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

    #[test]
    fn common_patterns() {
        assert_eq!(
            to_chrono("YYYY-MM-DD HH:mm:ss Z").unwrap(),
            "%Y-%m-%d %H:%M:%S %:z"
        );
        assert_eq!(
            to_chrono("YYYY-MM-DDTHH:mm:ss").unwrap(),
            "%Y-%m-%dT%H:%M:%S"
        );
        assert_eq!(to_chrono("HH:mm:ss.SSS ZZ").unwrap(), "%H:%M:%S.%3f %z");
        assert_eq!(
            to_chrono("[at] h:mm A, 100%").unwrap(),
            "at %-I:%M %p, 100%%"
        );
    }

    #[test]
    fn converted_format_renders() {
        let f = to_chrono("YYYY-MM-DD HH:mm:ss.SSS Z").unwrap();
        let t = chrono::FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2024, 3, 5, 7, 8, 9)
            .unwrap();
        assert_eq!(t.format(&f).to_string(), "2024-03-05 07:08:09.000 +01:00");
    }

    #[test]
    fn unknown_tokens_fail() {
        assert!(to_chrono("YYYY Q").unwrap_err().contains("\"Q\""));
        assert!(to_chrono("Do MMM").is_err());
        assert!(to_chrono("[oops").is_err());
    }
}
