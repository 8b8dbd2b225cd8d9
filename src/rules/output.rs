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

use std::collections::HashMap;

use foldhash::fast::RandomState;

use tidemark_query::{Labels, Sample, stale_nan};
use tidemark_storage::{Db, SeriesId, Ticket, WriteBatch};

use super::GroupOutput;
use super::scheduler::RulesError;

/// One group's output bookkeeping between rounds.
#[derive(Default)]
pub(crate) struct OutputWriter {
    /// Label sets written, with their series ids and the last round
    /// (`round`) that produced them: one hash lookup per output sample
    /// marks it, and the unmarked ones are the series that disappeared.
    written: HashMap<Labels, (SeriesId, u64), RandomState>,
    /// Rounds written so far.
    round: u64,
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
        self.round += 1;
        let round = self.round;
        let mut ids = self.ids(db, &out.samples, round)?;
        if out.errors.is_empty() {
            for (labels, (id, last)) in &self.written {
                if *last != round {
                    out.samples.push(Sample {
                        labels: labels.clone(),
                        t,
                        v: stale_nan(),
                    });
                    ids.push(*id);
                }
            }
            self.written.retain(|_, (_, last)| *last == round);
        }
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

    /// The series id of every sample, marking it written in `round`:
    /// known ones from earlier rounds, the rest resolved (created if new)
    /// in one index call.
    fn ids(
        &mut self,
        db: &Db,
        samples: &[Sample],
        round: u64,
    ) -> Result<Vec<SeriesId>, RulesError> {
        // Id 0 is never a series (ids start at 1); every 0 is replaced below.
        let mut ids = Vec::with_capacity(samples.len());
        let mut unknown = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            match self.written.get_mut(&s.labels) {
                Some((id, last)) => {
                    *last = round;
                    ids.push(*id);
                }
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
                            .map(|(k, v)| (&**k, &**v)),
                    )
                })
                .collect();
            for (i, id) in unknown.into_iter().zip(db.resolve_many(&sets)?) {
                ids[i] = id;
                self.written.insert(samples[i].labels.clone(), (id, round));
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleEvalError;
    use tidemark_storage::{Matcher, Options};

    fn sample(name: &str, t: i64) -> Sample {
        Sample {
            labels: Labels::from_pairs([("__name__", name)]),
            t,
            v: 1.0,
        }
    }

    /// `(metric, value is a stale marker)` of every sample written at `t`.
    fn at(db: &Db, t: i64) -> Vec<(String, bool)> {
        let ids =
            db.select(&[Matcher::new("__name__", tidemark_storage::MatchOp::Regex, ".+").unwrap()]);
        let mut got: Vec<(String, bool)> = db
            .read(&ids, t, t)
            .unwrap()
            .into_iter()
            .filter_map(|(id, s)| {
                let name = db.labels(id)?.get("__name__")?.to_string();
                s.first()
                    .map(|s| (name, tidemark_query::is_stale_nan(s.value)))
            })
            .collect();
        got.sort();
        got
    }

    #[test]
    fn vanished_series_are_marked_stale_except_after_a_failed_round() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let feed = crate::forward::Feed::default();
        let mut w = OutputWriter::default();
        let mut round = |samples: Vec<Sample>, failed: bool, t: i64| {
            let mut out = GroupOutput {
                samples,
                ..GroupOutput::default()
            };
            if failed {
                out.errors.push(RuleEvalError::ResultType {
                    index: 0,
                    name: "r".into(),
                    got: "string",
                });
            }
            w.collect_previous().unwrap();
            w.write(&db, &feed, &mut out, t).unwrap();
            w.collect_previous().unwrap();
        };
        round(vec![sample("a", 1000), sample("b", 1000)], false, 1000);
        assert_eq!(at(&db, 1000), [("a".into(), false), ("b".into(), false)]);
        round(vec![sample("a", 2000)], false, 2000);
        assert_eq!(at(&db, 2000), [("a".into(), false), ("b".into(), true)]);
        // A failed round marks nothing stale and forgets nothing.
        round(vec![], true, 3000);
        assert_eq!(at(&db, 3000), []);
        round(vec![sample("b", 4000)], false, 4000);
        assert_eq!(at(&db, 4000), [("a".into(), true), ("b".into(), false)]);
        round(vec![], false, 5000);
        assert_eq!(at(&db, 5000), [("b".into(), true)]);
        round(vec![], false, 6000);
        assert_eq!(at(&db, 6000), [], "a stale series is marked once");
    }
}
