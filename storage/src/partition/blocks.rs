//! Sealed block files (`<start>-<gen>.tmb`): the immutable, compacted form
//! of a partition. One file holds every series' large sealed chunks for the
//! window back to back, then a fixed-width index, then a footer.
//!
//! ```text
//! ┌────────────────────────────────────────┐ offset 0
//! │ magic "TMBK" │ version u8 = 1 │ 0 × 3  │ 8 bytes
//! ├────────────────────────────────────────┤
//! │ chunk 0 │ chunk 1 │ ... │ chunk n-1    │ sealed chunks, each with its own CRC
//! ├────────────────────────────────────────┤ index_offset
//! │ entry 0 │ ... │ entry n-1              │ ENTRY_LEN bytes each, sorted by
//! │   series u64 │ min_ts i64 │ max_ts i64 │ (series, min_ts)
//! │   offset u64 │ len u32                 │
//! ├────────────────────────────────────────┤
//! │ index_offset u64 │ count u64           │ footer, FOOTER_LEN bytes
//! │ index_crc u32 │ footer_crc u32         │ (footer_crc covers the 24
//! │ version u8 │ 0 × 3 │ magic "TMBK"      │  bytes before it)
//! └────────────────────────────────────────┘
//! ```
//! All integers little-endian.
//!
//! Invariants:
//! - Written once to a `.tmp` path, fsynced, then renamed: a `.tmb` file is
//!   always complete. Its footer and index are verified at open.
//! - Index entries are sorted by `(series, min_ts)`, so one series' chunks
//!   are found by binary search with positioned reads; nothing of the index
//!   is held in memory.
//! - Per-chunk overhead is `ENTRY_LEN` bytes (about 2 % of a 12 h chunk at
//!   10 s), against ~100 % for one redb value per chunk (half-empty pages).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::types::{SeriesId, Timestamp};

const MAGIC: [u8; 4] = *b"TMBK";
const VERSION: u8 = 1;
const HEADER_LEN: u64 = 8;
const ENTRY_LEN: usize = 36;
const FOOTER_LEN: usize = 32;

/// One chunk's index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockEntry {
    pub(crate) series: SeriesId,
    pub(crate) min_ts: Timestamp,
    pub(crate) max_ts: Timestamp,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

impl BlockEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.series.0.to_le_bytes());
        out.extend_from_slice(&self.min_ts.to_le_bytes());
        out.extend_from_slice(&self.max_ts.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
    }

    fn decode(b: &[u8; ENTRY_LEN]) -> Self {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(&b[32..36]);
        BlockEntry {
            series: SeriesId(u64_at(0)),
            min_ts: u64_at(8) as i64,
            max_ts: u64_at(16) as i64,
            offset: u64_at(24),
            len: u32::from_le_bytes(len),
        }
    }
}

/// Why a block file was refused at open.
fn corrupt(path: &Path, what: &str) -> Error {
    Error::CorruptFile {
        path: path.to_path_buf(),
        reason: what.to_string(),
    }
}

/// Writes a block file; chunks must be added in `(series, min_ts)` order.
pub(crate) struct BlockWriter {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    index: Vec<u8>,
    count: u64,
    last: Option<(SeriesId, Timestamp)>,
}

impl BlockWriter {
    pub(crate) fn create(path: &Path) -> Result<Self, Error> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut header = [0u8; HEADER_LEN as usize];
        header[..4].copy_from_slice(&MAGIC);
        header[4] = VERSION;
        out.write_all(&header).map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            offset: HEADER_LEN,
            index: Vec::new(),
            count: 0,
            last: None,
        })
    }

    /// Appends one sealed chunk.
    ///
    /// # Panics
    /// In debug builds, when chunks arrive out of `(series, min_ts)` order.
    pub(crate) fn add(
        &mut self,
        series: SeriesId,
        min_ts: Timestamp,
        max_ts: Timestamp,
        chunk: &[u8],
    ) -> Result<(), Error> {
        debug_assert!(
            self.last.is_none_or(|l| l < (series, min_ts)),
            "block chunks out of order"
        );
        self.last = Some((series, min_ts));
        self.out
            .write_all(chunk)
            .map_err(|e| Error::io(&self.path, e))?;
        BlockEntry {
            series,
            min_ts,
            max_ts,
            offset: self.offset,
            len: chunk.len() as u32,
        }
        .encode(&mut self.index);
        self.offset += chunk.len() as u64;
        self.count += 1;
        Ok(())
    }

    /// Writes index and footer and fsyncs the file.
    pub(crate) fn finish(mut self) -> Result<(), Error> {
        let p = &self.path;
        self.out
            .write_all(&self.index)
            .map_err(|e| Error::io(p, e))?;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(&self.offset.to_le_bytes());
        footer.extend_from_slice(&self.count.to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&self.index).to_le_bytes());
        let footer_crc = crc32fast::hash(&footer);
        footer.extend_from_slice(&footer_crc.to_le_bytes());
        footer.push(VERSION);
        footer.extend_from_slice(&[0; 3]);
        footer.extend_from_slice(&MAGIC);
        debug_assert_eq!(footer.len(), FOOTER_LEN);
        self.out.write_all(&footer).map_err(|e| Error::io(p, e))?;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(p, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(p, e))
    }
}

/// An open, verified block file.
pub(crate) struct BlockFile {
    path: PathBuf,
    file: File,
    index_offset: u64,
    count: u64,
    len: u64,
}

impl BlockFile {
    /// Opens and verifies footer and index checksums.
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < HEADER_LEN + FOOTER_LEN as u64 {
            return Err(corrupt(path, "shorter than header and footer"));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| Error::io(path, e))?;
        if header[..4] != MAGIC || header[4] != VERSION || header[5..] != [0; 3] {
            return Err(corrupt(path, "bad magic or unsupported version in header"));
        }
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, len - FOOTER_LEN as u64)
            .map_err(|e| Error::io(path, e))?;
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&footer[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at = |i: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&footer[i..i + 4]);
            u32::from_le_bytes(a)
        };
        if footer[28..32] != MAGIC
            || footer[24..28] != [VERSION, 0, 0, 0]
            || crc32fast::hash(&footer[..20]) != u32_at(20)
        {
            return Err(corrupt(path, "bad footer checksum, version or magic"));
        }
        let (index_offset, count, index_crc) = (u64_at(0), u64_at(8), u32_at(16));
        let index_len = count.checked_mul(ENTRY_LEN as u64);
        if index_len.and_then(|l| l.checked_add(index_offset)) != Some(len - FOOTER_LEN as u64)
            || index_offset < HEADER_LEN
        {
            return Err(corrupt(path, "index bounds do not match the file size"));
        }
        let mut index = vec![0u8; (count as usize) * ENTRY_LEN];
        file.read_exact_at(&mut index, index_offset)
            .map_err(|e| Error::io(path, e))?;
        if crc32fast::hash(&index) != index_crc {
            return Err(corrupt(path, "bad index checksum"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            index_offset,
            count,
            len,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file_bytes(&self) -> u64 {
        self.len
    }

    fn entry(&self, i: u64) -> Result<BlockEntry, Error> {
        let mut b = [0u8; ENTRY_LEN];
        self.file
            .read_exact_at(&mut b, self.index_offset + i * ENTRY_LEN as u64)
            .map_err(|e| Error::io(&self.path, e))?;
        let e = BlockEntry::decode(&b);
        // The index CRC was checked at open; an entry pointing outside the
        // chunk area would still be a bug or a changed file: refuse it.
        if e.offset.saturating_add(u64::from(e.len)) > self.index_offset {
            return Err(corrupt(
                &self.path,
                "index entry points past the chunk area",
            ));
        }
        Ok(e)
    }

    /// Entries of `series` whose window may overlap `[start, end]`, in order.
    pub(crate) fn find(
        &self,
        series: SeriesId,
        start: Timestamp,
        end: Timestamp,
        out: &mut Vec<BlockEntry>,
    ) -> Result<(), Error> {
        // First entry with entry.series >= series.
        let (mut lo, mut hi) = (0u64, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid)?.series < series {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for i in lo..self.count {
            let e = self.entry(i)?;
            if e.series != series || e.min_ts > end {
                break;
            }
            if e.max_ts >= start {
                out.push(e);
            }
        }
        Ok(())
    }

    /// Every entry, in order.
    pub(crate) fn entries(&self) -> Result<Vec<BlockEntry>, Error> {
        (0..self.count).map(|i| self.entry(i)).collect()
    }

    /// Reads the chunk bytes of `e` into `buf` (replacing its contents).
    pub(crate) fn read_chunk(&self, e: &BlockEntry, buf: &mut Vec<u8>) -> Result<(), Error> {
        buf.resize(e.len as usize, 0);
        self.file
            .read_exact_at(buf, e.offset)
            .map_err(|err| Error::io(&self.path, err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_find_and_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0-1.tmb");
        let mut w = BlockWriter::create(&path).unwrap();
        let chunks: Vec<(u64, i64, i64, Vec<u8>)> = vec![
            (1, 0, 99, vec![1; 10]),
            (1, 100, 199, vec![2; 20]),
            (3, 50, 60, vec![3; 5]),
            (7, 0, 10, vec![4; 7]),
        ];
        for (s, a, b, c) in &chunks {
            w.add(SeriesId(*s), *a, *b, c).unwrap();
        }
        w.finish().unwrap();
        let f = BlockFile::open(&path).unwrap();
        let mut found = Vec::new();
        f.find(SeriesId(1), 150, 1000, &mut found).unwrap();
        assert_eq!(found.len(), 1);
        let mut buf = Vec::new();
        f.read_chunk(&found[0], &mut buf).unwrap();
        assert_eq!(buf, vec![2; 20]);
        found.clear();
        f.find(SeriesId(1), 0, 1000, &mut found).unwrap();
        assert_eq!(found.len(), 2);
        for (missing, start, end) in [(2, 0, 1000), (3, 61, 1000), (3, 0, 49), (8, 0, 100)] {
            found.clear();
            f.find(SeriesId(missing), start, end, &mut found).unwrap();
            assert!(found.is_empty(), "series {missing} [{start}, {end}]");
        }
        assert_eq!(f.entries().unwrap().len(), 4);

        // Any flipped byte in header, index or footer is refused at open.
        let bytes = std::fs::read(&path).unwrap();
        let chunk_area = 8..(8 + 42);
        for i in (0..bytes.len()).filter(|i| !chunk_area.contains(i)) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x55;
            std::fs::write(&path, &bad).unwrap();
            assert!(BlockFile::open(&path).is_err(), "flipped byte {i} accepted");
        }
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(BlockFile::open(&path).is_err(), "truncated file accepted");
    }
}
