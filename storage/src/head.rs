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
//! - A read of `[start, end]` decodes the chunk only from its last seek
//!   checkpoint before `start` and stops at the first sample after `end`
//!   ([`HeadChunk::range`]), so a short recent window of a long head costs
//!   about its own length plus at most one checkpoint interval; `ooo` is
//!   filtered in full (it is small) and merged after.
//! - [`Head::memory_bytes`] counts every heap byte a series holds: the
//!   chunk's stream and checkpoints ([`HeadChunk::bytes_used`]) and `ooo`.

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
        let range = self.chunk.range(start, end);
        // The bound is what is left after the seek checkpoint: at most one
        // checkpoint interval more than the range holds.
        out.reserve(range.size_hint().1.unwrap_or(0));
        out.extend(range);
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

    /// Heap bytes held by the head's series (chunk streams, their seek
    /// checkpoints, out-of-order buffers).
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
    use crate::types::STALE_NAN_BITS;
    use proptest::prelude::*;
    use proptest::sample::Index;

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

    /// Heap bytes include the chunk's seek checkpoints, exactly.
    #[test]
    fn memory_bytes_counts_checkpoints() {
        let mut h = Head::new(0, 1, 0);
        let id = SeriesId(0);
        for i in 0..480 {
            h.append(id, 1_700_000_000_000 + i * 10_000, 1.0);
        }
        let Some(Some(s)) = h.series.first() else {
            panic!("series 0 is in slot 0");
        };
        // Checkpoints before samples 32, 64, ..., 448.
        assert!(s.chunk.checkpoint_bytes() >= 14 * 32);
        assert_eq!(
            h.memory_bytes(),
            h.series.capacity() * 8
                + std::mem::size_of::<HeadSeries>()
                + s.chunk.stream_bytes()
                + s.chunk.checkpoint_bytes()
                + s.ooo.capacity() * std::mem::size_of::<Sample>()
        );
    }

    /// Values whose bits must survive: stale markers, NaN payloads, ±0.0,
    /// ±Inf, anything (`encoding::testutil` has more; it is private there).
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::from_bits(STALE_NAN_BITS)),
            Just(f64::from_bits(0xfff8_0000_dead_beef)),
            Just(-0.0),
            Just(0.0),
            Just(f64::INFINITY),
            (-1000i64..1000).prop_map(|m| m as f64 / 100.0),
            any::<u64>().prop_map(f64::from_bits),
        ]
    }

    /// The ts of one arrival relative to the newest so far: forward (mostly
    /// regular-ish, sometimes a huge gap), the same again, or back (inside or
    /// beyond the out-of-order window).
    fn step() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => 1i64..20_000,
            1 => (1i64 << 30)..(1 << 40),
            1 => Just(0i64),
            3 => -700i64..0,
        ]
    }

    /// The reference model: accepted samples sorted by timestamp, the last
    /// arrival winning among equal timestamps, filtered to `[start, end]`.
    fn model(accepted: &[Sample], start: i64, end: i64) -> Vec<Sample> {
        let mut v: Vec<Sample> = accepted.to_vec();
        v.sort_by_key(|s| s.ts);
        let mut out: Vec<Sample> = Vec::new();
        for s in v {
            match out.last_mut() {
                Some(last) if last.ts == s.ts => *last = s,
                _ => out.push(s),
            }
        }
        out.retain(|s| s.ts >= start && s.ts <= end);
        out
    }

    fn bound(b: (Index, i64, Option<i64>), accepted: &[Sample]) -> i64 {
        match (b.2, accepted.is_empty()) {
            (Some(t), _) => t,
            (None, true) => 0,
            (None, false) => accepted[b.0.index(accepted.len())].ts.saturating_add(b.1),
        }
    }

    fn assert_bit_eq(got: &[Sample], want: &[Sample]) -> Result<(), TestCaseError> {
        prop_assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(want) {
            prop_assert!(a.bit_eq(b), "{:?} != {:?}", a, b);
        }
        Ok(())
    }

    proptest! {
        /// `collect` over any range equals the model, with out-of-order and
        /// duplicate arrivals, before and after a drain (chunk and
        /// checkpoints cleared, then refilled).
        #[test]
        fn collect_equals_model(
            rounds in proptest::collection::vec(
                proptest::collection::vec((step(), value()), 0..300),
                1..3,
            ),
            bounds in proptest::collection::vec(
                (
                    (any::<Index>(), -1i64..=1, proptest::option::weighted(0.1, any::<i64>())),
                    (any::<Index>(), -1i64..=1, proptest::option::weighted(0.1, any::<i64>())),
                ),
                1..12,
            ),
        ) {
            const WINDOW: i64 = 500;
            let mut h = Head::new(1, 3, WINDOW);
            let id = SeriesId(4);
            // The newest accepted timestamp, which survives drains.
            let mut max_ts: Option<i64> = None;
            for arrivals in rounds {
                let mut accepted = Vec::new();
                for (step, v) in arrivals {
                    let ts = max_ts.unwrap_or(1_700_000_000_000) + step;
                    let got = h.append(id, ts, v);
                    if max_ts.is_some_and(|m| ts < m - WINDOW) {
                        prop_assert_eq!(got, Appended::TooOld);
                    } else {
                        prop_assert_eq!(got, Appended::Yes);
                        accepted.push(Sample::new(ts, v));
                        max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
                    }
                }
                for &(a, b) in &bounds {
                    let (start, end) = (bound(a, &accepted), bound(b, &accepted));
                    let mut got = vec![Sample::new(-1, -1.0)];
                    h.collect(id, start, end, &mut got);
                    prop_assert!(got[0].bit_eq(&Sample::new(-1, -1.0)), "kept what was in `out`");
                    assert_bit_eq(&got[1..], &model(&accepted, start, end))?;
                }
                let mut other = Vec::new();
                h.collect(SeriesId(7), i64::MIN, i64::MAX, &mut other);
                prop_assert!(other.is_empty());
                let mut drained = Vec::new();
                h.drain(&mut Vec::new(), |got, s| drained.push((got, s.to_vec())));
                match drained.as_slice() {
                    [] => prop_assert!(accepted.is_empty()),
                    [(got, s)] => {
                        prop_assert_eq!(*got, id);
                        assert_bit_eq(s, &model(&accepted, i64::MIN, i64::MAX))?;
                    }
                    _ => prop_assert!(false, "one series drained twice"),
                }
            }
        }
    }
}
