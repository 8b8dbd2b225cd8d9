//! Retention that frees disk: a raw size cap (oldest windows go, never the
//! newest), per-series overrides by label matchers (longer and shorter
//! than the default, applied by rewriting windows without the expired
//! series), and age-based expiry waiting for the rollup tiers.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use tidemark_storage::{
    Db, Labels, MatchOp, Matcher, Options, RetentionOverride, SeriesId, WriteBatch,
};

const DAY: i64 = 86_400_000;
const STEP: i64 = 60_000;

fn open(dir: &Path, tweak: impl FnOnce(&mut Options)) -> Db {
    let mut o = Options {
        shards: NonZeroUsize::new(1).unwrap(),
        compact_interval: Duration::ZERO,
        tiers: Vec::new(),
        ..Options::default()
    };
    tweak(&mut o);
    Db::open(dir, o).unwrap()
}

/// `days` days of one sample a minute for each of `names`, flushed and
/// compacted into one sealed window per day.
fn load(db: &Db, names: &[&str], days: i64) -> Vec<SeriesId> {
    let labels: Vec<Labels> = names
        .iter()
        .map(|n| Labels::metric(n, [("job", "x")]))
        .collect();
    let ids = db.resolve_many(&labels).unwrap();
    let mut batch = WriteBatch::new();
    for t in (0..days * DAY).step_by(STEP as usize) {
        for (i, id) in ids.iter().enumerate() {
            batch.push(*id, t, (t / STEP) as f64 + i as f64 * 0.37);
        }
        if batch.len() >= 10_000 {
            db.append(&batch).unwrap();
            batch.clear();
        }
    }
    db.append(&batch).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    ids
}

fn raw_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("raw"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// The days (window indexes) series `id` still has samples in.
fn days_with_data(db: &Db, id: SeriesId, days: i64) -> Vec<i64> {
    let got = db.read(&[id], 0, days * DAY).unwrap();
    let mut out: Vec<i64> = got[0].1.iter().map(|s| s.ts / DAY).collect();
    out.dedup();
    out
}

#[test]
fn size_cap_drops_oldest_windows_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), |_| {});
    let ids = load(&db, &["a", "b", "c"], 5);
    let before = raw_bytes(dir.path());
    let per_day = before / 5;
    // Room for a bit more than two days.
    let cap = per_day * 2 + per_day / 2;
    drop(db);
    let db = open(dir.path(), |o| o.retention_max_bytes = Some(cap));
    let r = db.apply_retention(5 * DAY).unwrap();
    assert_eq!(r.windows_dropped, 3, "{r:?}");
    let after = raw_bytes(dir.path());
    assert!(after <= cap, "{after} > cap {cap}");
    assert!(after < before / 2, "directory shrank: {before} -> {after}");
    assert_eq!(days_with_data(&db, ids[0], 5), vec![3, 4]);
    // A cap smaller than one window still keeps the newest.
    drop(db);
    let db = open(dir.path(), |o| o.retention_max_bytes = Some(1));
    db.apply_retention(5 * DAY).unwrap();
    assert_eq!(days_with_data(&db, ids[2], 5), vec![4]);
}

#[test]
fn overrides_keep_some_series_longer_and_drop_others_sooner() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), |_| {});
    let ids = load(
        &db,
        &[
            "recovery_attempts_total",
            "http_requests_total",
            "debug_trace",
        ],
        5,
    );
    let before = raw_bytes(dir.path());
    drop(db);
    let db = open(dir.path(), |o| {
        o.retention = Some(Duration::from_millis(2 * DAY as u64));
        o.retention_overrides = vec![
            RetentionOverride {
                matchers: vec![Matcher::new("__name__", MatchOp::Regex, "recovery_.*").unwrap()],
                retention: Duration::from_millis(10 * DAY as u64),
            },
            RetentionOverride {
                matchers: vec![Matcher::equal("__name__", "debug_trace")],
                retention: Duration::from_secs(3600),
            },
        ];
    });
    let r = db.apply_retention(5 * DAY).unwrap();
    // Days 0-2 expire for http (ends ≤ 3d); days 0-3 for debug (ends ≤ 5d - 1h).
    assert_eq!(days_with_data(&db, ids[0], 5), vec![0, 1, 2, 3, 4]);
    assert_eq!(days_with_data(&db, ids[1], 5), vec![3, 4]);
    assert_eq!(days_with_data(&db, ids[2], 5), vec![4]);
    assert_eq!(
        r.windows_dropped, 0,
        "recovery data keeps every window: {r:?}"
    );
    assert_eq!(r.windows_rewritten, 4, "{r:?}");
    assert_eq!(r.series_removed, 3 * 2 + 1, "{r:?}");
    let after = raw_bytes(dir.path());
    assert!(
        after < before * 2 / 3,
        "rewrites freed space: {before} -> {after}"
    );
    // The rewrite survives a reopen, and a second pass has nothing to do.
    drop(db);
    let db = open(dir.path(), |o| {
        o.retention = Some(Duration::from_millis(2 * DAY as u64))
    });
    assert_eq!(days_with_data(&db, ids[1], 5), vec![3, 4]);
    assert_eq!(days_with_data(&db, ids[0], 5), vec![0, 1, 2, 3, 4]);
    // Without the override, recovery data now expires like the rest.
    let r = db.apply_retention(5 * DAY).unwrap();
    assert_eq!(r.windows_dropped, 3, "{r:?}");
    assert_eq!(days_with_data(&db, ids[0], 5), vec![3, 4]);
}

#[test]
fn age_expiry_waits_for_the_first_tier() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), |o| {
        o.tiers = tidemark_storage::TierSpec::defaults()
    });
    let ids = load(&db, &["a"], 3);
    drop(db);
    let db = open(dir.path(), |o| {
        o.tiers = tidemark_storage::TierSpec::defaults();
        o.retention = Some(Duration::from_millis(DAY as u64));
    });
    let r = db.apply_retention(3 * DAY).unwrap();
    assert_eq!(r.windows_dropped, 0, "nothing rolled up yet: {r:?}");
    assert_eq!(days_with_data(&db, ids[0], 3), vec![0, 1, 2]);
    db.rollup_until(3 * DAY).unwrap();
    let r = db.apply_retention(3 * DAY).unwrap();
    assert_eq!(r.windows_dropped, 2, "{r:?}");
    assert_eq!(days_with_data(&db, ids[0], 3), vec![2]);
    // The 1m tier still answers for the dropped days.
    let pts = db.read_rollup("1m", &ids, 0, DAY - 1).unwrap().unwrap();
    assert_eq!(pts[0].1.len(), 1440, "a day of 1m buckets");
}

#[test]
fn tier_size_cap_drops_oldest_rollup_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), |o| {
        o.tiers = tidemark_storage::TierSpec::defaults()
    });
    let ids = load(&db, &["a", "b"], 5);
    db.rollup_until(5 * DAY).unwrap();
    let files = |db: &Db| {
        let t = db.inspect_tiers().unwrap();
        let m = t.iter().find(|t| t.name == "1m").unwrap();
        (m.partitions, m.bytes)
    };
    let (n, bytes) = files(&db);
    assert_eq!(n, 5, "one 1m file a day");
    drop(db);
    let cap = bytes / 5 * 2 + bytes / 10;
    let db = open(dir.path(), |o| {
        let mut tiers = tidemark_storage::TierSpec::defaults();
        tiers[0].max_bytes = Some(cap);
        o.tiers = tiers;
    });
    assert_eq!(db.apply_tier_retention(5 * DAY).unwrap(), 3);
    let (n, after) = files(&db);
    assert_eq!(n, 2);
    assert!(after <= cap, "{after} > {cap}");
    let old = db.read_rollup("1m", &ids, 0, DAY - 1).unwrap().unwrap();
    assert!(old.iter().all(|(_, p)| p.is_empty()), "day 0 dropped");
    let new = db
        .read_rollup("1m", &ids, 4 * DAY, 5 * DAY - 1)
        .unwrap()
        .unwrap();
    assert_eq!(new[0].1.len(), 1440);
}
