//! Telling systemd how the daemon is doing when it runs as a `Type=notify`
//! service (the unit `rsup startup` writes, or `--no-daemon` in a unit):
//! ready once the first apps are up, reloading around a reload of every
//! app (`systemctl reload`), stopping, and the watchdog. Without
//! `NOTIFY_SOCKET` every call does nothing.

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// Whether the daemon runs as a systemd service (`Type=notify`).
pub fn is_service() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// The daemon serves, and the apps it was started with are up.
pub fn ready(apps: usize) {
    let status = format!("{apps} app(s) started");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// The daemon stops every app, then exits.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Held while every app reloads: systemd shows the unit as reloading and
/// `systemctl reload` returns when this is dropped.
pub struct Reloading(());

impl Reloading {
    pub fn begin() -> Reloading {
        // systemd 253 and later insist on the monotonic time with it.
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
        Reloading(())
    }
}

impl Drop for Reloading {
    fn drop(&mut self) {
        send(&[NotifyState::Ready]);
    }
}

/// Pings the watchdog at half its interval for as long as the daemon's
/// event loop runs, when the unit sets `WatchdogSec`: a stuck loop stops
/// the pings and systemd restarts the service.
pub async fn keep_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}
