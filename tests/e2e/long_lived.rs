//! Long-lived connections through a reload. Apps written the usual PM2 way
//! (listen, `process.send('ready')`, on SIGINT `server.close()` and exit),
//! knowing nothing of rsup, hold WebSocket (`ws`), socket.io and
//! server-sent event connections open while they are reloaded twice. The
//! preload asks each connection of a replaced instance to go (a 1012 close
//! frame, the end of the event stream); clients reconnect to the new
//! instances and resend what was not answered (tests/fixtures/long-lived/
//! clients.js). Nothing is lost, every close is clean, and each old
//! instance exits on its own once its connections are gone: kill_timeout
//! is 20 s here, and a SIGKILLed process never reports its exit. A stop
//! closes them with 1001 (Going Away) instead, and tells the app's
//! onShutdown handlers why.

use crate::harness::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

const CLIENTS: usize = 8;
const RELOADS: usize = 2;

/// tests/fixtures/long-lived/clients.js, its output lines collected.
struct Clients {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Clients {
    fn start(kind: &str, port: u16) -> Clients {
        let mut command = Command::new("node");
        command.arg(fixture("long-lived/clients.js")).args([
            kind,
            &port.to_string(),
            &CLIENTS.to_string(),
            "50",
        ]);
        Clients::spawn(command)
    }

    /// Runs `command` (a Node client), its output lines collected; it is
    /// killed when dropped, even by a failing test.
    fn spawn(mut command: Command) -> Clients {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stdin = child.stdin.take();
        Clients {
            child,
            stdin,
            lines,
        }
    }

    fn wait_line(&self, what: &str, starts: &str) -> String {
        wait_for(what, || {
            let lines = self.lines.lock().unwrap();
            lines.iter().find(|l| l.starts_with(starts)).cloned()
        })
    }

    /// Stops sending, waits for the unanswered, and returns the summary.
    fn stop(&mut self) -> Value {
        writeln!(self.stdin.as_mut().unwrap(), "stop").unwrap();
        let line = self.wait_line("the clients' summary", "summary ");
        serde_json::from_str(&line["summary ".len()..]).expect("summary is JSON")
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pids(r: &Rsup, name: &str) -> BTreeSet<u32> {
    r.jlist()
        .iter()
        .filter(|p| p.name == name)
        .filter_map(|p| p.pid)
        .collect()
}

/// Runs `app` (2 instances, wait_ready) under `kind` clients through
/// RELOADS reloads; checks the old instances exited on their own and the
/// clients reached the new ones. Returns the clients' summary.
fn through_reloads(app: &str, kind: &str) -> Value {
    let r = Rsup::new();
    let port = free_port();
    let flags = ["-i", "2", "--wait-ready", "--kill-timeout", "20000"];
    let out = r.start_fixture(app, "live", &flags, &[("PORT", &port.to_string())]);
    assert_success(&out);
    let mut replaced = pids(&r, "live");
    assert_eq!(replaced.len(), 2);

    let mut clients = Clients::start(kind, port);
    clients.wait_line("every client to connect", "connected");
    for _ in 0..RELOADS {
        let before = pids(&r, "live");
        r.ok(&["reload", "live"]);
        replaced.extend(before);
    }
    let now = pids(&r, "live");
    for pid in &now {
        clients.wait_line(&format!("{pid} to serve"), &format!("served pid={pid}"));
    }
    let summary = clients.stop();
    eprintln!("{kind}: {summary}");

    replaced.retain(|p| !now.contains(p));
    assert_eq!(replaced.len(), 2 * (RELOADS + 1) - 2);
    for pid in replaced {
        let exit = format!("exit pid={pid} ");
        let lines = r.wait_report("report", &exit);
        let line = lines.iter().find(|l| l.starts_with(&exit)).unwrap();
        assert_eq!(line, &format!("exit pid={pid} code=0"), "{lines:?}");
    }

    assert_eq!(summary["lost"], 0, "{summary}");
    assert_eq!(summary["failedConnects"], 0, "{summary}");
    assert!(summary["sent"].as_u64().unwrap() > 0, "{summary}");
    summary
}

/// Every connection to a replaced instance ended with `how`, and each
/// client had at least one per reload.
fn assert_closes_all(summary: &Value, how: &str) {
    let closes = summary["closes"].as_object().unwrap();
    let clean = closes.get(how).and_then(Value::as_u64).unwrap_or(0);
    let all: u64 = closes.values().filter_map(Value::as_u64).sum();
    assert_eq!(clean, all, "not every close was {how}: {summary}");
    assert!(clean >= (CLIENTS * RELOADS) as u64, "{summary}");
}

#[test]
fn websocket_clients_of_a_reloaded_ws_app_get_1012_and_lose_no_message() {
    let summary = through_reloads("long-lived/ws-echo.js", "ws");
    assert_closes_all(&summary, "1012");
    assert_eq!(summary["duplicates"], 0, "{summary}");
}

#[test]
fn socket_io_clients_reconnect_through_a_reload_and_lose_no_event() {
    let summary = through_reloads("long-lived/socketio-echo.js", "socket.io");
    assert_closes_all(&summary, "1012");
}

#[test]
fn event_streams_of_a_reloaded_app_end_cleanly_and_resume_without_a_gap() {
    let summary = through_reloads("long-lived/sse.js", "sse");
    assert_closes_all(&summary, "end");
    assert_eq!(summary["duplicates"], 0, "{summary}");
}

/// The app's instances' pids, by instance index.
fn pids_by_index(r: &Rsup, name: &str) -> Vec<u32> {
    let mut list: Vec<(u32, u32)> = r
        .jlist()
        .iter()
        .filter(|p| p.name == name)
        .filter_map(|p| Some((p.instance, p.pid?)))
        .collect();
    list.sort();
    list.into_iter().map(|(_, pid)| pid).collect()
}

/// The reason `pid` reported to its onShutdown handler, and that it exited
/// on its own (code 0), not at kill_timeout.
fn reason_of(r: &Rsup, pid: u32) -> String {
    let exit = format!("exit pid={pid} ");
    let lines = r.wait_report("report", &exit);
    assert!(
        lines.contains(&format!("exit pid={pid} code=0")),
        "{lines:?}"
    );
    let shutdown = format!("shutdown pid={pid} reason=");
    let line = lines.iter().find(|l| l.starts_with(&shutdown));
    line.expect("a shutdown line")[shutdown.len()..].to_string()
}

/// Whether the app comes back is told to its WebSocket clients and to its
/// onShutdown handlers: a restart or a scale down (its processes replaced
/// or fewer) says `reload` and closes with 1012 Service Restart; a stop or
/// the daemon's shutdown says `stop` and closes with 1001 Going Away.
#[test]
fn websocket_clients_and_handlers_learn_whether_the_app_comes_back() {
    let r = Rsup::new();
    let port = free_port();
    let flags = ["-i", "2", "--wait-ready", "--kill-timeout", "20000"];
    let out = r.start_fixture(
        "long-lived/ws-reason.js",
        "live",
        &flags,
        &[("PORT", &port.to_string())],
    );
    assert_success(&out);
    let first = pids_by_index(&r, "live");
    assert_eq!(first.len(), 2);
    let mut command = Command::new("node");
    command
        .arg(fixture("long-lived/close-codes.js"))
        .arg(port.to_string());
    let client = Clients::spawn(command);
    let lines = client.lines.clone();
    let served_by = |what: &str, pids: &[u32]| {
        wait_for(what, || {
            let seen = lines.lock().unwrap();
            let last = seen.iter().rev().find(|l| l.starts_with("served "))?;
            pids.iter()
                .any(|p| *last == format!("served pid={p}"))
                .then_some(())
        })
    };
    served_by("the client to connect", &first);

    r.ok(&["restart", "live"]);
    let second = pids_by_index(&r, "live");
    served_by("the client to come back", &second);
    r.ok(&["scale", "live", "1"]);
    served_by("the client on the instance left", &second[..1]);
    r.ok(&["stop", "live"]);
    let seen = wait_for("the close on stop", || {
        let seen = lines.lock().unwrap();
        seen.contains(&"close 1001".to_string())
            .then(|| seen.clone())
    });
    drop(client);
    // 1012 on the restart (and on the scale down if the client was on the
    // instance removed), 1001 last.
    let closes: Vec<&str> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("close "))
        .collect();
    let (last, before) = closes.split_last().unwrap();
    assert_eq!(*last, "1001", "{seen:?}");
    assert!(!before.is_empty(), "{seen:?}");
    assert!(before.iter().all(|c| *c == "1012"), "{seen:?}");

    for pid in first.iter().chain(&second[1..]) {
        assert_eq!(reason_of(&r, *pid), "reload", "pid {pid}");
    }
    assert_eq!(reason_of(&r, second[0]), "stop");

    r.ok(&["restart", "live"]);
    let third = pids_by_index(&r, "live");
    // The daemon's own shutdown removes every app, as `delete` does.
    r.ok(&["kill"]);
    assert_eq!(reason_of(&r, third[0]), "stop");
}
