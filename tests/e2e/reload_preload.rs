//! Reloads that depend on rsup's Node preload: with wait_ready a new
//! instance takes no connection before it says ready, and an app started
//! through a package manager (`rsup start npm -- start`) gets the
//! supervisor's socket in the node that npm starts, so it reloads without
//! downtime too.

use crate::harness::*;
use crate::http_client::{under_load, Tally};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

/// The value of `key=` in a report line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Waits until `r`'s report has `n` lines starting with `prefix`.
fn report_lines(r: &Rsup, prefix: &str, n: usize) -> Vec<String> {
    wait_for(&format!("{n} report lines starting {prefix:?}"), || {
        let lines: Vec<String> = r
            .report("report")
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect();
        (lines.len() >= n).then_some(lines)
    })
}

/// Waits until every pid of `pids` has answered a request of `tally`.
fn wait_served_by(tally: &Tally, pids: &[u32]) {
    wait_for(&format!("{pids:?} to serve"), || {
        let seen = tally.pids.lock().unwrap();
        pids.iter()
            .all(|p| seen.contains(&p.to_string()))
            .then_some(())
    });
}

#[test]
fn with_wait_ready_a_new_instance_takes_no_connection_before_ready() {
    let r = Rsup::new();
    // The app says ready 1.5 s after listening; listen_timeout is far
    // off, so nothing but its ready lets it accept.
    let out = r.start_fixture(
        "ready-late.js",
        "warm",
        &["-i", "2", "--wait-ready", "--listen-timeout", "60000"],
        &[("PORT", "0")],
    );
    assert_success(&out);
    let first = report_lines(&r, "ready ", 2);
    let port: u16 = field(&report_lines(&r, "listening ", 1)[0], "port")
        .parse()
        .unwrap();
    let first_pids: BTreeSet<&str> = first.iter().map(|l| field(l, "pid")).collect();

    let tally = under_load(port, |tally| {
        r.ok(&["reload", "warm"]);
        let new_pids: Vec<u32> = r.jlist().iter().filter_map(|p| p.pid).collect();
        wait_served_by(tally, &new_pids);
    });
    tally.assert_no_failures();

    let readies = report_lines(&r, "ready ", 4);
    eprintln!("{readies:#?}");
    let new: Vec<&String> = readies
        .iter()
        .filter(|l| !first_pids.contains(field(l, "pid")))
        .collect();
    assert_eq!(new.len(), 2, "{readies:?}");
    for line in new {
        assert_eq!(field(line, "served_before_ready"), "0", "{readies:?}");
    }
}

#[test]
fn an_app_started_by_npm_reloads_without_downtime() {
    let r = Rsup::new();
    let port = free_port();
    let app_dir = fixture("npm-app");
    let out = r
        .cmd()
        .args(["start", "npm", "--name", "web", "--cwd"])
        .arg(&app_dir)
        .args(["--", "start"])
        .env("PORT", port.to_string())
        .env("REPORT", r.path("report"))
        .output()
        .expect("rsup runs");
    assert_success(&out);
    let first = report_lines(&r, "listening ", 1);
    let first_app: u32 = field(&first[0], "pid").parse().unwrap();
    let npm_pid = r.process("web").pid.expect("npm runs");
    assert_ne!(first_app, npm_pid, "npm runs the app's node as a child");

    let tally = under_load(port, |tally| {
        wait_served_by(tally, &[first_app]);
        for n in 2..=3 {
            r.ok(&["reload", "web"]);
            let lines = report_lines(&r, "listening ", n);
            let app: u32 = field(&lines[n - 1], "pid").parse().unwrap();
            wait_served_by(tally, &[app]);
        }
    });
    tally.assert_no_failures();
    assert!(!alive(first_app), "the first app process survived");
    assert!(!alive(npm_pid), "the first npm process survived");
    assert_eq!(r.process("web").restarts, 2);

    // The app claimed the channel and took the preload out of what its
    // own children inherit.
    for line in report_lines(&r, "inherits ", 3) {
        assert_eq!(line, "inherits NODE_OPTIONS=null RSUP_FD=null", "{line}");
    }
}

#[test]
fn with_wait_ready_an_app_that_never_says_ready_serves_after_listen_timeout() {
    let r = Rsup::new();
    let flags = ["--wait-ready", "--listen-timeout", "1500"];
    assert_success(&r.start_fixture("http.js", "mute", &flags, &[("PORT", "0")]));
    let line = report_lines(&r, "listening", 1).remove(0);
    let port: u16 = field(&line, "port").parse().unwrap();
    let pid = r
        .wait_status("mute", rsup_proto::app::Status::Online)
        .pid
        .unwrap();
    let tally = under_load(port, |tally| wait_served_by(tally, &[pid]));
    assert_eq!(tally.failed.load(Ordering::SeqCst), 0);
}
