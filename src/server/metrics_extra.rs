//! Families of `/metrics` built per scrape from state other components
//! own (not from `Metrics`' registry): WAL fsync latency, per-tier sizes,
//! rule group evaluation and notification delivery. `server::metrics`
//! documents them in its table; this module only builds them.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `tidemark_wal_fsync_duration_seconds` | histogram | |
//! | `tidemark_tier_bytes` | gauge | `tier` (`raw`, `1m`, `1h`) |
//! | `tidemark_tier_partitions` | gauge | `tier` |
//! | `tidemark_rule_group_last_duration_seconds` | gauge | `file`, `group` |
//! | `tidemark_rule_group_last_evaluation_timestamp_seconds` | gauge | `file`, `group` (0 before the first round) |
//! | `tidemark_rule_evaluation_failures_total` | counter | `file`, `group` |
//! | `tidemark_notifications_total` | counter | `receiver`, `channel`, `outcome` (`suppressed`: per newly muted alert, `channel="*"`) |
//! | `tidemark_notification_latency_seconds` | histogram | `channel` |
//!
//! Invariants:
//! - Histogram buckets are cumulative and `+Inf` equals the count, as
//!   Prometheus requires (the sources keep per-bucket counts).
//! - Every figure is cheap: `Db::tier_sizes` sums in-memory file sizes
//!   (never reads a file), rule and notifier figures are copies of small
//!   maps; nothing here runs outside a scrape.
//! - Names differ from every name in `Metrics`' registry and the
//!   monitor's families, so the merged exposition has no duplicates.

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use tidemark_storage::{DbStats, TierSize};

use super::AppState;

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    let mut v: Vec<LabelPair> = pairs
        .iter()
        .map(|(k, val)| {
            let mut l = LabelPair::default();
            l.set_name((*k).to_string());
            l.set_value((*val).to_string());
            l
        })
        .collect();
    v.sort_by(|a, b| a.name().cmp(b.name()));
    v
}

pub(crate) fn gauge(l: Vec<LabelPair>, v: f64) -> Metric {
    let mut m = Metric::from_label(l);
    let mut g = Gauge::default();
    g.set_value(v);
    m.set_gauge(g);
    m
}

pub(crate) fn counter(l: Vec<LabelPair>, v: f64) -> Metric {
    let mut m = Metric::from_label(l);
    let mut c = Counter::default();
    c.set_value(v);
    m.set_counter(c);
    m
}

/// A histogram metric from `(upper bound, cumulative count)` pairs.
fn histogram(l: Vec<LabelPair>, cumulative: &[(f64, u64)], count: u64, sum: f64) -> Metric {
    let mut h = Histogram::default();
    h.set_bucket(
        cumulative
            .iter()
            .map(|&(b, n)| {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(b);
                bucket.set_cumulative_count(n);
                bucket
            })
            .collect(),
    );
    h.set_sample_count(count);
    h.set_sample_sum(sum);
    let mut m = Metric::from_label(l);
    m.set_histogram(h);
    m
}

pub(crate) fn family(
    name: &str,
    kind: MetricType,
    help: &str,
    metrics: Vec<Metric>,
) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

/// The storage families from one `Db::stats()` and `Db::tier_sizes()`.
pub(super) fn storage_families(stats: &DbStats, tiers: &[TierSize]) -> Vec<MetricFamily> {
    let f = &stats.wal_fsync;
    let mut out = vec![family(
        "tidemark_wal_fsync_duration_seconds",
        MetricType::HISTOGRAM,
        "Duration of WAL fsyncs done by the shard writers (group commit or fsync=always).",
        vec![histogram(
            Vec::new(),
            &f.cumulative(),
            f.count,
            f.sum_seconds,
        )],
    )];
    if !tiers.is_empty() {
        let per = |v: fn(&TierSize) -> u64| -> Vec<Metric> {
            tiers
                .iter()
                .map(|t| gauge(labels(&[("tier", &t.tier)]), v(t) as f64))
                .collect()
        };
        out.push(family(
            "tidemark_tier_bytes",
            MetricType::GAUGE,
            "Bytes of the files of each storage tier (raw partitions, rollup tiers).",
            per(|t| t.bytes),
        ));
        out.push(family(
            "tidemark_tier_partitions",
            MetricType::GAUGE,
            "Partitions (files) of each storage tier.",
            per(|t| t.partitions),
        ));
    }
    out
}

/// The rule group and notifier families.
pub(super) fn rule_and_notify_families(st: &AppState) -> Vec<MetricFamily> {
    let (mut dur, mut ts, mut fails) = (Vec::new(), Vec::new(), Vec::new());
    for g in st.rules.groups().iter() {
        let s = g.round();
        let l = || labels(&[("file", &g.file), ("group", &g.group.name)]);
        dur.push(gauge(l(), s.eval_duration.as_secs_f64()));
        ts.push(gauge(
            l(),
            s.last_eval_ms.map_or(0.0, |t| t as f64 / 1000.0),
        ));
        fails.push(counter(l(), s.failures_total as f64));
    }
    let mut out = Vec::new();
    if !dur.is_empty() {
        out.push(family(
            "tidemark_rule_group_last_duration_seconds",
            MetricType::GAUGE,
            "Duration of the rule group's last evaluation round (queries and append).",
            dur,
        ));
        out.push(family(
            "tidemark_rule_group_last_evaluation_timestamp_seconds",
            MetricType::GAUGE,
            "Evaluation time of the rule group's last round (0 before the first).",
            ts,
        ));
        out.push(family(
            "tidemark_rule_evaluation_failures_total",
            MetricType::COUNTER,
            "Rule evaluations that failed (one per failing rule per round).",
            fails,
        ));
    }
    let stats = st.notifier.stats();
    let counts: Vec<Metric> = stats
        .counts()
        .iter()
        .map(|((receiver, channel, outcome), n)| {
            counter(
                labels(&[
                    ("receiver", receiver),
                    ("channel", channel),
                    ("outcome", outcome),
                ]),
                *n as f64,
            )
        })
        .collect();
    if !counts.is_empty() {
        out.push(family(
            "tidemark_notifications_total",
            MetricType::COUNTER,
            "Notifications by receiver, channel type and outcome (sent, failed, suppressed).",
            counts,
        ));
    }
    let lat: Vec<Metric> = stats
        .latencies()
        .iter()
        .map(|(channel, h)| {
            histogram(
                labels(&[("channel", channel)]),
                &h.cumulative(),
                h.count,
                h.sum_seconds,
            )
        })
        .collect();
    if !lat.is_empty() {
        out.push(family(
            "tidemark_notification_latency_seconds",
            MetricType::HISTOGRAM,
            "Time of a successful notification send, retries and their waits included.",
            lat,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_histogram_is_cumulative_with_inf_equal_to_count() {
        let mut stats = DbStats::default();
        stats
            .wal_fsync
            .observe(std::time::Duration::from_micros(200));
        stats.wal_fsync.observe(std::time::Duration::from_millis(7));
        stats.wal_fsync.observe(std::time::Duration::from_secs(3));
        let tiers = [TierSize {
            tier: "raw".into(),
            partitions: 2,
            bytes: 4096,
        }];
        let fams = storage_families(&stats, &tiers);
        let h = fams[0].get_metric()[0].get_histogram();
        assert_eq!(h.get_sample_count(), 3);
        let b = h.get_bucket();
        assert_eq!((b[0].upper_bound(), b[0].cumulative_count()), (0.0005, 1));
        assert_eq!((b[4].upper_bound(), b[4].cumulative_count()), (0.01, 2));
        assert_eq!(b.last().unwrap().cumulative_count(), 2);
        assert!(
            b.windows(2)
                .all(|w| w[0].cumulative_count() <= w[1].cumulative_count())
        );
        assert_eq!(fams[1].name(), "tidemark_tier_bytes");
        assert_eq!(fams[1].get_metric()[0].get_gauge().get_value(), 4096.0);
        assert_eq!(fams[2].get_metric()[0].get_gauge().get_value(), 2.0);
    }
}
