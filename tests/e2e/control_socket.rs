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
