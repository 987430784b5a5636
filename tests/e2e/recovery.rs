//! A daemon killed with SIGKILL. Its keeper starts the next daemon at
//! once, which takes the same processes over: same pids, sockets, logs and
//! channels, under load without a failed request. Without a keeper (it was
//! killed too, or gave up), the next daemon leaves no orphan behind and
//! starts the apps again.

use crate::harness::*;
use crate::http_client::under_load;
use rsup_proto::app::{ProcessInfo, Status};
use std::sync::atomic::Ordering;

fn daemon_pid(r: &Rsup) -> u32 {
    std::fs::read_to_string(r.home.path().join("rsup.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The daemon's parent: its keeper.
fn keeper_of(daemon: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the process to die", || (!alive(pid)).then_some(()));
}

/// Waits for a daemon other than `old` to answer with `count` online
/// processes.
fn next_daemon(r: &Rsup, old: u32, count: usize) -> (u32, Vec<ProcessInfo>) {
    wait_for("the next daemon to serve", || {
        let procs = r.jlist();
        let daemon = daemon_pid(r);
        let online = procs.len() == count && procs.iter().all(|p| p.status == Status::Online);
        (daemon != old && online).then_some((daemon, procs))
    })
}

/// Starts http.js as `web`, 2 instances logging every request, on a free
/// port; returns the port.
fn start_logging_web(r: &Rsup) -> u16 {
    let port = free_port();
    let port_env = port.to_string();
    let env = [("PORT", port_env.as_str()), ("LOG_REQUESTS", "1")];
    assert_success(&r.start_fixture("http.js", "web", &["-i", "2"], &env));
    port
}

fn pids(procs: &[ProcessInfo]) -> Vec<u32> {
    procs.iter().filter_map(|p| p.pid).collect()
}

#[test]
fn a_killed_daemon_is_followed_by_one_that_takes_its_processes_over_under_load() {
    let r = Rsup::new();
    let port = start_logging_web(&r);
    let before = wait_for("both to listen", || {
        let procs = r.jlist();
        let listening = r
            .report("report")
            .iter()
            .filter(|l| l.starts_with("listening"))
            .count();
        (listening == 2 && procs.iter().all(|p| p.status == Status::Online)).then_some(procs)
    });
    let daemon = daemon_pid(&r);
    let keeper = keeper_of(daemon);
    assert_ne!(keeper, 1, "the daemon runs under its keeper");

    let mut after = Vec::new();
    let mut next = 0;
    let tally = under_load(port, |tally| {
        wait_for("traffic", || {
            (tally.ok.load(Ordering::SeqCst) > 50).then_some(())
        });
        kill9(daemon);
        (next, after) = next_daemon(&r, daemon, 2);
        tally.wait_for_more("traffic after the crash", 50);
        // Reloaded, the processes taken over drain gracefully: their worker
        // channels and the app's sockets were taken over.
        r.ok(&["reload", "web"]);
        tally.wait_for_more("traffic after the reload", 50);
    });
    tally.assert_no_failures();

    assert_eq!(pids(&after), pids(&before), "the processes were not kept");
    assert_eq!(keeper_of(next), keeper, "the same keeper started it");
    let ids = |procs: &[ProcessInfo]| -> Vec<(u32, String)> {
        procs.iter().map(|p| (p.id, p.unique_id.clone())).collect()
    };
    assert_eq!(ids(&after), ids(&before));
    let pm2 = std::fs::read_to_string(r.home.path().join("pm2.pid")).unwrap();
    assert_eq!(pm2.trim(), next.to_string());
    assert!(!r.home.path().join("handed.json").exists());
    let killed = r.jlist().into_iter().find(|p| p.id == after[0].id).unwrap();
    let exit = killed.last_exit.expect("the killed process's exit");
    // The reload replaced it since: its last exit is the reload's.
    assert!(exit.signal.is_some() || exit.code.is_some(), "{exit:?}");

    // The process kept until the reload wrote on into its log after the
    // crash, up to its last line, and never met a closed pipe.
    let kept = after[1].pid.unwrap();
    let logs: String = r
        .jlist()
        .iter()
        .map(|p| std::fs::read_to_string(&p.out_log).unwrap_or_default())
        .collect();
    let last = logs
        .lines()
        .find(|l| l.starts_with(&format!("stopping pid={kept} after ")))
        .unwrap_or_else(|| panic!("no last line of {kept} in the logs"));
    let counted: usize = last.rsplit(' ').nth(1).unwrap().parse().unwrap();
    let logged = logs
        .lines()
        .filter(|l| l.starts_with("request") && l.ends_with(&format!(" pid={kept}")))
        .count();
    // A crash can lose what the daemon had read and not yet written.
    assert!(
        logged <= counted && logged * 10 >= counted * 9,
        "{logged} of {counted}"
    );
    let errors: String = r
        .jlist()
        .iter()
        .map(|p| std::fs::read_to_string(&p.err_log).unwrap_or_default())
        .collect();
    assert!(!errors.contains("EPIPE"), "{errors}");

    // A stop ends the keeper with the daemon.
    r.ok(&["kill"]);
    wait_for("the keeper to end", || (!alive(keeper)).then_some(()));
}

#[test]
fn a_daemon_killed_while_it_stops_as_asked_is_not_followed_by_another() {
    let r = Rsup::new();
    // It ignores its kill signal: the stop takes the whole kill_timeout.
    let out = r.start_fixture(
        "app.js",
        "api",
        &["--kill-timeout", "10000"],
        &[("MODE", "ignore-signals")],
    );
    assert_success(&out);
    r.wait_report("report", "start");
    let app = r.jlist()[0].pid.unwrap();
    let daemon = daemon_pid(&r);
    let keeper = keeper_of(daemon);
    let mut kill = r.cmd().arg("kill").spawn().unwrap();
    r.wait_report("report", "signal SIGINT");
    kill9(daemon);
    // The keeper ends, and takes what was being stopped with it.
    wait_for("the keeper and the app to end", || {
        (!alive(keeper) && !alive(app)).then_some(())
    });
    let _ = kill.wait();
    let log = std::fs::read_to_string(r.home.path().join("rsup.log")).unwrap();
    assert!(!log.contains("starting the next one"), "{log}");
    assert!(log.contains("killing what is left"), "{log}");
}

#[test]
fn the_next_daemon_logs_to_the_daemons_log_even_after_it_was_rotated() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    let log = r.home.path().join("rsup.log");
    // As a rotation does: the file moves away, a new one comes later.
    std::fs::rename(&log, r.home.path().join("rsup.log.1")).unwrap();
    let daemon = daemon_pid(&r);
    kill9(daemon);
    next_daemon(&r, daemon, 1);
    let text = std::fs::read_to_string(&log).expect("a new rsup.log");
    assert!(text.contains("taking over its 1 process(es)"), "{text}");
    assert!(
        text.contains("keeper: the daemon"),
        "the keeper's line: {text}"
    );
}

#[test]
fn a_keeper_whose_daemons_keep_dying_gives_up_and_the_next_daemon_starts_the_apps_again() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    let first = r.jlist();
    let mut daemon = daemon_pid(&r);
    let keeper = keeper_of(daemon);
    for _ in 0..4 {
        kill9(daemon);
        (daemon, _) = next_daemon(&r, daemon, 1);
        assert_eq!(keeper_of(daemon), keeper);
    }
    assert_eq!(pids(&r.jlist()), pids(&first), "kept through 4 crashes");
    // The fifth within a minute: it gives up.
    kill9(daemon);
    wait_for("the keeper to give up", || (!alive(keeper)).then_some(()));
    let log = std::fs::read_to_string(r.home.path().join("rsup.log")).unwrap();
    assert!(log.contains("giving up"), "{log}");
    // The next command's daemon replaces what ran.
    let (_, procs) = next_daemon(&r, daemon, 1);
    assert_ne!(pids(&procs), pids(&first));
    assert!(
        !alive(first[0].pid.unwrap()),
        "the old process was left running"
    );
}

#[test]
fn the_keeper_passes_signals_to_the_daemon_and_a_stop_signal_ends_the_apps_and_both() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    r.wait_report("report", "start");
    let app = r.jlist()[0].pid.unwrap();
    let daemon = daemon_pid(&r);
    let keeper = keeper_of(daemon);
    let signal = |s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(keeper as i32), s).unwrap();
    // A hangup is ignored; SIGUSR2 reaches the daemon, which opens its
    // logs again.
    signal(nix::sys::signal::Signal::SIGHUP);
    signal(nix::sys::signal::Signal::SIGUSR2);
    let log = r.home.path().join("rsup.log");
    wait_for("the daemon to reopen its logs", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("SIGUSR2: ").then_some(())
    });
    assert!(alive(keeper) && alive(daemon) && alive(app));
    signal(nix::sys::signal::Signal::SIGTERM);
    wait_for("all three to end", || {
        (!alive(keeper) && !alive(daemon) && !alive(app)).then_some(())
    });
    // Stopped gracefully, with the app's kill signal.
    assert!(r.report("report").contains(&"signal SIGINT".to_string()));
    assert!(!r.home.path().join("state.json").exists());
}

#[test]
fn without_a_keeper_the_next_daemon_stops_what_a_killed_one_left_and_starts_its_apps_again() {
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
    // Without its keeper.
    kill9(keeper_of(daemon));
    kill9(daemon);
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
fn without_a_keeper_the_next_daemon_takes_the_sockets_back_and_the_old_processes_drain_so_no_request_fails(
) {
    let r = Rsup::new();
    // Logging every request: the old processes outlive their output pipes.
    let port = start_logging_web(&r);
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
        kill9(keeper_of(daemon));
        kill9(daemon);
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
        tally.wait_for_more("traffic after recovery", 20);
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
