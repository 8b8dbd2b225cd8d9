//! [`LabelCache`]: series labels in the query layer's type, kept across
//! queries by a long-lived reader (the rule manager), so a series read
//! every round is converted from the index's encoding once.
//!
//! Invariants:
//! - Safe to keep forever: the engine never reuses a series id and never
//!   changes a series' labels (`storage/src/index.rs`).
//! - Bounded: past `capacity` entries the cache is emptied and refilled
//!   from what is read next (cheap, and simpler than an LRU for a working
//!   set that is normally far below the bound).

use std::collections::HashMap;
use std::sync::Mutex;

use foldhash::fast::RandomState;

use tidemark_query::Labels;
use tidemark_storage::SeriesId;

/// Default bound: ~200 bytes per entry for typical label sets, ~40 MB.
pub const DEFAULT_CAPACITY: usize = 200_000;

/// See the module documentation.
#[derive(Debug)]
pub struct LabelCache {
    map: Mutex<HashMap<SeriesId, Labels, RandomState>>,
    capacity: usize,
}

impl Default for LabelCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl LabelCache {
    /// A cache holding at most `capacity` label sets.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::default()),
            capacity: capacity.max(1),
        }
    }

    /// The labels of `id`, from the cache or computed by `load` and kept.
    pub fn get_or_load(&self, id: SeriesId, load: impl FnOnce() -> Labels) -> Labels {
        if let Some(l) = self.lock().get(&id) {
            return l.clone();
        }
        let l = load();
        let mut map = self.lock();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(id, l.clone());
        l
    }

    /// Label sets held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SeriesId, Labels, RandomState>> {
        // A panic while holding the lock cannot leave a half-written entry.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_once_and_stays_bounded() {
        let cache = LabelCache::with_capacity(2);
        let mut loads = 0;
        let mut get = |id: u64| {
            cache.get_or_load(SeriesId(id), || {
                loads += 1;
                Labels::from_pairs([("id", id.to_string())])
            })
        };
        assert_eq!(get(1).get("id"), Some("1"));
        assert_eq!(get(1).get("id"), Some("1"));
        assert_eq!(get(2).get("id"), Some("2"));
        get(3);
        assert_eq!(loads, 3, "the second read of 1 was cached");
        assert!(cache.len() <= 2, "bounded");
    }
}
