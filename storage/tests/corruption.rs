//! Damaged partition files are reported and skipped, never a panic or an
//! unusable database: a flipped byte inside a sealed chunk loses that chunk
//! only (counted in `DbStats::corrupt_chunks`), and a block file whose
//! footer is damaged is moved aside at open while the rest stays readable.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tidemark_storage::{Db, FsyncMode, Labels, Options, WriteBatch};

fn options() -> Options {
    Options {
        fsync: FsyncMode::Never,
        shards: NonZeroUsize::new(1).unwrap(),
        partition_duration: Duration::from_secs(100),
        compact_interval: Duration::ZERO,
        // Windows narrower than a 1m bucket: no rollup tiers.
        tiers: Vec::new(),
        ..Options::default()
    }
}

/// Two series over two 100 s windows, flushed and compacted into block
/// files. Returns the block files, oldest window first.
fn build(dir: &Path) -> Vec<PathBuf> {
    let db = Db::open(dir, options()).unwrap();
    let ids = db
        .resolve_many(&[
            Labels::metric("m", [("s", "a")]),
            Labels::metric("m", [("s", "b")]),
        ])
        .unwrap();
    let mut batch = WriteBatch::new();
    for ts in (0..200_000).step_by(1_000) {
        for id in &ids {
            batch.push(*id, ts, (ts / 1000) as f64);
        }
    }
    db.append(&batch).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    db.close().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("raw"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tmb"))
        .collect();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        name.split('-').next().unwrap().parse::<i64>().unwrap()
    });
    assert_eq!(files.len(), 2);
    files
}

fn counts(db: &Db) -> Vec<usize> {
    let ids = db.select(&[tidemark_storage::Matcher::equal("__name__", "m")]);
    db.read(&ids, i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|(_, s)| s.len())
        .collect()
}

#[test]
fn flipped_byte_in_a_chunk_loses_only_that_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let files = build(dir.path());
    // The first chunk of the first window starts right after the 8-byte
    // header: damage its middle.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[8 + 10] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();

    let db = Db::open(dir.path(), options()).unwrap();
    // Series a lost its first window (100 samples), series b lost nothing.
    assert_eq!(counts(&db), vec![100, 200]);
    assert_eq!(db.stats().corrupt_chunks, 1);
}

#[test]
fn damaged_block_file_footer_is_moved_aside_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let files = build(dir.path());
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&files[1], &bytes).unwrap();

    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(
        counts(&db),
        vec![100, 100],
        "the intact window is still readable"
    );
    assert_eq!(db.stats().corrupt_chunks, 1);
    let aside = files[1].with_extension("tmb.corrupt");
    assert!(
        aside.exists(),
        "damaged file kept for inspection at {}",
        aside.display()
    );
    // New writes into the damaged window still work.
    let id = db.lookup(&Labels::metric("m", [("s", "a")])).unwrap();
    let mut batch = WriteBatch::new();
    batch.push(id, 150_500, 7.0);
    db.append(&batch).unwrap();
    db.flush().unwrap();
    assert_eq!(counts(&db), vec![101, 100]);
}
