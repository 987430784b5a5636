//! The old daemon's part of `rsup update` (the conversation is described in
//! [`super::handover`]): stop taking requests and restarting crashed
//! processes, write the state file, hand the seat and every app's sockets
//! to the successor, and then either stop every process gracefully and
//! exit, or, if the successor goes away before it says `stop_yours`, serve
//! on as before.

use super::app::{AppHandle, Op, Selection};
use super::handover::{Conversation, FromOld, FromSuccessor, Seat, PROTOCOL};
use super::lifecycle::Daemon;
use super::pid_file;
use super::recover::stop_processes;
use super::reload::listeners_of;
use super::state_file::{self, process_start};
use super::stop::Target;
use super::{actions, apps::Apps, systemd};
use nix::sys::signal::Signal;
use rsup_proto::app::AppSpec;
use rsup_proto::control::{Reply, Request, SpecUpdate};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Instant};

/// How long the requests running when a hand-over begins may take to
/// finish before it is refused.
const QUIET_LIMIT: Duration = Duration::from_secs(60);
/// How long a successor may take, beyond its apps' `listen_timeout`,
/// before the old daemon gives up on it and serves on.
const SUCCESSOR_LIMIT: Duration = Duration::from_secs(120);
/// How long a successor that has hung up may take, beyond stopping what it
/// started (the apps' `kill_timeout`), to exit before it is killed: two
/// daemons never serve one home.
const SUCCESSOR_EXIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// What the daemon needs to hand over, and the requests it is running.
pub struct Retirement {
    /// Why this daemon does not hand over, if it does not.
    refusal: Option<String>,
    /// It runs as a systemd service: it hands over only to the successor
    /// it started itself (see `service_successor`), whose pid this holds.
    service: bool,
    invited: Mutex<Option<u32>>,
    /// Control requests running, other than those that only read.
    busy: watch::Sender<usize>,
    seat: Mutex<Option<Seat>>,
}

impl Retirement {
    /// `foreground`: started with its apps (`--no-daemon`, or by systemd).
    pub fn new(foreground: bool) -> Retirement {
        let service = systemd::is_service();
        let refusal = if service {
            None
        } else if foreground {
            // Its exit would end the container or terminal that runs it.
            Some("this daemon runs in the foreground (--no-daemon) and does not hand over; restart it instead")
        } else {
            None
        };
        Retirement {
            refusal: refusal.map(String::from),
            service,
            invited: Mutex::new(None),
            busy: watch::Sender::new(0),
            seat: Mutex::new(None),
        }
    }

    pub fn is_service(&self) -> bool {
        self.service
    }

    /// `pid`, started by this daemon, may take its apps over.
    pub fn invite(&self, pid: u32) {
        *self.invited.lock().unwrap() = Some(pid);
    }

    /// Why this daemon is not to be replaced, if it is not.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    /// The descriptors of the pid file's lock and of the control socket's
    /// listener, while the seat is ours.
    pub fn seat_fds(&self) -> Option<(RawFd, RawFd)> {
        let seat = self.seat.lock().unwrap();
        let seat = seat.as_ref()?;
        Some((seat.lock.as_raw_fd(), seat.control.as_raw_fd()))
    }

    pub fn take_seat(&self) -> Option<Seat> {
        self.seat.lock().unwrap().take()
    }

    pub fn set_seat(&self, seat: Seat) {
        *self.seat.lock().unwrap() = Some(seat);
    }
}

/// A control request running; a hand-over begins once none is left.
pub struct Busy<'a>(&'a watch::Sender<usize>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Lets a control request run, counted while it does. While the daemon
/// hands over, only requests that read (ping, list) run; the others are
/// refused, since the apps they would change are being handed over.
pub fn admit<'a>(daemon: &'a Daemon, request: &Request) -> Result<Option<Busy<'a>>, String> {
    if matches!(
        request,
        Request::Ping | Request::List { .. } | Request::HandOver { .. }
    ) {
        return Ok(None);
    }
    hold(daemon).map(Some).ok_or_else(|| {
        "this daemon is handing its apps over to a new one (rsup update); try again once that is done".into()
    })
}

/// Counts work a hand-over must wait for (a request, a recovery);
/// `None` while the daemon hands over.
pub fn hold(daemon: &Daemon) -> Option<Busy<'_>> {
    let busy = &daemon.retirement.busy;
    let retiring = &daemon.apps.env.retiring;
    // Checked and counted under the counter's lock, so that a hand-over
    // that has seen nothing running cannot have something start after.
    let held = busy.send_if_modified(|n| {
        if *retiring.borrow() {
            return false;
        }
        *n += 1;
        true
    });
    held.then_some(Busy(busy))
}

/// Waits until no request and no reload is running (the daemon retiring,
/// no new one starts); false if `limit` passes first.
pub async fn quiet(daemon: &Daemon, limit: Duration) -> bool {
    let mut busy = daemon.retirement.busy.subscribe();
    let quiet = async {
        let _ = busy.wait_for(|n| *n == 0).await;
        // Reloads an app does on its own (cron, watch) are no requests.
        while daemon.apps.all().iter().any(AppHandle::is_reloading) {
            sleep(POLL).await;
        }
    };
    tokio::time::timeout(limit, quiet).await.is_ok()
}

/// Answers a successor's `hand_over` request on its connection.
pub async fn hand_over(daemon: Arc<Daemon>, mut conversation: Conversation, protocol: u32) {
    let (successor, seat) = match begin(&daemon, &conversation, protocol) {
        Ok(begun) => begun,
        Err(message) => {
            tracing::warn!("refused a hand-over: {message}");
            let _ = conversation.send(&Reply::Error { message }).await;
            return;
        }
    };
    tracing::info!(
        successor = successor.pid,
        "handing every app over to a new daemon"
    );
    let mut handing = Handing {
        daemon,
        successor,
        seat: Some(seat),
        launched: Vec::new(),
        stopped: Vec::new(),
    };
    match handing.converse(&mut conversation).await {
        Ok(()) => handing.leave(conversation).await,
        Err(why) => {
            // Closed first: the successor, hearing so, stops what it
            // started and exits.
            drop(conversation);
            handing.resume(&why).await
        }
    }
}

/// The successor process, told from a later one with its pid.
#[derive(Debug, Clone, Copy)]
struct Successor {
    pid: u32,
    started: Option<u64>,
}

impl Successor {
    fn alive(&self) -> bool {
        self.started.is_some() && process_start(self.pid) == self.started
    }
}

/// Refuses what cannot begin; otherwise enters the retiring mode and takes
/// the seat out of use.
fn begin(
    daemon: &Daemon,
    conversation: &Conversation,
    protocol: u32,
) -> Result<(Successor, Seat), String> {
    if protocol != PROTOCOL {
        return Err(format!(
            "this daemon (version {}) speaks hand-over protocol {PROTOCOL}, not {protocol}",
            env!("CARGO_PKG_VERSION")
        ));
    }
    if let Some(refusal) = &daemon.retirement.refusal {
        return Err(refusal.clone());
    }
    let (pid, uid) = conversation
        .peer()
        .ok_or("cannot tell which process asks for the hand-over")?;
    let retirement = &daemon.retirement;
    if retirement.service && *retirement.invited.lock().unwrap() != Some(pid) {
        // systemd follows its service by pid and cgroup: a daemon started
        // outside the service would run outside it.
        return Err("this daemon runs as a systemd service, which only a daemon it starts itself can replace; run rsup update, which asks it to".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if uid != me {
        // Its apps would run as that user from then on.
        return Err(format!(
            "the new daemon runs as uid {uid}, this one as uid {me}; run rsup update as uid {me}"
        ));
    }
    let successor = Successor {
        pid,
        started: process_start(pid),
    };
    let retiring = &daemon.apps.env.retiring;
    if !retiring.send_if_modified(|r| !std::mem::replace(r, true)) {
        return Err("a hand-over to another daemon is already in progress".into());
    }
    match daemon.retirement.take_seat() {
        Some(seat) => {
            daemon
                .apps
                .env
                .pid_files_shared
                .store(true, Ordering::SeqCst);
            Ok((successor, seat))
        }
        None => {
            retiring.send_replace(false);
            Err("this daemon is starting or stopping; try again in a moment".into())
        }
    }
}

/// A process the successor launched.
struct Launched {
    pid: u32,
    started: Option<u64>,
    spec: Option<Arc<AppSpec>>,
}

/// A hand-over under way.
struct Handing {
    daemon: Arc<Daemon>,
    successor: Successor,
    /// Ours until the successor says `stop_yours`.
    seat: Option<Seat>,
    launched: Vec<Launched>,
    /// Apps stopped at the successor's request, to start again should it
    /// fail.
    stopped: Vec<AppHandle>,
}

impl Drop for Handing {
    /// Should the daemon end half-way (a SIGTERM), the lock must not be
    /// unlocked under the successor, which holds the same open file: the
    /// kernel releases it once neither holds it.
    fn drop(&mut self) {
        if let Some(seat) = self.seat.take() {
            seat.leave();
        }
    }
}

impl Handing {
    fn apps(&self) -> &Arc<Apps> {
        &self.daemon.apps
    }

    /// Everything up to `stop_yours`; an error says why the hand-over did
    /// not complete.
    async fn converse(&mut self, conversation: &mut Conversation) -> Result<(), String> {
        if let Err(message) = self.prepare().await {
            let _ = conversation
                .send(&Reply::Error {
                    message: message.clone(),
                })
                .await;
            return Err(message);
        }
        let own_port = self.own_port_apps().await;
        if !own_port.is_empty() {
            tracing::info!(
                "{} bind their own ports: their processes stop before new ones start",
                own_port.join(", ")
            );
        }
        self.send_seat_and_sockets(conversation, own_port)
            .await
            .map_err(|e| format!("sending to the new daemon: {e}"))?;

        let deadline = Instant::now() + self.patience();
        loop {
            let message = tokio::select! {
                m = conversation.recv::<FromSuccessor>() => m,
                _ = sleep_until(deadline) => {
                    return Err("the new daemon did not finish in time".into());
                }
            };
            conversation.drop_fds();
            match message {
                Ok(Some(FromSuccessor::Launched { app, pid })) => self.note_launch(&app, pid),
                Ok(Some(FromSuccessor::StopApp { app })) => {
                    self.stop_app(&app).await;
                    conversation
                        .send(&FromOld::AppStopped { app })
                        .await
                        .map_err(|e| format!("answering the new daemon: {e}"))?;
                }
                Ok(Some(FromSuccessor::StopYours)) => {
                    // Past this point the successor serves, whether or not
                    // it hears the answer.
                    let _ = conversation.send(&FromOld::Stopping).await;
                    return Ok(());
                }
                Ok(None) => return Err("the new daemon closed the connection".into()),
                Err(e) => return Err(format!("the new daemon sent something unreadable: {e}")),
            }
        }
    }

    /// Waits until no request and no reload is running (refused requests
    /// are answered meanwhile by [`admit`]), then writes the state file.
    async fn prepare(&self) -> Result<(), String> {
        let mut busy = self.daemon.retirement.busy.subscribe();
        let quiet = async {
            let _ = busy.wait_for(|n| *n == 0).await;
            // Reloads an app does on its own (cron, watch) are no requests.
            while self.apps().all().iter().any(AppHandle::is_reloading) {
                sleep(POLL).await;
            }
        };
        if tokio::time::timeout(QUIET_LIMIT, quiet).await.is_err() {
            return Err(format!(
                "requests still running after {} s; try again once they are done",
                QUIET_LIMIT.as_secs()
            ));
        }
        for app in self.apps().all() {
            app.context.sockets.lock().unwrap().leave_paths(true);
        }
        self.write_state().await
    }

    /// Apps whose processes bind ports themselves rather than taking the
    /// daemon's: their new processes cannot start beside the old ones.
    async fn own_port_apps(&self) -> Vec<String> {
        let mut found = Vec::new();
        for app in self.apps().all() {
            for h in app.instances() {
                let Some(pid) = h.state().pid else { continue };
                if !listeners_of(&app.context, &h, pid).await.is_empty() {
                    found.push(app.name.to_string());
                    break;
                }
            }
        }
        found
    }

    async fn write_state(&self) -> Result<(), String> {
        let path = state_file::path(&self.apps().env.home.dir);
        let state = state_file::snapshot(self.apps());
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || state_file::write(&path, &state))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| format!("writing {shown}: {e}"))
    }

    async fn send_seat_and_sockets(
        &self,
        conversation: &mut Conversation,
        own_port: Vec<String>,
    ) -> std::io::Result<()> {
        let seat = self.seat.as_ref().expect("the seat is ours until the end");
        conversation
            .send_with_fd(&FromOld::Lock, seat.lock.as_fd())
            .await?;
        conversation
            .send_with_fd(&FromOld::ControlSocket, seat.control.as_fd())
            .await?;
        for app in self.apps().all() {
            let sockets = app.context.sockets.lock().unwrap().duplicates();
            for (socket, fd) in sockets {
                let message = FromOld::Socket {
                    app: app.name.to_string(),
                    socket,
                };
                conversation.send_with_fd(&message, fd.as_fd()).await?;
            }
        }
        conversation.send(&FromOld::Ready { own_port }).await
    }

    /// Beyond a fixed allowance, the longest any app may take to be ready.
    fn patience(&self) -> Duration {
        SUCCESSOR_LIMIT + self.longest(|spec| spec.listen_timeout_ms)
    }

    fn longest(&self, of: impl Fn(&AppSpec) -> u64) -> Duration {
        let longest = self
            .apps()
            .instances()
            .iter()
            .map(|h| of(&h.state().spec))
            .max();
        Duration::from_millis(longest.unwrap_or(0))
    }

    /// Remembers a process of the successor's, should it have to be
    /// stopped; only a child of the successor counts.
    fn note_launch(&mut self, app: &str, pid: u32) {
        if parent_of(pid) != Some(self.successor.pid) {
            tracing::warn!(pid, "the new daemon named a process that is not its own");
            return;
        }
        let spec = self
            .apps()
            .resolve_instances(&rsup_proto::control::Target::Name(app.to_string()))
            .ok()
            .and_then(|h| h.first().map(|h| h.state().spec));
        self.launched.push(Launched {
            pid,
            started: process_start(pid),
            spec,
        });
    }

    async fn stop_app(&mut self, name: &str) {
        let Some(app) = self.apps().all().into_iter().find(|a| &*a.name == name) else {
            return;
        };
        tracing::info!(app = name, "stopping it first: it binds its own ports");
        let _ = app.run(Op::Stop(Selection::All)).await;
        self.stopped.push(app);
    }

    /// The successor serves: stop every process gracefully (each drains
    /// and its logs are written to the end), then exit. The seat, the
    /// state file and the control socket stay the successor's.
    async fn leave(mut self, conversation: Conversation) {
        tracing::info!(
            successor = self.successor.pid,
            "the new daemon serves; stopping this daemon's processes"
        );
        if self.daemon.retirement.service {
            // The service goes on in it when this one exits.
            systemd::main_pid(self.successor.pid);
        }
        if let Some(seat) = self.seat.take() {
            seat.leave();
        }
        actions::stop_everything(&self.daemon).await;
        // The successor hears that we are done when this closes.
        drop(conversation);
        self.daemon.exit.notify_one();
    }

    /// The hand-over did not complete: once the successor is gone, serve
    /// as before, and stop what it left.
    async fn resume(mut self, why: &str) {
        tracing::warn!(
            successor = self.successor.pid,
            "the hand-over did not complete ({why}); this daemon serves on"
        );
        self.outlive_successor().await;
        if let Some(seat) = self.seat.take() {
            self.daemon.retirement.set_seat(seat);
        }
        for app in self.apps().all() {
            app.context.sockets.lock().unwrap().leave_paths(false);
        }
        // The successor's processes wrote theirs over ours.
        self.apps()
            .env
            .pid_files_shared
            .store(false, Ordering::SeqCst);
        for h in self.apps().instances() {
            if let Some(pid) = h.state().pid {
                pid_file::write(&h.identity.pid_file, pid);
            }
        }
        // Requests, crash restarts and state writes, all at once.
        self.apps().env.retiring.send_replace(false);
        self.apps().env.changed.notify_one();
        for app in std::mem::take(&mut self.stopped) {
            let _ = app
                .run(Op::Restart {
                    selection: Selection::All,
                    update: SpecUpdate::default(),
                })
                .await;
        }
        self.stop_launched().await;
    }

    /// Waits until the successor has exited, killing it if it does not.
    async fn outlive_successor(&self) {
        let successor = self.successor;
        let deadline = Instant::now() + SUCCESSOR_EXIT + self.longest(|spec| spec.kill_timeout_ms);
        while successor.alive() && Instant::now() < deadline {
            sleep(POLL).await;
        }
        if successor.alive() {
            tracing::warn!(pid = successor.pid, "killing the new daemon");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(successor.pid as i32),
                Signal::SIGKILL,
            );
            while successor.alive() {
                sleep(POLL).await;
            }
        }
    }

    /// Stops the processes the successor launched that still run: its
    /// death left them without a supervisor.
    async fn stop_launched(&mut self) {
        let mut set = tokio::task::JoinSet::new();
        for l in std::mem::take(&mut self.launched) {
            if l.started.is_none() || process_start(l.pid) != l.started {
                continue;
            }
            tracing::warn!(pid = l.pid, "stopping a process the new daemon left");
            match l.spec {
                Some(spec) => {
                    set.spawn(async move { stop_processes(&spec, &[l.pid]).await });
                }
                // Of no app this daemon knows: no kill signal to give it.
                None => Target::new(l.pid, true).signal(Signal::SIGKILL),
            }
        }
        while set.join_next().await.is_some() {}
    }
}

/// The parent of `pid`, from `/proc`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .ok()?
        .stat()
        .ok()?;
    u32::try_from(stat.ppid).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::apps::AppEnv;
    use crate::daemon::preload::Preload;
    use crate::home::Home;
    use rsup_proto::control::Target;

    fn daemon(home: &tempfile::TempDir) -> Daemon {
        Daemon {
            apps: Apps::new(AppEnv::new(
                Home {
                    dir: home.path().to_path_buf(),
                },
                Preload {
                    path: None,
                    problem: None,
                },
            )),
            usage: Default::default(),
            exit: Default::default(),
            retirement: Retirement::new(false),
            readiness: Default::default(),
            node_versions: Default::default(),
        }
    }

    #[test]
    fn while_handing_over_only_reads_run_and_running_work_is_counted() {
        let home = tempfile::tempdir().unwrap();
        let daemon = daemon(&home);
        let stop = Request::Stop {
            target: Target::All,
        };
        let running = admit(&daemon, &stop).unwrap().unwrap();
        let recovering = hold(&daemon).unwrap();
        assert_eq!(*daemon.retirement.busy.borrow(), 2);

        daemon.apps.env.retiring.send_replace(true);
        let refused = admit(&daemon, &stop).err().unwrap();
        assert!(refused.contains("rsup update"), "{refused}");
        assert!(hold(&daemon).is_none());
        assert!(admit(&daemon, &Request::Ping).unwrap().is_none());
        assert!(admit(
            &daemon,
            &Request::List {
                target: None,
                pm2: false
            }
        )
        .unwrap()
        .is_none());
        // What was running finishes and is counted out.
        drop(running);
        drop(recovering);
        assert_eq!(*daemon.retirement.busy.borrow(), 0);

        daemon.apps.env.retiring.send_replace(false);
        assert!(admit(&daemon, &stop).unwrap().is_some());
    }
}
