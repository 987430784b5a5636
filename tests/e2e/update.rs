//! `rsup update`: the running daemon re-executes itself with the binary
//! on disk, in place: the same pid, every process kept running and
//! supervised (watched, restarted, reloaded, stopped, its output logged),
//! under load without a failed request; and when the new binary cannot
//! take over, the daemon serves on unchanged.

use crate::harness::*;
use crate::http_client::under_load;
use rsup_proto::app::{ProcessInfo, Status};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn daemon_pid(r: &Rsup) -> u32 {
    std::fs::read_to_string(r.home.path().join("rsup.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The pid of the daemon answering `rsup ping`.
fn pinged_pid(r: &Rsup) -> u32 {
    let out = r.ok(&["ping"]);
    out.split("pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {out:?}"))
}

fn pids(procs: &[ProcessInfo]) -> Vec<u32> {
    procs.iter().filter_map(|p| p.pid).collect()
}

/// Each process's pid file holds its pid, and `pm2.pid` the daemon's.
fn assert_pid_files(r: &Rsup, procs: &[ProcessInfo], daemon: u32) {
    for p in procs {
        let written = std::fs::read_to_string(&p.pid_file).unwrap_or_default();
        assert_eq!(
            written.trim(),
            p.pid.unwrap().to_string(),
            "{}",
            p.pid_file.display()
        );
    }
    let pm2 = std::fs::read_to_string(r.home.path().join("pm2.pid")).unwrap();
    assert_eq!(pm2.trim(), daemon.to_string());
}

fn port_of(line: &str) -> u16 {
    line.rsplit("port=").next().unwrap().parse().unwrap()
}

/// Starts http.js as `name` with 2 instances on a free port shared by
/// both; returns the port.
fn start_web(r: &Rsup, name: &str, flags: &[&str], env: &[(&str, &str)]) -> u16 {
    let env: Vec<(&str, &str)> = env.iter().copied().chain([("PORT", "0")]).collect();
    let flags: Vec<&str> = ["-i", "2"].iter().chain(flags).copied().collect();
    assert_success(&r.start_fixture("http.js", name, &flags, &env));
    let lines = wait_for("both instances to listen", || {
        let l: Vec<String> = r
            .report("report")
            .into_iter()
            .filter(|l| l.starts_with("listening"))
            .collect();
        (l.len() == 2).then_some(l)
    });
    port_of(&lines[0])
}

fn all_online(r: &Rsup) -> Vec<ProcessInfo> {
    wait_for("every instance to be online", || {
        let procs = r.jlist();
        procs
            .iter()
            .all(|p| p.status == Status::Online)
            .then_some(procs)
    })
}

/// Pids that reported listening, in order.
fn listening_pids(r: &Rsup) -> Vec<u32> {
    r.report("report")
        .iter()
        .filter_map(|l| l.strip_prefix("listening pid="))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn update_keeps_the_daemon_and_every_process_running_under_load() {
    let r = Rsup::new();
    let port = start_web(&r, "web", &[], &[("LOG_REQUESTS", "1")]);
    // Counted before the update; counted from 0 after it, as after PM2's.
    r.ok(&["restart", "web"]);
    let before = all_online(&r);
    assert!(before.iter().all(|p| p.restarts == 1), "{before:?}");
    let daemon = daemon_pid(&r);
    let kept = pids(&before);
    assert_eq!(kept.len(), 2);

    let mut said = String::new();
    let mut after = Vec::new();
    let tally = under_load(port, |tally| {
        wait_for("traffic", || {
            (tally.ok.load(Ordering::SeqCst) > 50).then_some(())
        });
        said = r.ok(&["update"]);
        after = r.jlist();
        assert_pid_files(&r, &after, daemon);
        tally.wait_for_more("traffic after the update", 50);
        // The processes kept are reloaded by the new image: their worker
        // channels and the app's sockets came through the exec.
        r.ok(&["reload", "web"]);
        tally.wait_for_more("traffic after the reload", 50);
    });
    tally.assert_no_failures();

    assert!(said.contains("rsup daemon updated in place"), "{said}");
    assert!(said.contains(&format!("pid {daemon}")), "{said}");
    assert!(said.contains("2 process(es) kept running"), "{said}");
    assert_eq!(daemon_pid(&r), daemon);
    assert_eq!(pinged_pid(&r), daemon);
    assert_eq!(pids(&after), kept, "the processes were not kept");
    assert!(
        after.iter().all(|p| p.status == Status::Online),
        "{after:?}"
    );
    assert!(after.iter().all(|p| p.restarts == 0), "{after:?}");
    // Ids, indexes and PM2's unique_id stay with the processes they name.
    let ids = |procs: &[ProcessInfo]| -> Vec<(u32, u32, String)> {
        procs
            .iter()
            .map(|p| (p.id, p.instance, p.unique_id.clone()))
            .collect()
    };
    assert_eq!(ids(&after), ids(&before));
    assert!(!r.home.path().join("exec-state.json").exists());

    // Traffic went to the kept processes after the update, and the reload
    // stopped them gracefully (their SIGINT handler ran).
    let reloaded = r.jlist();
    let report = r.report("report");
    for pid in &kept {
        assert!(!pids(&reloaded).contains(pid));
        assert!(
            report.contains(&format!("signal SIGINT pid={pid}")),
            "{pid} was not stopped gracefully: {report:?}"
        );
    }
    // Every line a kept process wrote, before, during and after the
    // update, is in its log: as many request lines as it counted.
    let logs: String = reloaded
        .iter()
        .map(|p| std::fs::read_to_string(&p.out_log).unwrap_or_default())
        .collect();
    for pid in &kept {
        let requests = logs
            .lines()
            .filter(|l| l.starts_with("request") && l.ends_with(&format!(" pid={pid}")))
            .count();
        let last = logs
            .lines()
            .find(|l| l.starts_with(&format!("stopping pid={pid} after ")))
            .unwrap_or_else(|| panic!("no last line of {pid} in the logs"));
        let counted: usize = last.rsplit(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(requests, counted, "lines of {pid} are missing");
        assert!(counted > 0);
    }
    let errors: String = reloaded
        .iter()
        .map(|p| std::fs::read_to_string(&p.err_log).unwrap_or_default())
        .collect();
    assert!(!errors.contains("EPIPE"), "{errors}");
}

#[test]
fn a_process_kept_through_an_update_is_watched_signalled_and_stopped_as_before() {
    let r = Rsup::new();
    let flags = ["-i", "2", "--shutdown-with-message"];
    assert_success(&r.start_fixture("app.js", "api", &flags, &[]));
    let before = all_online(&r);
    r.ok(&["update"]);
    let after = all_online(&r);
    assert_eq!(pids(&after), pids(&before));
    let (first, second) = (&after[0], &after[1]);
    let first_pid = first.pid.unwrap();

    // A crash of a kept process is seen (through its pidfd), with how it
    // ended, and the process restarted.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let restarted = wait_for("the killed process to be restarted", || {
        let p = r.jlist().into_iter().find(|p| p.id == first.id)?;
        (p.status == Status::Online && p.pid != Some(first_pid)).then_some(p)
    });
    assert_eq!(restarted.restarts, 1);
    let exit = restarted.last_exit.expect("its exit");
    assert_eq!(exit.signal.as_deref(), Some("SIGKILL"));

    // Signals reach it; its Node channel, kept through the exec, carries
    // the shutdown message of a stop, and it exits on it.
    r.ok(&["sendSignal", "SIGUSR2", &second.id.to_string()]);
    let second_pid = second.pid.unwrap();
    r.wait_report("report", &format!("signal SIGUSR2 pid={second_pid}"));
    r.ok(&["stop", &second.id.to_string()]);
    r.wait_report("report", "message \"shutdown\"");
    assert!(!alive(second_pid));
    let stopped = r.jlist().into_iter().find(|p| p.id == second.id).unwrap();
    assert_eq!(stopped.status, Status::Stopped);
    assert_eq!(stopped.last_exit.and_then(|e| e.code), Some(0));
    // Its output went on to its log: the restarted process's first line.
    let out = std::fs::read_to_string(&restarted.out_log).unwrap();
    let new_pid = restarted.pid.unwrap();
    assert!(out.contains(&format!("out line from {new_pid}")), "{out}");
}

#[test]
fn a_binary_that_cannot_take_over_leaves_the_daemon_serving_unchanged() {
    let r = Rsup::new();
    let port = start_web(&r, "web", &[], &[("LOG_REQUESTS", "1")]);
    let before = all_online(&r);
    let daemon = daemon_pid(&r);
    // What an older release says when asked which state it reads.
    let older = r.path("older-rsup");
    std::fs::write(
        &older,
        "#!/bin/sh\necho 'error: unexpected argument' >&2\nexit 2\n",
    )
    .unwrap();
    std::fs::set_permissions(&older, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pid = before[0].pid.unwrap();
    let out_log = before[0].out_log.clone();
    let logged = || {
        std::fs::read_to_string(&out_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("request") && l.ends_with(&format!(" pid={pid}")))
            .count()
    };
    let mut answer = String::new();
    let tally = under_load(port, |tally| {
        wait_for("traffic", || {
            (tally.ok.load(Ordering::SeqCst) > 50).then_some(())
        });
        let mut client =
            std::os::unix::net::UnixStream::connect(r.home.path().join("rsup.sock")).unwrap();
        let request = format!(
            "{{\"cmd\":\"re_exec\",\"exe\":{:?}}}\n",
            older.to_str().unwrap()
        );
        client.write_all(request.as_bytes()).unwrap();
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        BufReader::new(&client).read_line(&mut answer).unwrap();
        // Its output is still read: the requests served now are logged.
        let seen = logged();
        wait_for("request lines after", || {
            (logged() > seen + 20).then_some(())
        });
    });
    tally.assert_no_failures();
    assert!(answer.contains("\"reply\":\"error\""), "{answer}");
    assert!(
        answer.contains("cannot take this daemon over in place"),
        "{answer}"
    );
    assert!(answer.contains("serves on, unchanged"), "{answer}");
    assert_eq!(pinged_pid(&r), daemon);
    assert_eq!(pids(&r.jlist()), pids(&before));
    // And commands are taken again.
    r.ok(&["restart", "web"]);
    assert!(r.ok(&["update"]).contains("updated in place"));
}

#[test]
fn an_update_waits_for_a_running_reload_and_commands_sent_meanwhile_reach_the_next_image() {
    let r = Rsup::new();
    let ready = r.path("ready");
    std::fs::write(&ready, "").unwrap();
    let ready_env = ready.to_str().unwrap().to_string();
    start_web(
        &r,
        "web",
        &["--wait-ready", "--listen-timeout", "60000"],
        &[("SEND_READY", "1"), ("READY_WHEN", &ready_env)],
    );
    let before = all_online(&r);
    let old_pids = pids(&before);
    std::fs::remove_file(&ready).unwrap();

    // A reload that waits for its new process to say ready...
    let piped = |args: &[&str]| {
        r.cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let reload = piped(&["reload", "web"]);
    wait_for("the reload's new process to listen", || {
        listening_pids(&r)
            .into_iter()
            .find(|p| !old_pids.contains(p))
    });
    // ...is running when the update begins.
    let update = piped(&["update"]);
    let log = r.home.path().join("rsup.log");
    wait_for("the update to begin", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("update: waiting for running requests")
            .then_some(())
    });
    // A client now waits in the control socket's queue.
    let mut client =
        std::os::unix::net::UnixStream::connect(r.home.path().join("rsup.sock")).unwrap();
    client.write_all(b"{\"cmd\":\"ping\"}\n").unwrap();

    std::fs::write(&ready, "").unwrap();
    let reloaded = reload.wait_with_output().unwrap();
    assert!(
        reloaded.status.success(),
        "the running reload was not let finish: {}",
        String::from_utf8_lossy(&reloaded.stderr)
    );
    let updated = update.wait_with_output().unwrap();
    assert!(
        updated.status.success(),
        "{}",
        String::from_utf8_lossy(&updated.stderr)
    );
    let said = String::from_utf8_lossy(&updated.stdout);
    assert!(said.contains("updated in place"), "{said}");
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = String::new();
    BufReader::new(&client).read_line(&mut answer).unwrap();
    assert!(answer.contains("\"reply\":\"pong\""), "{answer}");
    // The reload's processes are the ones kept.
    let after = all_online(&r);
    assert!(
        pids(&after).iter().all(|p| !old_pids.contains(p)),
        "{after:?}"
    );
}

#[test]
fn stopped_instances_stay_stopped_and_apps_binding_their_own_port_run_on() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "worker", &["-i", "2"], &[]));
    let port = free_port().to_string();
    assert_success(&r.start_fixture("own_port.py", "py", &["--", &port], &[]));
    let py_before = r.wait_status("py", Status::Online);
    // Bound: the old daemon sees that it binds its own port.
    r.wait_report(
        "report",
        &format!("listening pid={} port={port}", py_before.pid.unwrap()),
    );
    let workers = r.jlist();
    let stopped_id = workers.iter().find(|p| p.name == "worker").unwrap().id;
    r.ok(&["stop", &stopped_id.to_string()]);
    let before = r.jlist();

    let said = r.ok(&["update"]);
    assert!(said.contains("rsup daemon updated in place"), "{said}");
    assert!(
        said.contains("2 process(es) kept running, 0 started"),
        "{said}"
    );
    let procs = r.jlist();
    assert_eq!(pids(&procs), pids(&before));
    let stopped = procs.iter().find(|p| p.id == stopped_id).unwrap();
    assert_eq!(stopped.status, Status::Stopped);
    assert_eq!(stopped.pid, None);
    // The py app, which binds its own port, was not touched.
    let after = r.wait_status("py", Status::Online);
    assert_eq!(after.pid, py_before.pid);
    // The stopped one starts again under the new image.
    r.ok(&["start", &stopped_id.to_string()]);
    r.wait_status("worker", Status::Online);
}

#[test]
fn update_without_a_daemon_has_nothing_to_do() {
    let r = Rsup::new();
    let out = r.ok(&["update"]);
    assert!(out.contains("not running"), "{out}");
    assert!(out.contains("nothing to update"), "{out}");
    // And it started none.
    assert!(!r.run(&["ping"]).status.success());
    // PM2's name for it.
    assert!(r.ok(&["updatePM2"]).contains("nothing to update"));
}

#[test]
fn a_daemon_in_the_foreground_is_not_updated_in_place() {
    let r = Rsup::new();
    let mut foreground = r
        .cmd()
        .args(["start", fixture("app.js").to_str().unwrap(), "--no-daemon"])
        .env("REPORT", r.path("report"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    r.wait_report("report", "start");
    let out = r.run(&["update"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("foreground"), "{err}");
    assert!(err.contains("restart it instead"), "{err}");
    assert!(err.contains("serves on, unchanged"), "{err}");
    assert!(foreground.try_wait().unwrap().is_none());
    r.ok(&["kill"]);
    foreground.wait().unwrap();
}

/// Every notification the test's stand-in for systemd receives, until one
/// line satisfies `until`; returns that line.
fn notified(systemd: &std::os::unix::net::UnixDatagram, until: impl Fn(&str) -> bool) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let n = systemd
            .recv(&mut buf)
            .expect("a notification from the service");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(line) = text.lines().find(|l| until(l)) {
            return line.to_string();
        }
    }
}

#[test]
fn a_daemon_run_by_systemd_is_updated_in_place_and_survives_a_crash_inside_its_service() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    r.ok(&["save"]);
    r.ok(&["kill"]);
    // The unit's ExecStart, with a socket standing in for systemd.
    let notify = r.path("notify.sock");
    let systemd = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    systemd.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut service = r
        .cmd()
        .args(["keeper", "--resurrect"])
        .env("NOTIFY_SOCKET", &notify)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    notified(&systemd, |l| l == "READY=1");
    let before = all_online(&r);
    // The service's main process is the keeper; the daemon, its child.
    let daemon = pinged_pid(&r);
    let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap();
    let parent: u32 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(parent, service.id());

    assert_success(&r.run(&["update"]));
    // The same daemon, ready again.
    assert_eq!(pinged_pid(&r), daemon);
    notified(&systemd, |l| l == "READY=1");
    assert!(service.try_wait().unwrap().is_none());
    let after = all_online(&r);
    assert_eq!(pids(&after), pids(&before));

    // A crash of the daemon: the service's main process runs on, and the
    // next daemon takes the processes over and says it is ready.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    notified(&systemd, |l| l == "READY=1");
    assert_ne!(pinged_pid(&r), daemon);
    assert!(service.try_wait().unwrap().is_none());
    assert_eq!(pids(&all_online(&r)), pids(&before));
    r.ok(&["kill"]);
    assert!(service.wait().unwrap().success());
}

/// A daemon built before updates in place answers the request as its
/// server answers any request it does not know.
#[test]
fn a_daemon_that_predates_update_is_left_running() {
    let r = Rsup::new();
    std::fs::set_permissions(
        r.home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let listener = UnixListener::bind(r.home.path().join("rsup.sock")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let older = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let _ = BufReader::new(&stream).read_line(&mut line);
                let answer = if line.contains("\"ping\"") {
                    format!(
                        "{{\"reply\":\"pong\",\"pid\":{},\"version\":\"0.0.9\"}}\n",
                        std::process::id()
                    )
                } else {
                    "{\"reply\":\"error\",\"message\":\"bad request: unknown variant `re_exec`, expected one of `ping`, `start`, `stop`\"}\n".to_string()
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        })
    };
    let out = r.run(&["update"]);
    stop.store(true, Ordering::SeqCst);
    let _ = std::os::unix::net::UnixStream::connect(r.home.path().join("rsup.sock"));
    older.join().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("predates updates in place"), "{err}");
    assert!(err.contains("version 0.0.9"), "{err}");
    assert!(err.contains("rsup kill"), "{err}");
}
