//! Sample-encoding throughput on realistic monitoring series (modelled on
//! `peers/gen_dataset.py`: 10 s exact intervals, percentages with 2 decimals
//! doing bounded random walks, integer counters, latencies with 4 decimals,
//! constant series): `HeadChunk::append`, `encode_chunk` and `decode_chunk`
//! over one 12 h chunk (4,320 samples) per series kind. Prints the sealed
//! bytes per sample of each kind before measuring.
//!
//! `head_range`: reading the last 25 % (120 samples) of 1,000 480-sample
//! head chunks (80 min at 10 s), by the full iteration filtered to the range
//! vs `HeadChunk::range` (which starts at the seek checkpoint before the
//! range). Prints the head chunk's bytes per sample (stream, and stream +
//! checkpoints) at 60 and 480 samples per kind first.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tidemark_storage::Sample;
use tidemark_storage::encoding::{HeadChunk, decode_chunk, encode_chunk, read_chunk_header};

const N: usize = 4320;

/// Deterministic xorshift64* with a Box-Muller normal.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.uniform()).cos()
    }
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (v * p).round() / p
}

fn series(kind: &str) -> Vec<Sample> {
    series_n(kind, N, 0)
}

/// `n` samples of `kind`; `seed` varies the random walk.
fn series_n(kind: &str, n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let (mut x, mut c, mut loglat) = (30.0f64, 1_000_000.0f64, 0.1f64.ln());
    (0..n)
        .map(|i| {
            let v = match kind {
                "percent" => {
                    x += 0.15 * (30.0 - x) + rng.gauss() * 1.8;
                    round_to(x.clamp(0.5, 100.0), 2)
                }
                "counter" => {
                    c += (400.0 + 20.0 * rng.gauss()).round().max(0.0);
                    c
                }
                "latency" => {
                    loglat += 0.2 * (0.1f64.ln() - loglat) + rng.gauss() * 0.08;
                    round_to(loglat.exp(), 4)
                }
                _ => 1.0,
            };
            Sample::new(1_699_920_000_000 + i as i64 * 10_000, v)
        })
        .collect()
}

const KINDS: [&str; 4] = ["percent", "counter", "latency", "constant"];

fn encoding(c: &mut Criterion) {
    for kind in KINDS {
        let s = series(kind);
        let mut chunk = Vec::new();
        encode_chunk(&s, &mut chunk);
        let h = read_chunk_header(&chunk).expect("valid chunk");
        eprintln!(
            "{kind:9} {:.3} bytes/sample ({} bytes, {:?}, {:?})",
            chunk.len() as f64 / N as f64,
            chunk.len(),
            h.encoding,
            h.compression
        );
    }

    let mut g = c.benchmark_group("encoding");
    g.throughput(Throughput::Elements(N as u64));
    for kind in KINDS {
        let s = series(kind);
        let mut head = HeadChunk::new();
        g.bench_with_input(BenchmarkId::new("head_append", kind), &s, |b, s| {
            b.iter(|| {
                head.clear();
                for x in s {
                    head.append(x.ts, x.value);
                }
                black_box(head.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("head_iter", kind), &head, |b, head| {
            b.iter(|| black_box(head.iter().map(|s| s.value).sum::<f64>()))
        });
        let mut out = Vec::new();
        g.bench_with_input(BenchmarkId::new("encode_chunk", kind), &s, |b, s| {
            b.iter(|| {
                out.clear();
                encode_chunk(s, &mut out);
                black_box(out.len())
            })
        });
        let mut chunk = Vec::new();
        encode_chunk(&s, &mut chunk);
        let mut samples = Vec::with_capacity(N);
        g.bench_with_input(
            BenchmarkId::new("decode_chunk", kind),
            &chunk,
            |b, chunk| {
                b.iter(|| {
                    samples.clear();
                    black_box(decode_chunk(chunk, &mut samples).expect("valid chunk"));
                })
            },
        );
    }
    g.finish();
}

fn head_chunk(samples: &[Sample]) -> HeadChunk {
    let mut c = HeadChunk::new();
    for s in samples {
        assert!(c.append(s.ts, s.value));
    }
    c
}

fn head_range(c: &mut Criterion) {
    for n in [60, 480] {
        for kind in KINDS {
            let h = head_chunk(&series_n(kind, n, 0));
            eprintln!(
                "head {n:3} x {kind:8}: stream {:.3} B/sample, stream + checkpoints {:.3} \
                 B/sample ({} + {} bytes)",
                h.stream_bytes() as f64 / n as f64,
                h.bytes_used() as f64 / n as f64,
                h.stream_bytes(),
                h.checkpoint_bytes(),
            );
        }
    }

    const SERIES: usize = 1000;
    const LEN: usize = 480;
    let chunks: Vec<HeadChunk> = (0..SERIES)
        .map(|i| head_chunk(&series_n(KINDS[i % KINDS.len()], LEN, i as u64)))
        .collect();
    // All series share timestamps: the last 25 % is samples 360..480.
    let ts = series_n("constant", LEN, 0);
    let (start, end) = (ts[LEN * 3 / 4].ts, ts[LEN - 1].ts);
    let full = |c: &HeadChunk| c.iter().filter(|s| s.ts >= start && s.ts <= end).count();
    for c in &chunks {
        assert_eq!(c.range(start, end).count(), full(c));
        assert_eq!(full(c), LEN / 4);
    }

    let mut g = c.benchmark_group("head_range");
    g.throughput(Throughput::Elements((SERIES * LEN / 4) as u64));
    g.bench_function("full_filtered", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for c in &chunks {
                for s in c.iter().filter(|s| s.ts >= start && s.ts <= end) {
                    sum += s.value;
                }
            }
            black_box(sum)
        })
    });
    g.bench_function("range", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for c in &chunks {
                for s in c.range(start, end) {
                    sum += s.value;
                }
            }
            black_box(sum)
        })
    });
    g.finish();
}

criterion_group!(benches, encoding, head_range);
criterion_main!(benches);
