//! The event log on a real directory: round trips with filters and
//! pagination checked against a model, crash-like truncation of the active
//! log, byte flips in sealed files, retention, concurrency and cheap
//! "latest N" queries. Time is always passed in (`open_at`, `maintain`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tidemark_storage::{
    Cursor, Event, EventLog, EventLogOptions, EventQuery, Labels, MatchOp, Matcher,
};

const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z: all test data lives in the days after it.
const T0: i64 = 1_767_225_600_000;

fn ev(ts_ms: i64, kind: &str, component: &str, n: usize) -> Event {
    Event {
        ts_ms,
        kind: kind.to_string(),
        labels: Labels::from_pairs([("component", component)]),
        fields: format!(r#"{{"n":{n}}}"#),
    }
}

fn all(start_ms: i64, end_ms: i64, limit: usize) -> EventQuery {
    EventQuery {
        start_ms,
        end_ms,
        kinds: Vec::new(),
        matchers: Vec::new(),
        limit,
        before: None,
    }
}

/// Every page of `q`, following `next`; checks each page's size.
fn pages(log: &EventLog, q: &EventQuery) -> Vec<Event> {
    let mut q = q.clone();
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = log.query(&q).unwrap();
        assert!(page.events.len() <= q.limit);
        out.extend(page.events.iter().cloned());
        match page.next {
            Some(c) => {
                assert_eq!(
                    page.events.len(),
                    q.limit,
                    "a page with a next cursor is full"
                );
                // The cursor survives a string round trip.
                q.before = Some(c.to_string().parse::<Cursor>().unwrap());
            }
            None => return out,
        }
    }
    panic!("pagination did not end");
}

/// The model: events in append order; expected = filter, then newest first
/// with later appends first among equal times.
fn expected(appended: &[Event], keep: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut v: Vec<(usize, &Event)> = appended
        .iter()
        .enumerate()
        .filter(|(_, e)| keep(e))
        .collect();
    v.sort_by_key(|(i, e)| std::cmp::Reverse((e.ts_ms, *i)));
    v.into_iter().map(|(_, e)| e.clone()).collect()
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

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
    // 30 sealed days of 500 events each.
    for day in 0..30 {
        let batch: Vec<Event> = (0..500)
            .map(|i| {
                ev(
                    T0 + day * DAY + i * 1000,
                    "error_observed",
                    "db",
                    i as usize,
                )
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
    // A kind that no file holds reads nothing.
    let start = log.stats().blocks_read;
    let q = EventQuery {
        kinds: vec!["deploy".into()],
        ..all(i64::MIN, i64::MAX, 100)
    };
    assert!(log.query(&q).unwrap().events.is_empty());
    assert_eq!(log.stats().blocks_read, start);
}

#[test]
fn torn_active_log_keeps_whole_records_and_reports_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let now = T0 + 1000;
    let log = EventLog::open_at(tmp.path(), EventLogOptions::default(), now).unwrap();
    let data: Vec<Event> = (0..20)
        .map(|i| ev(T0 + i, "deploy", "db", i as usize))
        .collect();
    for e in &data {
        log.append(std::slice::from_ref(e)).unwrap();
    }
    drop(log);
    let logs = files(tmp.path(), "log");
    assert_eq!(logs.len(), 1);
    let len = std::fs::metadata(&logs[0]).unwrap().len();
    // Cut the last record in half, as a crash mid-write would.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&logs[0])
        .unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);

    let log = EventLog::open_at(tmp.path(), EventLogOptions::default(), now).unwrap();
    assert_eq!(log.stats().corrupt, 1);
    let got = pages(&log, &all(i64::MIN, i64::MAX, 7));
    assert_eq!(got, expected(&data[..19], |_| true));
    // The damaged log was sealed; new appends go to a fresh log and are
    // read back with the survivors.
    assert_eq!(files(tmp.path(), "evz").len(), 1);
    let more = ev(T0 + 500, "deploy", "api", 100);
    log.append(std::slice::from_ref(&more)).unwrap();
    drop(log);
    let log = EventLog::open_at(tmp.path(), EventLogOptions::default(), now).unwrap();
    let mut want = data[..19].to_vec();
    want.push(more);
    assert_eq!(
        pages(&log, &all(i64::MIN, i64::MAX, 100)),
        expected(&want, |_| true)
    );
    assert_eq!(log.stats().corrupt, 0, "the sealed copy is clean");
}

#[test]
fn flipped_record_in_active_log_loses_only_that_record() {
    let tmp = tempfile::tempdir().unwrap();
    let now = T0 + 1000;
    let log = EventLog::open_at(tmp.path(), EventLogOptions::default(), now).unwrap();
    let data: Vec<Event> = (0..10)
        .map(|i| ev(T0 + i, "deploy", "db", i as usize))
        .collect();
    log.append(&data).unwrap();
    drop(log);
    let path = &files(tmp.path(), "log")[0];
    let mut bytes = std::fs::read(path).unwrap();
    // Records are equal-sized here: flip a byte inside the payload of the
    // fourth.
    let rec = (bytes.len() - 8) / 10;
    bytes[8 + 3 * rec + 20] ^= 0x40;
    std::fs::write(path, &bytes).unwrap();
    let log = EventLog::open_at(tmp.path(), EventLogOptions::default(), now).unwrap();
    assert_eq!(log.stats().corrupt, 1);
    let got = pages(&log, &all(i64::MIN, i64::MAX, 100));
    let mut want = data.clone();
    want.remove(3);
    assert_eq!(got, expected(&want, |_| true));
}

fn sealed_fixture(dir: &Path) -> (Vec<Event>, EventLogOptions) {
    let opts = EventLogOptions {
        block_bytes: 1024,
        ..EventLogOptions::default()
    };
    let log = EventLog::open_at(dir, opts.clone(), T0).unwrap();
    let data: Vec<Event> = (0..300)
        .map(|i| {
            ev(
                T0 + i * 1000,
                ["deploy", "error_observed"][i as usize % 2],
                "db",
                i as usize,
            )
        })
        .collect();
    log.append(&data).unwrap();
    log.maintain(T0 + DAY).unwrap();
    (data, opts)
}

#[test]
fn byte_flip_in_a_sealed_block_loses_only_that_block() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, opts) = sealed_fixture(tmp.path());
    let path = &files(tmp.path(), "evz")[0];
    let mut bytes = std::fs::read(path).unwrap();
    // The first block frame starts after the 8-byte header; flip a byte in
    // its payload.
    bytes[8 + 8 + 20] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
    let log = EventLog::open_at(tmp.path(), opts, T0 + DAY).unwrap();
    let got = pages(&log, &all(i64::MIN, i64::MAX, 50));
    assert!(!got.is_empty() && got.len() < data.len());
    let lost = data.len() - got.len();
    assert!(lost < data.len() / 3, "lost {lost} of {}", data.len());
    // What is returned is exactly the model minus the oldest `lost` events
    // (the first block holds the oldest).
    assert_eq!(got, expected(&data[lost..], |_| true));
    assert_eq!(log.stats().corrupt, 1);
    // Reading again does not count the same damage twice.
    pages(&log, &all(i64::MIN, i64::MAX, 50));
    assert_eq!(log.stats().corrupt, 1);
}

#[test]
fn damaged_footer_falls_back_to_scanning_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, opts) = sealed_fixture(tmp.path());
    let path = &files(tmp.path(), "evz")[0];
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0xff; // inside the footer
    std::fs::write(path, &bytes).unwrap();
    let log = EventLog::open_at(tmp.path(), opts, T0 + DAY).unwrap();
    assert!(log.stats().corrupt >= 1);
    assert_eq!(log.stats().events, data.len() as u64);
    assert_eq!(
        pages(&log, &all(i64::MIN, i64::MAX, 64)),
        expected(&data, |_| true)
    );
}

#[test]
fn every_single_byte_flip_in_a_sealed_file_is_survived() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = EventLogOptions {
        block_bytes: 256,
        ..EventLogOptions::default()
    };
    let log = EventLog::open_at(tmp.path(), opts.clone(), T0).unwrap();
    let data: Vec<Event> = (0..24)
        .map(|i| ev(T0 + i * 1000, "deploy", "db", i as usize))
        .collect();
    log.append(&data).unwrap();
    log.maintain(T0 + DAY).unwrap();
    drop(log);
    let path = files(tmp.path(), "evz")[0].clone();
    let original = std::fs::read(&path).unwrap();
    let all_keys: HashSet<String> = data.iter().map(|e| e.fields.clone()).collect();
    for i in 0..original.len() {
        let mut bytes = original.clone();
        bytes[i] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let log = EventLog::open_at(tmp.path(), opts.clone(), T0 + DAY).unwrap();
        let got = pages(&log, &all(i64::MIN, i64::MAX, 10));
        // Never an invented or duplicated event; damage is reported when
        // anything is lost.
        let keys: HashSet<String> = got.iter().map(|e| e.fields.clone()).collect();
        assert_eq!(keys.len(), got.len(), "duplicate after flipping byte {i}");
        assert!(
            keys.is_subset(&all_keys),
            "invented event after flipping byte {i}"
        );
        if got.len() < data.len() {
            assert!(
                log.stats().corrupt >= 1,
                "silent loss after flipping byte {i}"
            );
        }
    }
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

#[test]
fn crash_between_sealing_and_deleting_the_log_reads_each_event_once() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = EventLogOptions::default();
    let log = EventLog::open_at(tmp.path(), opts.clone(), T0).unwrap();
    let data: Vec<Event> = (0..50)
        .map(|i| ev(T0 + i * 1000, "deploy", "db", i as usize))
        .collect();
    log.append(&data).unwrap();
    let active = files(tmp.path(), "log");
    let saved = std::fs::read(&active[0]).unwrap();
    log.maintain(T0 + DAY).unwrap();
    drop(log);
    // The crash: the sealed file was renamed into place but the log it
    // replaces is still there.
    std::fs::write(&active[0], &saved).unwrap();
    let log = EventLog::open_at(tmp.path(), opts.clone(), T0 + DAY).unwrap();
    assert!(files(tmp.path(), "log").is_empty());
    assert_eq!(
        pages(&log, &all(i64::MIN, i64::MAX, 20)),
        expected(&data, |_| true)
    );

    // A late event for the sealed window goes to a new generation and is
    // read with the rest, before and after a restart.
    let late = ev(T0 + 500, "deploy", "api", 999);
    log.append(std::slice::from_ref(&late)).unwrap();
    let mut want = data.clone();
    want.push(late);
    assert_eq!(
        pages(&log, &all(i64::MIN, i64::MAX, 20)),
        expected(&want, |_| true)
    );
    drop(log);
    let log = EventLog::open_at(tmp.path(), opts, T0 + DAY).unwrap();
    assert_eq!(files(tmp.path(), "evz").len(), 2);
    assert_eq!(
        pages(&log, &all(i64::MIN, i64::MAX, 20)),
        expected(&want, |_| true)
    );
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
