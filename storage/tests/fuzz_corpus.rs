//! Runs every fuzz target's property check over its checked-in seed corpus
//! (`fuzz/corpus/<target>/`), so stable `cargo test` catches regressions that
//! a fuzzer once found.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} unreadable: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("corpus file");
            (p, bytes)
        })
        .collect()
}

#[test]
fn chunk_decode_corpus() {
    for (path, bytes) in corpus("chunk_decode") {
        eprintln!("{}", path.display());
        tidemark_storage::encoding::fuzz_check_chunk_decode(&bytes);
    }
}

#[test]
fn wal_record_corpus() {
    for (path, bytes) in corpus("wal_record") {
        eprintln!("{}", path.display());
        tidemark_storage::wal::fuzz_check_record_decode(&bytes);
    }
}
