//! The series index: the persistent catalog `SeriesId ↔ labels` in
//! `index.redb`, metric metadata, and the in-memory structures built from it
//! at open (label-set lookup and postings `name=value → ids`).
//!
//! Invariants:
//! - Ids are dense, start at 1 and are never reused; `next_id` only grows.
//! - A series is durable in `index.redb` before its id is handed out, so a
//!   WAL record never refers to an id the catalog lost (crash safety).
//! - Postings lists are sorted ascending (ids are appended in creation
//!   order), which lets matcher evaluation intersect them by merging.
//! - Lookups take a read lock on one of [`STRIPES`] stripes; only series
//!   creation takes a write lock (and a redb write transaction).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crossbeam_utils::CachePadded;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::Error;
use crate::types::{Labels, MatchOp, Matcher, SeriesId};

const SERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("series");
const METADATA: TableDefinition<&str, &str> = TableDefinition::new("metadata");

/// Number of lock stripes of the label-set lookup map. A power of two well
/// above the core count keeps resolving threads off each other's lines.
const STRIPES: usize = 16;

/// Metric metadata (Prometheus `# TYPE`, `# HELP`, `# UNIT`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricMetadata {
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// One stripe of the label-set lookup map. Keys share their bytes with
/// `Catalog::labels`.
type Stripe = CachePadded<RwLock<HashMap<Arc<[u8]>, SeriesId>>>;

/// Postings and the id → labels table: everything matcher evaluation reads.
#[derive(Default)]
struct Catalog {
    /// `labels[id - 1]` is the canonical encoding of series `id`.
    labels: Vec<Arc<[u8]>>,
    /// label name → label value → ascending ids.
    postings: HashMap<Box<str>, HashMap<Box<str>, Vec<SeriesId>>>,
}

impl Catalog {
    fn insert(&mut self, id: SeriesId, key: Arc<[u8]>, labels: &Labels) {
        debug_assert_eq!(id.0 as usize, self.labels.len() + 1, "ids are dense");
        self.labels.push(key);
        for l in labels.iter() {
            self.postings
                .entry(l.name.as_str().into())
                .or_default()
                .entry(l.value.as_str().into())
                .or_default()
                .push(id);
        }
    }
}

/// The series index. Cheap to share behind an `Arc`.
pub(crate) struct Index {
    path: PathBuf,
    db: redb::Database,
    durability: redb::Durability,
    hasher: std::collections::hash_map::RandomState,
    /// canonical labels → id, striped by hash.
    lookup: Box<[Stripe]>,
    catalog: RwLock<Catalog>,
    next_id: AtomicU64,
}

impl Index {
    /// Opens or creates `dir/index.redb` and loads the catalog into memory.
    /// `durable` selects fsync on each series-creating commit.
    pub(crate) fn open(dir: &Path, durable: bool) -> Result<Self, Error> {
        let path = dir.join("index.redb");
        let db = crate::redb_file::open_or_create(&path, 16 << 20)?;
        let index = Index {
            durability: if durable {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            },
            hasher: Default::default(),
            lookup: (0..STRIPES).map(|_| Default::default()).collect(),
            catalog: RwLock::new(Catalog::default()),
            next_id: AtomicU64::new(1),
            db,
            path,
        };
        index.load()?;
        Ok(index)
    }

    fn load(&self) -> Result<(), Error> {
        let p = &self.path;
        let tx = self.db.begin_write().map_err(|e| Error::redb(p, e))?;
        // Create the tables on first open.
        tx.open_table(SERIES).map_err(|e| Error::redb(p, e))?;
        tx.open_table(METADATA).map_err(|e| Error::redb(p, e))?;
        tx.commit().map_err(|e| Error::redb(p, e))?;

        let tx = self.db.begin_read().map_err(|e| Error::redb(p, e))?;
        let table = tx.open_table(SERIES).map_err(|e| Error::redb(p, e))?;
        let mut catalog = self.catalog.write().expect("index lock poisoned");
        for row in table.iter().map_err(|e| Error::redb(p, e))? {
            let (id, key) = row.map_err(|e| Error::redb(p, e))?;
            let (id, key) = (id.value(), key.value());
            let labels = Labels::decode(key).ok_or_else(|| Error::CorruptIndex {
                path: p.clone(),
                id,
            })?;
            if id != catalog.labels.len() as u64 + 1 {
                return Err(Error::CorruptIndex {
                    path: p.clone(),
                    id,
                });
            }
            let key: Arc<[u8]> = key.into();
            self.stripe(&key)
                .write()
                .expect("index lock poisoned")
                .insert(key.clone(), SeriesId(id));
            catalog.insert(SeriesId(id), key, &labels);
        }
        self.next_id
            .store(catalog.labels.len() as u64 + 1, Ordering::Release);
        Ok(())
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn stripe(&self, key: &[u8]) -> &Stripe {
        &self.lookup[self.hash(key) as usize % STRIPES]
    }

    /// Number of series in the catalog.
    pub(crate) fn len(&self) -> usize {
        (self.next_id.load(Ordering::Acquire) - 1) as usize
    }

    /// Whether `id` names an existing series.
    pub(crate) fn contains(&self, id: SeriesId) -> bool {
        id.0 >= 1 && id.0 < self.next_id.load(Ordering::Acquire)
    }

    /// Looks up a series by its canonical label encoding without creating it.
    pub(crate) fn lookup(&self, key: &[u8]) -> Option<SeriesId> {
        self.stripe(key)
            .read()
            .expect("index lock poisoned")
            .get(key)
            .copied()
    }

    /// Returns the id of `labels`, creating (and durably recording) the
    /// series when it is new.
    pub(crate) fn resolve(&self, labels: &Labels) -> Result<SeriesId, Error> {
        let mut key = Vec::with_capacity(128);
        labels.encode_into(&mut key);
        if let Some(id) = self.lookup(&key) {
            return Ok(id);
        }
        let mut ids = self.create(&[labels])?;
        Ok(ids.pop().expect("one id per label set"))
    }

    /// Resolves many label sets with one redb commit for all new ones.
    pub(crate) fn resolve_many(&self, sets: &[Labels]) -> Result<Vec<SeriesId>, Error> {
        let mut out = Vec::with_capacity(sets.len());
        let mut missing = Vec::new();
        let mut key = Vec::with_capacity(128);
        for (i, labels) in sets.iter().enumerate() {
            key.clear();
            labels.encode_into(&mut key);
            match self.lookup(&key) {
                Some(id) => out.push(id),
                None => {
                    missing.push(i);
                    out.push(SeriesId(0));
                }
            }
        }
        if !missing.is_empty() {
            let new: Vec<&Labels> = missing.iter().map(|i| &sets[*i]).collect();
            for (i, id) in missing.into_iter().zip(self.create(&new)?) {
                out[i] = id;
            }
        }
        Ok(out)
    }

    /// Creates the series that do not exist yet (another thread may have
    /// created some meanwhile) and returns the ids of all of `sets`.
    fn create(&self, sets: &[&Labels]) -> Result<Vec<SeriesId>, Error> {
        let p = &self.path;
        // The catalog write lock serialises creators, so ids stay dense and
        // match the commit order.
        let mut catalog = self.catalog.write().expect("index lock poisoned");
        let mut tx = self.db.begin_write().map_err(|e| Error::redb(p, e))?;
        tx.set_durability(self.durability)
            .map_err(|e| Error::redb(p, e))?;
        let mut out = Vec::with_capacity(sets.len());
        let mut created = Vec::new();
        {
            let mut table = tx.open_table(SERIES).map_err(|e| Error::redb(p, e))?;
            let mut next = self.next_id.load(Ordering::Acquire);
            for labels in sets {
                let mut key = Vec::with_capacity(128);
                labels.encode_into(&mut key);
                let existing = self.lookup(&key);
                let pending = created
                    .iter()
                    .find(|(_, k, _): &&(SeriesId, Vec<u8>, &Labels)| k == &key)
                    .map(|(id, _, _)| *id);
                if let Some(id) = existing.or(pending) {
                    out.push(id);
                    continue;
                }
                let id = SeriesId(next);
                next += 1;
                table
                    .insert(id.0, &key[..])
                    .map_err(|e| Error::redb(p, e))?;
                out.push(id);
                created.push((id, key, *labels));
            }
        }
        tx.commit().map_err(|e| Error::redb(p, e))?;
        for (id, key, labels) in created.iter() {
            let key: Arc<[u8]> = key[..].into();
            catalog.insert(*id, key.clone(), labels);
            self.stripe(&key)
                .write()
                .expect("index lock poisoned")
                .insert(key, *id);
        }
        self.next_id
            .fetch_add(created.len() as u64, Ordering::AcqRel);
        Ok(out)
    }

    /// The labels of series `id`.
    pub(crate) fn labels(&self, id: SeriesId) -> Option<Labels> {
        let catalog = self.catalog.read().expect("index lock poisoned");
        let key = catalog.labels.get((id.0 as usize).checked_sub(1)?)?;
        Labels::decode(key)
    }

    /// Ids of the series matching all `matchers`, ascending. An empty
    /// matcher list selects nothing (like Prometheus, a selector needs at
    /// least one matcher that rejects the empty string to be bounded, but
    /// that policy belongs to the query layer).
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        if matchers.is_empty() {
            return Vec::new();
        }
        let catalog = self.catalog.read().expect("index lock poisoned");
        let all = || {
            (1..=catalog.labels.len() as u64)
                .map(SeriesId)
                .collect::<Vec<_>>()
        };
        let mut result: Option<Vec<SeriesId>> = None;
        // Matchers that cannot match the empty value restrict to the union of
        // postings of accepted values; the others are applied as filters.
        let (positive, negative): (Vec<&Matcher>, Vec<&Matcher>) =
            matchers.iter().partition(|m| !m.matches_empty());
        for m in &positive {
            let ids = match catalog.postings.get(m.name.as_str()) {
                None => Vec::new(),
                Some(values) => match m.op {
                    MatchOp::Equal => values.get(m.value.as_str()).cloned().unwrap_or_default(),
                    _ => union(
                        values
                            .iter()
                            .filter(|(v, _)| m.matches(v))
                            .map(|(_, ids)| ids),
                    ),
                },
            };
            result = Some(match result {
                None => ids,
                Some(prev) => intersect(&prev, &ids),
            });
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                return Vec::new();
            }
        }
        let mut ids = result.unwrap_or_else(all);
        for m in negative {
            // The series passes when its value (or "" when absent) matches.
            let values = catalog.postings.get(m.name.as_str());
            let rejected = match values {
                None => Vec::new(),
                Some(values) => union(
                    values
                        .iter()
                        .filter(|(v, _)| !m.matches(v))
                        .map(|(_, ids)| ids),
                ),
            };
            if !rejected.is_empty() {
                ids = difference(&ids, &rejected);
            }
        }
        ids
    }

    /// All label names, sorted.
    pub(crate) fn label_names(&self) -> Vec<String> {
        let catalog = self.catalog.read().expect("index lock poisoned");
        let mut names: Vec<String> = catalog.postings.keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }

    /// All values of label `name`, sorted.
    pub(crate) fn label_values(&self, name: &str) -> Vec<String> {
        let catalog = self.catalog.read().expect("index lock poisoned");
        let mut values: Vec<String> = catalog
            .postings
            .get(name)
            .map(|v| v.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        values.sort();
        values
    }

    /// Records metadata for `metric` (last write wins).
    pub(crate) fn set_metadata(&self, metric: &str, meta: &MetricMetadata) -> Result<(), Error> {
        let p = &self.path;
        let encoded = format!("{}\n{}\n{}", meta.kind, meta.unit, meta.help);
        let mut tx = self.db.begin_write().map_err(|e| Error::redb(p, e))?;
        tx.set_durability(self.durability)
            .map_err(|e| Error::redb(p, e))?;
        {
            let mut table = tx.open_table(METADATA).map_err(|e| Error::redb(p, e))?;
            table
                .insert(metric, encoded.as_str())
                .map_err(|e| Error::redb(p, e))?;
        }
        tx.commit().map_err(|e| Error::redb(p, e))
    }

    /// Metadata of every metric that has some, sorted by metric name.
    pub(crate) fn metadata(&self) -> Result<Vec<(String, MetricMetadata)>, Error> {
        let p = &self.path;
        let tx = self.db.begin_read().map_err(|e| Error::redb(p, e))?;
        let table = tx.open_table(METADATA).map_err(|e| Error::redb(p, e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| Error::redb(p, e))? {
            let (k, v) = row.map_err(|e| Error::redb(p, e))?;
            let mut parts = v.value().splitn(3, '\n');
            let meta = MetricMetadata {
                kind: parts.next().unwrap_or_default().to_string(),
                unit: parts.next().unwrap_or_default().to_string(),
                help: parts.next().unwrap_or_default().to_string(),
            };
            out.push((k.value().to_string(), meta));
        }
        Ok(out)
    }

    /// Bytes of `index.redb` on disk.
    pub(crate) fn disk_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Approximate heap bytes of the in-memory catalog, lookup and postings.
    pub(crate) fn memory_bytes(&self) -> usize {
        let catalog = self.catalog.read().expect("index lock poisoned");
        let labels: usize = catalog.labels.iter().map(|k| k.len() + 16).sum();
        let postings: usize = catalog
            .postings
            .iter()
            .map(|(n, vals)| {
                n.len()
                    + 48
                    + vals
                        .iter()
                        .map(|(v, ids)| v.len() + 48 + ids.capacity() * 8)
                        .sum::<usize>()
            })
            .sum();
        // One lookup entry per series: an Arc pointer, the id and table slack.
        labels + postings + catalog.labels.len() * 40
    }
}

fn union<'a>(lists: impl Iterator<Item = &'a Vec<SeriesId>>) -> Vec<SeriesId> {
    let mut out: Vec<SeriesId> = lists.flat_map(|l| l.iter().copied()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn difference(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let mut j = 0;
    a.iter()
        .copied()
        .filter(|id| {
            while j < b.len() && b[j] < *id {
                j += 1;
            }
            !(j < b.len() && b[j] == *id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, op: MatchOp, v: &str) -> Matcher {
        Matcher::new(name, op, v).unwrap()
    }

    #[test]
    fn resolve_is_stable_across_reopen_and_select_follows_prometheus() {
        let dir = tempfile::tempdir().unwrap();
        let a = Labels::metric("up", [("job", "api"), ("host", "a")]);
        let b = Labels::metric("up", [("job", "web")]);
        let c = Labels::metric("errors_total", [("job", "api")]);
        let (ia, ib, ic) = {
            let idx = Index::open(dir.path(), true).unwrap();
            let ids = idx
                .resolve_many(&[a.clone(), b.clone(), a.clone()])
                .unwrap();
            assert_eq!(ids[0], ids[2], "same labels twice in one call share an id");
            let ic = idx.resolve(&c).unwrap();
            assert_eq!(idx.resolve(&a).unwrap(), ids[0]);
            idx.set_metadata(
                "up",
                &MetricMetadata {
                    kind: "gauge".into(),
                    help: "1 if up".into(),
                    unit: String::new(),
                },
            )
            .unwrap();
            (ids[0], ids[1], ic)
        };
        let idx = Index::open(dir.path(), true).unwrap();
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.resolve(&a).unwrap(), ia);
        assert_eq!(idx.resolve(&b).unwrap(), ib);
        assert_eq!(idx.labels(ic), Some(c.clone()));
        assert_eq!(idx.metadata().unwrap()[0].1.help, "1 if up");

        assert_eq!(
            idx.select(&[Matcher::equal("__name__", "up")]),
            vec![ia, ib]
        );
        assert_eq!(
            idx.select(&[
                Matcher::equal("__name__", "up"),
                m("job", MatchOp::NotEqual, "api")
            ]),
            vec![ib]
        );
        assert_eq!(
            idx.select(&[m("job", MatchOp::Regex, "api|web")]),
            vec![ia, ib, ic]
        );
        // host="" matches series without a host label.
        assert_eq!(idx.select(&[Matcher::equal("host", "")]), vec![ib, ic]);
        assert_eq!(
            idx.select(&[m("host", MatchOp::NotRegex, "a")]),
            vec![ib, ic]
        );
        assert_eq!(idx.select(&[Matcher::equal("job", "nope")]), vec![]);
        assert_eq!(idx.label_names(), vec!["__name__", "host", "job"]);
        assert_eq!(idx.label_values("job"), vec!["api", "web"]);
    }

    #[test]
    fn concurrent_resolvers_agree_on_ids() {
        let dir = tempfile::tempdir().unwrap();
        let idx = std::sync::Arc::new(Index::open(dir.path(), false).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let idx = idx.clone();
                std::thread::spawn(move || {
                    (0..200)
                        .map(|i| {
                            idx.resolve(&Labels::metric("m", [("i", i.to_string())]))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(idx.len(), 200);
    }
}
