//! What happens after a process exits on its own: PM2's rules for
//! `autorestart`, `stop_exit_codes`, `max_restarts`/`min_uptime`,
//! `restart_delay` and `exp_backoff_restart_delay`. Pure, so the rules are
//! tested directly.

use rsup_proto::app::{defaults, AppSpec};
use std::time::Duration;

/// Memory of earlier crashes that the next decision depends on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CrashHistory {
    /// Consecutive exits that came sooner than `min_uptime` after start.
    pub unstable_restarts: u32,
    /// Delay used for the previous backoff restart; 0 when none is running.
    pub last_backoff_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start again after this delay.
    Restart(Duration),
    /// `autorestart` is off, or the exit code is one of `stop_exit_codes`:
    /// stay stopped.
    Stay,
    /// Too many unstable restarts: stay down as `errored`.
    GiveUp,
}

/// Decides what to do about an exit with `code` (`None` when killed by a
/// signal) after `uptime`, updating `history`.
pub fn decide(
    spec: &AppSpec,
    uptime: Duration,
    code: Option<i32>,
    history: &mut CrashHistory,
) -> Decision {
    let uptime_ms = uptime.as_millis() as u64;
    if uptime_ms < spec.min_uptime_ms {
        history.unstable_restarts += 1;
    } else {
        history.unstable_restarts = 0;
    }
    if uptime_ms >= defaults::EXP_BACKOFF_RESET_MS {
        history.last_backoff_ms = 0;
    }
    let stop_code = code.is_some_and(|c| spec.stop_exit_codes.contains(&c));
    if !spec.autorestart || stop_code {
        return Decision::Stay;
    }
    if history.unstable_restarts > spec.max_restarts {
        return Decision::GiveUp;
    }
    let delay_ms = if spec.exp_backoff_restart_delay_ms > 0 {
        let next = if history.last_backoff_ms == 0 {
            spec.exp_backoff_restart_delay_ms
        } else {
            (history.last_backoff_ms as f64 * 1.5) as u64
        };
        let next = next.min(defaults::EXP_BACKOFF_MAX_MS);
        history.last_backoff_ms = next;
        next
    } else {
        spec.restart_delay_ms
    };
    Decision::Restart(Duration::from_millis(delay_ms))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub use crate::test_support::spec;

    const FAST: Duration = Duration::from_millis(10);

    #[test]
    fn gives_up_after_max_restarts_unstable_exits() {
        let mut s = spec();
        s.max_restarts = 3;
        let mut h = CrashHistory::default();
        for _ in 0..3 {
            assert_eq!(
                decide(&s, FAST, Some(1), &mut h),
                Decision::Restart(Duration::ZERO)
            );
        }
        assert_eq!(decide(&s, FAST, Some(1), &mut h), Decision::GiveUp);
    }

    #[test]
    fn a_stable_run_resets_the_unstable_count() {
        let mut s = spec();
        s.max_restarts = 1;
        let mut h = CrashHistory::default();
        decide(&s, FAST, Some(1), &mut h);
        assert_eq!(h.unstable_restarts, 1);
        decide(&s, Duration::from_secs(2), Some(1), &mut h);
        assert_eq!(h.unstable_restarts, 0);
        assert!(matches!(
            decide(&s, FAST, Some(1), &mut h),
            Decision::Restart(_)
        ));
    }

    #[test]
    fn no_autorestart_stays_down() {
        let mut s = spec();
        s.autorestart = false;
        assert_eq!(
            decide(&s, FAST, Some(1), &mut CrashHistory::default()),
            Decision::Stay
        );
    }

    #[test]
    fn stop_exit_codes_stay_down_and_others_restart() {
        let mut s = spec();
        s.stop_exit_codes = vec![12, 42];
        let mut h = CrashHistory::default();
        assert_eq!(decide(&s, FAST, Some(42), &mut h), Decision::Stay);
        assert_eq!(decide(&s, FAST, Some(12), &mut h), Decision::Stay);
        assert_eq!(
            decide(&s, FAST, Some(3), &mut h),
            Decision::Restart(Duration::ZERO)
        );
        // Killed by a signal: no exit code to match.
        assert_eq!(
            decide(&s, FAST, None, &mut h),
            Decision::Restart(Duration::ZERO)
        );
    }

    #[test]
    fn exponential_backoff_grows_by_half_caps_and_resets() {
        let mut s = spec();
        s.exp_backoff_restart_delay_ms = 100;
        s.max_restarts = 1000;
        let mut h = CrashHistory::default();
        let mut delays = vec![];
        for _ in 0..4 {
            match decide(&s, FAST, Some(1), &mut h) {
                Decision::Restart(d) => delays.push(d.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [100, 150, 225, 337]);
        for _ in 0..30 {
            decide(&s, FAST, Some(1), &mut h);
        }
        assert_eq!(h.last_backoff_ms, defaults::EXP_BACKOFF_MAX_MS);
        // Thirty seconds up: the next crash starts the backoff over.
        assert_eq!(
            decide(&s, Duration::from_secs(31), Some(1), &mut h),
            Decision::Restart(Duration::from_millis(100))
        );
    }

    #[test]
    fn fixed_restart_delay() {
        let mut s = spec();
        s.restart_delay_ms = 250;
        assert_eq!(
            decide(&s, FAST, Some(1), &mut CrashHistory::default()),
            Decision::Restart(Duration::from_millis(250))
        );
    }
}
