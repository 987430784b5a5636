//! The daemon's side of its link to the keeper (see [`crate::keeper`]):
//! what it has the keeper keep, and the exits of processes the keeper
//! reaped for it (those it took over from a daemon that ended).

use crate::keeper::wire::{self, FromKeeper, Received, ToKeeper};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, oneshot, Notify};

pub struct KeeperLink {
    fd: Arc<AsyncFd<OwnedFd>>,
    queue: mpsc::UnboundedSender<Outgoing>,
    /// Wait statuses the keeper reported, by pid, until asked for.
    exits: Mutex<HashMap<u32, ExitStatus>>,
    exited: Notify,
    /// The keeper is gone: nothing is sent, no status will come.
    gone: Arc<AtomicBool>,
}

/// Something the keeper keeps for as long as this lives: dropped, the
/// keeper lets go of it.
pub struct KeptEntry {
    keeper: Arc<KeeperLink>,
    key: String,
}

impl KeptEntry {
    /// For what the keeper already keeps under `key`.
    pub fn new(keeper: &Arc<KeeperLink>, key: String) -> KeptEntry {
        KeptEntry {
            keeper: keeper.clone(),
            key,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn keeper(&self) -> &KeeperLink {
        &self.keeper
    }
}

impl Drop for KeptEntry {
    fn drop(&mut self) {
        self.keeper.forget(std::mem::take(&mut self.key));
    }
}

enum Outgoing {
    Message(Vec<u8>, Vec<OwnedFd>),
    Flushed(oneshot::Sender<()>),
}

impl KeeperLink {
    /// Takes the link over and starts reading and writing it (within the
    /// daemon's runtime).
    pub fn connect(fd: OwnedFd) -> io::Result<Arc<KeeperLink>> {
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true)?;
        // SAFETY: an OwnedFd keeps its descriptor for its whole life.
        let fd = Arc::new(unsafe {
            AsyncFd::register_with_interest(
                OwnedFd::from(std),
                Interest::READABLE | Interest::WRITABLE,
            )
        }?);
        let (queue, outgoing) = mpsc::unbounded_channel();
        let link = Arc::new(KeeperLink {
            fd,
            queue,
            exits: Mutex::new(HashMap::new()),
            exited: Notify::new(),
            gone: Arc::new(AtomicBool::new(false)),
        });
        tokio::spawn(write(link.fd.clone(), outgoing, link.gone.clone()));
        tokio::spawn(read(Arc::downgrade(&link)));
        Ok(link)
    }

    /// The descriptor, which a re-executing daemon keeps open.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.get_ref().as_raw_fd()
    }

    /// Tells the keeper the daemon serves, and which binary it runs.
    pub fn hello(&self) {
        if let Ok(exe) = std::env::current_exe() {
            self.send(&ToKeeper::Hello { exe }, vec![]);
        }
    }

    /// Has the keeper keep duplicates of `fds` under `key`.
    pub fn keep(&self, key: String, pid: Option<u32>, meta: serde_json::Value, fds: &[BorrowedFd]) {
        if fds.len() > wire::MAX_FDS {
            tracing::warn!(
                key,
                "{} descriptors are more than the keeper takes at once; a crash would close them",
                fds.len()
            );
            return;
        }
        let dups: io::Result<Vec<OwnedFd>> = fds.iter().map(|fd| fd.try_clone_to_owned()).collect();
        match dups {
            Ok(dups) => self.send(&ToKeeper::Keep { key, pid, meta }, dups),
            Err(e) => tracing::warn!(key, "cannot give the keeper its descriptors: {e}"),
        }
    }

    pub fn note(&self, key: String, meta: serde_json::Value) {
        self.send(&ToKeeper::Note { key, meta }, vec![]);
    }

    pub fn forget(&self, key: String) {
        self.send(&ToKeeper::Forget { key }, vec![]);
    }

    /// Tells the keeper the daemon ends as asked, once it has heard it.
    pub async fn ending(&self) {
        self.send(&ToKeeper::Ending, vec![]);
        self.flush().await;
    }

    fn send(&self, message: &ToKeeper, fds: Vec<OwnedFd>) {
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
        match serde_json::to_vec(message) {
            Ok(bytes) if bytes.len() <= wire::MAX_MESSAGE => {
                let _ = self.queue.send(Outgoing::Message(bytes, fds));
            }
            Ok(bytes) => tracing::warn!(
                "a message of {} bytes is more than the keeper takes; a crash would lose what it says",
                bytes.len()
            ),
            Err(_) => {}
        }
    }

    /// Waits until everything asked so far has been sent (before the
    /// daemon re-executes itself: what is queued would not outlive it).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Outgoing::Flushed(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), flushed).await;
        }
    }

    /// A status the keeper reported before this daemon ran.
    pub fn exited(&self, pid: u32, status: i32) {
        self.exits
            .lock()
            .unwrap()
            .insert(pid, ExitStatus::from_raw(status));
        self.exited.notify_waiters();
    }

    /// The wait status of `pid`, a process the keeper reaps, once it has;
    /// `None` if it does not say within `limit` (or is gone).
    pub async fn exit_status(&self, pid: u32, limit: Duration) -> Option<ExitStatus> {
        let wait = async {
            loop {
                let notified = self.exited.notified();
                if let Some(status) = self.exits.lock().unwrap().remove(&pid) {
                    return Some(status);
                }
                if self.gone.load(Ordering::Relaxed) {
                    return None;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }
}

async fn write(
    fd: Arc<AsyncFd<OwnedFd>>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    gone: Arc<AtomicBool>,
) {
    while let Some(next) = outgoing.recv().await {
        let (bytes, fds) = match next {
            Outgoing::Message(bytes, fds) => (bytes, fds),
            Outgoing::Flushed(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if gone.load(Ordering::Relaxed) {
            continue;
        }
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let sent = fd
            .async_io(Interest::WRITABLE, |fd| {
                wire::send_bytes(fd.as_fd(), &bytes, &raw)
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(
                "the keeper is gone ({e}): a crash of this daemon would stop its apps' output"
            );
            gone.store(true, Ordering::Relaxed);
        }
    }
}

async fn read(link: std::sync::Weak<KeeperLink>) {
    let Some(fd) = link.upgrade().map(|l| l.fd.clone()) else {
        return;
    };
    loop {
        let received = fd
            .async_io(Interest::READABLE, |fd| {
                wire::recv::<FromKeeper>(fd.as_fd())
            })
            .await;
        let Some(link) = link.upgrade() else {
            return;
        };
        match received {
            Ok(Received::Message(FromKeeper::Exited { pid, status }, _)) => {
                link.exited(pid, status);
            }
            Ok(Received::Bad(why)) => tracing::warn!("from the keeper: {why}"),
            Ok(Received::Closed) | Err(_) => {
                tracing::warn!(
                    "the keeper is gone: a crash of this daemon would stop its apps' output"
                );
                link.gone.store(true, Ordering::Relaxed);
                link.exited.notify_waiters();
                return;
            }
        }
    }
}
