//! Alert history in the event log: state changes as `alert_state` events
//! and notification attempts as `notification` events (labels: the
//! alert's or group's labels; fields: `from`/`to`, or `receiver`,
//! `channel`, `outcome`, `error`), so history is compressed, retained and
//! shown on the dashboard timeline with the other events.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tidemark_storage::events::{Event, EventLog, EventQuery};
use tidemark_storage::{Labels, Matcher};

use crate::notify::history::{Entry, EntryKind, History, Outcome, Query, Stats, stats};

/// Event kind of a state change.
pub const KIND_STATE: &str = "alert_state";
/// Event kind of a notification attempt.
pub const KIND_NOTIFICATION: &str = "notification";

/// Most events read to compute statistics for one request.
const MAX_SCAN: usize = 50_000;

/// [`History`] over the event log.
pub struct EventLogHistory {
    log: Arc<EventLog>,
}

impl EventLogHistory {
    pub fn new(log: Arc<EventLog>) -> Self {
        Self { log }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receiver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn to_event(e: &Entry) -> Event {
    let fields = Fields {
        from: e.from.clone(),
        to: e.to.clone(),
        receiver: e.receiver.clone(),
        channel: e.channel.clone(),
        outcome: e.outcome,
        error: e.error.clone(),
    };
    Event {
        ts_ms: e.time_ms,
        kind: match e.kind {
            EntryKind::State => KIND_STATE,
            EntryKind::Notification => KIND_NOTIFICATION,
        }
        .to_string(),
        labels: Labels::from_pairs(e.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        fields: serde_json::to_string(&fields).unwrap_or_else(|_| "{}".into()),
    }
}

fn from_event(ev: &Event) -> Option<Entry> {
    let kind = match ev.kind.as_str() {
        KIND_STATE => EntryKind::State,
        KIND_NOTIFICATION => EntryKind::Notification,
        _ => return None,
    };
    let f: Fields = serde_json::from_str(&ev.fields).unwrap_or_default();
    let labels: BTreeMap<String, String> = ev
        .labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    Some(Entry {
        time_ms: ev.ts_ms,
        kind,
        alertname: labels.get("alertname").cloned().unwrap_or_default(),
        labels,
        from: f.from,
        to: f.to,
        receiver: f.receiver,
        channel: f.channel,
        outcome: f.outcome,
        error: f.error,
    })
}

impl History for EventLogHistory {
    fn record(&self, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        let events: Vec<Event> = entries.iter().map(to_event).collect();
        if let Err(e) = self.log.append(&events) {
            tracing::warn!(error = %e, n = events.len(), "writing alert history to the event log failed");
        }
    }

    fn query(&self, q: &Query) -> (Vec<Entry>, Vec<Stats>) {
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = self.log.query(&EventQuery {
                start_ms: q.start_ms,
                end_ms: q.end_ms,
                kinds: vec![KIND_STATE.into(), KIND_NOTIFICATION.into()],
                matchers: q
                    .alertname
                    .iter()
                    .map(|n| Matcher::equal("alertname", n))
                    .collect(),
                limit: 1000,
                before,
            });
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "reading alert history failed");
                    break;
                }
            };
            all.extend(page.events.iter().filter_map(from_event));
            match page.next {
                Some(c) if all.len() < MAX_SCAN => before = Some(c),
                _ => break,
            }
        }
        let st = stats(&all.iter().collect::<Vec<_>>());
        all.truncate(q.limit);
        (all, st)
    }
}
