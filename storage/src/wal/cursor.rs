//! Bounds-checked reading and varint writing for WAL record bodies.
//!
//! Owns the byte-level primitives that `record` builds on: LEB128 unsigned
//! varints, zigzag signed varints and little-endian fixed-width values.
//!
//! Invariants:
//! - A [`Cursor`] never indexes past its input: every read checks the length
//!   first and returns a [`RecordError`] carrying the offset instead of
//!   panicking. Input bytes are never `unwrap`ped.
//! - Encoders emit the shortest varint form, so encoding is canonical; the
//!   decoder also accepts longer (non-minimal) forms of the same value.

use super::record::RecordError;

/// The longest LEB128 encoding of a `u64`.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Reads a record body front to back.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn truncated(&self, needed: usize) -> RecordError {
        RecordError::Truncated {
            at: self.pos,
            needed,
            left: self.remaining(),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, RecordError> {
        let b = *self.rest().first().ok_or_else(|| self.truncated(1))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let b = self.rest().get(..n).ok_or_else(|| self.truncated(n))?;
        self.pos += n;
        Ok(b)
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64, RecordError> {
        let (b, _) = self
            .rest()
            .split_first_chunk::<8>()
            .ok_or_else(|| self.truncated(8))?;
        self.pos += 8;
        Ok(u64::from_le_bytes(*b))
    }

    /// An unsigned LEB128 varint.
    pub(crate) fn uvarint(&mut self) -> Result<u64, RecordError> {
        let start = self.pos;
        let mut x = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let b = self.u8()?;
            // The tenth byte may only carry the top bit of a u64.
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                return Err(RecordError::VarintOverflow { at: start });
            }
            x |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(RecordError::VarintOverflow { at: start })
    }

    /// A zigzag-encoded signed varint.
    pub(crate) fn varint(&mut self) -> Result<i64, RecordError> {
        Ok(unzigzag(self.uvarint()?))
    }
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` as a zigzag-encoded signed varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_edges() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert!(b.len() <= MAX_VARINT_LEN);
            let mut c = Cursor::new(&b);
            assert_eq!(c.uvarint(), Ok(v));
            assert_eq!(c.remaining(), 0);
        }
        // Non-minimal forms decode; an 11-byte or overflowing varint does not.
        assert_eq!(Cursor::new(&[0x80, 0x00]).uvarint(), Ok(0));
        let overflow = [0xff; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>();
        assert_eq!(
            Cursor::new(&overflow).uvarint(),
            Err(RecordError::VarintOverflow { at: 0 })
        );
        assert!(matches!(
            Cursor::new(&[0x80]).uvarint(),
            Err(RecordError::Truncated { at: 1, .. })
        ));
        assert!(matches!(
            Cursor::new(&[1, 2, 3]).u64_le(),
            Err(RecordError::Truncated {
                at: 0,
                needed: 8,
                left: 3
            })
        ));
    }

    proptest! {
        #[test]
        fn signed_varint_roundtrip(v in any::<i64>()) {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut c = Cursor::new(&b);
            prop_assert_eq!(c.varint(), Ok(v));
            prop_assert_eq!(c.remaining(), 0);
        }
    }
}
