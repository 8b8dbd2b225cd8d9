//! [`DbSource`]: the query layer's [`SeriesSource`] implemented over the
//! storage engine. This is the one place where `tidemark-query` and
//! `tidemark-storage` meet.
//!
//! Invariants:
//! - Matchers keep Prometheus semantics end to end (anchored regexes, a
//!   missing label equals ""), because both crates implement them that way
//!   and this adapter only translates operator names.
//! - The series limit is enforced before any sample is read, so a selector
//!   matching millions of series fails fast instead of loading them.
//! - [`SeriesSource::select_hinted`] goes through the tier planner
//!   (`plan`): raw samples unless rollup tiers answer part of the range
//!   exactly, then buckets stitched per series in time order, each time
//!   answered by exactly one tier (or raw). What each selection reads is
//!   counted ([`ReadCounts`]), so tests can check a year at a 1 h step
//!   touches no raw sample.

pub mod label_cache;
pub mod plan;
pub mod prefetch;

use std::sync::atomic::{AtomicU64, Ordering};

pub use label_cache::LabelCache;
pub use plan::TierChoice;
pub use prefetch::{Prefetched, SharedReads};
use tidemark_query::{
    Bucket, BucketSeries, LabelMatcher, Labels, MatchOp, SelectHints, Selection, SeriesData,
    SeriesSource, SourceError, sorted_unique,
};
use tidemark_storage::{Db, Matcher, SeriesId};

/// What a [`DbSource`] has read so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Raw samples returned by the engine.
    pub raw_samples: u64,
    /// Rollup points returned, over all tiers.
    pub rollup_points: u64,
}

pub struct DbSource<'a> {
    db: &'a Db,
    max_series: usize,
    labels: Option<&'a LabelCache>,
    tier: TierChoice,
    raw_samples: AtomicU64,
    rollup_points: AtomicU64,
}

impl<'a> DbSource<'a> {
    pub fn new(db: &'a Db, max_series: usize) -> Self {
        Self {
            db,
            max_series,
            labels: None,
            tier: TierChoice::Auto,
            raw_samples: AtomicU64::new(0),
            rollup_points: AtomicU64::new(0),
        }
    }

    /// Converts labels through `cache` (kept by a long-lived reader).
    pub fn with_label_cache(mut self, cache: &'a LabelCache) -> Self {
        self.labels = Some(cache);
        self
    }

    /// Forces a tier (the `tier=` query parameter).
    pub fn with_tier(mut self, tier: TierChoice) -> Self {
        self.tier = tier;
        self
    }

    /// Parses a `tier=` value: `raw` or a configured tier's name.
    pub fn parse_tier(db: &Db, value: &str) -> Result<TierChoice, String> {
        if value == "raw" {
            return Ok(TierChoice::Raw);
        }
        let tiers = db.tiers();
        if tiers.iter().any(|t| t.name == value) {
            return Ok(TierChoice::Tier(value.to_string()));
        }
        let mut names = vec!["raw".to_string()];
        names.extend(tiers.into_iter().map(|t| t.name));
        Err(format!(
            "unknown tier {value:?}; this server has {}",
            names.join(", ")
        ))
    }

    /// What this source has read so far.
    pub fn reads(&self) -> ReadCounts {
        ReadCounts {
            raw_samples: self.raw_samples.load(Ordering::Relaxed),
            rollup_points: self.rollup_points.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn read_raw(
        &self,
        ids: &[SeriesId],
        start: i64,
        end: i64,
    ) -> Result<Vec<(SeriesId, Vec<tidemark_storage::Sample>)>, SourceError> {
        let data = self
            .db
            .read(ids, start, end)
            .map_err(|e| SourceError::Backend(Box::new(e)))?;
        let n: usize = data.iter().map(|d| d.1.len()).sum();
        self.raw_samples.fetch_add(n as u64, Ordering::Relaxed);
        Ok(data)
    }

    /// The planned selection: buckets from the tiers `segs` name, raw
    /// samples as one-millisecond buckets elsewhere.
    fn select_segments(
        &self,
        matchers: &[LabelMatcher],
        segs: &[plan::Segment],
        tiers: &[tidemark_storage::TierInfo],
        instant: bool,
    ) -> Result<Vec<BucketSeries>, SourceError> {
        let ids = self.select_ids(matchers)?;
        let mut per: Vec<Vec<Bucket>> = vec![Vec::new(); ids.len()];
        for (k, seg) in segs.iter().enumerate() {
            let Some(i) = seg.tier else {
                for (j, (_, samples)) in self
                    .read_raw(&ids, seg.from, seg.to - 1)?
                    .into_iter()
                    .enumerate()
                {
                    per[j].extend(samples.iter().map(|s| Bucket::sample(s.ts, s.value)));
                }
                continue;
            };
            let t = &tiers[i];
            let r = t.resolution_ms;
            // An instant selector also wants the bucket that ends inside
            // its first lookback window.
            let from = if instant && k == 0 {
                seg.from - r
            } else {
                seg.from
            };
            let points = self
                .db
                .read_rollup(&t.name, &ids, from, seg.to - r)
                .map_err(|e| SourceError::Backend(Box::new(e)))?
                .unwrap_or_default();
            let n: usize = points.iter().map(|p| p.1.len()).sum();
            self.rollup_points.fetch_add(n as u64, Ordering::Relaxed);
            for (j, (_, pts)) in points.into_iter().enumerate() {
                per[j].extend(pts.iter().map(|p| Bucket {
                    start: p.start,
                    end: p.start + r,
                    min: p.min,
                    max: p.max,
                    sum: p.sum,
                    count: p.count,
                    first: p.first,
                    last: p.last,
                    increase: p.increase,
                }));
            }
        }
        Ok(ids
            .into_iter()
            .zip(per)
            .filter(|(_, b)| !b.is_empty())
            .map(|(id, buckets)| BucketSeries {
                labels: self.labels(id),
                buckets,
            })
            .collect())
    }

    /// The tiers and segments a hinted select over `[start_ms, end_ms]`
    /// reads, or `None` when it reads raw samples only (what
    /// [`SeriesSource::select`] returns).
    pub(crate) fn tier_plan(
        &self,
        start_ms: i64,
        end_ms: i64,
        hints: &SelectHints,
    ) -> Option<(Vec<tidemark_storage::TierInfo>, Vec<plan::Segment>)> {
        if self.tier == TierChoice::Raw {
            return None;
        }
        let tiers = self.db.tiers();
        let segs = plan::plan(
            &tiers,
            self.db.raw_start(),
            start_ms,
            end_ms,
            hints,
            &self.tier,
        );
        if self.tier == TierChoice::Auto && segs.iter().all(|s| s.tier.is_none()) {
            return None;
        }
        Some((tiers, segs))
    }

    /// Ids of the series matching `matchers`, within the series limit.
    pub fn select_ids(&self, matchers: &[LabelMatcher]) -> Result<Vec<SeriesId>, SourceError> {
        let storage: Vec<Matcher> = matchers.iter().map(to_storage).collect::<Result<_, _>>()?;
        let ids = self.db.select(&storage);
        if ids.len() > self.max_series {
            return Err(SourceError::TooManySeries {
                limit: self.max_series,
            });
        }
        Ok(ids)
    }

    /// The labels of a series in the query layer's type.
    pub fn labels(&self, id: SeriesId) -> Labels {
        let load = || {
            let l = self.db.labels(id).unwrap_or_default();
            Labels::from_pairs(l.iter().map(|l| (l.name.as_str(), l.value.as_str())))
        };
        match self.labels {
            Some(cache) => cache.get_or_load(id, load),
            None => load(),
        }
    }
}

/// The storage matchers of a series selector such as
/// `{__name__=~"recovery_.*"}` (configuration: retention overrides).
///
/// # Errors
/// The text is not a valid selector; the message says why.
pub fn selector_matchers(selector: &str) -> Result<Vec<Matcher>, String> {
    match tidemark_query::parse(selector) {
        Ok(tidemark_query::ast::Expr::VectorSelector(sel)) => sel
            .matchers
            .iter()
            .map(|m| to_storage(m).map_err(|e| e.to_string()))
            .collect(),
        Ok(_) => Err(format!("{selector:?} is not a series selector")),
        Err(e) => Err(format!("invalid selector {selector:?}: {e}")),
    }
}

fn to_storage(m: &LabelMatcher) -> Result<Matcher, SourceError> {
    let op = match m.op {
        MatchOp::Equal => tidemark_storage::MatchOp::Equal,
        MatchOp::NotEqual => tidemark_storage::MatchOp::NotEqual,
        MatchOp::Regex => tidemark_storage::MatchOp::Regex,
        MatchOp::NotRegex => tidemark_storage::MatchOp::NotRegex,
    };
    Matcher::new(&m.name, op, &m.value).map_err(|e| SourceError::Backend(Box::new(e)))
}

impl SeriesSource for DbSource<'_> {
    fn select(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, SourceError> {
        let ids = self.select_ids(matchers)?;
        let data = self.read_raw(&ids, start_ms, end_ms)?;
        Ok(data
            .into_iter()
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(id, samples)| SeriesData {
                labels: self.labels(id),
                samples: samples.into_iter().map(|s| (s.ts, s.value)).collect(),
            })
            .collect())
    }

    fn select_hinted(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
        hints: &SelectHints,
    ) -> Result<Selection, SourceError> {
        let Some((tiers, segs)) = self.tier_plan(start_ms, end_ms, hints) else {
            return Ok(Selection::Samples(self.select(matchers, start_ms, end_ms)?));
        };
        Ok(Selection::Buckets(self.select_segments(
            matchers,
            &segs,
            &tiers,
            hints.range_ms == 0,
        )?))
    }

    /// Names from the index alone (no samples are read); the time range is
    /// not applied, as the index keeps no per-series time bounds.
    fn label_names(
        &self,
        matchers: &[LabelMatcher],
        _start_ms: i64,
        _end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        if matchers.is_empty() {
            return Ok(self.db.label_names());
        }
        Ok(sorted_unique(
            self.select_ids(matchers)?.into_iter().flat_map(|id| {
                self.db
                    .labels(id)
                    .map(|l| l.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
                    .unwrap_or_default()
            }),
        ))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[LabelMatcher],
        _start_ms: i64,
        _end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        if matchers.is_empty() {
            return Ok(self.db.label_values(name));
        }
        Ok(sorted_unique(
            self.select_ids(matchers)?
                .into_iter()
                .filter_map(|id| self.db.labels(id)?.get(name).map(str::to_string)),
        ))
    }
}
