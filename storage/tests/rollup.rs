//! Rollup tiers end to end through `Db`: raw partitions sealed by
//! compaction are rolled up into `1m` and `1h`; every bucket is checked
//! against a naive model computed here from the samples written (group by
//! bucket, then min/max/sum/count/first/last and pairwise counter increase).
//! Also: late data rebuilds the affected windows, crash leftovers never
//! double a bucket, retention frees disk, carried buckets survive a source
//! that retention removed, and bad tier specs are refused by name.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use tidemark_storage::{
    Db, Error, FsyncMode, Labels, Options, RollupPoint, SeriesId, TierSpec, WriteBatch,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// A day start far in the past (2023-11-14), so every window is closed.
const T0: i64 = 1_699_920_000_000;
const STALE: u64 = 0x7ff0_0000_0000_0002;

fn tiers(retention_1m: Option<Duration>) -> Vec<TierSpec> {
    vec![
        TierSpec {
            name: "1m".into(),
            resolution: Duration::from_secs(60),
            retention: retention_1m,
            partition: None,
            max_bytes: None,
        },
        TierSpec {
            name: "1h".into(),
            resolution: Duration::from_secs(3600),
            retention: None,
            partition: Some(Duration::from_secs(10 * 86_400)),
            max_bytes: None,
        },
    ]
}

fn options(tiers: Vec<TierSpec>) -> Options {
    Options {
        fsync: FsyncMode::Never,
        shards: NonZeroUsize::new(2).unwrap(),
        ooo_window: Duration::from_secs(400 * 86_400),
        compact_interval: Duration::ZERO,
        tiers,
        ..Options::default()
    }
}

fn open(dir: &Path, retention_1m: Option<Duration>) -> Db {
    Db::open(dir, options(tiers(retention_1m))).unwrap()
}

fn series(db: &Db, name: &str) -> SeriesId {
    db.resolve(&Labels::from_pairs([("__name__", name)]))
        .unwrap()
}

/// A counter with resets (every 2,000 samples) and a gauge with NaN and
/// stale markers, every 10 s plus 3 s jitter-free offset, over `days`.
type Samples = Vec<(i64, f64)>;

fn generate(from: i64, days: i64) -> (Samples, Samples) {
    let (mut counter, mut gauge) = (Vec::new(), Vec::new());
    let mut c = 1000.0;
    for i in 0..(days * DAY / 10_000) {
        let ts = from + i * 10_000 + 3_000;
        c = if i % 2000 == 1999 {
            (i % 7) as f64
        } else {
            c + (i % 13) as f64 * 0.5
        };
        counter.push((ts, c));
        let g = match i % 97 {
            5 => f64::from_bits(STALE),
            11 => f64::NAN,
            _ => ((i * 37) % 1000) as f64 / 10.0 - 30.0,
        };
        gauge.push((ts, g));
    }
    (counter, gauge)
}

fn write(db: &Db, id: SeriesId, samples: &[(i64, f64)]) {
    for part in samples.chunks(5000) {
        let mut b = WriteBatch::new();
        for &(t, v) in part {
            b.push(id, t, v);
        }
        db.append(&b).unwrap();
    }
}

/// The naive model: buckets of `res` over non-NaN samples.
fn model(samples: &[(i64, f64)], res: i64) -> Vec<RollupPoint> {
    let mut by: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for &(t, v) in samples {
        if !v.is_nan() {
            by.entry(t.div_euclid(res) * res).or_default().push(v);
        }
    }
    by.into_iter()
        .map(|(start, vs)| {
            let mut inc = 0.0;
            for w in vs.windows(2) {
                inc += if w[1] < w[0] { w[1] } else { w[1] - w[0] };
            }
            RollupPoint {
                start,
                min: vs.iter().copied().fold(f64::INFINITY, f64::min),
                max: vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                sum: vs.iter().sum(),
                count: vs.len() as u64,
                first: vs[0],
                last: vs[vs.len() - 1],
                increase: inc,
            }
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_points(got: &[RollupPoint], want: &[RollupPoint], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: bucket count");
    for (g, w) in got.iter().zip(want) {
        let ok = g.start == w.start
            && g.count == w.count
            && g.min == w.min
            && g.max == w.max
            && g.first == w.first
            && g.last == w.last
            && close(g.sum, w.sum)
            && close(g.increase, w.increase);
        assert!(ok, "{what}: got {g:?}, want {w:?}");
    }
}

fn read(db: &Db, tier: &str, id: SeriesId) -> Vec<RollupPoint> {
    let mut r = db
        .read_rollup(tier, &[id], i64::MIN, i64::MAX)
        .unwrap()
        .unwrap();
    r.pop().unwrap().1
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn rollups_equal_the_model_for_both_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), None);
    let (cid, gid) = (series(&db, "c_total"), series(&db, "g"));
    let (counter, gauge) = generate(T0, 3);
    write(&db, cid, &counter);
    write(&db, gid, &gauge);
    db.flush().unwrap();
    // Nothing is rolled up before compaction seals the raw windows.
    assert_eq!(db.rollup_until(i64::MAX).unwrap().windows_built, 0);
    db.compact().unwrap();
    let r = db.rollup_until(T0 + 3 * DAY).unwrap();
    // 3 raw days -> 3 windows of 1m; they share one 10-day 1h window.
    assert_eq!(r.windows_built, 4);
    assert_eq!(r.raw_samples, (counter.len() + gauge.len()) as u64);
    assert_points(&read(&db, "1m", cid), &model(&counter, MIN), "1m counter");
    assert_points(&read(&db, "1m", gid), &model(&gauge, MIN), "1m gauge");
    assert_points(&read(&db, "1h", cid), &model(&counter, HOUR), "1h counter");
    assert_points(&read(&db, "1h", gid), &model(&gauge, HOUR), "1h gauge");
    // A reset bucket: the increase counts the post-reset value.
    let reset_at = counter
        .windows(2)
        .find(|w| w[1].1 < w[0].1 && w[0].0 / MIN == w[1].0 / MIN)
        .unwrap();
    let p = read(&db, "1m", cid)
        .into_iter()
        .find(|p| p.start == reset_at[1].0 / MIN * MIN)
        .unwrap();
    assert!(p.increase >= reset_at[1].1, "{p:?}");
    // A second run finds nothing to do; a reopen keeps the same answers.
    assert_eq!(db.rollup_until(T0 + 3 * DAY).unwrap().windows_built, 0);
    let info = db.tiers();
    assert_eq!(info[0].coverage, vec![(T0, T0 + 3 * DAY)]);
    assert_eq!(info[1].coverage, vec![(T0, T0 + 3 * DAY)]);
    drop(db);
    let db = open(dir.path(), None);
    assert_points(
        &read(&db, "1h", cid),
        &model(&counter, HOUR),
        "1h after reopen",
    );
    assert_eq!(db.rollup_until(T0 + 3 * DAY).unwrap().windows_built, 0);
    // A window that is not closed yet is not rolled up.
    let (c2, _) = generate(T0 + 3 * DAY, 1);
    write(&db, cid, &c2);
    db.flush().unwrap();
    db.compact().unwrap();
    assert_eq!(db.rollup_until(T0 + 3 * DAY).unwrap().windows_built, 0);
    assert_eq!(db.rollup_until(T0 + 4 * DAY).unwrap().windows_built, 2);
}

#[test]
fn late_data_rebuilds_the_window_and_the_coarser_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), None);
    let cid = series(&db, "c_total");
    let (mut counter, _) = generate(T0, 2);
    write(&db, cid, &counter);
    db.flush().unwrap();
    db.compact().unwrap();
    db.rollup_until(i64::MAX).unwrap();
    // Late samples into day 1: a new bucket value and a new sample.
    let late = [
        (T0 + DAY + 5 * MIN + 3_000, 1e6),
        (T0 + DAY + 5 * MIN + 7_000, 2e6),
    ];
    write(&db, cid, &late);
    for l in late {
        match counter.binary_search_by_key(&l.0, |s| s.0) {
            Ok(i) => counter[i] = l,
            Err(i) => counter.insert(i, l),
        }
    }
    db.flush().unwrap();
    // The window holds a delta now: not sealed, so nothing is rebuilt yet.
    assert_eq!(db.rollup_until(i64::MAX).unwrap().windows_built, 0);
    db.compact().unwrap();
    let r = db.rollup_until(i64::MAX).unwrap();
    assert_eq!(r.windows_built, 2, "the day's 1m window and its 1h window");
    assert_eq!(r.raw_samples, (DAY / 10_000 + 1) as u64);
    assert_points(
        &read(&db, "1m", cid),
        &model(&counter, MIN),
        "1m after late data",
    );
    assert_points(
        &read(&db, "1h", cid),
        &model(&counter, HOUR),
        "1h after late data",
    );
}

#[test]
fn crash_leftovers_never_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let (counter, _) = generate(T0, 2);
    let total = counter.len() as u64;
    {
        let db = open(dir.path(), None);
        let cid = series(&db, "c_total");
        write(&db, cid, &counter);
        db.flush().unwrap();
        db.compact().unwrap();
        db.rollup_until(i64::MAX).unwrap();
    }
    let m1 = dir.path().join("1m");
    let h1 = dir.path().join("1h");
    let first = format!("{T0}-1.tmr");
    // Crash after a new generation was renamed in but before the old one
    // was deleted: both generations on disk. And a crash mid-write: a
    // partial `.tmp` file.
    std::fs::copy(m1.join(&first), m1.join(format!("{T0}-2.tmr"))).unwrap();
    std::fs::write(m1.join(format!("{T0}-3.tmr.tmp")), b"half written").unwrap();
    assert_eq!(std::fs::read_dir(&h1).unwrap().count(), 1);

    let db = open(dir.path(), None);
    let cid = series(&db, "c_total");
    let names: Vec<String> = std::fs::read_dir(&m1)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.contains(&first), "old generation removed: {names:?}");
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    let r = db.rollup_until(i64::MAX).unwrap();
    // The 1h window sees the 1m window under a generation it never
    // recorded (2) and is rebuilt once; the 1m tier has nothing to do.
    assert_eq!(r.windows_built, 1);
    for tier in ["1m", "1h"] {
        let counted: u64 = read(&db, tier, cid).iter().map(|p| p.count).sum();
        assert_eq!(counted, total, "{tier}: every raw sample counted once");
    }
    assert_points(&read(&db, "1h", cid), &model(&counter, HOUR), "1h rebuilt");
}

#[test]
fn retention_frees_disk_and_coarser_tiers_keep_carried_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), Some(Duration::from_secs(86_400)));
    let cid = series(&db, "c_total");
    let (mut counter, _) = generate(T0, 3);
    write(&db, cid, &counter);
    db.flush().unwrap();
    db.compact().unwrap();
    db.rollup_until(i64::MAX).unwrap();
    let before = dir_bytes(&dir.path().join("1m"));
    // Raw keeps the last day only, 1m keeps one day past its window end.
    assert_eq!(db.drop_before(T0 + 2 * DAY).unwrap(), 2);
    assert_eq!(db.apply_tier_retention(T0 + 3 * DAY).unwrap(), 2);
    let after = dir_bytes(&dir.path().join("1m"));
    assert!(after * 2 < before, "1m dir {before} -> {after} bytes");
    assert_eq!(db.tiers()[0].coverage, vec![(T0 + 2 * DAY, T0 + 3 * DAY)]);
    // Late data in day 2 rebuilds the 1h window, whose days 0 and 1 now
    // exist only in the 1h file itself: they are carried over.
    let late = [(T0 + 2 * DAY + 9 * HOUR + 1_000, 5e5)];
    write(&db, cid, &late);
    let i = counter.partition_point(|s| s.0 < late[0].0);
    counter.insert(i, late[0]);
    db.flush().unwrap();
    db.compact().unwrap();
    assert_eq!(db.rollup_until(i64::MAX).unwrap().windows_built, 2);
    assert_points(
        &read(&db, "1h", cid),
        &model(&counter, HOUR),
        "1h with carried days",
    );
    assert_eq!(db.tiers()[1].coverage, vec![(T0, T0 + 3 * DAY)]);
}

#[test]
fn bad_tier_specs_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |name: &str, secs: u64| TierSpec {
        name: name.into(),
        resolution: Duration::from_secs(secs),
        retention: None,
        partition: None,
        max_bytes: None,
    };
    let cases = [
        (vec![spec("raw", 60)], "raw"),
        (vec![spec("1m", 60), spec("1m", 3600)], "twice"),
        (vec![spec("1h", 3600), spec("1m", 60)], "1m"),
        (vec![spec("7m", 420)], "7m"),
        (vec![spec("Big", 60)], "Big"),
    ];
    for (tiers, needle) in cases {
        let err = match Db::open(dir.path(), options(tiers.clone())) {
            Err(e) => e,
            Ok(_) => panic!("{tiers:?} accepted"),
        };
        assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
        assert!(
            err.to_string().contains(needle),
            "{err} should name {needle}"
        );
    }
    // Tiers can be removed and added by configuration.
    let db = Db::open(dir.path(), options(Vec::new())).unwrap();
    assert!(db.tiers().is_empty());
    drop(db);
    let db = Db::open(dir.path(), options(vec![spec("5m", 300)])).unwrap();
    assert_eq!(db.tiers()[0].resolution_ms, 300_000);
    let id = db
        .resolve(&Labels::from_pairs([("__name__", "x")]))
        .unwrap();
    write(&db, id, &[(T0, 1.0)]);
    db.flush().unwrap();
    db.compact().unwrap();
    assert_eq!(db.rollup_until(i64::MAX).unwrap().windows_built, 1);
    drop(db);
    // The same name at another resolution: refused, the files stay.
    let err = match Db::open(dir.path(), options(vec![spec("5m", 600)])) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a changed resolution was accepted"),
    };
    assert!(err.contains("tier 5m") && err.contains("300000"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path().join("5m")).unwrap().count(), 1);
}
