//! The notification log: what was last sent successfully for each
//! (group, receiver, channel), and Alertmanager's dedup decision from it.
//!
//! Invariants:
//! - An entry is written only after a delivery succeeded, so a failed or
//!   interrupted send is retried at the next flush, and a successful one
//!   is never repeated before `repeat_interval` (across restarts too: the
//!   log is part of the notifier's persisted state).
//! - Entries expire `retention` after they were written (garbage
//!   collected by [`NfLog::gc`]), like Alertmanager's `--data.retention`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// What one successful notification contained.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Fingerprints of the firing alerts sent.
    pub firing: BTreeSet<u64>,
    /// Fingerprints of the resolved alerts sent.
    pub resolved: BTreeSet<u64>,
    /// When it was sent (ms).
    pub ts_ms: i64,
}

/// The log, keyed by [`key`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NfLog {
    entries: BTreeMap<String, Entry>,
}

/// How long entries are kept after their last write (Alertmanager: 120h).
pub const RETENTION_MS: i64 = 120 * 3_600_000;

/// The log key of one channel of one receiver for one group.
pub fn key(group_key: &str, receiver: &str, channel: usize) -> String {
    format!("{group_key}|{receiver}|{channel}")
}

impl NfLog {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Alertmanager's `DedupStage.needsUpdate`: send when something new
    /// fires, when every alert resolved after a firing notification, when
    /// newly resolved alerts are to be announced, or when the last
    /// notification is older than `repeat_ms`.
    pub fn needs_update(
        &self,
        key: &str,
        firing: &BTreeSet<u64>,
        resolved: &BTreeSet<u64>,
        repeat_ms: i64,
        now_ms: i64,
    ) -> bool {
        let Some(e) = self.entries.get(key) else {
            return !firing.is_empty();
        };
        if !firing.is_subset(&e.firing) {
            return true;
        }
        if firing.is_empty() {
            return !e.firing.is_empty();
        }
        if !resolved.is_subset(&e.resolved) {
            return true;
        }
        e.ts_ms + repeat_ms <= now_ms
    }

    /// Records a successful notification.
    pub fn log(
        &mut self,
        key: String,
        firing: BTreeSet<u64>,
        resolved: BTreeSet<u64>,
        now_ms: i64,
    ) {
        self.entries.insert(
            key,
            Entry {
                firing,
                resolved,
                ts_ms: now_ms,
            },
        );
    }

    /// Drops entries older than [`RETENTION_MS`]; returns how many.
    pub fn gc(&mut self, now_ms: i64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.ts_ms + RETENTION_MS > now_ms);
        before - self.entries.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    #[test]
    fn dedup_follows_alertmanager() {
        let mut log = NfLog::default();
        let k = key("{}:{}", "r", 0);
        assert!(log.needs_update(&k, &set(&[1]), &set(&[]), 1000, 0));
        assert!(!log.needs_update(&k, &set(&[]), &set(&[1]), 1000, 0));
        log.log(k.clone(), set(&[1]), set(&[]), 0);
        assert!(!log.needs_update(&k, &set(&[1]), &set(&[]), 1000, 999));
        assert!(log.needs_update(&k, &set(&[1]), &set(&[]), 1000, 1000));
        assert!(log.needs_update(&k, &set(&[1, 2]), &set(&[]), 1000, 1));
        assert!(log.needs_update(&k, &set(&[]), &set(&[1]), 1000, 1));
        assert!(log.needs_update(&k, &set(&[2]), &set(&[1]), 1000, 1));
        log.log(k.clone(), set(&[]), set(&[1]), 5);
        assert!(!log.needs_update(&k, &set(&[]), &set(&[1]), 1000, 10_000));
        assert_eq!(log.gc(RETENTION_MS + 5), 1);
    }
}
