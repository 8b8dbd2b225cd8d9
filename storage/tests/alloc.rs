//! Proves the append path allocates per batch, not per sample: a counting
//! global allocator watches steady-state submits of 4,000-sample batches
//! (producer, shard writers, WAL and head together) and the allocation count
//! must stay a small constant per batch.
//!
//! This file holds a single test so no other test's allocations interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tidemark_storage::{Db, FsyncMode, Labels, Options, WriteBatch};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; the only
// addition is a relaxed counter increment, which cannot affect memory safety.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERIES: usize = 4_000;

#[test]
fn steady_state_append_allocates_per_batch_not_per_sample() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            fsync: FsyncMode::Never,
            shards: NonZeroUsize::new(2).unwrap(),
            compact_interval: Duration::ZERO,
            flush_interval: Duration::from_secs(3600),
            ..Options::default()
        },
    )
    .unwrap();
    let labels: Vec<Labels> = (0..SERIES)
        .map(|i| Labels::metric("m", [("i", i.to_string())]))
        .collect();
    let ids = db.resolve_many(&labels).unwrap();
    let mut batch = WriteBatch::with_capacity(SERIES);
    let mut step = 0i64;
    let mut run = |batches: usize| {
        for _ in 0..batches {
            batch.clear();
            step += 1;
            for (i, id) in ids.iter().enumerate() {
                // Counter-like values keep the head chunks' growth realistic.
                batch.push(*id, step * 10_000, (step * 3 + i as i64) as f64);
            }
            db.append(&batch).unwrap();
        }
    };
    // Warm up: head chunks, recycled buffers and the WAL buffer reach size.
    run(200);
    let before = ALLOCS.load(Ordering::Relaxed);
    let batches = 200;
    run(batches);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    let samples = (batches * SERIES) as u64;
    let per_batch = allocs as f64 / batches as f64;
    eprintln!(
        "{allocs} allocations for {batches} batches of {SERIES} samples ({per_batch:.1}/batch)"
    );
    // Head chunks grow by doubling, so a few series cross a capacity
    // boundary in any window: allow that amortised growth, but one
    // allocation per sample would be 4,000 per batch.
    assert!(
        allocs < samples / 20,
        "{allocs} allocations for {samples} samples: the append path allocates per sample"
    );
    db.close().unwrap();
}
