//! [`HeadChunk`]: the head's streaming, in-memory chunk. One bit stream
//! interleaves, per sample, a delta-of-delta timestamp and a Gorilla XOR
//! value (Prometheus's XOR chunk layout):
//!
//! - sample 0: timestamp as 64 raw bits, value as 64 raw bits;
//! - sample i > 0: the delta-of-delta `dod` (previous delta 0 for sample 1)
//!   in the first bucket that holds it — `0` for 0, `10` + 14 bits,
//!   `110` + 17 bits, `1110` + 20 bits (two's complement), else `1111` +
//!   64 bits — then the value as in [`super::gorilla`].
//!
//! Seek checkpoints: decoding is sequential, so reading a recent window of
//! a long chunk would decode every sample before it. Every
//! [`CHECKPOINT_INTERVAL`] (K = 32) samples, `append` records beside the
//! stream what a reader needs to start at sample `n·K`: the bit position
//! where that sample starts, the previous sample's timestamp and delta, and
//! the XOR coder's state (previous value bits, window). [`HeadChunk::range`]
//! binary-searches them and decodes from the last checkpoint before `start`,
//! stopping at the first sample after `end`: at most K − 1 samples before
//! `start` are decoded instead of all of them.
//!
//! Memory: a checkpoint is 32 bytes (three 8-byte words, a 4-byte bit
//! position, a 2-byte window), so K = 32 adds 1 byte per sample, plus `Vec`
//! slack: measured on 10 s series (`testutil::realistic`, stream length /
//! checkpoint capacity), +0.53 B/sample at 60 samples (one checkpoint) and
//! +1.07 B/sample at 480 (14 used of 16). Against the stream's own cost
//! (60 / 480 samples) that is +7 / +15 % for 2-decimal gauges and 4-decimal
//! latencies (~7.3 B/sample: XOR of short decimals is poor), +18 / +40 % for
//! integer counters (~2.8), and +70 / +370 % for constant or slowly changing
//! series (0.3–0.8), where the absolute cost is the same ~1 B/sample (512 B
//! for an 80-minute head). K =
//! 16 would double that to save ~16 decoded samples per read; K = 64 halves
//! it, but a 5-minute read at 10 s (30 samples) could decode up to 63 extra
//! samples, twice its own length.
//!
//! Invariants:
//! - Timestamps strictly increase: [`HeadChunk::append`] refuses anything
//!   else, so the stream never needs to represent a non-positive delta.
//! - `checkpoints[j]` describes sample `(j + 1)·K`, recorded when that
//!   sample is appended (never for a sample not yet written); checkpoints
//!   are a prefix of those samples (recording stops only if the bit position
//!   no longer fits in `u32`, a 512 MiB stream), so their `prev_ts` strictly
//!   increase. [`HeadChunk::clear`] empties them with the stream.
//! - A reader started at a checkpoint decodes the same samples, bit for bit,
//!   as one that started at sample 0.
//! - Appending allocates only when the byte buffer or the checkpoint list
//!   grows (amortised `Vec` growth); iterating, ranged or not, never
//!   allocates.
//! - This format is in-memory only and may change freely; the on-disk format
//!   is the sealed chunk ([`super::chunk`]).

use super::bits::{BitReader, BitWriter};
use super::gorilla::{XorDecoder, XorEncoder, XorWindow};
use crate::types::Sample;

/// (prefix, prefix width, payload width) of the dod buckets, smallest first.
/// The widths are Prometheus's: 14 bits hold ±8 s of jitter in ms.
const DOD_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

/// Samples between two seek checkpoints (K in the module doc).
pub(crate) const CHECKPOINT_INTERVAL: usize = 32;
const K: u32 = CHECKPOINT_INTERVAL as u32;

/// Decoder state just before sample `(j + 1)·K` (see the module doc).
#[derive(Clone, Copy, Debug)]
struct Checkpoint {
    /// Timestamp of the sample before the checkpoint sample.
    prev_ts: i64,
    /// Delta between that sample and the one before it.
    delta: i64,
    /// Bits of that sample's value.
    prev_bits: u64,
    /// Bit position where the checkpoint sample starts.
    pos: u32,
    window: XorWindow,
}

/// The memory figure in the module doc.
const _: () = assert!(std::mem::size_of::<Checkpoint>() == 32);

/// Streaming in-memory chunk for the head: delta-of-delta timestamps +
/// Gorilla XOR values, appended one sample at a time, with a seek checkpoint
/// every 32 samples for [`HeadChunk::range`].
#[derive(Clone, Debug)]
pub struct HeadChunk {
    bits: BitWriter,
    count: u32,
    first_ts: i64,
    last_ts: i64,
    last_delta: i64,
    xor: XorEncoder,
    checkpoints: Vec<Checkpoint>,
}

impl Default for HeadChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadChunk {
    pub fn new() -> Self {
        Self {
            bits: BitWriter::new(),
            count: 0,
            first_ts: 0,
            last_ts: 0,
            last_delta: 0,
            xor: XorEncoder::new(0),
            checkpoints: Vec::new(),
        }
    }

    /// Appends a sample. Precondition: `ts > last_ts()` (strictly
    /// increasing); returns false and changes nothing otherwise (also when the
    /// chunk already holds `u32::MAX` samples).
    pub fn append(&mut self, ts: i64, value: f64) -> bool {
        let bits = value.to_bits();
        if self.count == 0 {
            self.bits.write_bits(ts as u64, 64);
            self.bits.write_bits(bits, 64);
            self.first_ts = ts;
            self.xor = XorEncoder::new(bits);
        } else {
            if ts <= self.last_ts || self.count == u32::MAX {
                return false;
            }
            if self.count.is_multiple_of(K) {
                self.checkpoint();
            }
            let delta = ts.wrapping_sub(self.last_ts);
            write_dod(&mut self.bits, delta.wrapping_sub(self.last_delta));
            self.last_delta = delta;
            self.xor.write(&mut self.bits, bits);
        }
        self.last_ts = ts;
        self.count += 1;
        true
    }

    /// Records the state before sample `count` (a multiple of K) is written.
    #[cold]
    fn checkpoint(&mut self) {
        let Ok(pos) = u32::try_from(self.bits.bit_len()) else {
            return;
        };
        if self.checkpoints.capacity() == 0 {
            // One checkpoint, not `Vec`'s minimum of four, for short heads.
            self.checkpoints.reserve_exact(1);
        }
        let (prev_bits, window) = self.xor.snapshot();
        self.checkpoints.push(Checkpoint {
            prev_ts: self.last_ts,
            delta: self.last_delta,
            prev_bits,
            pos,
            window,
        });
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn first_ts(&self) -> Option<i64> {
        (self.count > 0).then_some(self.first_ts)
    }

    pub fn last_ts(&self) -> Option<i64> {
        (self.count > 0).then_some(self.last_ts)
    }

    /// Heap bytes held (the bit stream's and the checkpoints' capacity), for
    /// memory accounting: [`Self::stream_bytes`] + [`Self::checkpoint_bytes`].
    pub fn bytes_used(&self) -> usize {
        self.stream_bytes() + self.checkpoint_bytes()
    }

    /// Heap bytes held by the bit stream (its capacity).
    pub fn stream_bytes(&self) -> usize {
        self.bits.capacity()
    }

    /// Heap bytes held by the seek checkpoints (their capacity).
    pub fn checkpoint_bytes(&self) -> usize {
        self.checkpoints.capacity() * std::mem::size_of::<Checkpoint>()
    }

    /// Samples in append order.
    pub fn iter(&self) -> HeadChunkIter<'_> {
        HeadChunkIter {
            r: BitReader::new(self.bits.bytes()),
            remaining: self.count,
            started: false,
            ts: 0,
            delta: 0,
            xor: XorDecoder::new(0),
            start: i64::MIN,
            end: i64::MAX,
        }
    }

    /// The samples with `start <= ts <= end`, in order: decoding starts at
    /// the last checkpoint before `start` and stops at the first sample after
    /// `end`. Yields exactly what `iter()` filtered to `[start, end]` yields.
    pub fn range(&self, start: i64, end: i64) -> HeadChunkIter<'_> {
        let mut it = self.iter();
        it.start = start;
        it.end = end;
        if self.count == 0 || start > end || start > self.last_ts || end < self.first_ts {
            it.remaining = 0;
            return it;
        }
        // Checkpoint j skips samples up to `prev_ts`, all before `start`.
        let j = self.checkpoints.partition_point(|c| c.prev_ts < start);
        if let Some(c) = j.checked_sub(1).and_then(|i| self.checkpoints.get(i)) {
            // `checkpoints[j - 1]` is sample j·K, and j·K < count.
            it.r = BitReader::at(self.bits.bytes(), c.pos as usize);
            it.remaining = self.count - j as u32 * K;
            it.started = true;
            it.ts = c.prev_ts;
            it.delta = c.delta;
            it.xor = XorDecoder::resume(c.prev_bits, c.window);
        }
        it
    }

    /// Removes every sample and checkpoint and keeps the allocations.
    pub fn clear(&mut self) {
        self.bits.clear();
        self.count = 0;
        self.first_ts = 0;
        self.last_ts = 0;
        self.last_delta = 0;
        self.xor = XorEncoder::new(0);
        self.checkpoints.clear();
    }
}

#[inline]
fn fits(v: i64, width: u32) -> bool {
    let half = 1i64 << (width - 1);
    (-half..half).contains(&v)
}

#[inline]
fn write_dod(w: &mut BitWriter, dod: i64) {
    if dod == 0 {
        w.write_bit(false);
        return;
    }
    for (prefix, plen, width) in DOD_BUCKETS {
        if fits(dod, width) {
            w.write_bits(prefix, plen);
            w.write_bits(dod as u64, width);
            return;
        }
    }
    w.write_bits(0b1111, 4);
    w.write_bits(dod as u64, 64);
}

#[inline]
fn read_dod(r: &mut BitReader<'_>) -> Option<i64> {
    let mut ones = 0;
    while ones < 4 && r.read_bit()? {
        ones += 1;
    }
    let width = match ones {
        0 => return Some(0),
        1..=3 => DOD_BUCKETS.get(ones - 1)?.2,
        _ => 64,
    };
    let raw = r.read_bits(width)?;
    // Sign-extend the `width`-bit two's complement payload.
    let shift = 64 - width;
    Some(((raw << shift) as i64) >> shift)
}

/// Iterator over a [`HeadChunk`]'s samples ([`HeadChunk::iter`], or those in
/// a time range: [`HeadChunk::range`]).
#[derive(Clone, Debug)]
pub struct HeadChunkIter<'a> {
    r: BitReader<'a>,
    /// Samples left in the stream from the reader's position.
    remaining: u32,
    started: bool,
    ts: i64,
    delta: i64,
    xor: XorDecoder,
    /// Samples before `start` are decoded but not yielded.
    start: i64,
    /// The first sample after `end` ends the iteration.
    end: i64,
}

impl HeadChunkIter<'_> {
    fn read_next(&mut self) -> Option<Sample> {
        if !self.started {
            self.started = true;
            self.ts = self.r.read_bits(64)? as i64;
            let bits = self.r.read_bits(64)?;
            self.xor = XorDecoder::new(bits);
            return Some(Sample::new(self.ts, f64::from_bits(bits)));
        }
        self.delta = self.delta.wrapping_add(read_dod(&mut self.r)?);
        self.ts = self.ts.wrapping_add(self.delta);
        let bits = self.xor.read(&mut self.r).ok()?;
        Some(Sample::new(self.ts, f64::from_bits(bits)))
    }
}

impl Iterator for HeadChunkIter<'_> {
    type Item = Sample;

    #[inline]
    fn next(&mut self) -> Option<Sample> {
        while self.remaining > 0 {
            self.remaining -= 1;
            let s = self.read_next();
            // The stream was written by `append`, so it cannot be short.
            debug_assert!(s.is_some(), "head chunk stream ended early");
            let Some(s) = s else {
                self.remaining = 0;
                return None;
            };
            if s.ts < self.start {
                continue;
            }
            if s.ts > self.end {
                self.remaining = 0;
                return None;
            }
            return Some(s);
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

#[cfg(test)]
#[path = "head_chunk_tests.rs"]
mod tests;
