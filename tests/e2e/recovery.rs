//! A daemon killed with SIGKILL: the next one leaves no orphan behind and
//! supervises the apps again.

use crate::harness::*;
use crate::http_client::under_load;
use rsup_proto::app::Status;
use std::sync::atomic::Ordering;

fn daemon_pid(r: &Rsup) -> u32 {
    std::fs::read_to_string(r.home.path().join("rsup.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_next_daemon_stops_what_a_killed_one_left_and_starts_its_apps_again() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &["-i", "2"], &[]));
    let old: Vec<u32> = r.jlist().iter().filter_map(|p| p.pid).collect();
    assert_eq!(old.len(), 2);
    let state = r.home.path().join("state.json");
    wait_for("the state file to list both processes", || {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        old.iter()
            .all(|pid| text.contains(&format!("\"pid\":{pid}")))
            .then_some(())
    });

    let daemon = daemon_pid(&r);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the daemon to die", || (!alive(daemon)).then_some(()));
    assert!(old.iter().all(|pid| alive(*pid)), "the apps outlive it");

    // Any command starts a new daemon, which recovers.
    let procs = wait_for("api to run again under the new daemon", || {
        let procs = r.jlist();
        let fresh = procs.len() == 2
            && procs.iter().all(|p| {
                p.name == "api"
                    && p.status == Status::Online
                    && p.pid.is_some_and(|pid| !old.contains(&pid))
            });
        fresh.then_some(procs)
    });
    assert_ne!(daemon_pid(&r), daemon);
    for pid in &old {
        assert!(!alive(*pid), "pid {pid} left running");
    }
    // Stopped gracefully, with the app's kill signal.
    let signals = r
        .report("report")
        .iter()
        .filter(|l| *l == "signal SIGINT")
        .count();
    assert_eq!(signals, 2);
    // Ids go on from the old daemon's.
    assert!(procs.iter().all(|p| p.id >= 2), "{procs:?}");
}

#[test]
fn the_next_daemon_takes_the_sockets_back_and_the_old_processes_drain_so_no_request_fails() {
    let r = Rsup::new();
    let port = free_port();
    let port_env = port.to_string();
    // Logging every request: the old processes outlive their output pipes.
    let out = r.start_fixture(
        "http.js",
        "web",
        &["-i", "2"],
        &[("PORT", &port_env), ("LOG_REQUESTS", "1")],
    );
    assert_success(&out);
    let old: Vec<u32> = wait_for("both to listen", || {
        let pids: Vec<u32> = r
            .report("report")
            .iter()
            .filter_map(|l| l.strip_prefix("listening pid="))
            .map(|l| l.split(' ').next().unwrap().parse().unwrap())
            .collect();
        (pids.len() == 2).then_some(pids)
    });
    let state = r.home.path().join("state.json");
    wait_for("the state file to list the socket", || {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        text.contains(&format!("\"port\":{port}")).then_some(())
    });

    let tally = under_load(port, |tally| {
        wait_for("traffic", || {
            (tally.ok.load(Ordering::SeqCst) > 20).then_some(())
        });
        let daemon = daemon_pid(&r);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        wait_for("the daemon to die", || (!alive(daemon)).then_some(()));
        wait_for("web to run again under a new daemon", || {
            let procs = r.jlist();
            let fresh = procs.len() == 2
                && procs.iter().all(|p| {
                    p.status == Status::Online && p.pid.is_some_and(|pid| !old.contains(&pid))
                });
            fresh.then_some(())
        });
        wait_for("the old processes to be gone", || {
            old.iter().all(|pid| !alive(*pid)).then_some(())
        });
        let seen = tally.ok.load(Ordering::SeqCst);
        wait_for("traffic after recovery", || {
            (tally.ok.load(Ordering::SeqCst) > seen + 20).then_some(())
        });
    });
    // The old processes drained on their kill signal: not even a
    // keep-alive connection was cut.
    tally.assert_no_failures();
}

#[test]
fn a_daemon_stopped_with_kill_leaves_nothing_to_recover() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    r.wait_report("report", "start");
    r.ok(&["kill"]);
    assert!(!r.home.path().join("state.json").exists());
    assert!(r.jlist().is_empty());
    assert_eq!(
        r.report("report")
            .iter()
            .filter(|l| l.starts_with("start"))
            .count(),
        1
    );
}
