//! [`ChunkError`]: everything that can be wrong with a sealed chunk's bytes.
//!
//! Invariant: decoding never panics; every malformed input maps to one of
//! these variants, which say what is wrong and, where it makes sense, at which
//! byte offset. Offsets in the header are from the start of the chunk;
//! offsets in the timestamp and value streams are from the start of the
//! (decompressed) body.

use std::fmt;

/// Which part of a chunk a decoding error was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Version, encoding bytes, count and time range.
    Header,
    /// The delta-of-delta timestamp stream.
    Timestamps,
    /// The value stream.
    Values,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Timestamps => "timestamp stream",
            Section::Values => "value stream",
        })
    }
}

/// A sealed chunk could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    #[error("chunk is {len} bytes, shorter than the {min}-byte minimum")]
    TooShort { len: usize, min: usize },
    #[error("bad checksum: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("unsupported chunk format version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown value encoding byte {0}")]
    UnknownValueEncoding(u8),
    #[error("unknown body compression byte {0}")]
    UnknownCompression(u8),
    #[error("{section} truncated at offset {offset}")]
    Truncated { section: Section, offset: usize },
    #[error("{section}: varint longer than 64 bits at offset {offset}")]
    VarintOverflow { section: Section, offset: usize },
    #[error("{section}: malformed data at offset {offset}")]
    Malformed { section: Section, offset: usize },
    #[error("{section}: {extra} unread bytes at offset {offset}")]
    TrailingBytes {
        section: Section,
        offset: usize,
        extra: usize,
    },
    #[error("chunk claims {count} samples, more than the limit of {max}")]
    TooManySamples { count: u64, max: u32 },
    #[error("timestamp {index} does not increase ({ts} after {prev})")]
    NotIncreasing { index: u32, prev: i64, ts: i64 },
    #[error("header says max_ts {header}, timestamps end at {actual}")]
    MaxTsMismatch { header: i64, actual: i64 },
    #[error("decimal exponent {0} is out of range")]
    BadDecimalExponent(u8),
    #[error("zero run of {run} overruns the {remaining} remaining samples in the {section}")]
    RunOverflow {
        section: Section,
        run: u64,
        remaining: u64,
    },
    #[error("compressed body claims {claimed} bytes, limit for this chunk is {max}")]
    BodyTooLarge { claimed: u64, max: u64 },
    #[error("compressed body decompressed to {actual} bytes, header says {expected}")]
    BodyLengthMismatch { expected: u64, actual: usize },
    #[error("zstd could not decompress the body")]
    Decompress(#[source] std::io::Error),
}
