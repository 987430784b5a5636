//! `rsup update`: the running daemon hands its apps to a new one, which
//! replaces every worker as a reload would, under load, without a failed
//! request; and whatever goes wrong half-way, the old daemon serves on.

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

/// (id, name, instance index, restarts) of every process.
fn identities(procs: &[ProcessInfo]) -> Vec<(u32, String, u32, u32)> {
    procs
        .iter()
        .map(|p| (p.id, p.name.clone(), p.instance, p.restarts))
        .collect()
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
fn update_replaces_the_daemon_and_every_worker_under_load_without_a_failed_request() {
    let r = Rsup::new();
    let port = start_web(&r, "web", &[], &[("LOG_REQUESTS", "1")]);
    // A restart counted before the update must still be counted after it.
    r.ok(&["restart", "web"]);
    let before = all_online(&r);
    assert!(before.iter().all(|p| p.restarts == 1), "{before:?}");
    let old_daemon = daemon_pid(&r);
    let old_pids = pids(&before);
    assert_eq!(old_pids.len(), 2);

    let mut said = String::new();
    let tally = under_load(port, |tally| {
        wait_for("traffic", || {
            (tally.ok.load(Ordering::SeqCst) > 50).then_some(())
        });
        said = r.ok(&["update"]);
        let seen = tally.ok.load(Ordering::SeqCst);
        wait_for("traffic after the update", || {
            (tally.ok.load(Ordering::SeqCst) > seen + 50).then_some(())
        });
    });
    tally.assert_no_failures();

    let after = r.jlist();
    assert!(said.contains("rsup daemon updated"), "{said}");
    assert!(said.contains(&format!("pid {old_daemon}")), "{said}");
    let new_daemon = daemon_pid(&r);
    assert_ne!(new_daemon, old_daemon);
    assert_eq!(pinged_pid(&r), new_daemon);
    assert!(!alive(old_daemon), "the old daemon is still running");
    assert!(
        after.iter().all(|p| p.status == Status::Online),
        "{after:?}"
    );
    assert_eq!(
        identities(&after),
        identities(&before),
        "ids, names, indexes and restart counts are kept"
    );
    let new_pids = pids(&after);
    assert_eq!(new_pids.len(), 2);
    // The old daemon, gone now, left the new processes' pid files alone.
    assert_pid_files(&r, &after, new_daemon);
    for pid in &old_pids {
        assert!(!new_pids.contains(pid), "{pid} was not replaced");
        assert!(!alive(*pid), "old worker {pid} is still running");
    }
    // Traffic went to both generations.
    let served: Vec<u32> = tally
        .pids
        .lock()
        .unwrap()
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(old_pids.iter().any(|p| served.contains(p)), "{served:?}");
    assert!(new_pids.iter().any(|p| served.contains(p)), "{served:?}");
    // The old workers drained and exited on their own (their SIGINT
    // handler ran): nothing was cut.
    let report = r.report("report");
    for pid in &old_pids {
        assert!(
            report.contains(&format!("signal SIGINT pid={pid}")),
            "{pid} was not stopped gracefully: {report:?}"
        );
    }

    // Every line the workers wrote is in the logs: the old ones' up to
    // their last (written while the old daemon stopped them), the new
    // ones' from their first.
    let logs: String = after
        .iter()
        .map(|p| std::fs::read_to_string(&p.out_log).unwrap_or_default())
        .collect();
    for pid in &old_pids {
        let requests = logs
            .lines()
            .filter(|l| l.ends_with(&format!(" pid={pid}")) && l.starts_with("request"))
            .count();
        let last = logs
            .lines()
            .find(|l| l.starts_with(&format!("stopping pid={pid} after ")))
            .unwrap_or_else(|| panic!("no last line of {pid} in the logs"));
        let counted: usize = last.rsplit(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(requests, counted, "lines of {pid} are missing");
    }
    for pid in &new_pids {
        assert!(
            logs.lines()
                .any(|l| l.starts_with("request") && l.ends_with(&format!(" pid={pid}"))),
            "no line of the new worker {pid} in the logs"
        );
    }
    let errors: String = after
        .iter()
        .map(|p| std::fs::read_to_string(&p.err_log).unwrap_or_default())
        .collect();
    assert!(!errors.contains("EPIPE"), "{errors}");
}

#[test]
fn a_successor_killed_half_way_leaves_the_old_daemon_serving() {
    let r = Rsup::new();
    let ready = r.path("ready");
    std::fs::write(&ready, "").unwrap();
    let ready_env = ready.to_str().unwrap().to_string();
    let port = start_web(
        &r,
        "web",
        &["--wait-ready", "--listen-timeout", "60000"],
        &[("SEND_READY", "1"), ("READY_WHEN", &ready_env)],
    );
    let before = all_online(&r);
    let old_daemon = daemon_pid(&r);
    let old_pids = pids(&before);
    // New workers will listen, then wait for this file to say ready.
    std::fs::remove_file(&ready).unwrap();

    let mut update = None;
    let mut orphan = 0;
    let tally = under_load(port, |tally| {
        wait_for("traffic", || {
            (tally.ok.load(Ordering::SeqCst) > 50).then_some(())
        });
        let child = r
            .cmd()
            .arg("update")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let new_worker = wait_for("a worker of the new daemon to listen", || {
            listening_pids(&r)
                .into_iter()
                .find(|p| !old_pids.contains(p))
        });
        let successor = parent_of(new_worker);
        let cmdline = std::fs::read(format!("/proc/{successor}/cmdline")).unwrap();
        assert!(
            String::from_utf8_lossy(&cmdline).contains("--successor"),
            "{new_worker}'s parent is not the new daemon"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(successor as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        update = Some(child.wait_with_output().unwrap());
        orphan = new_worker;
        wait_for("the new daemon's worker to be stopped", || {
            (!alive(new_worker)).then_some(())
        });
        let seen = tally.ok.load(Ordering::SeqCst);
        wait_for("traffic after", || {
            (tally.ok.load(Ordering::SeqCst) > seen + 50).then_some(())
        });
    });
    tally.assert_no_failures();
    let update = update.unwrap();
    assert!(!update.status.success());
    let err = String::from_utf8_lossy(&update.stderr);
    assert!(err.contains("killed by SIGKILL"), "{err}");
    assert!(
        err.contains(&format!("pid {old_daemon}")) && err.contains("serves on, unchanged"),
        "{err}"
    );
    assert!(!alive(orphan));

    // The old daemon serves as before: same pids, requests taken...
    assert_eq!(pinged_pid(&r), old_daemon);
    assert_eq!(daemon_pid(&r), old_daemon);
    let now = r.jlist();
    assert_eq!(pids(&now), old_pids);
    assert_eq!(identities(&now), identities(&before));
    // ...its pid files its own again...
    assert_pid_files(&r, &now, old_daemon);
    // ...crashed processes restarted again...
    std::fs::write(&ready, "").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_pids[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the crashed worker to be restarted", || {
        let p = r.jlist().into_iter().find(|p| p.id == before[0].id)?;
        (p.status == Status::Online && p.pid != Some(old_pids[0]) && p.restarts == 1).then_some(())
    });
    // ...the state file its own again...
    let state = r.home.path().join("state.json");
    wait_for("the state file to be the old daemon's", || {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        text.contains(&format!("\"daemon_pid\":{old_daemon},"))
            .then_some(())
    });
    // ...and a later update goes through.
    assert!(r.ok(&["update"]).contains("rsup daemon updated"));
    assert_ne!(daemon_pid(&r), old_daemon);
}

#[test]
fn an_update_waits_for_a_running_reload_and_commands_sent_meanwhile_reach_the_new_daemon() {
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
    wait_for("the old daemon to begin handing over", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("handing every app over").then_some(())
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
    let new_daemon = daemon_pid(&r);
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = String::new();
    BufReader::new(&client).read_line(&mut answer).unwrap();
    assert!(
        answer.contains(&format!("\"pid\":{new_daemon},")),
        "not answered by the new daemon (pid {new_daemon}): {answer}"
    );
    // The reload counted, the update did not.
    let after = all_online(&r);
    assert!(after.iter().all(|p| p.restarts == 1), "{after:?}");
}

#[test]
fn a_release_whose_processes_do_not_come_up_leaves_the_old_daemon_serving() {
    let r = Rsup::new();
    let broken = r.path("broken");
    let broken_env = broken.to_str().unwrap().to_string();
    // A crash-looping new process is errored after its second quick exit.
    let flags = ["--max-restarts", "1", "--min-uptime", "60000"];
    let port = start_web(&r, "web", &flags, &[("BREAK_IF", &broken_env)]);
    let before = all_online(&r);
    let old_daemon = daemon_pid(&r);
    std::fs::write(&broken, "").unwrap();

    let mut out = None;
    let tally = under_load(port, |tally| {
        wait_for("traffic", || {
            (tally.ok.load(Ordering::SeqCst) > 50).then_some(())
        });
        out = Some(r.run(&["update"]));
        let seen = tally.ok.load(Ordering::SeqCst);
        wait_for("traffic after", || {
            (tally.ok.load(Ordering::SeqCst) > seen + 50).then_some(())
        });
    });
    tally.assert_no_failures();
    let out = out.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("update failed"), "{err}");
    assert!(
        err.contains("web (id 0) is errored under the new daemon"),
        "{err}"
    );
    assert!(err.contains("serves on, unchanged"), "{err}");
    assert_eq!(pinged_pid(&r), old_daemon);
    let now = r.jlist();
    assert_eq!(pids(&now), pids(&before));
    assert_eq!(identities(&now), identities(&before));
}

#[test]
fn an_old_daemon_that_dies_half_way_leaves_its_apps_to_the_successor() {
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
    let old_daemon = daemon_pid(&r);
    let old_pids = pids(&before);
    std::fs::remove_file(&ready).unwrap();

    let update = r
        .cmd()
        .arg("update")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let new_worker = wait_for("a worker of the new daemon to listen", || {
        listening_pids(&r)
            .into_iter()
            .find(|p| !old_pids.contains(p))
    });
    let successor = parent_of(new_worker);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_daemon as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::fs::write(&ready, "").unwrap();
    let out = update.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pinged_pid(&r), successor);
    assert_eq!(daemon_pid(&r), successor);
    let after = all_online(&r);
    assert_eq!(identities(&after), identities(&before));
    // What the dead daemon left, the successor stopped.
    for pid in &old_pids {
        wait_for("the old workers to be stopped", || {
            (!alive(*pid)).then_some(())
        });
    }
}

#[test]
fn stopped_instances_stay_stopped_and_apps_binding_their_own_port_come_back() {
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
    assert!(said.contains("rsup daemon updated"), "{said}");
    let after = r.wait_status("py", Status::Online);
    assert_ne!(after.pid, py_before.pid);
    let procs = r.jlist();
    assert_eq!(identities(&procs), identities(&before));
    let stopped = procs.iter().find(|p| p.id == stopped_id).unwrap();
    assert_eq!(stopped.status, Status::Stopped);
    assert_eq!(stopped.pid, None);
    // The py app's new process holds the port its old one had.
    r.wait_report(
        "report",
        &format!("listening pid={} port={port}", after.pid.unwrap()),
    );
    assert!(!alive(py_before.pid.unwrap()));
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
fn a_daemon_in_the_foreground_is_not_replaced() {
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
fn a_daemon_run_by_systemd_is_updated_inside_its_service() {
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
        .args(["daemon", "--resurrect"])
        .env("NOTIFY_SOCKET", &notify)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    notified(&systemd, |l| l == "READY=1");
    let before = r.jlist();

    let out = r.run(&["update"]);
    assert_success(&out);
    let new_pid = pinged_pid(&r);
    assert_ne!(new_pid, service.id());
    // The old daemon named its successor the service's main process
    // before it exited, so systemd follows the service into it.
    let main = notified(&systemd, |l| l.starts_with("MAINPID="));
    assert_eq!(main, format!("MAINPID={new_pid}"));
    assert!(service.wait().unwrap().success());
    let after = r.jlist();
    assert_eq!(identities(&after), identities(&before));
    assert!(after.iter().all(|p| p.status == Status::Online));
    // Only a successor the service daemon starts itself may replace it.
    let mut outsider = r
        .cmd()
        .args(["daemon", "--successor"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(outsider.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!outsider.wait().unwrap().success());
    assert!(err.contains("only a daemon it starts itself"), "{err}");
    assert_eq!(pinged_pid(&r), new_pid);
    r.ok(&["kill"]);
}

/// A daemon built before `update` existed answers the request as its
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
                    "{\"reply\":\"error\",\"message\":\"bad request: unknown variant `hand_over`, expected one of `ping`, `start`, `stop`\"}\n".to_string()
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
    assert!(err.contains("predates `rsup update`"), "{err}");
    assert!(err.contains("version 0.0.9"), "{err}");
    assert!(err.contains("serves on, unchanged"), "{err}");
}

fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}
