//! Reads of the event log: filter, merge and paginate newest first.
//!
//! Invariants:
//! - Results are ordered by `(ts_ms, seq)` descending and a page holds the
//!   first `limit` matching events strictly below the cursor, so pages
//!   never overlap and never skip.
//! - A sealed file is skipped when its time range or kinds cannot match,
//!   and so is a block (its time range, its kind mask);
//!   blocks are read in descending order of their newest event, and reading
//!   stops once the page (plus one, to know whether more exist) is full and
//!   the next block is entirely older than the page's oldest event.

use std::sync::Arc;

use super::codec::Stored;
use super::sealed::{self, SealedMeta, kind_bit};
use super::{Cursor, Damage, EventPage, EventQuery};

/// The newest time a result may have.
fn upper_ts(q: &EventQuery) -> i64 {
    q.before.map_or(q.end_ms, |c| c.ts_ms.min(q.end_ms))
}

fn kind_ok(q: &EventQuery, kind: &str) -> bool {
    q.kinds.is_empty() || q.kinds.iter().any(|k| k == kind)
}

/// Whether `s` belongs in the results of `q` (cursor included).
pub(crate) fn matches(q: &EventQuery, s: &Stored) -> bool {
    let e = &s.event;
    e.ts_ms >= q.start_ms
        && e.ts_ms <= q.end_ms
        && q.before.is_none_or(|c| s.key() < (c.ts_ms, c.seq))
        && kind_ok(q, &e.kind)
        && q.matchers
            .iter()
            .all(|m| m.matches(e.labels.get(&m.name).unwrap_or("")))
}

/// Sorts newest first and keeps at most `n`.
fn trim(results: &mut Vec<Stored>, n: usize) {
    results.sort_unstable_by_key(|s| std::cmp::Reverse(s.key()));
    results.truncate(n);
}

/// Runs `q` over the already filtered active events and the sealed files.
/// `q.limit` is at least 1. Also returns how many blocks were read.
pub(crate) fn run(
    q: &EventQuery,
    mut results: Vec<Stored>,
    files: &[Arc<SealedMeta>],
    damage: &Damage,
) -> (EventPage, u64) {
    let want = q.limit.saturating_add(1);
    let upper = upper_ts(q);
    let mut blocks: Vec<(i64, &SealedMeta, usize)> = Vec::new();
    if q.start_ms <= upper {
        for m in files {
            // Bits of the wanted kinds among this file's kinds.
            let wanted = m
                .kinds
                .iter()
                .enumerate()
                .filter(|(_, k)| kind_ok(q, k))
                .fold(0u64, |acc, (i, _)| acc | kind_bit(i, m.kinds.len()));
            if m.max_ts < q.start_ms || m.min_ts > upper || wanted == 0 {
                continue;
            }
            for (i, b) in m.blocks.iter().enumerate() {
                if b.max_ts >= q.start_ms && b.min_ts <= upper && b.kinds & wanted != 0 {
                    blocks.push((b.max_ts, m, i));
                }
            }
        }
    }
    blocks.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
    trim(&mut results, want);
    let mut read = 0;
    for (max_ts, meta, index) in blocks {
        if results.len() >= want && max_ts < results[want - 1].event.ts_ms {
            break;
        }
        read += 1;
        results.extend(
            sealed::read_block(meta, index, damage)
                .into_iter()
                .filter(|s| matches(q, s)),
        );
        trim(&mut results, want);
    }
    let next = (results.len() > q.limit).then(|| {
        let (ts_ms, seq) = results[q.limit - 1].key();
        Cursor { ts_ms, seq }
    });
    results.truncate(q.limit);
    let page = EventPage {
        events: results.into_iter().map(|s| s.event).collect(),
        next,
    };
    (page, read)
}
