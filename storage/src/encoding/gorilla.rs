//! Gorilla XOR value compression (Facebook's Gorilla paper, as in Prometheus's
//! `chunkenc/xor.go`): each value's bits are XORed with the previous value's
//! and only the meaningful (non-zero) window of the result is written.
//!
//! Per value after the first (the first is written as 64 raw bits):
//! - `0`: same bits as the previous value;
//! - `10` + bits: the XOR fits the previous window (same leading/trailing
//!   zero bounds or tighter), written in that window's width;
//! - `11` + 5 bits leading zeros (capped at 31) + 6 bits window width (64
//!   written as 0) + the window.
//!
//! Owns [`XorEncoder`]/[`XorDecoder`], used by the head chunk (interleaved
//! with timestamps in one bit stream) and by the sealed chunk's Gorilla value
//! encoding ([`encode`]/[`decode`]).
//!
//! Invariants: values round-trip bit-exactly (NaN payloads, -0.0,
//! subnormals); the decoder reports malformed windows instead of panicking.
//! An encoder's [`XorEncoder::snapshot`] (previous bits + [`XorWindow`]) is
//! the whole coder state: [`XorDecoder::resume`] from it decodes the values
//! written afterwards exactly as a decoder that read from the start.

use super::bits::{BitReader, BitWriter};
use super::decbuf::Decbuf;
use super::error::{ChunkError, Section};
use crate::types::Sample;

/// Leading-zero counts are stored in 5 bits.
const MAX_LEADING: u32 = 31;
/// Marks "no window yet" in `leading`.
const NO_WINDOW: u32 = u32::MAX;

/// The XOR window the next `10` value is written in: what, besides the
/// previous value's bits, a decoder needs to resume mid-stream. Two bytes,
/// so a snapshot packs next to other fields without padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct XorWindow {
    /// Leading zeros (0..=31), or `u8::MAX` before the first window.
    leading: u8,
    /// Trailing zeros (0..=63).
    trailing: u8,
}

impl XorWindow {
    fn pack(leading: u32, trailing: u32) -> Self {
        Self {
            leading: if leading == NO_WINDOW {
                u8::MAX
            } else {
                leading as u8
            },
            trailing: trailing as u8,
        }
    }

    fn leading(self) -> u32 {
        if self.leading == u8::MAX {
            NO_WINDOW
        } else {
            u32::from(self.leading)
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct XorEncoder {
    prev: u64,
    leading: u32,
    trailing: u32,
}

impl XorEncoder {
    /// Starts after a first value whose raw bits were already written.
    pub(crate) fn new(first: u64) -> Self {
        Self {
            prev: first,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// The state a decoder needs to read the values written after this
    /// point: the last value's bits and the current window. Hand both to
    /// [`XorDecoder::resume`].
    pub(crate) fn snapshot(&self) -> (u64, XorWindow) {
        (self.prev, XorWindow::pack(self.leading, self.trailing))
    }

    #[inline]
    pub(crate) fn write(&mut self, w: &mut BitWriter, bits: u64) {
        let xor = bits ^ self.prev;
        self.prev = bits;
        if xor == 0 {
            w.write_bit(false);
            return;
        }
        let leading = xor.leading_zeros().min(MAX_LEADING);
        let trailing = xor.trailing_zeros();
        if self.leading != NO_WINDOW && leading >= self.leading && trailing >= self.trailing {
            // '10': reuse the window.
            w.write_bits(0b10, 2);
            w.write_bits(xor >> self.trailing, 64 - self.leading - self.trailing);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            let sig = 64 - leading - trailing;
            w.write_bits(0b11, 2);
            w.write_bits(u64::from(leading), 5);
            // A 64-bit window is written as 0 (6 bits hold 0..=63).
            w.write_bits(u64::from(sig & 63), 6);
            w.write_bits(xor >> trailing, sig);
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct XorDecoder {
    prev: u64,
    leading: u32,
    trailing: u32,
}

/// Why [`XorDecoder::read`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XorError {
    Truncated,
    Malformed,
}

impl XorDecoder {
    pub(crate) fn new(first: u64) -> Self {
        Self {
            prev: first,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// A decoder in the state an [`XorEncoder::snapshot`] captured: it reads
    /// the values the encoder wrote after the snapshot.
    pub(crate) fn resume(prev: u64, window: XorWindow) -> Self {
        Self {
            prev,
            leading: window.leading(),
            trailing: u32::from(window.trailing),
        }
    }

    #[inline]
    pub(crate) fn read(&mut self, r: &mut BitReader<'_>) -> Result<u64, XorError> {
        use XorError::{Malformed, Truncated};
        if !r.read_bit().ok_or(Truncated)? {
            return Ok(self.prev);
        }
        if r.read_bit().ok_or(Truncated)? {
            let leading = r.read_bits(5).ok_or(Truncated)? as u32;
            let mut sig = r.read_bits(6).ok_or(Truncated)? as u32;
            if sig == 0 {
                sig = 64;
            }
            if leading + sig > 64 {
                return Err(Malformed);
            }
            self.leading = leading;
            self.trailing = 64 - leading - sig;
        } else if self.leading == NO_WINDOW {
            return Err(Malformed);
        }
        let width = 64 - self.leading - self.trailing;
        let xor = r.read_bits(width).ok_or(Truncated)? << self.trailing;
        self.prev ^= xor;
        Ok(self.prev)
    }
}

/// Appends the Gorilla value stream for `samples` (byte-padded).
pub(crate) fn encode(samples: &[Sample], out: &mut Vec<u8>) {
    let Some((first, rest)) = samples.split_first() else {
        return;
    };
    let mut w = BitWriter::from_vec(std::mem::take(out));
    let first = first.value.to_bits();
    w.write_bits(first, 64);
    let mut enc = XorEncoder::new(first);
    for s in rest {
        enc.write(&mut w, s.value.to_bits());
    }
    *out = w.into_vec();
}

/// Decodes one value per element of `out` from the rest of `d`.
pub(crate) fn decode(d: &mut Decbuf<'_>, out: &mut [Sample]) {
    if out.is_empty() || d.failed() {
        return;
    }
    let base = d.offset();
    let bytes = d.rest();
    let mut r = BitReader::new(bytes);
    let fail = |r: &BitReader<'_>, e: XorError| match e {
        XorError::Truncated => ChunkError::Truncated {
            section: Section::Values,
            offset: base + bytes.len(),
        },
        XorError::Malformed => ChunkError::Malformed {
            section: Section::Values,
            offset: base + r.bytes_consumed(),
        },
    };
    let Some(first) = r.read_bits(64) else {
        d.fail(fail(&r, XorError::Truncated));
        return;
    };
    let mut dec = XorDecoder::new(first);
    let mut samples = out.iter_mut();
    if let Some(s) = samples.next() {
        s.value = f64::from_bits(first);
    }
    for s in samples {
        match dec.read(&mut r) {
            Ok(bits) => s.value = f64::from_bits(bits),
            Err(e) => {
                d.fail(fail(&r, e));
                return;
            }
        }
    }
    // Only the padding of the last byte may remain.
    let used = r.bytes_consumed();
    if used < bytes.len() {
        d.fail(ChunkError::TrailingBytes {
            section: Section::Values,
            offset: base + used,
            extra: bytes.len() - used,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::testutil::interesting_f64;
    use proptest::prelude::*;

    fn roundtrip(values: &[f64]) -> usize {
        let samples: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample::new(i as i64, v))
            .collect();
        let mut out = vec![0xEE];
        encode(&samples, &mut out);
        let mut d = Decbuf::new(&out, 0, Section::Values);
        assert_eq!(d.u8(), 0xEE);
        let mut got: Vec<_> = samples.iter().map(|s| Sample::new(s.ts, 0.0)).collect();
        decode(&mut d, &mut got);
        d.expect_end();
        d.finish().unwrap();
        for (a, b) in samples.iter().zip(&got) {
            assert!(a.bit_eq(b), "{a:?} != {b:?}");
        }
        out.len() - 1
    }

    #[test]
    fn constant_values_cost_one_bit() {
        assert_eq!(roundtrip(&[1.5; 801]), 8 + 100);
    }

    #[test]
    fn window_of_64_bits() {
        // XOR of these has no leading or trailing zeros.
        roundtrip(&[
            f64::from_bits(0),
            f64::from_bits(u64::MAX),
            f64::from_bits(1),
        ]);
    }

    #[test]
    fn reuse_without_window_is_malformed() {
        // 64 raw bits then '10'.
        let bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0b1000_0000];
        let mut d = Decbuf::new(&bytes, 0, Section::Values);
        let mut got = [Sample::new(0, 0.0), Sample::new(1, 0.0)];
        decode(&mut d, &mut got);
        assert!(matches!(d.finish(), Err(ChunkError::Malformed { .. })));
    }

    proptest! {
        /// Snapshot the encoder before every value; a decoder resumed from
        /// each snapshot reads the rest of the stream like a full decode.
        #[test]
        fn resume_from_any_snapshot(values in proptest::collection::vec(interesting_f64(), 1..120)) {
            let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
            let mut w = BitWriter::new();
            w.write_bits(bits[0], 64);
            let mut enc = XorEncoder::new(bits[0]);
            let mut snaps = Vec::new();
            for &b in &bits[1..] {
                snaps.push((w.bit_len(), enc.snapshot()));
                enc.write(&mut w, b);
            }
            for (i, &(pos, (prev, window))) in snaps.iter().enumerate() {
                let mut r = BitReader::at(w.bytes(), pos);
                let mut dec = XorDecoder::resume(prev, window);
                for &want in &bits[i + 1..] {
                    prop_assert_eq!(dec.read(&mut r), Ok(want));
                }
            }
        }

        #[test]
        fn gorilla_roundtrip(values in proptest::collection::vec(interesting_f64(), 0..300)) {
            roundtrip(&values);
        }
    }
}
