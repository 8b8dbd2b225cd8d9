//! The sealed chunk's timestamp stream: delta-of-delta over the samples'
//! timestamps, written as a zero-run difference stream ([`super::diffs`]).
//!
//! The first timestamp is not in the stream (the chunk header carries it as
//! `min_ts`); the stream holds `count - 1` deltas-of-deltas, the first taken
//! against a previous delta of 0 (so it is the first delta itself).
//!
//! Invariants:
//! - Arithmetic wraps (two's complement), so any strictly increasing `i64`
//!   sequence round-trips, even one spanning more than `i64::MAX`.
//! - The decoder rejects a stream whose timestamps do not strictly increase,
//!   so every decoded chunk satisfies `encode_chunk`'s precondition.

use super::decbuf::Decbuf;
use super::diffs::{DiffReader, DiffWriter, ZeroRuns};
use super::error::ChunkError;
use crate::types::Sample;

/// Appends the delta-of-delta stream for `samples[1..]`.
pub(crate) fn encode(samples: &[Sample], out: &mut Vec<u8>) {
    let Some((first, rest)) = samples.split_first() else {
        return;
    };
    let mut w = DiffWriter::new(out, ZeroRuns::Collapse);
    let mut prev = first.ts;
    let mut prev_delta = 0i64;
    for s in rest {
        let delta = s.ts.wrapping_sub(prev);
        w.push(delta.wrapping_sub(prev_delta));
        prev_delta = delta;
        prev = s.ts;
    }
    w.finish();
}

/// Decodes `count` timestamps starting at `min_ts`, appending samples with
/// value 0.0 to `out`. Returns the last timestamp. Errors go to `d`; on error
/// `out` may hold a partial column.
pub(crate) fn decode(d: &mut Decbuf<'_>, count: u32, min_ts: i64, out: &mut Vec<Sample>) -> i64 {
    if count == 0 {
        return min_ts;
    }
    let mut ts = min_ts;
    out.push(Sample::new(ts, 0.0));
    let mut delta = 0i64;
    let mut r = DiffReader::new(u64::from(count - 1), ZeroRuns::Collapse);
    for index in 1..count {
        delta = delta.wrapping_add(r.next(d));
        let next = ts.wrapping_add(delta);
        if next <= ts {
            if !d.failed() {
                d.fail(ChunkError::NotIncreasing {
                    index,
                    prev: ts,
                    ts: next,
                });
            }
            break;
        }
        ts = next;
        out.push(Sample::new(ts, 0.0));
    }
    ts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::error::Section;
    use proptest::prelude::*;

    fn roundtrip(ts: &[i64]) -> usize {
        let samples: Vec<_> = ts.iter().map(|&t| Sample::new(t, 0.0)).collect();
        let mut out = Vec::new();
        encode(&samples, &mut out);
        let mut d = Decbuf::new(&out, 0, Section::Timestamps);
        let mut got = Vec::new();
        let last = decode(
            &mut d,
            ts.len() as u32,
            ts.first().copied().unwrap_or(0),
            &mut got,
        );
        d.expect_end();
        d.finish().unwrap();
        let got_ts: Vec<i64> = got.iter().map(|s| s.ts).collect();
        assert_eq!(got_ts, ts);
        if let Some(&l) = ts.last() {
            assert_eq!(last, l);
        }
        out.len()
    }

    #[test]
    fn exact_interval_is_a_few_bytes() {
        let ts: Vec<i64> = (0..4320).map(|i| 1_700_000_000_000 + i * 10_000).collect();
        assert!(roundtrip(&ts) <= 6);
    }

    #[test]
    fn extremes() {
        roundtrip(&[i64::MIN, i64::MAX]);
        roundtrip(&[i64::MIN, -1, 0, 1, i64::MAX]);
        roundtrip(&[i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX]);
        roundtrip(&[]);
        roundtrip(&[42]);
    }

    #[test]
    fn non_increasing_stream_is_rejected() {
        // First delta 0: second timestamp equals the first.
        let bytes = [0u8, 0];
        let mut d = Decbuf::new(&bytes, 0, Section::Timestamps);
        let mut got = Vec::new();
        decode(&mut d, 2, 7, &mut got);
        assert!(matches!(
            d.finish(),
            Err(ChunkError::NotIncreasing { index: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn timestamps_roundtrip(mut ts in proptest::collection::vec(any::<i64>(), 0..200)) {
            ts.sort_unstable();
            ts.dedup();
            roundtrip(&ts);
        }

        #[test]
        fn jittered_roundtrip(start in any::<i64>(), steps in proptest::collection::vec(1i64..20_000, 0..200)) {
            let mut ts = vec![start];
            for s in steps {
                match ts.last().and_then(|l| l.checked_add(s)) {
                    Some(t) => ts.push(t),
                    None => break,
                }
            }
            roundtrip(&ts);
        }
    }
}
