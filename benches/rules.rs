//! Rule evaluation cost: 1,000 rules over 10,000 series, one round
//! (DESIGN.md's target: under 100 ms on this 2-core machine).
//!
//! Data: 100 metrics × 100 series (`component` c0..c99), 15 s samples for
//! the last 20 minutes: the last 5 minutes in the engine's head, the rest
//! flushed to the partition (a live server flushes its head every 10
//! minutes, so rules read both). Rules: 10 groups of 100, each rule reading one metric's 100
//! series through a different shape — counter rates compared per series,
//! `sum by` aggregations, `avg_over_time` / `max_over_time` gauges — with
//! thresholds that keep a share of alerts firing so the alert state machine
//! and `ALERTS` output are exercised too.
//!
//! - `eval_only`: every group's `RuleGroup::eval` over the engine source,
//!   its selections prefetched in one batch, groups one after the other and
//!   nothing shared between them (each of the 10 groups reads all 10,000
//!   series itself);
//! - `round_sequential`: `RuleManager::eval_group` for every group, one
//!   after the other (including appending the output and saving alert
//!   state): the whole round's work on one thread at a time;
//! - `round`: the same, the way `Scheduler` runs it: every group has its
//!   own task and groups with the same interval come due together at the
//!   same evaluation time, so their `eval_group` calls run at once on the
//!   blocking pool (here: one thread per group) and a selection several
//!   groups make at that time is read once (`SharedReads`: here 10 groups
//!   make 200 distinct selections, 1,000 without sharing).

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

/// The allocator `tidemark serve` runs with (see `src/main.rs`), so the
/// figure is the server's, not glibc malloc's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tidemark::rules::{GroupState, RuleManager, parse_rule_file};
use tidemark::source::{DbSource, LabelCache, Prefetched};
use tidemark_query::EvalOptions;
use tidemark_storage::{Db, Labels, Options, WriteBatch};

const METRICS: usize = 100;
const PER_METRIC: usize = 100;
const RULES: usize = 1_000;
const GROUPS: usize = 10;
const STEP_MS: i64 = 15_000;
const POINTS: i64 = 80;
const NOW_MS: i64 = POINTS * STEP_MS;
/// Samples still in the head at evaluation time: the last 5 minutes, what
/// a live server holds on average with the default 10-minute head flush;
/// older samples are in the partition's delta store.
const HEAD_POINTS: i64 = 20;

fn metric(m: usize) -> String {
    if m.is_multiple_of(2) {
        format!("bench_requests_{m}_total")
    } else {
        format!("bench_gauge_{m}")
    }
}

fn load(db: &Db) {
    let labels: Vec<Labels> = (0..METRICS)
        .flat_map(|m| {
            (0..PER_METRIC).map(move |c| {
                Labels::metric(
                    &metric(m),
                    [("component", format!("c{c}")), ("job", "bench".into())],
                )
            })
        })
        .collect();
    let ids = db.resolve_many(&labels).unwrap();
    for k in 0..=POINTS {
        let mut batch = WriteBatch::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let m = i / PER_METRIC;
            let c = (i % PER_METRIC) as f64;
            let v = if m.is_multiple_of(2) {
                k as f64 * (1.0 + c / 10.0)
            } else {
                c + (k % 7) as f64
            };
            batch.push(*id, k * STEP_MS, v);
        }
        db.append(&batch).unwrap();
        if k == POINTS - HEAD_POINTS {
            db.flush().unwrap();
        }
    }
}

/// The rule file text: `RULES` rules in `GROUPS` groups.
fn rules_yaml() -> String {
    let mut y = String::from("groups:\n");
    for g in 0..GROUPS {
        let _ = writeln!(y, "  - name: bench-{g}\n    interval: 15s\n    rules:");
        for r in 0..RULES / GROUPS {
            let i = g * (RULES / GROUPS) + r;
            let m = i % METRICS;
            let name = metric(m);
            let expr = match (i / METRICS) % 4 {
                0 if m.is_multiple_of(2) => format!("rate({name}[5m]) > {}", 5 + i % 5),
                0 => format!("{name} > {}", 90 + i % 10),
                1 if m.is_multiple_of(2) => format!("sum by (job) (rate({name}[5m])) > 100"),
                1 => format!("avg_over_time({name}[5m]) > 95"),
                2 if m.is_multiple_of(2) => format!("increase({name}[10m]) > 200"),
                2 => format!("max_over_time({name}[10m]) > 98"),
                _ => format!("avg by (job) ({name}) > 10"),
            };
            let _ = writeln!(
                y,
                "      - alert: Bench{i}\n        expr: {expr}\n        for: 1m\n        labels:\n          severity: warning\n        annotations:\n          summary: \"{{{{ $labels.component }}}} at {{{{ $value }}}}\""
            );
        }
    }
    y
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        Db::open(
            dir.path(),
            Options {
                shards: NonZeroUsize::new(2).unwrap(),
                compact_interval: Duration::ZERO,
                ..Options::default()
            },
        )
        .unwrap(),
    );
    load(&db);
    let groups = parse_rule_file("bench.yml", &rules_yaml()).unwrap();
    assert_eq!(groups.iter().map(|g| g.rules.len()).sum::<usize>(), RULES);

    let mut g = c.benchmark_group("rules_1000_over_10000_series");
    g.sample_size(10);
    let opts = EvalOptions::default();
    let mut states = vec![GroupState::default(); groups.len()];
    let labels = LabelCache::default();
    g.bench_function("eval_only", |b| {
        b.iter(|| {
            let db_src = DbSource::new(&db, usize::MAX).with_label_cache(&labels);
            let mut firing = 0;
            for (grp, st) in groups.iter().zip(states.iter_mut()) {
                // As the scheduler does: the group's selections in one batch.
                let src = Prefetched::new(&db_src, &grp.reads(NOW_MS, &opts), usize::MAX);
                let out = grp.eval(st, &src, NOW_MS, &opts);
                assert!(out.errors.is_empty(), "{:?}", out.errors);
                firing += out.samples.len();
            }
            firing
        })
    });

    let named = groups
        .iter()
        .cloned()
        .map(|g| ("bench.yml".to_string(), g))
        .collect();
    let manager = RuleManager::new(db.clone(), named, Duration::from_secs(15), dir.path(), opts);
    let mut t = NOW_MS;
    g.bench_function("round_sequential", |b| {
        b.iter(|| {
            t += 1;
            for i in 0..manager.groups().len() {
                manager.eval_group(i, t);
            }
        })
    });
    g.bench_function("round", |b| {
        b.iter(|| {
            t += 1;
            std::thread::scope(|s| {
                for i in 0..manager.groups().len() {
                    let m = &manager;
                    s.spawn(move || m.eval_group(i, t));
                }
            });
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
