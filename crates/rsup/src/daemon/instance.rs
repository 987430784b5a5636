//! One instance of an app (one `pm_id`) and the task that keeps it running:
//! launch, wait for ready, watch for exit, restart per policy, replace in
//! place on reload, stop on request. The task owns the process; everything
//! else talks to it through an [`InstanceHandle`].

use super::events::Events;
use super::held_process::HeldProcess;
use super::launcher::Launcher;
use super::log_writer::{self, LogHealth};
use super::pid_file;
use super::process::Proc;
use super::restart_policy::{self, CrashHistory, Decision};
use super::sockets::AppSockets;
use super::spawn::LaunchRequest;
use super::stop::stop_process;
use nix::sys::signal::Signal;
use rsup_proto::app::{AppSpec, ExitInfo, Status};
use rsup_proto::worker::{ShutdownReason, SupervisorMessage};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// Everything reported about an instance, published on every change.
#[derive(Debug, Clone)]
pub struct InstanceState {
    pub status: Status,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub unstable_restarts: u32,
    pub started_at_ms: Option<u64>,
    pub last_exit: Option<ExitInfo>,
    pub spec: Arc<AppSpec>,
    /// How writing its out, error and combined logs goes; held here so the
    /// health (and what it counts) lasts as long as the instance, across
    /// its processes.
    pub log_health: Vec<Arc<LogHealth>>,
}

/// How a reload of one instance went.
pub type ReloadResult = Result<(), String>;

enum Command {
    Stop(oneshot::Sender<()>),
    /// Stop (if running) and start again, with new options if given.
    Restart(Option<Arc<AppSpec>>, oneshot::Sender<()>),
    /// Start a new process beside the running one and stop the old one once
    /// the new one is ready. `strict`: not ready within listen_timeout is a
    /// failure rather than PM2's "ready anyway".
    Reload {
        spec: Option<Arc<AppSpec>>,
        strict: bool,
        done: oneshot::Sender<ReloadResult>,
    },
    /// Stop (if running) and end the task. The reason says whether the
    /// app serves on without it (scaling down) or goes away.
    Remove(ShutdownReason, oneshot::Sender<()>),
    /// Restart counters back to zero; the process keeps running.
    Reset(oneshot::Sender<()>),
    /// Send a signal to the running process, if there is one.
    Signal(Signal, oneshot::Sender<SignalResult>),
    /// The daemon is about to re-execute itself (`rsup update`), its
    /// readers paused: describe the running process, if any, for the next
    /// image and wait for the exec (or, should it fail, go on).
    Freeze(oneshot::Sender<Option<HeldProcess>>),
}

/// What a worker stopped for `command` is told: a restart brings the app
/// back, anything else (stop, delete, the daemon's shutdown) does not.
fn shutdown_reason(command: &Option<Command>) -> ShutdownReason {
    match command {
        Some(Command::Restart(..)) => ShutdownReason::Reload,
        Some(Command::Remove(reason, _)) => *reason,
        _ => ShutdownReason::Stop,
    }
}

/// Whether a signal reached the instance's process: `Err` when it has none.
pub type SignalResult = Result<(), String>;

/// Identity of an instance, fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: u32,
    pub name: String,
    pub instance: u32,
    pub out_log: PathBuf,
    pub err_log: PathBuf,
    /// The log of both streams, when the app has one.
    pub combined_log: Option<PathBuf>,
    pub pid_file: PathBuf,
    /// When the instance was created, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// PM2's `unique_id`: a UUID, new for each instance.
    pub unique_id: String,
}

/// What an app's instances share: the app's listening sockets and how to
/// launch Node.
pub struct AppContext {
    pub sockets: Mutex<AppSockets>,
    /// Told of every change of an instance's state (see `state_file`).
    pub changed: Arc<Notify>,
    /// Told of every change of one of this app's instances.
    pub instance_changed: Notify,
    /// rsup's Node preload, given to Node apps with `-r`.
    pub preload: Option<PathBuf>,
    /// Where the instances publish their steps and output.
    pub events: Arc<Events>,
    /// True while the daemon prepares to re-execute itself: a crashed
    /// process is not restarted until it is false again (see
    /// [`AppEnv::retiring`]), or by the next image.
    ///
    /// [`AppEnv::retiring`]: super::apps::AppEnv::retiring
    pub retiring: watch::Receiver<bool>,
    /// Where this app's reloads are counted.
    pub reloads: Arc<super::reload_record::ReloadRecord>,
    /// How its processes are started.
    pub launcher: Arc<dyn Launcher>,
    /// See [`AppEnv::freeze`].
    ///
    /// [`AppEnv::freeze`]: super::apps::AppEnv::freeze
    pub freeze: Arc<super::freeze::Gate>,
    /// See [`AppEnv::keeper`](super::apps::AppEnv::keeper).
    pub keeper: Option<Arc<super::keeper_link::KeeperLink>>,
    /// The app's options as the keeper keeps them, for a daemon that takes
    /// over before the state file lists the app; held for as long as the
    /// app lives.
    pub _kept_spec: Option<super::keeper_link::KeptEntry>,
}

/// How an instance's task begins.
#[derive(Debug, Clone, Copy)]
pub struct Beginning {
    /// Restarts so far (PM2's `restart_time`).
    pub restarts: u32,
    /// `None` launches a process at once; `Some(status)` (stopped or
    /// errored) begins down, waiting for a command.
    pub down: Option<Status>,
    /// Its process runs already: the daemon's previous image started it
    /// (`rsup update` re-executed the daemon), and this one goes on
    /// supervising it.
    pub held: Option<HeldProcess>,
}

impl Beginning {
    /// A new instance: launched at once, no restart yet.
    pub const NEW: Beginning = Beginning {
        restarts: 0,
        down: None,
        held: None,
    };
}

#[derive(Clone)]
pub struct InstanceHandle {
    pub identity: Arc<Identity>,
    /// Boxed: a channel holds room for 32 commands from the start, and
    /// every instance has one.
    commands: mpsc::Sender<Box<Command>>,
    state: watch::Receiver<InstanceState>,
}

impl InstanceHandle {
    /// Creates the instance and launches its first process. The returned
    /// receiver fires once that process is ready or has failed.
    pub fn start(
        identity: Identity,
        spec: Arc<AppSpec>,
        context: Arc<AppContext>,
    ) -> (InstanceHandle, oneshot::Receiver<()>) {
        Self::start_as(identity, spec, context, Beginning::NEW)
    }

    /// Creates the instance as `beginning` says. The returned receiver
    /// fires once its first process is ready or has failed, or at once
    /// when it begins down.
    pub fn start_as(
        identity: Identity,
        spec: Arc<AppSpec>,
        context: Arc<AppContext>,
        beginning: Beginning,
    ) -> (InstanceHandle, oneshot::Receiver<()>) {
        let (commands, rx) = mpsc::channel(8);
        let (state_tx, state) = watch::channel(InstanceState {
            status: beginning.down.unwrap_or(Status::Launching),
            pid: None,
            restarts: beginning.restarts,
            unstable_restarts: 0,
            started_at_ms: None,
            last_exit: None,
            spec,
            log_health: [&identity.out_log, &identity.err_log]
                .into_iter()
                .chain(&identity.combined_log)
                .map(|path| log_writer::health(path))
                .collect(),
        });
        let identity = Arc::new(identity);
        let (settled_tx, settled) = oneshot::channel();
        let runner = Runner {
            identity: identity.clone(),
            context,
            commands: rx,
            state: state_tx,
            history: CrashHistory::default(),
            waiting: vec![settled_tx],
        };
        let first = match (beginning.held, beginning.down) {
            (Some(held), _) => Next::Resume(held),
            (None, Some(_)) => Next::Idle,
            (None, None) => Next::Launch,
        };
        tokio::spawn(runner.run(first));
        (
            InstanceHandle {
                identity,
                commands,
                state,
            },
            settled,
        )
    }

    pub fn state(&self) -> InstanceState {
        self.state.borrow().clone()
    }

    /// Waits until the instance has settled: online, stopped or errored,
    /// not launching or between crash restarts; or until `limit` passes.
    /// Returns its status then.
    pub async fn settle(&self, limit: Duration) -> Status {
        let mut state = self.state.clone();
        let settled = async {
            loop {
                let status = state.borrow_and_update().status;
                if matches!(status, Status::Online | Status::Stopped | Status::Errored) {
                    return status;
                }
                if state.changed().await.is_err() {
                    return state.borrow().status;
                }
            }
        };
        tokio::time::timeout(limit, settled)
            .await
            .unwrap_or_else(|_| self.state().status)
    }

    /// Stops the process; returns once it is gone.
    pub async fn stop(&self) {
        self.ask(Command::Stop).await
    }

    /// Restarts, returning once the new process is ready or has failed.
    pub async fn restart(&self, spec: Option<Arc<AppSpec>>) {
        self.ask(|tx| Command::Restart(spec, tx)).await
    }

    /// Replaces the running process without a gap; see [`Command::Reload`].
    pub async fn reload(&self, spec: Option<Arc<AppSpec>>, strict: bool) -> ReloadResult {
        let (done, rx) = oneshot::channel();
        let command = Command::Reload { spec, strict, done };
        if self.commands.send(Box::new(command)).await.is_err() {
            return Err("the instance was removed".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("the instance was removed".into()))
    }

    /// Stops the process and ends the instance.
    pub async fn remove(&self) {
        self.ask(|tx| Command::Remove(ShutdownReason::Stop, tx))
            .await
    }

    /// Stops the process and ends the instance while the app's other
    /// instances serve on: its clients are asked to come back.
    pub async fn remove_one_of_many(&self) {
        self.ask(|tx| Command::Remove(ShutdownReason::Reload, tx))
            .await
    }

    /// Sets the restart counters back to zero (PM2's `reset`).
    pub async fn reset(&self) {
        self.ask(Command::Reset).await
    }

    /// See [`Command::Freeze`]; `None` when no process runs (or the
    /// instance is gone).
    pub async fn freeze(&self) -> Option<HeldProcess> {
        let (done, rx) = oneshot::channel();
        let command = Box::new(Command::Freeze(done));
        self.commands.send(command).await.ok()?;
        rx.await.ok().flatten()
    }

    /// Sends `signal` to the main process, as PM2's `sendSignal` does.
    pub async fn signal(&self, signal: Signal) -> SignalResult {
        let (done, rx) = oneshot::channel();
        if self
            .commands
            .send(Box::new(Command::Signal(signal, done)))
            .await
            .is_err()
        {
            return Err("the instance was removed".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("the instance was removed".into()))
    }

    async fn ask(&self, make: impl FnOnce(oneshot::Sender<()>) -> Command) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Box::new(make(tx))).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// What the runner does next.
enum Next {
    Launch,
    /// Go on supervising a process the daemon's previous image started.
    Resume(HeldProcess),
    /// Crashed: wait this long, then launch.
    Backoff(Duration),
    /// Stopped or errored: wait for a command.
    Idle,
    End,
}

struct Runner {
    identity: Arc<Identity>,
    context: Arc<AppContext>,
    commands: mpsc::Receiver<Box<Command>>,
    state: watch::Sender<InstanceState>,
    history: CrashHistory,
    /// Callers to tell when the current launch is ready or has failed.
    waiting: Vec<oneshot::Sender<()>>,
}

impl Runner {
    async fn run(mut self, first: Next) {
        let mut next = first;
        if !matches!(next, Next::Launch | Next::Resume(_)) {
            // Begun down: settled already.
            self.release_waiters();
        }
        loop {
            next = match next {
                // Only a crash restart can come due while the daemon
                // prepares to re-execute itself: it waits (the next image
                // launches it).
                Next::Launch if *self.context.retiring.borrow() => self.held().await,
                Next::Launch => self.run_process().await,
                Next::Resume(held) => self.resume_process(held).await,
                Next::Backoff(delay) => self.backoff(delay).await,
                Next::Idle => self.idle().await,
                Next::End => break,
            };
            if !matches!(next, Next::Launch | Next::Resume(_)) {
                self.release_waiters();
            }
        }
        self.release_waiters();
    }

    fn spec(&self) -> Arc<AppSpec> {
        self.state.borrow().spec.clone()
    }

    fn release_waiters(&mut self) {
        for tx in self.waiting.drain(..) {
            let _ = tx.send(());
        }
    }

    fn set_status(&self, status: Status) {
        self.update(|s| s.status = status);
    }

    /// Publishes a change of the instance's state, and marks the daemon's
    /// state file as due for a write.
    fn update(&self, change: impl FnOnce(&mut InstanceState)) {
        self.state.send_modify(change);
        self.context.changed.notify_one();
        self.context.instance_changed.notify_one();
    }

    /// Tells the bus's subscribers of a step (PM2's `process:event`
    /// names), with the state as it is now.
    fn emit(&self, name: &'static str, manually: bool) {
        self.context
            .events
            .process(name, manually, &self.identity, &self.state.borrow());
    }

    /// What launching a process of this instance takes; `restarts` is its
    /// PM2 `restart_time`.
    fn request<'a>(&'a self, spec: &'a AppSpec, restarts: u32) -> LaunchRequest<'a> {
        LaunchRequest {
            spec,
            id: self.identity.id,
            instance: self.identity.instance,
            unique_id: &self.identity.unique_id,
            restarts,
            out_log: &self.identity.out_log,
            err_log: &self.identity.err_log,
            combined_log: self.identity.combined_log.as_ref(),
            preload: self.context.preload.as_deref(),
            events: Some(&self.context.events),
            freeze: Some(&self.context.freeze),
            keeper: self.context.keeper.as_ref(),
        }
    }

    /// Starts a process; `restarts` is its PM2 `restart_time`.
    fn launch(&self, spec: &AppSpec, restarts: u32) -> std::io::Result<Proc> {
        let proc = Proc::launch(
            self.context.launcher.as_ref(),
            &self.request(spec, restarts),
        )?;
        Ok(proc)
    }

    /// Ready for traffic, by PM2's rules for a start.
    fn ready(&self, proc: &Proc, spec: &AppSpec) -> bool {
        proc.ready_for_start(spec)
    }

    /// Launches one process and supervises it until it exits or is stopped.
    async fn run_process(&mut self) -> Next {
        let spec = self.spec();
        let restarts = self.state.borrow().restarts;
        let proc = match self.launch(&spec, restarts) {
            Ok(p) => p,
            Err(e) => {
                self.report_launch_failure(&spec, &e);
                return Next::Idle;
            }
        };
        let first = self.state.borrow().started_at_ms.is_none();
        self.update(|s| {
            s.status = Status::Launching;
            s.pid = Some(proc.pid);
            s.started_at_ms = Some(now_ms());
        });
        pid_file::write(&self.identity.pid_file, proc.pid);
        if first {
            self.emit("start", true);
        }
        if self.ready(&proc, &spec) {
            self.mark_online();
        }
        // Boxed: its room is taken while a process runs, not beside this
        // function's own all the instance's life.
        Box::pin(self.supervise(proc, spec)).await
    }

    /// Takes on the process the daemon's previous image ran, as it was
    /// (online or still launching).
    async fn resume_process(&mut self, held: HeldProcess) -> Next {
        let spec = self.spec();
        let restarts = self.state.borrow().restarts;
        let proc = match Proc::reattach(&held, &self.request(&spec, restarts)) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(app = %self.identity.name, id = self.identity.id, pid = held.pid, "cannot take the process on again: {e}");
                return self.after_exit(Err(e), Duration::ZERO);
            }
        };
        self.update(|s| {
            s.pid = Some(proc.pid);
            s.started_at_ms = Some(now_ms().saturating_sub(held.uptime_ms));
            s.status = if held.online {
                Status::Online
            } else {
                Status::Launching
            };
        });
        if held.online {
            self.release_waiters();
        } else if self.ready(&proc, &spec) {
            self.mark_online();
        }
        // Boxed: its room is taken while a process runs, not beside this
        // function's own all the instance's life.
        Box::pin(self.supervise(proc, spec)).await
    }

    /// Supervises a running process until it exits or is stopped.
    ///
    /// What it awaits only now and then (a listen request, a reload, the
    /// stop, the end) is boxed: a future is as large as the largest it may
    /// await, and each instance's task would otherwise hold that room
    /// (kilobytes) all its life.
    async fn supervise(&mut self, mut proc: Proc, mut spec: Arc<AppSpec>) -> Next {
        // PM2 treats an app that never says ready as ready at listen_timeout.
        let ready_timer = tokio::time::sleep(Duration::from_millis(spec.listen_timeout_ms));
        tokio::pin!(ready_timer);

        loop {
            let launching = self.state.borrow().status == Status::Launching;
            tokio::select! {
                status = proc.child.wait() => {
                    Box::pin(proc.drain_logs()).await;
                    return self.after_exit(status, proc.started.elapsed());
                }
                Some(event) = proc.events.recv() => {
                    Box::pin(proc.handle(*event, &self.context.sockets)).await;
                    if launching && self.ready(&proc, &spec) {
                        self.mark_online();
                    }
                }
                _ = &mut ready_timer, if launching => {
                    // Ready by PM2's rule, said or not: a preload holding
                    // its listeners until `ready` opens them now.
                    Box::pin(proc.channels.send_worker(&SupervisorMessage::Accept)).await;
                    self.mark_online();
                }
                command = self.commands.recv() => match command.map(|c| *c) {
                    Some(Command::Reload { spec: new_spec, strict, done }) => {
                        let result = Box::pin(self.replace(&mut proc, new_spec, strict)).await;
                        spec = self.spec();
                        if result.is_ok() {
                            self.emit("reload", true);
                        }
                        let _ = done.send(result);
                    }
                    Some(Command::Reset(done)) => {
                        self.reset();
                        let _ = done.send(());
                    }
                    Some(Command::Signal(signal, done)) => {
                        let sent = proc.child.signal(signal, false)
                            .map_err(|e| format!("cannot send {signal} to pid {}: {e}", proc.pid));
                        let _ = done.send(sent);
                    }
                    Some(Command::Freeze(done)) => {
                        // What the readers passed on before they paused.
                        while let Ok(event) = proc.events.try_recv() {
                            Box::pin(proc.handle(*event, &self.context.sockets)).await;
                        }
                        let state = self.state.borrow().clone();
                        let mut held = proc.hold();
                        held.online = state.status == Status::Online
                            || self.ready(&proc, &spec);
                        let _ = done.send(Some(held));
                        Box::pin(self.context.freeze.thawed()).await;
                        if launching && self.ready(&proc, &spec) {
                            self.mark_online();
                        }
                    }
                    other => {
                        self.set_status(Status::Stopping);
                        let reason = shutdown_reason(&other);
                        let stop = stop_process(&mut proc, &spec, &self.context.sockets, reason);
                        let status = Box::pin(stop).await;
                        self.record_exit(status);
                        self.emit("exit", false);
                        return self.obey(other);
                    }
                },
            }
        }
    }

    fn mark_online(&mut self) {
        self.set_status(Status::Online);
        self.emit("online", false);
        self.release_waiters();
    }

    /// Reload: starts the new process beside `current`, and once it is
    /// ready stops the old one. On failure the new one is stopped and
    /// `current` keeps serving.
    async fn replace(
        &mut self,
        current: &mut Proc,
        new_spec: Option<Arc<AppSpec>>,
        strict: bool,
    ) -> ReloadResult {
        let spec = new_spec.unwrap_or_else(|| self.spec());
        // Counted only once the new process has taken over.
        let restarts = self.state.borrow().restarts + 1;
        let mut new = self
            .launch(&spec, restarts)
            .map_err(|e| format!("failed to start: {e}"))?;
        let timer = tokio::time::sleep(Duration::from_millis(spec.listen_timeout_ms));
        tokio::pin!(timer);
        loop {
            if new.ready_for_reload(&spec) {
                break;
            }
            tokio::select! {
                status = new.child.wait() => {
                    new.drain_logs().await;
                    let how = describe_exit(status);
                    return Err(format!("the new process {how} before it was ready"));
                }
                Some(event) = new.events.recv() => {
                    new.handle(*event, &self.context.sockets).await;
                }
                Some(event) = current.events.recv() => {
                    current.handle(*event, &self.context.sockets).await;
                }
                _ = &mut timer => {
                    if !strict {
                        // Taken as ready: it must accept before the old
                        // process stops.
                        new.channels.send_worker(&SupervisorMessage::Accept).await;
                        break;
                    }
                    // The old process serves on.
                    let reload = ShutdownReason::Reload;
                    let _ = stop_process(&mut new, &spec, &self.context.sockets, reload).await;
                    return Err(format!(
                        "the new process was not ready within listen_timeout ({} ms)",
                        spec.listen_timeout_ms
                    ));
                }
            }
        }
        // The new process serves; the old one drains and goes.
        let mut old = std::mem::replace(current, new);
        let old_spec = self.spec();
        self.update(|s| {
            s.spec = spec;
            s.restarts = restarts;
            s.pid = Some(current.pid);
            s.started_at_ms = Some(now_ms());
            s.status = Status::Online;
        });
        pid_file::write(&self.identity.pid_file, current.pid);
        self.emit("online", false);
        self.history = CrashHistory::default();
        let reload = ShutdownReason::Reload;
        let status = stop_process(&mut old, &old_spec, &self.context.sockets, reload).await;
        let exit = exit_info(status);
        self.update(|s| s.last_exit = exit);
        Ok(())
    }

    /// After a stop: what the command asked for.
    fn obey(&mut self, command: Option<Command>) -> Next {
        match command {
            Some(Command::Stop(done)) => {
                self.set_status(Status::Stopped);
                self.emit("stop", true);
                let _ = done.send(());
                Next::Idle
            }
            Some(Command::Restart(spec, done)) => {
                self.prepare_restart(spec, true);
                self.emit("restart", true);
                self.waiting.push(done);
                Next::Launch
            }
            Some(Command::Reload { spec, done, .. }) => {
                // Nothing runs to be replaced: a plain start.
                self.prepare_restart(spec, true);
                self.emit("reload", true);
                let (tx, rx) = oneshot::channel();
                self.waiting.push(tx);
                let state = self.state.subscribe();
                tokio::spawn(async move {
                    let _ = rx.await;
                    let status = state.borrow().status;
                    let _ = done.send(if status == Status::Online {
                        Ok(())
                    } else {
                        Err(format!("did not come back online ({})", status.as_str()))
                    });
                });
                Next::Launch
            }
            Some(Command::Remove(_, done)) => {
                self.set_status(Status::Stopped);
                self.emit("delete", true);
                let _ = done.send(());
                Next::End
            }
            // Answered where they come (see `answer_in_passing`); here
            // only for completeness.
            passing @ Some(Command::Reset(_) | Command::Signal(..) | Command::Freeze(_)) => {
                let _ = self.answer_in_passing(passing);
                Next::Idle
            }
            // Every handle is gone: the daemon is shutting down.
            None => {
                self.set_status(Status::Stopped);
                Next::End
            }
        }
    }

    /// PM2's `reset`: the restart counters, and the crash accounting they
    /// come from, start over.
    fn reset(&mut self) {
        self.history = CrashHistory::default();
        self.update(|s| {
            s.restarts = 0;
            s.unstable_restarts = 0;
        });
    }

    fn not_running(&self) -> String {
        format!(
            "{} (id {}) has no running process ({})",
            self.identity.name,
            self.identity.id,
            self.state.borrow().status.as_str()
        )
    }

    fn prepare_restart(&mut self, spec: Option<Arc<AppSpec>>, count: bool) {
        // A restart a user asked for starts the crash accounting over.
        self.history = CrashHistory::default();
        self.update(|s| {
            if let Some(spec) = spec {
                s.spec = spec;
            }
            if count {
                s.restarts += 1;
            }
            s.unstable_restarts = 0;
            s.status = Status::Launching;
        });
    }

    fn after_exit(&mut self, status: std::io::Result<ExitStatus>, uptime: Duration) -> Next {
        let code = status.as_ref().ok().and_then(ExitStatus::code);
        self.record_exit(status);
        let spec = self.spec();
        let decision = restart_policy::decide(&spec, uptime, code, &mut self.history);
        let unstable = self.history.unstable_restarts;
        self.update(|s| s.unstable_restarts = unstable);
        let next = match decision {
            Decision::Restart(delay) => Next::Backoff(delay),
            Decision::Stay => {
                self.set_status(Status::Stopped);
                Next::Idle
            }
            Decision::GiveUp => {
                tracing::warn!(
                    app = %self.identity.name,
                    id = self.identity.id,
                    "exited {} times in a row within min_uptime; giving up",
                    spec.max_restarts + 1
                );
                self.set_status(Status::Errored);
                self.emit("restart overlimit", false);
                Next::Idle
            }
        };
        self.emit("exit", false);
        next
    }

    fn record_exit(&self, status: std::io::Result<ExitStatus>) {
        let exit = exit_info(status);
        pid_file::remove(&self.identity.pid_file);
        self.update(|s| {
            s.pid = None;
            s.last_exit = exit;
        });
    }

    fn report_launch_failure(&self, spec: &AppSpec, err: &std::io::Error) {
        let program = spec.interpreter.as_deref().unwrap_or(&spec.script);
        tracing::error!(app = %self.identity.name, id = self.identity.id, "failed to start {program}: {err}");
        let line = format!("rsup: failed to start {program}: {err}\n");
        if let Ok(mut f) = super::log_writer::open_log(&self.identity.err_log) {
            use std::io::Write;
            let _ = f.write_all(line.as_bytes());
        }
        self.set_status(Status::Errored);
    }

    /// Waits out a crash restart's delay. The restart counts once it
    /// happens, as PM2 counts it: not while waiting, and not if a command
    /// comes first.
    async fn backoff(&mut self, delay: Duration) -> Next {
        if delay.is_zero() {
            return self.crash_restart();
        }
        self.set_status(Status::WaitingRestart);
        let timer = tokio::time::sleep(delay);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                _ = &mut timer => return self.crash_restart(),
                command = self.commands.recv() => {
                    if let Err(other) = self.answer_in_passing(command.map(|c| *c)) {
                        return self.obey_while_down(other);
                    }
                }
            }
        }
    }

    fn crash_restart(&mut self) -> Next {
        self.update(|s| s.restarts += 1);
        Next::Launch
    }

    /// A restart came due while the daemon prepares to re-execute itself:
    /// the exit is recorded, and the process launched only if the daemon
    /// goes on as it is (the update failed); else the next image launches
    /// it. A command is obeyed meanwhile.
    async fn held(&mut self) -> Next {
        self.set_status(Status::WaitingRestart);
        let mut retiring = self.context.retiring.clone();
        loop {
            tokio::select! {
                serving = async { retiring.wait_for(|r| !*r).await.map(drop) } => {
                    return match serving {
                        Ok(()) => Next::Launch,
                        // The daemon is ending.
                        Err(_) => Next::Idle,
                    };
                }
                command = self.commands.recv() => {
                    if let Err(other) = self.answer_in_passing(command.map(|c| *c)) {
                        return self.obey_while_down(other);
                    }
                }
            }
        }
    }

    async fn idle(&mut self) -> Next {
        loop {
            let command = self.commands.recv().await.map(|c| *c);
            if let Err(other) = self.answer_in_passing(command) {
                return self.obey_while_down(other);
            }
        }
    }

    /// Answers, while no process runs, a command that does not change
    /// that (reset, signal); hands back any other.
    fn answer_in_passing(&mut self, command: Option<Command>) -> Result<(), Option<Command>> {
        match command {
            Some(Command::Reset(done)) => {
                self.reset();
                let _ = done.send(());
                Ok(())
            }
            Some(Command::Signal(_, done)) => {
                let _ = done.send(Err(self.not_running()));
                Ok(())
            }
            Some(Command::Freeze(done)) => {
                let _ = done.send(None);
                Ok(())
            }
            other => Err(other),
        }
    }

    /// A command while no process runs.
    fn obey_while_down(&mut self, command: Option<Command>) -> Next {
        match command {
            Some(Command::Restart(spec, done)) => {
                self.prepare_restart(spec, false);
                self.emit("restart", true);
                self.waiting.push(done);
                Next::Launch
            }
            other => self.obey(other),
        }
    }
}

fn exit_info(status: std::io::Result<ExitStatus>) -> Option<ExitInfo> {
    status.ok().map(|st| ExitInfo {
        code: st.code(),
        signal: st.signal().map(signal_name),
        at_ms: now_ms(),
    })
}

fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {n}"))
}

fn describe_exit(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(sig)) => format!("was killed by {}", signal_name(sig)),
            _ => "exited".into(),
        },
        Err(e) => format!("could not be waited for ({e})"),
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
