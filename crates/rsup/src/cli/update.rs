//! `rsup update` (PM2's `update` and `updatePM2`): replaces the running
//! daemon by this binary. The CLI starts it as a successor (`rsup daemon
//! --successor`), which takes every app over from the running daemon (see
//! the daemon's `handover` module), and watches until it answers or exits.
//! A daemon that is a systemd service starts the successor itself, inside
//! the service, when asked (`Request::StartSuccessor`).

use super::client::{connect_existing, send, spawn_daemon};
use super::commands::{list, print_table};
use crate::home::Home;
use anyhow::{anyhow, bail, Context, Result};
use rsup_proto::control::{Reply, Request};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(50);
/// How long one ping of the new daemon may wait: while the apps are handed
/// over, neither daemon accepts, and a ping waits in the socket's queue.
const PING_WAIT: Duration = Duration::from_secs(1);
/// Beyond the apps' `kill_timeout`, how long the old daemon may take to
/// stop its processes and exit.
const OLD_EXIT_ALLOWANCE: Duration = Duration::from_secs(30);

pub fn update(home: &Home) -> Result<i32> {
    let Some(stream) = connect_existing(home)? else {
        println!(
            "rsup daemon is not running ({}): nothing to update",
            home.dir.display()
        );
        return Ok(0);
    };
    let (old_pid, old_version, service) = match send(stream, &Request::Ping, |_| {})? {
        Reply::Pong {
            pid,
            version,
            service,
        } => (pid, version, service),
        Reply::Error { message } => bail!(message),
        _ => bail!("unexpected reply from the daemon"),
    };
    let exe = std::env::current_exe().context("finding this binary")?;
    println!(
        "[rsup] the daemon (pid {old_pid}, version {old_version}) re-executes itself as {} (version {})",
        exe.display(),
        env!("CARGO_PKG_VERSION")
    );
    let Some(stream) = connect_existing(home)? else {
        bail!("the daemon stopped before it could be updated");
    };
    match send(stream, &Request::ReExec { exe }, |m| println!("[rsup] {m}")) {
        Ok(Reply::Updated {
            pid,
            from,
            to,
            kept,
            started,
        }) => {
            println!(
                "rsup daemon updated in place: pid {pid}, version {from} -> {to}; {kept} process(es) kept running, {started} started"
            );
            print_table(&list(home)?);
            Ok(0)
        }
        Ok(Reply::Error { message }) if message.contains("unknown variant `re_exec`") => {
            hand_over(home, old_pid, &old_version, service)
        }
        Ok(Reply::Error { message }) => bail!(message),
        Ok(_) => bail!("unexpected reply from the daemon"),
        Err(e) => Err(e.context(format!(
            "the daemon (pid {old_pid}) ended the update without an answer; see {}",
            home.daemon_log().display()
        ))),
    }
}

/// Replaces a daemon that cannot re-execute itself (an older version) by
/// a successor started from this binary, which takes its apps over.
fn hand_over(home: &Home, old_pid: u32, old_version: &str, service: bool) -> Result<i32> {
    let old = format!("pid {old_pid} (version {old_version})");
    let version = env!("CARGO_PKG_VERSION");
    let log = home.daemon_log();
    let log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
    let mut successor = match service {
        // Inside the systemd service, where only the daemon can start it.
        true => Successor::Service(start_in_service(home)?),
        false => Successor::Child(spawn_daemon(home, true)?),
    };
    let new_pid = successor.pid();
    println!("[rsup] the daemon {old} hands its apps over to pid {new_pid} (version {version})");
    loop {
        if let Some(status) = successor.exited()? {
            return Err(failure(home, log_start, status, old_pid, &old));
        }
        if answering(home)? == Some(new_pid) {
            break;
        }
        std::thread::sleep(POLL);
    }
    println!("[rsup] the new daemon serves; the old one stops its processes");
    let procs = list(home)?;
    let longest = procs.iter().map(|p| p.spec.kill_timeout_ms).max();
    let limit = OLD_EXIT_ALLOWANCE + Duration::from_millis(longest.unwrap_or(0));
    let deadline = Instant::now() + limit;
    while running(old_pid) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    if running(old_pid) {
        eprintln!(
            "rsup: warning: the old daemon (pid {old_pid}) has not exited after {} s; see {}",
            limit.as_secs(),
            log.display()
        );
    }
    println!(
        "rsup daemon updated: {old} -> pid {new_pid} (version {version}); {} process(es) replaced, ids and restart counts kept",
        procs.iter().filter(|p| p.pid.is_some()).count()
    );
    print_table(&procs);
    Ok(0)
}

/// The new daemon: the CLI's child, or the service daemon's.
enum Successor {
    Child(std::process::Child),
    Service(u32),
}

impl Successor {
    fn pid(&self) -> u32 {
        match self {
            Successor::Child(child) => child.id(),
            Successor::Service(pid) => *pid,
        }
    }

    /// How it ended, once it has. The service daemon's child is not ours
    /// to wait for: its exit status is not known.
    fn exited(&mut self) -> Result<Option<Option<ExitStatus>>> {
        match self {
            Successor::Child(child) => Ok(child.try_wait()?.map(Some)),
            Successor::Service(pid) => Ok((!running(*pid)).then_some(None)),
        }
    }
}

/// Asks the service daemon to start this binary as its successor.
fn start_in_service(home: &Home) -> Result<u32> {
    let exe = std::env::current_exe().context("locating the rsup binary")?;
    let stream = connect_existing(home)?.context("the rsup daemon stopped")?;
    match send(stream, &Request::StartSuccessor { exe }, |_| {})? {
        Reply::SuccessorStarted { pid } => Ok(pid),
        Reply::Error { message } => bail!(message),
        _ => bail!("unexpected reply from the daemon"),
    }
}

/// The pid of the daemon that answers a ping now; `None` when none
/// answers within [`PING_WAIT`].
fn answering(home: &Home) -> Result<Option<u32>> {
    let Some(stream) = connect_existing(home)? else {
        return Ok(None);
    };
    stream.set_read_timeout(Some(PING_WAIT))?;
    Ok(match send(stream, &Request::Ping, |_| {}) {
        Ok(Reply::Pong { pid, .. }) => Some(pid),
        _ => None,
    })
}

/// Whether `pid` runs (a zombie does not).
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..)?.chars().next());
    matches!(state, Some(s) if s != 'Z')
}

/// Why the successor exited, from what it wrote to the daemon's log, and
/// who serves now.
fn failure(
    home: &Home,
    log_start: u64,
    status: Option<ExitStatus>,
    old_pid: u32,
    old: &str,
) -> anyhow::Error {
    let said = successor_error(home, log_start);
    let code = status.and_then(|s| s.code());
    let signal = status.and_then(|s| s.signal());
    let reason = match (said, code, signal) {
        (Some(said), _, _) => said,
        (None, _, Some(signal)) => format!(
            "the new daemon was killed by {}",
            nix::sys::signal::Signal::try_from(signal)
                .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_string())
        ),
        (None, Some(code), _) => format!("the new daemon exited with code {code}"),
        (None, None, _) => "the new daemon exited".to_string(),
    };
    // The old daemon serves again once the successor is gone.
    let serving = connect_existing(home)
        .ok()
        .flatten()
        .and_then(|s| send(s, &Request::Ping, |_| {}).ok());
    let now = match serving {
        Some(Reply::Pong { pid, .. }) if pid == old_pid => {
            format!("the daemon {old} serves on, unchanged")
        }
        Some(Reply::Pong { pid, version, .. }) => {
            format!("the daemon now answering is pid {pid} (version {version})")
        }
        _ => format!("no daemon answers now; see {}", home.daemon_log().display()),
    };
    anyhow!("{reason}\n{now}")
}

/// The error the successor printed last (`rsup: ...` in the daemon's log,
/// since it began).
fn successor_error(home: &Home, log_start: u64) -> Option<String> {
    let mut file = std::fs::File::open(home.daemon_log()).ok()?;
    file.seek(SeekFrom::Start(log_start)).ok()?;
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("rsup: "))
        .map(str::to_string)
}
