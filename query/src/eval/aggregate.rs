//! Aggregation operators (`sum`, `avg`, `topk`, `count_values`, ...) with
//! `by`/`without`.
//!
//! Groups are computed once per input series (labels do not change across
//! steps); each step then folds the present series of every group in input
//! order, with Prometheus 2.42's arithmetic (incremental mean for `avg`,
//! Welford for `stddev`/`stdvar`, NaN loses in `min`/`max`/`topk`).
//! Output labels: `by` keeps the listed labels, `without` drops them and
//! the metric name; `topk`/`bottomk` return input series unchanged.

use std::collections::HashMap;

use super::functions::quantile;
use super::{EvalError, Evaluator, StepSeries, Val, cmp_nan_last, is_absent};
use crate::ast::{AggrOp, Expr};
use crate::labels::{Labels, METRIC_NAME};

pub(crate) fn eval_aggregate(
    ev: &mut Evaluator<'_>,
    op: AggrOp,
    expr: &Expr,
    param: Option<&Expr>,
    grouping: &[String],
    without: bool,
) -> Result<Val, EvalError> {
    let mut scalar_param = Vec::new();
    let mut label_param = String::new();
    if let Some(p) = param {
        match ev.eval(p)? {
            Val::Scalar(v) => scalar_param = v,
            Val::Str(s) => label_param = s,
            Val::Vector(_) => debug_assert!(false, "type checker guarantees scalar or string"),
        }
    }
    let input = ev.eval(expr)?.into_vector();
    if op == AggrOp::CountValues {
        return count_values(ev, &input, &label_param, grouping, without);
    }

    // Group assignment, once per input series.
    let mut keys: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut group_labels: Vec<Labels> = Vec::new();
    let mut gid = Vec::with_capacity(input.len());
    let mut key = Vec::new();
    for s in &input {
        if without {
            s.labels.signature(false, grouping, &mut key);
        } else {
            s.labels.signature(true, grouping, &mut key);
        }
        let g = *keys.entry(key.clone()).or_insert_with(|| {
            group_labels.push(group_labels_of(&s.labels, grouping, without));
            group_labels.len() - 1
        });
        gid.push(g);
    }
    let ng = group_labels.len();

    match op {
        AggrOp::Topk | AggrOp::Bottomk => return topk(ev, op, input, &gid, ng, &scalar_param),
        AggrOp::Quantile => {
            let mut out = new_outputs(ev, &group_labels)?;
            let mut buf: Vec<Vec<f64>> = vec![Vec::new(); ng];
            for i in 0..ev.n {
                ev.check_deadline()?;
                buf.iter_mut().for_each(Vec::clear);
                for (s, &g) in input.iter().zip(&gid) {
                    let v = s.vals[i];
                    if !is_absent(v) {
                        buf[g].push(v);
                    }
                }
                for (g, vals) in buf.iter_mut().enumerate() {
                    if !vals.is_empty() {
                        out[g].vals[i] = quantile(scalar_param[i], vals);
                    }
                }
            }
            return Ok(Val::Vector(retain_present(out)));
        }
        _ => {}
    }

    let mut out = new_outputs(ev, &group_labels)?;
    // Per-group fold state, reset lazily per step via `seen`.
    let mut seen = vec![usize::MAX; ng];
    let mut value = vec![0.0f64; ng];
    let mut mean = vec![0.0f64; ng];
    let mut count = vec![0.0f64; ng];
    for i in 0..ev.n {
        ev.check_deadline()?;
        for (s, &g) in input.iter().zip(&gid) {
            let v = s.vals[i];
            if is_absent(v) {
                continue;
            }
            if seen[g] != i {
                seen[g] = i;
                count[g] = 1.0;
                mean[g] = v;
                value[g] = match op {
                    AggrOp::Stddev | AggrOp::Stdvar => 0.0,
                    AggrOp::Group => 1.0,
                    _ => v,
                };
                continue;
            }
            match op {
                AggrOp::Sum => value[g] += v,
                AggrOp::Avg => {
                    count[g] += 1.0;
                    let m = mean[g];
                    if m.is_infinite() {
                        if v.is_infinite() && (m > 0.0) == (v > 0.0) {
                            continue;
                        }
                        if !v.is_infinite() && !v.is_nan() {
                            continue;
                        }
                    }
                    mean[g] += v / count[g] - m / count[g];
                }
                AggrOp::Group => {}
                AggrOp::Max => {
                    if value[g] < v || value[g].is_nan() {
                        value[g] = v;
                    }
                }
                AggrOp::Min => {
                    if value[g] > v || value[g].is_nan() {
                        value[g] = v;
                    }
                }
                AggrOp::Count => count[g] += 1.0,
                AggrOp::Stddev | AggrOp::Stdvar => {
                    count[g] += 1.0;
                    let delta = v - mean[g];
                    mean[g] += delta / count[g];
                    value[g] += delta * (v - mean[g]);
                }
                AggrOp::Topk | AggrOp::Bottomk | AggrOp::Quantile | AggrOp::CountValues => {}
            }
        }
        for g in 0..ng {
            if seen[g] != i {
                continue;
            }
            out[g].vals[i] = match op {
                AggrOp::Avg => mean[g],
                AggrOp::Count => count[g],
                AggrOp::Stdvar => value[g] / count[g],
                AggrOp::Stddev => (value[g] / count[g]).sqrt(),
                _ => value[g],
            };
        }
    }
    Ok(Val::Vector(retain_present(out)))
}

fn group_labels_of(l: &Labels, grouping: &[String], without: bool) -> Labels {
    if without {
        let mut m = l.clone();
        m.drop_names(grouping);
        m.remove(METRIC_NAME);
        m
    } else if grouping.is_empty() {
        Labels::new()
    } else {
        let mut m = l.clone();
        m.keep(grouping);
        m
    }
}

fn new_outputs(ev: &mut Evaluator<'_>, labels: &[Labels]) -> Result<Vec<StepSeries>, EvalError> {
    labels
        .iter()
        .map(|l| {
            Ok(StepSeries {
                labels: l.clone(),
                vals: ev.new_vals()?,
            })
        })
        .collect()
}

fn retain_present(mut out: Vec<StepSeries>) -> Vec<StepSeries> {
    out.retain(|s| s.vals.iter().any(|v| !is_absent(*v)));
    out
}

/// `topk`/`bottomk`: per step and group, the k largest (smallest) values,
/// NaN last, earlier series first among equal values.
fn topk(
    ev: &mut Evaluator<'_>,
    op: AggrOp,
    input: Vec<StepSeries>,
    gid: &[usize],
    ng: usize,
    k_param: &[f64],
) -> Result<Val, EvalError> {
    let mut out: Vec<StepSeries> = Vec::with_capacity(input.len());
    for s in &input {
        out.push(StepSeries {
            labels: s.labels.clone(),
            vals: ev.new_vals()?,
        });
    }
    let mut cands: Vec<Vec<usize>> = vec![Vec::new(); ng];
    for i in 0..ev.n {
        ev.check_deadline()?;
        let kf = k_param[i];
        if !(-9.223_372_036_854_776e18..=9.223_372_036_854_776e18).contains(&kf) {
            return Err(EvalError::InvalidArgument(format!(
                "Scalar value {kf} overflows int64"
            )));
        }
        let k = kf as i64;
        if k < 1 {
            continue;
        }
        cands.iter_mut().for_each(Vec::clear);
        for (si, s) in input.iter().enumerate() {
            if !is_absent(s.vals[i]) {
                cands[gid[si]].push(si);
            }
        }
        for c in &mut cands {
            c.sort_by(|&a, &b| {
                let (va, vb) = (input[a].vals[i], input[b].vals[i]);
                let ord = if op == AggrOp::Topk {
                    match (va.is_nan(), vb.is_nan()) {
                        (false, false) => vb.partial_cmp(&va).unwrap_or(std::cmp::Ordering::Equal),
                        _ => cmp_nan_last(va, vb),
                    }
                } else {
                    cmp_nan_last(va, vb)
                };
                ord.then(a.cmp(&b))
            });
            for &si in c.iter().take(k.min(c.len() as i64) as usize) {
                out[si].vals[i] = input[si].vals[i];
            }
        }
    }
    // For instant queries keep the ranked order (group by group).
    if ev.n == 1 {
        let mut order: Vec<usize> = Vec::new();
        for c in &cands {
            order.extend(c.iter().copied().filter(|&si| !is_absent(out[si].vals[0])));
        }
        let mut slots: Vec<Option<StepSeries>> = out.into_iter().map(Some).collect();
        let ranked = order
            .into_iter()
            .filter_map(|si| slots[si].take())
            .collect();
        return Ok(Val::Vector(ranked));
    }
    Ok(Val::Vector(retain_present(out)))
}

/// `count_values("label", v)`: counts series per distinct value; the value
/// (Go `FormatFloat(v, 'f', -1)`) becomes label `label`.
fn count_values(
    ev: &mut Evaluator<'_>,
    input: &[StepSeries],
    label: &str,
    grouping: &[String],
    without: bool,
) -> Result<Val, EvalError> {
    let valid = {
        let mut c = label.chars();
        matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    };
    if !valid {
        return Err(EvalError::InvalidArgument(format!(
            "invalid label name {label:?}"
        )));
    }
    let mut grouping: Vec<String> = grouping.to_vec();
    if !without {
        grouping.push(label.to_string());
    }
    let mut outputs: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::new();
    for i in 0..ev.n {
        ev.check_deadline()?;
        for s in input {
            let v = s.vals[i];
            if is_absent(v) {
                continue;
            }
            let mut l = s.labels.clone();
            l.set(label, format_go_float(v));
            let g = group_labels_of(&l, &grouping, without);
            let idx = match outputs.get(&g) {
                Some(&idx) => idx,
                None => {
                    let vals = ev.new_vals()?;
                    out.push(StepSeries {
                        labels: g.clone(),
                        vals,
                    });
                    outputs.insert(g, out.len() - 1);
                    out.len() - 1
                }
            };
            let slot = &mut out[idx].vals[i];
            *slot = if is_absent(*slot) { 1.0 } else { *slot + 1.0 };
        }
    }
    Ok(Val::Vector(out))
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}
