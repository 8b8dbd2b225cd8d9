//! Tier-aware queries on a generated year of data (three series at 60 s:
//! a regular counter with resets, a gauge, and a counter whose samples
//! jitter inside their minute), rolled up into the default `1m` and `1h`
//! tiers:
//! - at bucket-aligned windows, `min/max/sum/count/avg/last_over_time`,
//!   `increase`, instant selectors, and `rate` of regularly spaced samples
//!   over rollups (forced `1h` and `1m` tiers) equal the same queries over
//!   raw samples within 1e-9 relative (float summation order);
//! - `rate` of the jittered counter stays within one sample interval over
//!   the range (60 s / 1 h = 1/60) of raw;
//! - once raw data older than 15 days is dropped (retention), the planner
//!   answers a year at a 1 h step from rollups alone (the source's read
//!   counter shows no raw sample), with the answers raw gave before;
//! - over HTTP, `tier=` forces a tier and an unknown tier is a 400 naming it.
//!
//! Samples sit 7 s past the minute: none lies on a window boundary, where
//! Prometheus 2.42's closed windows would count it in two windows.

mod common;

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use tidemark::source::{DbSource, TierChoice};
use tidemark_query::{EvalOptions, Series, eval_range, parse};
use tidemark_storage::{Db, FsyncMode, Labels, Options, TierSpec, WriteBatch};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z.
const Y0: i64 = 1_735_689_600_000;
const DAYS: i64 = 365;

fn options() -> Options {
    Options {
        fsync: FsyncMode::Never,
        shards: NonZeroUsize::new(2).unwrap(),
        ooo_window: Duration::from_secs(400 * 86_400),
        compact_interval: Duration::ZERO,
        tiers: TierSpec::defaults(),
        ..Options::default()
    }
}

/// Writes the year, compacts and rolls up everything.
fn year_db(dir: &std::path::Path) -> Db {
    let db = Db::open(dir, options()).unwrap();
    let id = |name: &str| {
        db.resolve(&Labels::from_pairs([("__name__", name)]))
            .unwrap()
    };
    let (c, g, j) = (id("c_total"), id("g"), id("j_total"));
    let (mut cv, mut jv) = (1e6, 1e6);
    let mut b = WriteBatch::with_capacity(3 * 10_000);
    for i in 0..DAYS * DAY / MIN {
        let t = Y0 + i * MIN + 7_000;
        // Resets to a value far from 0: Prometheus's "counter started at
        // zero" shortening of the extrapolation does not apply.
        cv = if i % 50_000 == 49_999 {
            5e4
        } else {
            cv + (i % 17) as f64
        };
        jv = if i % 70_000 == 69_999 {
            8e4
        } else {
            jv + (i % 5) as f64 * 2.5
        };
        b.push(c, t, cv);
        b.push(g, t, ((i * 7919) % 2000) as f64 / 8.0 - 100.0);
        // Jitter: anywhere in [3 s, 55 s] past the minute.
        b.push(j, Y0 + i * MIN + 3_000 + (i * 37 % 53) * 1_000, jv);
        if b.len() >= 30_000 {
            db.append(&b).unwrap();
            b.clear();
        }
    }
    db.append(&b).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    let r = db.rollup_until(i64::MAX).unwrap();
    assert_eq!(r.raw_samples, 3 * (DAYS * DAY / MIN) as u64);
    db
}

fn run(src: &DbSource<'_>, q: &str, start: i64, end: i64, step: i64) -> Vec<Series> {
    eval_range(
        src,
        &parse(q).unwrap(),
        start,
        end,
        step,
        &EvalOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn with(db: &Db, tier: TierChoice) -> DbSource<'_> {
    DbSource::new(db, 1000).with_tier(tier)
}

/// Largest relative difference; panics when the shapes differ.
fn max_rel_diff(q: &str, got: &[Series], want: &[Series]) -> f64 {
    assert_eq!(got.len(), want.len(), "{q}: series");
    let mut worst = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.labels, w.labels, "{q}");
        assert_eq!(g.samples.len(), w.samples.len(), "{q} {}: points", g.labels);
        for (a, b) in g.samples.iter().zip(&w.samples) {
            assert_eq!(a.0, b.0, "{q}: timestamps");
            let d = (a.1 - b.1).abs() / a.1.abs().max(b.1.abs()).max(1.0);
            worst = worst.max(d);
        }
    }
    worst
}

const EXACT: [&str; 11] = [
    "max_over_time(g[1h])",
    "min_over_time(g[1d])",
    "sum_over_time(g[1h])",
    "count_over_time(j_total[1d])",
    "avg_over_time(g[1d])",
    "last_over_time(c_total[1h])",
    "increase(c_total[1h])",
    "increase(c_total[1d])",
    "rate(c_total[1h])",
    "c_total",
    "sum(rate(c_total[1d]))",
];

#[test]
fn a_year_from_rollups_matches_raw_and_reads_no_raw_sample() {
    let dir = tempfile::tempdir().unwrap();
    let db = year_db(dir.path());
    let end = Y0 + DAYS * DAY;
    // Start a day in, so `[1d]` windows are full.
    let start = Y0 + DAY;
    let raw = with(&db, TierChoice::Raw);
    let h1 = with(&db, TierChoice::Tier("1h".into()));
    let mut want = Vec::new();
    for q in EXACT {
        let w = run(&raw, q, start, end, HOUR);
        assert!(!w.is_empty(), "{q}: no raw answer");
        let d = max_rel_diff(q, &run(&h1, q, start, end, HOUR), &w);
        assert!(d <= 1e-9, "{q}: 1h tier differs from raw by {d:e}");
        want.push(w);
    }
    assert_eq!(raw.reads().rollup_points, 0);
    // The 1m tier over a month at a 1 h step, likewise.
    let m1 = with(&db, TierChoice::Tier("1m".into()));
    for q in EXACT {
        let w = run(&raw, q, end - 30 * DAY, end, HOUR);
        let d = max_rel_diff(q, &run(&m1, q, end - 30 * DAY, end, HOUR), &w);
        assert!(d <= 1e-9, "{q}: 1m tier differs from raw by {d:e}");
    }
    // Irregular spacing: rate within one sample interval over the range.
    for (q, bound) in [
        ("rate(j_total[1h])", 1.0 / 60.0),
        ("rate(j_total[1d])", 1.0 / 1440.0),
    ] {
        let w = run(&raw, q, start, end, HOUR);
        let d = max_rel_diff(q, &run(&h1, q, start, end, HOUR), &w);
        println!("{q}: 1h tier vs raw, largest relative difference {d:.2e} (bound {bound:.2e})");
        assert!(
            d <= bound,
            "{q}: 1h tier differs from raw by {d}, bound {bound}"
        );
        assert!(d > 0.0, "{q}: jitter should make extrapolation differ");
    }

    // Raw retention: only the last 15 days stay raw.
    assert!(db.drop_before(end - 15 * DAY).unwrap() > 300);
    let auto = with(&db, TierChoice::Auto);
    let started = Instant::now();
    let got = run(&auto, "max_over_time(g[1h])", start, end, HOUR);
    let elapsed = started.elapsed();
    assert_eq!(
        auto.reads().raw_samples,
        0,
        "a year at 1h step read raw samples"
    );
    let points = auto.reads().rollup_points;
    // 1h buckets for 350 days, 1m buckets for the last 15.
    assert!(
        points > 0 && points < 350 * 24 + 15 * 1440 + 100,
        "{points} rollup points"
    );
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("year at 1h step from rollups: {points} points read in {elapsed:?} ({build} build)");
    let d = max_rel_diff("auto max_over_time", &got, &want[0]);
    assert!(d <= 1e-9, "{d:e}");
    for (q, w) in EXACT.iter().zip(&want) {
        let auto = with(&db, TierChoice::Auto);
        let started = Instant::now();
        let got = run(&auto, q, start, end, HOUR);
        println!("  {q}: {:?}", started.elapsed());
        let d = max_rel_diff(q, &got, w);
        assert!(d <= 1e-9, "{q}: stitched tiers differ from raw by {d:e}");
        assert_eq!(auto.reads().raw_samples, 0, "{q}");
    }
    // A fine step over the last day still reads raw samples only.
    let fine = with(&db, TierChoice::Auto);
    run(&fine, "rate(c_total[5m])", end - DAY, end, MIN);
    assert!(fine.reads().raw_samples > 0);
    assert_eq!(fine.reads().rollup_points, 0);
}

#[test]
fn tier_parameter_forces_a_tier_and_names_unknown_ones() {
    // The real server over a Db with the default tiers (the shared test
    // helper opens its Db without tiers).
    let dir = tempfile::tempdir().unwrap();
    let db = std::sync::Arc::new(Db::open(dir.path(), options()).unwrap());
    let mut cfg = tidemark::config::Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.storage.data_dir = dir.path().to_path_buf();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt
        .block_on(tidemark::server::start(db.clone(), cfg))
        .unwrap();
    let addr = running.addr;
    let id = db
        .resolve(&Labels::from_pairs([("__name__", "up")]))
        .unwrap();
    let mut b = WriteBatch::new();
    for i in 0..(2 * DAY / MIN) {
        b.push(id, Y0 + i * MIN + 7_000, (i % 10) as f64);
    }
    db.append(&b).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    db.rollup_until(Y0 + 2 * DAY).unwrap();
    let (s, e) = ((Y0 + DAY) / 1000, (Y0 + 2 * DAY) / 1000);
    let q = |tier: &str| {
        common::get(
            addr,
            &format!(
                "/api/v1/query_range?query=max_over_time(up[1h])&start={s}&end={e}&step=3600{tier}"
            ),
        )
    };
    let values = |r: common::Response| -> Vec<serde_json::Value> {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"]["result"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let raw = values(q("&tier=raw"));
    assert_eq!(raw.len(), 25);
    assert_eq!(values(q("&tier=1h")), raw);
    assert_eq!(values(q("&tier=1m")), raw);
    assert_eq!(values(q("")), raw);
    let bad = q("&tier=5m");
    assert_eq!(bad.status, 400, "{}", bad.text());
    let msg = bad.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("tier") && msg.contains("5m") && msg.contains("1h"),
        "{msg}"
    );
    rt.block_on(running.shutdown()).unwrap();
}

#[test]
fn rollup_and_inspect_commands_on_a_stopped_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        let id = db
            .resolve(&Labels::from_pairs([("__name__", "up")]))
            .unwrap();
        let mut b = WriteBatch::new();
        for i in 0..(2 * DAY / MIN) {
            b.push(id, Y0 + i * MIN + 7_000, (i % 10) as f64);
        }
        db.append(&b).unwrap();
        db.close().unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_tidemark");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let d = dir.path().to_str().unwrap();
    let r = run(&["rollup", d, "--json"]);
    // Two raw days -> two 1m windows and the 30-day 1h window(s) holding them.
    assert_eq!(r["raw_samples"], 2 * DAY / MIN);
    assert!(r["windows_built"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(run(&["rollup", d, "--json"])["windows_built"], 0);
    let inspect = run(&["inspect", d, "--json"]);
    let tiers = inspect["tiers"].as_array().unwrap();
    let names: Vec<&str> = tiers.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["raw", "1m", "1h"]);
    for t in tiers {
        assert_eq!(t["covered_samples"], 2 * DAY / MIN, "{t}");
        assert!(t["bytes"].as_u64().unwrap() > 0, "{t}");
    }
    assert_eq!(tiers[1]["points"], 2 * DAY / MIN);
    assert_eq!(tiers[2]["points"], 48);
}

#[test]
fn background_maintenance_rolls_up_history_before_retention_drops_it() {
    // Two days from 2025-01: closed whatever the wall clock says, older
    // than raw (15 d) and 1m (90 d) retention, younger than 1h (5 y). The
    // maintenance thread must compact, roll up through both tiers, and
    // only then expire raw and 1m. No clock is mocked: nothing here depends
    // on when the thread runs, only that it eventually has (polled).
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        compact_interval: Duration::from_millis(100),
        retention: Some(Duration::from_secs(15 * 86_400)),
        ..options()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let id = db
        .resolve(&Labels::from_pairs([("__name__", "up")]))
        .unwrap();
    let mut b = WriteBatch::new();
    for i in 0..(2 * DAY / MIN) {
        b.push(id, Y0 + i * MIN + 7_000, (i % 10) as f64);
    }
    db.append(&b).unwrap();
    db.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = |db: &Db| {
        let t = db.tiers();
        db.raw_start().is_none() && t[0].coverage.is_empty() && !t[1].coverage.is_empty()
    };
    while !done(&db) {
        assert!(
            Instant::now() < deadline,
            "maintenance did not finish: {:?}",
            db.tiers()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(db.tiers()[1].coverage, vec![(Y0, Y0 + 2 * DAY)]);
    let src = with(&db, TierChoice::Auto);
    let got = run(&src, "max_over_time(up[1h])", Y0 + HOUR, Y0 + 2 * DAY, HOUR);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples.len(), 48);
    assert!(got[0].samples.iter().all(|s| s.1 == 9.0));
    assert_eq!(src.reads().raw_samples, 0);
}
