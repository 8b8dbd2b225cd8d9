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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

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

/// A matcher list to prefetch and its window.
struct Wanted<'m> {
    matchers: &'m [LabelMatcher],
    mint: i64,
    maxt: i64,
}

/// See the module documentation.
pub struct Prefetched<'a> {
    inner: &'a DbSource<'a>,
    sets: Vec<Arc<Fetched>>,
}

impl<'a> Prefetched<'a> {
    /// Reads everything `reads` names from `inner`, holding at most
    /// `max_series` series. A failing read leaves its selections to the
    /// fallback, which reports the error when the evaluator gets there.
    pub fn new(inner: &'a DbSource<'a>, reads: &[SelectorRead<'_>], max_series: usize) -> Self {
        let wanted = wanted(reads);
        let sets = fetch(inner, wanted.iter().collect(), max_series)
            .into_iter()
            .flatten()
            .map(Arc::new)
            .collect();
        Prefetched { inner, sets }
    }

    /// [`Prefetched::new`] for an evaluation at `t_ms`, sharing reads with
    /// the other evaluations at the same `t_ms` through `shared`: a
    /// selection another evaluation already read (or is reading) is taken
    /// from it instead of read again. Only selections this call reads
    /// count against `max_series`.
    pub fn shared(
        inner: &'a DbSource<'a>,
        reads: &[SelectorRead<'_>],
        max_series: usize,
        t_ms: i64,
        shared: &SharedReads,
    ) -> Self {
        let wanted = wanted(reads);
        let claims = shared.claim(t_ms, &wanted);
        // Fill what this call claimed before waiting for anything: every
        // waiter waits only on claims that are being filled, so no cycle.
        let mine: Vec<usize> = (0..wanted.len())
            .filter(|&i| !matches!(claims[i], Claim::Theirs(_)))
            .collect();
        let mut filler = FillOnDrop(
            mine.iter()
                .filter_map(|&i| match &claims[i] {
                    Claim::Mine(slot) => Some(slot.clone()),
                    _ => None,
                })
                .collect(),
        );
        let fetched = fetch(
            inner,
            mine.iter().map(|&i| &wanted[i]).collect(),
            max_series,
        );
        let mut sets = Vec::with_capacity(wanted.len());
        for (&i, f) in mine.iter().zip(fetched) {
            let f = f.map(Arc::new);
            if let Claim::Mine(slot) = &claims[i] {
                let _ = slot.set(f.clone());
            }
            sets.extend(f);
        }
        filler.0.clear();
        for claim in &claims {
            if let Claim::Theirs(slot) = claim
                && let Some(f) = slot.wait()
            {
                shared.hits.fetch_add(1, Ordering::Relaxed);
                sets.push(f.clone());
            }
        }
        Prefetched { inner, sets }
    }

    /// Matcher lists answered from memory.
    pub fn prefetched(&self) -> usize {
        self.sets.len()
    }
}

/// One entry per distinct matcher list, over the union of its windows.
fn wanted<'m>(reads: &[SelectorRead<'m>]) -> Vec<Wanted<'m>> {
    let mut wanted: Vec<Wanted<'m>> = Vec::new();
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
            }),
        }
    }
    wanted
}

/// Reads `wanted` with one engine read per distinct window; `None` for a
/// selection over the series limit, beyond `max_series` in total, or whose
/// read failed (the fallback answers it).
fn fetch(
    inner: &DbSource<'_>,
    wanted: Vec<&Wanted<'_>>,
    max_series: usize,
) -> Vec<Option<Fetched>> {
    let mut held = 0usize;
    let ids: Vec<Option<Vec<SeriesId>>> = wanted
        .iter()
        .map(|w| {
            let ids = inner.select_ids(w.matchers).ok()?;
            if held + ids.len() > max_series {
                return None;
            }
            held += ids.len();
            Some(ids)
        })
        .collect();
    let mut windows: Vec<(i64, i64)> = wanted.iter().map(|w| (w.mint, w.maxt)).collect();
    windows.sort_unstable();
    windows.dedup();
    let mut labels: HashMap<SeriesId, Labels, RandomState> = HashMap::default();
    let mut out: Vec<Option<Fetched>> = wanted.iter().map(|_| None).collect();
    for (mint, maxt) in windows {
        let members: Vec<usize> = (0..wanted.len())
            .filter(|&i| (wanted[i].mint, wanted[i].maxt) == (mint, maxt) && ids[i].is_some())
            .collect();
        let mut all: Vec<SeriesId> = members
            .iter()
            .flat_map(|&i| ids[i].iter().flatten().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        let Ok(data) = inner.read_raw(&all, mint, maxt) else {
            continue;
        };
        let samples: HashMap<SeriesId, Samples, RandomState> = data
            .into_iter()
            .map(|(id, s)| (id, s.iter().map(|s| (s.ts, s.value)).collect()))
            .collect();
        for i in members {
            let series = ids[i]
                .iter()
                .flatten()
                .map(|id| {
                    let l = labels.entry(*id).or_insert_with(|| inner.labels(*id));
                    (
                        l.clone(),
                        samples.get(id).cloned().unwrap_or_else(|| Arc::new([])),
                    )
                })
                .collect();
            // In label order, as the evaluator sorts a selection: its sort
            // then only confirms the order.
            let mut series: Vec<(Labels, Samples)> = series;
            series.sort_by(|a, b| a.0.cmp(&b.0));
            out[i] = Some(Fetched {
                matchers: wanted[i].matchers.to_vec(),
                mint,
                maxt,
                series,
            });
        }
    }
    out
}

/// A selection read once for every evaluation at one time: `None` when
/// its reader could not prefetch it.
type Slot = OnceLock<Option<Arc<Fetched>>>;

/// The selections of one evaluation time, by matchers and window.
type Round = HashMap<String, Arc<Slot>, RandomState>;

/// What [`SharedReads::claim`] decided for one selection.
enum Claim {
    /// This evaluation reads it and fills the slot.
    Mine(Arc<Slot>),
    /// Another evaluation at the same time reads it.
    Theirs(Arc<Slot>),
    /// An evaluation at an older time than the current round: read alone.
    Alone,
}

/// Fills (with `None`) the slots of a claimant that stopped before
/// filling them (a panic), so nobody waits forever.
struct FillOnDrop(Vec<Arc<Slot>>);

impl Drop for FillOnDrop {
    fn drop(&mut self) {
        for slot in &self.0 {
            let _ = slot.set(None);
        }
    }
}

/// Selections read by evaluations at the latest evaluation time, shared
/// by every rule group evaluated at that same time (the scheduler aligns
/// groups of equal interval to the same timestamps). Holds one round: an
/// evaluation at a later time starts a new one and drops the old.
#[derive(Default)]
pub struct SharedReads {
    round: Mutex<(i64, Round)>,
    hits: AtomicU64,
}

impl SharedReads {
    /// Selections taken from another evaluation so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    fn claim(&self, t_ms: i64, wanted: &[Wanted<'_>]) -> Vec<Claim> {
        let mut round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        if t_ms > round.0 {
            *round = (t_ms, HashMap::default());
        }
        if t_ms < round.0 {
            return wanted.iter().map(|_| Claim::Alone).collect();
        }
        wanted
            .iter()
            .map(|w| {
                let key = format!("{:?}\u{0}{}\u{0}{}", w.matchers, w.mint, w.maxt);
                match round.1.get(&key) {
                    Some(slot) => Claim::Theirs(slot.clone()),
                    None => {
                        let slot = Arc::new(Slot::new());
                        round.1.insert(key, slot.clone());
                        Claim::Mine(slot)
                    }
                }
            })
            .collect()
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
            .filter_map(|(labels, samples)| SeriesData::window(labels, samples, start_ms, end_ms))
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
    fn evaluations_at_one_time_share_reads_and_answer_the_same() {
        let (_dir, db) = db();
        let opts = EvalOptions::default();
        let t = 79 * 15_000;
        let exprs: Vec<_> = [
            "rate(m0[5m])",
            "max_over_time(m1[10m])",
            "m2 > 10",
            "sum(m0)",
        ]
        .iter()
        .map(|q| parse(q).unwrap())
        .collect();
        let reads: Vec<_> = exprs
            .iter()
            .flat_map(|e| instant_reads(e, t, &opts))
            .collect();
        let plain = DbSource::new(&db, 1000);
        let want: Vec<String> = exprs
            .iter()
            .map(|e| show(eval_instant(&plain, e, t, &opts).unwrap()))
            .collect();
        let shared = SharedReads::default();
        // Eight evaluations at once, as the scheduler's groups run.
        let sources: Vec<DbSource<'_>> = (0..8).map(|_| DbSource::new(&db, 1000)).collect();
        std::thread::scope(|s| {
            for src in &sources {
                let (reads, exprs, want, shared, opts) = (&reads, &exprs, &want, &shared, &opts);
                s.spawn(move || {
                    let pre = Prefetched::shared(src, reads, 1000, t, shared);
                    for (e, w) in exprs.iter().zip(want) {
                        assert_eq!(&show(eval_instant(&pre, e, t, opts).unwrap()), w);
                    }
                });
            }
        });
        // m0 over 5m (twice: rate and the lookback of `sum(m0)`), m1 over
        // 10m, m2 over 5m: three selections, each read by one evaluation.
        let read_by: usize = sources.iter().filter(|s| s.reads().raw_samples > 0).count();
        assert!((1..=3).contains(&read_by), "{read_by}");
        assert_eq!(
            shared.hits(),
            7 * 3,
            "every other evaluation took all three"
        );
        // An evaluation at an older time reads alone (and still answers).
        let late = DbSource::new(&db, 1000);
        let pre = Prefetched::shared(&late, &reads, 1000, t - 15_000, &shared);
        assert!(late.reads().raw_samples > 0);
        assert_eq!(shared.hits(), 21);
        let e = parse("m2 > 10").unwrap();
        assert_eq!(
            show(eval_instant(&pre, &e, t - 15_000, &opts).unwrap()),
            show(eval_instant(&plain, &e, t - 15_000, &opts).unwrap())
        );
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
