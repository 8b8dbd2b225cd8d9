//! The event log under damage: crash-like truncation and byte flips in the
//! active log, byte flips in sealed blocks and footers (every byte of a
//! small file), and a crash between sealing and deleting the log. Damage
//! is counted once and costs only what it hit.

mod events_support;

use std::collections::HashSet;
use std::path::Path;

use events_support::*;
use tidemark_storage::{Event, EventLog, EventLogOptions};

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
