//! The daemon's own start and end: single-instance lock, pid file, control
//! socket, signals, and stopping every app before it exits.

use super::actions;
use super::apps::{AppEnv, Apps};
use super::metrics::Sampler;
use super::preload::Preload;
use super::server;
use super::spawn;
use super::{recover, state_file};
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
    pub apps: Arc<Apps>,
    pub sampler: Mutex<Sampler>,
    /// Set by `rsup kill`: stop serving and exit.
    pub exit: Notify,
}

/// Runs the daemon until `rsup kill` or a termination signal. `apps` are
/// started at once (the foreground mode for containers).
pub fn run(home: Home, apps: Vec<AppSpec>) -> Result<()> {
    // First, while nothing else in this process holds a descriptor: what
    // the shell that first ran the CLI left open (a lock, a pipe) would
    // otherwise stay held for the daemon's whole life, and reach every app.
    close_inherited_descriptors();
    let limit = raise_descriptor_limit();
    home.ensure()?;
    init_tracing();
    if let Some((from, to)) = limit {
        tracing::info!(
            "descriptor limit raised from {from} to {to} for the daemon; apps keep {from}"
        );
    }
    let _lock = lock_pid_file(&home)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(serve(home.clone(), apps));
    let _ = fs::remove_file(home.socket());
    // Every app was stopped: nothing for a later daemon to recover.
    let _ = fs::remove_file(state_file::path(&home.dir));
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
    // Signals first: a SIGTERM that comes while the first apps start must
    // stop them, not kill the daemon and leave them running.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let socket = home.socket();
    // The lock is ours, so any socket file left is a dead daemon's.
    let _ = fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("binding control socket {}", socket.display()))?;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))?;

    let daemon = Arc::new(Daemon {
        apps: Apps::new(AppEnv::new(home, Preload::find())),
        sampler: Mutex::new(Sampler::default()),
        exit: Notify::new(),
    });
    tracing::info!(pid = std::process::id(), "daemon started");

    // What a killed daemon left: read before anything overwrites it.
    let state_path = state_file::path(&daemon.apps.env.home.dir);
    let previous = match state_file::read(&state_path) {
        Ok(previous) => previous.filter(recover::worth_recovering),
        Err(e) => {
            tracing::warn!("{e}; not recovering from it");
            None
        }
    };
    tokio::spawn(state_file::keep_written(daemon.apps.clone(), state_path));
    if let Some(previous) = previous {
        let daemon = daemon.clone();
        tokio::spawn(async move { recover::recover(&daemon, previous).await });
    }

    // The apps given on the command line (foreground mode) start while
    // the loop below already answers signals and clients.
    let (first_tx, mut first_apps) = tokio::sync::oneshot::channel();
    let mut starting = !apps.is_empty();
    if starting {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let _ = first_tx.send(actions::start(&daemon, apps).await);
        });
    }

    let mut reserve = ReserveDescriptor::open();
    let mut accept_errors = RepeatedWarning::new("accept on control socket");
    // A failed accept leaves the client waiting and the socket readable:
    // retrying at once would spin, so the loop rests a moment first.
    let rest = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(rest);
    let mut resting = false;
    loop {
        tokio::select! {
            accepted = listener.accept(), if !resting => match accepted {
                Ok((stream, _)) => {
                    if reserve.is_held() {
                        accept_errors.ended();
                    }
                    reserve.refill();
                    tokio::spawn(server::handle_connection(daemon.clone(), stream));
                }
                Err(e) => {
                    accept_errors.warn(e.to_string());
                    // Out of descriptors: give up the reserve one and accept
                    // again at once, so this client is answered (a ping, or
                    // an error for a request that needs descriptors).
                    if !(out_of_descriptors(&e) && reserve.release()) {
                        rest.as_mut().reset(tokio::time::Instant::now() + ACCEPT_REST);
                        resting = true;
                    }
                }
            },
            () = &mut rest, if resting => {
                resting = false;
                reserve.refill();
            }
            started = &mut first_apps, if starting => {
                starting = false;
                if let Ok(rsup_proto::control::Reply::Error { message }) = started {
                    anyhow::bail!(message);
                }
            }
            _ = daemon.exit.notified() => break,
            _ = term.recv() => { stop_on_signal(&daemon, "SIGTERM").await; break }
            _ = int.recv() => { stop_on_signal(&daemon, "SIGINT").await; break }
            // Detached from any terminal: a hangup is no reason to stop.
            _ = hup.recv() => {}
        }
    }
    tracing::info!("daemon exiting");
    Ok(())
}

/// How long the accept loop rests after a failed accept.
const ACCEPT_REST: std::time::Duration = std::time::Duration::from_millis(100);

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One descriptor held back for the moment the daemon runs out: released,
/// it lets one more client connect, so `rsup ping` is still answered when
/// the apps' pipes and sockets use every other descriptor. It comes back
/// once a descriptor is free again.
struct ReserveDescriptor(Option<fs::File>);

impl ReserveDescriptor {
    fn open() -> Self {
        let mut reserve = ReserveDescriptor(None);
        reserve.refill();
        reserve
    }

    fn is_held(&self) -> bool {
        self.0.is_some()
    }

    fn refill(&mut self) {
        if self.0.is_none() {
            self.0 = fs::File::open("/dev/null").ok();
        }
    }

    /// Whether there was one to release.
    fn release(&mut self) -> bool {
        self.0.take().is_some()
    }
}

/// A warning that can repeat many times a second (an accept failing for as
/// long as descriptors run out): logged once, then counted, with a count
/// once a minute, so the daemon's log stays small.
struct RepeatedWarning {
    what: &'static str,
    last: Option<String>,
    suppressed: u64,
    logged_at: std::time::Instant,
}

impl RepeatedWarning {
    const SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

    fn new(what: &'static str) -> Self {
        RepeatedWarning {
            what,
            last: None,
            suppressed: 0,
            logged_at: std::time::Instant::now(),
        }
    }

    fn warn(&mut self, message: String) {
        if self.last.as_ref() == Some(&message) && self.logged_at.elapsed() < Self::SUMMARY_EVERY {
            self.suppressed += 1;
            return;
        }
        self.flush();
        tracing::warn!("{}: {message}", self.what);
        self.last = Some(message);
        self.logged_at = std::time::Instant::now();
    }

    /// The failures stopped: says how many went unlogged, if any.
    fn ended(&mut self) {
        self.flush();
        if self.last.take().is_some() {
            tracing::info!("{}: working again", self.what);
        }
    }

    fn flush(&mut self) {
        if self.suppressed > 0 {
            tracing::warn!(
                "{}: {}: same message again: suppressed {} times",
                self.what,
                self.last.as_deref().unwrap_or_default(),
                self.suppressed
            );
            self.suppressed = 0;
        }
    }
}

/// Closes every descriptor above stderr. Only called before anything in
/// this process opens one of its own.
fn close_inherited_descriptors() {
    // SAFETY: no descriptor above 2 belongs to anything in this process yet.
    let closed = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
    if closed == 0 {
        return;
    }
    // Kernels before 5.9: the open ones, from /proc. The listing's own
    // descriptor is in it; it is closed (and then skipped) before the rest.
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; EBADF for the listing's own is harmless.
        unsafe { libc::close(fd) };
    }
}

/// Raises the soft descriptor limit to the hard one: each instance costs
/// the daemon about six descriptors (its channels, output pipes, log files
/// and pidfd), so the common soft limit of 1,024 ran out near 170
/// instances. Apps start with the limit the daemon was started with, as
/// under PM2 (see `spawn`). Returns the old and new soft limits.
fn raise_descriptor_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    spawn::set_child_descriptor_limit(limit);
    // An unlimited hard limit cannot be a soft one beyond fs.nr_open.
    let nr_open = fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let target = limit.rlim_max.min(nr_open);
    if target <= limit.rlim_cur {
        return None;
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads `raised`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return None;
    }
    Some((limit.rlim_cur, target))
}

async fn stop_on_signal(daemon: &Daemon, signal: &str) {
    tracing::info!("{signal}: stopping every app");
    actions::stop_everything(daemon).await;
}

/// The daemon's log lines (to its stderr, which is `rsup.log` when it runs
/// detached): a timestamp, a level, the message and its fields.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
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
