//! Parser throughput over a body shaped like the peers dataset (`data.lp` /
//! `data.om` from `gen_dataset.py`): host and service measurements with 4
//! tags and 1–4 fields per line, millisecond timestamps.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tidemark::ingest::lineproto::{LineParser, Precision};
use tidemark::ingest::openmetrics::{OpenMetricsParser, TimestampUnit};

const HOSTS: usize = 20;
const SERVICES: [&str; 5] = ["api", "auth", "billing", "search", "checkout"];
const SCRAPES: usize = 50;
const LES: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// Returns (body, lines, samples).
fn lp_body() -> (String, u64, u64) {
    let mut s = String::new();
    let (mut lines, mut samples) = (0, 0);
    let start = 1_699_920_000_000i64;
    for i in 0..SCRAPES {
        let ts = start + i as i64 * 10_000;
        for h in 0..HOSTS {
            let tags = format!("host=host-{h:02},instance=host-{h:02}:9100,job=node");
            let x = (i * 37 + h * 11) % 1000;
            s += &format!(
                "cpu,{tags} usage_percent={}.{:02},system_percent=3.{:02},iowait_percent=0.{:02} {ts}\n",
                x % 100,
                x % 97,
                x % 89,
                x % 83
            );
            s += &format!(
                "mem,{tags} used_percent=41.{},available_bytes={} {ts}\n",
                x % 10,
                8_000_000_000u64 + x as u64 * 4096
            );
            s += &format!("disk,{tags} used_percent=63.{:02} {ts}\n", x % 100);
            lines += 3;
            samples += 6;
            for (si, svc) in SERVICES.iter().enumerate() {
                let tags = format!(
                    "host=host-{h:02},instance=host-{h:02}:{},job={svc},service={svc}",
                    8080 + si
                );
                let r = 1_000_000 + i * 731 + h;
                s += &format!(
                    "http,{tags} requests_total={r},errors_total={},response_bytes_total={},latency_p99_seconds=0.{:04} {ts}\n",
                    r / 500,
                    r * 2113,
                    x
                );
                s += &format!("service,{tags} up=1,circuit_breaker_state=0 {ts}\n");
                for (j, le) in LES.iter().enumerate() {
                    s += &format!(
                        "recovery_duration_seconds,{tags},le={le} bucket={} {ts}\n",
                        i * j
                    );
                }
                s += &format!(
                    "recovery_duration_seconds,{tags} sum={}.{:03},count={} {ts}\n",
                    i * 3,
                    x,
                    i * 12
                );
                lines += 15;
                samples += 20;
            }
        }
    }
    (s, lines, samples)
}

/// The same samples as OpenMetrics (one sample per line, seconds).
fn om_body(lp: &str) -> (String, u64) {
    let mut out = String::from("# TYPE cpu_usage_percent gauge\n");
    let mut samples = 0;
    LineParser::new(Precision::Milliseconds).parse(lp.as_bytes(), 1, |p| {
        let mut labels: Vec<String> = p.tags().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        labels.sort();
        let ts = p.timestamp_ms.unwrap_or(0);
        for (f, v) in p.fields() {
            let mut name = String::new();
            p.metric_name_into(&f, &mut name);
            out += &format!(
                "{name}{{{}}} {v} {}.{:03}\n",
                labels.join(","),
                ts / 1000,
                ts % 1000
            );
            samples += 1;
        }
    });
    out += "# EOF\n";
    (out, samples)
}

fn bench(c: &mut Criterion) {
    let (lp, lines, samples) = lp_body();
    let mut group = c.benchmark_group("lineproto");
    group.throughput(Throughput::Elements(lines));
    group.bench_function("parse_lines", |b| {
        let mut parser = LineParser::new(Precision::Milliseconds);
        b.iter(|| {
            let mut sum = 0.0;
            let s = parser.parse(black_box(lp.as_bytes()), 1, |p| {
                for (_, v) in p.fields() {
                    sum += v;
                }
            });
            assert_eq!(s.samples, samples);
            black_box(sum)
        })
    });
    group.throughput(Throughput::Elements(samples));
    group.bench_function("parse_samples", |b| {
        let mut parser = LineParser::new(Precision::Milliseconds);
        b.iter(|| {
            let mut n = 0u64;
            parser.parse(black_box(lp.as_bytes()), 1, |p| {
                n += p.fields().len() as u64 + p.series_key().len() as u64 % 2;
            });
            black_box(n)
        })
    });
    group.finish();

    let (om, om_samples) = om_body(&lp);
    let mut group = c.benchmark_group("openmetrics");
    group.throughput(Throughput::Elements(om_samples));
    group.bench_function("parse_samples", |b| {
        b.iter(|| {
            // A fresh parser per pass: the body ends in `# EOF`.
            let mut sum = 0.0;
            let s = OpenMetricsParser::new(TimestampUnit::Seconds).parse(
                black_box(om.as_bytes()),
                1,
                |s| sum += s.value,
            );
            assert_eq!(s.samples, om_samples);
            black_box(sum)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
