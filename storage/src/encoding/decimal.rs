//! Decimal-scaled integer values: most monitoring values have bounded decimal
//! precision (percentages with 2 decimals, latencies with 4, integer
//! counters), so `v = m / 10^e` for a small exponent `e` and an integer `m`.
//! The integers are then written as deltas or deltas-of-deltas in a zero-run
//! difference stream ([`super::diffs`]).
//!
//! Stream: exponent `e` (one byte, `0..=MAX_EXPONENT`), `zigzag(m_0)` as a
//! varint, then `count - 1` differences (first-order deltas for
//! [`DecimalOrder::Delta`], deltas-of-deltas for [`DecimalOrder::DeltaOfDelta`],
//! both against a previous of 0 for the first), with zero runs collapsed or
//! flat ([`ZeroRuns`]).
//!
//! Invariants:
//! - Decoding is `(m as f64) / 10^e` (one correctly rounded division, the same
//!   thing a decimal parser does for "m e-e"), and the encoder only picks `e`
//!   after checking that this reproduces every value bit-exactly. NaN, ±Inf
//!   and -0.0 never pass that check (0 / 10^e is +0.0), so such chunks fall
//!   back to another encoding.
//! - Integer arithmetic wraps, so any `i64` sequence round-trips.

use super::decbuf::Decbuf;
use super::diffs::{DiffReader, DiffWriter, ZeroRuns};
use super::error::ChunkError;
use super::varint::put_varint;
use crate::types::Sample;

/// Largest exponent tried. f64 carries 15.95 significant decimal digits, so
/// past 10^15 only values below 1 could still scale exactly, and those are
/// rare in monitoring data; every 10^e up to 10^22 is exact in f64, so the
/// table below has no rounding of its own.
pub(crate) const MAX_EXPONENT: u8 = 15;

const POW10: [f64; MAX_EXPONENT as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Which differences of the scaled integers are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecimalOrder {
    Delta,
    DeltaOfDelta,
}

#[inline]
fn pow10(e: u8) -> f64 {
    POW10.get(usize::from(e)).copied().unwrap_or(f64::NAN)
}

/// The scaled integer for `v` at exponent `e`, if it reproduces `v` exactly.
#[inline]
fn scale_exact(v: f64, e: u8) -> Option<i64> {
    let p = pow10(e);
    // `as` saturates; the check below catches any value that does not fit.
    let m = (v * p).round() as i64;
    ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
}

/// Smallest exponent at which every value scales exactly, if any.
pub(crate) fn find_exponent(samples: &[Sample]) -> Option<u8> {
    let mut e = 0u8;
    for s in samples {
        while scale_exact(s.value, e).is_none() {
            e += 1;
            if e > MAX_EXPONENT {
                return None;
            }
        }
    }
    // A value that was exact at a smaller exponent is almost always exact at
    // a larger one, but "almost" is not enough: check, and widen if needed.
    while e <= MAX_EXPONENT {
        if samples.iter().all(|s| scale_exact(s.value, e).is_some()) {
            return Some(e);
        }
        e += 1;
    }
    None
}

/// Appends the stream for `samples` at exponent `e`, which must come from
/// [`find_exponent`] on the same samples.
pub(crate) fn encode(
    samples: &[Sample],
    e: u8,
    order: DecimalOrder,
    runs: ZeroRuns,
    out: &mut Vec<u8>,
) {
    let Some((first, rest)) = samples.split_first() else {
        return;
    };
    let p = pow10(e);
    let scale = |v: f64| (v * p).round() as i64;
    out.push(e);
    let mut prev = scale(first.value);
    put_varint(out, prev);
    let mut w = DiffWriter::new(out, runs);
    let mut prev_delta = 0i64;
    for s in rest {
        let m = scale(s.value);
        debug_assert_eq!((m as f64 / p).to_bits(), s.value.to_bits());
        let delta = m.wrapping_sub(prev);
        match order {
            DecimalOrder::Delta => w.push(delta),
            DecimalOrder::DeltaOfDelta => w.push(delta.wrapping_sub(prev_delta)),
        }
        prev_delta = delta;
        prev = m;
    }
    w.finish();
}

/// Decodes one value per element of `out`.
pub(crate) fn decode(d: &mut Decbuf<'_>, order: DecimalOrder, runs: ZeroRuns, out: &mut [Sample]) {
    if out.is_empty() {
        return;
    }
    let e = d.u8();
    if e > MAX_EXPONENT {
        d.fail(ChunkError::BadDecimalExponent(e));
        return;
    }
    let p = pow10(e);
    let mut m = d.varint();
    let mut delta = 0i64;
    let mut r = DiffReader::new(out.len() as u64 - 1, runs);
    let mut samples = out.iter_mut();
    if let Some(s) = samples.next() {
        s.value = m as f64 / p;
    }
    match order {
        DecimalOrder::Delta => {
            for s in samples {
                m = m.wrapping_add(r.next(d));
                s.value = m as f64 / p;
            }
        }
        DecimalOrder::DeltaOfDelta => {
            for s in samples {
                delta = delta.wrapping_add(r.next(d));
                m = m.wrapping_add(delta);
                s.value = m as f64 / p;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::error::Section;
    use crate::types::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn samples(values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| Sample::new(i as i64, v))
            .collect()
    }

    fn roundtrip(values: &[f64], order: DecimalOrder) -> Option<usize> {
        let s = samples(values);
        let e = find_exponent(&s)?;
        let mut len = 0;
        for runs in [ZeroRuns::Flat, ZeroRuns::Collapse] {
            let mut out = Vec::new();
            encode(&s, e, order, runs, &mut out);
            let mut d = Decbuf::new(&out, 0, Section::Values);
            let mut got = samples(&vec![0.0; values.len()]);
            decode(&mut d, order, runs, &mut got);
            d.expect_end();
            d.finish().unwrap();
            for (a, b) in s.iter().zip(&got) {
                assert!(a.bit_eq(b), "{a:?} != {b:?} at e={e}");
            }
            len = out.len();
        }
        // The collapsed stream's length.
        Some(len)
    }

    #[test]
    fn exponents() {
        let e = |v: &[f64]| find_exponent(&samples(v));
        assert_eq!(e(&[1.0, 2.0, 1e15]), Some(0));
        assert_eq!(e(&[12.34, 0.5]), Some(2));
        assert_eq!(e(&[0.0123]), Some(4));
        assert_eq!(e(&[0.1 + 0.2]), None);
        assert_eq!(e(&[-0.0]), None);
        assert_eq!(e(&[1.0, f64::NAN]), None);
        assert_eq!(e(&[f64::from_bits(STALE_NAN_BITS)]), None);
        assert_eq!(e(&[f64::INFINITY]), None);
        assert_eq!(e(&[f64::MIN_POSITIVE / 2.0]), None);
        assert_eq!(e(&[]), Some(0));
    }

    #[test]
    fn counter_steps_favour_the_right_order() {
        let linear: Vec<f64> = (0..1000).map(|i| (i * 7) as f64).collect();
        let dod = roundtrip(&linear, DecimalOrder::DeltaOfDelta).unwrap();
        let delta = roundtrip(&linear, DecimalOrder::Delta).unwrap();
        assert!(dod < 8, "{dod}");
        assert!(delta > dod);
    }

    #[test]
    fn huge_integers() {
        for v in [9.3e18, -9.3e18, 2f64.powi(63), -(2f64.powi(63)), 1e300] {
            // Whatever find_exponent decides must round-trip.
            roundtrip(&[v, 1.0], DecimalOrder::Delta);
            roundtrip(&[1.0, v, -1.0], DecimalOrder::DeltaOfDelta);
        }
    }

    proptest! {
        #[test]
        fn decimal_roundtrip(
            ms in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 1..300),
            e in 0u32..8,
        ) {
            let p = 10f64.powi(e as i32);
            let values: Vec<f64> = ms.iter().map(|&m| m as f64 / p).collect();
            let e_found = find_exponent(&samples(&values));
            prop_assert!(e_found.is_some_and(|f| u32::from(f) <= e));
            roundtrip(&values, DecimalOrder::Delta);
            roundtrip(&values, DecimalOrder::DeltaOfDelta);
        }

        #[test]
        fn arbitrary_floats_roundtrip_or_fall_back(values in proptest::collection::vec(
            crate::encoding::testutil::interesting_f64(), 1..100)) {
            roundtrip(&values, DecimalOrder::Delta);
            roundtrip(&values, DecimalOrder::DeltaOfDelta);
        }
    }
}
