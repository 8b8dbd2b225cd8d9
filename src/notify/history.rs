//! Alert history: every alert state change (from the rule evaluator) and
//! every notification attempt (receiver, channel, outcome, error), with
//! per-alertname statistics (times fired, mean time to resolve).
//!
//! Invariants:
//! - [`History`] is the seam: the notifier records through it and the API
//!   reads through it. [`MemoryHistory`] keeps the newest `limit` entries
//!   in memory and appends each entry as a JSON line to
//!   `<data_dir>/notify/history.jsonl` (reloaded at start, rewritten
//!   without the oldest entries when it has grown past twice `limit`).
//!   The event log (`alert_state` / `notification` events) plugs in behind
//!   the same trait.
//! - Recording never fails the caller: an I/O error is logged once per
//!   call and the in-memory copy still holds the entry.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// `state` (an alert changed state) or `notification` (a delivery attempt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    State,
    Notification,
}

/// How a notification attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Sent,
    Failed,
    /// Muted by a silence or an inhibition rule (`error` says which).
    Suppressed,
}

/// One history entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub time_ms: i64,
    pub kind: EntryKind,
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
    /// State changes: previous and new state (`inactive`, `pending`, `firing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Notifications: receiver, channel type, outcome, error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Entry {
    /// A state change of the alert with `labels`.
    pub fn state(time_ms: i64, labels: &BTreeMap<String, String>, from: &str, to: &str) -> Self {
        Self {
            time_ms,
            kind: EntryKind::State,
            alertname: labels.get("alertname").cloned().unwrap_or_default(),
            labels: labels.clone(),
            from: Some(from.to_string()),
            to: Some(to.to_string()),
            receiver: None,
            channel: None,
            outcome: None,
            error: None,
        }
    }

    /// A notification attempt about a group whose common labels are `labels`.
    pub fn notification(
        time_ms: i64,
        labels: &BTreeMap<String, String>,
        receiver: &str,
        channel: &str,
        outcome: Outcome,
        error: Option<String>,
    ) -> Self {
        Self {
            time_ms,
            kind: EntryKind::Notification,
            alertname: labels.get("alertname").cloned().unwrap_or_default(),
            labels: labels.clone(),
            from: None,
            to: None,
            receiver: Some(receiver.to_string()),
            channel: Some(channel.to_string()),
            outcome: Some(outcome),
            error,
        }
    }
}

/// A history read: `start_ms <= time <= end_ms`, optionally one alertname.
#[derive(Clone, Debug)]
pub struct Query {
    pub start_ms: i64,
    pub end_ms: i64,
    pub alertname: Option<String>,
    pub limit: usize,
}

/// Per-alertname statistics over the queried range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub alertname: String,
    /// Transitions to `firing`.
    pub fired: u64,
    /// Mean of (resolved − fired) over alerts that both fired and resolved
    /// in the range; `null` when none did.
    pub mean_time_to_resolve_seconds: Option<f64>,
}

/// Where history goes.
pub trait History: Send + Sync {
    fn record(&self, entries: &[Entry]);
    /// Matching entries, newest first, at most `q.limit`, and statistics
    /// over all matching entries.
    fn query(&self, q: &Query) -> (Vec<Entry>, Vec<Stats>);
}

/// Statistics over `entries` (any order).
pub fn stats(entries: &[&Entry]) -> Vec<Stats> {
    let mut sorted: Vec<&&Entry> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::State)
        .collect();
    sorted.sort_by_key(|e| e.time_ms);
    #[derive(Default)]
    struct Acc {
        fired: u64,
        resolved: u64,
        total_ms: i64,
    }
    let mut acc: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut firing_since: HashMap<&BTreeMap<String, String>, i64> = HashMap::new();
    for e in sorted {
        let a = acc.entry(e.alertname.as_str()).or_default();
        match (e.from.as_deref(), e.to.as_deref()) {
            (_, Some("firing")) => {
                a.fired += 1;
                firing_since.insert(&e.labels, e.time_ms);
            }
            (Some("firing"), _) => {
                if let Some(t) = firing_since.remove(&e.labels) {
                    a.resolved += 1;
                    a.total_ms += e.time_ms - t;
                }
            }
            _ => {}
        }
    }
    acc.into_iter()
        .map(|(name, a)| Stats {
            alertname: name.to_string(),
            fired: a.fired,
            mean_time_to_resolve_seconds: (a.resolved > 0)
                .then(|| a.total_ms as f64 / a.resolved as f64 / 1000.0),
        })
        .collect()
}

/// In memory, mirrored to a JSON-lines file.
pub struct MemoryHistory {
    inner: Mutex<Inner>,
    limit: usize,
}

struct Inner {
    entries: VecDeque<Entry>,
    file: Option<PathBuf>,
    lines_in_file: usize,
}

impl MemoryHistory {
    /// Loads `file` (if given and present; bad lines are skipped and counted
    /// in the log) and keeps at most `limit` entries.
    pub fn open(file: Option<PathBuf>, limit: usize) -> Self {
        let mut entries = VecDeque::new();
        let mut lines_in_file = 0;
        if let Some(path) = &file
            && let Ok(text) = std::fs::read_to_string(path)
        {
            let mut bad = 0usize;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                lines_in_file += 1;
                match serde_json::from_str::<Entry>(line) {
                    Ok(e) => entries.push_back(e),
                    Err(_) => bad += 1,
                }
            }
            if bad > 0 {
                tracing::warn!(file = %path.display(), bad, "skipped unreadable alert-history lines");
            }
            while entries.len() > limit {
                entries.pop_front();
            }
        }
        Self {
            inner: Mutex::new(Inner {
                entries,
                file,
                lines_in_file,
            }),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl History for MemoryHistory {
    fn record(&self, new: &[Entry]) {
        if new.is_empty() {
            return;
        }
        let mut g = self.lock();
        for e in new {
            g.entries.push_back(e.clone());
            if g.entries.len() > self.limit {
                g.entries.pop_front();
            }
        }
        let Some(path) = g.file.clone() else {
            return;
        };
        let result = if g.lines_in_file + new.len() > 2 * self.limit {
            let mut buf = Vec::new();
            for e in &g.entries {
                let _ = serde_json::to_writer(&mut buf, e);
                buf.push(b'\n');
            }
            let tmp = path.with_extension("jsonl.tmp");
            let r = std::fs::write(&tmp, &buf).and_then(|()| std::fs::rename(&tmp, &path));
            g.lines_in_file = g.entries.len();
            r
        } else {
            let mut buf = Vec::new();
            for e in new {
                let _ = serde_json::to_writer(&mut buf, e);
                buf.push(b'\n');
            }
            g.lines_in_file += new.len();
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(&buf))
        };
        if let Err(e) = result {
            tracing::warn!(file = %path.display(), error = %e, "writing alert history failed");
        }
    }

    fn query(&self, q: &Query) -> (Vec<Entry>, Vec<Stats>) {
        let g = self.lock();
        let matching: Vec<&Entry> = g
            .entries
            .iter()
            .filter(|e| e.time_ms >= q.start_ms && e.time_ms <= q.end_ms)
            .filter(|e| q.alertname.as_ref().is_none_or(|n| &e.alertname == n))
            .collect();
        let st = stats(&matching);
        let mut out: Vec<Entry> = matching.into_iter().rev().take(q.limit).cloned().collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
        (out, st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(name: &str, i: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("alertname".to_string(), name.to_string()),
            ("i".to_string(), i.to_string()),
        ])
    }

    #[test]
    fn stats_count_firings_and_mean_time_to_resolve_and_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let h = MemoryHistory::open(Some(path.clone()), 100);
        h.record(&[
            Entry::state(0, &l("A", "1"), "pending", "firing"),
            Entry::state(1000, &l("A", "2"), "inactive", "firing"),
            Entry::state(10_000, &l("A", "1"), "firing", "inactive"),
            Entry::state(31_000, &l("A", "2"), "firing", "inactive"),
            Entry::state(40_000, &l("B", "1"), "pending", "firing"),
            Entry::notification(
                41_000,
                &l("B", "1"),
                "ops",
                "webhook",
                Outcome::Failed,
                Some("HTTP 500".into()),
            ),
        ]);
        let all = Query {
            start_ms: 0,
            end_ms: i64::MAX,
            alertname: None,
            limit: 2,
        };
        let (entries, stats) = h.query(&all);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].time_ms, 41_000);
        assert_eq!(entries[0].outcome, Some(Outcome::Failed));
        assert_eq!(
            stats,
            vec![
                Stats {
                    alertname: "A".into(),
                    fired: 2,
                    mean_time_to_resolve_seconds: Some(20.0)
                },
                Stats {
                    alertname: "B".into(),
                    fired: 1,
                    mean_time_to_resolve_seconds: None
                },
            ]
        );
        drop(h);
        let h = MemoryHistory::open(Some(path), 100);
        let (entries, _) = h.query(&Query {
            alertname: Some("A".into()),
            limit: 10,
            ..all
        });
        assert_eq!(entries.len(), 4);
        assert!(entries.iter().all(|e| e.alertname == "A"));
    }
}
