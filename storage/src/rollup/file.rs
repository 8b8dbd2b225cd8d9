//! One rollup partition file, `<tier>/<start>-<gen>.tmr`: every series'
//! rollup points of one window, plus the record of the source partitions
//! (window start, generation) it was built from.
//!
//! The container is the sealed block file of `partition::blocks` (header,
//! blobs back to back, sorted checksummed index, checksummed footer). Each
//! series has one blob, indexed by `(series, first bucket, last bucket)`:
//!
//! ```text
//! 7 × ( len u32 LE | sealed chunk )   columns min, max, sum, count,
//!                                     first, last, increase; each a chunk
//!                                     of (bucket start, value) samples
//! ```
//! The bucket-aligned timestamp stream is regular, so it costs a few bytes
//! per column; the values get the engine's best encoding (Gorilla,
//! decimal or constant, then zstd).
//!
//! The source record is the blob of the reserved series id `u64::MAX`
//! (last in the index): `version u8 | resolution i64 | source width i64 |
//! n u32 | n × (start i64, generation u64) | crc32`.
//!
//! Invariants:
//! - Written under `.tmp`, fsynced and renamed, so a `.tmr` file is always
//!   complete: points and the record of what they were built from appear
//!   together or not at all. A crash can never count a bucket twice or
//!   lose one that an older generation still holds.
//! - Bytes from disk are checked: chunk CRCs, the record's CRC, the
//!   block file's footer and index CRCs.

use std::path::{Path, PathBuf};

use super::compute::RollupPoint;
use crate::encoding::{Effort, decode_chunk, encode_chunk_with};
use crate::error::Error;
use crate::partition::blocks::{BlockEntry, BlockFile, BlockWriter};
use crate::types::{Sample, SeriesId, Timestamp};

/// Reserved series id of the source record.
const RECORD_SERIES: SeriesId = SeriesId(u64::MAX);
const RECORD_VERSION: u8 = 1;
const COLUMNS: usize = 7;

/// A source partition a rollup file was built from.
pub(crate) type SourceGen = (Timestamp, u64);

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::CorruptFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes one rollup file; series must be added in ascending order.
pub(crate) struct RollupWriter {
    tmp: PathBuf,
    path: PathBuf,
    w: BlockWriter,
    samples: Vec<Sample>,
    blob: Vec<u8>,
    chunk: Vec<u8>,
    effort: Effort,
}

impl RollupWriter {
    pub(crate) fn create(path: &Path, effort: Effort) -> Result<Self, Error> {
        let mut tmp = path.as_os_str().to_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        Ok(Self {
            w: BlockWriter::create(&tmp)?,
            tmp,
            path: path.to_path_buf(),
            samples: Vec::new(),
            blob: Vec::new(),
            chunk: Vec::new(),
            effort,
        })
    }

    /// Adds one series' points (sorted, not empty).
    pub(crate) fn add(&mut self, series: SeriesId, points: &[RollupPoint]) -> Result<(), Error> {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return Ok(());
        };
        self.blob.clear();
        for col in 0..COLUMNS {
            self.samples.clear();
            self.samples.extend(points.iter().map(|p| {
                let v = match col {
                    0 => p.min,
                    1 => p.max,
                    2 => p.sum,
                    3 => p.count as f64,
                    4 => p.first,
                    5 => p.last,
                    _ => p.increase,
                };
                Sample::new(p.start, v)
            }));
            // Tier validation bounds a window to MAX_CHUNK_SAMPLES buckets.
            self.chunk.clear();
            encode_chunk_with(&self.samples, self.effort, &mut self.chunk);
            self.blob
                .extend_from_slice(&(self.chunk.len() as u32).to_le_bytes());
            self.blob.extend_from_slice(&self.chunk);
        }
        self.w.add(series, first.start, last.start, &self.blob)
    }

    /// Writes the source record, fsyncs and renames into place.
    pub(crate) fn finish(
        mut self,
        resolution: i64,
        source_width: i64,
        sources: &[SourceGen],
    ) -> Result<(), Error> {
        let mut rec = vec![RECORD_VERSION];
        rec.extend_from_slice(&resolution.to_le_bytes());
        rec.extend_from_slice(&source_width.to_le_bytes());
        rec.extend_from_slice(&(sources.len() as u32).to_le_bytes());
        for (start, generation) in sources {
            rec.extend_from_slice(&start.to_le_bytes());
            rec.extend_from_slice(&generation.to_le_bytes());
        }
        let crc = crc32fast::hash(&rec);
        rec.extend_from_slice(&crc.to_le_bytes());
        self.w.add(RECORD_SERIES, 0, 0, &rec)?;
        self.w.finish()?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

/// An open, verified rollup file.
pub(crate) struct RollupFile {
    pub(crate) start: Timestamp,
    pub(crate) generation: u64,
    pub(crate) resolution: i64,
    pub(crate) source_width: i64,
    pub(crate) sources: Vec<SourceGen>,
    block: BlockFile,
}

impl RollupFile {
    pub(crate) fn open(path: &Path, start: Timestamp, generation: u64) -> Result<Self, Error> {
        let block = BlockFile::open(path)?;
        let mut found = Vec::new();
        block.find(RECORD_SERIES, 0, 0, &mut found)?;
        let Some(e) = found.first() else {
            return Err(corrupt(path, "no source record"));
        };
        let mut rec = Vec::new();
        block.read_chunk(e, &mut rec)?;
        let parse = || -> Option<(i64, i64, Vec<SourceGen>)> {
            let (body, crc) = rec.split_at_checked(rec.len().checked_sub(4)?)?;
            if crc32fast::hash(body).to_le_bytes() != crc || body.first() != Some(&RECORD_VERSION) {
                return None;
            }
            let i64_at = |i: usize| Some(i64::from_le_bytes(body.get(i..i + 8)?.try_into().ok()?));
            let n = u32::from_le_bytes(body.get(17..21)?.try_into().ok()?) as usize;
            if body.len() != 21 + n * 16 {
                return None;
            }
            let sources = (0..n)
                .map(|k| Some((i64_at(21 + k * 16)?, i64_at(29 + k * 16)? as u64)))
                .collect::<Option<Vec<_>>>()?;
            Some((i64_at(1)?, i64_at(9)?, sources))
        };
        let Some((resolution, source_width, sources)) = parse() else {
            return Err(corrupt(path, "bad source record"));
        };
        if resolution <= 0 || source_width <= 0 {
            return Err(corrupt(path, "bad resolution in source record"));
        }
        Ok(Self {
            start,
            generation,
            resolution,
            source_width,
            sources,
            block,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.block.path()
    }

    pub(crate) fn file_bytes(&self) -> u64 {
        self.block.file_bytes()
    }

    /// Index entries of every series, ascending (the record excluded).
    pub(crate) fn entries(&self) -> Result<Vec<BlockEntry>, Error> {
        let mut e = self.block.entries()?;
        e.retain(|e| e.series != RECORD_SERIES);
        Ok(e)
    }

    /// Appends the points of `series` with bucket start in `[start, end]`.
    pub(crate) fn read(
        &self,
        series: SeriesId,
        start: Timestamp,
        end: Timestamp,
        scratch: &mut Scratch,
        out: &mut Vec<RollupPoint>,
    ) -> Result<(), Error> {
        scratch.entries.clear();
        self.block.find(series, start, end, &mut scratch.entries)?;
        for i in 0..scratch.entries.len() {
            let e = scratch.entries[i];
            self.read_entry(&e, start, end, scratch, out)?;
        }
        Ok(())
    }

    /// Appends the points of one index entry within `[start, end]`.
    pub(crate) fn read_entry(
        &self,
        e: &BlockEntry,
        start: Timestamp,
        end: Timestamp,
        scratch: &mut Scratch,
        out: &mut Vec<RollupPoint>,
    ) -> Result<(), Error> {
        self.block.read_chunk(e, &mut scratch.blob)?;
        let bad = |why: &str| corrupt(self.path(), format!("series {}: {why}", e.series.0));
        let mut rest = scratch.blob.as_slice();
        for col in scratch.cols.iter_mut() {
            col.clear();
            let (len, tail) = rest.split_at_checked(4).ok_or_else(|| bad("short blob"))?;
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            let (chunk, tail) = tail
                .split_at_checked(len)
                .ok_or_else(|| bad("short blob"))?;
            decode_chunk(chunk, col).map_err(|err| bad(&err.to_string()))?;
            rest = tail;
        }
        let n = scratch.cols[0].len();
        if scratch.cols.iter().any(|c| c.len() != n) {
            return Err(bad("columns of different lengths"));
        }
        let c = &scratch.cols;
        for (i, head) in c[0].iter().enumerate() {
            let ts = head.ts;
            if ts < start || ts > end {
                continue;
            }
            out.push(RollupPoint {
                start: ts,
                min: head.value,
                max: c[1][i].value,
                sum: c[2][i].value,
                count: c[3][i].value as u64,
                first: c[4][i].value,
                last: c[5][i].value,
                increase: c[6][i].value,
            });
        }
        Ok(())
    }
}

/// Buffers reused across reads.
#[derive(Default)]
pub(crate) struct Scratch {
    entries: Vec<BlockEntry>,
    blob: Vec<u8>,
    cols: [Vec<Sample>; COLUMNS],
}
