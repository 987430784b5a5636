//! The daemon's own start and end: single-instance lock, pid file, control
//! socket, signals, and stopping every app before it exits.

use super::actions;
use super::instance::Shared;
use super::metrics::Sampler;
use super::registry::Registry;
use super::server;
use super::sockets::SocketTable;
use crate::home::Home;
use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use rsup_proto::app::AppSpec;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::{Arc, Mutex};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

/// State shared by every request handler.
pub struct Daemon {
    pub home: Home,
    pub registry: Mutex<Registry>,
    pub sampler: Mutex<Sampler>,
    pub shared: Arc<Shared>,
    /// Apps with a reload under way; a second reload of one is refused.
    pub reloading: Mutex<std::collections::HashSet<String>>,
    /// Set by `rsup kill`: stop serving and exit.
    pub exit: Notify,
}

/// Runs the daemon until `rsup kill` or a termination signal. `apps` are
/// started at once (the foreground mode for containers).
pub fn run(home: Home, apps: Vec<AppSpec>) -> Result<()> {
    home.ensure()?;
    let _lock = lock_pid_file(&home)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(home.clone(), apps));
    let _ = fs::remove_file(home.socket());
    let _ = fs::remove_file(home.pid_file());
    result
}

/// Holds an exclusive lock on the pid file for the daemon's lifetime, so two
/// daemons can never share one `RSUP_HOME`.
fn lock_pid_file(home: &Home) -> Result<Flock<fs::File>> {
    let path = home.pid_file();
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "another rsup daemon already runs for {}",
            home.dir.display()
        )
    })?;
    lock.set_len(0)?;
    writeln!(lock, "{}", std::process::id())?;
    Ok(lock)
}

async fn serve(home: Home, apps: Vec<AppSpec>) -> Result<()> {
    let socket = home.socket();
    // The lock is ours, so any socket file left is a dead daemon's.
    let _ = fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("binding control socket {}", socket.display()))?;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))?;

    let daemon = Arc::new(Daemon {
        home,
        registry: Mutex::new(Registry::default()),
        sampler: Mutex::new(Sampler::default()),
        shared: Arc::new(Shared {
            sockets: Mutex::new(SocketTable::default()),
            preload: find_preload(),
        }),
        reloading: Mutex::new(Default::default()),
        exit: Notify::new(),
    });
    if !apps.is_empty() {
        let reply = actions::start(&daemon, apps).await;
        if let rsup_proto::control::Reply::Error { message } = reply {
            anyhow::bail!(message);
        }
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(server::handle_connection(daemon.clone(), stream));
                }
                Err(e) => eprintln!("rsup: accept on control socket: {e}"),
            },
            _ = daemon.exit.notified() => break,
            _ = term.recv() => { actions::stop_everything(&daemon).await; break }
            _ = int.recv() => { actions::stop_everything(&daemon).await; break }
            // Detached from any terminal: a hangup is no reason to stop.
            _ = hup.recv() => {}
        }
    }
    Ok(())
}

/// The daemon's own log, where its stdout and stderr go when it runs
/// detached.
pub fn open_daemon_log(home: &Home) -> Result<fs::File> {
    let path = home.daemon_log();
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// rsup's Node preload: `RSUP_PRELOAD`, else `preload.js` of the npm
/// package this binary belongs to (`<package>/native/rsup`), else the one
/// in this repository when running from a cargo build.
fn find_preload() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("RSUP_PRELOAD") {
        return Some(p.into()).filter(|p: &std::path::PathBuf| p.is_file());
    }
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let dir = exe.parent()?;
    [
        dir.join("../preload.js"),
        dir.join("../../npm/rsup/preload.js"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .and_then(|p| p.canonicalize().ok())
}
