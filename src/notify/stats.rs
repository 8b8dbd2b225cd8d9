//! Delivery counts for `/metrics`: notifications by receiver, channel and
//! outcome, and the latency of successful sends per channel type.
//!
//! [`NotifyStats`] is fed by the notifier wherever it records a
//! notification outcome in history (so the counts and the history agree),
//! and read at scrape time by `server::metrics_extra`.
//!
//! Invariants:
//! - Counts only grow (Prometheus counters); latency buckets are kept per
//!   bucket and made cumulative by `DurationHistogram::cumulative`.
//! - The mutexes are held for a map update only; notifications are not a
//!   hot path (at most a few per alert group and interval).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::notify::history::{Entry, EntryKind, Outcome};

/// Upper bounds (seconds) of the latency histogram's finite buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The bounds of [`LatencyHistogram`]: [`LATENCY_BUCKETS`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencyBuckets;

impl tidemark_storage::Buckets for LatencyBuckets {
    const BOUNDS: &'static [f64] = &LATENCY_BUCKETS;
}

/// Latencies of successful sends of one channel type (the engine's
/// histogram type, with notification-sized buckets).
pub type LatencyHistogram = tidemark_storage::DurationHistogram<LatencyBuckets>;

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

/// Counting through the notifier's real delivery and muting paths.
#[cfg(test)]
mod notifier_counts {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use crate::health::Health;
    use crate::notify::channel::{Channel, ChannelError, Notification, SendFuture};
    use crate::notify::config::NotifyConfig;
    use crate::notify::history::MemoryHistory;
    use crate::notify::silence::{SilenceInput, SilenceMatcher};
    use crate::notify::{AlertSink, Notifier};
    use crate::rules::{Alert, AlertState};

    /// Answers every send with success or a permanent error.
    struct Fixed(&'static str, bool);

    impl Channel for Fixed {
        fn kind(&self) -> &'static str {
            self.0
        }
        fn send<'a>(&'a self, _: &'a Notification) -> SendFuture<'a> {
            let ok = self.1;
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err(ChannelError::Permanent("rejected".into()))
                }
            })
        }
    }

    const T0: i64 = 1_795_737_600_000;

    fn alert(name: &str) -> (Alert, String) {
        let a = Alert {
            labels: BTreeMap::from([("alertname".to_string(), name.to_string())]),
            annotations: BTreeMap::new(),
            state: AlertState::Firing,
            value: 1.0,
            active_at_ms: T0,
            fired_at_ms: Some(T0),
            resolved_at_ms: None,
            keep_firing_since_ms: None,
        };
        (a, "up == 0".to_string())
    }

    #[test]
    fn sent_failed_and_suppressed_are_counted_where_history_records_them() {
        let cfg: NotifyConfig = toml::from_str(
            "[[receivers]]\nname = \"team\"\nchannels = [{ type = \"console\" }, { type = \"console\" }]\n[route]\nreceiver = \"team\"\ngroup_by = [\"alertname\"]\n",
        )
        .unwrap();
        let channels = BTreeMap::from([(
            "team".to_string(),
            vec![
                Arc::new(Fixed("good", true)) as Arc<dyn Channel>,
                Arc::new(Fixed("bad", false)),
            ],
        )]);
        let history = Arc::new(MemoryHistory::open(None, 100));
        let n = Notifier::with_channels(&cfg, channels, None, &Health::new(), history, T0).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        n.alerts("g", &[alert("A")], T0);
        let ds = n.tick(T0 + 30_000);
        assert_eq!(ds.len(), 2);
        for d in ds {
            rt.block_on(n.deliver(d));
        }
        let c = n.stats().counts();
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[&("team".into(), "good".into(), "sent")], 1);
        assert_eq!(c[&("team".into(), "bad".into(), "failed")], 1);
        let lat = n.stats().latencies();
        assert_eq!(lat.keys().collect::<Vec<_>>(), ["good"]);
        assert_eq!(lat["good"].count, 1);

        // A silenced alert is counted once as suppressed (channel `*`).
        n.with_core(|core| {
            core.silences_mut().upsert(
                SilenceInput {
                    id: None,
                    matchers: vec![SilenceMatcher {
                        name: "alertname".into(),
                        value: "B".into(),
                        is_regex: false,
                        is_equal: true,
                    }],
                    starts_at_ms: T0,
                    ends_at_ms: T0 + 3_600_000,
                    created_by: "test".into(),
                    comment: "quiet".into(),
                    recurrence: None,
                },
                T0 + 31_000,
            )
        })
        .unwrap();
        n.alerts("g", &[alert("A"), alert("B")], T0 + 40_000);
        assert!(n.tick(T0 + 80_000).is_empty());
        assert!(n.tick(T0 + 90_000).is_empty());
        let c = n.stats().counts();
        assert_eq!(c[&("team".into(), "*".into(), "suppressed")], 1, "{c:?}");
        assert_eq!(c[&("team".into(), "good".into(), "sent")], 1);
    }
}
