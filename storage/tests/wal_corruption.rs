//! WAL repair, one case per kind of damage: which records survive, what the
//! report says (segment, offset, dropped bytes), that the read-only `replay`
//! agrees without touching anything, and that appending after repair works
//! and survives a reopen.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use tidemark_storage::wal::{
    self, Corruption, CorruptionKind, ReplayReport, Wal, WalError, WalOptions,
};

/// Payload size of every test record; with the 8-byte frame header a frame is
/// 108 bytes, so record `i` sits at offset `8 + (i % 3) * 108` of segment
/// `i / 3`.
const PAYLOAD: usize = 100;
const FRAME: u64 = 8 + PAYLOAD as u64;
const HEADER: u64 = 8;
/// Exactly three records per segment.
const SEGMENT: u64 = HEADER + 3 * FRAME;
const RECORDS: usize = 9;

fn payload(tag: &str, i: usize) -> Vec<u8> {
    let mut p = format!("{tag}-{i:03}").into_bytes();
    p.resize(PAYLOAD, b'.');
    p
}

fn opts() -> WalOptions {
    WalOptions {
        segment_size: SEGMENT,
    }
}

fn seg(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}"))
}

/// Segments 0, 1, 2, each full with three records.
fn setup(dir: &Path) {
    let (mut wal, report) = Wal::open(dir, opts()).unwrap();
    assert_eq!(report, ReplayReport::default());
    for i in 0..RECORDS {
        wal.append(&payload("record", i)).unwrap();
    }
    wal.close().unwrap();
    for n in 0..3 {
        assert_eq!(fs::metadata(seg(dir, n)).unwrap().len(), SEGMENT);
    }
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
    let mut data = fs::read(path).unwrap();
    data[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    fs::write(path, data).unwrap();
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut data = fs::read(path).unwrap();
    data.extend_from_slice(bytes);
    fs::write(path, data).unwrap();
}

/// Every file in `dir` with its contents, to prove `replay` is read-only.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let data = fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    v.sort();
    v
}

struct Case {
    name: &'static str,
    damage: fn(&Path),
    /// Records `0..recovered` survive.
    recovered: usize,
    corruption: Option<Corruption>,
}

fn corruption(
    segment: u64,
    offset: u64,
    reason: CorruptionKind,
    dropped: u64,
) -> Option<Corruption> {
    Some(Corruption {
        segment,
        offset,
        reason,
        dropped_bytes: dropped,
    })
}

fn cases() -> Vec<Case> {
    use CorruptionKind::*;
    vec![
        Case {
            name: "undamaged",
            damage: |_| {},
            recovered: 9,
            corruption: None,
        },
        Case {
            name: "torn last record",
            damage: |d| truncate(&seg(d, 2), SEGMENT - 50),
            recovered: 8,
            corruption: corruption(2, HEADER + 2 * FRAME, TornRecord, FRAME - 50),
        },
        Case {
            name: "torn frame header",
            damage: |d| truncate(&seg(d, 2), HEADER + 2 * FRAME + 5),
            recovered: 8,
            corruption: corruption(2, HEADER + 2 * FRAME, TornRecord, 5),
        },
        Case {
            name: "bad checksum in a middle segment",
            // Flip one payload byte of record 4 (segment 1, second frame).
            damage: |d| overwrite(&seg(d, 1), HEADER + FRAME + 8 + 5, b"X"),
            recovered: 4,
            corruption: corruption(1, HEADER + FRAME, BadChecksum, 2 * FRAME + SEGMENT),
        },
        Case {
            name: "bad length (huge length field)",
            damage: |d| overwrite(&seg(d, 2), HEADER + FRAME, &0xffff_fff0u32.to_le_bytes()),
            recovered: 7,
            corruption: corruption(2, HEADER + FRAME, BadLength { len: 0xffff_fff0 }, 2 * FRAME),
        },
        Case {
            name: "garbage appended",
            damage: |d| append_bytes(&seg(d, 2), b"garbage!garbage!garbage!garbage!"),
            recovered: 9,
            corruption: corruption(
                2,
                SEGMENT,
                BadLength {
                    len: u32::from_le_bytes(*b"garb"),
                },
                32,
            ),
        },
        Case {
            name: "zero-filled tail (preallocated)",
            damage: |d| append_bytes(&seg(d, 2), &[0; 4096]),
            recovered: 9,
            corruption: corruption(2, SEGMENT, ZeroedTail, 4096),
        },
        Case {
            name: "last record zeroed in place",
            damage: |d| overwrite(&seg(d, 2), HEADER + 2 * FRAME, &[0; FRAME as usize]),
            recovered: 8,
            corruption: corruption(2, HEADER + 2 * FRAME, ZeroedTail, FRAME),
        },
        Case {
            name: "missing middle segment",
            damage: |d| fs::remove_file(seg(d, 1)).unwrap(),
            recovered: 3,
            corruption: corruption(1, 0, MissingSegment, SEGMENT),
        },
        Case {
            name: "empty last segment file",
            damage: |d| fs::write(seg(d, 3), b"").unwrap(),
            recovered: 9,
            corruption: corruption(3, 0, TornHeader, 0),
        },
        Case {
            name: "empty middle segment file",
            damage: |d| truncate(&seg(d, 1), 0),
            recovered: 3,
            corruption: corruption(1, 0, TornHeader, SEGMENT),
        },
        Case {
            name: "header magic damaged",
            damage: |d| overwrite(&seg(d, 1), 0, b"XXXX"),
            recovered: 3,
            corruption: corruption(1, 0, BadHeader, 2 * SEGMENT),
        },
        Case {
            name: "header reserved bytes damaged",
            damage: |d| overwrite(&seg(d, 2), 6, b"\x01"),
            recovered: 6,
            corruption: corruption(2, 0, BadHeader, SEGMENT),
        },
    ]
}

fn expected(recovered: usize, after: usize) -> Vec<Vec<u8>> {
    (0..recovered)
        .map(|i| payload("record", i))
        .chain((0..after).map(|i| payload("after", i)))
        .collect()
}

#[test]
fn wal_repair_table() {
    for case in cases() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        setup(dir);
        (case.damage)(dir);
        let ctx = case.name;

        // Read-only replay reports the damage and changes nothing.
        let before = snapshot(dir);
        let mut seen = Vec::new();
        let report = wal::replay(dir, |p| seen.push(p.to_vec())).unwrap();
        assert_eq!(
            snapshot(dir),
            before,
            "{ctx}: replay modified the directory"
        );
        assert_eq!(seen, expected(case.recovered, 0), "{ctx}: replay records");
        assert_eq!(report.corruption, case.corruption, "{ctx}: replay report");

        // Open replays the same prefix, repairs and reports.
        let mut seen = Vec::new();
        let (mut wal, report) =
            Wal::open_with_replay(dir, opts(), |p| seen.push(p.to_vec())).unwrap();
        assert_eq!(seen, expected(case.recovered, 0), "{ctx}: open records");
        assert_eq!(report.corruption, case.corruption, "{ctx}: open report");
        assert_eq!(report.records, case.recovered as u64, "{ctx}");
        // Appending after repair works and survives a reopen.
        for i in 0..4 {
            wal.append(&payload("after", i)).unwrap();
        }
        wal.close().unwrap();

        let mut seen = Vec::new();
        let (wal, report) = Wal::open_with_replay(dir, opts(), |p| seen.push(p.to_vec())).unwrap();
        assert_eq!(report.corruption, None, "{ctx}: damage left after repair");
        assert_eq!(seen, expected(case.recovered, 4), "{ctx}: after reopen");
        assert_eq!(report.records, case.recovered as u64 + 4, "{ctx}");
        drop(wal);
    }
}

#[test]
fn wal_corruption_display_names_segment_offset_and_bytes() {
    let c = Corruption {
        segment: 3,
        offset: 4096,
        reason: CorruptionKind::BadChecksum,
        dropped_bytes: 812,
    };
    assert_eq!(
        c.to_string(),
        "wal segment 3 offset 4096: bad checksum, dropped 812 bytes"
    );
}

#[test]
fn wal_unknown_version_is_refused_not_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    overwrite(&seg(dir, 1), 4, b"\x63");
    let before = snapshot(dir);
    let err = Wal::open(dir, opts()).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::UnsupportedVersion {
                version: 0x63,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(snapshot(dir), before, "a newer segment must not be touched");
}

#[test]
fn wal_repeated_damage_across_reopens_keeps_numbering_contiguous() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    // Tear the tail twice, appending between, then check nothing is lost
    // beyond what each tear dropped.
    truncate(&seg(dir, 2), SEGMENT - 1);
    let (mut wal, report) = Wal::open(dir, opts()).unwrap();
    assert_eq!(report.corruption.unwrap().segment, 2);
    wal.append(&payload("after", 0)).unwrap();
    wal.close().unwrap();
    append_bytes(&seg(dir, 3), &[0; 100]);
    let (wal, report) = Wal::open(dir, opts()).unwrap();
    let c = report.corruption.unwrap();
    assert_eq!((c.segment, c.reason), (3, CorruptionKind::ZeroedTail));
    drop(wal);
    let mut seen = Vec::new();
    let report = wal::replay(dir, |p| seen.push(p.to_vec())).unwrap();
    assert_eq!(report.corruption, None);
    let mut want = expected(8, 0);
    want.push(payload("after", 0));
    assert_eq!(seen, want);
}
