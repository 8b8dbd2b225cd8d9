//! Write-ahead log: an ordered log of opaque record payloads in numbered
//! segment files, one directory per ingest shard (`<data>/wal/<shard>/`).
//!
//! Like Prometheus's `tsdb/wlog`, the log does not know what its records
//! contain; the payload types the engine writes live in [`record`].
//!
//! Code map: `segment` (file naming, header, framing, scanning one segment),
//! `replay` (reading a directory, planning and applying repair), `writer`
//! ([`Wal`]: append, flush, sync, rotate, remove), `record` (payloads),
//! `cursor` (bounds-checked decoding, varints), `error`.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! <dir>/00000000, 00000001, ...   one file per segment, numbered in order
//!
//! segment:
//! ┌──────────────┬───────────┬──────────────┬─────────┬─────┬─────────┐
//! │ magic "TMWL" │ version 1 │ reserved 0×3 │ frame 0 │ ... │ frame n │
//! │   4 bytes    │  1 byte   │   3 bytes    │         │     │         │
//! └──────────────┴───────────┴──────────────┴─────────┴─────┴─────────┘
//!
//! frame:
//! ┌───────────────┬────────────────────────────┬──────────────────────┐
//! │ len: u32 LE   │ crc: u32 LE                │ payload: len bytes   │
//! │ (≤ 256 MiB)   │ CRC-32 IEEE of len ‖ payload│                      │
//! └───────────────┴────────────────────────────┴──────────────────────┘
//! ```
//!
//! # Invariants
//!
//! - **Records never span segments.** A record that would take a segment
//!   past `segment_size` starts the next one; a single record larger than
//!   `segment_size` gets a segment to itself.
//! - **A segment is append-only.** Bytes once written are never rewritten;
//!   the only changes are truncation by repair and deletion of whole
//!   segments (`remove_before`, repair).
//! - **Corruption truncates at the first bad record.** Replay stops at the
//!   first frame whose length, bounds or CRC is wrong (or at a damaged
//!   header); repair truncates that segment there (deleting it if the header
//!   is bad).
//! - **Later segments after a corrupt one are dropped, and reported.** A
//!   record after a hole would resurrect history out of order, so every
//!   segment after the damage, or after a missing segment number, is
//!   deleted. `Corruption` names the segment, offset and dropped bytes, and
//!   repair logs one `warn!`.
//! - **Numbering is contiguous and increasing.** Opening starts a new
//!   segment after the last surviving one; a segment deleted by repair gives
//!   its number to the next new segment.
//! - A known magic with an unknown version is an error, never repaired.
//! - A missing *first* segment cannot be detected: it looks the same as
//!   segments removed by `remove_before` after a head flush.
//!
//! # Replay
//!
//! [`Wal::open_with_replay`] replays, repairs and opens in one pass (what
//! the shard writer uses); [`Wal::open`] is the same with the records
//! discarded. The free function [`replay`] only reads: it delivers the
//! intact prefix and reports damage without modifying anything.
//!
//! # Version history
//!
//! - 1: initial format.

mod cursor;
mod error;
pub mod record;
mod replay;
mod segment;
mod writer;

pub use error::{Corruption, CorruptionKind, ReplayReport, WalError};
pub use record::{
    Record, RecordError, RecordKind, SamplesRef, SeriesDefsRef, decode_record, encode_samples,
    encode_series, fuzz_check_record_decode,
};
pub use replay::replay;
pub use segment::MAX_RECORD_LEN;
pub use writer::{FsyncMode, Wal, WalOptions};
