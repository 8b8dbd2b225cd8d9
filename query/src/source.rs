//! The trait the evaluator reads series through, and an in-memory implementation.
//!
//! Architecture invariant: this crate never imports `tidemark-storage`;
//! `src/` implements [`SeriesSource`] over the engine. The evaluator calls
//! [`SeriesSource::select`] once per selector per query, over the whole
//! time range it needs, and walks the returned samples with cursors.

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
                .map(|(k, _)| k.clone())
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
            .filter_map(|s| {
                let lo = s.samples.partition_point(|&(t, _)| t < start_ms);
                let hi = s.samples.partition_point(|&(t, _)| t <= end_ms);
                (lo < hi).then(|| SeriesData {
                    labels: s.labels.clone(),
                    samples: s.samples[lo..hi].to_vec(),
                })
            })
            .collect())
    }
}
