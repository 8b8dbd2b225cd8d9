//! Retention finer than whole windows, for `crate::retention`: list the
//! windows with their sizes, rewrite a sealed window keeping only some
//! series, drop one window.
//!
//! Invariants:
//! - Only sealed windows (a block file, no delta) are rewritten; a window
//!   with a delta is left for compaction to seal first.
//! - A rewrite copies the kept series' chunks byte for byte into a new
//!   block file written under `.tmp` and renamed over the old one, so a
//!   crash leaves either the old or the new file, never a mix.
//! - A rewrite keeps the window's generation: it removes whole series whose
//!   rollups are already built, and a new generation would make the rollup
//!   tiers rebuild that window from the survivors and lose the others'
//!   buckets. Readers holding the old file keep reading its unlinked inode.

use std::sync::Arc;

use super::blocks::{BlockFile, BlockWriter};
use super::{Partition, Partitions, remove, sync_dir};
use crate::error::Error;
use crate::types::{SeriesId, Timestamp};

/// One window as retention sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WindowInfo {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) bytes: u64,
    /// A block file and no delta: rewritable, and what rollups read.
    pub(crate) sealed: bool,
}

/// What [`Partitions::retain_series`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retained {
    /// Every series stays.
    Unchanged,
    /// Some series were removed: how many, and the bytes freed.
    Rewritten { removed: usize, bytes_freed: u64 },
    /// No series stays: the window was dropped.
    Dropped { bytes_freed: u64 },
    /// The window has a delta (or does not exist): nothing done.
    NotSealed,
}

impl Partitions {
    /// Every window, oldest first.
    pub(crate) fn windows(&self) -> Vec<WindowInfo> {
        let slots = self.slots.read().expect("partition lock poisoned");
        slots
            .iter()
            .map(|(&start, slot)| {
                let p = slot.current.read().expect("partition lock poisoned");
                WindowInfo {
                    start,
                    end: start.saturating_add(self.duration),
                    bytes: p.blocks.as_ref().map_or(0, |b| b.file_bytes())
                        + p.delta.as_ref().map_or(0, |d| d.file_bytes()),
                    sealed: p.delta.is_none() && p.blocks.is_some(),
                }
            })
            .collect()
    }

    /// Rewrites sealed window `start` keeping only series for which `keep`
    /// is true; drops it when none is kept.
    pub(crate) fn retain_series(
        &self,
        start: Timestamp,
        keep: &dyn Fn(SeriesId) -> bool,
    ) -> Result<Retained, Error> {
        let Some(slot) = self
            .slots
            .read()
            .expect("partition lock poisoned")
            .get(&start)
            .cloned()
        else {
            return Ok(Retained::NotSealed);
        };
        let _w = slot.write.lock().expect("partition lock poisoned");
        let old = slot
            .current
            .read()
            .expect("partition lock poisoned")
            .clone();
        let (None, Some(blocks)) = (&old.delta, &old.blocks) else {
            return Ok(Retained::NotSealed);
        };
        let entries = blocks.entries()?;
        let kept: Vec<_> = entries.iter().filter(|e| keep(e.series)).collect();
        if kept.len() == entries.len() {
            return Ok(Retained::Unchanged);
        }
        let old_bytes = blocks.file_bytes();
        if kept.is_empty() {
            drop(_w);
            return Ok(if self.drop_window(start)? {
                Retained::Dropped {
                    bytes_freed: old_bytes,
                }
            } else {
                Retained::NotSealed
            });
        }
        let mut removed: Vec<SeriesId> = entries
            .iter()
            .filter(|e| !keep(e.series))
            .map(|e| e.series)
            .collect();
        removed.dedup();
        let final_path = blocks.path().to_path_buf();
        let tmp_path = final_path.with_extension("tmb.tmp");
        let mut writer = BlockWriter::create(&tmp_path)?;
        let mut buf = Vec::new();
        for e in kept {
            blocks.read_chunk(e, &mut buf)?;
            writer.add(e.series, e.min_ts, e.max_ts, &buf)?;
        }
        writer.finish()?;
        std::fs::rename(&tmp_path, &final_path).map_err(|e| Error::io(&final_path, e))?;
        sync_dir(&self.dir)?;
        let new = Arc::new(BlockFile::open(&final_path)?);
        let new_bytes = new.file_bytes();
        *slot.current.write().expect("partition lock poisoned") = Arc::new(Partition {
            start: old.start,
            generation: old.generation,
            delta: None,
            blocks: Some(new),
        });
        Ok(Retained::Rewritten {
            removed: removed.len(),
            bytes_freed: old_bytes.saturating_sub(new_bytes),
        })
    }

    /// Deletes window `start` and its files. Returns whether it existed.
    pub(crate) fn drop_window(&self, start: Timestamp) -> Result<bool, Error> {
        let Some(slot) = self
            .slots
            .write()
            .expect("partition lock poisoned")
            .remove(&start)
        else {
            return Ok(false);
        };
        let _w = slot.write.lock().expect("partition lock poisoned");
        let p = slot
            .current
            .read()
            .expect("partition lock poisoned")
            .clone();
        tracing::info!(start, "dropping partition past retention");
        if let Some(d) = &p.delta {
            remove(d.path())?;
        }
        if let Some(b) = &p.blocks {
            remove(b.path())?;
        }
        sync_dir(&self.dir)?;
        Ok(true)
    }
}
