//! The evaluator: runs a parsed [`Expr`] over a [`SeriesSource`].
//!
//! Every query is a range query; an instant query is one step. Each node
//! evaluates to a value for all steps at once:
//! - a scalar is one `f64` per step;
//! - an instant vector is a list of [`StepSeries`], each a label set plus a
//!   dense `Vec<f64>` with one slot per step, where [`ABSENT`] (a
//!   signalling-NaN bit pattern that arithmetic never produces) marks "no
//!   sample at this step".
//!
//! Invariants:
//! - every selector calls [`SeriesSource::select`] exactly once, over the
//!   whole time range it needs, and walks each series with a cursor per
//!   step (no per-step re-selection, no per-sample allocation);
//! - NaNs read from the source are canonicalised, so a present value is
//!   never the [`ABSENT`] pattern; stale markers make a series absent for
//!   instant selectors and are dropped from range selections;
//! - limits ([`EvalOptions`]) are checked while evaluating: samples held
//!   (raw samples selected plus step slots allocated), series selected,
//!   and wall-clock time.
//!
//! Prometheus 2.42 boundaries: an instant selector takes the last sample in
//! `[t - lookback, t]`, a range selector `[d]` takes `[t - d, t]` (both ends
//! inclusive; Prometheus 3 made the start exclusive, see
//! [`EvalOptions::left_open`]).

// Step loops index several parallel per-step arrays at once.
#![allow(clippy::needless_range_loop)]

mod aggregate;
mod binary;
mod functions;
mod reads;
mod rollup;

pub use reads::{SelectorRead, instant_reads};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ast::{Expr, ValueType, VectorSelector};
use crate::error::EvalError;
use crate::labels::Labels;
use crate::source::{SeriesData, SeriesSource};
use crate::value::{Sample, Series, Value, is_stale_nan};

/// Limits and knobs of one evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Most samples held at once: raw samples selected plus one slot per
    /// series per step of every intermediate result (Prometheus's
    /// `--query.max-samples`, default 50,000,000).
    pub max_samples: usize,
    /// Wall-clock limit (Prometheus's `--query.timeout`, default 2 min).
    pub timeout: Duration,
    /// Most series all selectors of one query may select together.
    pub max_series: usize,
    /// How far back an instant selector looks for a sample (default 5 min).
    pub lookback: Duration,
    /// Exclude the start of range and lookback windows (`(t - d, t]`, the
    /// Prometheus 3 rule). Default false: Prometheus 2.42's `[t - d, t]`.
    pub left_open: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            max_series: 1_000_000,
            lookback: Duration::from_secs(300),
            left_open: false,
        }
    }
}

/// Bit pattern of "no sample at this step" in a [`StepSeries`]: a
/// signalling NaN, which no float operation produces.
pub(crate) const ABSENT_BITS: u64 = 0x7ff0_0000_0000_00a5;

/// The absent marker as a float.
#[inline]
pub(crate) fn absent() -> f64 {
    f64::from_bits(ABSENT_BITS)
}

/// Whether a slot holds no sample.
#[inline]
pub(crate) fn is_absent(v: f64) -> bool {
    v.to_bits() == ABSENT_BITS
}

/// One series of an instant-vector result, dense over the steps.
#[derive(Debug, Clone)]
pub(crate) struct StepSeries {
    pub(crate) labels: Labels,
    pub(crate) vals: Vec<f64>,
}

/// A node's value for all steps.
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<StepSeries>),
    Str(String),
}

impl Val {
    fn points(&self) -> usize {
        match self {
            Val::Scalar(v) => v.len(),
            Val::Vector(s) => s.iter().map(|s| s.vals.len()).sum(),
            Val::Str(_) => 0,
        }
    }

    pub(crate) fn into_vector(self) -> Vec<StepSeries> {
        match self {
            Val::Vector(v) => v,
            _ => {
                debug_assert!(false, "type checker guarantees an instant vector");
                Vec::new()
            }
        }
    }

    pub(crate) fn into_scalar(self) -> Vec<f64> {
        match self {
            Val::Scalar(v) => v,
            _ => {
                debug_assert!(false, "type checker guarantees a scalar");
                Vec::new()
            }
        }
    }
}

/// Evaluates `expr` at `t_ms`, like Prometheus's `/api/v1/query`.
///
/// # Errors
/// [`EvalError`] when a limit is hit, the data violates a PromQL rule
/// (duplicate label sets, many-to-many matching) or the source fails.
pub fn eval_instant(
    source: &dyn SeriesSource,
    expr: &Expr,
    t_ms: i64,
    opts: &EvalOptions,
) -> Result<Value, EvalError> {
    let mut ev = Evaluator::new(source, opts, t_ms, t_ms, 1);
    if let Expr::MatrixSelector { selector, range_ms } = expr.unparen() {
        let data = ev.select_range(selector, *range_ms)?;
        let off = selector.offset_ms;
        let series = data
            .into_iter()
            .filter_map(|s| {
                let w = ev.window_bounds(&s.samples, t_ms - off - range_ms, t_ms - off);
                let samples = s.samples[w.0..w.1].to_vec();
                (!samples.is_empty()).then_some(Series {
                    labels: s.labels,
                    samples,
                })
            })
            .collect();
        return Ok(Value::Matrix(series));
    }
    Ok(match ev.eval(expr)? {
        Val::Scalar(v) => Value::Scalar { t: t_ms, v: v[0] },
        Val::Str(s) => Value::String { t: t_ms, v: s },
        Val::Vector(series) => {
            let mut out: Vec<Sample> = series
                .into_iter()
                .filter(|s| !is_absent(s.vals[0]))
                .map(|s| Sample {
                    labels: s.labels,
                    t: t_ms,
                    v: s.vals[0],
                })
                .collect();
            order_instant_result(expr, &mut out);
            Value::Vector(out)
        }
    })
}

/// Evaluates `expr` at `start_ms, start_ms + step_ms, ... <= end_ms`, like
/// Prometheus's `/api/v1/query_range`. The result is sorted by labels; a
/// scalar result is one series without labels.
///
/// # Errors
/// [`EvalError::BadRange`] for `step_ms <= 0` or `end_ms < start_ms`,
/// [`EvalError::BadResultType`] for range-vector or string expressions,
/// and every error of [`eval_instant`].
pub fn eval_range(
    source: &dyn SeriesSource,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &EvalOptions,
) -> Result<Vec<Series>, EvalError> {
    if step_ms <= 0 || end_ms < start_ms {
        return Err(EvalError::BadRange {
            start: start_ms,
            end: end_ms,
            step: step_ms,
        });
    }
    match expr.value_type() {
        ValueType::Scalar | ValueType::Vector => {}
        t => return Err(EvalError::BadResultType { got: t.describe() }),
    }
    let n = ((end_ms - start_ms) / step_ms) as usize + 1;
    // Every node holds at least one value per step: refuse before allocating.
    if n > opts.max_samples {
        return Err(EvalError::TooManySamples {
            limit: opts.max_samples,
        });
    }
    let mut ev = Evaluator::new(source, opts, start_ms, end_ms, step_ms);
    let ts = |i: usize| start_ms + i as i64 * step_ms;
    let mut out = match ev.eval(expr)? {
        Val::Scalar(v) => {
            vec![Series {
                labels: Labels::new(),
                samples: v.into_iter().enumerate().map(|(i, v)| (ts(i), v)).collect(),
            }]
        }
        Val::Vector(series) => series
            .into_iter()
            .filter_map(|s| {
                let samples: Vec<(i64, f64)> = s
                    .vals
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| !is_absent(**v))
                    .map(|(i, v)| (ts(i), *v))
                    .collect();
                (!samples.is_empty()).then_some(Series {
                    labels: s.labels,
                    samples,
                })
            })
            .collect(),
        Val::Str(_) => return Err(EvalError::BadResultType { got: "string" }),
    };
    debug_assert!(out.iter().all(|s| s.samples.len() <= n));
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// Prometheus returns instant vectors in evaluation order; we sort by
/// labels for determinism, except where the order is the point
/// (`sort`, `sort_desc`, `topk`, `bottomk`).
fn order_instant_result(expr: &Expr, out: &mut [Sample]) {
    use crate::catalog::Func;
    match expr.unparen() {
        Expr::Call { func, .. } if func.func == Func::Sort => {
            out.sort_by(|a, b| cmp_nan_last(a.v, b.v));
        }
        Expr::Call { func, .. } if func.func == Func::SortDesc => {
            out.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (false, false) => b.v.partial_cmp(&a.v).unwrap_or(std::cmp::Ordering::Equal),
                _ => cmp_nan_last(a.v, b.v),
            });
        }
        Expr::Aggregate {
            op: crate::ast::AggrOp::Topk | crate::ast::AggrOp::Bottomk,
            ..
        } => {}
        _ => out.sort_by(|a, b| a.labels.cmp(&b.labels)),
    }
}

/// Ascending order with NaN after every number.
pub(crate) fn cmp_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ => a.partial_cmp(&b).unwrap_or(Equal),
    }
}

/// Evaluation state shared by all nodes of one query.
pub(crate) struct Evaluator<'a> {
    src: &'a dyn SeriesSource,
    pub(crate) opts: &'a EvalOptions,
    pub(crate) start: i64,
    pub(crate) step: i64,
    pub(crate) n: usize,
    deadline: Instant,
    samples_held: usize,
    series_selected: usize,
    check_counter: u32,
}

impl<'a> Evaluator<'a> {
    fn new(
        src: &'a dyn SeriesSource,
        opts: &'a EvalOptions,
        start: i64,
        end: i64,
        step: i64,
    ) -> Self {
        let n = ((end - start) / step.max(1)) as usize + 1;
        let now = Instant::now();
        Evaluator {
            src,
            opts,
            start,
            step: step.max(1),
            n,
            deadline: now
                .checked_add(opts.timeout)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            samples_held: 0,
            series_selected: 0,
            check_counter: 0,
        }
    }

    /// Timestamp of step `i`, ms.
    #[inline]
    pub(crate) fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    pub(crate) fn lookback_ms(&self) -> i64 {
        self.opts.lookback.as_millis() as i64
    }

    /// Accounts for `points` more samples held; fails past `max_samples`.
    pub(crate) fn charge(&mut self, points: usize) -> Result<(), EvalError> {
        self.samples_held = self.samples_held.saturating_add(points);
        if self.samples_held > self.opts.max_samples {
            return Err(EvalError::TooManySamples {
                limit: self.opts.max_samples,
            });
        }
        Ok(())
    }

    /// Fails once the deadline has passed. Cheap: reads the clock every
    /// 64th call.
    #[inline]
    pub(crate) fn check_deadline(&mut self) -> Result<(), EvalError> {
        self.check_counter = self.check_counter.wrapping_add(1);
        if self.check_counter.is_multiple_of(64) && Instant::now() > self.deadline {
            return Err(EvalError::Timeout {
                limit: self.opts.timeout,
            });
        }
        Ok(())
    }

    /// A fresh all-absent step slot vector, charged against the sample limit.
    pub(crate) fn new_vals(&mut self) -> Result<Vec<f64>, EvalError> {
        self.charge(self.n)?;
        Ok(vec![absent(); self.n])
    }

    /// Evaluates a node; afterwards only its own result stays charged.
    pub(crate) fn eval(&mut self, e: &Expr) -> Result<Val, EvalError> {
        let held_before = self.samples_held;
        if Instant::now() > self.deadline {
            return Err(EvalError::Timeout {
                limit: self.opts.timeout,
            });
        }
        let v = self.eval_node(e)?;
        self.samples_held = held_before + v.points();
        Ok(v)
    }

    fn eval_node(&mut self, e: &Expr) -> Result<Val, EvalError> {
        match e {
            Expr::Number(v) => Ok(Val::Scalar(vec![*v; self.n])),
            Expr::String(s) => Ok(Val::Str(s.clone())),
            Expr::Paren(inner) => self.eval(inner),
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs, false)?)),
            Expr::MatrixSelector { .. } => Err(EvalError::BadResultType {
                got: "range vector",
            }),
            Expr::Call { func, args } => functions::eval_call(self, func, args),
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
            } => aggregate::eval_aggregate(self, *op, expr, param.as_deref(), grouping, *without),
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
            } => binary::eval_binary(self, *op, lhs, rhs, *return_bool, matching.as_ref()),
            Expr::Neg(inner) => match self.eval(inner)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut series) => {
                    for s in &mut series {
                        s.labels.remove(crate::labels::METRIC_NAME);
                        for x in &mut s.vals {
                            if !is_absent(*x) {
                                *x = -*x;
                            }
                        }
                    }
                    check_unique_labels(&series)?;
                    Ok(Val::Vector(series))
                }
                Val::Str(_) => Err(EvalError::BadResultType { got: "string" }),
            },
        }
    }

    /// Calls the source once; applies the series limit, sorts series by
    /// labels (storage order in Prometheus) and canonicalises NaNs.
    fn select(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, EvalError> {
        let data = self.src.select(&vs.matchers, mint, maxt)?;
        self.admit(data)
    }

    /// Applies the series and sample limits to a selection, canonicalises
    /// NaNs and sorts series by labels.
    fn admit(&mut self, mut data: Vec<SeriesData>) -> Result<Vec<SeriesData>, EvalError> {
        self.series_selected += data.len();
        if self.series_selected > self.opts.max_series {
            return Err(EvalError::TooManySeries {
                limit: self.opts.max_series,
            });
        }
        let raw: usize = data.iter().map(|s| s.samples.len()).sum();
        self.charge(raw)?;
        for s in &mut data {
            // A read-only scan first: most series hold no NaN at all, and
            // writing through every sample cost 7 % of a large query.
            if !s.samples.iter().any(|(_, v)| v.is_nan()) {
                continue;
            }
            for (_, v) in &mut s.samples {
                if v.is_nan() && !is_stale_nan(*v) {
                    *v = f64::NAN;
                }
            }
        }
        data.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(data)
    }

    /// Samples of a range selector for all steps: `[start - off - range,
    /// end - off]`, stale markers removed.
    pub(crate) fn select_range(
        &mut self,
        vs: &VectorSelector,
        range_ms: i64,
    ) -> Result<Vec<SeriesData>, EvalError> {
        let (mint, maxt) = reads::range_window(self.start, self.ts(self.n - 1), vs, range_ms);
        let data = self.select(vs, mint, maxt)?;
        Ok(drop_stale(data))
    }

    /// Index range `[lo, hi)` of `samples` inside the window ending at `end`
    /// and starting at `start` (inclusive unless `left_open`).
    pub(crate) fn window_bounds(
        &self,
        samples: &[(i64, f64)],
        start: i64,
        end: i64,
    ) -> (usize, usize) {
        let lo = if self.opts.left_open {
            samples.partition_point(|&(t, _)| t <= start)
        } else {
            samples.partition_point(|&(t, _)| t < start)
        };
        let hi = samples.partition_point(|&(t, _)| t <= end);
        (lo, hi.max(lo))
    }

    /// Instant selector: the last sample in the lookback window per step;
    /// with `timestamps`, the sample's timestamp in seconds instead of its value.
    pub(crate) fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        timestamps: bool,
    ) -> Result<Vec<StepSeries>, EvalError> {
        let off = vs.offset_ms;
        let (mint, maxt) = reads::instant_window(self.start, self.ts(self.n - 1), vs, self.opts);
        let data = match self.select_instant_hinted(vs, mint, maxt)? {
            rollup::Selected::Samples(d) => d,
            rollup::Selected::Buckets(b) => {
                return rollup::eval_instant_buckets(self, b, off, timestamps);
            }
        };
        self.vector_selector_steps(data, off, timestamps)
    }

    /// The per-step walk of [`Self::eval_vector_selector`] over samples.
    fn vector_selector_steps(
        &mut self,
        data: Vec<SeriesData>,
        off: i64,
        timestamps: bool,
    ) -> Result<Vec<StepSeries>, EvalError> {
        let lb = self.lookback_ms();
        let mut out = Vec::with_capacity(data.len());
        for s in data {
            self.check_deadline()?;
            let mut vals = self.new_vals()?;
            let mut j = 0;
            let mut any = false;
            let samples = &s.samples;
            for (i, slot) in vals.iter_mut().enumerate() {
                let t = self.ts(i) - off;
                while j < samples.len() && samples[j].0 <= t {
                    j += 1;
                }
                if j == 0 {
                    continue;
                }
                let (st, v) = samples[j - 1];
                let inside = if self.opts.left_open {
                    st > t - lb
                } else {
                    st >= t - lb
                };
                if inside && !is_stale_nan(v) {
                    *slot = if timestamps { st as f64 / 1000.0 } else { v };
                    any = true;
                }
            }
            if any {
                out.push(StepSeries {
                    labels: s.labels,
                    vals,
                });
            }
        }
        Ok(out)
    }
}

/// Removes stale markers from a range selection, and series left empty.
fn drop_stale(mut data: Vec<SeriesData>) -> Vec<SeriesData> {
    for s in &mut data {
        if s.samples.iter().any(|&(_, v)| is_stale_nan(v)) {
            s.samples.retain(|&(_, v)| !is_stale_nan(v));
        }
    }
    data.retain(|s| !s.samples.is_empty());
    data
}

/// Whole-result check Prometheus applies after range-vector functions and
/// unary minus: no two series may share a label set.
pub(crate) fn check_unique_labels(series: &[StepSeries]) -> Result<(), EvalError> {
    if series.len() < 2 {
        return Ok(());
    }
    let mut idx: Vec<usize> = (0..series.len()).collect();
    idx.sort_by(|&a, &b| series[a].labels.cmp(&series[b].labels));
    for w in idx.windows(2) {
        if series[w[0]].labels == series[w[1]].labels {
            return Err(EvalError::DuplicateLabelset {
                labels: series[w[0]].labels.to_string(),
            });
        }
    }
    Ok(())
}

/// Per-step rule Prometheus applies to every step-wise operation: series
/// with equal label sets are one output series, and it is an error for two
/// of them to have a sample at the same step.
pub(crate) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, EvalError> {
    if series.len() < 2 {
        return Ok(series);
    }
    let mut by_labels: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match by_labels.get(&s.labels) {
            None => {
                by_labels.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let dst = &mut out[i];
                for (d, v) in dst.vals.iter_mut().zip(&s.vals) {
                    if is_absent(*v) {
                        continue;
                    }
                    if !is_absent(*d) {
                        return Err(EvalError::DuplicateLabelset {
                            labels: s.labels.to_string(),
                        });
                    }
                    *d = *v;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_marker_is_not_produced_by_arithmetic() {
        let a = absent();
        assert!(is_absent(a));
        assert!(!is_absent(a + 1.0));
        assert!(!is_absent(f64::NAN));
        assert!(!is_absent(-f64::NAN));
    }
}
