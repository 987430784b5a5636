//! Logs: each instance's stdout and stderr in files, nothing lost.

use crate::harness::*;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

#[test]
fn stdout_and_stderr_land_in_the_log_files_with_timestamps() {
    let r = Rsup::new();
    let app = fixture("app.js");
    r.ok(&["start", app.to_str().unwrap(), "--name", "talk", "--time"]);
    let p = r.process("talk");
    let pid = p.pid.unwrap();
    assert_eq!(p.out_log, r.home.path().join("logs/talk-out.log"));
    let out = wait_for("the out log", || {
        let s = std::fs::read_to_string(&p.out_log).ok()?;
        s.contains(&format!("out line from {pid}")).then_some(s)
    });
    // --time puts a date in front of each line.
    assert!(out.starts_with("20"), "{out}");
    r.ok(&["stop", "talk"]);
    let err = std::fs::read_to_string(&p.err_log).unwrap();
    assert!(err.contains(&format!("err line from {pid}")), "{err}");

    let shown = r.ok(&["logs", "talk", "--nostream", "--lines", "5"]);
    assert!(shown.contains(&format!("out line from {pid}")), "{shown}");
}

#[test]
fn output_written_just_before_exit_is_kept() {
    let r = Rsup::new();
    let script = r.path("burst.js");
    std::fs::write(
        &script,
        "for (let i = 0; i < 5000; i++) console.log('line ' + i); process.exit(0);",
    )
    .unwrap();
    r.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "burst",
        "--no-autorestart",
    ]);
    let p = r.wait_status("burst", rsup_proto::app::Status::Stopped);
    let log = std::fs::read_to_string(&p.out_log).unwrap();
    assert_eq!(log.lines().count(), 5000);
    assert!(log.ends_with("line 4999\n"));
}

/// Starts tests/fixtures/ticker.js as `name` with `flags`.
fn start_ticker(r: &Rsup, name: &str, flags: &[&str]) {
    let out = r.start_fixture("ticker.js", name, flags, &[]);
    assert_success(&out);
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until the file at `path` holds a line `line`; returns its text.
fn wait_line(path: &Path, line: &str) -> String {
    wait_for(&format!("{} to hold {line:?}", path.display()), || {
        let text = read(path);
        text.lines().any(|l| l == line).then_some(text)
    })
}

/// The numbers of the lines `<word> N` of a log, in order.
fn numbers(text: &str, word: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(word)?.strip_prefix(' ')?.parse().ok())
        .collect()
}

/// `-l` (PM2's `log_file`): a third file gets both streams, whole lines of
/// each, besides the out and error logs; `-l` alone names it after the app
/// in the logs folder. jlist and describe say where it is.
#[test]
fn the_combined_log_holds_both_streams() {
    let r = Rsup::new();
    start_ticker(
        &r,
        "t",
        &["-o", "out.log", "-e", "err.log", "-l", "entire.log"],
    );
    let entire = r.path("entire.log");
    let text = wait_line(&entire, "tock 3");
    assert!(text.lines().any(|l| l == "tick 3"), "{text}");
    // Every line is one of the app's, whole.
    for line in text.lines() {
        let ok = line == "start" || numbers(line, "tick").len() + numbers(line, "tock").len() == 1;
        assert!(ok, "{line:?} in {text}");
    }
    assert!(!read(&r.path("out.log")).contains("tock"));
    assert!(!read(&r.path("err.log")).contains("tick"));
    let p = r.process("t");
    assert_eq!(p.combined_log.as_deref(), Some(entire.as_path()));
    let described = r.ok(&["describe", "t"]);
    assert!(described.contains("entire log path"), "{described}");
    assert!(described.contains(entire.to_str().unwrap()), "{described}");

    // Without a path: <home>/logs/<name>.log.
    start_ticker(&r, "bare", &["-l"]);
    let default = r.home.path().join("logs/bare.log");
    wait_line(&default, "tock 1");
    assert_eq!(
        r.process("bare").combined_log.as_deref(),
        Some(default.as_path())
    );
    // No -l: no combined log.
    start_ticker(&r, "none", &[]);
    assert_eq!(r.process("none").combined_log, None);
}

/// PM2's log-entire: the out, error and combined logs go on across
/// restart and reload (old and new process side by side), whole lines
/// each, in the same files.
#[test]
fn the_logs_go_on_across_restart_and_reload() {
    let r = Rsup::new();
    start_ticker(
        &r,
        "t",
        &[
            "-o",
            "out.log",
            "-e",
            "err.log",
            "-l",
            "all.log",
            "--merge-logs",
        ],
    );
    let (out, err, all) = (r.path("out.log"), r.path("err.log"), r.path("all.log"));
    let starts = |path: &Path| read(path).lines().filter(|l| *l == "start").count();
    wait_line(&all, "tock 1");
    for (verb, runs) in [("restart", 2), ("reload", 3)] {
        r.ok(&[verb, "t"]);
        wait_for(&format!("the logs of run {runs}"), || {
            (starts(&out) == runs && starts(&err) == runs && starts(&all) == 2 * runs).then_some(())
        });
    }
    for line in read(&all).lines() {
        let whole =
            line == "start" || numbers(line, "tick").len() + numbers(line, "tock").len() == 1;
        assert!(whole, "{line:?}");
    }
}

/// With several instances each gets its own combined log (`-<id>`), as
/// for out and error logs, unless `--merge-logs`.
#[test]
fn instances_get_their_own_combined_log_unless_merged() {
    let r = Rsup::new();
    start_ticker(&r, "two", &["-x", "-i", "2", "-l", "all.log"]);
    for p in r.jlist() {
        let own = r.path(&format!("all-{}.log", p.id));
        assert_eq!(p.combined_log.as_deref(), Some(own.as_path()));
        wait_line(&own, "tock 1");
    }
    assert!(!r.path("all.log").exists());
    start_ticker(
        &r,
        "merged",
        &["-x", "-i", "2", "-l", "merged.log", "--merge-logs"],
    );
    for p in r.jlist().iter().filter(|p| p.name == "merged") {
        assert_eq!(
            p.combined_log.as_deref(),
            Some(r.path("merged.log").as_path())
        );
    }
    wait_line(&r.path("merged.log"), "tock 1");
}

/// `log_type: 'json'`: PM2's record per line in every log, `timestamp` in
/// the date format when there is one, else `toISOString()`.
#[test]
fn json_logs_are_pm2s_records() {
    let r = Rsup::new();
    let ticker = fixture("ticker.js");
    let config = r.path("json.config.js");
    std::fs::write(
        &config,
        format!(
            "module.exports = {{ apps: [
                {{ name: 'plain', script: {ticker:?}, log_type: 'json', log_file: 'plain.log',
                   out_file: 'NULL', error_file: 'NULL', merge_logs: true }},
                {{ name: 'dated', script: {ticker:?}, log_type: 'json', log: 'dated.log',
                   log_date_format: 'YYYY', out_file: 'dated-out.log' }},
            ] }};"
        ),
    )
    .unwrap();
    r.ok(&["start", config.to_str().unwrap()]);
    let plain = r.process("plain");
    let text = wait_for("json lines", || {
        let text = read(&r.path("plain.log"));
        text.contains(r#""message":"tock 2\n""#).then_some(text)
    });
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(r#"{"message":"start\n","timestamp":""#),
        "{first}"
    );
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let message = v["message"].as_str().unwrap();
        let stream = if message.starts_with("tock") {
            "err"
        } else {
            "out"
        };
        let start = message == "start\n";
        assert!(start || v["type"] == stream, "{line}");
        assert_eq!(v["process_id"], plain.id);
        assert_eq!(v["app_name"], "plain");
        let stamp = v["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'),
            "{line}"
        );
    }
    assert!(!r.home.path().join("logs/plain-out.log").exists());

    let year = chrono::Local::now().format("%Y").to_string();
    let dated = wait_for("dated json lines", || {
        let text = read(&r.path("dated-out.log"));
        text.contains(r#""message":"tick 2\n""#).then_some(text)
    });
    for line in dated.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["timestamp"], year.as_str(), "{line}");
        assert_eq!(v["type"], "out", "{line}");
    }
    // The flag, as PM2's --log-type.
    start_ticker(&r, "flagged", &["--log-type", "json", "-o", "flagged.log"]);
    wait_for("--log-type json lines", || {
        let text = read(&r.path("flagged.log"));
        let line = text.lines().find(|l| l.contains("tick 1"))?;
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v["app_name"] == "flagged" && v["message"] == "tick 1\n").then_some(())
    });
    wait_for("the dated combined log", || {
        read(&r.path("dated.log"))
            .contains(r#""message":"tock 2\n""#)
            .then_some(())
    });
}

/// `reloadLogs`: files moved or removed by log rotation are open again at
/// their paths by the time the command returns, and no line is lost or
/// written twice; SIGUSR2 to the daemon does the same.
#[test]
fn reload_logs_reopens_every_file_without_losing_a_line() {
    let r = Rsup::new();
    start_ticker(
        &r,
        "t",
        &["-o", "out.log", "-e", "err.log", "-l", "all.log"],
    );
    let (out, err, all) = (r.path("out.log"), r.path("err.log"), r.path("all.log"));
    wait_line(&out, "tick 2");
    std::fs::rename(&out, r.path("out.log.1")).unwrap();
    std::fs::rename(&all, r.path("all.log.1")).unwrap();
    std::fs::remove_file(&err).unwrap();
    let said = r.ok(&["reloadLogs"]);
    assert!(said.contains("reopened"), "{said}");
    assert!(out.exists() && err.exists() && all.exists());
    let next = |from: &str| numbers(&read(&r.path(from)), "tick").last().unwrap() + 3;
    wait_line(&out, &format!("tick {}", next("out.log.1")));
    wait_line(&err, &format!("tock {}", next("out.log.1")));

    // logrotate's postrotate may signal the daemon instead.
    std::fs::rename(&out, r.path("out.log.2")).unwrap();
    let daemon: i32 = read(&r.home.path().join("rsup.pid"))
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    wait_line(&out, &format!("tick {}", next("out.log.2")));
    r.ok(&["stop", "t"]);

    // Old and new files together: every line once, in order.
    let whole = |files: &[&str], word: &str| {
        let text: String = files.iter().map(|f| read(&r.path(f))).collect();
        let got = numbers(&text, word);
        let want: Vec<u64> = (0..got.len() as u64).collect();
        assert_eq!(got, want, "{word} lines across {files:?}");
    };
    whole(&["out.log.1", "out.log.2", "out.log"], "tick");
    whole(&["all.log.1", "all.log"], "tick");
    whole(&["all.log.1", "all.log"], "tock");
}

/// `flush <target>` empties the out, error and combined logs of what the
/// target names and nothing else; `flush` alone empties every log and the
/// daemon's own; a target that names nothing is an error.
#[test]
fn flush_empties_the_logs_of_its_target() {
    let r = Rsup::new();
    start_ticker(&r, "a", &["-l", "a-all.log"]);
    start_ticker(&r, "b", &[]);
    let logs = r.home.path().join("logs");
    let (a_out, a_err, a_all) = (
        logs.join("a-out.log"),
        logs.join("a-error.log"),
        r.path("a-all.log"),
    );
    let b_out = logs.join("b-out.log");
    for log in [&a_out, &a_err, &a_all, &b_out] {
        wait_line(log, "start");
    }
    wait_line(&a_out, "tick 1");
    let last = *numbers(&read(&a_out), "tick").last().unwrap();
    let said = r.ok(&["flush", "a"]);
    for log in [&a_out, &a_err, &a_all] {
        assert!(said.contains(log.to_str().unwrap()), "{said}");
        assert!(!read(log).lines().any(|l| l == "start"), "{}", read(log));
    }
    assert!(!said.contains(b_out.to_str().unwrap()), "{said}");
    assert!(read(&b_out).starts_with("start\n"));
    // The app goes on writing, at the start of the emptied file.
    let text = wait_line(&a_out, &format!("tick {}", last + 3));
    assert!(numbers(&text, "tick").iter().all(|n| *n > last), "{text}");

    let unknown = r.run(&["flush", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found: nope"));

    let daemon_log = r.home.path().join("rsup.log");
    assert!(read(&daemon_log).contains("daemon started"));
    r.ok(&["flush", "all"]);
    assert!(!read(&daemon_log).contains("daemon started"));
    assert!(!read(&b_out).lines().any(|l| l == "start"));
    r.ok(&["reloadLogs"]);
    assert!(read(&daemon_log).contains("reloadLogs"));
    r.ok(&["flush"]);
    assert!(!read(&daemon_log).contains("reloadLogs"));
}

/// `rsup logs …` running, its stdout and stderr gathered as they come.
struct Streaming {
    child: std::process::Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Streaming {
    fn start(r: &Rsup, args: &[&str]) -> Streaming {
        Streaming::spawn(r.cmd().args(args))
    }

    fn spawn(cmd: &mut std::process::Command) -> Streaming {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let gather = |mut pipe: Box<dyn Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let into = text.clone();
            std::thread::spawn(move || {
                let mut buf = [0; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    into.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            text
        };
        let out = gather(Box::new(child.stdout.take().unwrap()));
        let err = gather(Box::new(child.stderr.take().unwrap()));
        Streaming { child, out, err }
    }

    /// Waits until stdout holds a line for which `f` is true; returns all
    /// of stdout then.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        wait_for(what, || {
            let text = self.out.lock().unwrap().clone();
            text.lines().any(&f).then_some(text)
        })
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `logs` as PM2 users type it: `--lines 0` shows only what comes, `--raw`
/// the lines alone (stderr's on stderr), `--out`/`--err` one stream,
/// `--json` PM2's objects, `--timestamp` the time first; a target that
/// names nothing is an error; `logs` alone shows the daemon's log too.
#[test]
fn logs_options() {
    let r = Rsup::new();
    start_ticker(&r, "t", &[]);
    let logs = r.home.path().join("logs");
    wait_line(&logs.join("t-error.log"), "tock 3");

    let raw = r.run(&["logs", "t", "--nostream", "--raw", "--lines", "2"]);
    assert_success(&raw);
    let (out, err) = (
        String::from_utf8_lossy(&raw.stdout),
        String::from_utf8_lossy(&raw.stderr),
    );
    let body: Vec<&str> = out
        .lines()
        .filter(|l| !l.contains("last 2 lines"))
        .collect();
    assert!(
        body.iter().all(|l| l.is_empty() || l.starts_with("tick ")),
        "{out}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("tock ")).count(),
        2,
        "{err}"
    );

    let only_err = r.ok(&["logs", "t", "--nostream", "--err"]);
    assert!(only_err.contains("0|t | tock"), "{only_err}");
    assert!(
        !only_err.contains("tick") && !only_err.contains("t-out.log"),
        "{only_err}"
    );
    let only_out = r.ok(&["logs", "t", "--nostream", "--out"]);
    assert!(
        only_out.contains("0|t | tick") && !only_out.contains("tock"),
        "{only_out}"
    );

    // --lines 0: nothing from before, then what comes.
    let s = Streaming::start(&r, &["logs", "t", "--lines", "0"]);
    let text = s.wait("a streamed tick", |l| l.starts_with("0|t | tick"));
    assert!(
        !text.contains("last") && !text.contains("| start"),
        "{text}"
    );
    drop(s);

    let s = Streaming::start(&r, &["logs", "t", "--json"]);
    let text = s.wait("a JSON line", |l| l.contains(r#""message":"tock"#));
    let v: serde_json::Value = serde_json::from_str(
        text.lines()
            .find(|l| l.contains(r#""message":"tock"#))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["type"], "err");
    assert_eq!(v["app_name"], "t");
    assert_eq!(v["process_id"], 0);
    drop(s);

    let s = Streaming::start(
        &r,
        &["logs", "t", "--lines", "0", "--timestamp", "[at] YYYY"],
    );
    let year = chrono::Local::now().format("%Y").to_string();
    // `[at]` is literal, as in day.js.
    s.wait("a stamped line", |l| {
        l.starts_with(&format!("at {year} 0|t | t"))
    });
    drop(s);

    let unknown = r.run(&["logs", "nope", "--nostream"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found: nope"));

    // All: the daemon's log first, as PM2 shows its pm2.log.
    let all = r.ok(&["logs", "--nostream"]);
    let daemon_log = r.home.path().join("rsup.log");
    assert!(
        all.starts_with(&format!("{} last 15 lines:", daemon_log.display())),
        "{all}"
    );
    assert!(all.contains("rsup | "), "{all}");
    let s = Streaming::start(&r, &["log", "all", "--raw", "--lines", "0"]);
    s.wait("a raw line", |l| l.starts_with("tick "));
    assert!(!s.err.lock().unwrap().contains("rsup |"));
}

/// PM2's log-custom: any date format starts the app (day.js prints every
/// pattern), in fork and cluster mode alike, and each line gets the time.
#[test]
fn any_log_date_format_stamps_lines_in_fork_and_cluster_mode() {
    let r = Rsup::new();
    let year = chrono::Local::now().format("%Y").to_string();
    for (name, mode) in [("fork", "-x"), ("cluster", "-i")] {
        let mut flags = vec!["--log-date-format", "YYYY asdsd asd ", "--merge-logs"];
        flags.push(mode);
        if mode == "-i" {
            flags.push("1");
        }
        start_ticker(&r, name, &flags);
        let log = r.home.path().join(format!("logs/{name}-out.log"));
        let text = wait_for("stamped lines", || {
            let text = read(&log);
            text.contains(": tick 2\n").then_some(text)
        });
        for line in text.lines() {
            assert!(line.starts_with(&format!("{year} ")), "{line:?}");
        }
        let p = r.process(name);
        assert_eq!(p.restarts, 0);
        let want = if mode == "-x" { "fork" } else { "cluster" };
        assert_eq!(format!("{:?}", p.spec.exec_mode).to_lowercase(), want);
    }
}

/// `logs <namespace>` (PM2's log-namespace) and `flush <namespace>`: a
/// target is read as every verb reads one, namespaces included.
#[test]
fn logs_and_flush_take_a_namespace() {
    let r = Rsup::new();
    start_ticker(&r, "a", &["--namespace", "jobs"]);
    start_ticker(&r, "b", &["--namespace", "jobs"]);
    start_ticker(&r, "web", &[]);
    let logs = r.home.path().join("logs");
    for name in ["a", "b", "web"] {
        wait_line(&logs.join(format!("{name}-out.log")), "tick 1");
    }
    let shown = r.ok(&["logs", "jobs", "--nostream", "--out"]);
    assert!(
        shown.contains("0|a | tick") && shown.contains("1|b | tick"),
        "{shown}"
    );
    assert!(!shown.contains("web"), "{shown}");
    let s = Streaming::start(&r, &["logs", "jobs", "--lines", "0"]);
    s.wait("a streamed line of b", |l| l.starts_with("1|b | t"));
    drop(s);

    r.ok(&["flush", "jobs"]);
    assert!(!read(&logs.join("a-out.log")).lines().any(|l| l == "start"));
    assert!(read(&logs.join("web-out.log")).starts_with("start\n"));
}

#[test]
fn output_that_never_ends_its_line_still_reaches_the_combined_log() {
    let r = Rsup::new();
    let app = r.path("partial.js");
    std::fs::write(
        &app,
        "process.stderr.write('errwrite'); process.stdout.write('outwrite'); setInterval(() => {}, 1000);\n",
    )
    .unwrap();
    let all = r.path("all.log");
    r.ok(&["start", app.to_str().unwrap(), "-l", all.to_str().unwrap()]);
    wait_for("both unfinished lines in the combined log", || {
        let text = std::fs::read_to_string(&all).unwrap_or_default();
        (text.contains("errwrite") && text.contains("outwrite")).then_some(())
    });
}

/// `logs` picks up processes started after it began, from their first
/// line, as PM2's does; `--highlight` marks a word in the lines it streams.
#[test]
fn logs_follows_processes_started_after_it_began() {
    let r = Rsup::new();
    start_ticker(&r, "a", &[]);
    let mut cmd = r.cmd();
    cmd.env_remove("NO_COLOR");
    let s = Streaming::spawn(cmd.args(["logs", "--lines", "0", "--highlight", "tock"]));
    s.wait("a streamed tock of a", |l| {
        l.starts_with("0|a ") && l.contains(" | \x1b[100mtock\x1b[49m ")
    });
    start_ticker(&r, "b", &[]);
    // Its first line too: it came before `logs` knew of it.
    s.wait("b's first line", |l| {
        l.starts_with("1|b ") && l.ends_with(" | start")
    });
    s.wait("b's ticks", |l| {
        l.starts_with("1|b ") && l.contains(" | tick")
    });
}
