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
        mut f: impl FnMut(DeltaChunk<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let err = self.err();
        let tx = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = match tx.open_table(CHUNKS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(err(e.into())),
        };
        let range = match series {
            Some(id) => table.range((id.0, Timestamp::MIN, 0)..=(id.0, end, u64::MAX)),
            None => table.range::<(u64, i64, u64)>(..),
        }
        .map_err(|e| err(e.into()))?;
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
