//! Turning recovery events into per-component series values:
//! [`ComponentState`] holds one component's counters, histogram and gauges
//! and knows which series they are ([`ComponentState::samples`]).
//!
//! The series (every one labelled `component`):
//!
//! | series | type | extra labels |
//! | --- | --- | --- |
//! | `errors_total` | counter | `kind` (the event's `error_kind`) |
//! | `recoveries_started_total` | counter | |
//! | `recoveries_total` | counter | `outcome` = `success` \| `failure` |
//! | `recovery_duration_seconds_bucket` / `_sum` / `_count` | histogram | `le` (see [`BUCKETS`]) |
//! | `consecutive_failures` | gauge | failed recoveries since the last success |
//! | `circuit_breaker_state` | gauge | 0 closed, 0.5 half-open, 1 open |
//! | `fallbacks_total` | counter | |
//!
//! Invariants:
//! - A series exists from the first event that concerns it (or from a
//!   stored value seeded at start): `errors_total` per kind seen, the
//!   recovery outcome counters, histogram and `consecutive_failures` once
//!   any recovery ended, the breaker gauge once any breaker event came.
//!   Both outcomes are written together so ratios over them are defined.
//! - Counters only grow. [`ComponentState::seed`] sets them from the last
//!   stored sample of their series, so after a restart they continue where
//!   they were and `rate()` sees no reset.
//! - Durations of succeeded and failed recoveries both go into the
//!   histogram (it answers "how long does recovering take").
//! - The hdrhistogram (exact quantiles, 3 significant digits, 1 µs .. 1 h,
//!   longer durations clamped to 1 h) covers this process's lifetime only;
//!   the Prometheus buckets are what survives restarts. It is allocated at
//!   a component's first recovery duration and grows with the longest one
//!   (u32 counts: ~60 KiB when recoveries stay under 10 s, at most ~92 KiB
//!   at 1 h), so components that only report errors cost a few hundred
//!   bytes.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::events::{BreakerState, RecoveryEvent};

/// Upper bounds (seconds) of `recovery_duration_seconds_bucket`, from 1 ms
/// to 60 s; `+Inf` is implied. 5 s (the RecoverySlow threshold) is one.
pub const BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The quantiles reported from the hdrhistogram.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Most distinct `kind`s of `errors_total` per component; later kinds are
/// counted as `kind="other"` so a client sending free text as a kind cannot
/// create unbounded series.
pub const MAX_ERROR_KINDS: usize = 64;

/// The `kind` label that absorbs error kinds past [`MAX_ERROR_KINDS`].
pub const OTHER_KIND: &str = "other";

/// Longest duration the hdrhistogram tracks (µs): one hour.
const HDR_MAX_MICROS: u64 = 3_600_000_000;

/// One derived sample: metric name, extra labels besides `component`, value.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivedSample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// The `le` label value of a bucket bound, Prometheus style (`0.005`, `1`,
/// `+Inf`).
pub fn le_label(bound: f64) -> String {
    crate::server::format_value(bound)
}

/// Recovery-duration histogram: cumulative bucket counts, sum, count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    /// `cumulative[i]`: observations ≤ `BUCKETS[i]`.
    pub cumulative: [u64; BUCKETS.len()],
    pub sum: f64,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
}

impl Buckets {
    fn observe(&mut self, secs: f64) {
        for (c, b) in self.cumulative.iter_mut().zip(BUCKETS) {
            if secs <= b {
                *c += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// A component's derived state.
#[derive(Debug, Default)]
pub struct ComponentState {
    /// `errors_total` by kind.
    pub errors: BTreeMap<String, u64>,
    /// `recoveries_started_total`, once any recovery started.
    pub started: Option<u64>,
    /// (success, failure) of `recoveries_total`, once any recovery ended.
    pub outcomes: Option<(u64, u64)>,
    pub durations: Buckets,
    pub consecutive_failures: u64,
    pub breaker: Option<BreakerState>,
    /// `fallbacks_total`, once any fallback was used.
    pub fallbacks: Option<u64>,
    hdr: Option<Histogram<u32>>,
}

impl ComponentState {
    /// Applies one event of this component.
    pub fn apply(&mut self, ev: &RecoveryEvent) {
        match ev {
            RecoveryEvent::ErrorObserved { error_kind, .. } => {
                let known = self.errors.contains_key(error_kind.as_str());
                let key = if known || self.errors.len() < MAX_ERROR_KINDS {
                    error_kind.as_str()
                } else {
                    OTHER_KIND
                };
                *self.errors.entry(key.to_string()).or_default() += 1;
            }
            RecoveryEvent::RecoveryStarted { .. } => {
                *self.started.get_or_insert(0) += 1;
            }
            RecoveryEvent::RecoverySucceeded { duration, .. } => {
                self.outcomes.get_or_insert((0, 0)).0 += 1;
                self.consecutive_failures = 0;
                self.observe(*duration);
            }
            RecoveryEvent::RecoveryFailed { duration, .. } => {
                self.outcomes.get_or_insert((0, 0)).1 += 1;
                self.consecutive_failures += 1;
                self.observe(*duration);
            }
            RecoveryEvent::CircuitBreaker { state, .. } => self.breaker = Some(*state),
            RecoveryEvent::FallbackUsed { .. } => {
                *self.fallbacks.get_or_insert(0) += 1;
            }
        }
    }

    fn observe(&mut self, d: Duration) {
        self.durations.observe(d.as_secs_f64());
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let hdr = self.hdr.get_or_insert_with(|| {
            // Auto-resizing: grows to the longest duration recorded.
            Histogram::new(3).expect("3 significant digits are valid")
        });
        let v = micros.clamp(1, HDR_MAX_MICROS);
        // `record` resizes (it fails only if the counts array could not be
        // addressed, impossible below 1 h); `saturating_record` never does.
        if hdr.record(v).is_err() {
            hdr.saturating_record(v);
        }
    }

    /// Exact quantiles (seconds) of the durations seen by this process, in
    /// [`QUANTILES`] order; `None` before the first one.
    pub fn quantiles(&self) -> Option<[f64; QUANTILES.len()]> {
        let hdr = self.hdr.as_ref().filter(|h| !h.is_empty())?;
        Some(QUANTILES.map(|q| hdr.value_at_quantile(q) as f64 / 1e6))
    }

    /// Every series of this component and its current value.
    pub fn samples(&self) -> Vec<DerivedSample> {
        let s = |name, labels, value| DerivedSample {
            name,
            labels,
            value,
        };
        let mut out = Vec::with_capacity(self.errors.len() + BUCKETS.len() + 8);
        for (kind, n) in &self.errors {
            out.push(s("errors_total", vec![("kind", kind.clone())], *n as f64));
        }
        if let Some(n) = self.started {
            out.push(s("recoveries_started_total", vec![], n as f64));
        }
        if let Some((ok, failed)) = self.outcomes {
            for (outcome, n) in [("success", ok), ("failure", failed)] {
                out.push(s(
                    "recoveries_total",
                    vec![("outcome", outcome.to_string())],
                    n as f64,
                ));
            }
            let d = &self.durations;
            for (b, c) in BUCKETS.iter().zip(d.cumulative) {
                out.push(s(
                    "recovery_duration_seconds_bucket",
                    vec![("le", le_label(*b))],
                    c as f64,
                ));
            }
            out.push(s(
                "recovery_duration_seconds_bucket",
                vec![("le", "+Inf".to_string())],
                d.count as f64,
            ));
            out.push(s("recovery_duration_seconds_sum", vec![], d.sum));
            out.push(s("recovery_duration_seconds_count", vec![], d.count as f64));
            out.push(s(
                "consecutive_failures",
                vec![],
                self.consecutive_failures as f64,
            ));
        }
        if let Some(b) = self.breaker {
            out.push(s("circuit_breaker_state", vec![], b.gauge_value()));
        }
        if let Some(n) = self.fallbacks {
            out.push(s("fallbacks_total", vec![], n as f64));
        }
        out
    }

    /// Restores one series' last stored value (`name` and its extra label
    /// from [`ComponentState::samples`]). Unknown names or label values and
    /// values that cannot be a count are ignored (answers false).
    pub fn seed(&mut self, name: &str, label: Option<&str>, value: f64) -> bool {
        let count = || (value.is_finite() && value >= 0.0).then(|| value.round() as u64);
        match (name, label) {
            ("errors_total", Some(kind)) => {
                let Some(n) = count() else { return false };
                if self.errors.len() >= MAX_ERROR_KINDS && !self.errors.contains_key(kind) {
                    return false;
                }
                self.errors.insert(kind.to_string(), n);
            }
            ("recoveries_started_total", None) => {
                let Some(n) = count() else { return false };
                self.started = Some(n);
            }
            ("recoveries_total", Some(outcome @ ("success" | "failure"))) => {
                let Some(n) = count() else { return false };
                let o = self.outcomes.get_or_insert((0, 0));
                if outcome == "success" {
                    o.0 = n;
                } else {
                    o.1 = n;
                }
            }
            ("recovery_duration_seconds_bucket", Some(le)) => {
                let Some(n) = count() else { return false };
                if le == "+Inf" {
                    self.durations.count = self.durations.count.max(n);
                } else if let Some(i) = BUCKETS.iter().position(|b| le_label(*b) == le) {
                    self.durations.cumulative[i] = n;
                } else {
                    return false;
                }
            }
            ("recovery_duration_seconds_count", None) => {
                let Some(n) = count() else { return false };
                self.durations.count = self.durations.count.max(n);
            }
            ("recovery_duration_seconds_sum", None) if value.is_finite() && value >= 0.0 => {
                self.durations.sum = value;
            }
            ("consecutive_failures", None) => {
                let Some(n) = count() else { return false };
                self.consecutive_failures = n;
            }
            ("circuit_breaker_state", None) => match BreakerState::from_gauge_value(value) {
                Some(b) => self.breaker = Some(b),
                None => return false,
            },
            ("fallbacks_total", None) => {
                let Some(n) = count() else { return false };
                self.fallbacks = Some(n);
            }
            _ => return false,
        }
        true
    }
}

/// Every metric name [`ComponentState::seed`] restores, with the name of
/// its extra label (if any).
pub const SEEDED: [(&str, Option<&str>); 9] = [
    ("errors_total", Some("kind")),
    ("recoveries_started_total", None),
    ("recoveries_total", Some("outcome")),
    ("recovery_duration_seconds_bucket", Some("le")),
    ("recovery_duration_seconds_sum", None),
    ("recovery_duration_seconds_count", None),
    ("consecutive_failures", None),
    ("circuit_breaker_state", None),
    ("fallbacks_total", None),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> String {
        "db".into()
    }

    fn ok(ms: u64) -> RecoveryEvent {
        RecoveryEvent::RecoverySucceeded {
            component: c(),
            duration: Duration::from_millis(ms),
            attempt: 1,
        }
    }

    fn failed(ms: u64) -> RecoveryEvent {
        RecoveryEvent::RecoveryFailed {
            component: c(),
            duration: Duration::from_millis(ms),
            attempt: 3,
            reason: "x".into(),
        }
    }

    fn value(s: &[DerivedSample], name: &str, label: Option<&str>) -> Option<f64> {
        s.iter()
            .find(|d| d.name == name && d.labels.first().map(|l| l.1.as_str()) == label)
            .map(|d| d.value)
    }

    #[test]
    fn counters_buckets_and_consecutive_failures() {
        let mut st = ComponentState::default();
        assert!(st.samples().is_empty());
        st.apply(&RecoveryEvent::ErrorObserved {
            component: c(),
            error_kind: "timeout".into(),
        });
        let s = st.samples();
        assert_eq!(s.len(), 1);
        assert_eq!(value(&s, "errors_total", Some("timeout")), Some(1.0));
        for e in [failed(3), failed(700), ok(40), failed(7000), failed(90_000)] {
            st.apply(&e);
        }
        let s = st.samples();
        assert_eq!(value(&s, "recoveries_total", Some("success")), Some(1.0));
        assert_eq!(value(&s, "recoveries_total", Some("failure")), Some(4.0));
        assert_eq!(value(&s, "consecutive_failures", None), Some(2.0));
        let bucket = |le| value(&s, "recovery_duration_seconds_bucket", Some(le));
        assert_eq!(bucket("0.0025"), Some(0.0));
        assert_eq!(bucket("0.005"), Some(1.0));
        assert_eq!(bucket("0.05"), Some(2.0));
        assert_eq!(bucket("1"), Some(3.0));
        assert_eq!(bucket("10"), Some(4.0));
        assert_eq!(bucket("60"), Some(4.0));
        assert_eq!(bucket("+Inf"), Some(5.0));
        assert_eq!(
            value(&s, "recovery_duration_seconds_count", None),
            Some(5.0)
        );
        let sum = value(&s, "recovery_duration_seconds_sum", None).unwrap();
        assert!((sum - 97.743).abs() < 1e-9, "{sum}");
        assert_eq!(value(&s, "circuit_breaker_state", None), None);
        st.apply(&RecoveryEvent::CircuitBreaker {
            component: c(),
            state: BreakerState::HalfOpen,
        });
        st.apply(&ok(1));
        let s = st.samples();
        assert_eq!(value(&s, "circuit_breaker_state", None), Some(0.5));
        assert_eq!(value(&s, "consecutive_failures", None), Some(0.0));
    }

    #[test]
    fn quantiles_are_exact_to_three_digits() {
        let mut st = ComponentState::default();
        assert_eq!(st.quantiles(), None);
        for ms in 1..=1000 {
            st.apply(&ok(ms));
        }
        let q = st.quantiles().unwrap();
        for (got, want) in q.iter().zip([0.5, 0.9, 0.99, 0.999]) {
            assert!((got - want).abs() <= want * 1e-3, "{got} vs {want}");
        }
        // Memory stays bounded: durations up to an hour (and clamped
        // beyond) keep the counts array under 24k entries (~92 KiB).
        st.apply(&ok(10 * 3_600_000));
        let hdr = st.hdr.as_ref().unwrap();
        assert!(
            hdr.distinct_values() <= 24 * 1024,
            "{}",
            hdr.distinct_values()
        );
        // 1,001 values now: the median is the 501st, 0.501 s; the clamped
        // 10 h one is reported as (about) the 1 h limit.
        let q = st.quantiles().unwrap();
        assert!((q[0] - 0.501).abs() <= 0.501e-3, "{q:?}");
        let max = st.hdr.as_ref().unwrap().max() as f64 / 1e6;
        assert!((max - 3600.0).abs() <= 3.6, "{max}");
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut st = ComponentState::default();
        for i in 0..MAX_ERROR_KINDS + 5 {
            st.apply(&RecoveryEvent::ErrorObserved {
                component: c(),
                error_kind: format!("k{i}"),
            });
        }
        assert_eq!(st.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(st.errors.get(OTHER_KIND), Some(&5));
    }

    #[test]
    fn seeding_restores_every_series_it_wrote() {
        let mut a = ComponentState::default();
        for e in [
            failed(3),
            ok(40),
            failed(7000),
            RecoveryEvent::FallbackUsed { component: c() },
            RecoveryEvent::RecoveryStarted { component: c() },
            RecoveryEvent::CircuitBreaker {
                component: c(),
                state: BreakerState::Open,
            },
            RecoveryEvent::ErrorObserved {
                component: c(),
                error_kind: "reset".into(),
            },
        ] {
            a.apply(&e);
        }
        let mut b = ComponentState::default();
        for d in a.samples() {
            let label = d.labels.first().map(|l| l.1.as_str());
            assert!(b.seed(d.name, label, d.value), "{d:?}");
        }
        assert_eq!(b.samples(), a.samples());
        assert!(!b.seed("recoveries_total", Some("maybe"), 1.0));
        assert!(!b.seed("fallbacks_total", None, -1.0));
        assert!(!b.seed("circuit_breaker_state", None, 0.7));
    }
}
