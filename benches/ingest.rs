//! Engine benches: batched append through the sharded pipeline (submit +
//! wait, fsync never and batch), series selection by matchers, and reading
//! one series-day back after compaction.

use std::num::NonZeroUsize;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tidemark_storage::{Db, FsyncMode, Labels, MatchOp, Matcher, Options, SeriesId, WriteBatch};

const SERIES: usize = 10_000;
const BATCH: usize = 10_000;

fn open(dir: &std::path::Path, fsync: FsyncMode) -> Db {
    Db::open(
        dir,
        Options {
            fsync,
            shards: NonZeroUsize::new(2).unwrap(),
            compact_interval: Duration::ZERO,
            ..Options::default()
        },
    )
    .unwrap()
}

fn series(db: &Db) -> Vec<SeriesId> {
    let labels: Vec<Labels> = (0..SERIES)
        .map(|i| {
            Labels::metric(
                "http_requests_total",
                [
                    ("host", format!("host-{}", i / 50)),
                    ("service", format!("svc-{}", i % 50)),
                    ("job", "api".to_string()),
                ],
            )
        })
        .collect();
    db.resolve_many(&labels).unwrap()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(BATCH as u64));
    for fsync in [FsyncMode::Never, FsyncMode::Batch] {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), fsync);
        let ids = series(&db);
        let mut batch = WriteBatch::with_capacity(BATCH);
        let mut ts = 0i64;
        // Pipelined like a real producer: keep a few batches in flight.
        g.bench_function(
            BenchmarkId::new("submit_wait_pipelined4", format!("{fsync:?}")),
            |b| {
                let mut inflight = std::collections::VecDeque::new();
                b.iter(|| {
                    batch.clear();
                    ts += 10_000;
                    for (i, id) in ids.iter().cycle().take(BATCH).enumerate() {
                        batch.push(*id, ts, (i % 1000) as f64 * 0.25);
                    }
                    inflight.push_back(db.submit(&batch).unwrap());
                    if inflight.len() > 4 {
                        inflight.pop_front().unwrap().wait().unwrap();
                    }
                });
                for t in inflight.drain(..) {
                    t.wait().unwrap();
                }
            },
        );
        db.close().unwrap();
    }
    g.finish();
}

fn select_and_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), FsyncMode::Never);
    let ids = series(&db);
    // One day at 10 s for the first 100 series, flushed and compacted.
    let mut batch = WriteBatch::with_capacity(BATCH);
    for step in 0..8_640i64 {
        for (i, id) in ids[..100].iter().enumerate() {
            batch.push(*id, step * 10_000, (step as f64 * 0.5 + i as f64).round());
        }
        if batch.len() >= BATCH {
            db.append(&batch).unwrap();
            batch.clear();
        }
    }
    db.append(&batch).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();

    let mut g = c.benchmark_group("select");
    let by_host = [
        Matcher::equal("__name__", "http_requests_total"),
        Matcher::equal("host", "host-7"),
    ];
    g.bench_function("eq_eq_50_of_10k", |b| {
        b.iter(|| assert_eq!(db.select(&by_host).len(), 50))
    });
    let by_regex = [
        Matcher::equal("__name__", "http_requests_total"),
        Matcher::new("service", MatchOp::Regex, "svc-(1|2|3)").unwrap(),
    ];
    g.bench_function("eq_regex_600_of_10k", |b| {
        b.iter(|| assert_eq!(db.select(&by_regex).len(), 600))
    });
    g.finish();

    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(8_640));
    g.bench_function("one_series_day_compacted", |b| {
        b.iter(|| {
            let got = db.read(&ids[..1], 0, 86_400_000).unwrap();
            assert_eq!(got[0].1.len(), 8_640);
        })
    });
    g.finish();
    db.close().unwrap();
}

criterion_group!(benches, append, select_and_read);
criterion_main!(benches);
