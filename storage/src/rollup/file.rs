//! One rollup partition file, `<tier>/<start>-<gen>.tmr`: every series'
//! rollup points of one window, plus the record of the source partitions
//! (window start, generation) it was built from.
//!
//! The container is the sealed block file of `partition::blocks` (header,
//! blobs back to back, sorted checksummed index, checksummed footer). Each
//! series has one blob, indexed by `(series, first bucket, last bucket)`:
//!
//! ```text
//! version u8 = 2 | refs u8 | zstd u8 (0 | 1) | [raw body len u32 LE if zstd]
//! body (zstd frame or raw) | crc32 of everything before, u32 LE
//! body:
//!   7 × ( len u32 LE | sealed chunk )  columns min, max, sum, count, first,
//!                                      last, increase: each a chunk of
//!                                      (bucket start, value) samples
//! ```
//! Bit `k` of `refs` says column `k` is stored as its difference to a
//! reference: `sum - count × min`, `first - min`, `max - last`,
//! `increase - (last - first)`. For counters the last three are runs of
//! zeros (a monotonic bucket has `first = min`, `last = max`, `increase =
//! last - first`) and the first loses the counter's trajectory, which the
//! constant or decimal encodings store in a few bytes; a column is stored
//! that way only when the difference restores every value bit for bit and
//! encodes smaller. Columns are encoded fast (no per-chunk zstd) and the
//! whole body is compressed once, so the repeated bucket timestamp
//! streams and chunk headers of the seven columns cost almost nothing.
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
const BLOB_VERSION: u8 = 2;
const COLUMNS: usize = 7;
/// zstd level of a series blob (written once, in the background).
const ZSTD_LEVEL: i32 = 19;

thread_local! {
    static ZSTD: std::cell::RefCell<(
        Option<zstd::bulk::Compressor<'static>>,
        Option<zstd::bulk::Decompressor<'static>>,
    )> = const { std::cell::RefCell::new((None, None)) };
}

fn compress(body: &[u8], out: &mut Vec<u8>) -> bool {
    ZSTD.with_borrow_mut(|(c, _)| {
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        let Some(c) = c.as_mut() else { return false };
        // zstd writes from the start of the buffer it is given.
        let mut z = Vec::with_capacity(zstd::zstd_safe::compress_bound(body.len()));
        match c.compress_to_buffer(body, &mut z) {
            Ok(n) if n < body.len() => {
                out.extend_from_slice(&z);
                true
            }
            _ => false,
        }
    })
}

fn decompress(src: &[u8], len: usize, out: &mut Vec<u8>) -> Result<(), String> {
    ZSTD.with_borrow_mut(|(_, d)| {
        if d.is_none() {
            *d = zstd::bulk::Decompressor::new().ok();
        }
        let Some(d) = d.as_mut() else {
            return Err("no zstd context".to_string());
        };
        out.clear();
        out.reserve(len);
        match d.decompress_to_buffer(src, out) {
            Ok(n) if n == len => Ok(()),
            Ok(n) => Err(format!("body is {n} bytes, header says {len}")),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// Value `k` of a point.
fn column(p: &RollupPoint, k: usize) -> f64 {
    match k {
        0 => p.min,
        1 => p.max,
        2 => p.sum,
        3 => p.count as f64,
        4 => p.first,
        5 => p.last,
        _ => p.increase,
    }
}

/// The order a reader restores columns in: every reference is restored
/// before the column that uses it.
const RESTORE_ORDER: [usize; COLUMNS] = [0, 1, 3, 2, 4, 5, 6];

/// The reference column `k` may be stored relative to, from columns
/// restored before it (see [`RESTORE_ORDER`]): `None` for columns stored
/// as they are.
fn reference(k: usize, c: &[f64; COLUMNS]) -> Option<f64> {
    match k {
        2 => Some(c[3] * c[0]),
        4 => Some(c[0]),
        5 => Some(c[1]),
        6 => Some(c[5] - c[4]),
        _ => None,
    }
}

/// What column `k` stores for value `v` when relative: `v - ref` for
/// `first`, `ref - v` for `last`, `v - ref` for `increase`.
fn to_relative(k: usize, v: f64, r: f64) -> f64 {
    if k == 5 { r - v } else { v - r }
}

fn from_relative(k: usize, d: f64, r: f64) -> f64 {
    if k == 5 { r - d } else { d + r }
}

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
    body: Vec<u8>,
    blob: Vec<u8>,
    chunk: Vec<u8>,
    alt: Vec<u8>,
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
            body: Vec::new(),
            blob: Vec::new(),
            chunk: Vec::new(),
            alt: Vec::new(),
            effort,
        })
    }

    /// Adds one series' points (sorted, not empty).
    pub(crate) fn add(&mut self, series: SeriesId, points: &[RollupPoint]) -> Result<(), Error> {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return Ok(());
        };
        self.body.clear();
        let mut refs = 0u8;
        for k in 0..COLUMNS {
            self.samples.clear();
            self.samples
                .extend(points.iter().map(|p| Sample::new(p.start, column(p, k))));
            // Tier validation bounds a window to MAX_CHUNK_SAMPLES buckets.
            self.chunk.clear();
            encode_chunk_with(&self.samples, self.effort, &mut self.chunk);
            // The relative form, when every value comes back bit for bit.
            let mut full = [0.0; COLUMNS];
            let relative_ok = reference(k, &full).is_some()
                && points.iter().zip(self.samples.iter_mut()).all(|(p, s)| {
                    for (j, f) in full.iter_mut().enumerate() {
                        *f = column(p, j);
                    }
                    let r = reference(k, &full).expect("checked above");
                    let d = to_relative(k, s.value, r);
                    let back = from_relative(k, d, r);
                    s.value = d;
                    back.to_bits() == column(p, k).to_bits()
                });
            if relative_ok {
                self.alt.clear();
                encode_chunk_with(&self.samples, self.effort, &mut self.alt);
                if self.alt.len() < self.chunk.len() {
                    std::mem::swap(&mut self.alt, &mut self.chunk);
                    refs |= 1 << k;
                }
            }
            self.body
                .extend_from_slice(&(self.chunk.len() as u32).to_le_bytes());
            self.body.extend_from_slice(&self.chunk);
        }
        self.blob.clear();
        self.blob.extend_from_slice(&[BLOB_VERSION, refs, 1]);
        self.blob
            .extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        if !compress(&self.body, &mut self.blob) {
            self.blob.truncate(2);
            self.blob.push(0);
            self.blob.extend_from_slice(&self.body);
        }
        let crc = crc32fast::hash(&self.blob);
        self.blob.extend_from_slice(&crc.to_le_bytes());
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
        let (blob, crc) = scratch
            .blob
            .split_at_checked(scratch.blob.len().saturating_sub(4))
            .ok_or_else(|| bad("short blob"))?;
        if crc.len() != 4 || crc32fast::hash(blob).to_le_bytes() != crc {
            return Err(bad("checksum mismatch"));
        }
        let (head, rest) = blob.split_at_checked(3).ok_or_else(|| bad("short blob"))?;
        if head[0] != BLOB_VERSION || head[2] > 1 {
            return Err(bad("unknown blob version or flags"));
        }
        let refs = head[1];
        let body: &[u8] = if head[2] == 1 {
            let (len, z) = rest.split_at_checked(4).ok_or_else(|| bad("short blob"))?;
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            if len > 64 << 20 {
                return Err(bad("body length out of range"));
            }
            decompress(z, len, &mut scratch.body).map_err(|e| bad(&e))?;
            &scratch.body
        } else {
            rest
        };
        let mut rest = body;
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
        let mut v = [0.0; COLUMNS];
        for (i, head) in c[0].iter().enumerate() {
            let ts = head.ts;
            if ts < start || ts > end {
                continue;
            }
            for k in RESTORE_ORDER {
                let stored = c[k][i].value;
                v[k] = match reference(k, &v) {
                    Some(r) if refs & (1 << k) != 0 => from_relative(k, stored, r),
                    _ => stored,
                };
            }
            out.push(RollupPoint {
                start: ts,
                min: v[0],
                max: v[1],
                sum: v[2],
                count: v[3] as u64,
                first: v[4],
                last: v[5],
                increase: v[6],
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
    body: Vec<u8>,
    cols: [Vec<Sample>; COLUMNS],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<RollupPoint> {
        (0..500i64)
            .map(|i| {
                let base = 1e6 + (i * 60) as f64;
                let counter = i % 2 == 0;
                RollupPoint {
                    start: i * 60_000,
                    min: if counter { base } else { 0.1 * i as f64 - 7.3 },
                    max: if counter { base + 55.0 } else { f64::INFINITY },
                    sum: 0.7 * i as f64,
                    count: (i % 7) as u64 + 1,
                    first: if counter { base } else { -0.0 },
                    last: if counter { base + 55.0 } else { 0.3 },
                    increase: if counter { 55.0 } else { 1.0 / 3.0 },
                }
            })
            .collect()
    }

    #[test]
    fn blobs_round_trip_bit_exact_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0-1.tmr");
        let pts = points();
        let mut w = RollupWriter::create(&path, Effort::Fast).unwrap();
        w.add(SeriesId(3), &pts).unwrap();
        w.add(SeriesId(9), &pts[..1]).unwrap();
        w.finish(60_000, 86_400_000, &[(0, 4)]).unwrap();
        let f = RollupFile::open(&path, 0, 1).unwrap();
        assert_eq!(f.sources, vec![(0, 4)]);
        let mut sc = Scratch::default();
        let mut got = Vec::new();
        f.read(SeriesId(3), i64::MIN, i64::MAX, &mut sc, &mut got)
            .unwrap();
        assert_eq!(got.len(), pts.len());
        for (a, b) in got.iter().zip(&pts) {
            let bits = |p: &RollupPoint| {
                (0..COLUMNS)
                    .map(|k| column(p, k).to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!((a.start, bits(a)), (b.start, bits(b)));
        }
        got.clear();
        f.read(SeriesId(3), 60_000, 120_000, &mut sc, &mut got)
            .unwrap();
        assert_eq!(got.len(), 2);
        // Any flipped byte of a blob is refused for that series alone.
        let bytes = std::fs::read(&path).unwrap();
        let entries = f.entries().unwrap();
        let e = entries[0];
        for i in (e.offset..e.offset + u64::from(e.len)).step_by(7) {
            let mut bad = bytes.clone();
            bad[i as usize] ^= 0x20;
            std::fs::write(&path, &bad).unwrap();
            let f = RollupFile::open(&path, 0, 1).unwrap();
            let mut out = Vec::new();
            assert!(
                f.read(SeriesId(3), i64::MIN, i64::MAX, &mut sc, &mut out)
                    .is_err()
            );
            f.read(SeriesId(9), i64::MIN, i64::MAX, &mut sc, &mut out)
                .unwrap();
            assert_eq!(out.len(), 1);
        }
    }
}
