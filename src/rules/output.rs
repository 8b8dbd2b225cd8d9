//! Writing a group's round output: stale markers for series that
//! disappeared, series ids kept from round to round, and an append that
//! does not hold up the next group.
//!
//! Invariants:
//! - A series the previous round wrote and this one did not gets a stale
//!   marker at this round's time (Prometheus), unless a rule failed this
//!   round: then nothing is marked stale, because the failing rule's
//!   series are not known to be gone.
//! - Ids of the label sets written last round are kept, so a steady
//!   round (the same `ALERTS` series every time) resolves nothing in the
//!   index; only new label sets are resolved.
//! - The append is submitted, not waited for: the samples are visible to
//!   reads queued after it at once (each shard applies its queue in
//!   order), and the previous round's ticket is collected at the start of
//!   the next one, where a write failure is reported. Rule output is
//!   therefore acknowledged one interval late, never lost silently.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;

use tidemark_query::{Labels, Sample, stale_nan};
use tidemark_storage::{Db, SeriesId, Ticket, WriteBatch};

use super::GroupOutput;
use super::scheduler::RulesError;

/// One group's output bookkeeping between rounds.
#[derive(Default)]
pub(crate) struct OutputWriter {
    /// Label sets the last round wrote, with their series ids.
    written: HashMap<Labels, SeriesId, RandomState>,
    /// The last round's append, until collected.
    pending: Option<Ticket>,
}

impl std::fmt::Debug for OutputWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputWriter")
            .field("written", &self.written.len())
            .field("pending", &self.pending.is_some())
            .finish()
    }
}

impl OutputWriter {
    /// Waits for the previous round's append; its error, if it failed.
    pub(crate) fn collect_previous(&mut self) -> Result<(), RulesError> {
        let Some(ticket) = self.pending.take() else {
            return Ok(());
        };
        let outcome = ticket.wait().map_err(RulesError::Storage)?;
        if outcome.rejected() > 0 {
            tracing::warn!(
                too_old = outcome.too_old,
                unknown_series = outcome.unknown_series,
                "rule output samples rejected"
            );
        }
        Ok(())
    }

    /// Adds stale markers at `t` to `out` for last round's series that
    /// this round did not produce, then submits every sample to `db` and
    /// offers the batch to `feed`. The append is collected by the next
    /// [`OutputWriter::collect_previous`].
    pub(crate) fn write(
        &mut self,
        db: &Db,
        feed: &crate::forward::Feed,
        out: &mut GroupOutput,
        t: i64,
    ) -> Result<(), RulesError> {
        let failed = !out.errors.is_empty();
        let produced = out.samples.len();
        {
            let now: HashSet<&Labels, RandomState> =
                out.samples.iter().map(|s| &s.labels).collect();
            if !failed {
                let gone: Vec<Labels> = self
                    .written
                    .keys()
                    .filter(|l| !now.contains(l))
                    .cloned()
                    .collect();
                out.samples.extend(gone.into_iter().map(|labels| Sample {
                    labels,
                    t,
                    v: stale_nan(),
                }));
            }
        }
        let ids = self.ids(db, &out.samples)?;
        let mut written = if failed {
            std::mem::take(&mut self.written)
        } else {
            HashMap::with_capacity_and_hasher(produced, RandomState::default())
        };
        written.extend(
            out.samples[..produced]
                .iter()
                .zip(&ids)
                .map(|(s, id)| (s.labels.clone(), *id)),
        );
        self.written = written;
        if out.samples.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::with_capacity(out.samples.len());
        for (id, s) in ids.iter().zip(&out.samples) {
            batch.push(*id, s.t, s.v);
        }
        self.pending = Some(db.submit(&batch)?);
        feed.offer(batch.entries());
        Ok(())
    }

    /// The series id of every sample: known ones from the last round,
    /// the rest resolved (created if new) in one index call.
    fn ids(&self, db: &Db, samples: &[Sample]) -> Result<Vec<SeriesId>, RulesError> {
        // Id 0 is never a series (ids start at 1); every 0 is replaced below.
        let mut ids = Vec::with_capacity(samples.len());
        let mut unknown = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            match self.written.get(&s.labels) {
                Some(id) => ids.push(*id),
                None => {
                    ids.push(SeriesId(0));
                    unknown.push(i);
                }
            }
        }
        if !unknown.is_empty() {
            let sets: Vec<tidemark_storage::Labels> = unknown
                .iter()
                .map(|&i| {
                    tidemark_storage::Labels::from_pairs(
                        samples[i]
                            .labels
                            .as_slice()
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str())),
                    )
                })
                .collect();
            for (i, id) in unknown.into_iter().zip(db.resolve_many(&sets)?) {
                ids[i] = id;
            }
        }
        Ok(ids)
    }
}
