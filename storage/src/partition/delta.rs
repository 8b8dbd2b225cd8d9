//! The delta store of a partition (`<start>-<gen>.redb`): small chunks the
//! head flushes into a window, until compaction folds them into the block
//! file. redb gives us crash-safe, transactional appends of many chunks.
//!
//! Invariants:
//! - Keys are `(series, chunk min_ts, seq)`; `seq` grows with every write
//!   across all partitions, so among chunks with equal timestamps the higher
//!   `seq` was written later and wins.
//! - A delta is created on the first write into its window after open or
//!   compaction; a compacted window has no delta file at all.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, TableDefinition};

use crate::error::Error;
use crate::types::{SeriesId, Timestamp};

/// `(series, min_ts, seq) → sealed chunk`.
const CHUNKS: TableDefinition<(u64, i64, u64), &[u8]> = TableDefinition::new("chunks");

/// redb page cache per delta file. Reads scan one series' few chunks; a
/// small cache keeps RSS bounded with many files open.
const CACHE_BYTES: usize = 4 << 20;

/// One stored chunk as the delta hands it out.
pub(crate) struct DeltaChunk<'a> {
    pub(crate) series: SeriesId,
    pub(crate) min_ts: Timestamp,
    pub(crate) seq: u64,
    pub(crate) bytes: &'a [u8],
}

pub(crate) struct Delta {
    path: PathBuf,
    db: redb::Database,
}

impl Delta {
    pub(crate) fn open(path: PathBuf) -> Result<Self, Error> {
        let db = crate::redb_file::open_or_create(&path, CACHE_BYTES)?;
        Ok(Self { path, db })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(redb::Error) -> Error + '_ {
        move |e| Error::redb(&self.path, e)
    }

    /// Inserts chunks `(series, min_ts, bytes)` with consecutive sequence
    /// numbers from `first_seq`, in one transaction.
    pub(crate) fn write<'a>(
        &self,
        chunks: impl Iterator<Item = (SeriesId, Timestamp, &'a [u8])>,
        first_seq: u64,
        durable: bool,
    ) -> Result<(), Error> {
        let err = self.err();
        let mut tx = self.db.begin_write().map_err(|e| err(e.into()))?;
        if !durable {
            tx.set_durability(redb::Durability::None)
                .map_err(|e| err(e.into()))?;
        }
        {
            let mut table = tx.open_table(CHUNKS).map_err(|e| err(e.into()))?;
            for (i, (series, min_ts, bytes)) in chunks.enumerate() {
                table
                    .insert((series.0, min_ts, first_seq + i as u64), bytes)
                    .map_err(|e| err(e.into()))?;
            }
        }
        tx.commit().map_err(|e| err(e.into()))
    }

    /// Calls `f` for every chunk of `series` with `min_ts <= end`, in key
    /// order; with `series == None`, for every chunk.
    pub(crate) fn scan(
        &self,
        series: Option<SeriesId>,
        end: Timestamp,
        f: impl FnMut(DeltaChunk<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let reader = self.reader()?;
        match series {
            Some(id) => reader.scan_series(id, end, f),
            None => reader.scan_all(f),
        }
    }

    /// One read transaction for many scans (a batch read of many series
    /// opens the table once, not once per series).
    pub(crate) fn reader(&self) -> Result<DeltaReader<'_>, Error> {
        let err = self.err();
        let tx = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = match tx.open_table(CHUNKS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(err(e.into())),
        };
        Ok(DeltaReader { delta: self, table })
    }

    /// The highest sequence number stored (0 when empty).
    pub(crate) fn max_seq(&self) -> Result<u64, Error> {
        let mut max = 0;
        self.scan(None, Timestamp::MAX, |c| {
            max = max.max(c.seq);
            Ok(())
        })?;
        Ok(max)
    }

    pub(crate) fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

/// Keys a [`DeltaCursor`] steps over before it seeks instead: stepping
/// costs a key comparison, a seek a B-tree descent.
const RESEEK_AFTER: usize = 32;

type Key = (u64, i64, u64);
type Peeked<'r> = (Key, redb::AccessGuard<'r, &'static [u8]>);

/// Walks a delta's chunks for series asked in ascending id order with one
/// forward B-tree iterator (a merge join), seeking only when the next
/// series asked for is far ahead or behind. Reading 10,000 neighbouring
/// series this way costs 10,000 steps instead of 10,000 descents.
pub(crate) struct DeltaCursor<'r> {
    reader: &'r DeltaReader<'r>,
    range: Option<redb::Range<'r, Key, &'static [u8]>>,
    peeked: Option<Peeked<'r>>,
    last: Option<SeriesId>,
}

impl<'r> DeltaCursor<'r> {
    /// Calls `f` for every chunk of `series` with `min_ts <= end`, in key
    /// order. Any order of calls is correct; ascending ids are fast.
    pub(crate) fn series(
        &mut self,
        series: SeriesId,
        end: Timestamp,
        mut f: impl FnMut(DeltaChunk<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.reader.table.is_none() {
            return Ok(());
        }
        if self.last.is_none_or(|l| series <= l) {
            self.seek(series)?;
        }
        self.last = Some(series);
        let mut skipped = 0;
        loop {
            let Some((id, min_ts, seq)) = self.peek()? else {
                return Ok(());
            };
            if id > series.0 {
                return Ok(());
            }
            if id < series.0 {
                skipped += 1;
                if skipped > RESEEK_AFTER {
                    self.seek(series)?;
                    skipped = 0;
                } else {
                    self.peeked = None;
                }
                continue;
            }
            if min_ts <= end {
                let value = &self.peeked.as_ref().expect("peeked above").1;
                f(DeltaChunk {
                    series,
                    min_ts,
                    seq,
                    bytes: value.value(),
                })?;
            }
            self.peeked = None;
        }
    }

    fn seek(&mut self, series: SeriesId) -> Result<(), Error> {
        let table = self.reader.table.as_ref().expect("checked by the caller");
        let range = table
            .range::<Key>((series.0, Timestamp::MIN, 0)..)
            .map_err(|e| self.reader.delta.err()(e.into()))?;
        self.range = Some(range);
        self.peeked = None;
        Ok(())
    }

    /// The next row's key, reading it if needed; `None` at the end.
    fn peek(&mut self) -> Result<Option<Key>, Error> {
        if self.peeked.is_none() {
            let Some(range) = self.range.as_mut() else {
                return Ok(None);
            };
            match range.next() {
                None => return Ok(None),
                Some(row) => {
                    let (k, v) = row.map_err(|e| self.reader.delta.err()(e.into()))?;
                    self.peeked = Some((k.value(), v));
                }
            }
        }
        Ok(self.peeked.as_ref().map(|(k, _)| *k))
    }
}

/// A snapshot of a delta's chunks (one read transaction).
pub(crate) struct DeltaReader<'d> {
    delta: &'d Delta,
    /// `None` when the table was never created (no chunk written yet).
    table: Option<redb::ReadOnlyTable<Key, &'static [u8]>>,
}

impl DeltaReader<'_> {
    /// Calls `f` for every chunk of `series` with `min_ts <= end`, in key order.
    pub(crate) fn scan_series(
        &self,
        series: SeriesId,
        end: Timestamp,
        f: impl FnMut(DeltaChunk<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        let range = table
            .range((series.0, Timestamp::MIN, 0)..=(series.0, end, u64::MAX))
            .map_err(|e| self.delta.err()(e.into()))?;
        self.each(range, f)
    }

    /// A cursor for reading many series in ascending id order.
    pub(crate) fn cursor(&self) -> DeltaCursor<'_> {
        DeltaCursor {
            reader: self,
            range: None,
            peeked: None,
            last: None,
        }
    }

    /// Calls `f` for every chunk, in key order.
    fn scan_all(&self, f: impl FnMut(DeltaChunk<'_>) -> Result<(), Error>) -> Result<(), Error> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        let range = table
            .range::<(u64, i64, u64)>(..)
            .map_err(|e| self.delta.err()(e.into()))?;
        self.each(range, f)
    }

    fn each(
        &self,
        range: redb::Range<'_, (u64, i64, u64), &'static [u8]>,
        mut f: impl FnMut(DeltaChunk<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let err = self.delta.err();
        for row in range {
            let (key, value) = row.map_err(|e| err(e.into()))?;
            let (series, min_ts, seq) = key.value();
            f(DeltaChunk {
                series: SeriesId(series),
                min_ts,
                seq,
                bytes: value.value(),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Seen = Vec<(u64, i64, u64, Vec<u8>)>;

    fn collect(read: impl FnOnce(&mut dyn FnMut(DeltaChunk<'_>) -> Result<(), Error>)) -> Seen {
        let mut seen = Vec::new();
        read(&mut |c: DeltaChunk<'_>| {
            seen.push((c.series.0, c.min_ts, c.seq, c.bytes.to_vec()));
            Ok(())
        });
        seen
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A cursor answers every series exactly as a seek per series
        /// does, whatever the order of the questions (ascending with gaps
        /// longer than the re-seek distance, repeats, going back).
        #[test]
        fn cursor_equals_a_seek_per_series(
            chunks in proptest::collection::vec((0u64..200, -5i64..5, 1usize..4), 0..300),
            asks in proptest::collection::vec((0u64..210, -6i64..6), 1..80),
            sort in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let delta = Delta::open(dir.path().join("d.redb")).unwrap();
            let rows: Vec<(SeriesId, Timestamp, Vec<u8>)> = chunks
                .iter()
                .map(|&(id, ts, n)| (SeriesId(id), ts, vec![id as u8; n]))
                .collect();
            if !rows.is_empty() {
                delta
                    .write(rows.iter().map(|(id, ts, b)| (*id, *ts, b.as_slice())), 1, false)
                    .unwrap();
            }
            let mut asks = asks;
            if sort {
                asks.sort_unstable();
            }
            let reader = delta.reader().unwrap();
            let mut cursor = reader.cursor();
            for (id, end) in asks {
                let want = collect(|f| reader.scan_series(SeriesId(id), end, f).unwrap());
                let got = collect(|f| cursor.series(SeriesId(id), end, f).unwrap());
                prop_assert_eq!(got, want, "series {} end {}", id, end);
            }
        }
    }
}
