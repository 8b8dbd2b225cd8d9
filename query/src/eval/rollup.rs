//! Evaluation over buckets (rollup tiers): what the evaluator does when
//! [`SeriesSource::select_hinted`] answers with [`Selection::Buckets`].
//!
//! A window `[t - range, t]` holds the buckets `[start, end)` with
//! `start >= t - range` (`>` when `left_open`) and `end - 1 <= t`: a bucket
//! counts only when wholly inside, so for windows aligned to the buckets
//! the buckets hold exactly the samples of the window (given no sample
//! sits exactly on `t - range`, where Prometheus 2.42's closed window would
//! count it twice across neighbouring windows). Raw samples stitched after
//! a tier are one-millisecond buckets, so those rules are the raw ones.
//!
//! Exact over buckets (same answer as over the samples, up to float
//! summation order):
//! - `max_over_time` = max of max, `min_over_time` = min of min (NaN only
//!   when every value is NaN, as on raw samples);
//! - `sum_over_time` = Kahan sum of sums, `count_over_time` = sum of counts,
//!   `avg_over_time` = sum of sums / sum of counts;
//! - `last_over_time` = last of the last bucket, `present_over_time` = 1;
//! - `increase`/`rate`: the unextrapolated increase is exact (each bucket's
//!   own increase plus, between buckets, `last -> first` with a drop
//!   counted as a reset). Extrapolation follows Prometheus's rule with
//!   assumed sample times: a bucket of width `W` holding `c` samples is
//!   taken to have its first sample at `start + W/2c` and its last at
//!   `end - W/2c` (evenly spaced samples); raw samples keep their times.
//!   For regularly spaced samples and bucket-aligned windows this is the
//!   raw answer (both extend the window by half an interval at each end);
//!   with irregular spacing it differs by at most the extrapolated share,
//!   i.e. at most about one sample interval over the range
//!   (`tests/rollup_query.rs`: jittered 60 s samples, `rate(x[1h])` from
//!   the 1h tier within 1/60 of raw, 1.2 % measured; `[1d]` within 1/1440,
//!   0.036 % measured).
//! - instant selectors: the `last` of the latest bucket ending at or
//!   before `t`, visible while `t` is within the lookback *plus the bucket
//!   width* of the bucket's end, so an hour bucket answers for the hour
//!   after it.
//!
//! Limits: a bucket is charged as `BUCKET_COST` samples (its size over a
//! sample's), so `max_samples` bounds memory alike for both.
//!
//! Not exact, so the planner prefers raw data (or the finest tier) for
//! them: every other range function runs on one assumed sample per bucket
//! at `end - 1`: the bucket's mean for `quantile_over_time`,
//! `stddev_over_time` and `stdvar_over_time` (a quantile/deviation of
//! bucket means), its `last` for the rest (`delta`, `irate`, `deriv`,
//! `changes`, `resets`, `predict_linear`, `absent_over_time`, ...).

use super::functions::{RateWindow, extrapolated_rate, kahan_inc};
use super::{
    EvalError, Evaluator, StepSeries, Val, absent, check_unique_labels, drop_stale, is_absent,
};
use crate::ast::VectorSelector;
use crate::catalog::Func;
use crate::source::{Bucket, BucketSeries, SelectHints, Selection, SeriesData};
use crate::value::is_stale_nan;

/// Samples a bucket counts as against `EvalOptions::max_samples`
/// (`size_of::<Bucket>() / size_of::<(i64, f64)>()`, rounded up).
const BUCKET_COST: usize = std::mem::size_of::<Bucket>().div_ceil(16);

/// An admitted selection.
pub(crate) enum Selected {
    Samples(Vec<SeriesData>),
    Buckets(Vec<BucketSeries>),
}

#[inline]
fn cross(prev: f64, cur: f64) -> f64 {
    if cur >= prev { cur - prev } else { cur }
}

impl Evaluator<'_> {
    fn hinted(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        hints: &SelectHints,
    ) -> Result<Selected, EvalError> {
        match self.src.select_hinted(&vs.matchers, mint, maxt, hints)? {
            Selection::Samples(d) => Ok(Selected::Samples(self.admit(d)?)),
            Selection::Buckets(mut b) => {
                self.series_selected += b.len();
                if self.series_selected > self.opts.max_series {
                    return Err(EvalError::TooManySeries {
                        limit: self.opts.max_series,
                    });
                }
                // A bucket holds as much memory as this many samples: the
                // sample limit bounds memory the same way for both.
                let n: usize = b.iter().map(|s| s.buckets.len()).sum();
                self.charge(n.saturating_mul(BUCKET_COST))?;
                for s in &mut b {
                    for x in &mut s.buckets {
                        // Raw samples keep stale markers; other NaNs are
                        // canonicalised like raw reads.
                        if x.last.is_nan() && !is_stale_nan(x.last) {
                            (x.min, x.max, x.sum, x.first, x.last) =
                                (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN);
                        }
                    }
                }
                b.sort_by(|x, y| x.labels.cmp(&y.labels));
                Ok(Selected::Buckets(b))
            }
        }
    }

    /// The selection of a range function's selector: buckets when the
    /// source has them and the function is exact over them, samples
    /// otherwise (assumed ones for non-exact functions over buckets).
    pub(crate) fn select_range_hinted(
        &mut self,
        vs: &VectorSelector,
        range_ms: i64,
        func: Func,
    ) -> Result<Selected, EvalError> {
        let hints = SelectHints {
            start_ms: self.start,
            step_ms: self.step,
            range_ms,
            offset_ms: vs.offset_ms,
            func: Some(func),
        };
        let (mint, maxt) =
            super::reads::range_window(self.start, self.ts(self.n - 1), vs, range_ms);
        Ok(match self.hinted(vs, mint, maxt, &hints)? {
            Selected::Samples(d) => Selected::Samples(drop_stale(d)),
            Selected::Buckets(mut b) => {
                for s in &mut b {
                    s.buckets.retain(|x| !is_stale_nan(x.last));
                }
                b.retain(|s| !s.buckets.is_empty());
                if hints.buckets_exact() {
                    Selected::Buckets(b)
                } else {
                    Selected::Samples(assumed_samples(b, func))
                }
            }
        })
    }

    /// The selection of an instant selector over `[mint, maxt]`.
    pub(crate) fn select_instant_hinted(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Selected, EvalError> {
        let hints = SelectHints {
            start_ms: self.start,
            step_ms: self.step,
            range_ms: 0,
            offset_ms: vs.offset_ms,
            func: None,
        };
        self.hinted(vs, mint, maxt, &hints)
    }
}

/// One assumed sample per bucket at `end - 1`: the mean for functions of
/// the value distribution, the last value otherwise.
fn assumed_samples(data: Vec<BucketSeries>, func: Func) -> Vec<SeriesData> {
    let mean = matches!(
        func,
        Func::QuantileOverTime | Func::StddevOverTime | Func::StdvarOverTime
    );
    data.into_iter()
        .map(|s| SeriesData {
            labels: s.labels,
            samples: s
                .buckets
                .iter()
                .map(|b| {
                    let v = if mean { b.sum / b.count as f64 } else { b.last };
                    (b.end - 1, v)
                })
                .collect(),
        })
        .collect()
}

/// Assumed time of a bucket's first and last sample, ms.
fn first_t(b: &Bucket) -> f64 {
    let w = b.end - b.start;
    if w <= 1 {
        b.start as f64
    } else {
        b.start as f64 + w as f64 / (2.0 * b.count.max(1) as f64)
    }
}

fn last_t(b: &Bucket) -> f64 {
    let w = b.end - b.start;
    if w <= 1 {
        b.start as f64
    } else {
        b.end as f64 - w as f64 / (2.0 * b.count.max(1) as f64)
    }
}

/// An exact range function (see the module doc) over buckets.
pub(crate) fn eval_range_buckets(
    ev: &mut Evaluator<'_>,
    func: Func,
    data: Vec<BucketSeries>,
    range: i64,
    off: i64,
) -> Result<Val, EvalError> {
    let n = ev.n;
    ev.charge(data.len().saturating_mul(n))?;
    let left_open = ev.opts.left_open;
    let mut out = Vec::with_capacity(data.len());
    for s in data {
        ev.check_deadline()?;
        let b = &s.buckets;
        let mut vals = vec![absent(); n];
        let mut any = false;
        let (mut lo, mut hi) = (0usize, 0usize);
        for (i, slot) in vals.iter_mut().enumerate() {
            let t = ev.ts(i) - off;
            let ws = t - range;
            while hi < b.len() && b[hi].end - 1 <= t {
                hi += 1;
            }
            while lo < b.len() && (b[lo].start < ws || (left_open && b[lo].start == ws)) {
                lo += 1;
            }
            if hi <= lo {
                continue;
            }
            let w = &b[lo..hi];
            let v = match func {
                Func::Rate | Func::Increase => {
                    let count: u64 = w.iter().map(|x| x.count).sum();
                    if count < 2 {
                        continue;
                    }
                    let mut result = w[0].increase;
                    for k in 1..w.len() {
                        result += cross(w[k - 1].last, w[k].first) + w[k].increase;
                    }
                    let rw = RateWindow {
                        first_t: first_t(&w[0]),
                        first_v: w[0].first,
                        last_t: last_t(&w[w.len() - 1]),
                        count: count as f64,
                    };
                    extrapolated_rate(&rw, result, ws, t, range, true, func == Func::Rate)
                }
                Func::CountOverTime => w.iter().map(|x| x.count).sum::<u64>() as f64,
                Func::LastOverTime => w[w.len() - 1].last,
                Func::PresentOverTime => 1.0,
                Func::SumOverTime | Func::AvgOverTime => {
                    let (mut sum, mut c) = (0.0, 0.0);
                    for x in w {
                        (sum, c) = kahan_inc(x.sum, sum, c);
                    }
                    let sum = if sum.is_infinite() { sum } else { sum + c };
                    if func == Func::AvgOverTime {
                        sum / w.iter().map(|x| x.count).sum::<u64>() as f64
                    } else {
                        sum
                    }
                }
                Func::MaxOverTime => w
                    .iter()
                    .map(|x| x.max)
                    .filter(|v| !v.is_nan())
                    .reduce(f64::max)
                    .unwrap_or(f64::NAN),
                Func::MinOverTime => w
                    .iter()
                    .map(|x| x.min)
                    .filter(|v| !v.is_nan())
                    .reduce(f64::min)
                    .unwrap_or(f64::NAN),
                _ => {
                    debug_assert!(false, "{func:?} is not exact over buckets");
                    continue;
                }
            };
            *slot = v;
            any = true;
        }
        if any {
            let labels = if func == Func::LastOverTime {
                s.labels
            } else {
                s.labels.without_name()
            };
            out.push(StepSeries { labels, vals });
        }
    }
    check_unique_labels(&out)?;
    Ok(Val::Vector(out))
}

/// An instant selector over buckets (see the module doc).
pub(crate) fn eval_instant_buckets(
    ev: &mut Evaluator<'_>,
    data: Vec<BucketSeries>,
    off: i64,
    timestamps: bool,
) -> Result<Vec<StepSeries>, EvalError> {
    let lb = ev.lookback_ms();
    let left_open = ev.opts.left_open;
    let mut out = Vec::with_capacity(data.len());
    for s in data {
        ev.check_deadline()?;
        let mut vals = ev.new_vals()?;
        let mut any = false;
        let b = &s.buckets;
        let mut j = 0;
        for (i, slot) in vals.iter_mut().enumerate() {
            let t = ev.ts(i) - off;
            while j < b.len() && b[j].end - 1 <= t {
                j += 1;
            }
            let Some(x) = j.checked_sub(1).map(|k| &b[k]) else {
                continue;
            };
            let st = x.end - 1;
            let reach = t - lb - (x.end - x.start - 1);
            let inside = if left_open { st > reach } else { st >= reach };
            if inside && !is_stale_nan(x.last) {
                *slot = if timestamps {
                    st as f64 / 1000.0
                } else {
                    x.last
                };
                any = true;
            }
        }
        if any && vals.iter().any(|v| !is_absent(*v)) {
            out.push(StepSeries {
                labels: s.labels,
                vals,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Buckets against samples: a source that answers with buckets built
    //! from the samples it holds must give the raw answers.
    use super::*;
    use crate::labels::{LabelMatcher, Labels};
    use crate::source::{MemorySource, SeriesSource};
    use crate::{EvalOptions, SourceError, eval_range, parse};

    /// Answers hinted selections of exact functions with buckets of
    /// `width` ms (1 = every sample its own bucket).
    struct Bucketed {
        inner: MemorySource,
        width: i64,
    }

    impl SeriesSource for Bucketed {
        fn select(
            &self,
            m: &[LabelMatcher],
            s: i64,
            e: i64,
        ) -> Result<Vec<SeriesData>, SourceError> {
            self.inner.select(m, s, e)
        }

        fn select_hinted(
            &self,
            m: &[LabelMatcher],
            s: i64,
            e: i64,
            hints: &SelectHints,
        ) -> Result<Selection, SourceError> {
            if !hints.buckets_exact() {
                return Ok(Selection::Samples(self.select(m, s, e)?));
            }
            let w = self.width;
            let from = s.div_euclid(w) * w - w;
            let data = self.inner.select(m, from, e)?;
            Ok(Selection::Buckets(
                data.into_iter()
                    .map(|d| {
                        let mut buckets: Vec<Bucket> = Vec::new();
                        for &(t, v) in &d.samples {
                            let start = t.div_euclid(w) * w;
                            match buckets.last_mut() {
                                Some(b) if b.start == start => {
                                    b.increase += cross(b.last, v);
                                    b.min = b.min.min(v);
                                    b.max = b.max.max(v);
                                    b.sum += v;
                                    b.count += 1;
                                    b.last = v;
                                }
                                _ => buckets.push(Bucket {
                                    end: start + w,
                                    ..Bucket::sample(start, v)
                                }),
                            }
                        }
                        BucketSeries {
                            labels: d.labels,
                            buckets,
                        }
                    })
                    .collect(),
            ))
        }
    }

    fn source() -> MemorySource {
        let mut src = MemorySource::new();
        let (mut c, mut samples_c, mut samples_g) = (100.0, Vec::new(), Vec::new());
        for i in 0..2000i64 {
            let t = i * 10_000 + 3_000;
            c = if i % 500 == 499 {
                3.0
            } else {
                c + (i % 11) as f64
            };
            samples_c.push((t, c));
            samples_g.push((t, ((i * 7919) % 1000) as f64 / 7.0 - 50.0));
        }
        src.add(Labels::from_pairs([("__name__", "c")]), samples_c);
        src.add(Labels::from_pairs([("__name__", "g")]), samples_g);
        src
    }

    fn close(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn buckets_count_against_the_sample_limit_by_size() {
        let src = Bucketed {
            inner: source(),
            width: 60_000,
        };
        let e = parse("max_over_time(g[1h])").unwrap();
        // 61 one-minute buckets, one step.
        let run = |max_samples| {
            let opts = EvalOptions {
                max_samples,
                ..EvalOptions::default()
            };
            eval_range(&src, &e, 3_660_000, 3_660_000, 60_000, &opts)
        };
        assert!(run(61 * BUCKET_COST + 10).is_ok());
        assert!(matches!(
            run(61 * BUCKET_COST - 1),
            Err(crate::EvalError::TooManySamples { .. })
        ));
    }

    #[test]
    fn buckets_give_the_raw_answers_on_aligned_windows() {
        let raw = source();
        let queries = [
            "rate(c[10m])",
            "increase(c[1h])",
            "sum_over_time(g[5m])",
            "avg_over_time(g[10m])",
            "min_over_time(g[2m])",
            "max_over_time(g[1h])",
            "count_over_time(g[3m])",
            "last_over_time(c[1m])",
            "present_over_time(g[1m])",
            "g",
            "timestamp(c)",
            "quantile_over_time(0.5, g[5m])",
        ];
        for width in [1, 60_000] {
            let src = Bucketed {
                inner: raw.clone(),
                width,
            };
            for q in queries {
                let e = parse(q).unwrap();
                let opts = EvalOptions::default();
                let (s, end, step) = (3_600_000, 19_000_000, 60_000);
                let want = eval_range(&raw, &e, s, end, step, &opts).unwrap();
                let got = eval_range(&src, &e, s, end, step, &opts).unwrap();
                assert_eq!(got.len(), want.len(), "{q} width {width}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.labels, w.labels, "{q}");
                    // `timestamp` reports the bucket end over buckets.
                    if q.starts_with("timestamp") && width > 1 {
                        continue;
                    }
                    assert_eq!(g.samples.len(), w.samples.len(), "{q} width {width}");
                    for (a, b) in g.samples.iter().zip(&w.samples) {
                        assert!(
                            a.0 == b.0 && close(a.1, b.1),
                            "{q} width {width}: {a:?} vs {b:?}"
                        );
                    }
                }
            }
        }
    }
}
