//! Delivery counts for `/metrics`: notifications by receiver, channel and
//! outcome, and the latency of successful sends per channel type.
//!
//! [`NotifyStats`] is fed by the notifier wherever it records a
//! notification outcome in history (so the counts and the history agree),
//! and read at scrape time by `server::metrics_extra`.
//!
//! Invariants:
//! - Counts only grow (Prometheus counters); latency buckets are kept per
//!   bucket and made cumulative by [`LatencyHistogram::cumulative`].
//! - The mutexes are held for a map update only; notifications are not a
//!   hot path (at most a few per alert group and interval).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::notify::history::{Entry, EntryKind, Outcome};

/// Upper bounds (seconds) of the latency histogram's finite buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// Latencies of successful sends of one channel type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyHistogram {
    /// Sends per bucket of [`LATENCY_BUCKETS`]; the last slot is `+Inf`.
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl LatencyHistogram {
    fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[slot] += 1;
        self.sum_seconds += secs;
        self.count += 1;
    }

    /// `(upper bound, cumulative count)` per finite bucket; `+Inf` is
    /// [`LatencyHistogram::count`].
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        LATENCY_BUCKETS
            .iter()
            .zip(self.counts.iter())
            .map(|(&b, &c)| {
                acc += c;
                (b, acc)
            })
            .collect()
    }
}

/// `(receiver, channel, outcome)` → notifications.
pub type OutcomeCounts = BTreeMap<(String, String, &'static str), u64>;

/// The notifier's delivery counts.
#[derive(Debug, Default)]
pub struct NotifyStats {
    counts: Mutex<OutcomeCounts>,
    latency: Mutex<BTreeMap<String, LatencyHistogram>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `outcome` label of `o`.
pub fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Sent => "sent",
        Outcome::Failed => "failed",
        Outcome::Suppressed => "suppressed",
    }
}

impl NotifyStats {
    /// Counts the notification entries of `entries` (state changes are
    /// ignored).
    pub fn count(&self, entries: &[Entry]) {
        let mut counts = None;
        for e in entries {
            let (EntryKind::Notification, Some(o)) = (&e.kind, e.outcome) else {
                continue;
            };
            let key = (
                e.receiver.clone().unwrap_or_default(),
                e.channel.clone().unwrap_or_default(),
                outcome_label(o),
            );
            *counts
                .get_or_insert_with(|| lock(&self.counts))
                .entry(key)
                .or_insert(0) += 1;
        }
    }

    /// Records a successful send through a `channel` channel that took
    /// `d` (retries and their waits included).
    pub fn observe_latency(&self, channel: &str, d: Duration) {
        let mut l = lock(&self.latency);
        match l.get_mut(channel) {
            Some(h) => h.observe(d),
            None => {
                let mut h = LatencyHistogram::default();
                h.observe(d);
                l.insert(channel.to_string(), h);
            }
        }
    }

    /// A copy of the counts.
    pub fn counts(&self) -> OutcomeCounts {
        lock(&self.counts).clone()
    }

    /// A copy of the latency histograms by channel type.
    pub fn latencies(&self) -> BTreeMap<String, LatencyHistogram> {
        lock(&self.latency).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_notifications_by_receiver_channel_outcome_and_ignores_state_changes() {
        let s = NotifyStats::default();
        let l = BTreeMap::from([("alertname".to_string(), "A".to_string())]);
        s.count(&[
            Entry::notification(1, &l, "ops", "file", Outcome::Sent, None),
            Entry::notification(2, &l, "ops", "file", Outcome::Sent, None),
            Entry::notification(3, &l, "ops", "webhook", Outcome::Failed, Some("x".into())),
            Entry::state(4, &l, "pending", "firing"),
        ]);
        s.count(&[Entry::notification(
            5,
            &l,
            "dev",
            "file",
            Outcome::Suppressed,
            None,
        )]);
        let c = s.counts();
        assert_eq!(c.len(), 3);
        assert_eq!(c[&("ops".into(), "file".into(), "sent")], 2);
        assert_eq!(c[&("ops".into(), "webhook".into(), "failed")], 1);
        assert_eq!(c[&("dev".into(), "file".into(), "suppressed")], 1);

        s.observe_latency("file", Duration::from_millis(3));
        s.observe_latency("file", Duration::from_secs(2));
        let h = &s.latencies()["file"];
        assert_eq!(h.count, 2);
        assert!((h.sum_seconds - 2.003).abs() < 1e-9);
        let cum = h.cumulative();
        assert_eq!(cum[0], (0.005, 1));
        assert_eq!(cum[7], (1.0, 1));
        assert_eq!(cum[8], (5.0, 2));
    }
}
