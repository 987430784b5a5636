//! rsup inside a pod: the health endpoints (`/livez`, `/readyz`,
//! `/metrics`), the drain before a stop, and the example image of
//! js-examples/kubernetes, whose command runs here for real as PID 1 of a
//! new PID namespace.

use crate::harness::*;
use crate::http_client::under_load;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../js-examples/kubernetes")
        .join(name)
        .canonicalize()
        .expect("example file exists")
}

/// One GET: (status, body), or `None` when nothing answers.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

fn wait_get(addr: &str, path: &str, status: u16) -> String {
    wait_for(&format!("{path} to answer {status}"), || {
        get(addr, path).and_then(|(s, body)| (s == status).then_some(body))
    })
}

/// The samples of a `/metrics` text: `name{labels}` → value.
fn metrics(addr: &str) -> BTreeMap<String, f64> {
    let (status, body) = get(addr, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "not OpenMetrics text: {body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().expect("a number")))
        .collect()
}

fn wait_metric(addr: &str, sample: &str, wanted: f64) -> BTreeMap<String, f64> {
    wait_for(&format!("{sample} to be {wanted}"), || {
        let m = metrics(addr);
        (m.get(sample) == Some(&wanted)).then_some(m)
    })
}

#[test]
fn metrics_follow_crashes_and_reloads_and_readyz_follows_the_instances() {
    let r = Rsup::new();
    let health = format!("127.0.0.1:{}", free_port());
    let port = free_port().to_string();
    // The daemon started on demand reads its variables.
    let out = r.start_fixture(
        "http.js",
        "m",
        &[],
        &[
            ("RSUP_HEALTH_PORT", &health),
            // Long: the test cuts it short.
            ("RSUP_DRAIN_DELAY", "600000"),
            ("PORT", &port),
        ],
    );
    assert_success(&out);
    assert_eq!(wait_get(&health, "/readyz", 200), "ok\n");
    assert_eq!(get(&health, "/livez").unwrap(), (200, "ok\n".into()));
    assert_eq!(get(&health, "/nothing").unwrap().0, 404);

    let one = "{app=\"m\",id=\"0\",instance=\"0\"}";
    let m = wait_metric(&health, "rsup_instances{app=\"m\",status=\"online\"}", 1.0);
    assert_eq!(m["rsup_ready"], 1.0);
    assert_eq!(m["rsup_instances{app=\"m\",status=\"errored\"}"], 0.0);
    assert_eq!(m[&format!("rsup_instance_restarts_total{one}")], 0.0);
    // Sampled in the background: a sample taken as the process was just
    // starting is small, and the next one, 2 s later, is not.
    let memory = format!("rsup_instance_memory_bytes{one}");
    wait_for("the instance's memory to be sampled", || {
        (metrics(&health).get(&memory).copied().unwrap_or(0.0) > 1e6).then_some(())
    });
    assert!(m.contains_key(&format!("rsup_instance_cpu_seconds_total{one}")));
    assert!(
        !m.keys().any(|k| k.starts_with("rsup_reloads_total")),
        "{m:?}"
    );

    // A crash: rsup restarts it, and the count follows.
    let pid = r.process("m").pid.unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    wait_metric(&health, &format!("rsup_instance_restarts_total{one}"), 1.0);
    wait_get(&health, "/readyz", 200);

    // A reload keeps the pod ready: the old process serves until the new
    // one is.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (health, watching) = (health.clone(), watching.clone());
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while watching.load(Ordering::SeqCst) {
                answers.push(get(&health, "/readyz").map(|(s, _)| s));
            }
            answers
        })
    };
    r.ok(&["reload", "m"]);
    watching.store(false, Ordering::SeqCst);
    let answers = watcher.join().unwrap();
    assert!(
        answers.len() > 1 && answers.iter().all(|a| *a == Some(200)),
        "{answers:?}"
    );
    let m = metrics(&health);
    assert_eq!(m["rsup_reloads_total{app=\"m\",result=\"ok\"}"], 1.0);
    assert_eq!(m["rsup_reload_duration_seconds_count{app=\"m\"}"], 1.0);
    assert!(m["rsup_reload_duration_seconds_sum{app=\"m\"}"] > 0.0);
    assert_eq!(m["rsup_last_reload_success{app=\"m\"}"], 1.0);
    assert!(m["rsup_last_reload_timestamp_seconds{app=\"m\"}"] > 1.7e9);

    // A release that does not start: the reload fails, the old process
    // keeps serving, and the metrics say so.
    std::fs::write(r.path("broken"), "").unwrap();
    let out = r
        .cmd()
        .args(["reload", "m"])
        .env("BREAK_IF", r.path("broken"))
        .args(["--update-env"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let m = metrics(&health);
    assert_eq!(m["rsup_reloads_total{app=\"m\",result=\"failed\"}"], 1.0);
    assert_eq!(m["rsup_last_reload_success{app=\"m\"}"], 0.0);
    assert_eq!(m["rsup_reload_duration_seconds_count{app=\"m\"}"], 2.0);

    // Not every instance online: not ready, saying which.
    r.ok(&["stop", "m"]);
    let (status, body) = get(&health, "/readyz").unwrap();
    assert_eq!((status, body.as_str()), (503, "m (id 0) is stopped\n"));
    let m = metrics(&health);
    assert_eq!(m["rsup_ready"], 0.0);
    assert_eq!(m["rsup_instances{app=\"m\",status=\"stopped\"}"], 1.0);

    // The daemon drains on SIGTERM too, for as long as it was told; a
    // second signal cuts the drain short.
    let daemon: i32 = std::fs::read_to_string(r.home.path().join("rsup.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let log = || std::fs::read_to_string(r.home.path().join("rsup.log")).unwrap();
    kill(Pid::from_raw(daemon), Signal::SIGTERM).unwrap();
    wait_for("the drain to begin", || {
        log()
            .contains("SIGTERM: not ready from now on; the apps keep serving for 600000 ms")
            .then_some(())
    });
    assert_eq!(get(&health, "/readyz").unwrap(), (503, "stopping\n".into()));
    kill(Pid::from_raw(daemon), Signal::SIGTERM).unwrap();
    wait_for("the daemon to exit", || {
        (!alive(daemon as u32)).then_some(())
    });
    assert!(
        log().contains("SIGTERM again: drain cut short"),
        "{}",
        log()
    );
}

#[test]
fn health_flags_are_checked_before_anything_starts() {
    let r = Rsup::new();
    let app = fixture("http.js");
    let app = app.to_str().unwrap();
    let fails = |args: &[&str], env: &[(&str, &str)], says: &str| {
        let out = r
            .cmd()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    };
    fails(
        &["start", app, "--health-port", "9102"],
        &[],
        "--health-port and --drain-delay go with --no-daemon",
    );
    fails(
        &["start", app, "--no-daemon", "--drain-delay", "100"],
        &[],
        "--drain-delay needs --health-port",
    );
    fails(
        &["start", app, "--no-daemon", "--health-port", "nine"],
        &[],
        "--health-port: expected a port",
    );
    fails(
        &["start", app],
        &[("RSUP_HEALTH_PORT", "nine")],
        "RSUP_HEALTH_PORT: expected a port",
    );
    fails(
        &["start", app],
        &[("RSUP_DRAIN_DELAY", "100")],
        "RSUP_DRAIN_DELAY needs RSUP_HEALTH_PORT",
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    fails(
        &["start", app, "--no-daemon", "--health-port", &taken],
        &[],
        &format!("--health-port: cannot listen on {taken}"),
    );
    // None of them left a daemon, an app or a file of one behind.
    for file in ["rsup.sock", "rsup.pid", "pm2.pid"] {
        assert!(!r.home.path().join(file).exists(), "{file} is left");
    }
}

fn repo_preload() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../npm/rsup/preload.js")
}

/// What the example image runs: its `ENV` variables and its `CMD`.
struct Image {
    env: Vec<(String, String)>,
    cmd: Vec<String>,
}

fn read_dockerfile(path: &Path) -> Image {
    let text = std::fs::read_to_string(path).unwrap();
    let joined = text.replace("\\\n", " ");
    let mut image = Image {
        env: Vec::new(),
        cmd: Vec::new(),
    };
    for line in joined.lines() {
        if let Some(vars) = line.strip_prefix("ENV ") {
            for pair in vars.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV key=value");
                image.env.push((k.into(), v.into()));
            }
        } else if let Some(cmd) = line.strip_prefix("CMD ") {
            image.cmd = serde_json::from_str(cmd).expect("CMD in exec form");
        }
    }
    image
}

/// `terminationGracePeriodSeconds` of the example Deployment.
fn grace_period() -> Duration {
    let text = std::fs::read_to_string(example("deployment.yaml")).unwrap();
    let seconds = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
        .expect("the Deployment sets terminationGracePeriodSeconds");
    Duration::from_secs(seconds.trim().parse().unwrap())
}

/// Why a new PID namespace cannot be had here, if it cannot.
fn unshare_unavailable() -> Option<String> {
    match Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output()
    {
        Err(e) => Some(format!("cannot run unshare: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "unshare --pid --fork --mount-proc fails here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// The children of `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn the_example_image_as_pid_1_drains_before_stopping_and_exits_0_in_the_grace_period() {
    if let Some(why) = unshare_unavailable() {
        // Straight to stderr: the test harness would swallow eprintln!.
        let _ = writeln!(std::io::stderr(), "SKIPPED the PID 1 drain test: {why}");
        return;
    }
    let r = Rsup::new();
    let image = read_dockerfile(&example("Dockerfile"));
    assert_eq!(image.cmd[0], "rsup", "the image runs rsup itself");
    let health = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", RSUP])
        .args(&image.cmd[1..])
        .current_dir(example(""))
        .envs(image.env.iter().map(|(k, v)| (k, v)))
        // What differs from the image: where rsup and its preload are,
        // and free ports (on loopback) instead of fixed ones.
        .env("RSUP_HOME", r.home.path())
        .env("RSUP_PRELOAD", repo_preload())
        .env("RSUP_HEALTH_PORT", &health)
        .env("PORT", port.to_string())
        .env_remove("RSUP_KILL_SIGNAL")
        .env_remove("PM2_KILL_SIGNAL")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(r.path("stdout")).unwrap())
        .stderr(std::fs::File::create(r.path("stderr")).unwrap());
    let mut pod = cmd.spawn().unwrap();
    let pod_pid = pod.id();
    let stdout = || std::fs::read_to_string(r.path("stdout")).unwrap_or_default();
    let stderr = || std::fs::read_to_string(r.path("stderr")).unwrap_or_default();

    // unshare forks; its child execs rsup, PID 1 of the new namespace.
    let rsup = wait_for("rsup to start in the namespace", || {
        children(pod_pid).first().copied()
    });
    let status = std::fs::read_to_string(format!("/proc/{rsup}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "{nspid}");

    wait_get(&health, "/readyz", 200);
    wait_metric(
        &health,
        "rsup_instances{app=\"web\",status=\"online\"}",
        2.0,
    );
    // The apps' output goes to the container's stdout (`kubectl logs`).
    wait_for("both instances to log on stdout", || {
        (stdout().matches(": listening on").count() == 2).then_some(())
    });

    let mut sigterm_sent = Instant::now();
    let tally = under_load(port, |tally| {
        wait_for("traffic", || {
            (tally.ok.load(Ordering::SeqCst) > 100).then_some(())
        });
        // What the kubelet does when the pod is deleted.
        kill(Pid::from_raw(rsup as i32), Signal::SIGTERM).unwrap();
        sigterm_sent = Instant::now();
        let body = wait_get(&health, "/readyz", 503);
        assert_eq!(body, "stopping\n");
        assert!(
            !stdout().contains("SIGINT"),
            "an instance was signalled before /readyz turned 503:\n{}",
            stdout()
        );
        // The load balancer takes a while to hear of it: meanwhile the
        // instances keep answering.
        tally.wait_for_more("requests answered while draining", 20);
        assert!(!stdout().contains("SIGINT"), "{}", stdout());
    });
    // Every request sent was answered, none refused or cut.
    tally.assert_no_failures();

    let exit = wait_for("the pod's rsup to exit", || pod.try_wait().unwrap());
    let took = sigterm_sent.elapsed();
    assert!(
        exit.success(),
        "{exit}\nstdout:\n{}\nstderr:\n{}",
        stdout(),
        stderr()
    );
    assert!(
        took < grace_period(),
        "exited {took:?} after SIGTERM, past terminationGracePeriodSeconds"
    );
    // Each instance stopped on its kill signal, none on SIGKILL.
    assert_eq!(
        stdout().matches(": SIGINT, finishing").count(),
        2,
        "{}",
        stdout()
    );
    assert!(!stderr().contains("SIGKILL"), "{}", stderr());
}

/// The inode of the socket listening on `addr`'s port (from /proc/net/tcp).
fn listening_inode(addr: &str) -> Option<u64> {
    let port: u16 = addr.rsplit(':').next()?.parse().ok()?;
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        (local_port == port && f.get(3) == Some(&"0A")).then(|| f.get(9)?.parse().ok())?
    })
}

#[test]
fn the_health_endpoints_keep_their_listener_through_an_update_and_a_crash() {
    let r = Rsup::new();
    let health = format!("127.0.0.1:{}", free_port());
    let out = r.start_fixture("app.js", "api", &[], &[("RSUP_HEALTH_PORT", &health)]);
    assert_success(&out);
    wait_get(&health, "/readyz", 200);
    let first = listening_inode(&health).expect("the health listener");

    // Handed through the exec: the same socket, never closed.
    r.ok(&["update"]);
    assert_eq!(listening_inode(&health), Some(first));
    assert_eq!(wait_get(&health, "/readyz", 200), "ok\n");

    // Kept by the keeper, and handed to the next daemon.
    let daemon: i32 = std::fs::read_to_string(r.home.path().join("rsup.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the next daemon", || {
        let now = std::fs::read_to_string(r.home.path().join("rsup.pid")).unwrap_or_default();
        (now.trim() != daemon.to_string() && !now.trim().is_empty()).then_some(())
    });
    assert_eq!(wait_get(&health, "/readyz", 200), "ok\n");
    assert_eq!(listening_inode(&health), Some(first));
}
