//! Time partitions of raw chunks: one redb file per partition window
//! (`raw/<start_ms>-<generation>.redb`), holding the chunks that the head
//! flushes and that compaction rewrites into large sealed blocks.
//!
//! Invariants:
//! - A chunk lies wholly inside its partition's window `[start, start+dur)`.
//! - Keys are `(series, chunk min_ts, seq)`; `seq` grows with every write, so
//!   for samples with equal timestamps the chunk with the higher `seq` was
//!   written later and wins.
//! - Compaction writes `<start>-<gen+1>.redb.tmp`, fsyncs, renames it into
//!   place, then deletes generation `gen`. At open, `.tmp` files are partial
//!   and deleted, and only the highest generation of a window is kept, so a
//!   crash at any step leaves one complete copy.
//! - A chunk that fails its checksum is reported (location + reason),
//!   counted and skipped; reads never panic on disk bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::encoding::{MAX_CHUNK_SAMPLES, decode_chunk, encode_chunk, read_chunk_header};
use crate::error::Error;
use crate::head::dedup_keep_last;
use crate::types::{Sample, SeriesId, Timestamp};

/// `(series, min_ts, seq) → sealed chunk`.
const CHUNKS: TableDefinition<(u64, i64, u64), &[u8]> = TableDefinition::new("chunks");

/// Largest sealed block compaction writes. One series-day at 10 s is 8,640
/// samples; larger blocks compress a little better but every read of a short
/// range decodes the whole block.
const MAX_BLOCK_SAMPLES: usize = 16_384;

/// redb page cache per partition file. Reads are mostly sequential scans of
/// one series' few chunks; a small cache keeps RSS bounded with many files.
const PARTITION_CACHE_BYTES: usize = 4 << 20;

/// A chunk ready to be written: series, its samples' time range, bytes.
pub(crate) struct PendingChunk {
    pub(crate) series: SeriesId,
    pub(crate) min_ts: Timestamp,
    pub(crate) bytes: Vec<u8>,
}

struct Partition {
    generation: u64,
    path: PathBuf,
    db: redb::Database,
}

struct Slot {
    /// Serialises writers of this window (flushes and compaction).
    write: Mutex<()>,
    current: RwLock<Arc<Partition>>,
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

fn redb_err(path: &Path) -> impl Fn(redb::Error) -> Error + '_ {
    move |e| Error::redb(path, e)
}

impl Partitions {
    pub(crate) fn open(dir: &Path, duration_ms: i64, durable: bool) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut found: BTreeMap<Timestamp, Vec<(u64, PathBuf)>> = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.ends_with(".tmp") {
                tracing::warn!(path = %path.display(), "removing partial compaction output");
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                continue;
            }
            let Some((start, generation)) = parse_name(name) else {
                continue;
            };
            found.entry(start).or_default().push((generation, path));
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
        for (start, mut gens) in found {
            gens.sort();
            let (generation, path) = gens.pop().expect("at least one generation");
            for (_, stale) in gens {
                tracing::warn!(path = %stale.display(), "removing superseded partition generation");
                std::fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
            }
            let p = open_db(generation, path)?;
            max_seq = max_seq.max(p.max_seq()?);
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

    /// Start of the window that holds `ts`.
    pub(crate) fn window_start(&self, ts: Timestamp) -> Timestamp {
        ts.div_euclid(self.duration).saturating_mul(self.duration)
    }

    pub(crate) fn duration(&self) -> i64 {
        self.duration
    }

    fn slot(&self, start: Timestamp) -> Result<Arc<Slot>, Error> {
        if let Some(s) = self
            .slots
            .read()
            .expect("partition lock poisoned")
            .get(&start)
        {
            return Ok(s.clone());
        }
        let mut slots = self.slots.write().expect("partition lock poisoned");
        if let Some(s) = slots.get(&start) {
            return Ok(s.clone());
        }
        let path = self.dir.join(format!("{start}-0.redb"));
        let p = open_db(0, path)?;
        let slot = Arc::new(Slot {
            write: Mutex::new(()),
            current: RwLock::new(Arc::new(p)),
        });
        slots.insert(start, slot.clone());
        Ok(slot)
    }

    /// Writes chunks (any partitions, any order) with one commit per
    /// partition; durable on return when the store is durable.
    pub(crate) fn write(&self, chunks: &mut [PendingChunk]) -> Result<(), Error> {
        chunks.sort_by_key(|c| (self.window_start(c.min_ts), c.series, c.min_ts));
        let seq = self.seq.fetch_add(chunks.len() as u64, Ordering::AcqRel);
        let mut i = 0;
        while i < chunks.len() {
            let start = self.window_start(chunks[i].min_ts);
            let end = chunks[i..]
                .iter()
                .position(|c| self.window_start(c.min_ts) != start)
                .map_or(chunks.len(), |n| i + n);
            let slot = self.slot(start)?;
            let _w = slot.write.lock().expect("partition lock poisoned");
            let p = slot
                .current
                .read()
                .expect("partition lock poisoned")
                .clone();
            let err = redb_err(&p.path);
            let mut tx = p.db.begin_write().map_err(|e| err(e.into()))?;
            if !self.durable {
                tx.set_durability(redb::Durability::None)
                    .map_err(|e| err(e.into()))?;
            }
            {
                let mut table = tx.open_table(CHUNKS).map_err(|e| err(e.into()))?;
                for (k, c) in chunks[i..end].iter().enumerate() {
                    table
                        .insert(
                            (c.series.0, c.min_ts, seq + (i + k) as u64),
                            c.bytes.as_slice(),
                        )
                        .map_err(|e| err(e.into()))?;
                }
            }
            tx.commit().map_err(|e| err(e.into()))?;
            i = end;
        }
        Ok(())
    }

    /// Appends series `id`'s stored samples in `[start, end]` to `out`,
    /// sorted and deduplicated (later writes win). Corrupt chunks are
    /// reported and skipped.
    pub(crate) fn read(
        &self,
        id: SeriesId,
        start: Timestamp,
        end: Timestamp,
        out: &mut Vec<Sample>,
    ) -> Result<(), Error> {
        let slots: Vec<Arc<Slot>> = {
            let slots = self.slots.read().expect("partition lock poisoned");
            let first = self.window_start(start);
            slots.range(first..=end).map(|(_, s)| s.clone()).collect()
        };
        let from = out.len();
        let mut tagged: Vec<(Timestamp, u64, f64)> = Vec::new();
        let mut scratch = Vec::new();
        let mut overlapping = false;
        for slot in slots {
            let p = slot
                .current
                .read()
                .expect("partition lock poisoned")
                .clone();
            let err = redb_err(&p.path);
            let tx = p.db.begin_read().map_err(|e| err(e.into()))?;
            let table = match tx.open_table(CHUNKS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(err(e.into())),
            };
            let range = table
                .range((id.0, Timestamp::MIN, 0)..=(id.0, end, u64::MAX))
                .map_err(|e| err(e.into()))?;
            for row in range {
                let (key, value) = row.map_err(|e| err(e.into()))?;
                let (_, min_ts, seq) = key.value();
                let bytes = value.value();
                let header = match read_chunk_header(bytes) {
                    Ok(h) => h,
                    Err(e) => {
                        self.report_corrupt(&p.path, id, min_ts, &e.to_string());
                        continue;
                    }
                };
                if header.max_ts < start {
                    continue;
                }
                scratch.clear();
                if let Err(e) = decode_chunk(bytes, &mut scratch) {
                    self.report_corrupt(&p.path, id, min_ts, &e.to_string());
                    continue;
                }
                let last = tagged.last().map(|t| t.0);
                overlapping |= last.is_some_and(|l| l >= header.min_ts);
                tagged.extend(
                    scratch
                        .iter()
                        .filter(|s| s.ts >= start && s.ts <= end)
                        .map(|s| (s.ts, seq, s.value)),
                );
            }
        }
        if overlapping {
            tagged.sort_by_key(|t| (t.0, t.1));
        }
        out.extend(tagged.iter().map(|t| Sample::new(t.0, t.2)));
        if overlapping {
            dedup_keep_last(out, from);
        }
        Ok(())
    }

    fn report_corrupt(&self, path: &Path, id: SeriesId, min_ts: Timestamp, reason: &str) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(path = %path.display(), series = id.0, min_ts, reason, "skipping corrupt chunk");
    }

    /// Corrupt chunks skipped by reads since open.
    pub(crate) fn corrupt_chunks(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Rewrites every partition whose window ends at or before `before` and
    /// that holds more than one chunk for some series into one large sealed
    /// block per series (split at [`MAX_BLOCK_SAMPLES`]). Returns how many
    /// partitions were rewritten.
    pub(crate) fn compact(&self, before: Timestamp) -> Result<usize, Error> {
        let slots: Vec<(Timestamp, Arc<Slot>)> = {
            let slots = self.slots.read().expect("partition lock poisoned");
            slots
                .iter()
                .filter(|(start, _)| start.saturating_add(self.duration) <= before)
                .map(|(s, slot)| (*s, slot.clone()))
                .collect()
        };
        let mut rewritten = 0;
        for (start, slot) in slots {
            let _w = slot.write.lock().expect("partition lock poisoned");
            let old = slot
                .current
                .read()
                .expect("partition lock poisoned")
                .clone();
            if let Some(new) = self.compact_one(start, &old)? {
                *slot.current.write().expect("partition lock poisoned") = Arc::new(new);
                // Readers holding the old handle keep reading the unlinked file.
                std::fs::remove_file(&old.path).map_err(|e| Error::io(&old.path, e))?;
                rewritten += 1;
            }
        }
        Ok(rewritten)
    }

    fn compact_one(&self, start: Timestamp, old: &Partition) -> Result<Option<Partition>, Error> {
        let err = redb_err(&old.path);
        let tx = old.db.begin_read().map_err(|e| err(e.into()))?;
        let table = match tx.open_table(CHUNKS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(e.into())),
        };
        // Already compact when no series has two chunks.
        let mut prev = None;
        let mut needed = false;
        for row in table.iter().map_err(|e| err(e.into()))? {
            let (key, _) = row.map_err(|e| err(e.into()))?;
            let series = key.value().0;
            if prev == Some(series) {
                needed = true;
                break;
            }
            prev = Some(series);
        }
        if !needed {
            return Ok(None);
        }

        let generation = old.generation + 1;
        let final_path = self.dir.join(format!("{start}-{generation}.redb"));
        let tmp_path = final_path.with_extension("redb.tmp");
        let _ = std::fs::remove_file(&tmp_path);
        let new_db = redb::Database::builder()
            .set_cache_size(PARTITION_CACHE_BYTES)
            .create(&tmp_path)
            .map_err(|e| Error::redb(&tmp_path, e))?;
        let werr = redb_err(&tmp_path);
        let wtx = new_db.begin_write().map_err(|e| werr(e.into()))?;
        {
            let mut out = wtx.open_table(CHUNKS).map_err(|e| werr(e.into()))?;
            let mut samples: Vec<(Timestamp, u64, f64)> = Vec::new();
            let mut merged: Vec<Sample> = Vec::new();
            let mut scratch: Vec<Sample> = Vec::new();
            let mut buf = Vec::new();
            let mut current: Option<u64> = None;
            let seq = self.seq.fetch_add(1, Ordering::AcqRel);
            let mut emit =
                |series: u64, samples: &mut Vec<(Timestamp, u64, f64)>| -> Result<(), Error> {
                    samples.sort_by_key(|t| (t.0, t.1));
                    merged.clear();
                    merged.extend(samples.iter().map(|t| Sample::new(t.0, t.2)));
                    dedup_keep_last(&mut merged, 0);
                    for block in merged.chunks(MAX_BLOCK_SAMPLES) {
                        buf.clear();
                        encode_chunk(block, &mut buf);
                        out.insert((series, block[0].ts, seq), buf.as_slice())
                            .map_err(|e| werr(e.into()))?;
                    }
                    samples.clear();
                    Ok(())
                };
            for row in table.iter().map_err(|e| err(e.into()))? {
                let (key, value) = row.map_err(|e| err(e.into()))?;
                let (series, min_ts, seq) = key.value();
                if current.is_some_and(|c| c != series) {
                    emit(current.expect("checked"), &mut samples)?;
                }
                current = Some(series);
                scratch.clear();
                if let Err(e) = decode_chunk(value.value(), &mut scratch) {
                    self.report_corrupt(&old.path, SeriesId(series), min_ts, &e.to_string());
                    continue;
                }
                samples.extend(scratch.iter().map(|s| (s.ts, seq, s.value)));
            }
            if let Some(series) = current {
                emit(series, &mut samples)?;
            }
        }
        wtx.commit().map_err(|e| werr(e.into()))?;
        drop(new_db);
        std::fs::rename(&tmp_path, &final_path).map_err(|e| Error::io(&final_path, e))?;
        sync_dir(&self.dir)?;
        Ok(Some(open_db(generation, final_path)?))
    }

    /// Bytes of all partition files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        let slots = self.slots.read().expect("partition lock poisoned");
        slots
            .values()
            .map(|s| {
                let p = s.current.read().expect("partition lock poisoned");
                std::fs::metadata(&p.path).map(|m| m.len()).unwrap_or(0)
            })
            .sum()
    }

    /// Number of partitions.
    pub(crate) fn len(&self) -> usize {
        self.slots.read().expect("partition lock poisoned").len()
    }
}

impl Partition {
    fn max_seq(&self) -> Result<u64, Error> {
        let err = redb_err(&self.path);
        let tx = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = match tx.open_table(CHUNKS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(err(e.into())),
        };
        let mut max = 0;
        for row in table.iter().map_err(|e| err(e.into()))? {
            let (key, _) = row.map_err(|e| err(e.into()))?;
            max = max.max(key.value().2);
        }
        Ok(max)
    }
}

fn open_db(generation: u64, path: PathBuf) -> Result<Partition, Error> {
    let db = redb::Database::builder()
        .set_cache_size(PARTITION_CACHE_BYTES)
        .create(&path)
        .map_err(|e| Error::redb(&path, e))?;
    Ok(Partition {
        generation,
        path,
        db,
    })
}

/// `"<start>-<generation>.redb"` → `(start, generation)`.
fn parse_name(name: &str) -> Option<(Timestamp, u64)> {
    let stem = name.strip_suffix(".redb")?;
    // The start may be negative, so split at the last '-'.
    let (start, generation) = stem.rsplit_once('-')?;
    Some((start.parse().ok()?, generation.parse().ok()?))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Splits one series' sorted samples at partition boundaries (and at the
/// chunk size limit) and encodes each piece, appending to `out`.
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
        encode_chunk(&rest[..n], &mut bytes);
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
        assert_eq!(parse_name("86400000-3.redb"), Some((86_400_000, 3)));
        assert_eq!(parse_name("-86400000-0.redb"), Some((-86_400_000, 0)));
        assert_eq!(parse_name("x.redb"), None);
    }
}
