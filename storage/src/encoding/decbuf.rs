//! [`Decbuf`]: a bounds-checked read cursor over untrusted bytes with a sticky
//! error, after Prometheus's `encoding.Decbuf`.
//!
//! Invariants:
//! - No read indexes out of bounds or panics, whatever the input.
//! - The first failure is kept; after it every read returns zero/empty and the
//!   position no longer moves, so a decoder can run its loop and check
//!   [`Decbuf::finish`] (or [`Decbuf::failed`]) once.

use super::error::{ChunkError, Section};
use super::varint::{MAX_VARINT_LEN, unzigzag};

pub(crate) struct Decbuf<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Added to `pos` in error offsets (where `buf` starts in its section's
    /// coordinate space).
    base: usize,
    section: Section,
    err: Option<ChunkError>,
}

impl<'a> Decbuf<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize, section: Section) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            section,
            err: None,
        }
    }

    /// Offset of the next byte, in the coordinates given by `base`.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn set_section(&mut self, section: Section) {
        self.section = section;
    }

    pub(crate) fn section(&self) -> Section {
        self.section
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn failed(&self) -> bool {
        self.err.is_some()
    }

    /// Records `err` unless an earlier error is already recorded.
    pub(crate) fn fail(&mut self, err: ChunkError) {
        if self.err.is_none() {
            self.err = Some(err);
        }
    }

    fn truncated(&mut self) {
        let e = ChunkError::Truncated {
            section: self.section,
            offset: self.offset(),
        };
        self.fail(e);
    }

    /// The first error, if any.
    pub(crate) fn finish(self) -> Result<(), ChunkError> {
        match self.err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Errors unless every byte has been consumed.
    pub(crate) fn expect_end(&mut self) {
        if self.err.is_none() && self.remaining() > 0 {
            let e = ChunkError::TrailingBytes {
                section: self.section,
                offset: self.offset(),
                extra: self.remaining(),
            };
            self.fail(e);
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> u8 {
        if self.err.is_some() {
            return 0;
        }
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => {
                self.truncated();
                0
            }
        }
    }

    /// Reads `n` bytes, or an empty slice after an error.
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        if self.err.is_some() {
            return &[];
        }
        let buf = self.buf;
        match self
            .pos
            .checked_add(n)
            .and_then(|end| buf.get(self.pos..end))
        {
            Some(s) => {
                self.pos += n;
                s
            }
            None => {
                self.truncated();
                &[]
            }
        }
    }

    /// Everything not yet read.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let n = self.remaining();
        self.bytes(n)
    }

    pub(crate) fn le_u64(&mut self) -> u64 {
        let mut w = [0u8; 8];
        let b = self.bytes(8);
        if b.len() == 8 {
            w.copy_from_slice(b);
        }
        u64::from_le_bytes(w)
    }

    /// Reads an unsigned LEB128 varint of at most 64 bits.
    #[inline]
    pub(crate) fn uvarint(&mut self) -> u64 {
        if self.err.is_some() {
            return 0;
        }
        let start = self.pos;
        let mut v = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let Some(&b) = self.buf.get(start + i) else {
                self.pos = start + i;
                self.truncated();
                return 0;
            };
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                let e = ChunkError::VarintOverflow {
                    section: self.section,
                    offset: self.base + start,
                };
                self.fail(e);
                return 0;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos = start + i + 1;
                return v;
            }
        }
        // Unreachable: the tenth byte either ends the varint or overflows.
        let e = ChunkError::VarintOverflow {
            section: self.section,
            offset: self.base + start,
        };
        self.fail(e);
        0
    }

    /// Reads a zigzag-mapped signed varint.
    #[inline]
    pub(crate) fn varint(&mut self) -> i64 {
        unzigzag(self.uvarint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_error_keeps_first_failure() {
        let mut d = Decbuf::new(&[0x80], 10, Section::Values);
        assert_eq!(d.uvarint(), 0);
        assert!(d.failed());
        assert_eq!(d.u8(), 0);
        assert!(d.bytes(1).is_empty());
        match d.finish() {
            Err(ChunkError::Truncated { section, offset }) => {
                assert_eq!(section, Section::Values);
                assert_eq!(offset, 11);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn varint_overflow_is_an_error() {
        let bytes = [0xff; 10];
        let mut d = Decbuf::new(&bytes, 0, Section::Header);
        d.uvarint();
        assert!(matches!(
            d.finish(),
            Err(ChunkError::VarintOverflow { offset: 0, .. })
        ));
        // u64::MAX is exactly ten bytes with a final 0x01.
        let mut bytes = [0xff; 10];
        bytes[9] = 1;
        let mut d = Decbuf::new(&bytes, 0, Section::Header);
        assert_eq!(d.uvarint(), u64::MAX);
        assert!(d.finish().is_ok());
    }

    #[test]
    fn bytes_and_trailing() {
        let mut d = Decbuf::new(&[1, 2, 3], 0, Section::Header);
        assert_eq!(d.bytes(2), &[1, 2]);
        d.expect_end();
        assert!(matches!(
            d.finish(),
            Err(ChunkError::TrailingBytes { extra: 1, .. })
        ));
        let mut d = Decbuf::new(&[1], 0, Section::Header);
        assert!(d.bytes(usize::MAX).is_empty());
        assert!(d.failed());
    }
}
