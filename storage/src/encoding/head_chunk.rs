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
//! Invariants:
//! - Timestamps strictly increase: [`HeadChunk::append`] refuses anything
//!   else, so the stream never needs to represent a non-positive delta.
//! - Appending allocates only when the byte buffer grows (amortised `Vec`
//!   growth); iterating never allocates.
//! - This format is in-memory only and may change freely; the on-disk format
//!   is the sealed chunk ([`super::chunk`]).

use super::bits::{BitReader, BitWriter};
use super::gorilla::{XorDecoder, XorEncoder};
use crate::types::Sample;

/// (prefix, prefix width, payload width) of the dod buckets, smallest first.
/// The widths are Prometheus's: 14 bits hold ±8 s of jitter in ms.
const DOD_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

/// Streaming in-memory chunk for the head: delta-of-delta timestamps +
/// Gorilla XOR values, appended one sample at a time.
#[derive(Clone, Debug)]
pub struct HeadChunk {
    bits: BitWriter,
    count: u32,
    first_ts: i64,
    last_ts: i64,
    last_delta: i64,
    xor: XorEncoder,
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
            let delta = ts.wrapping_sub(self.last_ts);
            write_dod(&mut self.bits, delta.wrapping_sub(self.last_delta));
            self.last_delta = delta;
            self.xor.write(&mut self.bits, bits);
        }
        self.last_ts = ts;
        self.count += 1;
        true
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

    /// Heap bytes held (the bit stream's capacity), for memory accounting.
    pub fn bytes_used(&self) -> usize {
        self.bits.capacity()
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
        }
    }

    /// Removes every sample and keeps the allocation.
    pub fn clear(&mut self) {
        self.bits.clear();
        self.count = 0;
        self.first_ts = 0;
        self.last_ts = 0;
        self.last_delta = 0;
        self.xor = XorEncoder::new(0);
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

/// Iterator over a [`HeadChunk`]'s samples.
#[derive(Clone, Debug)]
pub struct HeadChunkIter<'a> {
    r: BitReader<'a>,
    remaining: u32,
    started: bool,
    ts: i64,
    delta: i64,
    xor: XorDecoder,
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
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let s = self.read_next();
        // The stream was written by `append`, so it cannot be short.
        debug_assert!(s.is_some(), "head chunk stream ended early");
        if s.is_none() {
            self.remaining = 0;
        }
        s
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::testutil::{interesting_f64, strictly_increasing_ts};
    use crate::types::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn check(samples: &[Sample]) -> HeadChunk {
        let mut c = HeadChunk::new();
        for s in samples {
            assert!(c.append(s.ts, s.value));
        }
        assert_eq!(c.len(), samples.len());
        assert_eq!(c.first_ts(), samples.first().map(|s| s.ts));
        assert_eq!(c.last_ts(), samples.last().map(|s| s.ts));
        let got: Vec<Sample> = c.iter().collect();
        assert_eq!(got.len(), samples.len());
        for (a, b) in samples.iter().zip(&got) {
            assert!(a.bit_eq(b), "{a:?} != {b:?}");
        }
        c
    }

    #[test]
    fn rejects_non_increasing() {
        let mut c = HeadChunk::new();
        assert!(c.append(10, 1.0));
        assert!(!c.append(10, 2.0));
        assert!(!c.append(9, 2.0));
        assert!(c.append(11, f64::from_bits(STALE_NAN_BITS)));
        assert_eq!(c.len(), 2);
        let got: Vec<_> = c.iter().collect();
        assert_eq!(got[1].value.to_bits(), STALE_NAN_BITS);
    }

    #[test]
    fn dod_bucket_edges() {
        let mut ts = vec![0i64];
        let mut delta = 0i64;
        for dod in [
            1_000_000,
            1,
            -1,
            8191,
            -8192,
            8192,
            -8193,
            65535,
            -65536,
            65536,
            524287,
            -524288,
            524288,
            1 << 40,
            -(1 << 39),
        ] {
            delta += dod;
            let last = *ts.last().unwrap();
            ts.push(last + delta);
        }
        let samples: Vec<_> = ts.iter().map(|&t| Sample::new(t, 0.5)).collect();
        check(&samples);
    }

    #[test]
    fn extreme_timestamps_and_clear_keeps_capacity() {
        let mut c = check(&[
            Sample::new(i64::MIN, -0.0),
            Sample::new(-1, f64::NEG_INFINITY),
            Sample::new(i64::MAX - 1, f64::MIN_POSITIVE / 4.0),
            Sample::new(i64::MAX, f64::INFINITY),
        ]);
        let cap = c.bytes_used();
        assert!(cap > 0);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.iter().count(), 0);
        assert_eq!(c.first_ts(), None);
        assert_eq!(c.bytes_used(), cap);
        assert!(c.append(i64::MIN, 1.0));
        assert_eq!(c.iter().next().map(|s| s.ts), Some(i64::MIN));
    }

    #[test]
    fn regular_series_is_compact() {
        let samples: Vec<_> = (0..4320)
            .map(|i| Sample::new(1_700_000_000_000 + i * 10_000, 1.0))
            .collect();
        let c = check(&samples);
        // 2 bits per sample (dod 0, same value) plus the first sample.
        assert!(c.bits.bytes().len() <= 16 + 4320 * 2 / 8 + 4);
    }

    proptest! {
        #[test]
        fn head_chunk_roundtrip(
            ts in strictly_increasing_ts(0..300),
            values in proptest::collection::vec(interesting_f64(), 300),
        ) {
            let samples: Vec<_> = ts.iter().zip(&values).map(|(&t, &v)| Sample::new(t, v)).collect();
            check(&samples);
        }
    }
}
