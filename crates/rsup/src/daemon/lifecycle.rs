//! The daemon's own start and end: single-instance lock, pid files, control
//! socket, signals, and stopping every app before it exits.

use super::actions;
use super::apps::{AppEnv, Apps};
use super::descriptors::{
    close_inherited_descriptors, close_inherited_descriptors_except, out_of_descriptors,
    raise_descriptor_limit, RepeatedWarning, ReserveDescriptor, ACCEPT_REST,
};
use super::health::{self, HealthOptions, Readiness};
use super::keeper_link::KeeperLink;
use super::node_versions::NodeVersions;
use super::preload::Preload;
use super::retire::{self, Retirement, Seat};
use super::server;
use super::usage::{self, Usages};
use super::{adopt, log_reopen, memory_limit, recover, reexec, state_file, systemd};
use crate::home::Home;
use crate::keeper::handed::{self, Handed};
use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use rsup_proto::app::AppSpec;
use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

/// State shared by every request handler.
pub struct Daemon {
    pub apps: Arc<Apps>,
    /// CPU and memory of every process, as lists show them.
    pub usage: Arc<Usages>,
    /// Set by `rsup kill`: stop serving and exit.
    pub exit: Notify,
    /// Its seat, and the requests an update waits for.
    pub retirement: Retirement,
    /// What `/readyz` answers (see [`health`]).
    pub readiness: Readiness,
    /// For the lists' `node_version`.
    pub node_versions: NodeVersions,
    /// What `jlist` keeps written from one list to the next.
    pub list_memory: super::actions::pm2_list::ListMemory,
    /// The health endpoints' listener (`--health-port`), which an update
    /// or the keeper hands to the next daemon.
    pub health_listener: std::sync::OnceLock<std::os::fd::OwnedFd>,
}

#[cfg(test)]
impl Daemon {
    /// A daemon in `home` that serves no socket, for tests of what it does.
    pub fn for_tests(home: &std::path::Path) -> Arc<Daemon> {
        Arc::new(Daemon {
            apps: Apps::new(AppEnv::new(
                Home {
                    dir: home.to_path_buf(),
                },
                Preload {
                    path: None,
                    problem: None,
                },
            )),
            usage: Default::default(),
            exit: Notify::new(),
            retirement: Retirement::new(false),
            readiness: Readiness::default(),
            node_versions: Default::default(),
            list_memory: Default::default(),
            health_listener: Default::default(),
        })
    }
}

/// Runs the daemon until `rsup kill` or a termination signal. `apps` are
/// started at once (the foreground mode for containers); with `health`,
/// it serves the health endpoints and drains before a stop.
pub fn run(home: Home, apps: Vec<AppSpec>, health: Option<HealthOptions>) -> Result<()> {
    run_as(home, apps, health, Origin::Fresh)
}

/// Runs the next image of a daemon that re-executed itself (`rsup
/// update`), from the state file it wrote.
pub fn run_reexecuted(home: Home, state: &std::path::Path) -> Result<()> {
    let exec = reexec::read(state).map_err(anyhow::Error::msg)?;
    let health = HealthOptions::from_env().map_err(anyhow::Error::msg)?;
    run_as(home, vec![], health, Origin::ReExec(Box::new(exec)))
}

/// Runs a daemon its keeper started (see [`crate::keeper`]), linked to it
/// by `link`; with `adopt`, the daemon that ended before it left
/// processes, which the keeper hands over in that file.
pub fn run_kept(
    home: Home,
    link: RawFd,
    adopt: Option<&std::path::Path>,
    apps: Vec<AppSpec>,
) -> Result<()> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if link <= 2 || unsafe { libc::fcntl(link, libc::F_GETFD) } < 0 {
        anyhow::bail!("--keeper-fd {link}: not a descriptor this daemon inherited");
    }
    let handed = adopt
        .map(|file| handed::read(file).map_err(anyhow::Error::msg))
        .transpose()?;
    let health = HealthOptions::from_env().map_err(anyhow::Error::msg)?;
    run_as(home, apps, health, Origin::Kept(link, handed.map(Box::new)))
}

/// How this daemon came to be.
enum Origin {
    Fresh,
    /// Started by its keeper, over the link given; after a daemon that
    /// ended, with what it left.
    Kept(RawFd, Option<Box<Handed>>),
    /// The running daemon re-executed itself.
    ReExec(Box<reexec::ExecState>),
}

fn run_as(
    home: Home,
    apps: Vec<AppSpec>,
    health: Option<HealthOptions>,
    origin: Origin,
) -> Result<()> {
    // First, while nothing else in this process holds a descriptor: what
    // the shell that first ran the CLI left open (a lock, a pipe) would
    // otherwise stay held for the daemon's whole life, and reach every app.
    // The previous image's descriptors the state file names are kept.
    let keeper_fd = match &origin {
        Origin::ReExec(exec) => {
            close_inherited_descriptors_except(&exec.fds());
            exec.keeper
        }
        Origin::Kept(link, handed) => {
            let mut kept = vec![*link];
            kept.extend(handed.iter().flat_map(|h| h.fds()));
            close_inherited_descriptors_except(&kept);
            Some(*link)
        }
        Origin::Fresh => {
            close_inherited_descriptors();
            None
        }
    };
    let limit = raise_descriptor_limit();
    home.ensure()?;
    init_tracing();
    super::log_rotate::load_global(&home);
    if let Some((from, to)) = limit {
        tracing::info!(
            "descriptor limit raised from {from} to {to} for the daemon; apps keep {from}"
        );
    }
    // The next image of a re-executed daemon has its seat (and pid files)
    // already.
    let start = match origin {
        Origin::Fresh | Origin::Kept(_, None) => Start::Seat(lock_pid_file(&home)?),
        Origin::Kept(_, Some(handed)) => Start::Adopt(handed),
        Origin::ReExec(exec) => Start::ReExec(exec),
    };
    if matches!(start, Start::Seat(_)) {
        write_pm2_pid(&home)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _in_runtime = runtime.enter();
    let mut env = AppEnv::new(home.clone(), Preload::find());
    if let Some(fd) = keeper_fd {
        // SAFETY: inherited for this daemon alone, named once.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        env.keeper = Some(KeeperLink::connect(fd).context("taking the keeper's link")?);
    }
    let daemon = Arc::new(Daemon {
        apps: Apps::new(env),
        usage: Default::default(),
        exit: Notify::new(),
        // Apps given here: --no-daemon, or the systemd unit's --resurrect.
        retirement: Retirement::new(!apps.is_empty()),
        readiness: Readiness::default(),
        node_versions: Default::default(),
        list_memory: Default::default(),
        health_listener: Default::default(),
    });
    let result = runtime.block_on(serve(daemon.clone(), apps, start, health));
    // Only while the seat is ours: a daemon that handed it over, or never
    // got it, leaves the files to the one that has it.
    if let Some(seat) = daemon.retirement.take_seat() {
        let _ = fs::remove_file(home.socket());
        // Every app was stopped: nothing for a later daemon to recover.
        let _ = fs::remove_file(state_file::path(&home.dir));
        let _ = fs::remove_file(home.pm2_pid_file());
        let _ = fs::remove_file(home.pid_file());
        drop(seat);
    }
    result
}

/// Writes our pid to `pm2.pid`, where PM2 keeps its daemon's.
pub fn write_pm2_pid(home: &Home) -> Result<()> {
    crate::private_file::write_atomic(
        &home.pm2_pid_file(),
        std::process::id().to_string().as_bytes(),
    )
    .with_context(|| format!("writing {}", home.pm2_pid_file().display()))
}

/// Binds `rsup.sock`, private to the daemon's user.
fn bind_control_socket(home: &Home) -> Result<UnixListener> {
    let socket = home.socket();
    // The lock is ours, so any socket file left is a dead daemon's.
    let _ = fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("binding control socket {}", socket.display()))?;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))?;
    Ok(listener)
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

/// How the daemon gets its seat in `RSUP_HOME`.
enum Start {
    /// It holds the lock, and binds the control socket.
    Seat(Flock<fs::File>),
    /// Its previous image left them, with every app.
    ReExec(Box<reexec::ExecState>),
    /// The keeper kept them, and every process, when the daemon before
    /// it ended.
    Adopt(Box<Handed>),
}

/// Takes its seat as `start` says, then serves.
async fn serve(
    daemon: Arc<Daemon>,
    apps: Vec<AppSpec>,
    mut start: Start,
    health: Option<HealthOptions>,
) -> Result<()> {
    // Signals first: a SIGTERM that comes while the first apps start must
    // stop them, not kill the daemon and leave them running.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    super::own_log_rotate::spawn(&daemon.apps.env.home);

    // Before the keeper's copies (which come and go) take numbers: the
    // reserve is one of the daemon's lowest, as every descriptor is when
    // they run out.
    let mut reserve = ReserveDescriptor::open();
    let fresh = matches!(start, Start::Seat(_));
    let keeper = daemon.apps.env.keeper.clone();
    let mut health_fd = match &mut start {
        Start::ReExec(exec) => exec.health.take().map(|fd| {
            // SAFETY: named once in the exec state, kept open for us.
            unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
        }),
        Start::Adopt(handed) => adopt::take_health(handed),
        Start::Seat(_) => None,
    };
    let listener = match start {
        Start::Seat(lock) => {
            let listener = bind_control_socket(&daemon.apps.env.home)?;
            let control = listener.as_fd().try_clone_to_owned()?;
            if let Some(keeper) = &keeper {
                let seat = [lock.as_fd(), control.as_fd()];
                keeper.keep(adopt::SEAT.into(), None, serde_json::json!({}), &seat);
            }
            daemon.retirement.set_seat(Seat { lock, control });
            listener
        }
        Start::ReExec(exec) => reexec::resume(&daemon, *exec)
            .await
            .map_err(|e| anyhow::anyhow!("update failed: {e}"))?,
        Start::Adopt(handed) => adopt::resume(&daemon, *handed)
            .await
            .map_err(|e| anyhow::anyhow!("taking over from the daemon that ended: {e}"))?,
    };
    if let Some(keeper) = &keeper {
        keeper.hello();
    }
    // Once the seat is ours, so that a port in use ends the daemon the way
    // any failure does: every file it wrote removed.
    if let Some(options) = health {
        // The previous daemon's, if it had one: no moment without it.
        let listener = match health_fd.take().map(health::listener) {
            Some(Ok(listener)) => listener,
            _ => health::bind(options.addr).await?,
        };
        let fd = listener.as_fd().try_clone_to_owned()?;
        if let Some(keeper) = &keeper {
            keeper.keep(
                adopt::HEALTH.into(),
                None,
                serde_json::json!({}),
                &[fd.as_fd()],
            );
        }
        let _ = daemon.health_listener.set(fd);
        tokio::spawn(health::serve(listener, daemon.clone()));
    }
    let drain_delay = health.map_or(std::time::Duration::ZERO, |h| h.drain_delay);
    tracing::info!(pid = std::process::id(), "daemon started");

    // What a killed daemon left: read before anything overwrites it. A
    // re-executed daemon has just taken it over instead.
    let state_path = state_file::path(&daemon.apps.env.home.dir);
    let previous = match state_file::read(&state_path) {
        Ok(previous) if fresh => previous.filter(recover::worth_recovering),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("{e}; not recovering from it");
            None
        }
    };
    tokio::spawn(state_file::keep_written(daemon.apps.clone(), state_path));
    tokio::spawn(systemd::keep_watchdog(daemon.apps.env.keeper.is_some()));
    tokio::spawn(usage::keep_measured(
        daemon.apps.clone(),
        daemon.usage.clone(),
    ));
    tokio::spawn(memory_limit::watch(
        daemon.apps.clone(),
        memory_limit::interval_from_env(),
    ));
    if let Some(previous) = previous {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            // A request of its own: an update waits for it.
            let _busy = retire::hold(&daemon);
            recover::recover(&daemon, previous).await
        });
    }

    // The apps given on the command line (foreground mode) start while
    // the loop below already answers signals and clients.
    let (first_tx, mut first_apps) = tokio::sync::oneshot::channel();
    let first_count = apps.len();
    let mut starting = first_count > 0;
    if !starting {
        systemd::ready(0);
        daemon.readiness.started();
    }
    if starting {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let _ = first_tx.send(actions::start(&daemon, apps, false).await);
        });
    }

    let mut accept_errors = RepeatedWarning::new("accept on control socket");
    // A failed accept leaves the client waiting and the socket readable:
    // retrying at once would spin, so the loop rests a moment first.
    let rest = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(rest);
    let mut resting = false;
    // Not while the daemon prepares to re-execute itself: clients wait in
    // the queue for the next image.
    let mut retiring = daemon.apps.env.retiring.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept(), if !resting && !*retiring.borrow() => match accepted {
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
                systemd::ready(first_count);
                daemon.readiness.started();
            }
            _ = retiring.changed() => {}
            _ = daemon.exit.notified() => break,
            _ = term.recv() => {
                drain(&daemon, "SIGTERM", drain_delay, &mut term, &mut int).await;
                stop_on_signal(&daemon, "SIGTERM").await;
                break
            }
            _ = int.recv() => {
                drain(&daemon, "SIGINT", drain_delay, &mut term, &mut int).await;
                stop_on_signal(&daemon, "SIGINT").await;
                break
            }
            // Detached from any terminal: a hangup is no reason to stop.
            _ = hup.recv() => {}
            // PM2's daemon reopens every log file on SIGUSR2 (what a
            // logrotate postrotate script may send).
            _ = usr2.recv() => {
                tokio::spawn(async {
                    let writers = log_reopen::reopen_all().await;
                    tracing::info!("SIGUSR2: {writers} log writers opened their files again");
                });
            }
        }
    }
    tracing::info!("daemon exiting");
    // The keeper lets go of the seat and the health port now, before they
    // are given up: a daemon started right after this one must find them
    // free, not held by a keeper that has yet to see this one end.
    if let Some(keeper) = &keeper {
        keeper.forget(adopt::SEAT.into());
        keeper.forget(adopt::HEALTH.into());
        keeper.flush().await;
    }
    Ok(())
}

/// Before a stop on a signal: `/readyz` answers 503 at once, and the apps
/// keep serving for `delay`, while the load balancer learns of it and
/// stops sending requests. A second signal cuts it short.
async fn drain(
    daemon: &Daemon,
    signal: &str,
    delay: std::time::Duration,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) {
    daemon.readiness.stop_begins();
    if delay.is_zero() {
        return;
    }
    tracing::info!(
        "{signal}: not ready from now on; the apps keep serving for {} ms (drain delay), then stop",
        delay.as_millis()
    );
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = term.recv() => tracing::info!("SIGTERM again: drain cut short"),
        _ = int.recv() => tracing::info!("SIGINT again: drain cut short"),
    }
}

async fn stop_on_signal(daemon: &Daemon, signal: &str) {
    tracing::info!("{signal}: stopping every app");
    actions::stop_everything(daemon).await;
}

/// The daemon's log lines (to its stderr, which is `rsup.log` when it runs
/// detached): a timestamp, a level, the message and its fields.
pub fn init_tracing() {
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
