//! LEB128 varints and zigzag mapping: the byte-level integer forms of the
//! sealed chunk format.
//!
//! Owns: the encoders (`put_*`, appending to a caller-owned `Vec<u8>`) and the
//! zigzag bijection. Decoding lives in [`super::decbuf`], which bounds-checks
//! every read.
//!
//! Invariants:
//! - An unsigned varint is at most [`MAX_VARINT_LEN`] bytes, 7 bits per byte,
//!   least-significant group first, high bit set on every byte but the last.
//! - `unzigzag(zigzag(x)) == x` for every `i64`, and `zigzag` maps 0 to 0 and
//!   every other value to a non-zero code (the zero-run streams rely on it).

/// Longest LEB128 encoding of a `u64`: ceil(64 / 7).
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Maps signed to unsigned so small magnitudes get small codes:
/// 0 → 0, -1 → 1, 1 → 2, -2 → 3, ...
#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-mapped as an unsigned varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// Bytes [`put_uvarint`] appends for `v`.
#[inline]
pub(crate) fn uvarint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::decbuf::Decbuf;
    use crate::encoding::error::Section;
    use proptest::prelude::*;

    #[test]
    fn zigzag_small_values() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
        assert_eq!(zigzag(i64::MAX), u64::MAX - 1);
    }

    #[test]
    fn varint_lengths() {
        for (v, n) in [(0u64, 1), (127, 1), (128, 2), (u64::MAX, MAX_VARINT_LEN)] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(out.len(), n, "{v}");
            assert_eq!(uvarint_len(v), n, "{v}");
        }
    }

    proptest! {
        #[test]
        fn zigzag_roundtrip(v in any::<i64>()) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
            prop_assert_eq!(zigzag(v) == 0, v == 0);
        }

        #[test]
        fn varint_roundtrip(vs in proptest::collection::vec(any::<i64>(), 0..50)) {
            let mut out = Vec::new();
            for &v in &vs {
                put_varint(&mut out, v);
                put_uvarint(&mut out, v as u64);
            }
            let mut d = Decbuf::new(&out, 0, Section::Header);
            for &v in &vs {
                prop_assert_eq!(d.varint(), v);
                prop_assert_eq!(d.uvarint(), v as u64);
            }
            prop_assert_eq!(d.remaining(), 0);
            prop_assert!(d.finish().is_ok());
        }
    }
}
