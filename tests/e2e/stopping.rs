//! Stop: the kill signal (or the shutdown message), then SIGKILL at
//! kill_timeout, to the whole process tree.

use crate::harness::*;
use rsup_proto::app::Status;
use std::time::Instant;

fn start(r: &Rsup, name: &str, mode: &str, extra: &[&str]) {
    let out = r.start_fixture("app.js", name, extra, &[("MODE", mode)]);
    assert_success(&out);
    r.wait_report("report", "start");
}

#[test]
fn stop_sends_sigint_by_default_and_returns_when_the_process_is_gone() {
    let r = Rsup::new();
    start(&r, "s", "", &[]);
    let pid = r.process("s").pid.unwrap();
    r.ok(&["stop", "s"]);
    assert!(!alive(pid));
    let p = r.process("s");
    assert_eq!(p.status, Status::Stopped);
    assert_eq!(p.last_exit.unwrap().code, Some(0));
    assert!(r.report("report").contains(&"signal SIGINT".to_string()));
}

#[test]
fn an_app_that_ignores_sigint_is_sigkilled_after_kill_timeout() {
    let r = Rsup::new();
    start(&r, "stubborn", "ignore-signals", &["--kill-timeout", "700"]);
    let began = Instant::now();
    r.ok(&["stop", "stubborn"]);
    let took = began.elapsed();
    let p = r.process("stubborn");
    // First the polite signal, which it ignored, then SIGKILL.
    assert!(r.report("report").contains(&"signal SIGINT".to_string()));
    assert_eq!(p.last_exit.unwrap().signal.as_deref(), Some("SIGKILL"));
    // It waited for the timeout rather than killing at once; the upper
    // bound only catches a hang.
    assert!(took.as_millis() >= 700, "stopped after {took:?}");
    assert!(took.as_secs() < 20, "stop took {took:?}");
}

#[test]
fn shutdown_with_message_delivers_shutdown_instead_of_a_signal() {
    let r = Rsup::new();
    start(&r, "msg", "", &["--shutdown-with-message"]);
    r.ok(&["stop", "msg"]);
    let lines = r.report("report");
    assert!(
        lines.contains(&"message \"shutdown\"".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("signal")), "{lines:?}");
    assert_eq!(r.process("msg").last_exit.unwrap().code, Some(0));
}

#[test]
fn pm2_kill_signal_is_honoured() {
    let r = Rsup::new();
    let out = r.start_fixture("app.js", "term", &[], &[("PM2_KILL_SIGNAL", "SIGTERM")]);
    assert_success(&out);
    r.wait_report("report", "start");
    r.ok(&["stop", "term"]);
    let lines = r.report("report");
    assert!(lines.contains(&"signal SIGTERM".to_string()), "{lines:?}");
    assert!(!lines.contains(&"signal SIGINT".to_string()), "{lines:?}");
}

#[test]
fn the_kill_signal_reaches_the_whole_tree() {
    let r = Rsup::new();
    start(&r, "tree", "fork-child", &[]);
    let lines = r.wait_report("report", "grandchild pid=");
    let grandchild: u32 = lines
        .iter()
        .find_map(|l| l.strip_prefix("grandchild pid="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(alive(grandchild));
    r.ok(&["stop", "tree"]);
    assert!(r
        .report("report")
        .contains(&"grandchild SIGINT".to_string()));
    wait_for("the grandchild to be gone", || {
        (!alive(grandchild)).then_some(())
    });
}

#[test]
fn kill_stops_every_app_and_the_daemon() {
    let r = Rsup::new();
    start(&r, "a", "", &["-i", "2"]);
    let pids: Vec<u32> = r.jlist().iter().filter_map(|p| p.pid).collect();
    assert_eq!(pids.len(), 2);
    r.ok(&["kill"]);
    for pid in pids {
        assert!(!alive(pid), "{pid} survived rsup kill");
    }
    let ping = r.run(&["ping"]);
    assert!(!ping.status.success());
    assert!(!r.home.path().join("rsup.sock").exists());
}

#[test]
fn delete_forgets_the_app() {
    let r = Rsup::new();
    start(&r, "gone", "", &[]);
    let pid = r.process("gone").pid.unwrap();
    r.ok(&["delete", "gone"]);
    assert!(!alive(pid));
    assert!(r.jlist().is_empty());
    let out = r.run(&["stop", "gone"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found: gone"));
}

/// Whether a connection to the port is refused (rather than accepted into
/// a queue nobody reads).
fn refused(port: u16) -> bool {
    matches!(
        std::net::TcpStream::connect(("127.0.0.1", port)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_stopped_app_refuses_connections_and_serves_again_once_started() {
    let r = Rsup::new();
    let port = free_port();
    let port_env = port.to_string();
    let out = r.start_fixture("http.js", "web", &["-i", "2"], &[("PORT", &port_env)]);
    assert_success(&out);
    wait_for("web to serve", || {
        (r.report("report")
            .iter()
            .filter(|l| l.starts_with("listening"))
            .count()
            == 2)
            .then_some(())
    });
    assert!(http_get(port).contains("200 OK"));

    r.ok(&["stop", "web"]);
    assert!(
        refused(port),
        "a stopped app's port must refuse connections"
    );

    r.ok(&["restart", "web"]);
    wait_for("web to serve again", || (!refused(port)).then_some(()));
    assert!(http_get(port).contains("200 OK"));
}

#[test]
fn an_errored_app_refuses_connections() {
    let r = Rsup::new();
    let port = free_port();
    let port_env = port.to_string();
    let breaker = r.path("broken");
    let out = r.start_fixture(
        "http.js",
        "flaky",
        &["--max-restarts", "2"],
        &[("PORT", &port_env), ("BREAK_IF", breaker.to_str().unwrap())],
    );
    assert_success(&out);
    r.wait_report("report", "listening");
    assert!(!refused(port));
    // Every start from now on fails at once: a crash loop into errored.
    std::fs::write(&breaker, "").unwrap();
    let pid = r.process("flaky").pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    r.wait_status("flaky", Status::Errored);
    wait_for("the port to close", || refused(port).then_some(()));
}
