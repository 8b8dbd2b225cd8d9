//! WAL errors and the corruption report that drives repair.
//!
//! Invariants:
//! - Damage found on disk is not an error: replay stops at the first bad
//!   byte and describes it as a [`Corruption`] in the `ReplayReport`. Only
//!   I/O failures, unknown format versions and misuse are [`WalError`]s.
//! - Every [`Corruption`] names the segment, the byte offset of the first
//!   bad record (0 for header damage and missing segments) and how many bytes
//!   repair drops, so an operator can tell what was lost.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A failed WAL operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    #[error("wal I/O on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A segment has an intact magic but a format version this build cannot
    /// read. It is left untouched: it may be newer data, not damage.
    #[error(
        "wal segment {} has format version {version}; this build reads version {supported}",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        version: u8,
        supported: u8,
    },
    #[error("wal record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { len: usize, max: u32 },
    /// An earlier write or fsync failed, so the on-disk tail is unknown and
    /// fsync cannot be retried safely. Reopening the WAL repairs the tail.
    #[error("wal in {} failed earlier and accepts no more writes; reopen it", dir.display())]
    Poisoned { dir: PathBuf },
}

impl WalError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> WalError {
        let path = path.into();
        move |source| WalError::Io { path, source }
    }
}

/// What kind of damage stopped replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The segment is shorter than its header (typically empty: a crash
    /// right after the file was created).
    TornHeader,
    /// The header's magic or reserved bytes are wrong.
    BadHeader,
    /// The file ends inside a record's frame header or payload.
    TornRecord,
    /// A length field larger than any record may be.
    BadLength { len: u32 },
    /// The frame's CRC does not match its length and payload.
    BadChecksum,
    /// Everything from the offset to the end of the file is zero bytes
    /// (preallocated or zero-filled blocks after a crash).
    ZeroedTail,
    /// A segment number is absent between two present segments.
    MissingSegment,
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TornHeader => f.write_str("torn segment header"),
            Self::BadHeader => f.write_str("bad segment header"),
            Self::TornRecord => f.write_str("torn record"),
            Self::BadLength { len } => write!(f, "bad length {len}"),
            Self::BadChecksum => f.write_str("bad checksum"),
            Self::ZeroedTail => f.write_str("zero-filled tail"),
            Self::MissingSegment => f.write_str("missing segment"),
        }
    }
}

/// The first damage replay found, and what repair drops because of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The damaged (or missing) segment.
    pub segment: u64,
    /// Byte offset in `segment` of the first bad byte; records before it
    /// were replayed.
    pub offset: u64,
    pub reason: CorruptionKind,
    /// Bytes dropped: the rest of `segment` from `offset` plus every later
    /// segment.
    pub dropped_bytes: u64,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wal segment {} offset {}: {}, dropped {} bytes",
            self.segment, self.offset, self.reason, self.dropped_bytes
        )
    }
}

/// What a replay read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Segments whose header was intact (including a truncated last one).
    pub segments: u32,
    /// Intact records passed to the callback.
    pub records: u64,
    /// Intact bytes read: segment headers plus record frames.
    pub bytes: u64,
    /// The first damage, if any; nothing after it was replayed.
    pub corruption: Option<Corruption>,
}
