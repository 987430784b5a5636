//! Long-lived connections through a reload. Apps written the usual PM2 way
//! (listen, `process.send('ready')`, on SIGINT `server.close()` and exit),
//! knowing nothing of rsup, hold WebSocket (`ws`), socket.io and
//! server-sent event connections open while they are reloaded twice. The
//! preload asks each connection of a replaced instance to go (a 1012 close
//! frame, the end of the event stream); clients reconnect to the new
//! instances and resend what was not answered (tests/fixtures/long-lived/
//! clients.js). Nothing is lost, every close is clean, and each old
//! instance exits on its own once its connections are gone: kill_timeout
//! is 20 s here, and a SIGKILLed process never reports its exit.

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
        let mut child = Command::new("node")
            .arg(fixture("long-lived/clients.js"))
            .args([kind, &port.to_string(), &CLIENTS.to_string(), "50"])
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

/// The close code says whether the app comes back: a restart (its process
/// replaced) sends 1012 Service Restart, a stop 1001 Going Away.
#[test]
fn a_websocket_gets_1012_on_a_restart_and_1001_on_a_stop() {
    let r = Rsup::new();
    let port = free_port();
    let flags = ["--wait-ready", "--kill-timeout", "20000"];
    let out = r.start_fixture(
        "long-lived/ws-echo.js",
        "live",
        &flags,
        &[("PORT", &port.to_string())],
    );
    assert_success(&out);
    let first = *pids(&r, "live").first().unwrap();
    let mut client = Command::new("node")
        .arg(fixture("long-lived/close-codes.js"))
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = client.stdout.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let wait_line = |what: &str, line: String| {
        wait_for(what, || {
            let seen = lines.lock().unwrap();
            seen.contains(&line).then(|| seen.clone())
        })
    };
    wait_line("the client to connect", format!("served pid={first}"));

    r.ok(&["restart", "live"]);
    let second = *pids(&r, "live").first().unwrap();
    let seen = wait_line("the client to come back", format!("served pid={second}"));
    let closes: Vec<&String> = seen.iter().filter(|l| l.starts_with("close")).collect();
    assert_eq!(closes, ["close 1012"], "{seen:?}");

    r.ok(&["stop", "live"]);
    let seen = wait_line("the close on stop", "close 1001".into());
    let _ = client.kill();
    let _ = client.wait();
    let closes: Vec<&String> = seen.iter().filter(|l| l.starts_with("close")).collect();
    assert_eq!(closes, ["close 1012", "close 1001"], "{seen:?}");
    // Each process exited on its own, not at kill_timeout.
    for pid in [first, second] {
        let exit = format!("exit pid={pid} ");
        let lines = r.wait_report("report", &exit);
        let line = lines.iter().find(|l| l.starts_with(&exit)).unwrap();
        assert_eq!(line, &format!("exit pid={pid} code=0"), "{lines:?}");
    }
}
