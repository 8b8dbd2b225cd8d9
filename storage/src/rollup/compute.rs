//! Bucket arithmetic: raw samples into rollup points, and fine points into
//! coarser ones. Pure functions, no I/O.
//!
//! Invariants:
//! - NaN samples (stale markers and real NaNs) are not rolled up: a rollup
//!   point summarises the numbers of its bucket only.
//! - `increase` holds the counter increase between consecutive samples
//!   *inside* the bucket, a drop counting as a reset (the new value is the
//!   increase). The step from the previous bucket's `last` to this bucket's
//!   `first` is left to the reader ([`cross_increase`]), so points of any
//!   tier combine exactly: merging is associative.
//! - Points come out sorted by bucket start, one per non-empty bucket.
//! - `sum` and `increase` are compensated (Kahan) sums, and when every
//!   value they add is a decimal of at most [`MAX_DECIMALS`] places they are
//!   rounded to that many places: the double nearest the exact decimal
//!   result (`88.44`, not `88.44000000000001`), which the decimal encoding
//!   stores in a few bits instead of a Gorilla XOR of the noise.

use crate::types::{Sample, Timestamp};

/// One bucket of one series in a rollup tier: the bucket
/// `[start, start + resolution)` summarised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RollupPoint {
    /// Bucket start, ms (a multiple of the tier's resolution).
    pub start: Timestamp,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    /// Samples summarised (NaNs excluded).
    pub count: u64,
    /// Value of the bucket's first and last sample.
    pub first: f64,
    pub last: f64,
    /// Counter increase between the bucket's own samples, resets handled.
    pub increase: f64,
}

impl RollupPoint {
    fn of_sample(start: Timestamp, v: f64) -> Self {
        RollupPoint {
            start,
            min: v,
            max: v,
            sum: v,
            count: 1,
            first: v,
            last: v,
            increase: 0.0,
        }
    }
}

/// Most decimal places a rounded sum keeps.
pub(super) const MAX_DECIMALS: u32 = 6;

const POW10: [f64; MAX_DECIMALS as usize + 1] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];

/// Fewest decimal places `v` has (as the nearest double of a decimal), up
/// to [`MAX_DECIMALS`].
fn decimals(v: f64) -> Option<u32> {
    (0..=MAX_DECIMALS).find(|&e| {
        let s = v * POW10[e as usize];
        s.abs() < 4.5e15 && s.round() == s && s.round() / POW10[e as usize] == v
    })
}

/// A point being built: compensations of the two sums and the decimal
/// places of everything summed so far (`None` once a value has none).
struct Acc {
    p: RollupPoint,
    sum_c: f64,
    inc_c: f64,
    dec: Option<u32>,
}

#[inline]
fn kahan(inc: f64, sum: &mut f64, c: &mut f64) {
    let t = *sum + inc;
    if sum.abs() >= inc.abs() {
        *c += (*sum - t) + inc;
    } else {
        *c += (inc - t) + *sum;
    }
    *sum = t;
}

fn max_dec(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    Some(a?.max(b?))
}

impl Acc {
    fn new(start: Timestamp, p: &RollupPoint) -> Self {
        let dec = [p.sum, p.first, p.last, p.increase]
            .into_iter()
            .map(decimals)
            .reduce(max_dec)
            .flatten();
        Acc {
            p: RollupPoint { start, ..*p },
            sum_c: 0.0,
            inc_c: 0.0,
            dec,
        }
    }

    fn absorb(&mut self, later: &RollupPoint) {
        let step = cross_increase(self.p.last, later.first);
        self.dec = [later.sum, later.first, later.last, later.increase]
            .into_iter()
            .map(decimals)
            .fold(self.dec, max_dec);
        kahan(step, &mut self.p.increase, &mut self.inc_c);
        kahan(later.increase, &mut self.p.increase, &mut self.inc_c);
        kahan(later.sum, &mut self.p.sum, &mut self.sum_c);
        self.p.min = self.p.min.min(later.min);
        self.p.max = self.p.max.max(later.max);
        self.p.count += later.count;
        self.p.last = later.last;
    }

    fn finish(self) -> RollupPoint {
        let mut p = self.p;
        let round = |v: f64, c: f64| {
            let v = if v.is_finite() { v + c } else { v };
            match self.dec {
                Some(e) if v.is_finite() => {
                    let s = (v * POW10[e as usize]).round();
                    if s.abs() < 4.5e15 {
                        s / POW10[e as usize]
                    } else {
                        v
                    }
                }
                _ => v,
            }
        };
        p.sum = round(p.sum, self.sum_c);
        p.increase = round(p.increase, self.inc_c);
        p
    }
}

/// Counter increase from `prev` to `cur`: a drop is a reset, so the
/// increase is `cur` itself (Prometheus's rule).
#[inline]
pub fn cross_increase(prev: f64, cur: f64) -> f64 {
    if cur >= prev { cur - prev } else { cur }
}

#[inline]
fn bucket_of(ts: Timestamp, resolution: i64) -> Timestamp {
    ts.div_euclid(resolution).saturating_mul(resolution)
}

/// Appends the rollup points of sorted `samples` at `resolution` to `out`.
pub fn rollup_samples(samples: &[Sample], resolution: i64, out: &mut Vec<RollupPoint>) {
    let mut cur: Option<Acc> = None;
    for s in samples {
        if s.value.is_nan() {
            continue;
        }
        let b = bucket_of(s.ts, resolution);
        let p = RollupPoint::of_sample(b, s.value);
        match &mut cur {
            Some(a) if a.p.start == b => a.absorb(&p),
            _ => {
                out.extend(cur.take().map(Acc::finish));
                cur = Some(Acc::new(b, &p));
            }
        }
    }
    out.extend(cur.map(Acc::finish));
}

/// Appends the points of sorted finer `points` merged into buckets of
/// `resolution` (a multiple of theirs) to `out`.
pub fn merge_points(points: &[RollupPoint], resolution: i64, out: &mut Vec<RollupPoint>) {
    let mut cur: Option<Acc> = None;
    for p in points {
        let b = bucket_of(p.start, resolution);
        match &mut cur {
            Some(a) if a.p.start == b => a.absorb(p),
            _ => {
                out.extend(cur.take().map(Acc::finish));
                cur = Some(Acc::new(b, p));
            }
        }
    }
    out.extend(cur.map(Acc::finish));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ts: i64, v: f64) -> Sample {
        Sample::new(ts, v)
    }

    #[test]
    fn buckets_counter_resets_and_nan() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let samples = [
            s(0, 5.0),
            s(10, 7.0),
            s(20, stale),
            s(30, 2.0), // reset: +2
            s(60, 4.0), // next bucket; the step 2 -> 4 belongs to the reader
            s(70, f64::NAN),
            s(80, 10.0),
        ];
        let mut out = Vec::new();
        rollup_samples(&samples, 60, &mut out);
        assert_eq!(out.len(), 2);
        let a = out[0];
        assert_eq!((a.start, a.count, a.min, a.max), (0, 3, 2.0, 7.0));
        assert_eq!((a.sum, a.first, a.last, a.increase), (14.0, 5.0, 2.0, 4.0));
        let b = out[1];
        assert_eq!(
            (b.start, b.count, b.first, b.last, b.increase),
            (60, 2, 4.0, 10.0, 6.0)
        );
        // Merging the two into one coarser bucket equals rolling up directly.
        let mut merged = Vec::new();
        merge_points(&out, 120, &mut merged);
        let mut direct = Vec::new();
        rollup_samples(&samples, 120, &mut direct);
        assert_eq!(merged, direct);
        assert_eq!(direct[0].increase, 4.0 + 2.0 + 6.0);
    }

    #[test]
    fn negative_timestamps_use_floor_buckets() {
        let mut out = Vec::new();
        rollup_samples(&[s(-1, 1.0), s(0, 2.0)], 60, &mut out);
        assert_eq!(out.iter().map(|p| p.start).collect::<Vec<_>>(), [-60, 0]);
    }
}
