//! The trait the evaluator reads series through, and an in-memory implementation.
//!
//! Architecture invariant: this crate never imports `tidemark-storage`;
//! `src/` implements [`SeriesSource`] over the engine. The evaluator calls
//! [`SeriesSource::select`] once per selector per query, over the whole
//! time range it needs, and walks the returned samples with cursors.

use crate::catalog::Func;
use crate::error::SourceError;
use crate::labels::{LabelMatcher, Labels};

/// One series as returned by a [`SeriesSource`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// Labels, `__name__` included.
    pub labels: Labels,
    /// `(timestamp_ms, value)` sorted ascending by time, one per timestamp.
    /// Stale markers ([`crate::value::STALE_NAN_BITS`]) are passed through.
    pub samples: Vec<(i64, f64)>,
}

impl SeriesData {
    /// The samples of `samples` (sorted by time) in `[start_ms, end_ms]`
    /// as a series, or `None` when there are none.
    pub fn window(
        labels: &Labels,
        samples: &[(i64, f64)],
        start_ms: i64,
        end_ms: i64,
    ) -> Option<SeriesData> {
        let lo = samples.partition_point(|&(t, _)| t < start_ms);
        let hi = samples.partition_point(|&(t, _)| t <= end_ms);
        (lo < hi).then(|| SeriesData {
            labels: labels.clone(),
            samples: samples[lo..hi].to_vec(),
        })
    }
}

/// What the evaluator is about to compute from a selection, so that a
/// source holding pre-aggregated data (rollup tiers) can answer with
/// [`Selection::Buckets`] where that gives the same answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectHints {
    /// First evaluation time and the step between evaluations, ms (an
    /// instant query is one step of 1 ms).
    pub start_ms: i64,
    /// Step between evaluations, ms.
    pub step_ms: i64,
    /// The range of a range selector; 0 for an instant selector.
    pub range_ms: i64,
    /// The selector's offset.
    pub offset_ms: i64,
    /// The range function applied (`None` for an instant selector).
    pub func: Option<Func>,
}

impl SelectHints {
    /// Whether the function gives the same answer over buckets as over
    /// the samples they summarise (bucket-aligned windows): `min`, `max`,
    /// `sum`, `count`, `avg`, `last`, `present` `_over_time`, `increase`
    /// and `rate` (those two up to the extrapolation rule of
    /// `eval::rollup`), and instant selectors (the bucket's last value).
    pub fn buckets_exact(&self) -> bool {
        matches!(
            self.func,
            None | Some(
                Func::MinOverTime
                    | Func::MaxOverTime
                    | Func::SumOverTime
                    | Func::CountOverTime
                    | Func::AvgOverTime
                    | Func::LastOverTime
                    | Func::PresentOverTime
                    | Func::Increase
                    | Func::Rate
            )
        )
    }
}

/// One bucket `[start, end)` of a series summarised: what a rollup tier
/// stores. A raw sample is the bucket `[t, t + 1)` with `count` 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Bucket start (inclusive) and end (exclusive), ms.
    pub start: i64,
    #[allow(missing_docs)]
    pub end: i64,
    #[allow(missing_docs)]
    pub min: f64,
    #[allow(missing_docs)]
    pub max: f64,
    #[allow(missing_docs)]
    pub sum: f64,
    /// Samples summarised.
    pub count: u64,
    /// Values of the first and last sample.
    pub first: f64,
    #[allow(missing_docs)]
    pub last: f64,
    /// Counter increase between the bucket's own samples, resets handled
    /// (the step from the previous bucket's `last` is not included).
    pub increase: f64,
}

impl Bucket {
    /// A raw sample as a one-millisecond bucket.
    pub fn sample(t: i64, v: f64) -> Self {
        Bucket {
            start: t,
            end: t + 1,
            min: v,
            max: v,
            sum: v,
            count: 1,
            first: v,
            last: v,
            increase: 0.0,
        }
    }
}

/// One series as buckets sorted by start, never overlapping; buckets of
/// different widths may follow each other (tiers stitched together).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSeries {
    /// Labels, `__name__` included.
    pub labels: Labels,
    #[allow(missing_docs)]
    pub buckets: Vec<Bucket>,
}

/// What [`SeriesSource::select_hinted`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// Raw samples, exactly as [`SeriesSource::select`].
    Samples(Vec<SeriesData>),
    /// Buckets covering the time asked for.
    Buckets(Vec<BucketSeries>),
}

/// Read access to series for the evaluator and the HTTP API.
pub trait SeriesSource {
    /// Series matching all `matchers` (Prometheus semantics: `=`, `!=`,
    /// `=~`, `!~` anchored; a missing label is `""`), with their samples in
    /// `[start_ms, end_ms]` (both inclusive). Series without a sample in
    /// the range may be omitted.
    ///
    /// # Errors
    /// [`SourceError`] when the backing store fails.
    fn select(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, SourceError>;

    /// [`select`](Self::select), told what the evaluator will compute, so
    /// the source may answer with buckets from a rollup tier. For
    /// [`Selection::Buckets`], a bucket is part of the answer when its
    /// start is in `[start_ms, end_ms]`; instant selectors
    /// (`hints.range_ms == 0`) also want the bucket that ends inside the
    /// range. The default reads raw samples.
    ///
    /// # Errors
    /// [`SourceError`] when the backing store fails.
    fn select_hinted(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
        hints: &SelectHints,
    ) -> Result<Selection, SourceError> {
        let _ = hints;
        Ok(Selection::Samples(self.select(matchers, start_ms, end_ms)?))
    }

    /// Label names used by series matching `matchers` (all series when
    /// empty) in the time range, sorted and unique.
    ///
    /// The default goes through [`select`](Self::select); sources with an
    /// index should answer from it.
    ///
    /// # Errors
    /// [`SourceError`] when the backing store fails.
    fn label_names(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        let series = select_or_all(self, matchers, start_ms, end_ms)?;
        Ok(sorted_unique(series.into_iter().flat_map(|s| {
            s.labels
                .as_slice()
                .iter()
                .map(|(k, _)| k.to_string())
                .collect::<Vec<_>>()
        })))
    }

    /// Values of label `name` on series matching `matchers` (all series
    /// when empty) in the time range, sorted and unique.
    ///
    /// # Errors
    /// [`SourceError`] when the backing store fails.
    fn label_values(
        &self,
        name: &str,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, SourceError> {
        let series = select_or_all(self, matchers, start_ms, end_ms)?;
        Ok(sorted_unique(
            series
                .into_iter()
                .filter_map(|s| s.labels.get(name).map(str::to_string)),
        ))
    }
}

/// `select`, where no matchers means every series.
fn select_or_all<S: SeriesSource + ?Sized>(
    src: &S,
    matchers: &[LabelMatcher],
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<SeriesData>, SourceError> {
    if matchers.is_empty() {
        src.select(&[match_all()], start_ms, end_ms)
    } else {
        src.select(matchers, start_ms, end_ms)
    }
}

/// The values sorted, duplicates removed.
pub fn sorted_unique(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = values.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn match_all() -> LabelMatcher {
    LabelMatcher::new(
        crate::labels::METRIC_NAME,
        crate::labels::MatchOp::Regex,
        ".+",
    )
    .expect("static regex")
}

/// A [`SeriesSource`] over series held in memory (tests, examples).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    series: Vec<SeriesData>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series with `labels` (created if new); keeps
    /// samples sorted, a later sample at an existing timestamp replaces it.
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = (i64, f64)>) {
        let idx = match self.series.iter().position(|s| s.labels == labels) {
            Some(i) => i,
            None => {
                self.series.push(SeriesData {
                    labels,
                    samples: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        let s = &mut self.series[idx].samples;
        for (t, v) in samples {
            match s.binary_search_by_key(&t, |&(st, _)| st) {
                Ok(i) => s[i].1 = v,
                Err(i) => s.insert(i, (t, v)),
            }
        }
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// All series.
    pub fn series(&self) -> &[SeriesData] {
        &self.series
    }
}

impl SeriesSource for MemorySource {
    fn select(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, SourceError> {
        Ok(self
            .series
            .iter()
            .filter(|s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
            .filter_map(|s| SeriesData::window(&s.labels, &s.samples, start_ms, end_ms))
            .collect())
    }
}
