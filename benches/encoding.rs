//! Sample-encoding throughput on realistic monitoring series (modelled on
//! `peers/gen_dataset.py`: 10 s exact intervals, percentages with 2 decimals
//! doing bounded random walks, integer counters, latencies with 4 decimals,
//! constant series): `HeadChunk::append`, `encode_chunk` and `decode_chunk`
//! over one 12 h chunk (4,320 samples) per series kind. Prints the sealed
//! bytes per sample of each kind before measuring.

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
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut x, mut c, mut loglat) = (30.0f64, 1_000_000.0f64, 0.1f64.ln());
    (0..N)
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

criterion_group!(benches, encoding);
criterion_main!(benches);
