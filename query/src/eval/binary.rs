//! Binary operators: scalar/scalar, vector/scalar, vector/vector with
//! one-to-one, many-to-one (`group_left`) and one-to-many (`group_right`)
//! matching, and the set operators `and`/`or`/`unless`.
//!
//! Match signatures are computed once per series; each step then matches
//! the present series like Prometheus 2.42's `VectorBinop`: duplicates on
//! the "one" side are a many-to-many error, two matches of one signature
//! in one-to-one mode are an error, and arithmetic (or `bool`) drops the
//! metric name while filtering comparisons keep it.

use std::collections::HashMap;

use super::{EvalError, Evaluator, StepSeries, Val, is_absent, merge_same_labels};
use crate::ast::{BinOp, Cardinality, Expr, VectorMatching};
use crate::labels::{Labels, METRIC_NAME};

pub(crate) fn eval_binary(
    ev: &mut Evaluator<'_>,
    op: BinOp,
    lhs: &Expr,
    rhs: &Expr,
    return_bool: bool,
    matching: Option<&VectorMatching>,
) -> Result<Val, EvalError> {
    let l = ev.eval(lhs)?;
    let r = ev.eval(rhs)?;
    match (l, r) {
        (Val::Scalar(a), Val::Scalar(b)) => Ok(Val::Scalar(
            a.iter()
                .zip(&b)
                .map(|(&x, &y)| {
                    let (v, keep) = elem_op(op, x, y);
                    if op.is_comparison() {
                        f64::from(u8::from(keep))
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(v), Val::Scalar(s)) => vector_scalar(op, v, &s, false, return_bool),
        (Val::Scalar(s), Val::Vector(v)) => vector_scalar(op, v, &s, true, return_bool),
        (Val::Vector(a), Val::Vector(b)) => {
            let default = VectorMatching {
                card: if op.is_set() {
                    Cardinality::ManyToMany
                } else {
                    Cardinality::OneToOne
                },
                on: false,
                labels: Vec::new(),
                include: Vec::new(),
            };
            let m = matching.unwrap_or(&default);
            match op {
                BinOp::And | BinOp::Or | BinOp::Unless => set_op(ev, op, a, b, m),
                _ => vector_vector(ev, op, a, b, m, return_bool),
            }
        }
        _ => Err(EvalError::BadResultType { got: "string" }),
    }
}

/// Prometheus `vectorElemBinop`: the value and, for comparisons, whether
/// the element is kept (the value is then the left operand).
#[inline]
pub(crate) fn elem_op(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Mod => (l % r, true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eql => (l, l == r),
        BinOp::Neq => (l, l != r),
        BinOp::Gtr => (l, l > r),
        BinOp::Lss => (l, l < r),
        BinOp::Gte => (l, l >= r),
        BinOp::Lte => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

/// Prometheus 2.42's `shouldDropMetricName`: only the arithmetic
/// operators, not `atan2` (the differential test caught that).
fn drops_name(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow
    )
}

fn vector_scalar(
    op: BinOp,
    mut series: Vec<StepSeries>,
    s: &[f64],
    scalar_left: bool,
    return_bool: bool,
) -> Result<Val, EvalError> {
    for ser in &mut series {
        for (i, slot) in ser.vals.iter_mut().enumerate() {
            let v = *slot;
            if is_absent(v) {
                continue;
            }
            let (l, r) = if scalar_left { (s[i], v) } else { (v, s[i]) };
            let (mut value, keep) = elem_op(op, l, r);
            if op.is_comparison() && scalar_left {
                value = v;
            }
            *slot = if return_bool {
                f64::from(u8::from(keep))
            } else if keep {
                value
            } else {
                super::absent()
            };
        }
        if drops_name(op) || return_bool {
            ser.labels.remove(METRIC_NAME);
        }
    }
    series.retain(|s| s.vals.iter().any(|v| !is_absent(*v)));
    Ok(Val::Vector(merge_same_labels(series)?))
}

/// Interns match signatures to dense ids.
fn signatures(
    series: &[StepSeries],
    m: &VectorMatching,
    ids: &mut HashMap<Vec<u8>, usize>,
) -> Vec<usize> {
    let mut buf = Vec::new();
    series
        .iter()
        .map(|s| {
            s.labels.signature(m.on, &m.labels, &mut buf);
            let next = ids.len();
            *ids.entry(buf.clone()).or_insert(next)
        })
        .collect()
}

fn set_op(
    ev: &mut Evaluator<'_>,
    op: BinOp,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &VectorMatching,
) -> Result<Val, EvalError> {
    let mut ids = HashMap::new();
    let lsig = signatures(&lhs, m, &mut ids);
    let rsig = signatures(&rhs, m, &mut ids);
    let nsig = ids.len();
    // stamp[sig] == i + 1 <=> the signature is present at step i on the other side.
    let mut stamp = vec![0usize; nsig];
    match op {
        BinOp::And | BinOp::Unless => {
            let mut lhs = lhs;
            for i in 0..ev.n {
                ev.check_deadline()?;
                for (s, &g) in rhs.iter().zip(&rsig) {
                    if !is_absent(s.vals[i]) {
                        stamp[g] = i + 1;
                    }
                }
                for (s, &g) in lhs.iter_mut().zip(&lsig) {
                    let matched = stamp[g] == i + 1;
                    if matched != (op == BinOp::And) {
                        s.vals[i] = super::absent();
                    }
                }
            }
            lhs.retain(|s| s.vals.iter().any(|v| !is_absent(*v)));
            Ok(Val::Vector(lhs))
        }
        _ => {
            let mut rhs = rhs;
            for i in 0..ev.n {
                ev.check_deadline()?;
                for (s, &g) in lhs.iter().zip(&lsig) {
                    if !is_absent(s.vals[i]) {
                        stamp[g] = i + 1;
                    }
                }
                for (s, &g) in rhs.iter_mut().zip(&rsig) {
                    if stamp[g] == i + 1 {
                        s.vals[i] = super::absent();
                    }
                }
            }
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| s.vals.iter().any(|v| !is_absent(*v))),
            );
            Ok(Val::Vector(merge_same_labels(out)?))
        }
    }
}

/// Prometheus `resultMetric`.
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: BinOp,
    m: &VectorMatching,
    return_bool: bool,
) -> Labels {
    let mut l = many.clone();
    if drops_name(op) {
        l.remove(METRIC_NAME);
    }
    if m.card == Cardinality::OneToOne {
        if m.on {
            l.keep(&m.labels);
        } else {
            l.drop_names(&m.labels);
        }
    }
    for name in &m.include {
        match one.get(name) {
            Some(v) => l.set(name, v.to_string()),
            None => l.remove(name),
        }
    }
    if return_bool {
        l.remove(METRIC_NAME);
    }
    l
}

fn vector_vector(
    ev: &mut Evaluator<'_>,
    op: BinOp,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &VectorMatching,
    return_bool: bool,
) -> Result<Val, EvalError> {
    // The "many" side is iterated; the "one" side is hashed.
    let swapped = m.card == Cardinality::OneToMany;
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut ids = HashMap::new();
    let msig = signatures(&many, m, &mut ids);
    let osig = signatures(&one, m, &mut ids);
    let nsig = ids.len();
    // Per signature: the "one"-side series present at the current step.
    let mut one_at = vec![(0usize, 0usize); nsig]; // (stamp, series index)
    let mut matched_at = vec![0usize; nsig];
    let mut pair_out: HashMap<(usize, usize), usize> = HashMap::new();
    // Most steps repeat the previous step's pairing: check that first.
    let mut last_pair = vec![(usize::MAX, 0usize); many.len()];
    let mut out_by_labels: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::new();
    for i in 0..ev.n {
        ev.check_deadline()?;
        let stamp = i + 1;
        for (oi, (s, &g)) in one.iter().zip(&osig).enumerate() {
            if is_absent(s.vals[i]) {
                continue;
            }
            if one_at[g].0 == stamp {
                let mut group = s.labels.clone();
                if m.on {
                    group.keep(&m.labels);
                } else {
                    group.drop_names(&m.labels);
                    group.remove(METRIC_NAME);
                }
                return Err(EvalError::ManyToMany {
                    group: group.to_string(),
                    side: if swapped { "left" } else { "right" },
                });
            }
            one_at[g] = (stamp, oi);
        }
        for (mi, (s, &g)) in many.iter().zip(&msig).enumerate() {
            let mv = s.vals[i];
            if is_absent(mv) || one_at[g].0 != stamp {
                continue;
            }
            let oi = one_at[g].1;
            let ov = one[oi].vals[i];
            let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
            let (mut value, keep) = elem_op(op, l, r);
            if return_bool {
                value = f64::from(u8::from(keep));
            } else if !keep {
                continue;
            }
            if m.card == Cardinality::OneToOne {
                if matched_at[g] == stamp {
                    return Err(EvalError::MultipleMatches(
                        "many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
                matched_at[g] = stamp;
            }
            let idx = match last_pair[mi] {
                (o, idx) if o == oi => idx,
                _ => match pair_out.get(&(mi, oi)) {
                    Some(&idx) => idx,
                    None => {
                        let labels = result_labels(&s.labels, &one[oi].labels, op, m, return_bool);
                        let idx = match out_by_labels.get(&labels) {
                            Some(&idx) => idx,
                            None => {
                                let vals = ev.new_vals()?;
                                out.push(StepSeries {
                                    labels: labels.clone(),
                                    vals,
                                });
                                out_by_labels.insert(labels, out.len() - 1);
                                out.len() - 1
                            }
                        };
                        pair_out.insert((mi, oi), idx);
                        idx
                    }
                },
            };
            last_pair[mi] = (oi, idx);
            let slot = &mut out[idx].vals[i];
            if !is_absent(*slot) {
                return Err(if m.card == Cardinality::OneToOne {
                    EvalError::DuplicateLabelset {
                        labels: out[idx].labels.to_string(),
                    }
                } else {
                    EvalError::MultipleMatches("grouping labels must ensure unique matches")
                });
            }
            *slot = value;
        }
    }
    Ok(Val::Vector(out))
}
