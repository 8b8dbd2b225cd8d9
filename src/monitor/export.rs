//! The monitor's current values as Prometheus metric families, appended to
//! Tidemark's own registry output on `/metrics` (`server::metrics`).
//!
//! Families (all labelled `component`), named like the stored series so a
//! scraping Prometheus can run the default rule pack unchanged:
//!
//! | family | type | extra labels |
//! | --- | --- | --- |
//! | `errors_total` | counter | `kind` |
//! | `recoveries_started_total` | counter | |
//! | `recoveries_total` | counter | `outcome` |
//! | `recovery_duration_seconds` | histogram | `le` ([`BUCKETS`]) |
//! | `tidemark_recovery_duration_quantile_seconds` | summary | `quantile` = 0.5, 0.9, 0.99, 0.999: exact (hdrhistogram, 3 significant digits) over this process's lifetime |
//! | `consecutive_failures` | gauge | |
//! | `circuit_breaker_state` | gauge | 0 closed, 0.5 half-open, 1 open |
//! | `fallbacks_total` | counter | |
//! | `tidemark_monitor_dropped_events_total` | counter | (no `component`) events not derived: over `max_components` |
//! | `tidemark_monitor_invalid_events_total` | counter | (no `component`) malformed recovery events, stored but not derived |
//!
//! Invariants: a family appears only once it has a metric (a component's
//! series appear with its first event, as in the store); names never
//! collide with the registry's own (`tidemark_*` names of the registry are
//! all different from the two used here); building them takes each
//! component's lock once, briefly.

use std::collections::BTreeMap;

use prometheus::proto::{
    Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};

use super::Monitor;
use super::derive::{BUCKETS, QUANTILES};
use crate::server::metrics_extra::{counter, family, gauge};

const HELP: [(&str, MetricType, &str); 8] = [
    (
        "errors_total",
        MetricType::COUNTER,
        "Errors observed by the recovery monitor, by component and error kind.",
    ),
    (
        "recoveries_started_total",
        MetricType::COUNTER,
        "Recoveries started, by component.",
    ),
    (
        "recoveries_total",
        MetricType::COUNTER,
        "Recoveries that ended, by component and outcome (success, failure).",
    ),
    (
        "recovery_duration_seconds",
        MetricType::HISTOGRAM,
        "How long recoveries took (succeeded and failed), by component.",
    ),
    (
        "tidemark_recovery_duration_quantile_seconds",
        MetricType::SUMMARY,
        "Exact recovery-duration quantiles (hdrhistogram) since Tidemark started, by component.",
    ),
    (
        "consecutive_failures",
        MetricType::GAUGE,
        "Failed recoveries in a row since the last success, by component.",
    ),
    (
        "circuit_breaker_state",
        MetricType::GAUGE,
        "Circuit breaker state by component: 0 closed, 0.5 half-open, 1 open.",
    ),
    (
        "fallbacks_total",
        MetricType::COUNTER,
        "Fallbacks used instead of the component, by component.",
    ),
];

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

fn labels(component: &str, extra: Option<(&str, &str)>) -> Vec<LabelPair> {
    let mut v = vec![label("component", component)];
    if let Some((k, val)) = extra {
        v.push(label(k, val));
    }
    v.sort_by(|a, b| a.name().cmp(b.name()));
    v
}

/// The monitor's families, sorted by name; empty ones left out.
pub fn families(m: &Monitor) -> Vec<MetricFamily> {
    let mut by_name: BTreeMap<&'static str, Vec<Metric>> = BTreeMap::new();
    let mut push =
        |name: &'static str, metric: Metric| by_name.entry(name).or_default().push(metric);
    m.for_each(|c, st| {
        for (kind, n) in &st.errors {
            push(
                "errors_total",
                counter(labels(c, Some(("kind", kind))), *n as f64),
            );
        }
        if let Some(n) = st.started {
            push(
                "recoveries_started_total",
                counter(labels(c, None), n as f64),
            );
        }
        if let Some((ok, failed)) = st.outcomes {
            for (outcome, n) in [("success", ok), ("failure", failed)] {
                let l = labels(c, Some(("outcome", outcome)));
                push("recoveries_total", counter(l, n as f64));
            }
            let d = &st.durations;
            let mut h = Histogram::default();
            h.set_bucket(
                BUCKETS
                    .iter()
                    .zip(d.cumulative)
                    .map(|(b, n)| {
                        let mut bucket = Bucket::default();
                        bucket.set_upper_bound(*b);
                        bucket.set_cumulative_count(n);
                        bucket
                    })
                    .collect(),
            );
            h.set_sample_count(d.count);
            h.set_sample_sum(d.sum);
            let mut metric = Metric::from_label(labels(c, None));
            metric.set_histogram(h);
            push("recovery_duration_seconds", metric);
            push(
                "consecutive_failures",
                gauge(labels(c, None), st.consecutive_failures as f64),
            );
        }
        if let Some(q) = st.quantiles() {
            let mut s = Summary::default();
            s.set_quantile(
                QUANTILES
                    .iter()
                    .zip(q)
                    .map(|(q, v)| {
                        let mut quantile = Quantile::default();
                        quantile.set_quantile(*q);
                        quantile.set_value(v);
                        quantile
                    })
                    .collect(),
            );
            s.set_sample_count(st.durations.count);
            s.set_sample_sum(st.durations.sum);
            let mut metric = Metric::from_label(labels(c, None));
            metric.set_summary(s);
            push("tidemark_recovery_duration_quantile_seconds", metric);
        }
        if let Some(b) = st.breaker {
            push(
                "circuit_breaker_state",
                gauge(labels(c, None), b.gauge_value()),
            );
        }
        if let Some(n) = st.fallbacks {
            push("fallbacks_total", counter(labels(c, None), n as f64));
        }
    });
    let mut out: Vec<MetricFamily> = HELP
        .iter()
        .filter_map(|(name, kind, help)| {
            let metrics = by_name.remove(name)?;
            Some(family(name, *kind, help, metrics))
        })
        .collect();
    out.push(family(
        "tidemark_monitor_dropped_events_total",
        MetricType::COUNTER,
        "Recovery events not derived because monitor.max_components components are tracked already.",
        vec![counter(vec![], m.dropped_components() as f64)],
    ));
    out.push(family(
        "tidemark_monitor_invalid_events_total",
        MetricType::COUNTER,
        "Recovery events stored but not derived because they are malformed (no component, a missing or mistyped field).",
        vec![counter(vec![], m.invalid_events() as f64)],
    ));
    out.sort_by(|a, b| a.name().cmp(b.name()));
    out
}
