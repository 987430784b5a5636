//! One running process of an instance, with its channels and what it has
//! told the supervisor so far.

use super::channels::{Channels, ChildEvent};
use super::launcher::{ChildProcess, Launcher};
use super::sockets::{resolve_host, AppSockets};
use super::spawn::{LaunchRequest, Launched};
use rsup_proto::app::{AppSpec, ExecMode};
use rsup_proto::worker::{ListenAddress, SupervisorMessage};
use std::sync::Mutex;
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
    pub events: mpsc::Receiver<ChildEvent>,
    log_copiers: Vec<JoinHandle<()>>,
    pub started: Instant,
    /// Port-0 listen requests so far (see [`SocketTable::get`]).
    ephemeral_requests: usize,
    pub said_ready: bool,
    /// It has asked for a listening socket, so it runs rsup's preload and
    /// will report [`ChildEvent::Drained`] when told to shut down.
    pub listened: bool,
    pub drained: bool,
}

impl Proc {
    pub fn launch(launcher: &dyn Launcher, req: &LaunchRequest) -> std::io::Result<Proc> {
        let Launched {
            child,
            pid,
            node_channel,
            worker_channel,
            log_copiers,
            relay,
        } = launcher.launch(req)?;
        let (events_tx, events) = mpsc::channel(16);
        Ok(Proc {
            child,
            pid,
            channels: Channels::open(node_channel, worker_channel, events_tx, relay),
            events,
            log_copiers,
            started: Instant::now(),
            ephemeral_requests: 0,
            said_ready: false,
            listened: false,
            drained: false,
        })
    }

    /// Acts on what the process said: hands out sockets, notes readiness.
    pub async fn handle(&mut self, event: ChildEvent, sockets: &Mutex<AppSockets>) {
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
