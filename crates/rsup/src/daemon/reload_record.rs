//! What each app's reloads came to, for `/metrics`: how many ended well
//! or failed, how long they took, and how the last one ended. Every reload
//! counts, whoever asked for it (a client, `cron_restart`, `watch`, a
//! config applied with reload).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    pub app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    app: String,
    result: &'static str,
}

/// Reloads replace processes one batch at a time, each waiting for the
/// new one to be ready: from a fraction of a second to minutes.
fn duration_histogram() -> Histogram {
    Histogram::new([
        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ])
}

/// Kept for the daemon's life; the families are shared handles, so a
/// scrape registers clones of them.
#[derive(Debug)]
pub struct ReloadRecord {
    count: Family<ResultLabels, Counter>,
    durations: Family<AppLabel, Histogram, fn() -> Histogram>,
    last_ok: Family<AppLabel, Gauge>,
    last_at: Family<AppLabel, Gauge<f64, AtomicU64>>,
}

impl Default for ReloadRecord {
    fn default() -> Self {
        ReloadRecord {
            count: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            last_ok: Family::default(),
            last_at: Family::default(),
        }
    }
}

impl ReloadRecord {
    /// One reload of `app`, which took `took` and ended at `at_ms` (ms
    /// since the Unix epoch).
    pub fn record(&self, app: &str, ok: bool, took: Duration, at_ms: u64) {
        let label = AppLabel { app: app.into() };
        let result = if ok { "ok" } else { "failed" };
        self.count
            .get_or_create(&ResultLabels {
                app: app.into(),
                result,
            })
            .inc();
        self.durations
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        self.last_ok.get_or_create(&label).set(ok.into());
        self.last_at
            .get_or_create(&label)
            .set(at_ms as f64 / 1000.0);
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rsup_reloads",
            "Reloads of each app, by result (ok, failed)",
            self.count.clone(),
        );
        registry.register(
            "rsup_reload_duration_seconds",
            "How long each reload of an app took",
            self.durations.clone(),
        );
        registry.register(
            "rsup_last_reload_success",
            "1 when the app's last reload succeeded, 0 when it failed",
            self.last_ok.clone(),
        );
        registry.register(
            "rsup_last_reload_timestamp_seconds",
            "When the app's last reload ended, in seconds since the Unix epoch",
            self.last_at.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(record: &ReloadRecord) -> String {
        let mut registry = Registry::default();
        record.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn counts_each_result_and_keeps_the_last() {
        let record = ReloadRecord::default();
        record.record("api", true, Duration::from_millis(300), 1_000_000);
        record.record("api", false, Duration::from_secs(4), 2_000_000);
        let out = text(&record);
        assert!(out.contains("rsup_reloads_total{app=\"api\",result=\"ok\"} 1\n"));
        assert!(out.contains("rsup_reloads_total{app=\"api\",result=\"failed\"} 1\n"));
        assert!(out.contains("rsup_reload_duration_seconds_count{app=\"api\"} 2\n"));
        assert!(out.contains("rsup_reload_duration_seconds_sum{app=\"api\"} 4.3\n"));
        assert!(out.contains("rsup_last_reload_success{app=\"api\"} 0\n"));
        assert!(out.contains("rsup_last_reload_timestamp_seconds{app=\"api\"} 2000.0\n"));
    }
}
