//! From parsed points to a [`WriteBatch`]: raw series keys are mapped to
//! [`SeriesId`]s through a shared [`SeriesCache`]; series a request is the
//! first to send are created together, in one index commit, at the end of
//! the request.
//!
//! Invariants:
//! - A cache hit costs one hash and one striped read lock, never a label
//!   set allocation; only misses build [`Labels`].
//! - Samples of a new series keep their order (they wait in `deferred` and
//!   are appended after the resolution), so per-series time order is the
//!   request's.
//! - Limits are checked before creating anything: a request that would
//!   exceed `max_new_series_per_request` or the index's `max_series` has
//!   those series (and only those) rejected, each named in the outcome.

use std::collections::HashMap;
use std::sync::RwLock;

use tidemark_storage::{Db, Labels, SeriesId, WriteBatch};

const STRIPES: usize = 16;

/// Raw series key (as the wire format spells it) → id, shared by every
/// request. Keys are opaque bytes; different spellings of one series (tag
/// order) map to the same id through the index.
pub struct SeriesCache {
    stripes: Vec<RwLock<Stripe>>,
    /// Picks the stripe. foldhash (seeded per process) instead of SipHash:
    /// hashing every sample's key with SipHash was 20 % of server CPU
    /// during line-protocol ingest.
    hasher: foldhash::fast::RandomState,
}

type Stripe = HashMap<Box<[u8]>, SeriesId, foldhash::fast::RandomState>;

impl Default for SeriesCache {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| RwLock::default()).collect(),
            hasher: Default::default(),
        }
    }
}

impl SeriesCache {
    fn stripe(&self, key: &[u8]) -> &RwLock<Stripe> {
        use std::hash::BuildHasher;
        &self.stripes[self.hasher.hash_one(key) as usize % STRIPES]
    }

    pub fn get(&self, key: &[u8]) -> Option<SeriesId> {
        self.stripe(key)
            .read()
            .expect("cache lock poisoned")
            .get(key)
            .copied()
    }

    pub fn insert(&self, key: &[u8], id: SeriesId) {
        self.stripe(key)
            .write()
            .expect("cache lock poisoned")
            .insert(key.into(), id);
    }
}

/// Series-count limits applied while resolving.
#[derive(Clone, Copy, Debug)]
pub struct SeriesLimits {
    /// Most series the index may hold.
    pub max_series: usize,
    /// Most new series one request may create.
    pub max_new_per_request: usize,
}

/// A series the request could not store, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedSeries {
    pub labels: String,
    pub reason: String,
}

/// Collects one request's samples.
pub struct BatchBuilder<'a> {
    cache: &'a SeriesCache,
    batch: WriteBatch,
    new_series: Vec<(Box<[u8]>, Labels)>,
    new_index: HashMap<Box<[u8]>, usize>,
    /// (index into `new_series`, ts, value)
    deferred: Vec<(usize, i64, f64)>,
}

/// What [`BatchBuilder::finish`] produced.
pub struct Resolved {
    pub batch: WriteBatch,
    /// Samples dropped with their series.
    pub rejected_samples: u64,
    pub rejected_series: Vec<RejectedSeries>,
}

impl<'a> BatchBuilder<'a> {
    pub fn new(cache: &'a SeriesCache) -> Self {
        Self {
            cache,
            batch: WriteBatch::new(),
            new_series: Vec::new(),
            new_index: HashMap::new(),
            deferred: Vec::new(),
        }
    }

    /// Adds a sample of the series spelled `key`; `labels` is called only
    /// when the key is not cached yet.
    pub fn push(&mut self, key: &[u8], ts: i64, value: f64, labels: impl FnOnce() -> Labels) {
        if let Some(id) = self.cache.get(key) {
            self.batch.push(id, ts, value);
            return;
        }
        let idx = match self.new_index.get(key) {
            Some(i) => *i,
            None => {
                let i = self.new_series.len();
                self.new_series.push((key.into(), labels()));
                self.new_index.insert(key.into(), i);
                i
            }
        };
        self.deferred.push((idx, ts, value));
    }

    /// Creates the new series (one index commit) within `limits` and
    /// returns the complete batch.
    pub fn finish(
        mut self,
        db: &Db,
        limits: SeriesLimits,
    ) -> Result<Resolved, tidemark_storage::Error> {
        let mut rejected_series = Vec::new();
        let mut rejected_samples = 0;
        if self.new_series.is_empty() {
            return Ok(Resolved {
                batch: self.batch,
                rejected_samples,
                rejected_series,
            });
        }
        // Series that already exist under another spelling are free.
        let mut ids: Vec<Option<SeriesId>> =
            self.new_series.iter().map(|(_, l)| db.lookup(l)).collect();
        let room = limits.max_series.saturating_sub(db.series_count());
        let mut allowed = room.min(limits.max_new_per_request);
        let mut to_create = Vec::new();
        for (i, (_, labels)) in self.new_series.iter().enumerate() {
            if ids[i].is_some() {
                continue;
            }
            if allowed == 0 {
                let reason = if room <= limits.max_new_per_request {
                    format!("series limit of {} reached", limits.max_series)
                } else {
                    format!(
                        "more than {} new series in one request",
                        limits.max_new_per_request
                    )
                };
                rejected_series.push(RejectedSeries {
                    labels: labels.to_string(),
                    reason,
                });
                continue;
            }
            allowed -= 1;
            to_create.push(i);
        }
        let labels: Vec<Labels> = to_create
            .iter()
            .map(|i| self.new_series[*i].1.clone())
            .collect();
        for (i, id) in to_create.into_iter().zip(db.resolve_many(&labels)?) {
            ids[i] = Some(id);
        }
        for (i, (key, _)) in self.new_series.iter().enumerate() {
            if let Some(id) = ids[i] {
                self.cache.insert(key, id);
            }
        }
        for (i, ts, v) in self.deferred {
            match ids[i] {
                Some(id) => self.batch.push(id, ts, v),
                None => rejected_samples += 1,
            }
        }
        Ok(Resolved {
            batch: self.batch,
            rejected_samples,
            rejected_series,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_series_are_created_once_and_limits_name_the_rejected_series() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), tidemark_storage::Options::default()).unwrap();
        let cache = SeriesCache::default();
        let limits = SeriesLimits {
            max_series: 3,
            max_new_per_request: 2,
        };
        let mut b = BatchBuilder::new(&cache);
        for (k, ts) in [("a", 1), ("b", 1), ("a", 2), ("c", 1)] {
            b.push(k.as_bytes(), ts, 1.0, || Labels::metric("m", [("k", k)]));
        }
        let r = b.finish(&db, limits).unwrap();
        assert_eq!(
            r.batch.len(),
            3,
            "a twice and b; c is over the per-request limit"
        );
        assert_eq!(r.rejected_samples, 1);
        assert_eq!(r.rejected_series.len(), 1);
        assert!(r.rejected_series[0].labels.contains("\"c\""));
        assert!(
            r.rejected_series[0]
                .reason
                .contains("new series in one request")
        );
        db.append(&r.batch).unwrap();

        // "a" is cached now; "d" and "e" hit the total limit of 3.
        let mut b = BatchBuilder::new(&cache);
        for k in ["a", "d", "e"] {
            b.push(k.as_bytes(), 3, 1.0, || Labels::metric("m", [("k", k)]));
        }
        let r = b.finish(&db, limits).unwrap();
        assert_eq!(r.batch.len(), 2);
        assert_eq!(r.rejected_series.len(), 1);
        assert!(
            r.rejected_series[0].reason.contains("series limit of 3"),
            "{:?}",
            r.rejected_series
        );
        // A known series under a new spelling does not count as new.
        let mut b = BatchBuilder::new(&cache);
        b.push(b"other-spelling-of-a", 4, 1.0, || {
            Labels::metric("m", [("k", "a")])
        });
        let r = b.finish(&db, limits).unwrap();
        assert_eq!((r.batch.len(), r.rejected_series.len()), (1, 0));
    }
}
