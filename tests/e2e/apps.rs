//! The app as the unit: names taken once, operations on one app one after
//! another, targets resolved the same way for every verb.

use crate::harness::*;
use rsup_proto::app::{ProcessInfo, Status};

fn names_and_status(procs: &[ProcessInfo]) -> Vec<(String, Status)> {
    procs.iter().map(|p| (p.name.clone(), p.status)).collect()
}

#[test]
fn a_name_is_taken_while_its_file_is_still_starting() {
    let r = Rsup::new();
    let app = fixture("app.js");
    let config = r.path("two.config.js");
    // "slow" never says ready, so the first start waits out its
    // listen_timeout before it reaches "quick".
    std::fs::write(
        &config,
        format!(
            "module.exports = {{ apps: [
                {{ name: 'slow', script: {app:?}, wait_ready: true, listen_timeout: 4000 }},
                {{ name: 'quick', script: {app:?} }},
            ] }};"
        ),
    )
    .unwrap();
    let first = {
        let mut c = r.cmd();
        c.args(["start", config.to_str().unwrap()])
            .env("REPORT", r.path("report"));
        std::thread::spawn(move || c.output().unwrap())
    };
    r.wait_report("report", "start");
    let second = r.start_fixture("app.js", "quick", &[], &[]);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("\"quick\" is already running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_success(&first.join().unwrap());
    let procs = r.jlist();
    assert_eq!(
        procs.iter().filter(|p| p.name == "quick").count(),
        1,
        "{:?}",
        names_and_status(&procs)
    );
}

#[test]
fn a_number_names_the_same_process_for_every_verb() {
    let r = Rsup::new();
    // App "1" gets id 0; app "x" gets id 1: "1" means id 1, for every verb.
    assert_success(&r.start_fixture("app.js", "1", &[], &[]));
    assert_success(&r.start_fixture("app.js", "x", &[], &[]));
    assert_eq!(r.process("x").id, 1);

    let shown = r.ok(&["describe", "1"]);
    assert!(shown.contains("x"), "{shown}");
    let logs = wait_for("x's output in its log", || {
        let logs = r.ok(&["logs", "1", "--nostream", "--lines", "5"]);
        logs.contains("out line from").then_some(logs)
    });
    assert!(logs.contains("1|x"), "{logs}");
    assert!(!logs.contains("0|1"), "{logs}");

    r.ok(&["stop", "1"]);
    assert_eq!(r.process("x").status, Status::Stopped);
    assert_eq!(r.process("1").status, Status::Online);

    // A number no process has as its id names the app of that name.
    assert_success(&r.start_fixture("app.js", "7", &[], &[]));
    r.ok(&["stop", "7"]);
    assert_eq!(r.process("7").status, Status::Stopped);
}

#[test]
fn a_pattern_names_every_app_it_matches() {
    let r = Rsup::new();
    for name in ["api-a", "api-b", "web"] {
        assert_success(&r.start_fixture("app.js", name, &[], &[]));
    }
    r.ok(&["stop", "/^api-/"]);
    let procs = r.jlist();
    assert_eq!(
        names_and_status(&procs),
        [
            ("api-a".to_string(), Status::Stopped),
            ("api-b".to_string(), Status::Stopped),
            ("web".to_string(), Status::Online),
        ]
    );
    let bad = r.run(&["stop", "/(/"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid pattern /(/"));
    let none = r.run(&["stop", "/^nothing/"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("not found: /^nothing/"));
}

#[test]
fn scale_counts_up_and_down_from_what_runs() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "sc", &["-i", "1"], &[]));
    r.ok(&["scale", "sc", "+2"]);
    assert_eq!(r.jlist().len(), 3);
    r.ok(&["scale", "sc", "-1"]);
    let mut instances: Vec<u32> = r.jlist().iter().map(|p| p.instance).collect();
    instances.sort();
    assert_eq!(instances, [0, 1]);
    let bad = r.run(&["scale", "sc", "two"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("scale: expected a number"));
}

#[test]
fn a_scale_during_a_reload_waits_for_it_and_leaves_no_strays() {
    let r = Rsup::new();
    let flags = ["-i", "2", "--wait-ready", "--listen-timeout", "2000"];
    assert_success(&r.start_fixture("app.js", "busy", &flags, &[]));
    // Never ready: each new process waits out listen_timeout.
    let reload = {
        let mut c = r.cmd();
        c.args(["reload", "busy"]);
        std::thread::spawn(move || c.output().unwrap())
    };
    wait_for("the reload to start a process", || {
        let starts = r.report("report");
        (starts.iter().filter(|l| l.starts_with("start")).count() >= 3).then_some(())
    });
    r.ok(&["scale", "busy", "1"]);
    assert_success(&reload.join().unwrap());

    let procs = r.jlist();
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0].instance, 0);
    let running = procs[0].pid.unwrap();
    for pid in started_pids(&r) {
        assert_eq!(alive(pid), pid == running, "pid {pid}: stray or missing");
    }
}

#[test]
fn a_delete_during_a_reload_waits_for_it_and_frees_the_name() {
    let r = Rsup::new();
    let flags = ["--wait-ready", "--listen-timeout", "2000"];
    assert_success(&r.start_fixture("app.js", "gone", &flags, &[]));
    let reload = {
        let mut c = r.cmd();
        c.args(["reload", "gone"]);
        std::thread::spawn(move || c.output().unwrap())
    };
    wait_for("the reload to start a process", || {
        let starts = r.report("report");
        (starts.iter().filter(|l| l.starts_with("start")).count() >= 2).then_some(())
    });
    r.ok(&["delete", "gone"]);
    assert_success(&reload.join().unwrap());
    assert!(r.jlist().is_empty());
    for pid in started_pids(&r) {
        assert!(!alive(pid), "pid {pid} outlived its app");
    }
    // The name is free again at once.
    assert_success(&r.start_fixture("app.js", "gone", &[], &[]));
}

fn started_pids(r: &Rsup) -> Vec<u32> {
    r.report("report")
        .iter()
        .filter_map(|l| l.strip_prefix("start pid="))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn foreground_mode_stops_apps_that_are_still_starting_on_sigterm() {
    let r = Rsup::new();
    let mut fg = r
        .cmd()
        .args([
            "start",
            fixture("app.js").to_str().unwrap(),
            "--name",
            "early",
            "--wait-ready",
            "--listen-timeout",
            "60000",
            "--no-daemon",
        ])
        .env("REPORT", r.path("report"))
        .spawn()
        .unwrap();
    // The app runs but is not ready: rsup is still starting it.
    r.wait_report("report", "start");
    let pid = started_pids(&r)[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fg.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = fg.wait().unwrap();
    assert!(status.success(), "{status}");
    wait_for("the app to be gone", || (!alive(pid)).then_some(()));
    assert!(r.report("report").contains(&"signal SIGINT".to_string()));
}

#[test]
fn start_of_a_known_name_or_id_starts_it_again() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &["-i", "2"], &[]));
    r.ok(&["stop", "api"]);
    assert!(r.jlist().iter().all(|p| p.status == Status::Stopped));
    let out = r.run(&["start", "api"]);
    assert_success(&out);
    let procs = r.jlist();
    assert_eq!(procs.len(), 2, "no second app was made");
    assert!(procs.iter().all(|p| p.status == Status::Online));
    r.ok(&["stop", "1"]);
    assert_success(&r.run(&["start", "1"]));
    assert_eq!(r.process("api").status, Status::Online);
    // A name that is neither a file nor a process is still an error.
    let out = r.run(&["start", "nothing-here"]);
    assert!(!out.status.success());
}
