//! The engine against a `BTreeMap` model: random sequences of appends,
//! flushes, compactions and reopens must read back exactly what the model
//! holds (last write wins per timestamp, NaN payloads bit-exact, samples
//! older than the out-of-order window rejected and counted).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use proptest::prelude::*;
use tidemark_storage::{Db, FsyncMode, Labels, MatchOp, Matcher, Options, SeriesId, WriteBatch};

const WINDOW_MS: i64 = 1_000;

fn options(shards: usize) -> Options {
    Options {
        fsync: FsyncMode::Never,
        shards: NonZeroUsize::new(shards).unwrap(),
        ooo_window: Duration::from_millis(WINDOW_MS as u64),
        partition_duration: Duration::from_secs(10),
        compact_interval: Duration::ZERO,
        // Windows narrower than a 1m bucket: no rollup tiers.
        tiers: Vec::new(),
        ..Options::default()
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// (series index, timestamp, value bits)
    Append(Vec<(usize, i64, u64)>),
    Flush,
    Compact,
    Reopen,
}

fn value_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u32..1000).prop_map(|v| (v as f64 / 100.0).to_bits()),
        any::<u64>(),
        Just(0x7ff0_0000_0000_0002u64),
        Just((-0.0f64).to_bits()),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0usize..4, 0i64..40_000, value_bits()), 1..40).prop_map(Op::Append),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

/// The model: per series, timestamp → value bits, plus the newest timestamp
/// ever accepted (which drives the out-of-order window).
#[derive(Default)]
struct Model {
    series: BTreeMap<usize, BTreeMap<i64, u64>>,
    max_ts: BTreeMap<usize, i64>,
}

impl Model {
    fn append(&mut self, s: usize, ts: i64, bits: u64) -> bool {
        let max = self.max_ts.entry(s).or_insert(i64::MIN);
        if ts < max.saturating_sub(WINDOW_MS) {
            return false;
        }
        *max = (*max).max(ts);
        self.series.entry(s).or_default().insert(ts, bits);
        true
    }
}

fn check(db: &Db, ids: &[SeriesId], model: &Model) {
    let got = db.read(ids, i64::MIN, i64::MAX).unwrap();
    for (i, (id, samples)) in got.iter().enumerate() {
        assert_eq!(*id, ids[i]);
        let want: Vec<(i64, u64)> = model
            .series
            .get(&i)
            .map(|m| m.iter().map(|(t, v)| (*t, *v)).collect())
            .unwrap_or_default();
        let have: Vec<(i64, u64)> = samples.iter().map(|s| (s.ts, s.value.to_bits())).collect();
        assert_eq!(have, want, "series {i}");
    }
    // A bounded range returns exactly the model's slice.
    let got = db.read(&ids[..1], 5_000, 20_000).unwrap();
    let want: Vec<(i64, u64)> = model
        .series
        .get(&0)
        .map(|m| m.range(5_000..=20_000).map(|(t, v)| (*t, *v)).collect())
        .unwrap_or_default();
    let have: Vec<(i64, u64)> = got[0].1.iter().map(|s| (s.ts, s.value.to_bits())).collect();
    assert_eq!(have, want, "range read");
}

fn run(ops: Vec<Op>, shards: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(dir.path(), options(shards)).unwrap();
    let labels: Vec<Labels> = (0..4)
        .map(|i| Labels::metric("m", [("i", i.to_string())]))
        .collect();
    let ids = db.resolve_many(&labels).unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(entries) => {
                // The engine applies one batch in order per series, so the
                // model does the same.
                let mut batch = WriteBatch::new();
                let mut accepted = 0;
                for &(s, ts, bits) in &entries {
                    batch.push(ids[s], ts, f64::from_bits(bits));
                    accepted += model.append(s, ts, bits) as u64;
                }
                let outcome = db.append(&batch).unwrap();
                assert_eq!(outcome.accepted, accepted);
                assert_eq!(outcome.too_old, entries.len() as u64 - accepted);
            }
            Op::Flush => db.flush().unwrap(),
            Op::Compact => {
                db.flush().unwrap();
                db.compact().unwrap();
            }
            Op::Reopen => {
                db.close().unwrap();
                db = Db::open(dir.path(), options(shards)).unwrap();
                // After a restart the head no longer knows each series'
                // newest sample, so the window restarts from what arrives.
                model.max_ts.clear();
            }
        }
        check(&db, &ids, &model);
    }
    assert_eq!(db.stats().corrupt_chunks, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_btreemap_model(ops in prop::collection::vec(op(), 1..25), shards in 1usize..4) {
        run(ops, shards);
    }
}

#[test]
fn labels_matchers_and_unknown_series() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options(2)).unwrap();
    let a = db
        .resolve(&Labels::metric("http_requests_total", [("job", "api")]))
        .unwrap();
    let b = db
        .resolve(&Labels::metric("http_requests_total", [("job", "web")]))
        .unwrap();
    let mut batch = WriteBatch::new();
    batch.push(a, 1_000, 1.0);
    batch.push(b, 1_000, 2.0);
    batch.push(SeriesId(999), 1_000, 3.0);
    let outcome = db.append(&batch).unwrap();
    assert_eq!((outcome.accepted, outcome.unknown_series), (2, 1));
    let sel = db.select(&[
        Matcher::equal("__name__", "http_requests_total"),
        Matcher::new("job", MatchOp::Regex, "w.*").unwrap(),
    ]);
    assert_eq!(sel, vec![b]);
    assert_eq!(db.label_values("job"), vec!["api", "web"]);
    assert_eq!(db.labels(a).unwrap().get("job"), Some("api"));
    db.set_metadata("http_requests_total", "counter", "Requests.", "")
        .unwrap();
    assert_eq!(db.metadata().unwrap()[0].1.kind, "counter");
}

#[test]
fn retention_drops_whole_partitions_and_frees_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options(1)).unwrap();
    let id = db.resolve(&Labels::metric("m", [("k", "v")])).unwrap();
    // 10 s partitions: 5 windows of 100 samples each.
    let mut batch = WriteBatch::new();
    for ts in (0..50_000).step_by(100) {
        batch.push(id, ts, ts as f64);
    }
    db.append(&batch).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    let before = db.stats();
    assert_eq!(before.partitions, 5);
    // Windows ending at or before 20 s go: [0, 10 s) and [10 s, 20 s).
    assert_eq!(db.drop_before(25_000).unwrap(), 2);
    let after = db.stats();
    assert_eq!(after.partitions, 3);
    assert!(after.partition_bytes < before.partition_bytes);
    let raw_files = std::fs::read_dir(dir.path().join("raw")).unwrap().count();
    assert_eq!(raw_files, 3, "expired files are deleted from disk");
    let got = db.read(&[id], i64::MIN, i64::MAX).unwrap();
    assert_eq!(got[0].1.first().map(|s| s.ts), Some(20_000));
    assert_eq!(got[0].1.len(), 300);
}
