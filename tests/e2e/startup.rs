//! `startup`: the systemd unit, and its ExecStart line run for real with a
//! notification socket standing in for systemd.

use crate::harness::*;
use rsup_proto::app::Status;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

/// The next notification whose lines include `wanted`, with all its lines.
fn wait_notification(sock: &UnixDatagram, wanted: &str) -> Vec<String> {
    let mut buf = [0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {wanted} from the daemon: {e}"));
        let lines: Vec<String> = String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(String::from)
            .collect();
        if lines.iter().any(|l| l == wanted) {
            return lines;
        }
    }
}

fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in\n{unit}"))
}

#[test]
fn the_units_daemon_reports_ready_once_the_saved_apps_are_up() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &["-i", "2"], &[]));
    r.ok(&["save"]);
    r.ok(&["kill"]);

    let units = tempfile::tempdir().unwrap();
    let out = r.ok(&[
        "startup",
        "systemd",
        "--install",
        "--unit-dir",
        units.path().to_str().unwrap(),
    ]);
    assert!(out.contains("wrote"), "{out}");
    let file = std::fs::read_dir(units.path())
        .unwrap()
        .next()
        .expect("a unit file")
        .unwrap()
        .path();
    let unit = std::fs::read_to_string(&file).unwrap();
    assert_eq!(unit_value(&unit, "Type="), "notify");
    assert_eq!(
        unit_value(&unit, "Environment=\"RSUP_HOME="),
        format!("{}\"", r.home.path().display()),
        "the unit serves the home folder of whoever installed it"
    );
    let exec = unit_value(&unit, "ExecStart=");
    let (exe, args) = exec
        .strip_prefix('"')
        .and_then(|e| e.split_once("\" "))
        .expect("ExecStart=\"<exe>\" <args>");

    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let verify = Command::new("systemd-analyze")
            .args(["verify", file.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&verify.stderr);
        assert!(
            !stderr.contains(file.to_str().unwrap()),
            "systemd-analyze verify: {stderr}"
        );
    }

    // Run the ExecStart line as systemd would, with its notification socket.
    let notify_path = r.path("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(PATIENCE)).unwrap();
    // systemd names the main process in WATCHDOG_PID: the keeper, whose
    // daemon pings for it.
    let mut daemon = Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\"", exe])
        .args(args.split(' '))
        .env("RSUP_HOME", r.home.path())
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "300000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let ready = wait_notification(&notify, "READY=1");
    assert!(
        ready.iter().any(|l| l == "STATUS=1 app(s) started"),
        "{ready:?}"
    );
    // Ready means the saved apps are up, not merely that they were asked for.
    let procs = r.jlist();
    assert_eq!(procs.len(), 2);
    assert!(
        procs.iter().all(|p| p.status == Status::Online),
        "{procs:?}"
    );
    wait_notification(&notify, "WATCHDOG=1");

    // `systemctl reload` runs the unit's ExecReload: a reload of every app.
    let exec_reload = |r: &Rsup| {
        let line = unit_value(&unit, "ExecReload=");
        let args = line
            .strip_prefix(&format!("\"{exe}\" "))
            .expect("ExecReload runs the same binary");
        let mut c = r.cmd();
        c.args(args.split(' '));
        c
    };
    let reload = std::thread::spawn({
        let mut c = exec_reload(&r);
        move || c.output().unwrap()
    });
    let reloading = wait_notification(&notify, "RELOADING=1");
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    wait_notification(&notify, "READY=1");
    assert_success(&reload.join().unwrap());

    // With no app left, `systemctl reload` still succeeds, while a user's
    // `reload all` fails on nothing as PM2's does.
    r.ok(&["delete", "all"]);
    assert_success(&exec_reload(&r).output().unwrap());
    let plain = r.run(&["reload", "all"]);
    assert!(!plain.status.success());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("no process found"));

    // systemd's stop: SIGTERM to the daemon alone (KillMode=mixed).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_notification(&notify, "STOPPING=1");
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}");
    for p in procs {
        let pid = nix::unistd::Pid::from_raw(p.pid.unwrap() as i32);
        wait_for("the app to be stopped with the daemon", || {
            nix::sys::signal::kill(pid, None).is_err().then_some(())
        });
    }

    r.ok(&["unstartup", "--unit-dir", units.path().to_str().unwrap()]);
    assert!(!file.exists());
}

#[test]
fn startup_without_install_prints_the_unit_and_the_root_command() {
    let r = Rsup::new();
    let out = r.run(&["startup"]);
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[Service]"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("startup systemd -u"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = r.run(&["startup", "-u", "no-such-user-rsup"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no such user"));
}
