//! A [`Launcher`] for unit tests whose processes run nothing: the test
//! decides when each says it is ready, when it exits and how, which
//! signals it ignores, and whether children outlive it in its group. Its pids are above Linux's highest possible pid,
//! so none can name a real process.

use super::{ChildProcess, Launcher};
use crate::daemon::spawn::{LaunchRequest, Launched};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use rsup_proto::framing::encode;
use rsup_proto::worker::WorkerMessage;
use std::future::Future;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Linux's `PID_MAX_LIMIT` is 4,194,304.
const FIRST_PID: u32 = 5_000_000;

pub struct FakeLauncher {
    launched: mpsc::UnboundedSender<FakeProcess>,
    next_pid: AtomicU32,
}

/// The processes a [`FakeLauncher`] starts, in order.
pub struct Launches(mpsc::UnboundedReceiver<FakeProcess>);

impl FakeLauncher {
    pub fn new() -> (Arc<FakeLauncher>, Launches) {
        let (launched, rx) = mpsc::unbounded_channel();
        let launcher = FakeLauncher {
            launched,
            next_pid: AtomicU32::new(FIRST_PID),
        };
        (Arc::new(launcher), Launches(rx))
    }
}

impl Launches {
    /// The next process launched. Fails the test when none comes while
    /// everything else is idle (on a paused clock the limit passes at
    /// once then).
    pub async fn next(&mut self) -> FakeProcess {
        tokio::time::timeout(Duration::from_secs(3600), self.0.recv())
            .await
            .expect("a process is launched")
            .expect("the launcher is alive")
    }

    /// A process launched already and not yet taken, if any.
    pub fn try_next(&mut self) -> Option<FakeProcess> {
        self.0.try_recv().ok()
    }
}

impl Launcher for FakeLauncher {
    fn launch(&self, req: &LaunchRequest) -> std::io::Result<Launched> {
        let (parent, child) = UnixStream::pair()?;
        parent.set_nonblocking(true)?;
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let (exit, exit_rx) = watch::channel(None);
        let process = FakeProcess(Arc::new(Shared {
            pid,
            restarts: req.restarts,
            exit,
            signals: Mutex::default(),
            ignored: Mutex::default(),
            survivors: AtomicBool::new(false),
            worker: child,
        }));
        let _ = self.launched.send(process.clone());
        Ok(Launched {
            child: Box::new(FakeChild {
                process: process.0,
                exit: exit_rx,
            }),
            pid,
            node_channel: None,
            worker_channel: tokio::net::UnixStream::from_std(parent)?,
            log_copiers: Vec::new(),
            output_fds: [None, None],
            relay: None,
        })
    }
}

struct Shared {
    pid: u32,
    restarts: u32,
    exit: watch::Sender<Option<ExitStatus>>,
    signals: Mutex<Vec<Signal>>,
    ignored: Mutex<Vec<Signal>>,
    /// Its process group has members that outlive it and take nothing
    /// but a SIGKILL to the group.
    survivors: AtomicBool,
    /// Its end of the worker channel, on which it says `ready`.
    worker: UnixStream,
}

/// The test's side of a fake process.
#[derive(Clone)]
pub struct FakeProcess(Arc<Shared>);

impl FakeProcess {
    pub fn pid(&self) -> u32 {
        self.0.pid
    }

    /// PM2's `restart_time` it was launched with.
    pub fn restarts(&self) -> u32 {
        self.0.restarts
    }

    /// Says `ready` on the worker channel, as the addon does.
    pub fn ready(&self) {
        (&self.0.worker)
            .write_all(&encode(&WorkerMessage::Ready))
            .expect("the worker channel is open");
    }

    pub fn exit(&self, code: i32) {
        self.end(ExitStatus::from_raw(code << 8));
    }

    /// From now on `signal` does nothing to it (SIGKILL cannot be ignored).
    pub fn ignore(&self, signal: Signal) {
        self.0.ignored.lock().unwrap().push(signal);
    }

    /// From now on it has children in its group that outlive it and
    /// ignore every signal but SIGKILL.
    pub fn leave_children(&self) {
        self.0.survivors.store(true, Ordering::SeqCst);
    }

    /// The signals sent to it (or its group) so far.
    pub fn signals(&self) -> Vec<Signal> {
        self.0.signals.lock().unwrap().clone()
    }

    pub fn exited(&self) -> Option<ExitStatus> {
        *self.0.exit.borrow()
    }

    fn end(&self, status: ExitStatus) {
        self.0.exit.send_if_modified(|exit| {
            let first = exit.is_none();
            if first {
                *exit = Some(status);
            }
            first
        });
    }
}

struct FakeChild {
    process: Arc<Shared>,
    exit: watch::Receiver<Option<ExitStatus>>,
}

impl ChildProcess for FakeChild {
    fn wait(&mut self) -> Pin<Box<dyn Future<Output = std::io::Result<ExitStatus>> + Send + '_>> {
        Box::pin(async move {
            match self.exit.wait_for(Option::is_some).await {
                Ok(status) => Ok(status.expect("waited for an exit")),
                Err(_) => Err(std::io::Error::other("the fake process was dropped")),
            }
        })
    }

    /// Any signal not ignored ends it, as their default action does.
    fn signal(&self, signal: Signal, group: bool) -> nix::Result<()> {
        let process = FakeProcess(self.process.clone());
        let alive = process.exited().is_none();
        let survivors = &process.0.survivors;
        let reaches = alive || (group && survivors.load(Ordering::SeqCst));
        if !reaches {
            return Err(Errno::ESRCH);
        }
        process.0.signals.lock().unwrap().push(signal);
        if group && signal == Signal::SIGKILL {
            survivors.store(false, Ordering::SeqCst);
        }
        let ignored = process.0.ignored.lock().unwrap().contains(&signal);
        if alive && (signal == Signal::SIGKILL || !ignored) {
            process.end(ExitStatus::from_raw(signal as i32));
        }
        Ok(())
    }

    fn group_alive(&self) -> bool {
        self.exit.borrow().is_none() || self.process.survivors.load(Ordering::SeqCst)
    }
}
