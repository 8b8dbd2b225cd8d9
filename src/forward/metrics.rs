//! The forwarder's series on `/metrics`, one `target` label per target:
//!
//! - `tidemark_forward_samples_sent_total`: delivered (2xx).
//! - `tidemark_forward_samples_failed_total`: rejected by the target for
//!   good (4xx other than 429), or of series missing from the index.
//! - `tidemark_forward_samples_dropped_total`: dropped before sending
//!   (queue full, queue write failed, damaged queue record, feed overflow).
//! - `tidemark_forward_retries_total`: failed attempts that were retried.
//! - `tidemark_forward_queue_bytes`, `tidemark_forward_queue_samples`:
//!   what waits on disk (not yet acknowledged).
//! - `tidemark_forward_oldest_unsent_age_seconds`: how long the oldest
//!   unacknowledged batch has been queued (0 when the sender is idle): the
//!   lag.
//! - `tidemark_forward_last_success_timestamp_seconds`.
//!
//! Invariant: gauges are computed when scraped (no background updater);
//! counters are the sender's own handles.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};

use super::sender::Target;

/// Counters handed to each target at creation.
pub struct Counters {
    pub sent: IntCounterVec,
    pub failed: IntCounterVec,
    pub dropped: IntCounterVec,
    pub retried: IntCounterVec,
}

impl Counters {
    pub fn new() -> Self {
        let c = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["target"])
                .expect("static metric definition is valid")
        };
        Self {
            sent: c(
                "tidemark_forward_samples_sent_total",
                "Samples delivered to the remote-write target (2xx).",
            ),
            failed: c(
                "tidemark_forward_samples_failed_total",
                "Samples the target rejected for good (4xx other than 429); not retried.",
            ),
            dropped: c(
                "tidemark_forward_samples_dropped_total",
                "Samples dropped before sending: queue full (oldest dropped), queue write failure, damaged queue record.",
            ),
            retried: c(
                "tidemark_forward_retries_total",
                "Failed remote-write attempts that were retried (5xx, 429, network errors).",
            ),
        }
    }
}

/// Registered in the `/metrics` registry.
pub struct ForwardCollector {
    counters: Counters,
    queue_bytes: IntGaugeVec,
    queue_samples: IntGaugeVec,
    age: GaugeVec,
    last_success: GaugeVec,
    targets: Vec<Arc<Target>>,
}

impl ForwardCollector {
    pub fn new(counters: Counters, targets: Vec<Arc<Target>>) -> Self {
        let g = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["target"])
                .expect("static metric definition is valid")
        };
        let f = |name: &str, help: &str| {
            GaugeVec::new(Opts::new(name, help), &["target"])
                .expect("static metric definition is valid")
        };
        Self {
            counters,
            queue_bytes: g(
                "tidemark_forward_queue_bytes",
                "Bytes of forward queue on disk not yet acknowledged by the target.",
            ),
            queue_samples: g(
                "tidemark_forward_queue_samples",
                "Samples in the forward queue not yet acknowledged by the target.",
            ),
            age: f(
                "tidemark_forward_oldest_unsent_age_seconds",
                "Time the oldest unacknowledged batch has waited in the queue (0 when idle).",
            ),
            last_success: f(
                "tidemark_forward_last_success_timestamp_seconds",
                "Unix time of the last delivered batch (0: none since start).",
            ),
            targets,
        }
    }

    /// Sets the gauges from the targets' state at `now_ms`.
    pub fn update(&self, now_ms: i64) {
        for t in &self.targets {
            let name = t.cfg.name.as_str();
            self.queue_bytes
                .with_label_values(&[name])
                .set(t.queue.queued_bytes() as i64);
            self.queue_samples
                .with_label_values(&[name])
                .set(t.queue.unsent_samples() as i64);
            let oldest = t.oldest_unsent_ms.load(Ordering::Relaxed);
            let age = if oldest == 0 {
                0.0
            } else {
                (now_ms - oldest).max(0) as f64 / 1000.0
            };
            self.age.with_label_values(&[name]).set(age);
            let last = t.last_success_ms.load(Ordering::Relaxed);
            self.last_success
                .with_label_values(&[name])
                .set(last as f64 / 1000.0);
        }
    }
}

impl Collector for ForwardCollector {
    fn desc(&self) -> Vec<&Desc> {
        let c = &self.counters;
        [
            c.sent.desc(),
            c.failed.desc(),
            c.dropped.desc(),
            c.retried.desc(),
            self.queue_bytes.desc(),
            self.queue_samples.desc(),
            self.age.desc(),
            self.last_success.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.update(crate::server::now_ms());
        let c = &self.counters;
        [
            c.sent.collect(),
            c.failed.collect(),
            c.dropped.collect(),
            c.retried.collect(),
            self.queue_bytes.collect(),
            self.queue_samples.collect(),
            self.age.collect(),
            self.last_success.collect(),
        ]
        .concat()
    }
}
