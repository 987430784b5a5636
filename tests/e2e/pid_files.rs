//! Pid files: each instance's (PM2's `pids/<name>-<id>.pid`, or `-p`'s
//! `<stem>-<id>.<ext>`), the daemon's `pm2.pid`, and the `pid` verb.

use crate::harness::*;
use rsup_proto::app::Status;
use std::path::Path;

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn an_instances_pid_file_follows_its_process_and_goes_with_it() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    let p = r.process("api");
    let file = r.home.path().join("pids/api-0.pid");
    assert_eq!(p.pid_file, file);
    assert_eq!(read_pid(&file), p.pid);

    r.ok(&["restart", "api"]);
    let restarted = r.process("api");
    assert_ne!(restarted.pid, p.pid);
    assert_eq!(read_pid(&file), restarted.pid);

    r.ok(&["reload", "api"]);
    let reloaded = r.process("api");
    assert_ne!(reloaded.pid, restarted.pid);
    assert_eq!(read_pid(&file), reloaded.pid);

    // A crash restart writes the new pid too.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(reloaded.pid.unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let crashed = wait_for("a new process", || {
        let p = r.process("api");
        (p.status == Status::Online && p.pid.is_some() && p.pid != reloaded.pid).then_some(p)
    });
    wait_for("the new pid in the file", || {
        (read_pid(&file) == crashed.pid).then_some(())
    });

    r.ok(&["stop", "api"]);
    assert!(!file.exists());
    r.ok(&["start", "api"]);
    assert_eq!(read_pid(&file), r.process("api").pid);
    r.ok(&["delete", "api"]);
    assert!(!file.exists());
}

#[test]
fn pid_flag_writes_one_file_per_instance() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "echo", &["-p", "run/echo.pid", "-i", "2"], &[]));
    let procs = r.jlist();
    assert_eq!(procs.len(), 2);
    for p in &procs {
        let file = r.path(&format!("run/echo-{}.pid", p.id));
        assert_eq!(p.pid_file, file);
        assert_eq!(read_pid(&file), p.pid, "{}", file.display());
    }
    r.ok(&["stop", "all"]);
    assert!(!r.path("run/echo-0.pid").exists());
    assert!(!r.path("run/echo-1.pid").exists());
}

#[test]
fn pid_prints_each_processs_pid_and_zero_when_stopped() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "a", &["-i", "2"], &[]));
    assert_success(&r.start_fixture("app.js", "b", &[], &[]));
    let pids: Vec<String> = r
        .jlist()
        .iter()
        .map(|p| p.pid.unwrap().to_string())
        .collect();
    assert_eq!(r.ok(&["pid"]).lines().collect::<Vec<_>>(), pids);
    assert_eq!(r.ok(&["pid", "a"]).lines().collect::<Vec<_>>(), pids[..2]);
    r.ok(&["stop", "b"]);
    assert_eq!(r.ok(&["pid", "b"]), "0\n");
    assert!(!r.run(&["pid", "nope"]).status.success());
}

#[test]
fn the_daemons_pid_is_in_pm2_pid_and_sigterm_through_it_stops_everything() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    let app_pid = r.process("api").pid.unwrap();
    r.wait_report("report", "start");
    let pm2_pid = r.home.path().join("pm2.pid");
    let daemon = read_pid(&pm2_pid).expect("pm2.pid holds a pid");
    assert_eq!(Some(daemon), read_pid(&r.home.path().join("rsup.pid")));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&pm2_pid).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "pm2.pid is private");
    // What PM2's users script: kill `cat ~/.pm2/pm2.pid`.
    let killed = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill `cat {}`", pm2_pid.display()))
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for("the daemon to exit", || (!alive(daemon)).then_some(()));
    assert!(!alive(app_pid), "the app outlived its daemon");
    assert!(r.report("report").iter().any(|l| l == "signal SIGINT"));
    assert!(!pm2_pid.exists());
    assert!(!r.home.path().join("pids/api-0.pid").exists());
}
