//! Time partitions of raw chunks. Each window `[start, start + duration)`
//! has up to two files in the tier directory:
//!
//! - `<start>-<gen>.tmb`: the sealed block file (see `blocks`), written by
//!   compaction: one large, heavily compressed chunk per series.
//! - `<start>-<gen>.redb`: the delta (see `delta`): small chunks the head
//!   flushed into the window since the last compaction.
//!
//! Invariants:
//! - A chunk lies wholly inside its partition's window.
//! - Later writes win: block-file chunks count as sequence 0, delta chunks
//!   carry increasing sequence numbers, and for equal timestamps the
//!   highest sequence is the sample readers see.
//! - Compaction writes `<start>-<gen+1>.tmb.tmp`, fsyncs, renames it into
//!   place, then deletes the generation-`gen` files. At open, `.tmp` files
//!   are partial and deleted, and files older than the newest block file of
//!   their window were folded into it and are deleted: a crash at any step
//!   leaves each sample in exactly one live place (or two identical ones,
//!   which the merge collapses).
//! - Bytes from disk are checked: a chunk that fails its checksum is
//!   reported (file, series, time) and skipped; a block file whose footer or
//!   index is damaged is renamed to `.corrupt` and reported at open. Nothing
//!   panics on disk bytes.

pub(crate) mod blocks;
mod delta;
mod read;
pub(crate) mod retain;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::encoding::{Effort, MAX_CHUNK_SAMPLES, encode_chunk_with, read_chunk_header};
use crate::error::Error;
use crate::types::{Sample, SeriesId, Timestamp};
use blocks::{BlockFile, BlockWriter};
use delta::Delta;
use read::Merge;

/// Largest chunk compaction writes. One series-day at 10 s is 8,640
/// samples; bigger blocks compress a little better, but a read of a short
/// range decodes the whole block.
const MAX_BLOCK_SAMPLES: usize = 16_384;

/// A chunk ready to be written: series, first timestamp, encoded bytes.
pub(crate) struct PendingChunk {
    pub(crate) series: SeriesId,
    pub(crate) min_ts: Timestamp,
    pub(crate) bytes: Vec<u8>,
}

/// One window's live files. Immutable; changes swap in a new `Arc`.
struct Partition {
    start: Timestamp,
    generation: u64,
    delta: Option<Delta>,
    blocks: Option<Arc<BlockFile>>,
}

struct Slot {
    /// Serialises writers of this window (flushes and compaction).
    write: Mutex<()>,
    current: RwLock<Arc<Partition>>,
}

/// What [`Partitions::inspect`] found in one partition.
#[derive(Clone, Debug, Default)]
pub struct PartitionInfo {
    /// Window `[start, end)` in ms.
    pub start: Timestamp,
    pub end: Timestamp,
    /// Bytes of the block file and of the delta file.
    pub block_file_bytes: u64,
    pub delta_file_bytes: u64,
    /// Chunks, series with at least one chunk, samples in chunk headers.
    pub chunks: u64,
    pub series: u64,
    pub samples: u64,
    /// Sum of the chunks' encoded sizes (the rest of the file bytes is
    /// index, redb pages and free space).
    pub chunk_bytes: u64,
    /// Chunks that fail their checksum.
    pub corrupt_chunks: u64,
}

impl PartitionInfo {
    pub fn file_bytes(&self) -> u64 {
        self.block_file_bytes + self.delta_file_bytes
    }
}

/// All partitions of one tier directory.
pub(crate) struct Partitions {
    dir: PathBuf,
    duration: i64,
    durable: bool,
    slots: RwLock<BTreeMap<Timestamp, Arc<Slot>>>,
    seq: AtomicU64,
    corrupt: AtomicU64,
}

enum FileKind {
    Blocks,
    Delta,
}

impl Partitions {
    pub(crate) fn open(dir: &Path, duration_ms: i64, durable: bool) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut found: BTreeMap<Timestamp, Vec<(u64, FileKind, PathBuf)>> = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".tmp") {
                tracing::warn!(path = %path.display(), "removing partial compaction output");
                remove(&path)?;
                continue;
            }
            if let Some((start, generation, kind)) = parse_name(name) {
                found
                    .entry(start)
                    .or_default()
                    .push((generation, kind, path));
            }
        }
        let parts = Partitions {
            dir: dir.to_path_buf(),
            duration: duration_ms,
            durable,
            slots: RwLock::new(BTreeMap::new()),
            seq: AtomicU64::new(1),
            corrupt: AtomicU64::new(0),
        };
        let mut max_seq = 0;
        for (start, files) in found {
            let p = parts.open_window(start, files)?;
            if let Some(d) = &p.delta {
                max_seq = max_seq.max(d.max_seq()?);
            }
            parts
                .slots
                .write()
                .expect("partition lock poisoned")
                .insert(
                    start,
                    Arc::new(Slot {
                        write: Mutex::new(()),
                        current: RwLock::new(Arc::new(p)),
                    }),
                );
        }
        parts.seq.store(max_seq + 1, Ordering::Release);
        Ok(parts)
    }

    /// Picks a window's live files and deletes superseded ones.
    fn open_window(
        &self,
        start: Timestamp,
        mut files: Vec<(u64, FileKind, PathBuf)>,
    ) -> Result<Partition, Error> {
        files.sort_by_key(|f| f.0);
        let newest_blocks = files
            .iter()
            .rev()
            .find(|f| matches!(f.1, FileKind::Blocks))
            .map(|f| f.0);
        let mut p = Partition {
            start,
            generation: files.last().map_or(0, |f| f.0),
            delta: None,
            blocks: None,
        };
        for (generation, kind, path) in files {
            if newest_blocks.is_some_and(|b| generation < b) {
                tracing::info!(path = %path.display(), "removing file superseded by compaction");
                remove(&path)?;
                continue;
            }
            match kind {
                FileKind::Blocks => match BlockFile::open(&path) {
                    Ok(b) => p.blocks = Some(Arc::new(b)),
                    Err(e) => {
                        let aside = path.with_extension("tmb.corrupt");
                        tracing::error!(error = %e, moved_to = %aside.display(), "block file unreadable; moved aside, its samples are missing from queries");
                        self.corrupt.fetch_add(1, Ordering::Relaxed);
                        std::fs::rename(&path, &aside).map_err(|e| Error::io(&path, e))?;
                    }
                },
                FileKind::Delta => p.delta = Some(Delta::open(path)?),
            }
        }
        Ok(p)
    }

    /// Start of the window that holds `ts`.
    pub(crate) fn window_start(&self, ts: Timestamp) -> Timestamp {
        ts.div_euclid(self.duration).saturating_mul(self.duration)
    }

    pub(crate) fn duration(&self) -> i64 {
        self.duration
    }

    fn slot(&self, start: Timestamp) -> Arc<Slot> {
        if let Some(s) = self
            .slots
            .read()
            .expect("partition lock poisoned")
            .get(&start)
        {
            return s.clone();
        }
        let mut slots = self.slots.write().expect("partition lock poisoned");
        slots
            .entry(start)
            .or_insert_with(|| {
                Arc::new(Slot {
                    write: Mutex::new(()),
                    current: RwLock::new(Arc::new(Partition {
                        start,
                        generation: 0,
                        delta: None,
                        blocks: None,
                    })),
                })
            })
            .clone()
    }

    fn slots_overlapping(&self, start: Timestamp, end: Timestamp) -> Vec<Arc<Slot>> {
        let slots = self.slots.read().expect("partition lock poisoned");
        slots
            .range(self.window_start(start)..=end)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Writes chunks (any windows, any order) with one commit per window;
    /// durable on return when the store is durable.
    pub(crate) fn write(&self, chunks: &mut [PendingChunk]) -> Result<(), Error> {
        chunks.sort_by_key(|c| (self.window_start(c.min_ts), c.series, c.min_ts));
        let mut rest = &chunks[..];
        while let Some(first) = rest.first() {
            let start = self.window_start(first.min_ts);
            let n = rest.partition_point(|c| self.window_start(c.min_ts) == start);
            let (window, tail) = rest.split_at(n);
            rest = tail;
            let slot = self.slot(start);
            let _w = slot.write.lock().expect("partition lock poisoned");
            let mut p = slot
                .current
                .read()
                .expect("partition lock poisoned")
                .clone();
            if p.delta.is_none() {
                let path = self.dir.join(format!("{start}-{}.redb", p.generation));
                p = Arc::new(Partition {
                    start,
                    generation: p.generation,
                    delta: Some(Delta::open(path)?),
                    blocks: p.blocks.clone(),
                });
                *slot.current.write().expect("partition lock poisoned") = p.clone();
            }
            let seq = self.seq.fetch_add(window.len() as u64, Ordering::AcqRel);
            let delta = p.delta.as_ref().expect("created above");
            delta.write(
                window
                    .iter()
                    .map(|c| (c.series, c.min_ts, c.bytes.as_slice())),
                seq,
                self.durable,
            )?;
        }
        Ok(())
    }

    fn report_corrupt(&self, path: &Path, id: SeriesId, min_ts: Timestamp, reason: &str) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(path = %path.display(), series = id.0, min_ts, reason, "skipping corrupt chunk");
    }

    /// Corrupt chunks (and block files) skipped since open.
    pub(crate) fn corrupt_chunks(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Folds the delta of every window that ends at or before `before` into
    /// a new block file. Returns how many windows were rewritten.
    pub(crate) fn compact(&self, before: Timestamp) -> Result<usize, Error> {
        let slots: Vec<Arc<Slot>> = {
            let slots = self.slots.read().expect("partition lock poisoned");
            slots
                .iter()
                .filter(|(start, _)| start.saturating_add(self.duration) <= before)
                .map(|(_, slot)| slot.clone())
                .collect()
        };
        let mut rewritten = 0;
        for slot in slots {
            let _w = slot.write.lock().expect("partition lock poisoned");
            let old = slot
                .current
                .read()
                .expect("partition lock poisoned")
                .clone();
            if old.delta.is_none() {
                continue;
            }
            let new = Arc::new(self.compact_one(&old)?);
            *slot.current.write().expect("partition lock poisoned") = new;
            sync_dir(&self.dir)?;
            // Readers holding the old handles keep reading unlinked files.
            if let Some(d) = &old.delta {
                remove(d.path())?;
            }
            if let Some(b) = &old.blocks {
                remove(b.path())?;
            }
            rewritten += 1;
        }
        Ok(rewritten)
    }

    fn compact_one(&self, old: &Partition) -> Result<Partition, Error> {
        let _span = tracing::debug_span!("compact", start = old.start).entered();
        let generation = old.generation + 1;
        let final_path = self.dir.join(format!("{}-{generation}.tmb", old.start));
        let tmp_path = final_path.with_extension("tmb.tmp");
        let mut writer = BlockWriter::create(&tmp_path)?;
        let old_entries = match &old.blocks {
            Some(b) => b.entries()?,
            None => Vec::new(),
        };
        let mut next_old = 0usize;
        let mut buf = Vec::new();
        let mut merge = Merge::default();
        let mut current: Option<SeriesId> = None;
        // Copies old block chunks of series before `until` (all remaining
        // ones for `None`) unchanged: series without new data are not
        // re-encoded.
        let copy_old_before = |until: Option<SeriesId>,
                               next_old: &mut usize,
                               writer: &mut BlockWriter,
                               buf: &mut Vec<u8>|
         -> Result<(), Error> {
            let b = old.blocks.as_ref();
            while let (Some(e), Some(b)) = (old_entries.get(*next_old), b) {
                if until.is_some_and(|u| e.series >= u) {
                    break;
                }
                b.read_chunk(e, buf)?;
                writer.add(e.series, e.min_ts, e.max_ts, buf)?;
                *next_old += 1;
            }
            Ok(())
        };
        let mut emit = |series: SeriesId,
                        merge: &mut Merge,
                        next_old: &mut usize,
                        writer: &mut BlockWriter|
         -> Result<(), Error> {
            // Old blocks of this series join the merge as sequence 0.
            if let Some(b) = &old.blocks {
                while let Some(e) = old_entries.get(*next_old).filter(|e| e.series == series) {
                    b.read_chunk(e, &mut buf)?;
                    let bytes = std::mem::take(&mut buf);
                    merge.add(
                        self,
                        b.path(),
                        series,
                        e.min_ts,
                        0,
                        &bytes,
                        Timestamp::MIN,
                        Timestamp::MAX,
                    );
                    buf = bytes;
                    *next_old += 1;
                }
            }
            let mut samples = Vec::new();
            merge.finish(&mut samples);
            for block in samples.chunks(MAX_BLOCK_SAMPLES) {
                let mut bytes = Vec::new();
                encode_chunk_with(block, Effort::Best, &mut bytes);
                let (first, last) = (block[0].ts, block[block.len() - 1].ts);
                writer.add(series, first, last, &bytes)?;
            }
            Ok(())
        };
        let delta = old.delta.as_ref().expect("compact_one needs a delta");
        let mut copy_buf = Vec::new();
        delta.scan(None, Timestamp::MAX, |c| {
            if current != Some(c.series) {
                if let Some(prev) = current {
                    emit(prev, &mut merge, &mut next_old, &mut writer)?;
                }
                copy_old_before(Some(c.series), &mut next_old, &mut writer, &mut copy_buf)?;
                current = Some(c.series);
            }
            merge.add(
                self,
                delta.path(),
                c.series,
                c.min_ts,
                c.seq,
                c.bytes,
                Timestamp::MIN,
                Timestamp::MAX,
            );
            Ok(())
        })?;
        if let Some(prev) = current {
            emit(prev, &mut merge, &mut next_old, &mut writer)?;
        }
        copy_old_before(None, &mut next_old, &mut writer, &mut copy_buf)?;
        writer.finish()?;
        std::fs::rename(&tmp_path, &final_path).map_err(|e| Error::io(&final_path, e))?;
        Ok(Partition {
            start: old.start,
            generation,
            delta: None,
            blocks: Some(Arc::new(BlockFile::open(&final_path)?)),
        })
    }

    /// Deletes every window that ends at or before `before` (retention):
    /// whole files go, so the disk space comes back. Readers that already
    /// hold a window keep reading its unlinked files. Returns how many
    /// windows were dropped.
    pub(crate) fn drop_before(&self, before: Timestamp) -> Result<usize, Error> {
        // Windows are ordered by start, so the expired ones are a prefix.
        let expired: Vec<Timestamp> = self
            .slots
            .read()
            .expect("partition lock poisoned")
            .keys()
            .take_while(|start| start.saturating_add(self.duration) <= before)
            .copied()
            .collect();
        let mut dropped = 0;
        for start in expired {
            if self.drop_window(start)? {
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Bytes of all partition files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        let slots = self.slots.read().expect("partition lock poisoned");
        slots
            .values()
            .map(|s| {
                let p = s.current.read().expect("partition lock poisoned");
                p.blocks.as_ref().map_or(0, |b| b.file_bytes())
                    + p.delta.as_ref().map_or(0, |d| d.file_bytes())
            })
            .sum()
    }

    /// Per-partition figures from reading every chunk (a full scan).
    pub(crate) fn inspect(&self) -> Result<Vec<PartitionInfo>, Error> {
        let slots: Vec<Arc<Slot>> = {
            let slots = self.slots.read().expect("partition lock poisoned");
            slots.values().cloned().collect()
        };
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            let p = slot
                .current
                .read()
                .expect("partition lock poisoned")
                .clone();
            let mut info = PartitionInfo {
                start: p.start,
                end: p.start.saturating_add(self.duration),
                block_file_bytes: p.blocks.as_ref().map_or(0, |b| b.file_bytes()),
                delta_file_bytes: p.delta.as_ref().map_or(0, |d| d.file_bytes()),
                ..Default::default()
            };
            let mut series = std::collections::BTreeSet::new();
            let mut count = |id: SeriesId, bytes: &[u8]| {
                info.chunks += 1;
                info.chunk_bytes += bytes.len() as u64;
                series.insert(id);
                match read_chunk_header(bytes) {
                    Ok(h) => info.samples += u64::from(h.count),
                    Err(_) => info.corrupt_chunks += 1,
                }
            };
            if let Some(b) = &p.blocks {
                let mut buf = Vec::new();
                for e in b.entries()? {
                    b.read_chunk(&e, &mut buf)?;
                    count(e.series, &buf);
                }
            }
            if let Some(d) = &p.delta {
                d.scan(None, Timestamp::MAX, |c| {
                    count(c.series, c.bytes);
                    Ok(())
                })?;
            }
            info.series = series.len() as u64;
            out.push(info);
        }
        Ok(out)
    }

    /// Windows ending at or before `before` whose data is all in a sealed
    /// block file (no delta): `(start, generation, blocks)`, for rollups.
    pub(crate) fn sealed(&self, before: Timestamp) -> Vec<(Timestamp, u64, Arc<BlockFile>)> {
        let slots = self.slots.read().expect("partition lock poisoned");
        slots
            .iter()
            .filter(|(start, _)| start.saturating_add(self.duration) <= before)
            .filter_map(|(_, s)| {
                let p = s.current.read().expect("partition lock poisoned");
                match (&p.delta, &p.blocks) {
                    (None, Some(b)) => Some((p.start, p.generation, b.clone())),
                    _ => None,
                }
            })
            .collect()
    }

    /// Start of the oldest window.
    pub(crate) fn first_start(&self) -> Option<Timestamp> {
        let slots = self.slots.read().expect("partition lock poisoned");
        slots.keys().next().copied()
    }

    /// Number of partitions.
    pub(crate) fn len(&self) -> usize {
        self.slots.read().expect("partition lock poisoned").len()
    }
}

fn remove(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// `"<start>-<generation>.tmb|.redb"` → its parts.
fn parse_name(name: &str) -> Option<(Timestamp, u64, FileKind)> {
    let (stem, kind) = if let Some(stem) = name.strip_suffix(".tmb") {
        (stem, FileKind::Blocks)
    } else {
        (name.strip_suffix(".redb")?, FileKind::Delta)
    };
    // The start may be negative, so split at the last '-'.
    let (start, generation) = stem.rsplit_once('-')?;
    Some((start.parse().ok()?, generation.parse().ok()?, kind))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Splits one series' sorted samples at window boundaries (and at the chunk
/// size limit) and encodes each piece quickly for the delta, appending to
/// `out`.
pub(crate) fn encode_for_partitions(
    parts: &Partitions,
    series: SeriesId,
    samples: &[Sample],
    out: &mut Vec<PendingChunk>,
) {
    let mut rest = samples;
    while let Some(first) = rest.first() {
        let end = parts
            .window_start(first.ts)
            .saturating_add(parts.duration());
        let n = rest
            .partition_point(|s| s.ts < end)
            .min(MAX_CHUNK_SAMPLES as usize);
        let mut bytes = Vec::new();
        encode_chunk_with(&rest[..n], Effort::Fast, &mut bytes);
        out.push(PendingChunk {
            series,
            min_ts: first.ts,
            bytes,
        });
        rest = &rest[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        assert!(matches!(
            parse_name("86400000-3.redb"),
            Some((86_400_000, 3, FileKind::Delta))
        ));
        assert!(matches!(
            parse_name("-86400000-0.tmb"),
            Some((-86_400_000, 0, FileKind::Blocks))
        ));
        assert!(parse_name("x.redb").is_none());
        assert!(parse_name("1-2.tmb.tmp").is_none());
    }
}
