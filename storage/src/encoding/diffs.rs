//! The zero-run difference stream: a sequence of `i64` differences (deltas or
//! deltas-of-deltas) written as zigzag varints, with runs of zeros collapsed.
//! Shared by the timestamp stream and the decimal value encodings.
//!
//! Format, one token after another:
//! - `zigzag(d)` as a varint for a non-zero difference `d` (never 0, since
//!   zigzag maps only 0 to 0);
//! - `0x00` then varint `r` for a run of `r + 1` zero differences.
//!
//! A 10 s exact-interval timestamp column of any length is therefore one
//! token for the first delta plus about three bytes for the zero run.
//!
//! [`ZeroRuns::Flat`] streams skip the run collapsing: every difference is
//! its own varint, 0 included. Under zstd that is often smaller (zstd codes a
//! repeated `0x00` in under a bit, while run lengths are high-entropy), so the
//! decimal encodings come in both flavours.
//!
//! Invariants: the reader is told how many differences to expect and rejects
//! a run that overruns them; it never allocates.

use super::decbuf::Decbuf;
use super::error::ChunkError;
use super::varint::{put_uvarint, unzigzag, zigzag};

/// Whether runs of zero differences are collapsed into one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZeroRuns {
    /// `0x00` + varint `r` stands for `r + 1` zeros.
    Collapse,
    /// Every zero is a plain `0x00`.
    Flat,
}

/// Appends differences to a byte buffer.
pub(crate) struct DiffWriter<'a> {
    out: &'a mut Vec<u8>,
    zeros: u64,
    runs: ZeroRuns,
}

impl<'a> DiffWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, runs: ZeroRuns) -> Self {
        Self {
            out,
            zeros: 0,
            runs,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, d: i64) {
        if d == 0 && self.runs == ZeroRuns::Collapse {
            self.zeros += 1;
        } else {
            self.flush_zeros();
            put_uvarint(self.out, zigzag(d));
        }
    }

    fn flush_zeros(&mut self) {
        if self.zeros > 0 {
            self.out.push(0);
            put_uvarint(self.out, self.zeros - 1);
            self.zeros = 0;
        }
    }

    /// Writes any pending zero run. Must be called once after the last push.
    pub(crate) fn finish(mut self) {
        self.flush_zeros();
    }
}

/// Reads exactly `count` differences (set at construction) from a [`Decbuf`].
pub(crate) struct DiffReader {
    zeros_left: u64,
    remaining: u64,
    runs: ZeroRuns,
}

impl DiffReader {
    pub(crate) fn new(count: u64, runs: ZeroRuns) -> Self {
        Self {
            zeros_left: 0,
            remaining: count,
            runs,
        }
    }

    /// The next difference. Call at most `count` times; errors (and garbage
    /// after them) go to `d`'s sticky error.
    #[inline]
    pub(crate) fn next(&mut self, d: &mut Decbuf<'_>) -> i64 {
        let remaining = self.remaining;
        self.remaining = remaining.saturating_sub(1);
        if self.zeros_left > 0 {
            self.zeros_left -= 1;
            return 0;
        }
        let u = d.uvarint();
        if u != 0 || self.runs == ZeroRuns::Flat {
            return unzigzag(u);
        }
        let run = d.uvarint();
        // The run covers this call plus `run` more.
        if run >= remaining {
            let e = ChunkError::RunOverflow {
                section: d.section(),
                run: run.saturating_add(1),
                remaining,
            };
            d.fail(e);
            return 0;
        }
        self.zeros_left = run;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::decbuf::Decbuf;
    use crate::encoding::error::Section;
    use proptest::prelude::*;

    fn encode(ds: &[i64]) -> Vec<u8> {
        encode_with(ds, ZeroRuns::Collapse)
    }

    fn encode_with(ds: &[i64], runs: ZeroRuns) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = DiffWriter::new(&mut out, runs);
        for &d in ds {
            w.push(d);
        }
        w.finish();
        out
    }

    #[test]
    fn zero_runs_collapse() {
        let out = encode(&[5, 0, 0, 0, 0, -1, 0]);
        assert_eq!(out, vec![10, 0, 3, 1, 0, 0]);
        assert_eq!(encode(&vec![0; 4000]).len(), 3);
        assert_eq!(
            encode_with(&[5, 0, 0, -1], ZeroRuns::Flat),
            vec![10, 0, 0, 1]
        );
    }

    #[test]
    fn overlong_run_is_rejected() {
        let bytes = [0u8, 5];
        let mut d = Decbuf::new(&bytes, 0, Section::Values);
        let mut r = DiffReader::new(3, ZeroRuns::Collapse);
        for _ in 0..3 {
            r.next(&mut d);
        }
        assert!(matches!(
            d.finish(),
            Err(ChunkError::RunOverflow {
                run: 6,
                remaining: 3,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn diffs_roundtrip(ds in proptest::collection::vec(
            prop_oneof![Just(0i64), -3i64..3, any::<i64>()], 0..300)) {
            for runs in [ZeroRuns::Collapse, ZeroRuns::Flat] {
                let out = encode_with(&ds, runs);
                let mut d = Decbuf::new(&out, 0, Section::Values);
                let mut r = DiffReader::new(ds.len() as u64, runs);
                for &want in &ds {
                    prop_assert_eq!(r.next(&mut d), want);
                }
                d.expect_end();
                prop_assert!(d.finish().is_ok());
            }
        }
    }
}
