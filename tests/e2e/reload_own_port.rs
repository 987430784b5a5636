//! An app that binds its own port (a Python http.server here: no preload,
//! no listen request) cannot run two processes on one port, so reload
//! restarts it instead, as the README and `rsup reload --help` say.

use crate::harness::*;
use crate::http_client::{load, Tally};
use rsup_proto::app::Status;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Sends requests until a few went through; every one must have succeeded
/// and been answered by `pid`.
fn assert_served_by(port: u16, pid: u32) {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let client = {
        let (stop, tally) = (stop.clone(), tally.clone());
        std::thread::spawn(move || load(port, true, stop, tally))
    };
    wait_for("requests to go through", || {
        let done = tally.ok.load(Ordering::SeqCst) + tally.failed.load(Ordering::SeqCst);
        (done >= 5).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert_eq!(
        tally.failed.load(Ordering::SeqCst),
        0,
        "{:?}",
        tally.failures.lock().unwrap()
    );
    let pids = tally.pids.lock().unwrap();
    assert_eq!(pids.iter().collect::<Vec<_>>(), [&pid.to_string()]);
}

#[test]
fn an_app_binding_its_own_port_is_restarted_by_reload() {
    let r = Rsup::new();
    let port = free_port();
    let port_arg = port.to_string();
    let out = r.start_fixture("own_port.py", "py", &["--", &port_arg], &[]);
    assert_success(&out);
    let old_pid = r.wait_status("py", Status::Online).pid.unwrap();
    r.wait_report("report", &format!("listening pid={old_pid} port={port}"));
    assert_served_by(port, old_pid);

    let out = r.run(&["reload", "py"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{}\n{said}", out.status);
    let lowered = said.to_lowercase();
    assert!(
        lowered.contains("own port") && lowered.contains("restart"),
        "the CLI should say the app was restarted because it binds its own port: {said}"
    );

    let p = r.wait_status("py", Status::Online);
    let new_pid = p.pid.unwrap();
    assert_ne!(new_pid, old_pid);
    assert!(!alive(old_pid), "old process {old_pid} survived");
    assert_eq!(p.restarts, 1);
    // The old process was stopped the usual way and shut down cleanly.
    assert_eq!(p.last_exit.as_ref().and_then(|e| e.code), Some(0), "{p:?}");
    r.wait_report("report", &format!("listening pid={new_pid} port={port}"));
    assert_served_by(port, new_pid);
}
