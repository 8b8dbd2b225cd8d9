//! [`Prefetched`]: a [`SeriesSource`] that reads the selections a batch of
//! expressions will make (a rule group at one evaluation time) up front,
//! in one engine read per distinct time window, and answers the
//! evaluator's selects from memory.
//!
//! Why: a rule group evaluates many small queries at the same time `t`.
//! Read one by one, every selector is a round trip to each shard writer
//! and a label conversion per series; read as a batch, a group of 100
//! rules costs a couple of round trips and converts each series' labels
//! once.
//!
//! Invariants:
//! - A select is answered from memory only when an equal matcher list was
//!   prefetched over a window covering the requested one; anything else
//!   (other matchers, a wider window, tier-hinted selects, a selection the
//!   prefetch skipped because it exceeded the series limit) goes to the
//!   wrapped [`DbSource`], so answers never depend on the prefetch being
//!   complete — only their cost does.
//! - Prefetched samples are what [`DbSource::select`] would have returned
//!   at construction time: later appends are not seen (a rule group reads
//!   one consistent snapshot per round).
//! - At most `max_series` series (counted per selection) are held; further
//!   selections are left to the fallback.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use tidemark_query::{
    LabelMatcher, Labels, SelectHints, Selection, SelectorRead, SeriesData, SeriesSource,
    SourceError,
};
use tidemark_storage::SeriesId;

use super::DbSource;

/// A series' prefetched samples, shared by the selections that want it.
type Samples = Arc<[(i64, f64)]>;

/// One prefetched matcher list.
struct Fetched {
    matchers: Vec<LabelMatcher>,
    mint: i64,
    maxt: i64,
    /// Every matching series over `[mint, maxt]` (possibly empty).
    series: Vec<(Labels, Samples)>,
}

/// A matcher list to prefetch, with its window and matching series.
struct Wanted<'m> {
    matchers: &'m [LabelMatcher],
    mint: i64,
    maxt: i64,
    ids: Vec<SeriesId>,
}

/// See the module documentation.
pub struct Prefetched<'a> {
    inner: &'a DbSource<'a>,
    sets: Vec<Fetched>,
}

impl<'a> Prefetched<'a> {
    /// Reads everything `reads` names from `inner`, holding at most
    /// `max_series` series. A failing read leaves its selections to the
    /// fallback, which reports the error when the evaluator gets there.
    pub fn new(inner: &'a DbSource<'a>, reads: &[SelectorRead<'_>], max_series: usize) -> Self {
        // One entry per distinct matcher list, over the union of its windows.
        let mut wanted: Vec<Wanted<'_>> = Vec::new();
        for r in reads {
            match wanted.iter_mut().find(|w| w.matchers == r.matchers) {
                Some(w) => {
                    w.mint = w.mint.min(r.mint);
                    w.maxt = w.maxt.max(r.maxt);
                }
                None => wanted.push(Wanted {
                    matchers: r.matchers,
                    mint: r.mint,
                    maxt: r.maxt,
                    ids: Vec::new(),
                }),
            }
        }
        let mut held = 0usize;
        wanted.retain_mut(|w| {
            let Ok(ids) = inner.select_ids(w.matchers) else {
                return false;
            };
            if held + ids.len() > max_series {
                return false;
            }
            held += ids.len();
            w.ids = ids;
            true
        });
        // One engine read per distinct window, over the union of its ids.
        let mut windows: Vec<(i64, i64)> = wanted.iter().map(|w| (w.mint, w.maxt)).collect();
        windows.sort_unstable();
        windows.dedup();
        let mut labels: HashMap<SeriesId, Labels, RandomState> = HashMap::default();
        let mut sets = Vec::with_capacity(wanted.len());
        for (mint, maxt) in windows {
            let group: Vec<&Wanted<'_>> = wanted
                .iter()
                .filter(|w| (w.mint, w.maxt) == (mint, maxt))
                .collect();
            let mut ids: Vec<SeriesId> = group.iter().flat_map(|w| w.ids.iter().copied()).collect();
            ids.sort_unstable();
            ids.dedup();
            let Ok(data) = inner.read_raw(&ids, mint, maxt) else {
                continue;
            };
            let samples: HashMap<SeriesId, Samples, RandomState> = data
                .into_iter()
                .map(|(id, s)| (id, s.iter().map(|s| (s.ts, s.value)).collect()))
                .collect();
            for w in group {
                let series = w
                    .ids
                    .iter()
                    .map(|id| {
                        let l = labels.entry(*id).or_insert_with(|| inner.labels(*id));
                        (
                            l.clone(),
                            samples.get(id).cloned().unwrap_or_else(|| Arc::new([])),
                        )
                    })
                    .collect();
                sets.push(Fetched {
                    matchers: w.matchers.to_vec(),
                    mint,
                    maxt,
                    series,
                });
            }
        }
        Prefetched { inner, sets }
    }

    /// Matcher lists answered from memory.
    pub fn prefetched(&self) -> usize {
        self.sets.len()
    }
}

impl SeriesSource for Prefetched<'_> {
    fn select(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, SourceError> {
        let Some(set) = self
            .sets
            .iter()
            .find(|s| s.matchers == matchers && s.mint <= start_ms && end_ms <= s.maxt)
        else {
            return self.inner.select(matchers, start_ms, end_ms);
        };
        Ok(set
            .series
            .iter()
            .filter_map(|(labels, samples)| {
                let lo = samples.partition_point(|&(t, _)| t < start_ms);
                let hi = samples.partition_point(|&(t, _)| t <= end_ms);
                (lo < hi).then(|| SeriesData {
                    labels: labels.clone(),
                    samples: samples[lo..hi].to_vec(),
                })
            })
            .collect())
    }

    /// Answered from memory where the engine would read raw samples;
    /// selects it would answer from rollup tiers go to it.
    fn select_hinted(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
        hints: &SelectHints,
    ) -> Result<Selection, SourceError> {
        if self.inner.tier_plan(start_ms, end_ms, hints).is_some() {
            return self.inner.select_hinted(matchers, start_ms, end_ms, hints);
        }
        Ok(Selection::Samples(self.select(matchers, start_ms, end_ms)?))
    }

    fn label_names(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        self.inner.label_names(matchers, start_ms, end_ms)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        self.inner.label_values(name, matchers, start_ms, end_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_query::{EvalOptions, Value, eval_instant, instant_reads, parse};
    use tidemark_storage::{Db, Labels as DbLabels, Options, WriteBatch};

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let labels: Vec<DbLabels> = (0..6)
            .flat_map(|m| {
                (0..4).map(move |c| {
                    DbLabels::metric(
                        &format!("m{m}"),
                        [("c", format!("c{c}")), ("job", "j".to_string())],
                    )
                })
            })
            .collect();
        let ids = db.resolve_many(&labels).unwrap();
        for k in 0..80i64 {
            let mut b = WriteBatch::new();
            for (i, id) in ids.iter().enumerate() {
                // One series stops early, one sends a stale marker.
                if i == 5 && k > 20 {
                    continue;
                }
                let v = if i == 6 && k == 70 {
                    f64::from_bits(tidemark_query::STALE_NAN_BITS)
                } else {
                    (k * (i as i64 + 1)) as f64
                };
                b.push(*id, k * 15_000, v);
            }
            db.append(&b).unwrap();
        }
        (dir, db)
    }

    fn show(v: Value) -> String {
        match v {
            Value::Vector(s) => s
                .iter()
                .map(|s| format!("{} {}", s.labels, s.v))
                .collect::<Vec<_>>()
                .join("\n"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn answers_equal_the_engine_and_come_from_memory() {
        let (_dir, db) = db();
        let exprs: Vec<_> = [
            "rate(m0[5m])",
            "m1 offset 2m",
            "sum by (job) (increase(m0[10m]))",
            "max_over_time(m2{c=~\"c[12]\"}[10m]) > 60",
            "m3 / on(c) m4",
            "count_over_time(m1[20m])",
            "absent(m9)",
        ]
        .iter()
        .map(|q| parse(q).unwrap())
        .collect();
        let opts = EvalOptions::default();
        let t = 79 * 15_000;
        let plain = DbSource::new(&db, 1000);
        let inner = DbSource::new(&db, 1000);
        let reads: Vec<_> = exprs
            .iter()
            .flat_map(|e| instant_reads(e, t, &opts))
            .collect();
        let pre = Prefetched::new(&inner, &reads, 1000);
        assert_eq!(pre.prefetched(), 6, "one set per distinct matcher list");
        let read_at_start = inner.reads().raw_samples;
        assert!(read_at_start > 0);
        for e in &exprs {
            let want = show(eval_instant(&plain, e, t, &opts).unwrap());
            let got = show(eval_instant(&pre, e, t, &opts).unwrap());
            assert_eq!(got, want);
        }
        assert_eq!(
            inner.reads().raw_samples,
            read_at_start,
            "every select was answered from memory"
        );
        // A window the prefetch does not cover goes to the engine.
        let wider = parse("count_over_time(m0[19m])").unwrap();
        let got = show(eval_instant(&pre, &wider, t, &opts).unwrap());
        assert_eq!(got, show(eval_instant(&plain, &wider, t, &opts).unwrap()));
        assert!(inner.reads().raw_samples > read_at_start);
    }

    #[test]
    fn selections_over_the_series_limit_are_left_to_the_engine() {
        let (_dir, db) = db();
        let opts = EvalOptions::default();
        let all = parse("count({job=\"j\"})").unwrap();
        let one = parse("m0").unwrap();
        let reads: Vec<_> = [&all, &one]
            .into_iter()
            .flat_map(|e| instant_reads(e, 79 * 15_000, &opts))
            .collect();
        // 24 series match `{job="j"}`: more than the source allows.
        let inner = DbSource::new(&db, 10);
        let pre = Prefetched::new(&inner, &reads, 10);
        assert_eq!(pre.prefetched(), 1, "only m0 (4 series) fits");
        let err = eval_instant(&pre, &all, 79 * 15_000, &opts).unwrap_err();
        assert!(err.to_string().contains("10"), "{err}");
        // The prefetch's own budget also bounds what it holds.
        let inner = DbSource::new(&db, 1000);
        let pre = Prefetched::new(&inner, &reads, 20);
        assert_eq!(pre.prefetched(), 1);
        assert_eq!(
            show(eval_instant(&pre, &all, 79 * 15_000, &opts).unwrap()),
            "{} 23",
            "24 series, one of them without a sample in the lookback window"
        );
    }
}
