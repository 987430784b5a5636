//! Crashes: restart per policy, and `errored` after too many unstable
//! restarts.

use crate::harness::*;
use rsup_proto::app::Status;

#[test]
fn a_crash_loop_ends_in_errored_after_max_restarts() {
    let r = Rsup::new();
    // `start` itself may see it online before the first crash, so its exit
    // code says nothing here.
    r.start_fixture(
        "app.js",
        "loop",
        &["--max-restarts", "3"],
        &[("MODE", "crash")],
    );
    let p = r.wait_status("loop", Status::Errored);
    assert_eq!(p.restarts, 3);
    assert_eq!(p.last_exit.unwrap().code, Some(1));
    assert_eq!(p.pid, None);
    // Four launches: the first and three restarts; then it stays down.
    let starts = r
        .report("report")
        .iter()
        .filter(|l| l.starts_with("start"))
        .count();
    assert_eq!(starts, 4);
}

#[test]
fn a_killed_app_is_restarted_with_the_same_id() {
    let r = Rsup::new();
    let out = r.start_fixture("app.js", "phoenix", &[], &[]);
    assert!(out.status.success());
    let before = r.process("phoenix");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before.pid.unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let after = wait_for("a new process", || {
        let p = r.process("phoenix");
        (p.status == Status::Online && p.pid.is_some() && p.pid != before.pid).then_some(p)
    });
    assert_eq!(after.id, before.id);
    assert_eq!(after.restarts, 1);
    assert_eq!(after.last_exit.unwrap().signal.as_deref(), Some("SIGKILL"));
}

#[test]
fn no_autorestart_leaves_a_crashed_app_stopped() {
    let r = Rsup::new();
    r.start_fixture(
        "app.js",
        "once",
        &["--no-autorestart"],
        &[("MODE", "crash")],
    );
    let p = r.wait_status("once", Status::Stopped);
    assert_eq!(p.restarts, 0);
    assert_eq!(r.report("report").len(), 1);
}

#[test]
fn start_with_wait_ready_fails_clearly_when_the_app_crash_loops() {
    let r = Rsup::new();
    let out = r.start_fixture(
        "app.js",
        "broken",
        &["--wait-ready", "--max-restarts", "2"],
        &[("MODE", "crash")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken (id 0) failed to start (errored after 2 restarts)"),
        "{err}"
    );
    // It answered once the crash loop had ended, not while it ran.
    assert_eq!(r.process("broken").status, Status::Errored);
}

#[test]
fn start_of_a_one_shot_app_that_exits_cleanly_succeeds() {
    let r = Rsup::new();
    let out = r
        .cmd()
        .args(["start", "true", "--name", "once", "--no-autorestart"])
        .output()
        .unwrap();
    assert_success(&out);
}

#[test]
fn a_crash_restart_counts_once_its_delay_is_over() {
    let r = Rsup::new();
    r.start_fixture(
        "app.js",
        "slow",
        &["--restart-delay", "3000"],
        &[("MODE", "crash")],
    );
    // Waiting out the delay, as PM2 does: not restarted yet.
    let waiting = r.wait_status("slow", Status::WaitingRestart);
    assert_eq!(waiting.restarts, 0);
    wait_for("the restart", || {
        (r.process("slow").restarts == 1).then_some(())
    });
    wait_for("its second launch", || {
        let starts = r
            .report("report")
            .iter()
            .filter(|l| l.starts_with("start"))
            .count();
        (starts == 2).then_some(())
    });
}
