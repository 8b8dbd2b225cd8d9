//! Test-only generators shared by the encoding tests: proptest strategies for
//! awkward floats and timestamps, and deterministic "realistic monitoring"
//! series modelled on `peers/gen_dataset.py` (10 s exact intervals).

use proptest::prelude::*;

use crate::types::{STALE_NAN_BITS, Sample};

/// Floats that break naive encoders: NaN payloads (the stale marker), ±0.0,
/// ±Inf, subnormals, extremes, short decimals, and arbitrary bit patterns.
pub(crate) fn interesting_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::NAN),
        Just(f64::from_bits(0xfff8_0000_dead_beef)),
        Just(0.0),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN_POSITIVE / 3.0),
        Just(-f64::from_bits(1)),
        Just(f64::MAX),
        Just(f64::MIN),
        (-10_000i64..10_000).prop_map(|m| m as f64 / 100.0),
        any::<u64>().prop_map(f64::from_bits),
        any::<f64>(),
    ]
}

/// Sorted, distinct timestamps, often near `i64::MIN`/`i64::MAX`.
pub(crate) fn strictly_increasing_ts(
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<i64>> {
    let start = prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX - 10_000_000),
        Just(1_700_000_000_000i64),
        any::<i64>(),
    ];
    let step = prop_oneof![Just(10_000i64), 9_990i64..10_010, 1i64..3, 1i64..(1 << 40),];
    (start, proptest::collection::vec(step, len)).prop_map(|(start, steps)| {
        let mut ts = Vec::with_capacity(steps.len() + 1);
        let mut t = start;
        ts.push(t);
        for s in steps {
            match t.checked_add(s) {
                Some(n) => {
                    t = n;
                    ts.push(t);
                }
                None => break,
            }
        }
        ts
    })
}

/// Deterministic xorshift64* generator (no dependency on a rand crate).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub(crate) fn gauss(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn round_to(v: f64, decimals: i32) -> f64 {
    // Like Python's round() followed by printing and parsing: the nearest
    // double to the decimal.
    let p = 10f64.powi(decimals);
    (v * p).round() / p
}

/// Kinds of realistic series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// CPU-like percentage, 2 decimals, mean-reverting walk.
    Percent,
    /// Integer request counter with Poisson-ish increments.
    Counter,
    /// Latency in seconds, 4 decimals, log random walk.
    Latency,
    /// `up`-style constant 1.
    Constant,
    /// Disk usage: 2 decimals, rarely changes.
    SlowGauge,
}

pub(crate) const KINDS: [Kind; 5] = [
    Kind::Percent,
    Kind::Counter,
    Kind::Latency,
    Kind::Constant,
    Kind::SlowGauge,
];

/// `n` samples at exact 10 s intervals.
pub(crate) fn realistic(kind: Kind, n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    let start = 1_699_920_000_000i64;
    let mut x = 30.0;
    let mut c = (rng.next_u64() % 2_000_000) as f64;
    let mut loglat = (0.1f64).ln();
    (0..n)
        .map(|i| {
            let v = match kind {
                Kind::Percent => {
                    x += 0.15 * (30.0 - x) + rng.gauss() * 1.8;
                    round_to(x.clamp(0.5, 100.0), 2)
                }
                Kind::Counter => {
                    c += (400.0 + 20.0 * rng.gauss()).round().max(0.0);
                    c
                }
                Kind::Latency => {
                    loglat += 0.2 * ((0.1f64).ln() - loglat) + rng.gauss() * 0.08;
                    round_to(loglat.exp(), 4)
                }
                Kind::Constant => 1.0,
                Kind::SlowGauge => {
                    if rng.uniform() < 0.05 {
                        x += rng.uniform() * 0.03;
                    }
                    round_to(x, 2)
                }
            };
            Sample::new(start + i as i64 * 10_000, v)
        })
        .collect()
}
