//! Bit-granular stream writer and reader, most-significant bit first (like
//! Prometheus's `bstream`). Used by the Gorilla value stream and the head
//! chunk.
//!
//! Invariants:
//! - [`BitWriter`] only ever appends; the bits of the last byte that were not
//!   written yet are zero. Bytes already written never change except for
//!   filling those trailing zero bits.
//! - [`BitReader`] never reads past its slice: a read that would returns
//!   `None` and leaves the position unspecified (callers stop at the first
//!   `None`).

/// Appends bits to an owned byte buffer.
#[derive(Clone, Debug, Default)]
pub(crate) struct BitWriter {
    buf: Vec<u8>,
    /// Unwritten low bits in the last byte of `buf` (0 when `buf` is empty or
    /// its last byte is full).
    free: u32,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Continues after the existing bytes of `buf` (starting on a fresh byte).
    pub(crate) fn from_vec(buf: Vec<u8>) -> Self {
        Self { buf, free: 0 }
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bits written so far: the position the next bit will be written at.
    pub(crate) fn bit_len(&self) -> usize {
        self.buf.len() * 8 - self.free as usize
    }

    /// Empties the stream and keeps the allocation.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.free = 0;
    }

    #[inline]
    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.write_bits(bit as u64, 1);
    }

    /// Appends the low `n` bits of `value`, high bit first. `n <= 64`.
    #[inline]
    pub(crate) fn write_bits(&mut self, value: u64, mut n: u32) {
        debug_assert!(n <= 64);
        while n > 0 {
            if self.free == 0 {
                self.buf.push(0);
                self.free = 8;
            }
            let k = n.min(self.free);
            // k <= 8 and n - k <= 63, so neither shift overflows.
            let chunk = ((value >> (n - k)) & ((1u64 << k) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= chunk << (self.free - k);
            }
            self.free -= k;
            n -= k;
        }
    }
}

/// Reads bits from a byte slice, high bit first.
#[derive(Clone, Debug)]
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    /// Position in bits from the start of `buf`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Starts reading at bit `pos` (a position a [`BitWriter::bit_len`]
    /// reported for the same stream). A position past the end is not an
    /// error here: the first read returns `None`.
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    /// Bytes touched so far, counting a partly read byte as whole.
    pub(crate) fn bytes_consumed(&self) -> usize {
        self.pos.div_ceil(8)
    }

    #[inline]
    pub(crate) fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.buf.get(self.pos >> 3)?;
        let bit = (byte >> (7 - (self.pos & 7))) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    /// Reads `n <= 64` bits as the low bits of the result.
    #[inline]
    pub(crate) fn read_bits(&mut self, n: u32) -> Option<u64> {
        debug_assert!(n <= 64);
        let byte_idx = self.pos >> 3;
        let used = (self.pos & 7) as u32;
        // Fast path: one 8-byte window holds all requested bits.
        if n + used <= 64
            && let Some(win) = self.buf.get(byte_idx..byte_idx + 8)
        {
            let mut w = [0u8; 8];
            w.copy_from_slice(win);
            let word = u64::from_be_bytes(w) << used;
            self.pos += n as usize;
            return Some(if n == 0 { 0 } else { word >> (64 - n) });
        }
        let mut out = 0u64;
        let mut n = n;
        while n > 0 {
            let byte = *self.buf.get(self.pos >> 3)? as u64;
            let used = (self.pos & 7) as u32;
            let avail = 8 - used;
            let k = avail.min(n);
            let bits = (byte >> (avail - k)) & ((1u64 << k) - 1);
            out = (out << k) | bits;
            self.pos += k as usize;
            n -= k;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_roundtrip(fields in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..200)) {
            let mut w = BitWriter::new();
            let mut total = 0usize;
            for &(v, n) in &fields {
                w.write_bits(v, n);
                total += n as usize;
            }
            prop_assert_eq!(w.bytes().len(), total.div_ceil(8));
            let mut r = BitReader::new(w.bytes());
            for &(v, n) in &fields {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read_bits(n), Some(v & mask));
            }
            prop_assert_eq!(r.bytes_consumed(), total.div_ceil(8));
        }
    }

    #[test]
    fn reader_stops_at_end() {
        let mut r = BitReader::new(&[0b1010_0000]);
        assert_eq!(r.read_bit(), Some(true));
        assert_eq!(r.read_bits(3), Some(0b010));
        assert_eq!(r.read_bits(5), None);
        let mut r = BitReader::new(&[]);
        assert_eq!(r.read_bit(), None);
        assert_eq!(r.read_bits(0), Some(0));
    }

    #[test]
    fn reader_resumes_at_writer_bit_len() {
        let mut w = BitWriter::new();
        let mut marks = Vec::new();
        for (v, n) in [
            (0b101u64, 3u32),
            (0xdead_beef, 32),
            (1, 1),
            (u64::MAX, 64),
            (0, 7),
        ] {
            marks.push((w.bit_len(), v, n));
            w.write_bits(v, n);
        }
        assert_eq!(w.bit_len(), 3 + 32 + 1 + 64 + 7);
        for (pos, v, n) in marks {
            let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            assert_eq!(BitReader::at(w.bytes(), pos).read_bits(n), Some(v & mask));
        }
        assert_eq!(
            BitReader::at(w.bytes(), w.bytes().len() * 8).read_bit(),
            None
        );
        assert_eq!(BitReader::at(w.bytes(), usize::MAX / 2).read_bits(3), None);
    }

    #[test]
    fn writer_continues_after_existing_bytes() {
        let mut w = BitWriter::from_vec(vec![0xAB]);
        w.write_bit(true);
        assert_eq!(w.into_vec(), vec![0xAB, 0x80]);
    }
}
