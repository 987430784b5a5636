//! PM2's `max_memory_restart`: every `PM2_WORKER_INTERVAL` milliseconds
//! (30 s unless the daemon's environment says otherwise, as PM2 reads it),
//! each online instance whose process uses more resident memory than its
//! limit is replaced. PM2 reloads it: an app that serves on the sockets
//! rsup holds (or says `ready`) is reloaded, the new process starting
//! beside the old one, which stops once the new one is ready, so no request
//! is refused; any other is restarted at once, as PM2's reload does in fork
//! mode, since there is nothing to hand over and waiting for a readiness
//! that never comes would only let it grow.

use super::app::{Op, Selection};
use super::apps::Apps;
use super::metrics::resident_bytes;
use rsup_proto::app::Status;
use rsup_proto::control::{ReloadOptions, SpecUpdate};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// PM2's default interval between two checks.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// The interval `PM2_WORKER_INTERVAL` (milliseconds) asks for; PM2's
/// default when it is unset, and when it is no positive whole number (said
/// in the daemon's log).
pub fn interval_from_env() -> Duration {
    let value = std::env::var("PM2_WORKER_INTERVAL").ok();
    parse_interval(value.as_deref()).unwrap_or_else(|bad| {
        tracing::warn!(
            "PM2_WORKER_INTERVAL is {bad:?}, not a number of milliseconds; checking memory every {} s",
            DEFAULT_INTERVAL.as_secs()
        );
        DEFAULT_INTERVAL
    })
}

fn parse_interval(value: Option<&str>) -> Result<Duration, String> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(DEFAULT_INTERVAL);
    };
    match text.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(text.to_string()),
    }
}

/// Checks every `every`, for the daemon's whole life.
pub async fn watch(apps: Arc<Apps>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    // A slow round (a reload takes seconds) is not followed by a burst.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        check(&apps).await;
    }
}

/// Reloads, one after another, the instances above their limit now.
async fn check(apps: &Apps) {
    for app in apps.all() {
        for h in app.instances() {
            // Not while the daemon prepares to re-execute itself.
            if *apps.env.retiring.borrow() {
                return;
            }
            let state = h.state();
            let (Some(limit), Some(pid), Status::Online) =
                (state.spec.max_memory_restart_bytes, state.pid, state.status)
            else {
                continue;
            };
            let Some(used) = resident_bytes(pid).filter(|used| *used > limit) else {
                continue;
            };
            let (name, id) = (&h.identity.name, h.identity.id);
            tracing::warn!(
                app = %name,
                id,
                "pid {pid} uses {used} bytes, more than max_memory_restart ({limit}); replacing it"
            );
            let serves =
                state.spec.wait_ready || !app.context.sockets.lock().unwrap().inodes().is_empty();
            let selection = Selection::Ids(vec![id]);
            let how = if serves { "reloaded" } else { "restarted" };
            let op = if serves {
                let (progress, _) = tokio::sync::mpsc::unbounded_channel();
                Op::Reload {
                    selection,
                    options: ReloadOptions::default(),
                    update: SpecUpdate::default(),
                    progress,
                }
            } else {
                Op::Restart {
                    selection,
                    update: SpecUpdate::default(),
                }
            };
            match app.run(op).await {
                Ok(_) => tracing::info!(
                    app = %name,
                    id,
                    "{how} for memory: pid {pid} -> {}",
                    h.state().pid.map_or_else(|| "none".into(), |p| p.to_string())
                ),
                // Tried again at the next check if it is still too big.
                Err(e) => tracing::warn!(app = %name, id, "replacing for memory failed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_pm2s_variable_in_milliseconds() {
        assert_eq!(parse_interval(None), Ok(DEFAULT_INTERVAL));
        assert_eq!(parse_interval(Some("")), Ok(DEFAULT_INTERVAL));
        assert_eq!(
            parse_interval(Some("1000")),
            Ok(Duration::from_millis(1000))
        );
        assert_eq!(parse_interval(Some("0")), Err("0".into()));
        assert_eq!(parse_interval(Some("1s")), Err("1s".into()));
    }
}
