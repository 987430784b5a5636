//! Start: `online` at once, on `ready` with wait_ready, or at listen_timeout.

use crate::harness::*;
use rsup_proto::app::Status;
use std::thread;

#[test]
fn wait_ready_holds_online_back_until_the_app_says_ready() {
    let r = Rsup::new();
    let trigger = r.path("go");
    let app = fixture("app.js");
    let start = {
        let mut c = r.cmd();
        c.args([
            "start",
            app.to_str().unwrap(),
            "--name",
            "w",
            "--wait-ready",
        ])
        .args(["--listen-timeout", "60000"])
        .env("REPORT", r.path("report"))
        .env("READY_WHEN", &trigger);
        thread::spawn(move || c.output().unwrap())
    };
    // Running but not ready: launching, and `start` has not returned.
    r.wait_report("report", "start");
    let p = wait_for("the daemon to list w", || {
        let list = serde_json::from_str::<Vec<rsup_proto::app::ProcessInfo>>(
            &String::from_utf8_lossy(&r.run(&["jlist", "--native"]).stdout),
        )
        .ok()?;
        list.into_iter().find(|p| p.name == "w")
    });
    assert_eq!(p.status, Status::Launching);
    assert!(
        !start.is_finished(),
        "start returned before the app was ready"
    );

    std::fs::write(&trigger, "").unwrap();
    let out = start.join().unwrap();
    assert_success(&out);
    assert_eq!(r.process("w").status, Status::Online);
    assert!(r.report("report").contains(&"ready".to_string()));
}

#[test]
fn listen_timeout_releases_an_app_that_never_says_ready() {
    let r = Rsup::new();
    let out = r.start_fixture(
        "app.js",
        "slow",
        &["--wait-ready", "--listen-timeout", "800"],
        &[],
    );
    assert_success(&out);
    assert_eq!(r.process("slow").status, Status::Online);
    assert!(!r.report("report").contains(&"ready".to_string()));
}

#[test]
fn without_wait_ready_an_app_is_online_at_once_with_pm2_variables() {
    let r = Rsup::new();
    let out = r.start_fixture("app.js", "plain", &["-i", "2"], &[]);
    assert_success(&out);
    let procs = r.jlist();
    assert_eq!(procs.len(), 2);
    assert!(procs.iter().all(|p| p.status == Status::Online));
    let lines = wait_for("both instances to report", || {
        let l = r.report("report");
        (l.len() >= 2).then_some(l)
    });
    // NODE_APP_INSTANCE is the lowest free index; pm_id the daemon's id.
    let mut seen: Vec<String> = lines
        .iter()
        .map(|l| l.split(' ').nth(2).unwrap().to_string())
        .collect();
    seen.sort();
    assert_eq!(seen, ["instance=0", "instance=1"]);
    let table = r.ok(&["list"]);
    assert!(
        table.contains("plain") && table.contains("online"),
        "{table}"
    );
}

#[test]
fn restart_keeps_the_instance_index_and_counts_restarts() {
    let r = Rsup::new();
    let out = r.start_fixture("app.js", "keep", &[], &[]);
    assert!(out.status.success());
    // Restart only once the first process has set up its handlers.
    r.wait_report("report", "start pid=");
    let before = r.process("keep");
    r.ok(&["restart", "keep"]);
    let after = r.process("keep");
    assert_eq!(after.id, before.id);
    assert_eq!(after.instance, before.instance);
    assert_ne!(after.pid, before.pid);
    assert_eq!(after.restarts, 1);
    assert!(!alive(before.pid.unwrap()));
    let last = wait_for("the second start", || {
        let l = r.report("report");
        l.iter().filter(|x| x.starts_with("start")).nth(1).cloned()
    });
    assert!(last.contains("restart_time=1"), "{last}");
    assert!(last.contains("instance=0"), "{last}");
    assert!(r.report("report").contains(&"signal SIGINT".to_string()));
}
