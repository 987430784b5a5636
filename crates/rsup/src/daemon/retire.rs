//! The daemon's seat in `RSUP_HOME` (its lock and control socket), and
//! what `rsup update` waits for before the daemon re-executes itself (see
//! [`super::reexec`]): the control requests running, counted here, and
//! the reloads. While it prepares, only requests that read are let in.

use super::app::AppHandle;
use super::lifecycle::Daemon;
use nix::fcntl::Flock;
use rsup_proto::control::Request;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::sleep;

const POLL: Duration = Duration::from_millis(50);

/// The daemon's place in `RSUP_HOME`.
pub struct Seat {
    /// The pid file, open and locked.
    pub lock: Flock<File>,
    /// A duplicate of the control socket's listener.
    pub control: OwnedFd,
}

/// Whether the daemon may be updated, its seat, and the requests it runs.
pub struct Retirement {
    /// Why this daemon is not to be updated, if it is not.
    refusal: Option<String>,
    /// Control requests running, other than those that only read.
    busy: watch::Sender<usize>,
    seat: Mutex<Option<Seat>>,
}

impl Retirement {
    /// `foreground`: started with its apps (`--no-daemon`, or by systemd).
    pub fn new(foreground: bool) -> Retirement {
        // A container's or a terminal's rsup is replaced by restarting it,
        // with the health endpoints and options it was started with; the
        // systemd unit's daemon re-executes itself as any other.
        let refusal = (foreground && !super::systemd::is_service()).then(|| {
            "this daemon runs in the foreground (--no-daemon) and is not updated in place; restart it instead".to_string()
        });
        Retirement {
            refusal,
            busy: watch::Sender::new(0),
            seat: Mutex::new(None),
        }
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

/// A control request running; an update begins once none is left.
pub struct Busy<'a>(&'a watch::Sender<usize>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Lets a control request run, counted while it does. While the daemon
/// prepares to re-execute itself, only requests that read (ping, list)
/// run; the others are refused, as the next image would not finish them.
pub fn admit<'a>(daemon: &'a Daemon, request: &Request) -> Result<Option<Busy<'a>>, String> {
    if matches!(request, Request::Ping | Request::List { .. }) {
        return Ok(None);
    }
    hold(daemon).map(Some).ok_or_else(|| {
        "this daemon is being updated (rsup update); try again once that is done".into()
    })
}

/// Counts work an update must wait for (a request, a recovery); `None`
/// while the daemon prepares one.
pub fn hold(daemon: &Daemon) -> Option<Busy<'_>> {
    let busy = &daemon.retirement.busy;
    let retiring = &daemon.apps.env.retiring;
    // Checked and counted under the counter's lock, so that an update
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

#[cfg(test)]
mod tests {
    use super::*;
    use rsup_proto::control::Target;

    #[test]
    fn while_updating_only_reads_run_and_running_work_is_counted() {
        let home = tempfile::tempdir().unwrap();
        let daemon = Daemon::for_tests(home.path());
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
