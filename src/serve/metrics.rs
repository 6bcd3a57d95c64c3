//! Counters `serve` keeps in memory and `GET /metrics` renders in the Prometheus text format.
//! Whatever the state store already knows (operations by status) is read from it at render time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::OperationStatus;

/// Upper bounds (seconds) of the fire-lag histogram buckets.
pub const FIRE_LAG_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The `Content-Type` of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `/metrics` reports besides the counters, read when it is rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Operations by status from the state store; `None` when the store could not be read
    /// (then `fetchflow_state_store_up` is 0 and the operation gauges are left out).
    pub operations_by_status: Option<Vec<(OperationStatus, u64)>>,
    /// Workflows that run (a valid version is active).
    pub workflows_loaded: u64,
    /// Workflow files whose current content does not compile.
    pub files_in_error: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pub fires: AtomicU64,
    /// Fires not run because of `overlap: skip`, or claimed by another node.
    pub fires_skipped: AtomicU64,
    /// Fires missed during downtime and run at start-up (their lag is the downtime, so they
    /// stay out of the lag histogram).
    pub missed_fires: AtomicU64,
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
    /// An engine retry observer counting every retried org request in `org_retries`, and
    /// logging throttling with the wait the org asked for.
    pub fn retry_observer(self: &std::sync::Arc<Self>) -> crate::engine::RetryObserver {
        let metrics = self.clone();
        std::sync::Arc::new(move |error: &crate::org::OrgError, wait: Duration| {
            metrics.org_retries.fetch_add(1, Ordering::Relaxed);
            if error.retry_after.is_some() {
                tracing::warn!(
                    code = error.code,
                    wait_ms = wait.as_millis() as u64,
                    "The org is throttling; waiting as told (Retry-After)."
                );
            } else {
                tracing::debug!(
                    code = error.code,
                    wait_ms = wait.as_millis() as u64,
                    "Retrying an org request after a transient error."
                );
            }
        })
    }

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

impl Metrics {
    /// Every counter and `gauges` in the Prometheus text format 0.0.4, names prefixed
    /// `fetchflow_`, each family with its `HELP` and `TYPE` lines.
    pub fn render(&self, gauges: &Gauges) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::with_capacity(4096);
        let store_up = gauges.operations_by_status.is_some();
        family(
            &mut out,
            "fetchflow_state_store_up",
            "gauge",
            "Whether the state store could be read for this scrape (1) or not (0).",
            &[("", u64::from(store_up))],
        );
        if let Some(counts) = &gauges.operations_by_status {
            let samples: Vec<(String, u64)> = OperationStatus::ALL
                .iter()
                .map(|status| {
                    let count = counts
                        .iter()
                        .filter(|(counted, _)| counted == status)
                        .map(|(_, count)| *count)
                        .sum();
                    (format!("status=\"{}\"", status.as_str()), count)
                })
                .collect();
            family_owned(
                &mut out,
                "fetchflow_operations",
                "gauge",
                "Operations in the state store, by status.",
                &samples,
            );
        }
        family(
            &mut out,
            "fetchflow_records_total",
            "counter",
            "Records processed by operations in this process, by result.",
            &[
                ("result=\"succeeded\"", load(&self.records_succeeded)),
                ("result=\"failed\"", load(&self.records_failed)),
                ("result=\"skipped\"", load(&self.records_skipped)),
            ],
        );
        family(
            &mut out,
            "fetchflow_callback_deliveries_total",
            "counter",
            "Callback delivery attempts, by result.",
            &[
                ("result=\"delivered\"", load(&self.deliveries_delivered)),
                ("result=\"failed\"", load(&self.deliveries_failed)),
            ],
        );
        family(
            &mut out,
            "fetchflow_reloads_total",
            "counter",
            "Workflow file reloads, by result.",
            &[
                ("result=\"ok\"", load(&self.reloads_ok)),
                ("result=\"failed\"", load(&self.reloads_failed)),
            ],
        );
        family(
            &mut out,
            "fetchflow_fires_total",
            "counter",
            "Schedule fires that started an operation.",
            &[("", load(&self.fires))],
        );
        family(
            &mut out,
            "fetchflow_missed_fires_total",
            "counter",
            "Fires missed during downtime and run once at start-up (not in the lag histogram).",
            &[("", load(&self.missed_fires))],
        );
        family(
            &mut out,
            "fetchflow_fires_skipped_total",
            "counter",
            "Schedule fires not run (overlap: skip, or claimed by another node).",
            &[("", load(&self.fires_skipped))],
        );
        self.render_fire_lag(&mut out);
        family(
            &mut out,
            "fetchflow_webhooks_total",
            "counter",
            "Webhook requests, by result.",
            &[
                ("result=\"accepted\"", load(&self.webhooks_accepted)),
                ("result=\"rejected\"", load(&self.webhooks_rejected)),
            ],
        );
        family(
            &mut out,
            "fetchflow_org_retries_total",
            "counter",
            "Org requests retried because the org asked (throttling, transient errors).",
            &[("", load(&self.org_retries))],
        );
        family(
            &mut out,
            "fetchflow_workflows_loaded",
            "gauge",
            "Workflows with an active valid version.",
            &[("", gauges.workflows_loaded)],
        );
        family(
            &mut out,
            "fetchflow_workflow_files_in_error",
            "gauge",
            "Workflow files whose current content does not compile.",
            &[("", gauges.files_in_error)],
        );
        out
    }

    fn render_fire_lag(&self, out: &mut String) {
        const NAME: &str = "fetchflow_fire_lag_seconds";
        let (buckets, count, sum) = self.fire_lag();
        let _ = writeln!(
            out,
            "# HELP {NAME} Delay between a fire instant and the start of its operation."
        );
        let _ = writeln!(out, "# TYPE {NAME} histogram");
        for (bound, cumulative) in FIRE_LAG_BUCKETS.iter().zip(&buckets) {
            let _ = writeln!(out, "{NAME}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{NAME}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{NAME}_sum {sum}");
        let _ = writeln!(out, "{NAME}_count {count}");
    }
}

/// One metric family: `HELP`, `TYPE` and a sample per label set (`""` = no labels).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn family_owned(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let borrowed: Vec<(&str, u64)> = samples
        .iter()
        .map(|(labels, value)| (labels.as_str(), *value))
        .collect();
    family(out, name, kind, help, &borrowed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_store_is_reported_and_its_gauges_left_out() {
        let metrics = Metrics::default();
        metrics.webhook(true);
        let text = metrics.render(&Gauges::default());
        assert!(text.contains("fetchflow_state_store_up 0\n"), "{text}");
        assert!(!text.contains("fetchflow_operations{"), "{text}");
        assert!(
            text.contains("fetchflow_webhooks_total{result=\"accepted\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn every_status_has_a_sample_and_counts_are_summed_per_status() {
        let metrics = Metrics::default();
        let gauges = Gauges {
            operations_by_status: Some(vec![
                (OperationStatus::Failed, 2),
                (OperationStatus::Waiting, 5),
            ]),
            workflows_loaded: 3,
            files_in_error: 1,
        };
        let text = metrics.render(&gauges);
        for status in OperationStatus::ALL {
            assert!(
                text.contains(&format!(
                    "fetchflow_operations{{status=\"{}\"}} ",
                    status.as_str()
                )),
                "{text}"
            );
        }
        assert!(text.contains("fetchflow_operations{status=\"failed\"} 2\n"));
        assert!(text.contains("fetchflow_operations{status=\"waiting\"} 5\n"));
        assert!(text.contains("fetchflow_operations{status=\"canceled\"} 0\n"));
        assert!(text.contains("# TYPE fetchflow_fire_lag_seconds histogram\n"));
        assert!(text.contains("fetchflow_workflows_loaded 3\n"));
        assert!(text.contains("fetchflow_workflow_files_in_error 1\n"));
    }
}
