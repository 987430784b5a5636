//! Cron patterns (`cron_restart`), read by croner as PM2 reads them: five
//! fields, or six with seconds first, and nicknames such as `@hourly`.

use chrono::{DateTime, Local};
use croner::Cron;
use std::str::FromStr;
use std::time::Duration;

/// Whether `pattern` is one croner reads; the reason if not.
pub fn check(pattern: &str) -> Result<(), String> {
    Cron::from_str(pattern)
        .map(|_| ())
        .map_err(|e| format!("invalid cron pattern {pattern:?}: {e}"))
}

/// How long from `now` until the pattern next fires (local time, as cron
/// has it); `None` if it never does again.
pub fn next_delay(pattern: &str, now: DateTime<Local>) -> Option<Duration> {
    let cron = Cron::from_str(pattern).ok()?;
    let next = cron.find_next_occurrence(&now, false).ok()?;
    (next - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn patterns_with_and_without_seconds() {
        let now = Local.with_ymd_and_hms(2026, 1, 5, 10, 0, 0).unwrap();
        assert_eq!(
            next_delay("*/2 * * * * *", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            next_delay("30 10 * * *", now),
            Some(Duration::from_secs(30 * 60))
        );
        assert_eq!(next_delay("@hourly", now), Some(Duration::from_secs(3600)));
        assert!(check("0 0 * * FRI").is_ok());
        let e = check("61 * * * *").unwrap_err();
        assert!(e.starts_with("invalid cron pattern \"61 * * * *\""), "{e}");
        assert!(check("every day").is_err());
    }
}
