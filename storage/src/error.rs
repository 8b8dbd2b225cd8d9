//! Error types of the engine's public operations.
//!
//! [`Error`] is the shared storage failure (I/O, redb, WAL, corrupt bytes);
//! operation-specific enums such as [`AppendError`] wrap it and add the
//! outcomes a caller is expected to handle (backpressure, shutdown).

use std::path::PathBuf;
use std::time::Duration;

/// A failure of the storage layer itself. Carries the file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Redb {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
    #[error("{}: corrupt index entry for series {id}", path.display())]
    CorruptIndex { path: PathBuf, id: u64 },
    #[error("{}: corrupt file: {reason}", path.display())]
    CorruptFile { path: PathBuf, reason: String },
    #[error("the database is closed")]
    Closed,
    #[error("a writer thread stopped: {0}")]
    WriterFailed(String),
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn redb(path: impl Into<PathBuf>, source: impl Into<redb::Error>) -> Self {
        Error::Redb {
            path: path.into(),
            source: Box::new(source.into()),
        }
    }
}

/// Why [`crate::Db::submit`] or [`crate::Db::append`] did not take a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The shard queues stayed full for the whole wait: retry later.
    /// Nothing of the batch was written.
    #[error("ingest queues full for {waited:?}; nothing was written, retry later")]
    Overloaded { waited: Duration },
    /// The database is shutting down or closed. Nothing was written.
    #[error("the database is closed")]
    Closed,
    /// Writing failed (disk error). Samples of the batch may be partly
    /// written; none were acknowledged.
    #[error(transparent)]
    Storage(#[from] Error),
}
