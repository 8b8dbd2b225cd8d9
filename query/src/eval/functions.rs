//! Function calls: range-vector functions (`rate`, `*_over_time`, ...),
//! element-wise math, label manipulation, `histogram_quantile`, `absent`.
//!
//! Range functions walk each selected series once with a window cursor that
//! only moves forward; `rate`/`increase` find counter resets through a
//! precomputed reset list, `changes`/`resets` through prefix counts and
//! `min`/`max_over_time` through a monotonic deque, so a step costs O(1)
//! amortised for those. Results follow Prometheus 2.42's `functions.go`
//! (extrapolation, Kahan sums, NaN rules); Go's `math.Max`/`Min` NaN rules
//! are reproduced by [`go_max`]/[`go_min`].

use std::collections::{HashMap, VecDeque};

use regex::Regex;

use super::{
    EvalError, Evaluator, StepSeries, Val, absent, check_unique_labels, cmp_nan_last, is_absent,
    merge_same_labels,
};
use crate::ast::{Expr, VectorSelector};
use crate::catalog::{Func, FunctionDef};
use crate::labels::{Labels, METRIC_NAME, MatchOp};

pub(crate) fn eval_call(
    ev: &mut Evaluator<'_>,
    def: &FunctionDef,
    args: &[Expr],
) -> Result<Val, EvalError> {
    use Func::*;
    let n = ev.n;
    match def.func {
        Time => Ok(Val::Scalar(
            (0..n).map(|i| ev.ts(i) as f64 / 1000.0).collect(),
        )),
        Pi => Ok(Val::Scalar(vec![std::f64::consts::PI; n])),
        Vector => {
            let vals = ev.eval(&args[0])?.into_scalar();
            Ok(Val::Vector(vec![StepSeries {
                labels: Labels::new(),
                vals,
            }]))
        }
        Scalar => {
            let series = ev.eval(&args[0])?.into_vector();
            let mut out = vec![f64::NAN; n];
            for (i, o) in out.iter_mut().enumerate() {
                let mut present = series.iter().map(|s| s.vals[i]).filter(|v| !is_absent(*v));
                if let (Some(v), None) = (present.next(), present.next()) {
                    *o = v;
                }
            }
            Ok(Val::Scalar(out))
        }
        Timestamp => {
            let series = if let Expr::VectorSelector(vs) = args[0].unparen() {
                ev.eval_vector_selector(vs, true)?
            } else {
                let mut s = ev.eval(&args[0])?.into_vector();
                for series in &mut s {
                    for (i, v) in series.vals.iter_mut().enumerate() {
                        if !is_absent(*v) {
                            *v = (ev.start + i as i64 * ev.step) as f64 / 1000.0;
                        }
                    }
                }
                s
            };
            map_vector(series, |v| v)
        }
        Abs => simple(ev, args, f64::abs),
        Ceil => simple(ev, args, f64::ceil),
        Floor => simple(ev, args, f64::floor),
        Exp => simple(ev, args, f64::exp),
        Sqrt => simple(ev, args, f64::sqrt),
        Ln => simple(ev, args, f64::ln),
        Log2 => simple(ev, args, f64::log2),
        Log10 => simple(ev, args, f64::log10),
        Sin => simple(ev, args, f64::sin),
        Cos => simple(ev, args, f64::cos),
        Tan => simple(ev, args, f64::tan),
        Asin => simple(ev, args, f64::asin),
        Acos => simple(ev, args, f64::acos),
        Atan => simple(ev, args, f64::atan),
        Sinh => simple(ev, args, f64::sinh),
        Cosh => simple(ev, args, f64::cosh),
        Tanh => simple(ev, args, f64::tanh),
        Asinh => simple(ev, args, f64::asinh),
        Acosh => simple(ev, args, f64::acosh),
        Atanh => simple(ev, args, f64::atanh),
        Deg => simple(ev, args, |v| v * 180.0 / std::f64::consts::PI),
        Rad => simple(ev, args, |v| v * std::f64::consts::PI / 180.0),
        Sgn => simple(ev, args, |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        }),
        Clamp | ClampMin | ClampMax | Round => {
            let series = ev.eval(&args[0])?.into_vector();
            let a = match args.get(1) {
                Some(e) => ev.eval(e)?.into_scalar(),
                None => vec![1.0; n],
            };
            let b = match args.get(2) {
                Some(e) => ev.eval(e)?.into_scalar(),
                None => Vec::new(),
            };
            let mut out = Vec::with_capacity(series.len());
            for mut s in series {
                s.labels.remove(METRIC_NAME);
                for (i, v) in s.vals.iter_mut().enumerate() {
                    if is_absent(*v) {
                        continue;
                    }
                    *v = match def.func {
                        Clamp if b[i] < a[i] => absent(),
                        Clamp => go_max(a[i], go_min(b[i], *v)),
                        ClampMin => go_max(a[i], *v),
                        ClampMax => go_min(a[i], *v),
                        _ => {
                            // Invert as Prometheus does (fewer float accuracy issues).
                            let inv = 1.0 / a[i];
                            (*v * inv + 0.5).floor() / inv
                        }
                    };
                }
                out.push(s);
            }
            Ok(Val::Vector(merge_same_labels(out)?))
        }
        Sort | SortDesc => ev.eval(&args[0]),
        LabelReplace => label_replace(ev, args),
        LabelJoin => label_join(ev, args),
        Absent => {
            let series = ev.eval(&args[0])?.into_vector();
            let labels = absent_labels(args[0].unparen());
            let mut vals = ev.new_vals()?;
            let mut any = false;
            for (i, slot) in vals.iter_mut().enumerate() {
                if !series.iter().any(|s| !is_absent(s.vals[i])) {
                    *slot = 1.0;
                    any = true;
                }
            }
            Ok(Val::Vector(if any {
                vec![StepSeries { labels, vals }]
            } else {
                Vec::new()
            }))
        }
        HistogramQuantile => histogram_quantile(ev, args),
        Rate | Increase | Delta | Irate | Idelta | Deriv | Changes | Resets | AvgOverTime
        | MinOverTime | MaxOverTime | SumOverTime | CountOverTime | LastOverTime
        | StddevOverTime | StdvarOverTime | QuantileOverTime | PresentOverTime | AbsentOverTime
        | PredictLinear => over_range(ev, def.func, args),
    }
}

/// Go's `math.Max`: +Inf wins over NaN, otherwise NaN wins; +0 beats -0.
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        f64::INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() { y } else { x }
    } else if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`: -Inf wins over NaN, otherwise NaN wins; -0 beats +0.
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() { x } else { y }
    } else if x < y {
        x
    } else {
        y
    }
}

/// Element-wise function that drops the metric name.
fn simple(ev: &mut Evaluator<'_>, args: &[Expr], f: impl Fn(f64) -> f64) -> Result<Val, EvalError> {
    let series = ev.eval(&args[0])?.into_vector();
    map_vector(series, f)
}

fn map_vector(series: Vec<StepSeries>, f: impl Fn(f64) -> f64) -> Result<Val, EvalError> {
    let mut out = series;
    for s in &mut out {
        s.labels.remove(METRIC_NAME);
        for v in &mut s.vals {
            if !is_absent(*v) {
                *v = f(*v);
            }
        }
    }
    Ok(Val::Vector(merge_same_labels(out)?))
}

fn string_arg(e: &Expr) -> &str {
    match e.unparen() {
        Expr::String(s) => s,
        _ => {
            debug_assert!(false, "type checker guarantees a string literal");
            ""
        }
    }
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn label_replace(ev: &mut Evaluator<'_>, args: &[Expr]) -> Result<Val, EvalError> {
    let (dst, repl, src, re) = (
        string_arg(&args[1]),
        string_arg(&args[2]),
        string_arg(&args[3]),
        string_arg(&args[4]),
    );
    let regex = Regex::new(&format!("^(?:{re})$")).map_err(|_| {
        EvalError::InvalidArgument(format!(
            "invalid regular expression in label_replace(): {re}"
        ))
    })?;
    if !valid_label_name(dst) {
        return Err(EvalError::InvalidArgument(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut series = ev.eval(&args[0])?.into_vector();
    for s in &mut series {
        let src_val = s.labels.get_or_empty(src).to_string();
        if let Some(caps) = regex.captures(&src_val) {
            let mut res = String::new();
            caps.expand(repl, &mut res);
            s.labels.set(dst, res);
        }
    }
    Ok(Val::Vector(merge_same_labels(series)?))
}

fn label_join(ev: &mut Evaluator<'_>, args: &[Expr]) -> Result<Val, EvalError> {
    let dst = string_arg(&args[1]);
    let sep = string_arg(&args[2]);
    let srcs: Vec<&str> = args[3..].iter().map(string_arg).collect();
    for s in &srcs {
        if !valid_label_name(s) {
            return Err(EvalError::InvalidArgument(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
    }
    if !valid_label_name(dst) {
        return Err(EvalError::InvalidArgument(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut series = ev.eval(&args[0])?.into_vector();
    for s in &mut series {
        let joined = srcs
            .iter()
            .map(|l| s.labels.get_or_empty(l))
            .collect::<Vec<_>>()
            .join(sep);
        s.labels.set(dst, joined);
    }
    Ok(Val::Vector(merge_same_labels(series)?))
}

/// Labels of `absent(x)`: the `=` matchers of a selector argument, minus
/// names matched more than once or by other operators.
fn absent_labels(e: &Expr) -> Labels {
    let vs: &VectorSelector = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector { selector, .. } => selector,
        _ => return Labels::new(),
    };
    let mut out = Labels::new();
    let mut empty = Vec::new();
    for m in &vs.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && out.get(&m.name).is_none() {
            out.set(&m.name, m.value.clone());
        } else {
            empty.push(m.name.clone());
        }
    }
    out.drop_names(&empty);
    out
}

fn histogram_quantile(ev: &mut Evaluator<'_>, args: &[Expr]) -> Result<Val, EvalError> {
    let q = ev.eval(&args[0])?.into_scalar();
    let series = ev.eval(&args[1])?.into_vector();
    // Group the buckets: labels without `le`, plus the metric name (so two
    // histograms differing only by name are not mixed, like Prometheus).
    let mut groups: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut group_labels: Vec<Labels> = Vec::new();
    let mut members: Vec<(usize, usize, f64)> = Vec::new(); // (series, group, upper bound)
    let mut key = Vec::new();
    let le = ["le".to_string()];
    for (si, s) in series.iter().enumerate() {
        let Some(upper) = s.labels.get("le").and_then(parse_go_float) else {
            continue;
        };
        s.labels.signature(false, &le, &mut key);
        key.push(0xfe);
        key.extend_from_slice(s.labels.get_or_empty(METRIC_NAME).as_bytes());
        let g = *groups.entry(key.clone()).or_insert_with(|| {
            let mut l = s.labels.without_name();
            l.remove("le");
            group_labels.push(l);
            group_labels.len() - 1
        });
        members.push((si, g, upper));
    }
    let mut out: Vec<StepSeries> = Vec::with_capacity(group_labels.len());
    for l in &group_labels {
        out.push(StepSeries {
            labels: l.clone(),
            vals: ev.new_vals()?,
        });
    }
    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); group_labels.len()];
    for i in 0..ev.n {
        ev.check_deadline()?;
        for b in &mut buckets {
            b.clear();
        }
        for &(si, g, upper) in &members {
            let v = series[si].vals[i];
            if !is_absent(v) {
                buckets[g].push((upper, v));
            }
        }
        for (g, b) in buckets.iter_mut().enumerate() {
            if !b.is_empty() {
                out[g].vals[i] = bucket_quantile(q[i], b);
            }
        }
    }
    out.retain(|s| s.vals.iter().any(|v| !is_absent(*v)));
    Ok(Val::Vector(merge_same_labels(out)?))
}

/// Go's `strconv.ParseFloat` for bucket bounds (`+Inf`, `1e3`, `0.5`).
fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches('+');
    if t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity") {
        return Some(if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    s.parse().ok()
}

/// Prometheus 2.42 `bucketQuantile`: sort, require a `+Inf` bucket, merge
/// equal bounds, force monotonic counts, interpolate linearly.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal upper bounds.
    let mut w = 0;
    for r in 1..buckets.len() {
        if buckets[r].0 == buckets[w].0 {
            buckets[w].1 += buckets[r].1;
        } else {
            w += 1;
            buckets[w] = buckets[r];
        }
    }
    buckets.truncate(w + 1);
    // Ensure monotonic counts.
    let mut max = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let last = buckets.len() - 1;
    let b = buckets[..last]
        .iter()
        .position(|b| b.1 >= rank)
        .unwrap_or(last);
    if b == last {
        return buckets[last - 1].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let mut bucket_start = 0.0;
    let bucket_end = buckets[b].0;
    let mut count = buckets[b].1;
    if b > 0 {
        bucket_start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Prometheus `quantile`: linear interpolation between closest ranks; NaN
/// sorts first (as in Go's `vectorByValueHeap`).
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => cmp_nan_last(*a, *b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Neumaier-compensated summation step (Prometheus `kahanSumInc`).
#[inline]
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Least-squares fit; `x` is seconds relative to `intercept_t`.
fn linear_regression(w: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = w[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in w.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov_xy = sxy - sx * sy / n;
    let var_x = sx2 - sx * sx / n;
    let slope = cov_xy / var_x;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

/// The first and last sample of a rate window (times in ms, as floats so
/// that rollup buckets can place assumed samples between milliseconds) and
/// how many samples it holds.
pub(crate) struct RateWindow {
    pub(crate) first_t: f64,
    pub(crate) first_v: f64,
    pub(crate) last_t: f64,
    pub(crate) count: f64,
}

/// Prometheus `extrapolatedRate` for one window. `result` already holds the
/// counter-reset corrections of the window.
#[allow(clippy::too_many_arguments)]
pub(crate) fn extrapolated_rate(
    w: &RateWindow,
    result: f64,
    range_start: i64,
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> f64 {
    let mut duration_to_start = (w.first_t - range_start as f64) / 1000.0;
    let duration_to_end = (range_end as f64 - w.last_t) / 1000.0;
    let sampled = (w.last_t - w.first_t) / 1000.0;
    let avg = sampled / (w.count - 1.0);
    if is_counter && result > 0.0 && w.first_v >= 0.0 {
        let to_zero = sampled * (w.first_v / result);
        if to_zero < duration_to_start {
            duration_to_start = to_zero;
        }
    }
    let threshold = avg * 1.1;
    let mut interval = sampled;
    interval += if duration_to_start < threshold {
        duration_to_start
    } else {
        avg / 2.0
    };
    interval += if duration_to_end < threshold {
        duration_to_end
    } else {
        avg / 2.0
    };
    let mut factor = interval / sampled;
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    result * factor
}

/// A forward-only window over sorted samples.
struct Window {
    lo: usize,
    hi: usize,
    left_open: bool,
}

impl Window {
    #[inline]
    fn advance(&mut self, s: &[(i64, f64)], start: i64, end: i64) -> (usize, usize) {
        while self.hi < s.len() && s[self.hi].0 <= end {
            self.hi += 1;
        }
        while self.lo < s.len()
            && (s[self.lo].0 < start || (self.left_open && s[self.lo].0 == start))
        {
            self.lo += 1;
        }
        (self.lo, self.hi.max(self.lo))
    }
}

/// Per-series scratch reused across series (no per-step allocation).
#[derive(Default)]
struct Scratch {
    resets: Vec<usize>,
    prefix: Vec<u32>,
    deque: VecDeque<usize>,
    values: Vec<f64>,
}

fn over_range(ev: &mut Evaluator<'_>, func: Func, args: &[Expr]) -> Result<Val, EvalError> {
    let (m_idx, s_idx) = match func {
        Func::QuantileOverTime => (1, Some(0)),
        Func::PredictLinear => (0, Some(1)),
        _ => (0, None),
    };
    let scalar = match s_idx {
        Some(i) => ev.eval(&args[i])?.into_scalar(),
        None => Vec::new(),
    };
    let Expr::MatrixSelector { selector, range_ms } = args[m_idx].unparen() else {
        return Err(EvalError::BadResultType {
            got: "expression (range functions need a range selector)",
        });
    };
    let range = *range_ms;
    let off = selector.offset_ms;
    let data = match ev.select_range_hinted(selector, range, func)? {
        super::rollup::Selected::Samples(d) => d,
        super::rollup::Selected::Buckets(b) => {
            return super::rollup::eval_range_buckets(ev, func, b, range, off);
        }
    };
    let left_open = ev.opts.left_open;

    if func == Func::AbsentOverTime {
        let mut vals = ev.new_vals()?;
        let mut any = false;
        let mut windows: Vec<Window> = data
            .iter()
            .map(|_| Window {
                lo: 0,
                hi: 0,
                left_open,
            })
            .collect();
        for (i, slot) in vals.iter_mut().enumerate() {
            let t = ev.ts(i) - off;
            let present = data.iter().zip(windows.iter_mut()).any(|(s, w)| {
                let (lo, hi) = w.advance(&s.samples, t - range, t);
                hi > lo
            });
            if !present {
                *slot = 1.0;
                any = true;
            }
        }
        let labels = absent_labels(args[0].unparen());
        return Ok(Val::Vector(if any {
            vec![StepSeries { labels, vals }]
        } else {
            Vec::new()
        }));
    }

    // Every series is independent: charge the whole result up front, then
    // spread the series over the cores (this loop is most of a large
    // rate/over_time query).
    let n = ev.n;
    ev.charge(data.len().saturating_mul(n))?;
    let params = RangeParams {
        func,
        start: ev.start,
        step: ev.step,
        off,
        range,
        left_open,
        scalar: &scalar,
        deadline: ev.deadline,
        timeout: ev.opts.timeout,
    };
    let threads = if data.len() < 2 * PARALLEL_MIN_SERIES {
        1
    } else {
        cores().min(data.len() / PARALLEL_MIN_SERIES).max(1)
    };
    let results: Vec<Option<Vec<f64>>> = if threads == 1 {
        range_series_all(&params, &data, n)?
    } else {
        let per = data.len().div_ceil(threads);
        let parts: Vec<Result<Vec<Option<Vec<f64>>>, EvalError>> = std::thread::scope(|sc| {
            let handles: Vec<_> = data
                .chunks(per)
                .map(|chunk| {
                    let params = &params;
                    sc.spawn(move || range_series_all(params, chunk, n))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("range function worker panicked"))
                .collect()
        });
        let mut all = Vec::with_capacity(data.len());
        for part in parts {
            all.extend(part?);
        }
        all
    };
    let mut out = Vec::with_capacity(data.len());
    for (s, vals) in data.into_iter().zip(results) {
        let Some(vals) = vals else { continue };
        let labels = if func == Func::LastOverTime {
            s.labels
        } else {
            s.labels.without_name()
        };
        out.push(StepSeries { labels, vals });
    }
    check_unique_labels(&out)?;
    Ok(Val::Vector(out))
}

/// The machine's cores, read once: `available_parallelism` reads cgroup
/// files on every call, which a rule round of a thousand small range
/// functions would otherwise pay a thousand times.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |t| t.get()))
}

/// A series count below which splitting a range function across threads
/// costs more than it saves.
const PARALLEL_MIN_SERIES: usize = 64;

/// What a range function needs per series, shared read-only by workers.
struct RangeParams<'a> {
    func: Func,
    start: i64,
    step: i64,
    off: i64,
    range: i64,
    left_open: bool,
    scalar: &'a [f64],
    deadline: std::time::Instant,
    timeout: std::time::Duration,
}

/// Evaluates a range function over `data` series; `None` where a series
/// has no value at any step.
fn range_series_all(
    p: &RangeParams<'_>,
    data: &[crate::source::SeriesData],
    n: usize,
) -> Result<Vec<Option<Vec<f64>>>, EvalError> {
    let mut sc = Scratch::default();
    let mut out = Vec::with_capacity(data.len());
    for (k, s) in data.iter().enumerate() {
        if k % 64 == 0 && std::time::Instant::now() > p.deadline {
            return Err(EvalError::Timeout { limit: p.timeout });
        }
        let mut vals = vec![absent(); n];
        let any = range_series(p, &s.samples, &mut sc, &mut vals);
        out.push(any.then_some(vals));
    }
    Ok(out)
}

/// One series of a range function: fills `vals` per step, returns whether
/// any step has a value.
fn range_series(
    p: &RangeParams<'_>,
    samples: &[(i64, f64)],
    sc: &mut Scratch,
    vals: &mut [f64],
) -> bool {
    let (func, off, range, left_open) = (p.func, p.off, p.range, p.left_open);
    prepare(func, samples, sc);
    let mut win = Window {
        lo: 0,
        hi: 0,
        left_open,
    };
    let mut reset_ptr = 0usize;
    let mut dq_next = 0usize; // next sample index to push into the deque
    let mut any = false;
    for (i, slot) in vals.iter_mut().enumerate() {
        let t = p.start + i as i64 * p.step - off;
        let (lo, hi) = win.advance(samples, t - range, t);
        if hi == lo {
            continue;
        }
        let w = &samples[lo..hi];
        let v = match func {
            Func::Rate | Func::Increase | Func::Delta => {
                if w.len() < 2 {
                    continue;
                }
                let is_counter = func != Func::Delta;
                let mut result = w[w.len() - 1].1 - w[0].1;
                if is_counter {
                    while reset_ptr < sc.resets.len() && sc.resets[reset_ptr] <= lo {
                        reset_ptr += 1;
                    }
                    let mut k = reset_ptr;
                    while k < sc.resets.len() && sc.resets[k] < hi {
                        result += samples[sc.resets[k] - 1].1;
                        k += 1;
                    }
                }
                let rw = RateWindow {
                    first_t: w[0].0 as f64,
                    first_v: w[0].1,
                    last_t: w[w.len() - 1].0 as f64,
                    count: w.len() as f64,
                };
                extrapolated_rate(
                    &rw,
                    result,
                    t - range,
                    t,
                    range,
                    is_counter,
                    func == Func::Rate,
                )
            }
            Func::Irate | Func::Idelta => {
                if w.len() < 2 {
                    continue;
                }
                let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
                let is_rate = func == Func::Irate;
                let result = if is_rate && last.1 < prev.1 {
                    last.1
                } else {
                    last.1 - prev.1
                };
                let interval = last.0 - prev.0;
                if interval == 0 {
                    continue;
                }
                if is_rate {
                    result / (interval as f64 / 1000.0)
                } else {
                    result
                }
            }
            Func::Deriv => {
                if w.len() < 2 {
                    continue;
                }
                linear_regression(w, w[0].0).0
            }
            Func::PredictLinear => {
                if w.len() < 2 {
                    continue;
                }
                let (slope, intercept) = linear_regression(w, p.start + i as i64 * p.step);
                slope * p.scalar[i] + intercept
            }
            Func::Changes | Func::Resets => (sc.prefix[hi - 1] - sc.prefix[lo]) as f64,
            Func::CountOverTime => w.len() as f64,
            Func::LastOverTime => w[w.len() - 1].1,
            Func::PresentOverTime => 1.0,
            Func::SumOverTime => {
                let (mut sum, mut c) = (0.0, 0.0);
                for &(_, v) in w {
                    (sum, c) = kahan_inc(v, sum, c);
                }
                if sum.is_infinite() { sum } else { sum + c }
            }
            Func::AvgOverTime => avg_over_time(w),
            Func::StddevOverTime | Func::StdvarOverTime => {
                let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) =
                    (0.0, 0.0, 0.0, 0.0, 0.0);
                for &(_, v) in w {
                    count += 1.0;
                    let delta = v - (mean + c_mean);
                    (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
                    (aux, c_aux) = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux);
                }
                let var = (aux + c_aux) / count;
                if func == Func::StddevOverTime {
                    var.sqrt()
                } else {
                    var
                }
            }
            Func::QuantileOverTime => {
                sc.values.clear();
                sc.values.extend(w.iter().map(|&(_, v)| v));
                quantile(p.scalar[i], &mut sc.values)
            }
            Func::MaxOverTime | Func::MinOverTime => {
                let is_max = func == Func::MaxOverTime;
                // Monotonic deque over non-NaN samples: front is the extreme.
                while dq_next < hi {
                    let v = samples[dq_next].1;
                    if !v.is_nan() {
                        while let Some(&b) = sc.deque.back() {
                            let bv = samples[b].1;
                            if (is_max && bv <= v) || (!is_max && bv >= v) {
                                sc.deque.pop_back();
                            } else {
                                break;
                            }
                        }
                        sc.deque.push_back(dq_next);
                    }
                    dq_next += 1;
                }
                while sc.deque.front().is_some_and(|&f| f < lo) {
                    sc.deque.pop_front();
                }
                match sc.deque.front() {
                    Some(&f) => samples[f].1,
                    None => f64::NAN,
                }
            }
            _ => continue,
        };
        *slot = v;
        any = true;
    }
    any
}

/// Per-series precomputation for the O(1)-per-step functions.
fn prepare(func: Func, samples: &[(i64, f64)], sc: &mut Scratch) {
    sc.deque.clear();
    match func {
        Func::Rate | Func::Increase => {
            sc.resets.clear();
            for j in 1..samples.len() {
                if samples[j].1 < samples[j - 1].1 {
                    sc.resets.push(j);
                }
            }
        }
        Func::Changes | Func::Resets => {
            sc.prefix.clear();
            sc.prefix.push(0);
            for j in 1..samples.len() {
                let (prev, cur) = (samples[j - 1].1, samples[j].1);
                let hit = if func == Func::Changes {
                    cur != prev && !(cur.is_nan() && prev.is_nan())
                } else {
                    cur < prev
                };
                let last = *sc.prefix.last().unwrap_or(&0);
                sc.prefix.push(last + u32::from(hit));
            }
        }
        _ => {}
    }
}

/// Prometheus 2.42 `avg_over_time`: compensated incremental mean that
/// keeps an infinite mean instead of turning it into NaN.
pub(crate) fn avg_over_time(w: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
    for &(_, v) in w {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_min_max_nan_rules() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert_eq!(go_max(f64::INFINITY, f64::NAN), f64::INFINITY);
        assert_eq!(go_min(f64::NEG_INFINITY, f64::NAN), f64::NEG_INFINITY);
        assert!(go_min(0.0, -0.0).is_sign_negative());
    }

    #[test]
    fn bucket_quantile_interpolates_and_fixes_monotonicity() {
        let mut b = vec![(0.1, 10.0), (0.2, 20.0), (f64::INFINITY, 20.0)];
        assert!((bucket_quantile(0.5, &mut b) - 0.1).abs() < 1e-12);
        let mut b = vec![(1.0, 5.0), (2.0, 4.0), (f64::INFINITY, 10.0)];
        // Count of le=2 is raised to 5.
        assert!((bucket_quantile(0.5, &mut b) - 1.0).abs() < 1e-12);
        let mut b = vec![(1.0, 5.0)];
        assert!(bucket_quantile(0.5, &mut b).is_nan());
    }

    #[test]
    fn quantile_interpolates() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(2.0, &mut v), f64::INFINITY);
    }
}
