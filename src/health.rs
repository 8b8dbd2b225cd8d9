//! Component health: every part of the running monitor (ingest pipeline,
//! WAL, storage, rule evaluator, notifier, each notification channel, the
//! forwarder) reports healthy / degraded / failed with a reason; the
//! registry is what `GET /api/v1/health` shows.
//!
//! Invariants:
//! - A component's `since` changes only when its status changes, so it
//!   says how long the current condition has lasted.
//! - The overall status is the worst component's (no components: healthy).
//! - Reporting never blocks on I/O: one short mutex section. It is called
//!   on state changes and per evaluation round, never per sample.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// One component's condition, ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Degraded,
    Failed,
}

/// A component as `/api/v1/health` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentReport {
    pub name: String,
    pub status: Status,
    /// Why it is not healthy (kept for the last problem when healthy again: `None`).
    pub reason: Option<String>,
    /// Unix ms when the current status began.
    pub since_ms: i64,
}

/// The registry of all components.
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, ComponentReport>>,
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A handle for component `name`, registered as healthy at `now_ms`
    /// unless it already reported.
    pub fn component(self: &Arc<Self>, name: impl Into<String>, now_ms: i64) -> Component {
        let name: String = name.into();
        self.lock()
            .entry(name.clone())
            .or_insert_with(|| ComponentReport {
                name: name.clone(),
                status: Status::Healthy,
                reason: None,
                since_ms: now_ms,
            });
        Component {
            health: self.clone(),
            name: name.into(),
        }
    }

    /// Records `status` for `name` at `now_ms`.
    pub fn report(&self, name: &str, status: Status, reason: Option<String>, now_ms: i64) {
        let mut map = self.lock();
        let entry = map
            .entry(name.to_string())
            .or_insert_with(|| ComponentReport {
                name: name.to_string(),
                status,
                reason: None,
                since_ms: now_ms,
            });
        if entry.status != status {
            entry.status = status;
            entry.since_ms = now_ms;
        }
        entry.reason = reason;
    }

    /// Every component, sorted by name.
    pub fn snapshot(&self) -> Vec<ComponentReport> {
        self.lock().values().cloned().collect()
    }

    /// The worst status of any component.
    pub fn overall(&self) -> Status {
        self.lock()
            .values()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Healthy)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ComponentReport>> {
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cloneable handle one component reports through.
#[derive(Clone, Debug)]
pub struct Component {
    health: Arc<Health>,
    name: Arc<str>,
}

impl Component {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn healthy(&self, now_ms: i64) {
        self.health
            .report(&self.name, Status::Healthy, None, now_ms);
    }

    pub fn degraded(&self, reason: impl Into<String>, now_ms: i64) {
        self.health
            .report(&self.name, Status::Degraded, Some(reason.into()), now_ms);
    }

    pub fn failed(&self, reason: impl Into<String>, now_ms: i64) {
        self.health
            .report(&self.name, Status::Failed, Some(reason.into()), now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_is_the_worst_and_since_tracks_status_changes() {
        let h = Health::new();
        assert_eq!(h.overall(), Status::Healthy);
        let wal = h.component("wal", 1);
        let slack = h.component("channel:ops/slack", 1);
        assert_eq!(h.overall(), Status::Healthy);
        slack.degraded("HTTP 500 from hooks.slack.com", 5);
        assert_eq!(h.overall(), Status::Degraded);
        slack.degraded("timeout", 9);
        let s = h.snapshot();
        let c = s.iter().find(|c| c.name == "channel:ops/slack").unwrap();
        assert_eq!((c.status, c.since_ms), (Status::Degraded, 5));
        assert_eq!(c.reason.as_deref(), Some("timeout"));
        wal.failed("disk full", 10);
        assert_eq!(h.overall(), Status::Failed);
        wal.healthy(12);
        slack.healthy(12);
        assert_eq!(h.overall(), Status::Healthy);
        let s = h.snapshot();
        assert!(s.iter().all(|c| c.reason.is_none() && c.since_ms == 12));
        // Registering again keeps the existing report.
        h.component("wal", 99);
        assert_eq!(h.snapshot()[1].since_ms, 12);
    }
}
