//! Zero-downtime reload on sockets the daemon owns: continuous traffic
//! through several reloads, with not one failed request.

use crate::harness::*;
use crate::http_client::under_load;
use rsup_proto::app::Status;

/// Starts tests/fixtures/http.js on a free port; returns the port.
fn start_http(r: &Rsup, name: &str, extra: &[&str], env: &[(&str, &str)]) -> u16 {
    let env: Vec<(&str, &str)> = env.iter().copied().chain([("PORT", "0")]).collect();
    let out = r.start_fixture("http.js", name, extra, &env);
    assert_success(&out);
    let lines = r.wait_report("report", "listening");
    port_of(&lines[0])
}

fn port_of(line: &str) -> u16 {
    line.rsplit("port=").next().unwrap().parse().unwrap()
}

#[test]
fn cluster_reloads_lose_no_request() {
    let r = Rsup::new();
    let port = start_http(&r, "api", &["-i", "2"], &[]);
    let procs = r.jlist();
    assert_eq!(procs.len(), 2);
    // listen(0) in both instances: one shared port.
    let lines = wait_for("both instances to listen", || {
        let l: Vec<String> = r
            .report("report")
            .into_iter()
            .filter(|l| l.starts_with("listening"))
            .collect();
        (l.len() == 2).then_some(l)
    });
    assert!(lines.iter().all(|l| port_of(l) == port), "{lines:?}");
    let first_pids: Vec<u32> = procs.iter().filter_map(|p| p.pid).collect();

    let tally = under_load(port, |_| {
        for _ in 0..3 {
            r.ok(&["reload", "api"]);
        }
    });
    tally.assert_no_failures();
    let after = r.jlist();
    assert!(after.iter().all(|p| p.status == Status::Online));
    assert_eq!(
        after.iter().map(|p| (p.id, p.instance)).collect::<Vec<_>>(),
        procs.iter().map(|p| (p.id, p.instance)).collect::<Vec<_>>(),
        "reload keeps ids and instance indexes"
    );
    for pid in first_pids {
        assert!(!alive(pid), "old process {pid} survived the reload");
    }
    // The old processes shut down cleanly through their own SIGINT handler.
    for p in &after {
        assert_eq!(p.last_exit.as_ref().and_then(|e| e.code), Some(0), "{p:?}");
    }
    // Traffic was served by the old and the new generations.
    assert!(tally.pids.lock().unwrap().len() >= 4);
}

#[test]
fn a_single_fork_mode_instance_reloads_without_downtime() {
    let r = Rsup::new();
    let port = start_http(&r, "solo", &[], &[]);
    assert_eq!(
        r.process("solo").spec.exec_mode,
        rsup_proto::app::ExecMode::Fork
    );
    let tally = under_load(port, |_| {
        for _ in 0..3 {
            r.ok(&["reload", "solo"]);
        }
    });
    tally.assert_no_failures();
    assert_eq!(r.process("solo").restarts, 3);
    assert!(tally.pids.lock().unwrap().len() >= 2);
}

#[test]
fn a_broken_release_leaves_the_old_instances_serving() {
    let r = Rsup::new();
    let broken = r.path("broken");
    let port = start_http(
        &r,
        "api",
        &["-i", "2"],
        &[("BREAK_IF", broken.to_str().unwrap())],
    );
    let before: Vec<Option<u32>> = r.jlist().iter().map(|p| p.pid).collect();
    std::fs::write(&broken, "").unwrap();

    let mut out = None;
    let tally = under_load(port, |_| out = Some(r.run(&["reload", "api"])));
    let out = out.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reload failed"), "{err}");
    assert!(err.contains("broken release: refusing to start"), "{err}");
    tally.assert_no_failures();
    let after: Vec<Option<u32>> = r.jlist().iter().map(|p| p.pid).collect();
    assert_eq!(before, after, "the old processes keep serving");
    assert!(r.jlist().iter().all(|p| p.status == Status::Online));
}

#[test]
fn strict_ready_refuses_a_release_that_never_becomes_ready() {
    let r = Rsup::new();
    let _port = start_http(
        &r,
        "strict",
        &["--wait-ready", "--listen-timeout", "5000"],
        &[("SEND_READY", "1")],
    );
    let before = r.process("strict").pid;
    // The new process will listen but never say ready.
    let out = r
        .cmd()
        .args(["reload", "strict", "--strict-ready"])
        .output()
        .unwrap();
    // SEND_READY is in the running spec, so this reload succeeds...
    assert_success(&out);
    assert_ne!(r.process("strict").pid, before);

    // ...and a release that drops it fails, keeping the old process.
    let app = fixture("http.js");
    let config = r.path("eco.config.js");
    std::fs::write(
        &config,
        format!(
            "module.exports = {{ apps: [{{ name: 'strict', script: {app:?}, wait_ready: true, \
             listen_timeout: 700, env: {{ PORT: '0', REPORT: {rep:?}, SEND_READY: '' }} }}] }};",
            app = app.to_str().unwrap(),
            rep = r.path("report").to_str().unwrap()
        ),
    )
    .unwrap();
    let serving = r.process("strict").pid;
    let out = r
        .cmd()
        .args(["startOrReload", config.to_str().unwrap(), "--strict-ready"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not ready within listen_timeout"), "{err}");
    assert_eq!(r.process("strict").pid, serving);
}

#[test]
fn a_second_reload_while_one_runs_is_refused_and_leaves_no_strays() {
    let r = Rsup::new();
    start_http(
        &r,
        "busy",
        &["-i", "2", "--wait-ready", "--listen-timeout", "3000"],
        &[],
    );
    // Without SEND_READY each new process waits out listen_timeout, so the
    // first reload takes a while.
    let first = {
        let mut c = r.cmd();
        c.args(["reload", "busy"]);
        std::thread::spawn(move || c.output().unwrap())
    };
    wait_for("the first reload to start a process", || {
        let n = r
            .report("report")
            .iter()
            .filter(|l| l.starts_with("listening"))
            .count();
        (n >= 3).then_some(())
    });
    let second = r.run(&["reload", "busy"]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already in progress"));
    assert!(first.join().unwrap().status.success());

    let procs = r.jlist();
    assert_eq!(procs.len(), 2);
    let started: Vec<u32> = r
        .report("report")
        .iter()
        .filter_map(|l| l.strip_prefix("listening pid="))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let running: Vec<u32> = procs.iter().filter_map(|p| p.pid).collect();
    for pid in started {
        assert_eq!(
            alive(pid),
            running.contains(&pid),
            "pid {pid}: stray or missing"
        );
    }
}

#[test]
fn scale_adds_and_removes_instances() {
    let r = Rsup::new();
    start_http(&r, "sc", &["-i", "1"], &[]);
    r.ok(&["scale", "sc", "3"]);
    let procs = r.jlist();
    assert_eq!(procs.len(), 3);
    let mut instances: Vec<u32> = procs.iter().map(|p| p.instance).collect();
    instances.sort();
    assert_eq!(instances, [0, 1, 2]);
    let doomed = procs.iter().find(|p| p.instance == 2).unwrap().pid.unwrap();
    r.ok(&["scale", "sc", "2"]);
    assert_eq!(r.jlist().len(), 2);
    assert!(!alive(doomed));
}

#[test]
fn start_or_graceful_reload_starts_new_apps_and_reloads_running_ones_with_new_env() {
    let r = Rsup::new();
    let app = fixture("http.js");
    let config = r.path("ecosystem.config.js");
    let write = |greeting: &str, with_worker: bool| {
        let worker = if with_worker {
            format!(
                ", {{ name: 'worker', script: {:?} }}",
                fixture("app.js").to_str().unwrap()
            )
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "module.exports = {{ apps: [{{ name: 'web', script: {app:?}, instances: 2, \
                 env: {{ PORT: '0', REPORT: {rep:?}, GREETING: '{greeting}' }} }}{worker}] }};",
                app = app.to_str().unwrap(),
                rep = r.path("report").to_str().unwrap()
            ),
        )
        .unwrap();
    };
    write("hello", false);
    let config = config.to_str().unwrap().to_string();
    r.ok(&["startOrGracefulReload", &config]);
    let before = r.jlist();
    assert_eq!(before.len(), 2);
    wait_for("both instances to listen", || {
        let n = r
            .report("report")
            .iter()
            .filter(|l| l.starts_with("listening"))
            .count();
        (n == 2).then_some(())
    });

    write("bonjour", true);
    let out = r.ok(&["startOrGracefulReload", &config]);
    assert!(out.contains("replaced"), "{out}");
    let after = r.jlist();
    let web: Vec<_> = after.iter().filter(|p| p.name == "web").collect();
    assert_eq!(web.len(), 2);
    for p in &web {
        assert_eq!(
            p.spec.env.get("GREETING").map(String::as_str),
            Some("bonjour")
        );
        assert!(
            before.iter().all(|b| b.pid != p.pid),
            "{} was not replaced",
            p.id
        );
        assert!(before.iter().any(|b| b.id == p.id), "{} is a new id", p.id);
    }
    assert_eq!(r.process("worker").status, Status::Online);
}
