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

/// `WATCHDOG_USEC`, if the watchdog is meant for this process: systemd
/// names the service's main process in `WATCHDOG_PID`.
fn watchdog_interval(kept: bool) -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        let pid: u32 = pid.parse().ok()?;
        let parent = std::os::unix::process::parent_id();
        if pid != std::process::id() && !(kept && pid == parent) {
            return None;
        }
    }
    (usec > 0).then(|| std::time::Duration::from_micros(usec))
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
/// the pings and systemd restarts the service. A daemon under its
/// `kept`er (the unit's main process) pings for it.
pub async fn keep_watchdog(kept: bool) {
    let Some(interval) = watchdog_interval(kept) else {
        return;
    };
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}
