//! JSON values written as Node's `util.inspect(value, false, null, false)`
//! writes them (no depth limit, no colours, `breakLength` 80, `compact` 3):
//! what `pm2 prettylist` prints, byte for byte, for scripts that grep it.
//!
//! Lengths are counted in UTF-16 code units and keys ordered as JavaScript
//! orders an object's keys, since Node's rules are written in those terms.

use serde_json::{Map, Value};

const BREAK_LENGTH: usize = 80;
const COMPACT: usize = 3;
/// Entries of an array written out; the rest are counted.
pub const MAX_ARRAY_LENGTH: usize = 100;
const MAX_STRING_LENGTH: usize = 10_000;
/// Strings shorter than this are never split at their line breaks.
const MIN_LINE_LENGTH: usize = 16;

/// `util.inspect(value, false, null, false)`.
pub fn inspect(value: &Value) -> String {
    let mut ctx = Ctx {
        indentation: 0,
        current_depth: 0,
    };
    format_value(&mut ctx, value, 0)
}

struct Ctx {
    /// Spaces before the current value's lines.
    indentation: usize,
    /// Depth of the object or array entered last (Node's `currentDepth`):
    /// an object whose entries hold objects `compact` levels deep or more
    /// is written one entry per line.
    current_depth: usize,
}

fn format_value(ctx: &mut Ctx, value: &Value, recurse_times: usize) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => format_string(ctx, s),
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Array(items) => {
            let recurse_times = recurse_times + 1;
            ctx.current_depth = recurse_times;
            let shown = items.len().min(MAX_ARRAY_LENGTH);
            let mut output: Vec<String> = items[..shown]
                .iter()
                .map(|item| nested(ctx, item, recurse_times))
                .collect();
            let remaining = items.len() - shown;
            if remaining > 0 {
                output.push(format!(
                    "... {remaining} more item{}",
                    if remaining > 1 { "s" } else { "" }
                ));
            }
            reduce_to_single_string(ctx, output, ["[", "]"], Some(items), recurse_times)
        }
        Value::Object(map) => {
            let recurse_times = recurse_times + 1;
            ctx.current_depth = recurse_times;
            let output = js_key_order(map)
                .into_iter()
                .map(|(key, v)| format!("{}: {}", format_key(key), nested(ctx, v, recurse_times)))
                .collect();
            reduce_to_single_string(ctx, output, ["{", "}"], None, recurse_times)
        }
    }
}

/// An entry of an object or array, two spaces further in.
fn nested(ctx: &mut Ctx, value: &Value, recurse_times: usize) -> String {
    ctx.indentation += 2;
    let s = format_value(ctx, value, recurse_times);
    ctx.indentation -= 2;
    s
}

/// Keys in the order JavaScript gives them: array indices ("0", "17")
/// first, ascending, then the others in insertion order.
fn js_key_order(map: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let mut indices: Vec<(u32, &str, &Value)> = Vec::new();
    let mut others = Vec::with_capacity(map.len());
    for (k, v) in map {
        match array_index(k) {
            Some(i) => indices.push((i, k, v)),
            None => others.push((k.as_str(), v)),
        }
    }
    if indices.is_empty() {
        return others;
    }
    indices.sort_by_key(|(i, _, _)| *i);
    let mut keys: Vec<(&str, &Value)> = indices.into_iter().map(|(_, k, v)| (k, v)).collect();
    keys.extend(others);
    keys
}

/// The index a key names if JavaScript takes it for an array index: digits
/// without a leading zero, below 2^32 - 1.
fn array_index(key: &str) -> Option<u32> {
    let canonical = key == "0" || (!key.starts_with('0') && !key.is_empty());
    if !canonical || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&i| i != u32::MAX)
}

fn format_key(key: &str) -> String {
    let mut bytes = key.bytes();
    let identifier = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if key == "__proto__" {
        "['__proto__']".into()
    } else if identifier {
        key.into()
    } else {
        str_escape(key, None)
    }
}

/// Node's `reduceToSingleString` for `compact` 3: entries on one line when
/// they fit and hold nothing `compact` levels deep, else one per line
/// (arrays of more than six entries grouped in columns first).
fn reduce_to_single_string(
    ctx: &mut Ctx,
    mut output: Vec<String>,
    braces: [&str; 2],
    array: Option<&[Value]>,
    recurse_times: usize,
) -> String {
    let entries = output.len();
    if let Some(items) = array {
        if entries > 6 {
            output = group_array_elements(ctx, output, items);
        }
    }
    if ctx.current_depth - recurse_times < COMPACT && entries == output.len() {
        let start = output.len() + ctx.indentation + braces[0].len() + 10;
        if is_below_break_length(&output, start) {
            let joined = output.join(", ");
            if !joined.contains('\n') {
                return format!("{} {joined} {}", braces[0], braces[1]);
            }
        }
    }
    let indentation = format!("\n{}", " ".repeat(ctx.indentation));
    format!(
        "{}{indentation}  {}{indentation}{}",
        braces[0],
        output.join(&format!(",{indentation}  ")),
        braces[1]
    )
}

fn is_below_break_length(output: &[String], start: usize) -> bool {
    let mut total = output.len() + start;
    if total + output.len() > BREAK_LENGTH {
        return false;
    }
    for entry in output {
        total += utf16_len(entry);
        if total > BREAK_LENGTH {
            return false;
        }
    }
    true
}

/// Node's `groupArrayElements`: short entries of a long array in aligned
/// columns, numbers right-aligned.
fn group_array_elements(ctx: &Ctx, output: Vec<String>, items: &[Value]) -> Vec<String> {
    const SEPARATOR_SPACE: usize = 2; // ", "
                                      // The "... more items" entry takes no part in the grouping.
    let output_length = if output.len() > MAX_ARRAY_LENGTH {
        output.len() - 1
    } else {
        output.len()
    };
    let data_len: Vec<usize> = output[..output_length]
        .iter()
        .map(|s| string_width(s))
        .collect();
    let total_length: usize = data_len.iter().map(|l| l + SEPARATOR_SPACE).sum();
    let max_length = data_len.iter().copied().max().unwrap_or(0);
    let actual_max = max_length + SEPARATOR_SPACE;
    if actual_max * 3 + ctx.indentation >= BREAK_LENGTH
        || (total_length as f64 / actual_max as f64 <= 5.0 && max_length > 6)
    {
        return output;
    }
    let average_bias = (actual_max as f64 - total_length as f64 / output.len() as f64).sqrt();
    let biased_max = (actual_max as f64 - 3.0 - average_bias).max(1.0);
    let columns = js_round((2.5 * biased_max * output_length as f64).sqrt() / biased_max)
        .min(((BREAK_LENGTH - ctx.indentation) / actual_max) as f64)
        .min((COMPACT * 4) as f64)
        .min(15.0) as usize;
    if columns <= 1 {
        return output;
    }
    let max_line_length: Vec<usize> = (0..columns)
        .map(|i| {
            let widest = (i..output_length)
                .step_by(columns)
                .map(|j| data_len[j])
                .max()
                .unwrap_or(0);
            widest + SEPARATOR_SPACE
        })
        .collect();
    // Right-aligned only when every entry (the "more items" one included)
    // stands for a number.
    let pad_start = (0..output.len()).all(|i| items.get(i).is_some_and(Value::is_number));
    let mut grouped = Vec::new();
    for i in (0..output_length).step_by(columns) {
        let max = (i + columns).min(output_length);
        let mut line = String::new();
        for j in i..max - 1 {
            let padding = max_line_length[j - i] + utf16_len(&output[j]) - data_len[j];
            let cell = format!("{}, ", output[j]);
            line.push_str(&pad(&cell, padding, pad_start));
        }
        let j = max - 1;
        if pad_start {
            let padding = (max_line_length[j - i] + utf16_len(&output[j]))
                .saturating_sub(data_len[j] + SEPARATOR_SPACE);
            line.push_str(&pad(&output[j], padding, true));
        } else {
            line.push_str(&output[j]);
        }
        grouped.push(line);
    }
    if output.len() > output_length {
        grouped.push(output[output_length].clone());
    }
    grouped
}

/// JavaScript's `Math.round`: halves go up.
fn js_round(x: f64) -> f64 {
    (x + 0.5).floor()
}

/// `padStart` / `padEnd` with spaces to `width` UTF-16 code units.
fn pad(s: &str, width: usize, start: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(utf16_len(s)));
    if start {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

/// Columns a string takes on a terminal, as Node's `getStringWidth`
/// counts them: ASCII controls take none, wide East Asian characters two.
/// (Node asks ICU; unicode-width's tables agree for what a process list
/// holds.)
fn string_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '\0'..='\x1f' => 0,
            ' '..='\x7e' => 1,
            _ => unicode_width::UnicodeWidthChar::width(c).unwrap_or(0),
        })
        .sum()
}

/// A string as Node's `formatPrimitive` writes it: quoted and escaped, cut
/// after 10,000 UTF-16 units, and, when long, split after each line break
/// into quoted pieces joined with `+`.
fn format_string(ctx: &Ctx, s: &str) -> String {
    let full_len = utf16_len(s);
    let (s, lone_surrogate, trailer) = if full_len > MAX_STRING_LENGTH {
        let (kept, lone) = cut_utf16(s, MAX_STRING_LENGTH);
        let remaining = full_len - MAX_STRING_LENGTH;
        let trailer = format!(
            "... {remaining} more character{}",
            if remaining > 1 { "s" } else { "" }
        );
        (kept, lone, trailer)
    } else {
        (s, None, String::new())
    };
    let len = full_len.min(MAX_STRING_LENGTH);
    let limit = BREAK_LENGTH as isize - ctx.indentation as isize - 4;
    if len > MIN_LINE_LENGTH && len as isize > limit {
        // The quote is chosen for each piece on its own, as Node does.
        let mut pieces: Vec<&str> = s.split_inclusive('\n').collect();
        if pieces.is_empty() {
            pieces.push("");
        }
        let last = pieces.len() - 1;
        let quoted: Vec<String> = pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| str_escape(piece, lone_surrogate.filter(|_| i == last)))
            .collect();
        let joiner = format!(" +\n{}", " ".repeat(ctx.indentation + 2));
        return quoted.join(&joiner) + &trailer;
    }
    str_escape(s, lone_surrogate) + &trailer
}

/// The first `units` UTF-16 code units of `s`; when that cuts a character
/// in two, the high surrogate left over, which Node then writes as `\u…`.
fn cut_utf16(s: &str, units: usize) -> (&str, Option<u16>) {
    let mut count = 0;
    for (at, c) in s.char_indices() {
        let width = c.len_utf16();
        if count + width > units {
            let lone = (count < units).then(|| {
                let mut buf = [0u16; 2];
                c.encode_utf16(&mut buf)[0]
            });
            return (&s[..at], lone);
        }
        count += width;
    }
    (s, None)
}

/// Node's `strEscape`: single quotes unless the string holds one (then
/// double quotes, else backticks, else escaped single quotes); control
/// characters, C1 controls and the backslash escaped.
fn str_escape(s: &str, lone_surrogate: Option<u16>) -> String {
    let quote = if !s.contains('\'') {
        '\''
    } else if !s.contains('"') {
        '"'
    } else if !s.contains('`') && !s.contains("${") {
        '`'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\'' if quote == '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\x08' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\x0c' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\0'..='\x1f' | '\x7f'..='\u{9f}' => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            _ => out.push(c),
        }
    }
    if let Some(unit) = lone_surrogate {
        out.push_str(&format!("\\u{unit:x}"));
    }
    out.push(quote);
    out
}

/// A number as JavaScript's `String(n)` writes it (`util.inspect` adds
/// `-0`): the shortest digits that read back the same, in plain notation
/// from 1e-7 up to 1e21 and in exponent notation (`1e+21`) outside.
fn js_number(n: f64) -> String {
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    if !n.is_finite() {
        return if n.is_nan() {
            "NaN"
        } else if n > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .into();
    }
    // Rust's `{:e}` gives the same shortest digits: "-1.2345e-7".
    let sci = format!("{:e}", n.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("{:e} has an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i32 = exponent.parse().expect("{:e} has a decimal exponent");
    let k = digits.len() as i32;
    let n_pos = exponent + 1; // where the decimal point goes
    let body = if k <= n_pos && n_pos <= 21 {
        format!("{digits}{}", "0".repeat((n_pos - k) as usize))
    } else if 0 < n_pos && n_pos <= 21 {
        let (int, frac) = digits.split_at(n_pos as usize);
        format!("{int}.{frac}")
    } else if -6 < n_pos && n_pos <= 0 {
        format!("0.{}{digits}", "0".repeat((-n_pos) as usize))
    } else {
        let (first, rest) = digits.split_at(1);
        let e = n_pos - 1;
        let sign = if e < 0 { '-' } else { '+' };
        let dot = if rest.is_empty() { "" } else { "." };
        format!("{first}{dot}{rest}e{sign}{}", e.abs())
    };
    if n < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::process::Command;

    /// Node's own rendering of each value, through `JSON.parse` as PM2's
    /// CLI receives the list.
    fn node_inspect(values: &[Value]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("values.json");
        std::fs::write(&input, serde_json::to_string(values).unwrap()).unwrap();
        let script = "const v = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));\
                      process.stdout.write(v.map((x) => require('util').inspect(x, false, null, false)).join('\\u0000'));";
        let out = Command::new("node")
            .args(["-e", script])
            .arg(&input)
            .output()
            .expect("node is on PATH");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .map(String::from)
            .collect()
    }

    fn assert_same_as_node(values: Vec<Value>) {
        let expected = node_inspect(&values);
        assert_eq!(expected.len(), values.len());
        for (value, expected) in values.iter().zip(expected) {
            assert_eq!(inspect(value), expected, "for {value}");
        }
    }

    fn long(n: usize) -> String {
        "abcdefghij".repeat(n / 10 + 1)[..n].to_string()
    }

    #[test]
    fn written_as_node_writes_them() {
        let numbers7: Vec<u64> = (1..=7).collect();
        let mixed: Vec<Value> = (0..30)
            .map(|i| {
                if i % 3 == 0 {
                    json!(i * 1000)
                } else {
                    json!(i)
                }
            })
            .collect();
        let floats: Vec<f64> = (0..26).map(|i| f64::from(i) * -1.25 + 0.1).collect();
        let words: Vec<String> = (0..40).map(|i| format!("w{}", "x".repeat(i % 9))).collect();
        let wide: Vec<String> = (0..12).map(|i| format!("{}漢字", i)).collect();
        let accented: Vec<&str> = vec!["é", "ü", "ñ", "å", "ø", "ç", "ß", "œ", "æ"];
        let emoji: Vec<&str> = vec!["😀", "a😀", "🚀🚀", "x", "y", "z", "w", "v"];
        let long_words: Vec<String> = (0..8).map(|i| long(10 + i * 7)).collect();
        let hundred: Vec<u64> = (0..150).collect();
        let hundred_words: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
        let multiline = "line one\nline two is somewhat longer than the first\nand a third, long enough for the whole to be split at its breaks\n";
        let short_multiline = "one\ntwo\nthree";
        let cut = format!("{}😀tail", "a".repeat(9_999));
        let values = vec![
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-0.0),
            json!(1e21),
            json!(1e-7),
            json!(0.000001),
            json!(123.456),
            json!(-1.5),
            json!(0.1 + 0.2),
            json!(5e-324),
            json!(1.7976931348623157e308),
            json!(9_007_199_254_740_993u64),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1795426275268u64),
            json!(""),
            json!("plain"),
            json!("it's"),
            json!("it's \"quoted\""),
            json!("it's \"quoted\" and `ticked`"),
            json!("it's \"quoted\" ${x}"),
            json!("back\\slash"),
            json!("tab\there\r\n\u{0}\u{7}\u{b}\u{1b}\u{7f}\u{85}\u{9f}\u{a0}"),
            json!("unicode: héllo wörld 漢字テスト 😀 e\u{301}"),
            json!(long(79)),
            json!(long(200)),
            json!(multiline),
            json!({ "m": multiline, "deep": { "deeper": { "m": multiline } } }),
            json!([multiline, "x"]),
            json!({ "s": short_multiline, "l": [short_multiline, short_multiline] }),
            json!("\n\nstarts with breaks and is long enough to split\n"),
            json!(long(10_001)),
            json!(cut),
            json!(format!("{}'\n{}", long(5_000), long(5_010))),
            json!([]),
            json!({}),
            json!([[]]),
            json!([{}]),
            json!({ "a": [], "b": {} }),
            json!(numbers7),
            json!(mixed),
            json!(floats),
            json!(words),
            json!(wide),
            json!(accented),
            json!(emoji),
            json!(long_words),
            json!(hundred),
            json!(hundred_words),
            json!([1, 2, 3, 4, 5, 6, "seven"]),
            json!([1, 2, 3, 4, 5, 6]),
            json!([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2], { "k": [1, 2, 3, 4, 5, 6, 7] }]),
            json!({ "a": { "b": { "c": {} } } }),
            json!({ "a": { "b": { "c": { "d": 1 } } } }),
            json!({ "a": { "b": { "c": { "d": { "e": 1 } } } }, "f": 1 }),
            json!({ "x": 1, "a": { "b": { "c": { "d": 1 } } }, "y": { "z": 1 } }),
            json!([{ "a": { "b": { "c": 1 } } }, { "a": 1 }]),
            json!({ "tracing": { "enabled": false, "outbound": false }, "n": 1 }),
            json!({ "apm": { "type": "node", "version": "8.0.0" } }),
            json!({
                "a-b": 1, "1a": 2, "": 3, "with space": 4, "ключ": 5, "_ok": 6,
                "ok_2": 7, "it's": 8, "__proto__": 9, "$dollar": 10,
            }),
            json!({ "b": 1, "2": 2, "1": 3, "01": 4, "4294967295": 5, "4294967294": 6, "a": 7 }),
            json!({ "key": long(70) }),
            json!({ "key": long(60), "k2": long(10) }),
            json!({ "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7 }),
            json!({ "list": (0..30).collect::<Vec<u32>>() }),
            json!({ "nested": { "list": (0..8).map(|i| format!("item-{i}")).collect::<Vec<_>>() } }),
        ];
        assert_same_as_node(values);
    }

    #[test]
    fn the_pm2_list_is_written_as_node_writes_it() {
        use rsup_proto::app::{ProcessInfo, Status};
        let mut spec = crate::test_support::spec();
        spec.args = vec!["--port".into(), "8080".into()];
        spec.node_args = vec!["--max-old-space-size=512".into()];
        spec.env = [
            ("PORT", "3000"),
            ("MSG", "it's \"quoted\""),
            ("LONG", &long(300)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let procs: Vec<ProcessInfo> = (0..3)
            .map(|id| ProcessInfo {
                id,
                name: "app".into(),
                instance: id,
                status: Status::Online,
                pid: Some(1000 + id),
                restarts: id,
                unstable_restarts: 0,
                started_at_ms: Some(1_795_426_275_268),
                created_at_ms: 1_795_426_275_155,
                unique_id: String::new(),
                node_version: None,
                cpu_percent: 3.64,
                memory_bytes: 54_177_792,
                last_exit: None,
                out_log: format!("/h/logs/app-out-{id}.log").into(),
                err_log: format!("/h/logs/app-error-{id}.log").into(),
                combined_log: None,
                pid_file: format!("/h/pids/app-{id}.pid").into(),
                spec: spec.clone(),
                log_error: None,
                log_dropped_bytes: 0,
            })
            .collect();
        assert_same_as_node(vec![rsup_proto::pm2::monitor_data(&procs), json!([])]);
    }

    /// Random values, reproducibly: nested objects and arrays of every
    /// kind, keys and strings from a palette that needs quoting and
    /// escaping.
    #[test]
    fn random_values_are_written_as_node_writes_them() {
        let mut rng = Lcg(0x5eed);
        let values: Vec<Value> = (0..400).map(|_| random_value(&mut rng, 0)).collect();
        assert_same_as_node(values);
    }

    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    fn random_string(rng: &mut Lcg) -> String {
        const PALETTE: [&str; 16] = [
            "a", "b", "Z", "_", "0", "7", " ", "-", "'", "\"", "`", "${", "\n", "\\", "é", "漢",
        ];
        let len = match rng.below(4) {
            0 => rng.below(4),
            1 => rng.below(12),
            2 => rng.below(40),
            _ => rng.below(120),
        };
        (0..len)
            .map(|_| PALETTE[rng.below(PALETTE.len() as u64) as usize])
            .collect()
    }

    fn random_value(rng: &mut Lcg, depth: u32) -> Value {
        let kinds = if depth >= 5 { 5 } else { 8 };
        match rng.below(kinds) {
            0 => Value::Null,
            1 => json!(rng.below(2) == 0),
            2 => match rng.below(4) {
                0 => json!(rng.below(10)),
                1 => json!(rng.below(1 << 40)),
                2 => json!((rng.below(100_000) as f64 - 50_000.0) / 64.0),
                _ => json!(f64::from_bits(
                    rng.below(u64::MAX) & !(0x7ffu64 << 52) | (0x3f0u64 << 52)
                )),
            },
            3 | 4 => json!(random_string(rng)),
            5 => {
                let len = match rng.below(3) {
                    0 => rng.below(4),
                    1 => rng.below(10),
                    _ => rng.below(30),
                };
                Value::Array((0..len).map(|_| random_value(rng, depth + 1)).collect())
            }
            _ => {
                let len = rng.below(9);
                let mut map = Map::new();
                for _ in 0..len {
                    let key = if rng.below(5) == 0 {
                        rng.below(20).to_string()
                    } else {
                        random_string(rng)
                    };
                    map.insert(key, random_value(rng, depth + 1));
                }
                Value::Object(map)
            }
        }
    }

    #[test]
    fn numbers_as_javascript_writes_them() {
        for (n, text) in [
            (1.0, "1"),
            (-0.0, "-0"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (0.000001, "0.000001"),
            (-2.5, "-2.5"),
            (3.6, "3.6"),
        ] {
            assert_eq!(js_number(n), text);
        }
    }
}
