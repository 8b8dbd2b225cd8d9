//! Figures the database reports about itself for monitoring: the WAL fsync
//! latency histogram each shard writer keeps, and per-tier sizes.
//!
//! Invariants:
//! - A [`FsyncHistogram`] (a [`DurationHistogram`], the type the rest of
//!   the program uses for its latencies too) is owned by one writer thread
//!   and updated only there (plain fields, no atomics, no locks, no
//!   allocation: fixed buckets); readers get a copy through the shard's `Stats` message and
//!   [`crate::Db::stats`] sums the copies.
//! - `counts` are per bucket (not cumulative): `counts[i]` holds the
//!   observations with `bounds[i-1] < seconds <= bounds[i]`, slot
//!   `bounds.len()` those above every bound (`+Inf`). Exporters make them
//!   cumulative.

use std::time::Duration;

/// Upper bounds (seconds) of the fsync histogram's finite buckets.
pub const FSYNC_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A set of finite bucket bounds (seconds) for a [`DurationHistogram`].
pub trait Buckets: Clone + Copy + std::fmt::Debug + Default + PartialEq {
    /// Upper bounds, ascending; fewer than [`MAX_SLOTS`].
    const BOUNDS: &'static [f64];
}

/// Slots a [`DurationHistogram`] holds: its bounds plus `+Inf`, at most.
pub const MAX_SLOTS: usize = 16;

/// Durations in fixed buckets (Prometheus histogram shape): plain fields,
/// no allocation, `Copy`, so an owner thread updates it without locks and
/// hands out copies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DurationHistogram<B: Buckets> {
    /// Observations per bucket of `B::BOUNDS`; slot `B::BOUNDS.len()` is
    /// `+Inf` (later slots stay 0).
    pub counts: [u64; MAX_SLOTS],
    /// Total seconds observed.
    pub sum_seconds: f64,
    /// Observations.
    pub count: u64,
    buckets: std::marker::PhantomData<B>,
}

impl<B: Buckets> DurationHistogram<B> {
    /// The finite bucket bounds (seconds).
    pub fn bounds(&self) -> &'static [f64] {
        B::BOUNDS
    }

    /// Records one observation of `d`.
    pub fn observe(&mut self, d: Duration) {
        const { assert!(B::BOUNDS.len() < MAX_SLOTS, "too many buckets") };
        let secs = d.as_secs_f64();
        let slot = B::BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(B::BOUNDS.len());
        self.counts[slot] += 1;
        self.sum_seconds += secs;
        self.count += 1;
    }

    /// Adds another histogram's observations (another shard's).
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum_seconds += other.sum_seconds;
        self.count += other.count;
    }

    /// `(upper bound, cumulative count)` per finite bucket, as Prometheus
    /// wants them; `+Inf` is [`DurationHistogram::count`].
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        B::BOUNDS
            .iter()
            .zip(self.counts.iter())
            .map(|(&b, &c)| {
                acc += c;
                (b, acc)
            })
            .collect()
    }
}

/// The bounds of [`FsyncHistogram`]: [`FSYNC_BUCKETS`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FsyncBuckets;

impl Buckets for FsyncBuckets {
    const BOUNDS: &'static [f64] = &FSYNC_BUCKETS;
}

/// WAL fsync durations: what group commit (or `fsync = "always"`) spent
/// in `fsync`, per sync.
pub type FsyncHistogram = DurationHistogram<FsyncBuckets>;

/// Size of one storage tier from the in-memory file lists (no file read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierSize {
    /// `raw` for the partitions, else the rollup tier's name (`1m`, `1h`).
    pub tier: String,
    /// Partitions (raw windows or rollup files).
    pub partitions: u64,
    /// Bytes of their files.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_inclusive_and_cumulative_at_export() {
        let mut h = FsyncHistogram::default();
        h.observe(Duration::from_micros(500)); // exactly 0.0005: first bucket
        h.observe(Duration::from_micros(700)); // 0.001 bucket
        h.observe(Duration::from_millis(30)); // 0.05 bucket
        h.observe(Duration::from_secs(2)); // +Inf
        assert_eq!(h.count, 4);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[6], 1);
        assert_eq!(h.counts[FSYNC_BUCKETS.len()], 1);
        assert!((h.sum_seconds - 2.0312).abs() < 1e-9);
        let cum = h.cumulative();
        assert_eq!(cum[0], (0.0005, 1));
        assert_eq!(cum[1], (0.001, 2));
        assert_eq!(cum[5], (0.025, 2));
        assert_eq!(cum[6], (0.05, 3));
        assert_eq!(cum.last(), Some(&(1.0, 3)));
        let mut m = h;
        m.merge(&h);
        assert_eq!((m.count, m.counts[0], m.cumulative()[6].1), (8, 2, 6));
    }

    fn db_with_one_batch(fsync: crate::FsyncMode) -> (tempfile::TempDir, crate::Db) {
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::Options {
            fsync,
            tiers: crate::TierSpec::defaults(),
            ..Default::default()
        };
        let db = crate::Db::open(dir.path(), opts).unwrap();
        let ids = db
            .resolve_many(&[crate::Labels::metric("m", [("k", "a")])])
            .unwrap();
        let mut b = crate::WriteBatch::new();
        b.push(ids[0], 1_700_000_000_000, 1.0);
        db.append(&b).unwrap();
        (dir, db)
    }

    #[test]
    fn db_stats_count_wal_syncs_only_when_fsync_syncs() {
        let (_d, db) = db_with_one_batch(crate::FsyncMode::Batch);
        let h = db.stats().wal_fsync;
        assert!(h.count >= 1, "{h:?}");
        assert_eq!(h.counts.iter().sum::<u64>(), h.count);
        assert!(h.sum_seconds > 0.0);
        let (_d, db) = db_with_one_batch(crate::FsyncMode::Never);
        assert_eq!(db.stats().wal_fsync, FsyncHistogram::default());
    }

    #[test]
    fn tier_sizes_list_raw_then_each_tier_from_memory() {
        let (_d, db) = db_with_one_batch(crate::FsyncMode::Batch);
        let before = db.tier_sizes();
        let names: Vec<&str> = before.iter().map(|t| t.tier.as_str()).collect();
        assert_eq!(names, ["raw", "1m", "1h"]);
        assert!(before.iter().all(|t| t.bytes == 0 && t.partitions == 0));
        db.flush().unwrap();
        db.compact().unwrap();
        let raw = &db.tier_sizes()[0];
        assert_eq!(raw.partitions, 1);
        assert_eq!(raw.bytes, db.stats().partition_bytes);
        assert!(raw.bytes > 0);
    }
}
