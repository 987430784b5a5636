//! One running process of an instance, with its channels and what it has
//! told the supervisor so far.

use super::channels::{Channels, ChildEvent};
use super::freeze::Gate;
use super::held_process::{self, HeldProcess};
use super::keeper_link::{KeeperLink, KeptEntry};
use super::launcher::{ChildProcess, Launcher};
use super::sockets::{resolve_host, AppSockets};
use super::spawn::{LaunchRequest, Launched};
use rsup_proto::app::{AppSpec, ExecMode};
use rsup_proto::worker::{ListenAddress, SupervisorMessage};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long to wait for the log copiers after an exit: descendants that
/// keep the pipes open must not hold up the lifecycle.
const LOG_DRAIN: Duration = Duration::from_millis(500);

pub struct Proc {
    pub child: Box<dyn ChildProcess>,
    pub pid: u32,
    pub channels: Channels,
    pub events: mpsc::Receiver<Box<ChildEvent>>,
    log_copiers: Vec<JoinHandle<()>>,
    /// The read ends of its stdout and stderr (see [`Launched::output_fds`]).
    output_fds: [Option<RawFd>; 2],
    pub started: Instant,
    /// Port-0 listen requests so far (see [`SocketTable::get`]).
    ephemeral_requests: usize,
    pub said_ready: bool,
    /// It has asked for a listening socket, so it runs rsup's preload and
    /// will report [`ChildEvent::Drained`] when told to shut down.
    pub listened: bool,
    pub drained: bool,
    /// Where the keeper holds its descriptors, so that a crash of the
    /// daemon does not close its pipes and channels (given when the
    /// process starts, let go of with it).
    kept: Option<KeptEntry>,
}

/// What the keeper keeps of a process beside its descriptors: what the
/// daemon that takes it over needs to know (see `adopt`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptProcess {
    /// Its app, whose options the keeper keeps beside (see `app`).
    pub app: String,
    pub id: u32,
    /// Its `NODE_APP_INSTANCE`.
    pub instance: u32,
    /// Its PM2 `restart_time`.
    pub restarts: u32,
    pub unique_id: String,
    pub pid: u32,
    /// When it started, in milliseconds since the epoch.
    pub started_ms: u64,
    pub ephemeral_requests: usize,
    pub said_ready: bool,
    pub listened: bool,
    pub drained: bool,
    /// Which descriptors follow the pidfd and the worker channel.
    pub stdout: bool,
    pub stderr: bool,
    pub node: bool,
}

fn meta_value(meta: &KeptProcess) -> serde_json::Value {
    serde_json::to_value(meta).unwrap_or_default()
}

/// The keeper's key for the process `pid` of instance `id`.
pub fn kept_key(id: u32, pid: u32) -> String {
    format!("process/{id}/{pid}")
}

impl Proc {
    pub fn launch(launcher: &dyn Launcher, req: &LaunchRequest) -> std::io::Result<Proc> {
        let mut proc = Proc::watch(launcher.launch(req)?, req.freeze);
        if let Some(keeper) = req.keeper {
            proc.keep(keeper, req);
        }
        Ok(proc)
    }

    /// Gives the keeper duplicates of the process's descriptors: a pidfd
    /// first, then its worker channel, output pipes and Node channel.
    fn keep(&mut self, keeper: &Arc<KeeperLink>, req: &LaunchRequest) {
        let Some(pidfd) = held_process::pidfd_open(self.pid) else {
            return;
        };
        let (worker, node) = self.channels.raw_fds();
        let raw: Vec<RawFd> = [Some(worker), self.output_fds[0], self.output_fds[1], node]
            .into_iter()
            .flatten()
            .collect();
        let mut fds = vec![pidfd.as_fd()];
        // SAFETY: each is open as long as this process is watched.
        fds.extend(raw.iter().map(|fd| unsafe { BorrowedFd::borrow_raw(*fd) }));
        let meta = KeptProcess {
            app: req.spec.name.clone(),
            id: req.id,
            instance: req.instance,
            restarts: req.restarts,
            unique_id: req.unique_id.to_string(),
            pid: self.pid,
            started_ms: super::instance::now_ms(),
            ephemeral_requests: 0,
            said_ready: false,
            listened: false,
            drained: false,
            stdout: self.output_fds[0].is_some(),
            stderr: self.output_fds[1].is_some(),
            node: node.is_some(),
        };
        let key = kept_key(req.id, self.pid);
        keeper.keep(key.clone(), Some(self.pid), meta_value(&meta), &fds);
        self.kept = Some(KeptEntry::new(keeper, key));
    }

    /// Tells the keeper what the process has said so far (set over the
    /// fields of its [`KeptProcess`]).
    fn note_kept(&self) {
        let Some(kept) = &self.kept else {
            return;
        };
        let said = serde_json::json!({
            "ephemeral_requests": self.ephemeral_requests,
            "said_ready": self.said_ready,
            "listened": self.listened,
            "drained": self.drained,
        });
        kept.keeper().note(kept.key().to_string(), said);
    }

    /// A process of the daemon's previous image (`rsup update`), whose
    /// pipes and channels it kept open across the exec.
    pub fn reattach(held: &HeldProcess, req: &LaunchRequest) -> std::io::Result<Proc> {
        let mut proc = Proc::watch(held_process::reattach(held, req)?, req.freeze);
        // The keeper has held its descriptors since it started.
        proc.kept = req
            .keeper
            .map(|keeper| KeptEntry::new(keeper, kept_key(req.id, held.pid)));
        let uptime = Duration::from_millis(held.uptime_ms);
        proc.started = Instant::now()
            .checked_sub(uptime)
            .unwrap_or_else(Instant::now);
        proc.ephemeral_requests = held.ephemeral_requests;
        proc.said_ready = held.said_ready;
        proc.listened = held.listened;
        proc.drained = held.drained;
        Ok(proc)
    }

    fn watch(launched: Launched, freeze: Option<&Arc<Gate>>) -> Proc {
        let Launched {
            child,
            pid,
            node_channel,
            worker_channel,
            log_copiers,
            output_fds,
            relay,
        } = launched;
        let (events_tx, events) = mpsc::channel(16);
        Proc {
            child,
            pid,
            channels: Channels::open(node_channel, worker_channel, events_tx, relay, freeze),
            events,
            log_copiers,
            output_fds,
            started: Instant::now(),
            ephemeral_requests: 0,
            said_ready: false,
            listened: false,
            drained: false,
            kept: None,
        }
    }

    /// What the daemon's next image needs to go on supervising this
    /// process, its descriptors included (which must stay open, and be
    /// made inheritable, until the exec).
    pub fn hold(&self) -> HeldProcess {
        let (worker, node) = self.channels.raw_fds();
        HeldProcess {
            pid: self.pid,
            pid_started: super::state_file::process_start(self.pid),
            stdout: self.output_fds[0],
            stderr: self.output_fds[1],
            worker,
            node,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            ephemeral_requests: self.ephemeral_requests,
            said_ready: self.said_ready,
            listened: self.listened,
            drained: self.drained,
            online: false,
            pidfd: self.child.pidfd(),
        }
    }

    /// Acts on what the process said: hands out sockets, notes readiness.
    pub async fn handle(&mut self, event: ChildEvent, sockets: &Mutex<AppSockets>) {
        self.act_on(event, sockets).await;
        self.note_kept();
    }

    async fn act_on(&mut self, event: ChildEvent, sockets: &Mutex<AppSockets>) {
        match event {
            ChildEvent::Ready => self.said_ready = true,
            ChildEvent::Drained => self.drained = true,
            ChildEvent::Listen { request, address } => {
                let index = self.ephemeral_requests;
                if matches!(address, ListenAddress::Tcp { port: 0, .. }) {
                    self.ephemeral_requests += 1;
                }
                let socket = match resolve_host(&address).await {
                    Ok(ip) => sockets.lock().unwrap().get(&address, ip, index),
                    Err(e) => Err(e),
                };
                match socket {
                    Ok(fd) => {
                        let reply = SupervisorMessage::Listening {
                            request,
                            error: None,
                        };
                        if self.channels.send_worker_with_fd(&reply, &fd).await {
                            self.listened = true;
                        }
                    }
                    Err(error) => {
                        let reply = SupervisorMessage::Listening {
                            request,
                            error: Some(error),
                        };
                        self.channels.send_worker(&reply).await;
                    }
                }
            }
        }
    }

    /// Ready for traffic by PM2's rules: `ready` with wait_ready; in
    /// cluster mode, listening; in fork mode, at once.
    pub fn ready_for_start(&self, spec: &AppSpec) -> bool {
        if spec.wait_ready {
            self.said_ready
        } else {
            spec.exec_mode == ExecMode::Fork || self.listened
        }
    }

    /// Ready to take over from an old process during a reload: fork mode
    /// also waits for the socket, so the old process stops only once the
    /// new one accepts.
    pub fn ready_for_reload(&self, spec: &AppSpec) -> bool {
        if spec.wait_ready {
            self.said_ready
        } else {
            self.listened
        }
    }

    /// Waits (briefly) until everything the process wrote is in its logs.
    pub async fn drain_logs(&mut self) {
        for copier in self.log_copiers.drain(..) {
            let _ = tokio::time::timeout(LOG_DRAIN, copier).await;
        }
    }
}
