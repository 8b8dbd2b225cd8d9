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

    /// Folds `later` (a point of the same or a finer bucket that follows
    /// every sample already summarised) into `self`.
    fn absorb(&mut self, later: &RollupPoint) {
        self.increase += cross_increase(self.last, later.first) + later.increase;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.sum += later.sum;
        self.count += later.count;
        self.last = later.last;
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
    let mut cur: Option<RollupPoint> = None;
    for s in samples {
        if s.value.is_nan() {
            continue;
        }
        let b = bucket_of(s.ts, resolution);
        match &mut cur {
            Some(p) if p.start == b => p.absorb(&RollupPoint::of_sample(b, s.value)),
            _ => {
                if let Some(p) = cur.take() {
                    out.push(p);
                }
                cur = Some(RollupPoint::of_sample(b, s.value));
            }
        }
    }
    out.extend(cur);
}

/// Appends the points of sorted finer `points` merged into buckets of
/// `resolution` (a multiple of theirs) to `out`.
pub fn merge_points(points: &[RollupPoint], resolution: i64, out: &mut Vec<RollupPoint>) {
    let mut cur: Option<RollupPoint> = None;
    for p in points {
        let b = bucket_of(p.start, resolution);
        match &mut cur {
            Some(c) if c.start == b => c.absorb(p),
            _ => {
                if let Some(c) = cur.take() {
                    out.push(c);
                }
                cur = Some(RollupPoint { start: b, ..*p });
            }
        }
    }
    out.extend(cur);
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
