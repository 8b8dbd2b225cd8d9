//! Tidemark's storage engine: everything that touches disk.
//!
//! Open a [`Db`] on a directory, resolve label sets to [`SeriesId`]s, push
//! [`WriteBatch`]es from any number of threads, and read samples back by
//! label matchers and time range. `storage` knows nothing of HTTP, PromQL or
//! alerts; `src/` joins it to the query layer. ARCHITECTURE.md has the
//! codemap, `storage/docs/format.md` the byte layouts.

mod db;
pub mod encoding;
mod error;
pub mod events;
mod head;
mod index;
mod partition;
mod redb_file;
mod retention;
pub mod rollup;
mod selfstats;
mod shard;
mod ticket;
pub mod types;
pub mod wal;

pub use db::{Db, DbStats, Options, WriteBatch};
pub use error::{AppendError, Error};
pub use events::{
    Cursor, Event, EventError, EventLog, EventLogOptions, EventPage, EventQuery, EventStats,
};
pub use index::MetricMetadata;
pub use partition::PartitionInfo;
pub use retention::{RetentionOverride, RetentionReport};
pub use rollup::{RollupPoint, RollupReport, TierInfo, TierInspect, TierSpec};
pub use selfstats::{
    Buckets, DurationHistogram, FSYNC_BUCKETS, FsyncBuckets, FsyncHistogram, MAX_SLOTS, TierSize,
};
pub use ticket::{AppendOutcome, Ticket};
pub use types::{Label, Labels, MatchOp, Matcher, MatcherError, Sample, SeriesId, Timestamp};
pub use wal::{FsyncMode, WalOptions};
