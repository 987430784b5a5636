//! When an app is restarted or left down: `max_memory_restart` (checked
//! every `PM2_WORKER_INTERVAL` ms), `stop_exit_codes`, and stopping with
//! the `shutdown` message under `PM2_KILL_USE_MESSAGE`.

use crate::harness::*;
use crate::http_client::under_load;
use rsup_proto::app::Status;
use std::sync::atomic::Ordering;

fn daemon_log_says(r: &Rsup, what: &str) {
    wait_for(&format!("{what:?} in the daemon's log"), || {
        let log = std::fs::read_to_string(r.home.path().join("rsup.log")).unwrap_or_default();
        log.contains(what).then_some(())
    });
}

#[test]
fn a_server_over_its_memory_limit_is_reloaded_without_a_failed_request() {
    let r = Rsup::new();
    let hog_when = r.path("hog-now");
    // The daemon reads PM2_WORKER_INTERVAL when this command starts it.
    let out = r.start_fixture(
        "http.js",
        "hog",
        &["--max-memory-restart", "64M"],
        &[
            ("PORT", "0"),
            ("HOG_WHEN", hog_when.to_str().unwrap()),
            ("PM2_WORKER_INTERVAL", "200"),
        ],
    );
    assert_success(&out);
    assert_eq!(
        r.process("hog").spec.max_memory_restart_bytes,
        Some(64 << 20)
    );
    let line = r.wait_report("report", "listening").remove(0);
    let port: u16 = line.rsplit("port=").next().unwrap().parse().unwrap();
    let first = r.process("hog").pid;
    let served = |tally: &crate::http_client::Tally| tally.ok.load(Ordering::SeqCst);
    let tally = under_load(port, |tally| {
        wait_for("traffic", || (served(tally) > 100).then_some(()));
        std::fs::write(&hog_when, "").unwrap();
        wait_for("the replacement to be online", || {
            let p = r.process("hog");
            (p.restarts == 1 && p.status == Status::Online).then_some(())
        });
        let before = served(tally);
        wait_for("traffic to the new process", || {
            (served(tally) > before + 100).then_some(())
        });
    });
    tally.assert_no_failures();
    let p = r.process("hog");
    assert_ne!(p.pid, first);
    // A reload, as the daemon's log says once the old process is gone.
    daemon_log_says(&r, "reloaded for memory");
    // The second process is small, and stays.
    assert!(p.memory_bytes < 64 << 20);
    assert!(r.ok(&["describe", "hog"]).contains("│ 64mb "));
}

#[test]
fn a_worker_over_its_memory_limit_is_restarted_at_once() {
    let r = Rsup::new();
    let out = r.start_fixture(
        "app.js",
        "hog",
        &["--max-memory-restart", "64M"],
        &[
            ("MODE", "hog"),
            ("HOGGED", r.path("hogged").to_str().unwrap()),
            ("PM2_WORKER_INTERVAL", "200"),
        ],
    );
    assert_success(&out);
    r.wait_report("report", "hogging");
    wait_for("the replacement to be online", || {
        let p = r.process("hog");
        (p.restarts == 1 && p.status == Status::Online).then_some(())
    });
    let lines = wait_for("the second start", || {
        let l = r.report("report");
        (l.iter().filter(|l| l.starts_with("start")).count() == 2).then_some(l)
    });
    // Nothing to hand over: stopped first, then started, as PM2 does it.
    daemon_log_says(&r, "restarted for memory");
    let stopped = lines.iter().position(|l| l == "signal SIGINT").unwrap();
    let second = lines.iter().rposition(|l| l.starts_with("start")).unwrap();
    assert!(stopped < second, "{lines:?}");
}

#[test]
fn a_memory_limit_in_a_file_takes_pm2s_units() {
    let r = Rsup::new();
    let config = r.path("mem.json");
    std::fs::write(
        &config,
        format!(
            r#"{{ "name": "m", "script": {:?}, "max_memory_restart": "300K" }}"#,
            fixture("app.js")
        ),
    )
    .unwrap();
    // Any Node process is above 300 KB: restarted at every check.
    let out = r
        .cmd()
        .args(["start", config.to_str().unwrap()])
        .env("PM2_WORKER_INTERVAL", "200")
        .env("REPORT", r.path("report"))
        .output()
        .unwrap();
    assert_success(&out);
    wait_for("a restart for memory", || {
        (r.process("m").restarts >= 1).then_some(())
    });
    let bad = r.run(&[
        "start",
        fixture("app.js").to_str().unwrap(),
        "--max-memory-restart",
        "20 MB",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--max-memory-restart must be"));
}

#[test]
fn stop_exit_codes_leave_the_app_stopped_and_other_codes_restart_it() {
    let r = Rsup::new();
    r.start_fixture(
        "app.js",
        "done",
        &["--stop-exit-codes", "42", "7"],
        &[("MODE", "crash"), ("CRASH_CODE", "42")],
    );
    let p = r.wait_status("done", Status::Stopped);
    assert_eq!(p.restarts, 0);
    assert_eq!(p.last_exit.unwrap().code, Some(42));
    assert_eq!(p.spec.stop_exit_codes, [42, 7]);

    r.start_fixture(
        "app.js",
        "again",
        &["--stop-exit-codes", "42", "--max-restarts", "2"],
        &[("MODE", "crash")],
    );
    let p = r.wait_status("again", Status::Errored);
    assert_eq!(p.restarts, 2);
}

#[test]
fn pm2_kill_use_message_stops_with_the_shutdown_message() {
    let r = Rsup::new();
    let out = r.start_fixture("app.js", "msg", &[], &[("PM2_KILL_USE_MESSAGE", "true")]);
    assert_success(&out);
    assert!(r.process("msg").spec.shutdown_with_message);
    r.wait_report("report", "start");
    r.ok(&["stop", "msg"]);
    let lines = r.report("report");
    assert!(
        lines.contains(&"message \"shutdown\"".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("signal")), "{lines:?}");
}
