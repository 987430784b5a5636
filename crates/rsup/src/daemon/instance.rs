//! One instance of an app (one `pm_id`) and the task that keeps it running:
//! launch, wait for ready, watch for exit, restart per policy, stop on
//! request. The task owns the process; everything else talks to it through
//! an [`InstanceHandle`].

use super::channels::{Channels, ChildEvent};
use super::restart_policy::{self, CrashHistory, Decision};
use super::spawn::{launch, LaunchRequest, Launched};
use super::stop::stop_process;
use rsup_proto::app::{AppSpec, ExitInfo, Status};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};

/// How long to wait for the log copiers after an exit: descendants that
/// keep the pipes open must not hold up the lifecycle.
const LOG_DRAIN: Duration = Duration::from_millis(500);

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
    /// Counts launches; tells a waiter that a new process has started.
    pub launches: u64,
}

enum Command {
    Stop(oneshot::Sender<()>),
    /// Stop (if running) and start again, with new options if given.
    Restart(Option<Arc<AppSpec>>, oneshot::Sender<()>),
    /// Stop (if running) and end the task.
    Remove(oneshot::Sender<()>),
}

/// Identity of an instance, fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: u32,
    pub name: String,
    pub instance: u32,
    pub out_log: PathBuf,
    pub err_log: PathBuf,
}

#[derive(Clone)]
pub struct InstanceHandle {
    pub identity: Arc<Identity>,
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<InstanceState>,
}

impl InstanceHandle {
    /// Creates the instance and launches its first process. The returned
    /// receiver fires once that process is ready or has failed.
    pub fn start(
        identity: Identity,
        spec: Arc<AppSpec>,
    ) -> (InstanceHandle, oneshot::Receiver<()>) {
        let (commands, rx) = mpsc::channel(8);
        let (state_tx, state) = watch::channel(InstanceState {
            status: Status::Launching,
            pid: None,
            restarts: 0,
            unstable_restarts: 0,
            started_at_ms: None,
            last_exit: None,
            spec,
            launches: 0,
        });
        let identity = Arc::new(identity);
        let (settled_tx, settled) = oneshot::channel();
        let runner = Runner {
            identity: identity.clone(),
            commands: rx,
            state: state_tx,
            history: CrashHistory::default(),
            waiting: vec![settled_tx],
        };
        tokio::spawn(runner.run());
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

    /// Stops the process; returns once it is gone.
    pub async fn stop(&self) {
        self.ask(Command::Stop).await
    }

    /// Restarts, returning once the new process is ready or has failed.
    pub async fn restart(&self, spec: Option<Arc<AppSpec>>) {
        self.ask(|tx| Command::Restart(spec, tx)).await
    }

    /// Stops the process and ends the instance.
    pub async fn remove(&self) {
        self.ask(Command::Remove).await
    }

    async fn ask(&self, make: impl FnOnce(oneshot::Sender<()>) -> Command) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(make(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// What the runner does next.
enum Next {
    Launch,
    /// Crashed: wait this long, then launch.
    Backoff(Duration),
    /// Stopped or errored: wait for a command.
    Idle,
    End,
}

struct Runner {
    identity: Arc<Identity>,
    commands: mpsc::Receiver<Command>,
    state: watch::Sender<InstanceState>,
    history: CrashHistory,
    /// Callers to tell when the current launch is ready or has failed.
    waiting: Vec<oneshot::Sender<()>>,
}

impl Runner {
    async fn run(mut self) {
        let mut next = Next::Launch;
        loop {
            next = match next {
                Next::Launch => self.run_process().await,
                Next::Backoff(delay) => self.backoff(delay).await,
                Next::Idle => self.idle().await,
                Next::End => break,
            };
            if !matches!(next, Next::Launch) {
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
        self.state.send_modify(|s| s.status = status);
    }

    /// Launches one process and supervises it until it exits or is stopped.
    async fn run_process(&mut self) -> Next {
        let spec = self.spec();
        let (restarts, launches) = {
            let s = self.state.borrow();
            (s.restarts, s.launches)
        };
        let launched = launch(&LaunchRequest {
            spec: &spec,
            id: self.identity.id,
            instance: self.identity.instance,
            restarts,
            out_log: &self.identity.out_log,
            err_log: &self.identity.err_log,
        });
        let Launched {
            mut child,
            pid,
            node_channel,
            worker_channel,
            log_copiers,
        } = match launched {
            Ok(l) => l,
            Err(e) => {
                self.report_launch_failure(&spec, &e);
                return Next::Idle;
            }
        };
        let started = Instant::now();
        let (events_tx, mut events) = mpsc::channel(16);
        let mut channels = Channels::open(node_channel, worker_channel, events_tx);
        let ready_immediately = !spec.wait_ready;
        self.state.send_modify(|s| {
            s.status = if ready_immediately {
                Status::Online
            } else {
                Status::Launching
            };
            s.pid = Some(pid);
            s.started_at_ms = Some(now_ms());
            s.launches = launches + 1;
        });
        if ready_immediately {
            self.release_waiters();
        }
        // PM2 treats an app that never says ready as ready at listen_timeout.
        let ready_timer = tokio::time::sleep(Duration::from_millis(spec.listen_timeout_ms));
        tokio::pin!(ready_timer);

        loop {
            let launching = self.state.borrow().status == Status::Launching;
            tokio::select! {
                status = child.wait() => {
                    drain_logs(log_copiers).await;
                    return self.after_exit(status, started.elapsed());
                }
                Some(event) = events.recv() => match event {
                    ChildEvent::Ready if launching => self.mark_online(),
                    ChildEvent::Ready => {}
                },
                _ = &mut ready_timer, if launching => self.mark_online(),
                command = self.commands.recv() => {
                    self.set_status(Status::Stopping);
                    let status = stop_process(&mut child, pid, &spec, &mut channels).await;
                    drain_logs(log_copiers).await;
                    self.record_exit(status);
                    return self.obey(command);
                }
            }
        }
    }

    fn mark_online(&mut self) {
        self.set_status(Status::Online);
        self.release_waiters();
    }

    /// After a stop: what the command asked for.
    fn obey(&mut self, command: Option<Command>) -> Next {
        match command {
            Some(Command::Stop(done)) => {
                self.set_status(Status::Stopped);
                let _ = done.send(());
                Next::Idle
            }
            Some(Command::Restart(spec, done)) => {
                self.prepare_restart(spec, true);
                self.waiting.push(done);
                Next::Launch
            }
            Some(Command::Remove(done)) => {
                self.set_status(Status::Stopped);
                let _ = done.send(());
                Next::End
            }
            // Every handle is gone: the daemon is shutting down.
            None => {
                self.set_status(Status::Stopped);
                Next::End
            }
        }
    }

    fn prepare_restart(&mut self, spec: Option<Arc<AppSpec>>, count: bool) {
        // A restart a user asked for starts the crash accounting over.
        self.history = CrashHistory::default();
        self.state.send_modify(|s| {
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
        self.record_exit(status);
        let spec = self.spec();
        let decision = restart_policy::decide(&spec, uptime, &mut self.history);
        let unstable = self.history.unstable_restarts;
        self.state.send_modify(|s| s.unstable_restarts = unstable);
        match decision {
            Decision::Restart(delay) => {
                self.state.send_modify(|s| s.restarts += 1);
                Next::Backoff(delay)
            }
            Decision::Stay => {
                self.set_status(Status::Stopped);
                Next::Idle
            }
            Decision::GiveUp => {
                eprintln!(
                    "rsup: {} (id {}) restarted {} times in a row within min_uptime; giving up",
                    self.identity.name, self.identity.id, spec.max_restarts
                );
                self.set_status(Status::Errored);
                Next::Idle
            }
        }
    }

    fn record_exit(&self, status: std::io::Result<ExitStatus>) {
        let exit = status.ok().map(|st| ExitInfo {
            code: st.code(),
            signal: st
                .signal()
                .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
                .map(|s| s.as_str().to_string()),
            at_ms: now_ms(),
        });
        self.state.send_modify(|s| {
            s.pid = None;
            s.last_exit = exit;
        });
    }

    fn report_launch_failure(&self, spec: &AppSpec, err: &std::io::Error) {
        let program = spec.interpreter.as_deref().unwrap_or(&spec.script);
        let line = format!("rsup: failed to start {program}: {err}\n");
        eprint!("{line}");
        if let Ok(mut f) = super::log_writer::open_log(&self.identity.err_log) {
            use std::io::Write;
            let _ = f.write_all(line.as_bytes());
        }
        self.set_status(Status::Errored);
    }

    async fn backoff(&mut self, delay: Duration) -> Next {
        if delay.is_zero() {
            return Next::Launch;
        }
        self.set_status(Status::WaitingRestart);
        tokio::select! {
            _ = tokio::time::sleep(delay) => Next::Launch,
            command = self.commands.recv() => self.obey_while_down(command),
        }
    }

    async fn idle(&mut self) -> Next {
        let command = self.commands.recv().await;
        self.obey_while_down(command)
    }

    /// A command while no process runs.
    fn obey_while_down(&mut self, command: Option<Command>) -> Next {
        match command {
            Some(Command::Restart(spec, done)) => {
                self.prepare_restart(spec, false);
                self.waiting.push(done);
                Next::Launch
            }
            other => self.obey(other),
        }
    }
}

async fn drain_logs(copiers: Vec<tokio::task::JoinHandle<()>>) {
    for copier in copiers {
        let _ = tokio::time::timeout(LOG_DRAIN, copier).await;
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
