//! Reading stored samples of many series in one pass
//! ([`Partitions::read_many`]), merging every partition's block and delta
//! chunks.
//!
//! Invariants:
//! - Samples come out sorted, one per timestamp; among chunks holding the
//!   same timestamp the later write (higher `seq`, delta over block) wins.
//! - A batch read takes one snapshot of each overlapping partition and
//!   one delta read transaction per partition for all its series, walked
//!   by one forward cursor ([`super::delta::DeltaCursor`]) when ids come in
//!   ascending order: a read of 10,000 series opens each delta table once
//!   and mostly steps instead of seeking.
//! - A corrupt chunk is reported and skipped; the read goes on.

use std::path::Path;

use crate::encoding::{decode_chunk, read_chunk_header};
use crate::error::Error;
use crate::head::dedup_keep_last;
use crate::types::{Sample, SeriesId, Timestamp};

use super::Partitions;
use super::delta::DeltaReader;

impl Partitions {
    /// The stored samples in `[start, end]` of each series in `ids`, in
    /// the order of `ids`: sorted and deduplicated (later writes win).
    /// Corrupt chunks are reported and skipped.
    pub(crate) fn read_many(
        &self,
        ids: &[SeriesId],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(SeriesId, Vec<Sample>)>, Error> {
        let parts: Vec<_> = self
            .slots_overlapping(start, end)
            .iter()
            .map(|slot| {
                slot.current
                    .read()
                    .expect("partition lock poisoned")
                    .clone()
            })
            .collect();
        let readers: Vec<Option<DeltaReader<'_>>> = parts
            .iter()
            .map(|p| p.delta.as_ref().map(|d| d.reader()).transpose())
            .collect::<Result<_, _>>()?;
        let mut cursors: Vec<_> = readers
            .iter()
            .map(|r| r.as_ref().map(DeltaReader::cursor))
            .collect();
        let mut merge = Merge::default();
        let mut entries = Vec::new();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            for (p, cursor) in parts.iter().zip(&mut cursors) {
                if let Some(b) = &p.blocks {
                    entries.clear();
                    b.find(id, start, end, &mut entries)?;
                    for e in &entries {
                        b.read_chunk(e, &mut merge.buf)?;
                        let bytes = std::mem::take(&mut merge.buf);
                        merge.add(self, b.path(), id, e.min_ts, 0, &bytes, start, end);
                        merge.buf = bytes;
                    }
                }
                if let (Some(d), Some(c)) = (&p.delta, cursor) {
                    c.series(id, end, |c| {
                        merge.add(self, d.path(), id, c.min_ts, c.seq, c.bytes, start, end);
                        Ok(())
                    })?;
                }
            }
            let mut samples = Vec::new();
            merge.finish(&mut samples);
            out.push((id, samples));
        }
        Ok(out)
    }
}

/// Collects one series' samples from several chunks and yields them sorted,
/// later writes winning on equal timestamps. Chunks decode straight into
/// one buffer; only when chunks overlap in time are samples tagged with
/// their chunk's sequence number and sorted.
#[derive(Default)]
pub(super) struct Merge {
    pub(super) samples: Vec<Sample>,
    /// `(first index in samples, seq)` of every chunk added.
    runs: Vec<(usize, u64)>,
    pub(super) buf: Vec<u8>,
    overlapping: bool,
}

impl Merge {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        parts: &Partitions,
        path: &Path,
        id: SeriesId,
        min_ts: Timestamp,
        seq: u64,
        bytes: &[u8],
        start: Timestamp,
        end: Timestamp,
    ) {
        let header = match read_chunk_header(bytes) {
            Ok(h) => h,
            Err(e) => return parts.report_corrupt(path, id, min_ts, &e.to_string()),
        };
        if header.max_ts < start || header.min_ts > end {
            return;
        }
        let from = self.samples.len();
        if let Err(e) = decode_chunk(bytes, &mut self.samples) {
            self.samples.truncate(from);
            return parts.report_corrupt(path, id, min_ts, &e.to_string());
        }
        // A chunk is sorted: trim it to [start, end] by binary search.
        let region = &self.samples[from..];
        let lo = region.partition_point(|s| s.ts < start);
        let hi = region.partition_point(|s| s.ts <= end);
        self.samples.truncate(from + hi);
        self.samples.drain(from..from + lo);
        if self.samples.len() == from {
            return;
        }
        self.overlapping |= from > 0 && self.samples[from - 1].ts >= self.samples[from].ts;
        self.runs.push((from, seq));
    }

    /// Appends the merged samples to `out` and resets.
    pub(super) fn finish(&mut self, out: &mut Vec<Sample>) {
        if !self.overlapping {
            if out.is_empty() {
                std::mem::swap(out, &mut self.samples);
            } else {
                out.append(&mut self.samples);
            }
        } else {
            let mut tagged: Vec<(Timestamp, u64, f64)> = Vec::with_capacity(self.samples.len());
            for (i, &(first, seq)) in self.runs.iter().enumerate() {
                let last = self.runs.get(i + 1).map_or(self.samples.len(), |r| r.0);
                tagged.extend(
                    self.samples[first..last]
                        .iter()
                        .map(|s| (s.ts, seq, s.value)),
                );
            }
            tagged.sort_by_key(|t| (t.0, t.1));
            let from = out.len();
            out.extend(tagged.iter().map(|t| Sample::new(t.0, t.2)));
            dedup_keep_last(out, from);
        }
        self.samples.clear();
        self.runs.clear();
        self.overlapping = false;
    }
}
