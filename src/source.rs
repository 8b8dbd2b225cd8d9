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

use tidemark_query::{
    LabelMatcher, Labels, MatchOp, SeriesData, SeriesSource, SourceError, sorted_unique,
};
use tidemark_storage::{Db, Matcher, SeriesId};

pub struct DbSource<'a> {
    db: &'a Db,
    max_series: usize,
}

impl<'a> DbSource<'a> {
    pub fn new(db: &'a Db, max_series: usize) -> Self {
        Self { db, max_series }
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
        let l = self.db.labels(id).unwrap_or_default();
        Labels::from_pairs(l.iter().map(|l| (l.name.as_str(), l.value.as_str())))
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
        let data = self
            .db
            .read(&ids, start_ms, end_ms)
            .map_err(|e| SourceError::Backend(Box::new(e)))?;
        Ok(data
            .into_iter()
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(id, samples)| SeriesData {
                labels: self.labels(id),
                samples: samples.into_iter().map(|s| (s.ts, s.value)).collect(),
            })
            .collect())
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
