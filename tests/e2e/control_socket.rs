//! The daemon answers garbage with an error and keeps running; the
//! foreground mode runs apps without a daemon in the background.

use crate::harness::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

fn raw_exchange(r: &Rsup, payload: &[u8]) -> String {
    let mut s = UnixStream::connect(r.home.path().join("rsup.sock")).unwrap();
    // The daemon may answer and close before reading everything.
    let _ = s.write_all(payload);
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

#[test]
fn bad_requests_get_errors_and_the_daemon_keeps_serving() {
    let r = Rsup::new();
    r.ok(&[
        "start",
        fixture("app.js").to_str().unwrap(),
        "--name",
        "calm",
    ]);

    let reply = raw_exchange(&r, b"this is not json\n");
    assert!(reply.contains("\"reply\":\"error\""), "{reply}");
    assert!(reply.contains("bad request"), "{reply}");

    let reply = raw_exchange(&r, b"{\"cmd\":\"stop\",\"target\":42}\n");
    assert!(reply.contains("\"reply\":\"error\""), "{reply}");

    // A line longer than the protocol allows, with no newline.
    let reply = raw_exchange(&r, &vec![b'x'; 5 * 1024 * 1024]);
    assert!(reply.contains("\"reply\":\"error\""), "{reply}");

    // A client that connects and says nothing does not block others.
    let _silent = UnixStream::connect(r.home.path().join("rsup.sock")).unwrap();
    assert!(r.ok(&["ping"]).contains("running"));
    assert_eq!(r.process("calm").status, rsup_proto::app::Status::Online);
}

#[test]
fn foreground_mode_runs_apps_and_stops_them_on_sigterm() {
    let r = Rsup::new();
    let mut fg = r
        .cmd()
        .args([
            "start",
            fixture("app.js").to_str().unwrap(),
            "--name",
            "fg",
            "--no-daemon",
        ])
        .env("REPORT", r.path("report"))
        .spawn()
        .unwrap();
    r.wait_report("report", "start");
    // The control socket works as with a daemon.
    let p = r.process("fg");
    assert_eq!(p.status, rsup_proto::app::Status::Online);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fg.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = fg.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!alive(p.pid.unwrap()));
    assert!(r.report("report").contains(&"signal SIGINT".to_string()));
}

/// Children of `ppid` (host pids) in the zombie state.
fn zombies_of(ppid: u32) -> Vec<u32> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&ppid.to_string().as_str()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn as_pid_1_the_foreground_mode_reaps_orphans() {
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .output();
    if !matches!(probe, Ok(ref o) if o.status.success()) {
        eprintln!("skipped: cannot create a PID namespace here");
        return;
    }
    let r = Rsup::new();
    // The app leaves an orphan that exits soon after: it becomes PID 1's
    // child and, unless reaped, a zombie.
    let mut fg = std::process::Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            RSUP,
            "start",
            "/bin/sh",
            "--name",
            "orphans",
        ])
        .args(["--interpreter", "none", "--no-daemon", "--"])
        .args(["-c", "(sleep 0.2 &); touch ready; exec sleep 60"])
        .env("RSUP_HOME", r.home.path())
        .current_dir(r.work.path())
        .spawn()
        .unwrap();
    wait_for("the app to start", || {
        r.path("ready").exists().then_some(())
    });
    // unshare's child is rsup as PID 1 (the reaper); its child the daemon.
    let reaper = wait_for("rsup as PID 1", || {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", fg.id())).ok()?;
        children.split_whitespace().next()?.parse::<u32>().ok()
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        zombies_of(reaper),
        Vec::<u32>::new(),
        "orphans left as zombies"
    );
    // unshare ignores SIGTERM; the reaper passes it on to the supervisor,
    // which stops the app and exits, and the reaper with it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(reaper as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = fg.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn a_stopped_daemon_gets_a_clear_timeout_not_an_endless_wait() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "calm", &[], &[]));
    let pid: i32 = std::fs::read_to_string(r.home.path().join("rsup.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let daemon = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // Both kinds of request: one that needs no work, and one that may
    // rightly take long once the daemon is known to answer.
    let [list, stop] = [vec!["ls"], vec!["stop", "calm"]].map(|args| {
        let mut c = r.cmd();
        c.args(args);
        std::thread::spawn(move || c.output().unwrap())
    });
    let (list, stop) = (list.join().unwrap(), stop.join().unwrap());
    nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGCONT).unwrap();
    for out in [list, stop] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("did not answer within 10 s"), "{err}");
    }
    // Woken up, it answers again.
    assert!(r.ok(&["ping"]).contains("running"));
}
