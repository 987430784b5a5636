//! Logs: each instance's stdout and stderr in files, nothing lost.

use crate::harness::*;

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
