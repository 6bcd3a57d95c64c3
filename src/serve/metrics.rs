//! Counters `serve` keeps in memory and `GET /metrics` renders in the Prometheus text format.
//! Whatever the state store already knows (operations by status) is read from it at render time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the fire-lag histogram buckets.
pub const FIRE_LAG_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

#[derive(Debug, Default)]
pub struct Metrics {
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pub fires: AtomicU64,
    /// Fires not run because of `overlap: skip`, or claimed by another node.
    pub fires_skipped: AtomicU64,
    fire_lag_buckets: [AtomicU64; FIRE_LAG_BUCKETS.len()],
    fire_lag_count: AtomicU64,
    fire_lag_sum_micros: AtomicU64,
    pub webhooks_accepted: AtomicU64,
    pub webhooks_rejected: AtomicU64,
    pub records_succeeded: AtomicU64,
    pub records_failed: AtomicU64,
    pub records_skipped: AtomicU64,
    pub deliveries_delivered: AtomicU64,
    pub deliveries_failed: AtomicU64,
    /// Org requests retried because the org said so (throttling, transient errors).
    pub org_retries: AtomicU64,
}

impl Metrics {
    pub fn reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A fire that started an operation `lag` after its instant.
    pub fn fire(&self, lag: Duration) {
        self.fires.fetch_add(1, Ordering::Relaxed);
        let seconds = lag.as_secs_f64();
        for (bucket, bound) in self.fire_lag_buckets.iter().zip(FIRE_LAG_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.fire_lag_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.fire_lag_sum_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    pub fn fire_skipped(&self) {
        self.fires_skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn webhook(&self, accepted: bool) {
        let counter = if accepted {
            &self.webhooks_accepted
        } else {
            &self.webhooks_rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative bucket counts (`le` order), the count and the sum in seconds.
    pub fn fire_lag(&self) -> (Vec<u64>, u64, f64) {
        let buckets = self
            .fire_lag_buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let sum = self.fire_lag_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (buckets, self.fire_lag_count.load(Ordering::Relaxed), sum)
    }
}
