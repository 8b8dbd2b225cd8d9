//! The [`Db`] methods of the rollup tiers: run them, read them, describe
//! them. Kept here so `db.rs` only wires tiers into open and maintenance.

use super::{RollupReport, SeriesPoints, TierInfo, TierInspect};
use crate::db::Db;
use crate::error::Error;
use crate::types::{SeriesId, Timestamp};

impl Db {
    /// Builds every pending rollup window from raw partitions that are
    /// sealed (compacted, no newer delta) and whose window ended at or
    /// before `closed_before` (ms), then each coarser tier. The background
    /// thread calls this after compaction with `now - ooo_window`.
    pub fn rollup_until(&self, closed_before: Timestamp) -> Result<RollupReport, Error> {
        self.shared.rollups.run(&self.shared.parts, closed_before)
    }

    /// [`Db::rollup_until`] the current wall-clock time minus the
    /// out-of-order window: what `tidemark rollup` runs.
    pub fn rollup(&self) -> Result<RollupReport, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let ooo = self.shared.opts.ooo_window.as_millis() as i64;
        self.rollup_until(now.saturating_sub(ooo))
    }

    /// The configured tiers, finest first, with the time each holds.
    pub fn tiers(&self) -> Vec<TierInfo> {
        self.shared.rollups.info()
    }

    /// Start of the oldest raw partition: raw data exists from here on
    /// (`None` when no partition exists; the head may still hold samples).
    pub fn raw_start(&self) -> Option<Timestamp> {
        self.shared.parts.first_start()
    }

    /// Rollup points of each series in tier `tier` whose bucket starts in
    /// `[start, end]`, sorted. `None` when no tier has that name.
    pub fn read_rollup(
        &self,
        tier: &str,
        ids: &[SeriesId],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Option<SeriesPoints>, Error> {
        self.shared.rollups.read(tier, ids, start, end)
    }

    /// Rollup points returned by [`Db::read_rollup`] since open.
    pub fn rollup_points_read(&self) -> u64 {
        self.shared.rollups.points_read()
    }

    /// Deletes rollup files past their tier's retention at `now_ms`.
    pub fn apply_tier_retention(&self, now_ms: Timestamp) -> Result<usize, Error> {
        self.shared.rollups.apply_retention(now_ms)
    }

    /// Per-tier partitions, series, points, covered raw samples and bytes
    /// (reads every rollup file).
    pub fn inspect_tiers(&self) -> Result<Vec<TierInspect>, Error> {
        self.shared.rollups.inspect()
    }

    /// Bytes of all rollup files.
    pub fn rollup_disk_bytes(&self) -> u64 {
        self.shared.rollups.disk_bytes()
    }

    /// Files and bytes per tier, `raw` first, from the in-memory file
    /// lists: cheap enough for every scrape, unlike [`Db::inspect_tiers`].
    pub fn tier_sizes(&self) -> Vec<crate::TierSize> {
        let parts = &self.shared.parts;
        let mut out = vec![crate::TierSize {
            tier: "raw".to_string(),
            partitions: parts.len() as u64,
            bytes: parts.disk_bytes(),
        }];
        out.extend(self.shared.rollups.tiers.iter().map(|t| {
            let files = t.snapshot();
            crate::TierSize {
                tier: t.name.clone(),
                partitions: files.len() as u64,
                bytes: files.iter().map(|f| f.file_bytes()).sum(),
            }
        }));
        out
    }
}
