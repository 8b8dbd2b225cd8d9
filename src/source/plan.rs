//! The tier planner: which data answers which part of a selection's time
//! range. Pure (tiers, coverage and hints in, segments out), so every rule
//! is unit-tested here.
//!
//! Rules, for a selection `[start, end]`:
//! - A tier is *aligned* for a selector when its resolution divides the
//!   step, the range and the first evaluation time minus the offset, and
//!   is no longer than the step: then every window the evaluator forms is
//!   a whole number of buckets.
//! - Before the oldest raw partition (raw data is gone): the coarsest
//!   aligned tier that holds data, then finer aligned ones, then any other
//!   tier finest first (old data at a coarser resolution beats none).
//! - Where raw data still exists: raw, unless the step is coarse for an
//!   aligned tier (at least [`COARSE_STEP_BUCKETS`] of its buckets per
//!   step), and the function is exact over buckets; a fine step therefore
//!   always reads raw, and answers exactly as before tiers existed.
//! - Functions that are not exact over buckets (`quantile_over_time`,
//!   `deriv`, ...) read raw wherever it exists and the finest tier
//!   elsewhere.
//! - Segments never overlap (each time is filled once, by the first tier in
//!   preference order that covers it, snapped inward to whole buckets) and
//!   leave no gap that a later choice covers: a piece one tier cannot fill
//!   whole is offered to the next, down to raw.
//! - A forced tier (`tier=` query parameter) answers the whole range alone.

use tidemark_query::SelectHints;
use tidemark_storage::TierInfo;

/// Steps of at least this many buckets of a tier read that tier even where
/// raw data exists (the 1m tier from a 1h step on).
pub const COARSE_STEP_BUCKETS: i64 = 60;

/// Which tier a query reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TierChoice {
    /// The planner decides.
    #[default]
    Auto,
    /// Raw samples only.
    Raw,
    /// This tier only.
    Tier(String),
}

/// `[from, to)` answered by tier `tier` (an index into the tier list) or by
/// raw samples (`None`). Tier segments start and end on bucket boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub tier: Option<usize>,
    pub from: i64,
    pub to: i64,
}

fn floor_to(t: i64, r: i64) -> i64 {
    t.div_euclid(r).saturating_mul(r)
}

fn ceil_to(t: i64, r: i64) -> i64 {
    let f = floor_to(t, r);
    if f == t { f } else { f.saturating_add(r) }
}

/// Fills what of `gaps` `coverage` covers with whole buckets of `res`,
/// leaving the rest in `gaps`.
fn fill(
    gaps: &mut Vec<(i64, i64)>,
    tier: Option<usize>,
    res: i64,
    coverage: &[(i64, i64)],
    out: &mut Vec<Segment>,
) {
    let mut rest = Vec::with_capacity(gaps.len());
    for (ga, gb) in gaps.drain(..) {
        let mut cur = ga;
        for &(ca, cb) in coverage {
            let a = ceil_to(ca.max(cur), res);
            let b = floor_to(cb.min(gb), res);
            if a >= b {
                continue;
            }
            if a > cur {
                rest.push((cur, a));
            }
            out.push(Segment {
                tier,
                from: a,
                to: b,
            });
            cur = b;
        }
        if cur < gb {
            rest.push((cur, gb));
        }
    }
    *gaps = rest;
}

/// Segments answering `[start, end]`; `tiers` finest first, `raw_start`
/// the start of the oldest raw partition.
pub fn plan(
    tiers: &[TierInfo],
    raw_start: Option<i64>,
    start: i64,
    end: i64,
    hints: &SelectHints,
    choice: &TierChoice,
) -> Vec<Segment> {
    let end_ex = end.saturating_add(1);
    let mut out = Vec::new();
    match choice {
        TierChoice::Raw => {
            return vec![Segment {
                tier: None,
                from: start,
                to: end_ex,
            }];
        }
        TierChoice::Tier(name) => {
            if let Some(i) = tiers.iter().position(|t| &t.name == name) {
                let t = &tiers[i];
                fill(
                    &mut vec![(start, end_ex)],
                    Some(i),
                    t.resolution_ms,
                    &t.coverage,
                    &mut out,
                );
            }
            return out;
        }
        TierChoice::Auto => {}
    }
    let raw_from = raw_start.unwrap_or_else(|| {
        tiers
            .iter()
            .filter_map(|t| t.coverage.last().map(|c| c.1))
            .max()
            .unwrap_or(i64::MIN)
    });
    let aligned = |t: &TierInfo| {
        let r = t.resolution_ms;
        r <= hints.step_ms
            && hints.step_ms % r == 0
            && hints.range_ms % r == 0
            && (hints.start_ms - hints.offset_ms).rem_euclid(r) == 0
    };
    let exact = hints.buckets_exact();
    let n = tiers.len();
    if start < raw_from {
        let mut gaps = vec![(start, end_ex.min(raw_from))];
        let mut order: Vec<usize> = Vec::with_capacity(n);
        if exact {
            order.extend((0..n).rev().filter(|&i| aligned(&tiers[i])));
            order.extend((0..n).filter(|&i| !aligned(&tiers[i])));
        } else {
            order.extend(0..n);
        }
        for i in order {
            let t = &tiers[i];
            fill(&mut gaps, Some(i), t.resolution_ms, &t.coverage, &mut out);
        }
    }
    if end_ex > raw_from {
        let mut gaps = vec![(start.max(raw_from), end_ex)];
        if exact {
            for i in (0..n).rev() {
                let t = &tiers[i];
                if aligned(t) && hints.step_ms >= COARSE_STEP_BUCKETS * t.resolution_ms {
                    fill(&mut gaps, Some(i), t.resolution_ms, &t.coverage, &mut out);
                }
            }
        }
        fill(&mut gaps, None, 1, &[(raw_from, i64::MAX)], &mut out);
    }
    out.sort_by_key(|s| s.from);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_query::catalog::Func;

    const M: i64 = 60_000;
    const H: i64 = 3_600_000;
    const D: i64 = 86_400_000;

    fn tiers() -> Vec<TierInfo> {
        let t = |name: &str, r: i64, cov: Vec<(i64, i64)>| TierInfo {
            name: name.into(),
            resolution_ms: r,
            partition_ms: D,
            retention_ms: None,
            coverage: cov,
        };
        // 1m holds days 10..20, 1h days 0..20; raw from day 15 on.
        vec![
            t("1m", M, vec![(10 * D, 20 * D)]),
            t("1h", H, vec![(0, 20 * D)]),
        ]
    }

    fn hints(step: i64, range: i64, func: Option<Func>) -> SelectHints {
        SelectHints {
            start_ms: 0,
            step_ms: step,
            range_ms: range,
            offset_ms: 0,
            func,
        }
    }

    fn seg(tier: Option<usize>, from: i64, to: i64) -> Segment {
        Segment { tier, from, to }
    }

    /// Segments tile `[start, end]` (except where no data can exist)
    /// without overlap.
    fn check_disjoint(segs: &[Segment]) {
        for w in segs.windows(2) {
            assert!(w[0].to <= w[1].from, "{segs:?}");
        }
    }

    #[test]
    fn coarse_steps_read_coarse_tiers_and_raw_where_needed() {
        let t = tiers();
        let raw = Some(15 * D);
        let h = hints(H, H, Some(Func::Rate));
        let s = plan(&t, raw, 0, 30 * D, &h, &TierChoice::Auto);
        // 1h before raw; where raw exists a 1h step is coarse for 1m
        // (60 buckets) but not for 1h; raw after the tiers end.
        assert_eq!(
            s,
            vec![
                seg(Some(1), 0, 15 * D),
                seg(Some(0), 15 * D, 20 * D),
                seg(None, 20 * D, 30 * D + 1)
            ]
        );
        check_disjoint(&s);
    }

    #[test]
    fn fine_steps_and_inexact_functions_read_raw_where_it_exists() {
        let t = tiers();
        let raw = Some(15 * D);
        for h in [
            hints(M, 5 * M, Some(Func::Rate)),
            hints(15_000, 5 * M, Some(Func::Rate)),
            hints(H, H, Some(Func::QuantileOverTime)),
            hints(1, 0, None),
        ] {
            let s = plan(&t, raw, 16 * D, 17 * D, &h, &TierChoice::Auto);
            assert_eq!(s, vec![seg(None, 16 * D, 17 * D + 1)], "{h:?}");
        }
        // Before raw: a 1m step reads the 1m tier where it has data and
        // the coarser 1h tier only where 1m has none.
        let h = hints(M, 5 * M, Some(Func::Rate));
        let s = plan(&t, raw, 5 * D, 12 * D, &h, &TierChoice::Auto);
        assert_eq!(
            s,
            vec![seg(Some(1), 5 * D, 10 * D), seg(Some(0), 10 * D, 12 * D)]
        );
        // Inexact functions take the finest tier first.
        let h = hints(H, H, Some(Func::Deriv));
        let s = plan(&t, raw, 5 * D, 12 * D, &h, &TierChoice::Auto);
        assert_eq!(
            s,
            vec![seg(Some(1), 5 * D, 10 * D), seg(Some(0), 10 * D, 12 * D)]
        );
    }

    #[test]
    fn unaligned_edges_are_left_to_finer_data() {
        let t = tiers();
        let raw = Some(15 * D);
        let h = hints(H, H, Some(Func::SumOverTime));
        // Starts 30 min into an hour, ends 30 s into a minute, all inside
        // 1m+1h coverage: 1h whole hours, 1m the rest.
        let (a, b) = (12 * D + 30 * M, 14 * D + 30_000);
        let s = plan(&t, raw, a, b, &h, &TierChoice::Auto);
        assert_eq!(
            s,
            vec![
                seg(Some(0), a, 12 * D + H),
                seg(Some(1), 12 * D + H, 14 * D),
                seg(Some(0), 14 * D, 14 * D)
            ]
            .into_iter()
            .filter(|s| s.from < s.to)
            .collect::<Vec<_>>()
        );
        check_disjoint(&s);
    }

    #[test]
    fn a_forced_tier_answers_alone() {
        let t = tiers();
        let h = hints(M, M, Some(Func::Rate));
        let s = plan(
            &t,
            Some(15 * D),
            0,
            30 * D,
            &h,
            &TierChoice::Tier("1h".into()),
        );
        assert_eq!(s, vec![seg(Some(1), 0, 20 * D)]);
        let s = plan(&t, Some(15 * D), 0, 30 * D, &h, &TierChoice::Raw);
        assert_eq!(s, vec![seg(None, 0, 30 * D + 1)]);
        assert!(plan(&t, None, 0, D, &h, &TierChoice::Tier("5m".into())).is_empty());
    }
}
