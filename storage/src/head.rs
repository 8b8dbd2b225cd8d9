//! The head: the open, in-memory part of every series of one shard.
//!
//! A [`Head`] is owned by exactly one shard writer thread, so nothing in here
//! locks. Each series keeps a streaming-encoded [`HeadChunk`] for samples that
//! arrive in time order and a small out-of-order buffer for the rest.
//!
//! Invariants:
//! - Series `id` lives at `series[id / shards]` of shard `id % shards`, so the
//!   per-sample lookup is an index, not a hash.
//! - `chunk` holds strictly increasing timestamps. A sample at or before the
//!   chunk's last timestamp but inside the out-of-order window goes to `ooo`;
//!   readers merge both, and for equal timestamps the later arrival wins
//!   (`ooo` always arrived after the chunk sample it collides with).
//! - `max_ts` survives flushes, so the out-of-order window keeps being
//!   enforced after the chunk has moved to a partition.

use crate::encoding::HeadChunk;
use crate::types::{Sample, SeriesId, Timestamp};

/// What the head did with one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    Yes,
    /// Older than the series' newest sample minus the out-of-order window.
    TooOld,
}

struct HeadSeries {
    chunk: HeadChunk,
    ooo: Vec<Sample>,
    max_ts: Timestamp,
}

impl HeadSeries {
    fn new() -> Self {
        Self {
            chunk: HeadChunk::new(),
            ooo: Vec::new(),
            max_ts: Timestamp::MIN,
        }
    }

    fn is_empty(&self) -> bool {
        self.chunk.is_empty() && self.ooo.is_empty()
    }

    /// Appends the merged, sorted, deduplicated samples in `[start, end]`.
    fn collect(&self, start: Timestamp, end: Timestamp, out: &mut Vec<Sample>) {
        let from = out.len();
        out.extend(self.chunk.iter().filter(|s| s.ts >= start && s.ts <= end));
        if self.ooo.is_empty() {
            return;
        }
        out.extend(self.ooo.iter().filter(|s| s.ts >= start && s.ts <= end));
        sort_keep_last(&mut out[from..]);
        dedup_keep_last(out, from);
    }
}

/// Stable sort by timestamp: among equal timestamps arrival order is kept.
pub(crate) fn sort_keep_last(samples: &mut [Sample]) {
    if !samples.windows(2).all(|w| w[0].ts < w[1].ts) {
        samples.sort_by_key(|s| s.ts);
    }
}

/// Removes, in `out[from..]` (sorted by timestamp), all but the last sample
/// of every run of equal timestamps.
pub(crate) fn dedup_keep_last(out: &mut Vec<Sample>, from: usize) {
    let mut w = from;
    for r in from..out.len() {
        if r + 1 < out.len() && out[r + 1].ts == out[r].ts {
            continue;
        }
        out[w] = out[r];
        w += 1;
    }
    out.truncate(w);
}

/// The head of one shard.
pub(crate) struct Head {
    shard: usize,
    shards: usize,
    ooo_window: i64,
    series: Vec<Option<Box<HeadSeries>>>,
    /// Samples appended since the last drain (memory-pressure signal).
    samples: usize,
}

impl Head {
    pub(crate) fn new(shard: usize, shards: usize, ooo_window_ms: i64) -> Self {
        Self {
            shard,
            shards,
            ooo_window: ooo_window_ms,
            series: Vec::new(),
            samples: 0,
        }
    }

    fn slot(&self, id: SeriesId) -> usize {
        debug_assert_eq!(
            id.0 as usize % self.shards,
            self.shard,
            "series routed to the wrong shard"
        );
        id.0 as usize / self.shards
    }

    pub(crate) fn append(&mut self, id: SeriesId, ts: Timestamp, value: f64) -> Appended {
        let slot = self.slot(id);
        if slot >= self.series.len() {
            self.series.resize_with(slot + 1, || None);
        }
        let s = self.series[slot].get_or_insert_with(|| Box::new(HeadSeries::new()));
        if ts > s.max_ts {
            s.max_ts = ts;
        } else if ts < s.max_ts.saturating_sub(self.ooo_window) {
            return Appended::TooOld;
        }
        if !s.chunk.append(ts, value) {
            s.ooo.push(Sample::new(ts, value));
        }
        self.samples += 1;
        Appended::Yes
    }

    /// Appends series `id`'s head samples in `[start, end]` to `out`, sorted
    /// and deduplicated.
    pub(crate) fn collect(
        &self,
        id: SeriesId,
        start: Timestamp,
        end: Timestamp,
        out: &mut Vec<Sample>,
    ) {
        if let Some(Some(s)) = self.series.get(self.slot(id)) {
            s.collect(start, end, out);
        }
    }

    /// Samples appended since the last drain.
    pub(crate) fn samples(&self) -> usize {
        self.samples
    }

    /// Series with samples in the head.
    pub(crate) fn active_series(&self) -> usize {
        self.series
            .iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .count()
    }

    /// Heap bytes held by the head's series.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.series.capacity() * 8
            + self
                .series
                .iter()
                .flatten()
                .map(|s| {
                    std::mem::size_of::<HeadSeries>()
                        + s.chunk.bytes_used()
                        + s.ooo.capacity() * std::mem::size_of::<Sample>()
                })
                .sum::<usize>()
    }

    /// Hands every non-empty series' samples (sorted, deduplicated) to `f`
    /// and empties the head, keeping each series' `max_ts` and capacity.
    pub(crate) fn drain(
        &mut self,
        scratch: &mut Vec<Sample>,
        mut f: impl FnMut(SeriesId, &[Sample]),
    ) {
        for (slot, s) in self.series.iter_mut().enumerate() {
            let Some(s) = s else { continue };
            if s.is_empty() {
                continue;
            }
            scratch.clear();
            s.collect(Timestamp::MIN, Timestamp::MAX, scratch);
            f(SeriesId((slot * self.shards + self.shard) as u64), scratch);
            s.chunk.clear();
            s.ooo.clear();
            s.ooo.shrink_to(4);
        }
        self.samples = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(head: &mut Head) -> Vec<(SeriesId, Vec<(i64, f64)>)> {
        let mut out = Vec::new();
        head.drain(&mut Vec::new(), |id, s| {
            out.push((id, s.iter().map(|s| (s.ts, s.value)).collect()))
        });
        out
    }

    #[test]
    fn out_of_order_within_window_is_merged_and_last_duplicate_wins() {
        let mut h = Head::new(1, 2, 100);
        let id = SeriesId(3);
        for (ts, v) in [(10, 1.0), (30, 3.0), (20, 2.0), (30, 4.0), (200, 5.0)] {
            assert_eq!(h.append(id, ts, v), Appended::Yes);
        }
        assert_eq!(h.append(id, 99, 0.0), Appended::TooOld, "200 - 100 > 99");
        let mut got = Vec::new();
        h.collect(id, 15, 1000, &mut got);
        assert_eq!(
            got.iter().map(|s| (s.ts, s.value)).collect::<Vec<_>>(),
            vec![(20, 2.0), (30, 4.0), (200, 5.0)]
        );
        assert_eq!(
            drained(&mut h),
            vec![(id, vec![(10, 1.0), (20, 2.0), (30, 4.0), (200, 5.0)])]
        );
        assert_eq!(
            h.append(id, 99, 0.0),
            Appended::TooOld,
            "window survives a drain"
        );
        assert_eq!(h.append(id, 150, 6.0), Appended::Yes);
        assert_eq!(drained(&mut h), vec![(id, vec![(150, 6.0)])]);
        assert!(drained(&mut h).is_empty());
    }
}
