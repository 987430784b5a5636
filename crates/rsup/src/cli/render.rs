//! Human-readable output: the process table and `describe`.
//!
//! Everything here is pure: the caller supplies the clock and whether colour
//! is wanted, so the output is deterministic and testable.

use chrono::{Local, TimeZone};
use comfy_table::{Attribute, Cell, Color, ContentLineStyle, LineStyle, Table, TableStyle};
use rsup_proto::app::{ExecMode, ExitInfo, ProcessInfo, Status};

const HEADERS: [&str; 10] = [
    "id",
    "name",
    "namespace",
    "mode",
    "pid",
    "status",
    "↺",
    "uptime",
    "cpu",
    "mem",
];

/// PM2's box: single lines, a rule under the header, none between rows.
const BOX: TableStyle = TableStyle::new()
    .top_border(LineStyle::new('┌', '─', '┬', '┐'))
    .header_lines(ContentLineStyle::new('│', '│', '│'))
    .header_separator(LineStyle::new('├', '─', '┼', '┤'))
    .content_lines(ContentLineStyle::new('│', '│', '│'))
    .bottom_border(LineStyle::new('└', '─', '┴', '┘'));

/// The `rsup list` table, sorted by id. `color` should be true only when
/// stdout is a terminal and `NO_COLOR` is unset.
pub fn process_table(procs: &[ProcessInfo], now_ms: u64, color: bool) -> String {
    let mut sorted: Vec<&ProcessInfo> = procs.iter().collect();
    sorted.sort_by_key(|p| p.id);
    let mut table = new_table(color);
    table.set_header(HEADERS.iter().map(|h| {
        Cell::new(h)
            .fg(Color::DarkCyan)
            .add_attribute(Attribute::Bold)
    }));
    table.add_rows(sorted.iter().map(|p| row(p, now_ms)));
    if sorted.is_empty() {
        // An empty list closes right under the header.
        table.style_mut().header_separator = LineStyle::none();
    }
    let mut out = lines(&table);
    // The marker in the status column, explained: output is at risk until
    // the log can be written, which the table alone would hide.
    for p in sorted.iter().filter(|p| p.log_error.is_some()) {
        out.push_str(&format!(
            "{LOG_MARK} {} (id {}): {}; output is held and retried every second\n",
            sanitize(&p.name),
            p.id,
            sanitize(p.log_error.as_deref().unwrap_or_default())
        ));
    }
    out
}

/// Follows the status of an instance whose log cannot be written.
const LOG_MARK: &str = "!";

/// A two-column block about one instance, in the manner of `pm2 describe`.
///
/// Environment values are never shown (they often hold secrets); only how
/// many variables there are.
pub fn describe(p: &ProcessInfo, now_ms: u64) -> String {
    let s = &p.spec;
    let rows: Vec<(&str, String)> = vec![
        ("status", p.status.as_str().to_string()),
        ("name", p.name.clone()),
        ("namespace", s.namespace.clone()),
        ("id", p.id.to_string()),
        ("instance", p.instance.to_string()),
        ("instance var", s.instance_var.clone()),
        (
            "increment var",
            s.increment_var.clone().unwrap_or_else(|| "N/A".into()),
        ),
        ("pid", pid_text(p.pid)),
        ("pid path", p.pid_file.display().to_string()),
        ("script path", s.script.clone()),
        ("script args", join_args(&s.args)),
        (
            "interpreter",
            s.interpreter.clone().unwrap_or_else(|| "none".into()),
        ),
        ("interpreter args", join_args(&s.node_args)),
        ("exec cwd", s.cwd.display().to_string()),
        ("exec mode", s.exec_mode.pm2_name().to_string()),
        ("instances", s.instances.to_string()),
        ("restarts", p.restarts.to_string()),
        ("unstable restarts", p.unstable_restarts.to_string()),
        ("uptime", uptime_text(p, now_ms)),
        (
            "started at",
            p.started_at_ms.map_or_else(|| "N/A".into(), local_time),
        ),
        (
            "last exit",
            p.last_exit
                .as_ref()
                .map_or_else(|| "N/A".into(), |e| exit_text(e, now_ms)),
        ),
        ("cpu", cpu_text(p.cpu_percent)),
        ("memory", humanize_bytes(p.memory_bytes)),
        ("out log path", p.out_log.display().to_string()),
        ("error log path", p.err_log.display().to_string()),
        (
            "entire log path",
            p.combined_log
                .as_ref()
                .map_or_else(|| "none".into(), |l| l.display().to_string()),
        ),
        (
            "log writing",
            match &p.log_error {
                None => "ok".into(),
                Some(e) => format!("failing: {e} (output held, retried every second)"),
            },
        ),
        (
            "log output dropped",
            format!("{} bytes", p.log_dropped_bytes),
        ),
        ("merge logs", yes_no(s.merge_logs)),
        ("wait ready", yes_no(s.wait_ready)),
        ("listen timeout", ms_text(s.listen_timeout_ms)),
        ("kill timeout", ms_text(s.kill_timeout_ms)),
        ("kill signal", s.kill_signal.clone()),
        ("shutdown with message", yes_no(s.shutdown_with_message)),
        ("treekill", yes_no(s.treekill)),
        ("autorestart", yes_no(s.autorestart)),
        ("max restarts", s.max_restarts.to_string()),
        (
            "max memory restart",
            s.max_memory_restart_bytes
                .map_or_else(|| "off".into(), humanize_bytes),
        ),
        (
            "stop exit codes",
            if s.stop_exit_codes.is_empty() {
                "N/A".into()
            } else {
                s.stop_exit_codes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        ),
        ("min uptime", ms_text(s.min_uptime_ms)),
        ("restart delay", ms_text(s.restart_delay_ms)),
        (
            "exp backoff restart delay",
            match s.exp_backoff_restart_delay_ms {
                0 => "off".into(),
                ms => ms_text(ms),
            },
        ),
        (
            "env",
            format!("{} variables (values not shown)", s.env.len()),
        ),
    ];

    let mut table = new_table(false);
    table.add_rows(rows.into_iter().map(|(k, v)| [text(k), text(v)]));
    format!(
        " Describing process with id {} - name {}\n{}",
        p.id,
        sanitize(&p.name),
        lines(&table)
    )
}

/// PM2's short uptime form: `45s`, `12m`, `3h`, `2D`, `1Y` (whole units,
/// rounded down).
pub(crate) fn humanize_duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 60 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 24 {
        return format!("{h}h");
    }
    let d = h / 24;
    if d < 365 {
        return format!("{d}D");
    }
    format!("{}Y", d / 365)
}

/// PM2's memory form: `512b`, `512kb`, `42.3mb`, `1.2gb` (binary units, one
/// decimal, a trailing `.0` dropped).
pub(crate) fn humanize_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["b", "kb", "mb", "gb", "tb"];
    if bytes < 1024 {
        return format!("{bytes}b");
    }
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    // 1023.96kb would print as "1024kb"; say "1mb" instead.
    if round1(v) >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{}{}", one_decimal(v), UNITS[unit])
}

fn row(p: &ProcessInfo, now_ms: u64) -> [Cell; 10] {
    [
        text(p.id.to_string()),
        text(&p.name),
        text(&p.spec.namespace),
        text(match p.spec.exec_mode {
            ExecMode::Fork => "fork",
            ExecMode::Cluster => "cluster",
        }),
        text(pid_text(p.pid)),
        text(match p.log_error {
            Some(_) => format!("{} {LOG_MARK}", p.status.as_str()),
            None => p.status.as_str().to_string(),
        })
        .fg(status_color(p.status)),
        text(p.restarts.to_string()),
        text(uptime_text(p, now_ms)),
        text(cpu_text(p.cpu_percent)),
        text(humanize_bytes(p.memory_bytes)),
    ]
}

/// The standard terminal colours (SGR 31-33), not their bright variants.
fn status_color(s: Status) -> Color {
    match s {
        Status::Online => Color::DarkGreen,
        Status::Errored | Status::Stopped => Color::DarkRed,
        Status::Launching | Status::Stopping | Status::WaitingRestart => Color::DarkYellow,
    }
}

/// Uptime of the current process; `0` when there is none.
fn uptime_text(p: &ProcessInfo, now_ms: u64) -> String {
    let alive = matches!(
        p.status,
        Status::Online | Status::Launching | Status::Stopping
    );
    match p.started_at_ms {
        Some(start) if alive => humanize_duration_ms(now_ms.saturating_sub(start)),
        _ => "0".into(),
    }
}

fn pid_text(pid: Option<u32>) -> String {
    pid.map_or_else(|| "N/A".into(), |p| p.to_string())
}

fn cpu_text(percent: f64) -> String {
    let v = if percent.is_finite() && percent > 0.0 {
        percent
    } else {
        0.0
    };
    format!("{}%", one_decimal(v))
}

fn exit_text(e: &ExitInfo, now_ms: u64) -> String {
    let how = match (&e.signal, e.code) {
        (Some(sig), _) => format!("signal {sig}"),
        (None, Some(code)) => format!("code {code}"),
        (None, None) => "unknown".into(),
    };
    format!(
        "{how} at {} ({} ago)",
        local_time(e.at_ms),
        humanize_duration_ms(now_ms.saturating_sub(e.at_ms))
    )
}

fn local_time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Local.timestamp_millis_opt(ms).single())
        .map_or_else(
            || "N/A".into(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

fn ms_text(ms: u64) -> String {
    format!("{ms}ms")
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// Arguments as one line, quoting those a reader would otherwise misread.
fn join_args(args: &[String]) -> String {
    if args.is_empty() {
        return "N/A".into();
    }
    args.iter()
        .map(|a| {
            if a.is_empty()
                || a.chars()
                    .any(|c| c.is_whitespace() || c == '\'' || c == '"')
            {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn one_decimal(v: f64) -> String {
    let s = format!("{:.1}", round1(v));
    match s.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => s,
    }
}

/// A table that never looks at the terminal: colour is the caller's choice
/// (and styles are applied only with it), and columns are as wide as their
/// content, measured in terminal columns.
fn new_table(color: bool) -> Table {
    let mut table = Table::new();
    table.load_style(BOX).force_no_tty();
    if color {
        table.enforce_styling();
        // Colour the text, not the padding around it.
        table.style_text_only();
    }
    table
}

/// The drawn table, one line per row, ending in a newline.
fn lines(table: &Table) -> String {
    format!("{table}\n")
}

fn text(s: impl AsRef<str>) -> Cell {
    Cell::new(sanitize(s.as_ref()))
}

/// Control characters in user-supplied names would move the cursor or
/// inject escapes (and a newline would split the row); show them as `?`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsup_proto::app::AppSpec;
    use std::path::PathBuf;
    use unicode_width::UnicodeWidthStr;

    const NOW: u64 = 1_700_000_000_000;

    fn spec(name: &str) -> AppSpec {
        AppSpec {
            name: name.into(),
            ..crate::test_support::spec()
        }
    }

    fn proc_info(id: u32, name: &str) -> ProcessInfo {
        ProcessInfo {
            id,
            name: name.into(),
            instance: 0,
            status: Status::Online,
            pid: Some(1234),
            restarts: 3,
            unstable_restarts: 1,
            started_at_ms: Some(NOW - 125_000),
            created_at_ms: NOW - 250_000,
            unique_id: String::new(),
            node_version: None,
            cpu_percent: 1.5,
            memory_bytes: 44_354_764, // 42.3 MiB
            last_exit: None,
            out_log: PathBuf::from(format!("/home/u/.rsup/logs/{name}-out.log")),
            err_log: PathBuf::from(format!("/home/u/.rsup/logs/{name}-error.log")),
            combined_log: None,
            pid_file: PathBuf::from(format!("/home/u/.rsup/pids/{name}-{id}.pid")),
            spec: spec(name),
            log_error: None,
            log_dropped_bytes: 0,
        }
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Every line of a drawn table is equally wide and has as many column
    /// separators as the header.
    fn assert_aligned(table: &str) {
        let plain = strip_ansi(table);
        let lines: Vec<&str> = plain.lines().collect();
        let w = lines[0].width();
        for l in &lines {
            assert_eq!(l.width(), w, "misaligned line {l:?} in\n{plain}");
        }
        let seps = |l: &str| l.chars().filter(|c| "│┌┬┐├┼┤└┴┘".contains(*c)).count();
        for l in &lines {
            assert_eq!(seps(l), seps(lines[0]), "{l:?}");
        }
    }

    /// The trimmed cells of the table's first data row (below the header
    /// and its divider).
    fn first_row_cells(table: &str) -> Vec<&str> {
        table
            .lines()
            .nth(3)
            .unwrap()
            .split('│')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    #[test]
    fn table_has_every_column_and_value() {
        let t = process_table(&[proc_info(0, "api")], NOW, false);
        for h in HEADERS {
            assert!(t.contains(h), "missing header {h} in\n{t}");
        }
        let cells = first_row_cells(&t);
        assert_eq!(
            cells,
            ["0", "api", "default", "fork", "1234", "online", "3", "2m", "1.5%", "42.3mb"]
        );
        assert!(t.starts_with('┌') && t.trim_end().ends_with('┘'));
        assert!(!t.contains('\x1b'));
        assert_aligned(&t);
    }

    #[test]
    fn table_shows_stopped_and_cluster_instances() {
        let mut p = proc_info(1, "worker");
        p.status = Status::Stopped;
        p.pid = None;
        p.cpu_percent = 0.0;
        p.memory_bytes = 0;
        p.spec.exec_mode = ExecMode::Cluster;
        p.spec.namespace = "jobs".into();
        let t = process_table(&[p], NOW, false);
        let cells = first_row_cells(&t);
        assert_eq!(
            cells,
            ["1", "worker", "jobs", "cluster", "N/A", "stopped", "3", "0", "0%", "0b"]
        );
    }

    #[test]
    fn table_sorts_by_id() {
        let t = process_table(&[proc_info(2, "b"), proc_info(1, "a")], NOW, false);
        assert!(t.find("│ 1 ").unwrap() < t.find("│ 2 ").unwrap());
    }

    #[test]
    fn long_and_wide_names_keep_alignment() {
        let long = "a-very-long-application-name-that-goes-on-and-on";
        let procs = [
            proc_info(0, "api"),
            proc_info(1, long),
            proc_info(2, "サーバー"),
        ];
        for color in [false, true] {
            let t = process_table(&procs, NOW, color);
            assert!(t.contains(long));
            assert!(t.contains("サーバー"));
            assert_aligned(&t);
        }
    }

    #[test]
    fn control_characters_in_names_are_neutralised() {
        let t = process_table(&[proc_info(0, "evil\x1b[2Jname\n")], NOW, false);
        assert!(!t.contains('\x1b'));
        assert_aligned(&t);
    }

    /// The escape sequence just before `text` in `table`, if any.
    fn style_before<'a>(table: &'a str, text: &str) -> Option<&'a str> {
        let before = &table[..table.find(text)?];
        let start = before.rfind('\x1b')?;
        before[start..].ends_with('m').then(|| &before[start..])
    }

    #[test]
    fn status_is_coloured_only_when_asked() {
        let mut procs = vec![proc_info(0, "a"), proc_info(1, "b"), proc_info(2, "c")];
        procs[1].status = Status::Errored;
        procs[2].status = Status::WaitingRestart;
        let t = process_table(&procs, NOW, true);
        // The standard green, red and yellow (SGR 32, 31, 33 in 256-colour form).
        assert_eq!(style_before(&t, "online"), Some("\x1b[38;5;2m"));
        assert_eq!(style_before(&t, "errored"), Some("\x1b[38;5;1m"));
        assert_eq!(style_before(&t, "waiting restart"), Some("\x1b[38;5;3m"));
        // Only the text is coloured, and the colour ends with it.
        assert!(t.contains("online\x1b[39m "), "{t:?}");
        // Names and numbers stay plain.
        assert_eq!(style_before(&t, "│ a "), None);
        assert_eq!(strip_ansi(&t), process_table(&procs, NOW, false));
        assert_aligned(&t);
        let t = process_table(&procs, NOW, false);
        assert!(!t.contains('\x1b'));
    }

    #[test]
    fn empty_list_is_header_only() {
        let t = process_table(&[], NOW, false);
        assert_eq!(t.lines().count(), 3, "\n{t}");
        assert!(t.lines().nth(1).unwrap().contains("name"));
        assert_aligned(&t);
    }

    #[test]
    fn humanize_duration_edges() {
        assert_eq!(humanize_duration_ms(0), "0s");
        assert_eq!(humanize_duration_ms(999), "0s");
        assert_eq!(humanize_duration_ms(45_000), "45s");
        assert_eq!(humanize_duration_ms(59_999), "59s");
        assert_eq!(humanize_duration_ms(60_000), "1m");
        assert_eq!(humanize_duration_ms(12 * 60_000 + 59_000), "12m");
        assert_eq!(humanize_duration_ms(3_600_000 - 1), "59m");
        assert_eq!(humanize_duration_ms(3 * 3_600_000), "3h");
        assert_eq!(humanize_duration_ms(24 * 3_600_000 - 1), "23h");
        assert_eq!(humanize_duration_ms(2 * 86_400_000), "2D");
        assert_eq!(humanize_duration_ms(364 * 86_400_000), "364D");
        assert_eq!(humanize_duration_ms(800 * 86_400_000), "2Y");
        assert_eq!(humanize_duration_ms(u64::MAX), "584942417Y");
    }

    #[test]
    fn humanize_bytes_edges() {
        assert_eq!(humanize_bytes(0), "0b");
        assert_eq!(humanize_bytes(1023), "1023b");
        assert_eq!(humanize_bytes(1024), "1kb");
        assert_eq!(humanize_bytes(512 * 1024), "512kb");
        assert_eq!(humanize_bytes(1536), "1.5kb");
        assert_eq!(humanize_bytes(44_354_764), "42.3mb");
        assert_eq!(humanize_bytes(1024 * 1024 - 1), "1mb");
        assert_eq!(humanize_bytes(1_288_490_189), "1.2gb");
        assert_eq!(humanize_bytes(5 << 40), "5tb");
        assert!(humanize_bytes(u64::MAX).ends_with("tb"));
    }

    #[test]
    fn cpu_is_never_negative_or_nan() {
        assert_eq!(cpu_text(1.5), "1.5%");
        assert_eq!(cpu_text(0.04), "0%");
        assert_eq!(cpu_text(100.0), "100%");
        assert_eq!(cpu_text(-3.0), "0%");
        assert_eq!(cpu_text(f64::NAN), "0%");
    }

    #[test]
    fn describe_lists_the_options() {
        let mut p = proc_info(4, "api");
        p.instance = 2;
        p.spec.args = vec!["--port".into(), "80 81".into()];
        p.spec.node_args = vec!["--max-old-space-size=512".into()];
        p.spec.exec_mode = ExecMode::Cluster;
        p.spec.instances = 4;
        p.spec.wait_ready = true;
        p.spec.exp_backoff_restart_delay_ms = 100;
        p.last_exit = Some(ExitInfo {
            code: None,
            signal: Some("SIGKILL".into()),
            at_ms: NOW - 30_000,
        });
        let d = describe(&p, NOW);
        let value = |key: &str| -> String {
            d.lines()
                .find_map(|l| {
                    let cells: Vec<&str> = l.split('│').map(str::trim).collect();
                    (cells.len() == 4 && cells[1] == key).then(|| cells[2].to_string())
                })
                .unwrap_or_else(|| panic!("no {key} row in\n{d}"))
        };
        assert_eq!(value("status"), "online");
        assert_eq!(value("name"), "api");
        assert_eq!(value("namespace"), "default");
        assert_eq!(value("id"), "4");
        assert_eq!(value("instance"), "2");
        assert_eq!(value("instance var"), "NODE_APP_INSTANCE");
        assert_eq!(value("increment var"), "N/A");
        assert_eq!(value("pid"), "1234");
        assert_eq!(value("pid path"), "/home/u/.rsup/pids/api-4.pid");
        assert_eq!(value("script path"), "/srv/app/server.js");
        assert_eq!(value("script args"), "--port '80 81'");
        assert_eq!(value("interpreter"), "node");
        assert_eq!(value("interpreter args"), "--max-old-space-size=512");
        assert_eq!(value("exec cwd"), "/srv/app");
        assert_eq!(value("exec mode"), "cluster_mode");
        assert_eq!(value("instances"), "4");
        assert_eq!(value("restarts"), "3");
        assert_eq!(value("unstable restarts"), "1");
        assert_eq!(value("uptime"), "2m");
        assert_eq!(value("started at"), local_time(NOW - 125_000));
        assert_eq!(
            value("last exit"),
            format!("signal SIGKILL at {} (30s ago)", local_time(NOW - 30_000))
        );
        assert_eq!(value("out log path"), "/home/u/.rsup/logs/api-out.log");
        assert_eq!(value("error log path"), "/home/u/.rsup/logs/api-error.log");
        assert_eq!(value("log writing"), "ok");
        assert_eq!(value("log output dropped"), "0 bytes");
        assert_eq!(value("wait ready"), "yes");
        assert_eq!(value("listen timeout"), "3000ms");
        assert_eq!(value("kill timeout"), "1600ms");
        assert_eq!(value("kill signal"), "SIGINT");
        assert_eq!(value("shutdown with message"), "no");
        assert_eq!(value("autorestart"), "yes");
        assert_eq!(value("max restarts"), "16");
        assert_eq!(value("max memory restart"), "off");
        assert_eq!(value("stop exit codes"), "N/A");
        assert_eq!(value("min uptime"), "1000ms");
        assert_eq!(value("restart delay"), "0ms");
        assert_eq!(value("exp backoff restart delay"), "100ms");
        assert!(d.starts_with(" Describing process with id 4 - name api\n"));
        assert_aligned(d.split_once('\n').unwrap().1);
    }

    #[test]
    fn describe_stopped_instance_has_no_pid_or_uptime() {
        let mut p = proc_info(0, "api");
        p.status = Status::Stopped;
        p.pid = None;
        p.started_at_ms = None;
        p.last_exit = Some(ExitInfo {
            code: Some(1),
            signal: None,
            at_ms: NOW - 5_000,
        });
        let d = describe(&p, NOW);
        assert!(d.contains("│ pid "));
        assert!(d.contains(" N/A "));
        assert!(d.contains("code 1 at "));
        assert!(d.contains("(5s ago)"));
    }

    #[test]
    fn describe_never_prints_env_values() {
        let mut p = proc_info(0, "api");
        p.spec
            .env
            .insert("DATABASE_URL".into(), "postgres://u:hunter2@db".into());
        p.spec.env.insert("API_TOKEN".into(), "s3cr3t-t0ken".into());
        p.spec.env.insert("PORT".into(), "8080".into());
        let d = describe(&p, NOW);
        assert!(!d.contains("hunter2"));
        assert!(!d.contains("s3cr3t-t0ken"));
        assert!(!d.contains("8080"));
        assert!(d.contains("3 variables (values not shown)"));
    }

    #[test]
    fn a_log_that_cannot_be_written_is_marked_and_explained() {
        let mut bad = proc_info(1, "api");
        bad.log_error = Some("cannot write /l/api-out.log: No space left on device".into());
        bad.log_dropped_bytes = 1234;
        let t = process_table(&[proc_info(0, "web"), bad.clone()], NOW, false);
        let (table, notes) = t.split_at(t.find("┘\n").unwrap() + "┘\n".len());
        assert!(table.contains("│ online ! │"), "{t}");
        assert_eq!(table.matches(" ! ").count(), 1, "{t}");
        assert_eq!(
            notes,
            "! api (id 1): cannot write /l/api-out.log: No space left on device; \
             output is held and retried every second\n"
        );
        assert_aligned(table);
        let d = describe(&bad, NOW);
        assert!(
            d.contains(
                "failing: cannot write /l/api-out.log: No space left on device (output held"
            ),
            "{d}"
        );
        assert!(d.contains("│ log output dropped "), "{d}");
        assert!(d.contains(" 1234 bytes "), "{d}");
    }
}
