//! Tidemark's own metrics (the `/metrics` registry) stored as series every
//! monitor round, as a Prometheus server scraping itself would: so
//! `rate(tidemark_ingest_samples_accepted_total[1m])` has a history for
//! the dashboard's throughput chart and for rules.
//!
//! Invariants: one sample per exposed series per round, named as in the
//! text exposition (`_bucket{le}`, `_sum`, `_count` for histograms,
//! `{quantile}` for summaries) and labelled `instance`; `process_*`
//! families are skipped because the resource collector already stores
//! them with the same names.

use prometheus::proto::{MetricFamily, MetricType};
use tidemark_storage::Labels;

/// The samples of `families`, each series labelled `instance`.
pub fn samples(families: &[MetricFamily], instance: &str) -> (Vec<Labels>, Vec<f64>) {
    let mut sets = Vec::new();
    let mut values = Vec::new();
    for mf in families {
        let name = mf.name();
        if name.starts_with("process_") {
            continue;
        }
        for m in mf.get_metric() {
            let mut push = |suffix: &str, extra: Option<(&str, String)>, v: f64| {
                let mut pairs: Vec<(String, String)> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                pairs.push(("instance".into(), instance.into()));
                if let Some((k, val)) = extra {
                    pairs.push((k.into(), val));
                }
                sets.push(Labels::metric(&format!("{name}{suffix}"), pairs));
                values.push(v);
            };
            match mf.get_field_type() {
                MetricType::COUNTER => push("", None, m.get_counter().get_value()),
                MetricType::GAUGE => push("", None, m.get_gauge().get_value()),
                // No untyped metric is registered.
                MetricType::UNTYPED => {}
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut inf_seen = false;
                    for b in h.get_bucket() {
                        inf_seen |= b.upper_bound() == f64::INFINITY;
                        push(
                            "_bucket",
                            Some(("le", le(b.upper_bound()))),
                            b.cumulative_count() as f64,
                        );
                    }
                    let count = h.get_sample_count() as f64;
                    if !inf_seen {
                        push("_bucket", Some(("le", "+Inf".into())), count);
                    }
                    push("_sum", None, h.get_sample_sum());
                    push("_count", None, count);
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        push("", Some(("quantile", le(q.quantile()))), q.value());
                    }
                    push("_sum", None, s.sample_sum());
                    push("_count", None, s.sample_count() as f64);
                }
            }
        }
    }
    (sets, values)
}

/// A bound as Prometheus writes it: `+Inf`, `0.5`, `1`.
fn le(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

    #[test]
    fn counters_and_histograms_become_exposition_named_series() {
        let r = Registry::new();
        let c = IntCounterVec::new(Opts::new("tidemark_x_total", "x"), &["reason"]).unwrap();
        let h = Histogram::with_opts(
            HistogramOpts::new("tidemark_q_seconds", "q").buckets(vec![0.1, 1.0]),
        )
        .unwrap();
        let p = prometheus::IntGauge::new("process_open_fds", "fds").unwrap();
        r.register(Box::new(c.clone())).unwrap();
        r.register(Box::new(h.clone())).unwrap();
        r.register(Box::new(p.clone())).unwrap();
        c.with_label_values(&["bad"]).inc_by(3);
        h.observe(0.5);
        h.observe(0.05);
        let (sets, values) = samples(&r.gather(), "local");
        let got: Vec<(String, f64)> = sets.iter().map(|l| l.to_string()).zip(values).collect();
        let want = [
            (
                r#"tidemark_q_seconds_bucket{instance="local", le="0.1"}"#,
                1.0,
            ),
            (
                r#"tidemark_q_seconds_bucket{instance="local", le="1"}"#,
                2.0,
            ),
            (
                r#"tidemark_q_seconds_bucket{instance="local", le="+Inf"}"#,
                2.0,
            ),
            (r#"tidemark_q_seconds_sum{instance="local"}"#, 0.55),
            (r#"tidemark_q_seconds_count{instance="local"}"#, 2.0),
            (r#"tidemark_x_total{instance="local", reason="bad"}"#, 3.0),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (w, v) in want {
            assert!(
                got.iter().any(|(l, x)| l == w && (x - v).abs() < 1e-12),
                "{w} = {v} in {got:?}"
            );
        }
    }
}
