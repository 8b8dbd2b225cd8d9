//! Tests of [`super::HeadChunk`]: round trips, and ranged reads (from seek
//! checkpoints) against the full iteration filtered to the same range.

use super::*;
use crate::encoding::testutil::{interesting_f64, strictly_increasing_ts};
use crate::types::STALE_NAN_BITS;
use proptest::prelude::*;
use proptest::sample::Index;

const KS: usize = CHECKPOINT_INTERVAL;

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
    // One checkpoint per written sample at a positive multiple of K,
    // each naming the sample before it.
    assert_eq!(c.checkpoints.len(), samples.len().saturating_sub(1) / KS);
    for (j, cp) in c.checkpoints.iter().enumerate() {
        assert_eq!(cp.prev_ts, samples[(j + 1) * KS - 1].ts);
    }
    c
}

/// `range(start, end)` yields, bit for bit, the full iteration filtered
/// to `[start, end]`.
fn assert_range(c: &HeadChunk, start: i64, end: i64) {
    let want: Vec<Sample> = c.iter().filter(|s| s.ts >= start && s.ts <= end).collect();
    let got: Vec<Sample> = c.range(start, end).collect();
    assert_eq!(got.len(), want.len(), "range({start}, {end})");
    for (a, b) in want.iter().zip(&got) {
        assert!(a.bit_eq(b), "range({start}, {end}): {a:?} != {b:?}");
    }
}

/// A range bound: near a sample's timestamp (-1, 0, +1), or anywhere.
#[derive(Clone, Copy, Debug)]
enum Bound {
    Near(Index, i64),
    Abs(i64),
}

fn bound() -> impl Strategy<Value = Bound> {
    prop_oneof![
        6 => (any::<Index>(), -1i64..=1).prop_map(|(i, d)| Bound::Near(i, d)),
        1 => any::<i64>().prop_map(Bound::Abs),
        1 => Just(Bound::Abs(i64::MIN)),
        1 => Just(Bound::Abs(i64::MAX)),
    ]
}

fn resolve(b: Bound, samples: &[Sample]) -> i64 {
    match b {
        Bound::Near(i, d) if !samples.is_empty() => {
            samples[i.index(samples.len())].ts.saturating_add(d)
        }
        Bound::Near(..) => 0,
        Bound::Abs(t) => t,
    }
}

fn zip(ts: &[i64], values: &[f64]) -> Vec<Sample> {
    ts.iter()
        .zip(values)
        .map(|(&t, &v)| Sample::new(t, v))
        .collect()
}

/// Irregular timestamps (every dod bucket, incl. the 64-bit one) and
/// awkward values, deterministic.
fn irregular(n: usize) -> Vec<Sample> {
    let steps = [10_000i64, 10_003, 9_990, 1, 1 << 40, 70_000, 2, 600_000];
    let values = [
        f64::from_bits(STALE_NAN_BITS),
        -0.0,
        f64::INFINITY,
        1.5,
        f64::NAN,
        0.0,
        f64::MIN_POSITIVE / 3.0,
        -2.25,
        1.5,
    ];
    let mut t = 1_700_000_000_000i64;
    (0..n)
        .map(|i| {
            t += steps[(i * 7 + i / 3) % steps.len()];
            Sample::new(t, values[(i * 5 + i / 4) % values.len()])
        })
        .collect()
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
    // One 32-byte checkpoint per 32 samples, plus `Vec` slack.
    assert_eq!(c.checkpoints.len(), 4319 / KS);
    let per_sample = c.checkpoint_bytes() as f64 / 4320.0;
    assert!((1.0..=2.0).contains(&per_sample), "{per_sample}");
    assert_eq!(c.bytes_used(), c.stream_bytes() + c.checkpoint_bytes());
}

/// Every (start, end) pair around every timestamp, at chunk sizes just
/// below, at and above multiples of K.
#[test]
fn range_at_checkpoint_boundaries() {
    for n in [
        0,
        1,
        2,
        KS - 1,
        KS,
        KS + 1,
        2 * KS - 1,
        2 * KS,
        2 * KS + 1,
        3 * KS + 1,
    ] {
        let samples = irregular(n);
        let c = check(&samples);
        let mut bounds = vec![i64::MIN, i64::MAX];
        for s in &samples {
            bounds.extend([s.ts - 1, s.ts, s.ts + 1]);
        }
        for &start in &bounds {
            for &end in bounds.iter().step_by(4) {
                assert_range(&c, start, end);
            }
        }
    }
}

/// Values whose XOR window is replaced by sample K − 1 and reused by
/// sample K (`10`): a checkpoint holding the window from before sample
/// K − 1, or none, decodes sample K with the wrong width.
#[test]
fn checkpoint_holds_the_window_set_just_before_it() {
    // Window (leading 20, trailing 0), then (10, 40) at K − 1, then a
    // value fitting only the latter at K.
    let wide = (1u64 << 43) | 1;
    let narrow = (1u64 << 53) | (1 << 40);
    let inside = (1u64 << 51) | (1 << 42);
    // Before K − 1: either the wide window or no window at all.
    for before in [wide, 0] {
        let mut bits = 0x4000_0000_0000_0000u64;
        let mut values = vec![bits];
        for i in 1..3 * KS {
            bits ^= match i {
                _ if i == KS - 1 => narrow,
                _ if i == KS => inside,
                _ if i < KS - 1 => before,
                _ => wide >> (i % 7),
            };
            values.push(bits);
        }
        let samples: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, &b)| Sample::new(i as i64 * 10, f64::from_bits(b)))
            .collect();
        let c = check(&samples);
        for s in &samples {
            assert_range(&c, s.ts, i64::MAX);
            assert_range(&c, s.ts, s.ts + 15);
        }
        // The data does what the test is about: the window changes
        // between sample K − 2 and the checkpoint at K.
        let mut upto = HeadChunk::new();
        for s in &samples[..KS - 1] {
            upto.append(s.ts, s.value);
        }
        let (_, window_before) = upto.xor.snapshot();
        assert_ne!(c.checkpoints[0].window, window_before);
    }
}

proptest! {
    #[test]
    fn head_chunk_roundtrip(
        ts in strictly_increasing_ts(0..300),
        values in proptest::collection::vec(interesting_f64(), 300),
    ) {
        check(&zip(&ts, &values));
    }

    #[test]
    fn range_equals_filtered_iteration(
        ts in strictly_increasing_ts(0..300),
        values in proptest::collection::vec(interesting_f64(), 300),
        bounds in proptest::collection::vec((bound(), bound()), 1..16),
    ) {
        let samples = zip(&ts, &values);
        let c = check(&samples);
        for (a, b) in bounds {
            assert_range(&c, resolve(a, &samples), resolve(b, &samples));
        }
    }

    #[test]
    fn range_after_clear_and_reappend(
        ts1 in strictly_increasing_ts(0..150),
        ts2 in strictly_increasing_ts(0..150),
        values in proptest::collection::vec(interesting_f64(), 150),
        bounds in proptest::collection::vec((bound(), bound()), 1..16),
    ) {
        let mut c = check(&zip(&ts1, &values));
        let cap = c.bytes_used();
        c.clear();
        prop_assert!(c.checkpoints.is_empty());
        prop_assert_eq!(c.bytes_used(), cap);
        prop_assert_eq!(c.range(i64::MIN, i64::MAX).count(), 0);
        let second = zip(&ts2, &values);
        for s in &second {
            prop_assert!(c.append(s.ts, s.value));
        }
        prop_assert_eq!(c.checkpoints.len(), second.len().saturating_sub(1) / KS);
        let all: Vec<Sample> = c.range(i64::MIN, i64::MAX).collect();
        prop_assert_eq!(all.len(), second.len());
        for (a, b) in second.iter().zip(&all) {
            prop_assert!(a.bit_eq(b), "{:?} != {:?}", a, b);
        }
        for (a, b) in bounds {
            assert_range(&c, resolve(a, &second), resolve(b, &second));
        }
    }
}
