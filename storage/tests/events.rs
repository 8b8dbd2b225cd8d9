//! The event log on a real directory: round trips with filters and
//! pagination checked against a model, retention, concurrency, bad input
//! and cheap "latest N" queries (damage and crashes: `events_damage.rs`).
//! Time is always passed in (`open_at`, `maintain`).

mod events_support;

use std::collections::HashSet;
use std::sync::Arc;

use events_support::*;
use tidemark_storage::{
    Cursor, Event, EventLog, EventLogOptions, EventQuery, Labels, MatchOp, Matcher,
};

/// Five days of events with many equal timestamps, several kinds and
/// components, appended out of time order in batches.
fn dataset() -> Vec<Event> {
    let kinds = [
        "error_observed",
        "recovery_started",
        "recovery_failed",
        "deploy",
    ];
    let comps = ["db", "cache", "api"];
    let mut v = Vec::new();
    for i in 0..1500usize {
        // Scatter over 5 days; every 7th shares a timestamp with its
        // neighbour so ties are common.
        let day = (i * 7919) % 5;
        let ts = T0 + day as i64 * DAY + ((i / 7) as i64 % 400) * 60_000;
        v.push(ev(ts, kinds[i % kinds.len()], comps[i % comps.len()], i));
    }
    v
}

#[test]
fn round_trip_filters_and_pagination_across_active_and_sealed() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = EventLogOptions {
        block_bytes: 2048,
        ..EventLogOptions::default()
    };
    // "Now" is in day 3: days 0..3 get sealed by maintain, 3 and 4 stay
    // active (day 4 is in the future).
    let now = T0 + 3 * DAY + 1000;
    let log = EventLog::open_at(tmp.path(), opts.clone(), now).unwrap();
    let data = dataset();
    for batch in data.chunks(37) {
        log.append(batch).unwrap();
    }
    let report = log.maintain(now).unwrap();
    assert_eq!(report.sealed, 3, "{report:?}");
    assert_eq!(files(tmp.path(), "evz").len(), 3);
    assert_eq!(files(tmp.path(), "log").len(), 2);

    type Keep = Box<dyn Fn(&Event) -> bool>;
    let cases: Vec<(EventQuery, Keep)> = vec![
        (all(i64::MIN, i64::MAX, 100), Box::new(|_| true)),
        (all(i64::MIN, i64::MAX, 1), Box::new(|_| true)),
        (
            all(T0 + DAY + 3_600_000, T0 + 3 * DAY + 7_200_000, 33),
            Box::new(|e| e.ts_ms >= T0 + DAY + 3_600_000 && e.ts_ms <= T0 + 3 * DAY + 7_200_000),
        ),
        (
            EventQuery {
                kinds: vec!["recovery_failed".into(), "deploy".into()],
                ..all(i64::MIN, i64::MAX, 50)
            },
            Box::new(|e| e.kind == "recovery_failed" || e.kind == "deploy"),
        ),
        (
            EventQuery {
                matchers: vec![
                    Matcher::new("component", MatchOp::Regex, "db|api").unwrap(),
                    Matcher::equal("absent", ""),
                ],
                kinds: vec!["error_observed".into()],
                ..all(T0 + 2 * DAY, i64::MAX, 17)
            },
            Box::new(|e| {
                e.ts_ms >= T0 + 2 * DAY
                    && e.kind == "error_observed"
                    && e.labels.get("component") != Some("cache")
            }),
        ),
    ];
    let check = |log: &EventLog| {
        for (q, keep) in &cases {
            let want = expected(&data, keep);
            assert!(!want.is_empty());
            let got = pages(log, q);
            assert_eq!(got.len(), want.len(), "{q:?}");
            assert!(got == want, "order or content differs for {q:?}");
        }
    };
    check(&log);
    assert_eq!(log.stats().events, data.len() as u64);
    assert_eq!(log.stats().corrupt, 0);
    drop(log);
    // After a restart (same "now": the open windows stay active) and after
    // everything is sealed, the answers are the same.
    let log = EventLog::open_at(tmp.path(), opts.clone(), now).unwrap();
    check(&log);
    drop(log);
    let log = EventLog::open_at(tmp.path(), opts, now + 10 * DAY).unwrap();
    assert!(files(tmp.path(), "log").is_empty());
    check(&log);
    // Appends after a restart sort after earlier ones at the same time.
    let late = ev(T0 + DAY, "deploy", "db", 9999);
    log.append(std::slice::from_ref(&late)).unwrap();
    let page = log
        .query(&EventQuery {
            kinds: vec!["deploy".into()],
            ..all(T0 + DAY, T0 + DAY, 1)
        })
        .unwrap();
    assert_eq!(page.events, vec![late]);
}

#[test]
fn latest_page_reads_few_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = EventLogOptions {
        block_bytes: 4096,
        ..EventLogOptions::default()
    };
    let log = EventLog::open_at(tmp.path(), opts, T0).unwrap();
    // 30 sealed days of 500 events each; the first event of the last day
    // is the only "deploy".
    for day in 0..30 {
        let batch: Vec<Event> = (0..500)
            .map(|i| {
                let kind = if day == 29 && i == 0 {
                    "deploy"
                } else {
                    "error_observed"
                };
                ev(T0 + day * DAY + i * 1000, kind, "db", i as usize)
            })
            .collect();
        log.append(&batch).unwrap();
    }
    log.maintain(T0 + 31 * DAY).unwrap();
    let before = log.stats();
    assert_eq!(before.segments, 30);
    let page = log.query(&all(i64::MIN, i64::MAX, 100)).unwrap();
    assert_eq!(page.events.len(), 100);
    assert_eq!(page.events[0].ts_ms, T0 + 29 * DAY + 499_000);
    let read = log.stats().blocks_read - before.blocks_read;
    // Each day is several blocks; the newest page needs the newest one or
    // two.
    assert!((1..=2).contains(&read), "read {read} blocks");
    // Reading everything touches every block: the bound above is real.
    let start = log.stats().blocks_read;
    assert_eq!(pages(&log, &all(i64::MIN, i64::MAX, 1000)).len(), 15_000);
    assert!(log.stats().blocks_read - start > 30 * 2);
    // A rare kind reads only the one block that holds it (the other files
    // lack the kind, the other blocks of its file have other kinds) ...
    let start = log.stats().blocks_read;
    let q = EventQuery {
        kinds: vec!["deploy".into()],
        ..all(i64::MIN, i64::MAX, 100)
    };
    let page = log.query(&q).unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].ts_ms, T0 + 29 * DAY);
    assert_eq!(log.stats().blocks_read - start, 1);
    // ... and a kind no file holds reads nothing.
    let q = EventQuery {
        kinds: vec!["recovery_failed".into()],
        ..q
    };
    assert!(log.query(&q).unwrap().events.is_empty());
    assert_eq!(log.stats().blocks_read - start, 1);
}

#[test]
fn retention_deletes_whole_files_and_the_directory_shrinks() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = EventLogOptions {
        retention_ms: 30 * DAY,
        ..EventLogOptions::default()
    };
    let log = EventLog::open_at(tmp.path(), opts, T0).unwrap();
    for day in 0..100 {
        let batch: Vec<Event> = (0..50)
            .map(|i| ev(T0 + day * DAY + i * 60_000, "deploy", "db", i as usize))
            .collect();
        log.append(&batch).unwrap();
    }
    let now = T0 + 100 * DAY;
    // Seals all 100 days, then deletes those wholly older than now - 30 d.
    let r = log.maintain(now).unwrap();
    assert_eq!((r.sealed, r.deleted), (100, 70), "{r:?}");
    assert_eq!(files(tmp.path(), "evz").len(), 30, "days 70..100 stay");
    assert_eq!(log.stats().segments, 30);

    // Starting over with everything on disk shows the drop itself.
    let tmp = tempfile::tempdir().unwrap();
    let log = EventLog::open_at(tmp.path(), EventLogOptions::default(), T0).unwrap();
    for day in 0..100 {
        let batch: Vec<Event> = (0..50)
            .map(|i| ev(T0 + day * DAY + i * 60_000, "deploy", "db", i as usize))
            .collect();
        log.append(&batch).unwrap();
    }
    log.maintain(T0 + 100 * DAY).unwrap(); // 90 d default keeps days 10..
    assert_eq!(files(tmp.path(), "evz").len(), 90);
    let full = dir_size(tmp.path());
    let r = log.drop_before(T0 + 70 * DAY).unwrap();
    assert_eq!(r.deleted, 60);
    let after = dir_size(tmp.path());
    assert_eq!(full - after, r.bytes_freed);
    assert!(after * 2 < full, "{after} of {full} bytes left");
    let got = pages(&log, &all(i64::MIN, i64::MAX, 1000));
    assert_eq!(got.len(), 30 * 50);
    assert!(got.iter().all(|e| e.ts_ms >= T0 + 70 * DAY));
}

#[test]
fn concurrent_appends_and_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = EventLogOptions {
        fsync: false,
        max_active_bytes: 16 << 10, // forces early seals while writing
        ..EventLogOptions::default()
    };
    let log = Arc::new(EventLog::open_at(tmp.path(), opts.clone(), T0).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let e = ev(
                        T0 + (i % 50),
                        "deploy",
                        &format!("c{t}"),
                        (t * 1000 + i) as usize,
                    );
                    log.append(&[e]).unwrap();
                    if i % 20 == 0 {
                        log.query(&all(i64::MIN, i64::MAX, 10)).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(files(tmp.path(), "evz").len() > 1, "early seals happened");
    let got = pages(&log, &all(i64::MIN, i64::MAX, 64));
    let keys: HashSet<&str> = got.iter().map(|e| e.fields.as_str()).collect();
    assert_eq!(got.len(), 800);
    assert_eq!(keys.len(), 800);
    assert!(got.windows(2).all(|w| w[0].ts_ms >= w[1].ts_ms));
    drop(got);
    drop(log);
    let log = EventLog::open_at(tmp.path(), opts, T0).unwrap();
    assert_eq!(pages(&log, &all(i64::MIN, i64::MAX, 1000)).len(), 800);
}

#[test]
fn bad_input_is_named_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = EventLog::open_at(tmp.path(), EventLogOptions::default(), T0).unwrap();
    let mut huge = ev(T0, "deploy", "db", 0);
    huge.fields = "x".repeat(2 << 20);
    let err = log.append(&[ev(T0, "deploy", "db", 1), huge]).unwrap_err();
    assert!(err.to_string().starts_with("event 1:"), "{err}");
    let err = log.append(&[ev(T0, "", "db", 1)]).unwrap_err();
    assert!(err.to_string().contains("kind is empty"), "{err}");
    assert_eq!(log.stats().events, 0);
    assert!(log.query(&all(0, 1, 0)).is_err());
    assert!("not-a-cursor".parse::<Cursor>().is_err());
}

/// Figures for the docs (run with `--ignored --nocapture`); also checks
/// that sealing compresses and that the newest page reads one block.
#[test]
#[ignore = "measurement, prints figures"]
fn measure_sizes_and_latest_page_latency() {
    let tmp = tempfile::tempdir().unwrap();
    let log = EventLog::open_at(
        tmp.path(),
        EventLogOptions {
            fsync: false,
            ..EventLogOptions::default()
        },
        T0,
    )
    .unwrap();
    let kinds = [
        "error_observed",
        "recovery_started",
        "recovery_succeeded",
        "recovery_failed",
        "circuit_breaker",
    ];
    let mut n = 0usize;
    for day in 0..90 {
        let batch: Vec<Event> = (0..1000)
            .map(|i| {
                n += 1;
                Event {
                    ts_ms: T0 + day * DAY + i * 86_000,
                    kind: kinds[i as usize % 5].into(),
                    labels: Labels::from_pairs([("component", ["db", "cache", "api", "queue"][i as usize % 4]), ("instance", "host-1")]),
                    fields: format!(r#"{{"attempt":{},"duration_seconds":{:.3},"reason":"timeout after {} ms"}}"#, i % 7, (i % 97) as f64 * 0.013, i % 500),
                }
            })
            .collect();
        log.append(&batch).unwrap();
    }
    let active_bytes = log.stats().bytes;
    log.maintain(T0 + 90 * DAY).unwrap();
    let s = log.stats();
    println!(
        "events {} active-log bytes {} ({:.1} B/event) sealed bytes {} ({:.1} B/event) files {}",
        s.events,
        active_bytes,
        active_bytes as f64 / n as f64,
        s.bytes,
        s.bytes as f64 / n as f64,
        s.segments
    );
    let t = std::time::Instant::now();
    for _ in 0..100 {
        log.query(&all(i64::MIN, i64::MAX, 100)).unwrap();
    }
    println!(
        "latest 100 of {n}: {:.2} ms per query, {} blocks read in 100 queries",
        t.elapsed().as_secs_f64() * 10.0,
        log.stats().blocks_read
    );
    assert!(s.bytes * 4 < active_bytes, "sealing compresses");
    assert!(log.stats().blocks_read <= 200);
    let t = std::time::Instant::now();
    let q = EventQuery {
        matchers: vec![Matcher::equal("component", "db")],
        kinds: vec!["recovery_failed".into()],
        ..all(T0 + 40 * DAY, T0 + 41 * DAY, 100)
    };
    for _ in 0..100 {
        log.query(&q).unwrap();
    }
    println!(
        "one day, kind+matcher: {:.2} ms per query",
        t.elapsed().as_secs_f64() * 10.0
    );
}
