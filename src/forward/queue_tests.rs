use super::*;
use tidemark_storage::SeriesId;

fn opts() -> QueueOptions {
    QueueOptions {
        max_bytes: 1 << 20,
        segment_bytes: 4096,
        max_record_samples: 10,
    }
}

fn batch(from: i64, n: i64) -> Vec<Entry> {
    (from..from + n)
        .map(|i| (SeriesId(i as u64 % 3), i, i as f64 * 0.5))
        .collect()
}

/// Reads everything from the reader's position; returns the timestamps.
fn drain(q: &Queue, r: &mut Reader) -> Vec<i64> {
    let mut out = Vec::new();
    loop {
        match r.next(q, usize::MAX, &mut out).unwrap() {
            Read::Record { .. } => {}
            Read::End => return out.iter().map(|s| s.1).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn seg_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn records_come_back_in_order_and_batches_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let (q, report) = Queue::open(dir.path(), opts()).unwrap();
    assert_eq!(report, OpenReport::default());
    q.append(100, &batch(0, 25)).unwrap();
    q.append(200, &batch(25, 5)).unwrap();
    assert_eq!(q.unsent_samples(), 30);
    let mut r = q.reader();
    let mut out = Vec::new();
    // 25 samples were split into records of 10, 10 and 5.
    let mut counts = Vec::new();
    while let Read::Record {
        samples,
        enqueued_ms,
        ..
    } = r.next(&q, 100, &mut out).unwrap()
    {
        counts.push((samples, enqueued_ms));
    }
    assert_eq!(counts, vec![(10, 100), (10, 100), (5, 100), (5, 200)]);
    let ts: Vec<i64> = out.iter().map(|s| s.1).collect();
    assert_eq!(ts, (0..30).collect::<Vec<_>>());
    assert_eq!(out[3].0, SeriesId(0));
    assert_eq!(out[7].2, 3.5);
}

#[test]
fn no_room_leaves_the_record_for_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = Queue::open(dir.path(), opts()).unwrap();
    q.append(1, &batch(0, 8)).unwrap();
    let mut r = q.reader();
    let mut out = Vec::new();
    assert_eq!(r.next(&q, 5, &mut out).unwrap(), Read::NoRoom);
    assert!(out.is_empty());
    assert!(matches!(
        r.next(&q, 8, &mut out).unwrap(),
        Read::Record { samples: 8, .. }
    ));
}

#[test]
fn acked_position_persists_and_reopen_resumes_there() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = Queue::open(dir.path(), opts()).unwrap();
    q.append(1, &batch(0, 10)).unwrap();
    q.append(2, &batch(10, 10)).unwrap();
    q.append(3, &batch(20, 10)).unwrap();
    let mut r = q.reader();
    let mut out = Vec::new();
    let Read::Record {
        segment, samples, ..
    } = r.next(&q, 10, &mut out).unwrap()
    else {
        panic!()
    };
    q.ack(r.position(), &[(segment, samples as u64)]).unwrap();
    // Read the second record but do not acknowledge it (in flight at the crash).
    r.next(&q, 10, &mut out).unwrap();
    drop((q, r));
    let (q, report) = Queue::open(dir.path(), opts()).unwrap();
    assert_eq!(report.unsent_samples, 20);
    assert!(report.torn.is_empty() && !report.bad_ack_file);
    let mut r = q.reader();
    assert_eq!(drain(&q, &mut r), (10..30).collect::<Vec<_>>());
    // New appends after reopen go to a new segment and are read after.
    q.append(4, &batch(30, 2)).unwrap();
    assert_eq!(drain(&q, &mut r), vec![30, 31]);
}

#[test]
fn torn_tail_is_reported_cut_and_later_records_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = Queue::open(dir.path(), opts()).unwrap();
    q.append(1, &batch(0, 10)).unwrap();
    q.append(2, &batch(10, 10)).unwrap();
    drop(q);
    let seg = dir.path().join(&seg_files(dir.path())[0]);
    let full = std::fs::metadata(&seg).unwrap().len();
    let record = 8 + 12 + 10 * 24;
    // A crash in the middle of writing the second record.
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(full - 100).unwrap();
    drop(f);
    let (q, report) = Queue::open(dir.path(), opts()).unwrap();
    assert_eq!(
        report.torn,
        vec![TornTail {
            segment: 1,
            offset: 8 + record,
            bytes: record - 100,
            reason: "truncated record",
        }]
    );
    assert_eq!(report.unsent_samples, 10);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 8 + record);
    q.append(3, &batch(50, 3)).unwrap();
    let mut r = q.reader();
    assert_eq!(
        drain(&q, &mut r),
        vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 50, 51, 52]
    );
}

#[test]
fn garbage_tail_is_a_checksum_error() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = Queue::open(dir.path(), opts()).unwrap();
    q.append(1, &batch(0, 4)).unwrap();
    drop(q);
    let seg = dir.path().join(&seg_files(dir.path())[0]);
    let mut bytes = std::fs::read(&seg).unwrap();
    let good = bytes.len() as u64;
    // A frame header claiming 12 bytes, then 12 bytes of junk.
    bytes.extend_from_slice(&12u32.to_le_bytes());
    bytes.extend_from_slice(&[0xAB; 16]);
    std::fs::write(&seg, &bytes).unwrap();
    let (q, report) = Queue::open(dir.path(), opts()).unwrap();
    assert_eq!(report.torn.len(), 1);
    assert_eq!(report.torn[0].offset, good);
    assert_eq!(report.torn[0].reason, "checksum mismatch");
    assert_eq!(drain(&q, &mut q.reader()), vec![0, 1, 2, 3]);
}

#[test]
fn damaged_record_read_at_run_time_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = Queue::open(dir.path(), opts()).unwrap();
    q.append(1, &batch(0, 2)).unwrap();
    q.append(1, &batch(2, 2)).unwrap();
    // Damage the first record on disk after it was committed.
    let seg = dir.path().join(&seg_files(dir.path())[0]);
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&[0xFF], 30).unwrap();
    let mut r = q.reader();
    let mut out = Vec::new();
    assert!(matches!(
        r.next(&q, 100, &mut out).unwrap(),
        Read::Skipped {
            segment: 1,
            offset: 8,
            reason: "checksum mismatch"
        }
    ));
    assert!(out.is_empty());
    assert_eq!(r.next(&q, 100, &mut out).unwrap(), Read::End);
}

#[test]
fn fully_acked_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = Queue::open(dir.path(), opts()).unwrap();
    // 10-sample records are 260 bytes: 15 per 4 KiB segment.
    for i in 0..40 {
        q.append(i, &batch(i * 10, 10)).unwrap();
    }
    assert_eq!(seg_files(dir.path()).len(), 3);
    let mut r = q.reader();
    let mut out = Vec::new();
    let mut consumed = Vec::new();
    for _ in 0..31 {
        let Read::Record {
            segment, samples, ..
        } = r.next(&q, 10, &mut out).unwrap()
        else {
            panic!()
        };
        consumed.push((segment, samples as u64));
    }
    q.ack(r.position(), &consumed).unwrap();
    assert_eq!(seg_files(dir.path()), vec![segment_name(3)]);
    assert_eq!(q.unsent_samples(), 90);
    assert_eq!(q.queued_bytes(), 8 + 9 * 260);
}

#[test]
fn full_queue_drops_the_oldest_segment_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = QueueOptions {
        max_bytes: 3 * 4096,
        ..opts()
    };
    let (q, _) = Queue::open(dir.path(), o).unwrap();
    let mut dropped = 0;
    for i in 0..60 {
        dropped += q.append(i, &batch(i * 10, 10)).unwrap();
    }
    // 60 records of 260 B = 4 segments of 15: the first was dropped.
    assert_eq!(dropped, 150);
    assert_eq!(q.unsent_samples(), 450);
    assert!(q.queued_bytes() <= 3 * 4096);
    let ts = drain(&q, &mut q.reader());
    assert_eq!(ts.first(), Some(&150));
    assert_eq!(ts.len(), 450);
    // The acked position moved past the dropped data and was persisted.
    drop(q);
    let (q, report) = Queue::open(dir.path(), o).unwrap();
    assert_eq!(report.unsent_samples, 450);
    assert_eq!(q.acked().segment, 2);
}

#[test]
fn damaged_ack_file_resends_from_the_oldest_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = Queue::open(dir.path(), opts()).unwrap();
    q.append(1, &batch(0, 10)).unwrap();
    q.append(1, &batch(10, 10)).unwrap();
    let mut r = q.reader();
    let mut out = Vec::new();
    r.next(&q, 10, &mut out).unwrap();
    q.ack(r.position(), &[(1, 10)]).unwrap();
    drop(q);
    std::fs::write(dir.path().join("acked"), b"garbage").unwrap();
    let (q, report) = Queue::open(dir.path(), opts()).unwrap();
    assert!(report.bad_ack_file);
    assert_eq!(drain(&q, &mut q.reader()).len(), 20);
}
