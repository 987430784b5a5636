//! `sendSignal` (PM2's: to each running instance's process, by name, id or
//! namespace) and `reset` (restart counters back to zero).

use crate::harness::*;
use rsup_proto::app::Status;

fn usr2_lines(r: &Rsup) -> Vec<String> {
    r.report("report")
        .into_iter()
        .filter(|l| l.starts_with("signal SIGUSR2"))
        .collect()
}

#[test]
fn send_signal_reaches_each_running_instance_by_name_and_by_id() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "sig", &["-i", "2"], &[]));
    wait_for("both to start", || {
        (r.report("report")
            .iter()
            .filter(|l| l.starts_with("start"))
            .count()
            == 2)
            .then_some(())
    });
    let procs = r.jlist();
    // Named twice (by name and by id), an instance gets it once.
    r.ok(&["sendSignal", "SIGUSR2", "sig", "0"]);
    let lines = wait_for("both to get it", || {
        let l = usr2_lines(&r);
        (l.len() == 2).then_some(l)
    });
    for p in &procs {
        let want = format!(
            "signal SIGUSR2 pid={} instance={}",
            p.pid.unwrap(),
            p.instance
        );
        assert!(lines.contains(&want), "{lines:?}");
    }
    // The app goes on: a signal is not a stop.
    assert!(r.jlist().iter().all(|p| p.status == Status::Online));

    // By id, and PM2's short name of the signal.
    r.ok(&["sendSignal", "usr2", &procs[1].id.to_string()]);
    wait_for("the second instance to get it", || {
        (usr2_lines(&r).len() == 3).then_some(())
    });
    assert!(usr2_lines(&r)[2].contains(&format!("pid={}", procs[1].pid.unwrap())));

    // A stopped instance has no process to signal; named alone, that fails.
    r.ok(&["stop", &procs[0].id.to_string()]);
    let out = r.run(&["sendSignal", "SIGUSR2", &procs[0].id.to_string()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no running process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // By name, the running one gets it.
    r.ok(&["sendSignal", "SIGUSR2", "sig"]);
    wait_for("the running one to get it", || {
        (usr2_lines(&r).len() == 4).then_some(())
    });

    for (args, says) in [
        (
            ["sendSignal", "SIGNOPE", "sig"],
            "not a signal name: \"SIGNOPE\"",
        ),
        (["sendSignal", "SIGUSR2", "nope"], "not found: nope"),
    ] {
        let out = r.run(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn reset_sets_restart_counters_back_to_zero_by_id_name_and_all() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "a", &["-i", "2"], &[]));
    assert_success(&r.start_fixture("app.js", "b", &[], &[]));
    // Each process reports its start before the next restart stops it.
    let starts = || {
        r.report("report")
            .iter()
            .filter(|l| l.starts_with("start"))
            .count()
    };
    let launched = |n: usize| wait_for(&format!("{n} starts"), || (starts() >= n).then_some(()));
    launched(3);
    r.ok(&["restart", "all"]);
    launched(6);
    r.ok(&["restart", "all"]);
    launched(9);
    let restarts = |r: &Rsup| -> Vec<u32> { r.jlist().iter().map(|p| p.restarts).collect() };
    assert_eq!(restarts(&r), [2, 2, 2]);
    r.ok(&["reset", "1"]);
    assert_eq!(restarts(&r), [2, 0, 2]);
    r.ok(&["reset", "b"]);
    assert_eq!(restarts(&r), [2, 0, 0]);
    r.ok(&["reset", "all"]);
    assert_eq!(restarts(&r), [0, 0, 0]);
    // Nothing was stopped or started.
    assert_eq!(starts(), 9);
    assert!(r.jlist().iter().all(|p| p.status == Status::Online));
    assert!(!r.run(&["reset", "nope"]).status.success());
}

#[test]
fn reset_starts_the_crash_accounting_over() {
    let r = Rsup::new();
    // Waits 1 s between crash restarts, so the crash loop is still going
    // when the reset comes.
    r.start_fixture(
        "app.js",
        "loop",
        &["--max-restarts", "3", "--restart-delay", "1000"],
        &[("MODE", "crash")],
    );
    wait_for("two crash restarts", || {
        (r.process("loop").restarts >= 2).then_some(())
    });
    r.ok(&["reset", "loop"]);
    // Four unstable exits counted from the reset before it gives up, so at
    // least six launches in all; without the reset it would stop at four.
    let p = r.wait_status("loop", Status::Errored);
    assert_eq!(p.restarts, 3);
    let starts = r
        .report("report")
        .iter()
        .filter(|l| l.starts_with("start"))
        .count();
    assert!(starts >= 6, "{starts} launches");
}
