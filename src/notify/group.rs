//! Aggregation groups and their timers: the notifier's synchronous core.
//!
//! [`Core`] takes alerts from the rule evaluator ([`Core::on_alerts`]) and,
//! when driven by [`Core::tick`] at explicit times, returns the deliveries
//! ([`Dispatch`]) that are due; the driver reports each outcome back with
//! [`Core::delivered`]. Nothing here reads the clock, sleeps or does I/O.
//!
//! Invariants (Alertmanager's):
//! - An alert joins one group per matching route (`continue`); the group
//!   key is `<route key>:<group labels>`.
//! - A new group flushes after `group_wait` (at once when its alert
//!   started more than `group_wait` ago, e.g. after a restart), then every
//!   `group_interval`; a flush sends to a channel only when the
//!   notification log says so (new firing alerts, newly resolved ones, or
//!   `repeat_interval` elapsed), so resolved alerts are announced once.
//! - Silenced and inhibited alerts are left out of notifications; each
//!   newly muted alert is recorded once as `suppressed`.
//! - A channel with a delivery in flight is not sent to again until it
//!   reports back; the log is written only on success.
//! - Escalation: a group with a policy, firing and not acknowledged for a
//!   level's `after` (from its first firing alert) is sent to that level's
//!   receiver once; acknowledgement stops it; both reset when the group
//!   stops firing. An escalation send that fails is not retried at the
//!   next flush (the level is already spent); retries happen within it.
//! - Deliveries still in flight when the process stops are not recorded
//!   in the log, so they are sent again after a restart (a duplicate
//!   rather than a loss).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::notify::channel::Notification;
use crate::notify::history::{Entry, Outcome};
use crate::notify::inhibit::inhibited;
use crate::notify::nflog::{self, NfLog};
use crate::notify::route::{Timers, fingerprint, labels_string};
use crate::notify::silence::Silences;
use crate::rules::{Alert, AlertState};

/// One alert as the notifier holds it.
#[derive(Clone, Debug)]
struct AlertEntry {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at_ms: i64,
    active_at_ms: i64,
    /// Set once resolved.
    ends_at_ms: Option<i64>,
    value: f64,
    generator_url: String,
}

/// An acknowledgement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub comment: String,
    pub at_ms: i64,
}

/// What is persisted per group: acknowledgement and escalation progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Marks {
    pub ack: Option<Ack>,
    pub escalation_level: usize,
    pub firing_since_ms: Option<i64>,
}

#[derive(Clone, Debug)]
struct Group {
    receiver: String,
    labels: BTreeMap<String, String>,
    timers: Timers,
    escalation: Option<String>,
    fps: BTreeSet<u64>,
    next_flush_ms: i64,
    /// Whether it flushed since it was created.
    flushed: bool,
    /// Alerts recorded as suppressed (recorded again only after unmuting).
    muted: BTreeSet<u64>,
}

/// Why a delivery happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchKind {
    /// A flush the notification log asked for.
    Notify,
    /// Escalation level (1-based).
    Escalation(usize),
}

/// One delivery for the driver to perform.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub kind: DispatchKind,
    pub group_key: String,
    pub receiver: String,
    /// Index of the channel within the receiver.
    pub channel: usize,
    pub channel_kind: &'static str,
    pub notification: Arc<Notification>,
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
}

/// Everything that survives a restart.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PersistedState {
    pub version: u32,
    pub nflog: NfLog,
    pub marks: BTreeMap<String, Marks>,
    /// Non-inactive alert states by fingerprint (for history and for
    /// resolutions that happened while stopped).
    pub last_state: BTreeMap<u64, String>,
    pub silences: Silences,
}

/// The state machine.
pub struct Core {
    cfg: CoreConfig,
    alerts: BTreeMap<u64, AlertEntry>,
    sources: HashMap<String, BTreeSet<u64>>,
    groups: BTreeMap<String, Group>,
    in_flight: HashSet<String>,
    pub(crate) state: PersistedState,
    dirty: bool,
    /// Time of the first tick: marks of groups not rebuilt within
    /// [`MARKS_GRACE_MS`] after a start are dropped.
    first_tick_ms: Option<i64>,
}

/// How long after start persisted marks wait for their group to come back.
pub const MARKS_GRACE_MS: i64 = 3_600_000;

impl Core {
    pub fn new(cfg: CoreConfig, state: PersistedState) -> Self {
        Self {
            cfg,
            alerts: BTreeMap::new(),
            sources: HashMap::new(),
            groups: BTreeMap::new(),
            in_flight: HashSet::new(),
            state,
            dirty: false,
            first_tick_ms: None,
        }
    }

    /// Whether persisted state changed since the last [`Core::take_dirty`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether persisted state changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub fn silences(&self) -> &Silences {
        &self.state.silences
    }

    pub fn silences_mut(&mut self) -> &mut Silences {
        self.dirty = true;
        &mut self.state.silences
    }

    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// Takes the complete alert list of one rule group (`source`) after an
    /// evaluation at `now_ms`; returns the state changes for history.
    pub fn on_alerts(
        &mut self,
        source: &str,
        alerts: &[(Alert, String)],
        now_ms: i64,
    ) -> Vec<Entry> {
        let mut history = Vec::new();
        let mut seen = BTreeSet::new();
        for (a, generator_url) in alerts {
            let fp = fingerprint(&a.labels);
            seen.insert(fp);
            let prev = self.state.last_state.get(&fp).cloned();
            let prev_s = prev.as_deref().unwrap_or("inactive");
            let now_s = a.state.as_str();
            if prev_s != now_s {
                let t = match a.state {
                    AlertState::Firing => a.fired_at_ms.unwrap_or(now_ms),
                    AlertState::Inactive => a.resolved_at_ms.unwrap_or(now_ms),
                    AlertState::Pending => a.active_at_ms,
                };
                history.push(Entry::state(t, &a.labels, prev_s, now_s));
                if a.state == AlertState::Inactive {
                    self.state.last_state.remove(&fp);
                } else {
                    self.state.last_state.insert(fp, now_s.to_string());
                }
                self.dirty = true;
            }
            match a.state {
                AlertState::Firing => {
                    let starts = a.fired_at_ms.unwrap_or(a.active_at_ms);
                    let e = self.alerts.entry(fp).or_insert_with(|| AlertEntry {
                        labels: a.labels.clone(),
                        annotations: BTreeMap::new(),
                        starts_at_ms: starts,
                        active_at_ms: a.active_at_ms,
                        ends_at_ms: None,
                        value: a.value,
                        generator_url: generator_url.clone(),
                    });
                    e.annotations = a.annotations.clone();
                    e.value = a.value;
                    e.ends_at_ms = None;
                    e.starts_at_ms = starts;
                    self.insert(fp, now_ms);
                }
                AlertState::Inactive => {
                    let was_firing = prev_s == "firing"
                        || self.alerts.get(&fp).is_some_and(|e| e.ends_at_ms.is_none());
                    if was_firing {
                        let ends = a.resolved_at_ms.unwrap_or(now_ms);
                        let e = self.alerts.entry(fp).or_insert_with(|| AlertEntry {
                            labels: a.labels.clone(),
                            annotations: a.annotations.clone(),
                            starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                            active_at_ms: a.active_at_ms,
                            ends_at_ms: None,
                            value: a.value,
                            generator_url: generator_url.clone(),
                        });
                        e.ends_at_ms = Some(ends);
                        self.insert(fp, now_ms);
                    }
                }
                AlertState::Pending => {}
            }
        }
        let before = self.sources.insert(source.to_string(), seen.clone());
        for fp in before.unwrap_or_default().difference(&seen) {
            if let Some(prev) = self.state.last_state.remove(fp) {
                if let Some(e) = self.alerts.get(fp) {
                    history.push(Entry::state(now_ms, &e.labels, &prev, "inactive"));
                }
                self.dirty = true;
            }
            if let Some(e) = self.alerts.get_mut(fp)
                && e.ends_at_ms.is_none()
            {
                e.ends_at_ms = Some(now_ms);
                self.insert(*fp, now_ms);
            }
        }
        history
    }

    /// Adds alert `fp` to the groups of every route it matches.
    fn insert(&mut self, fp: u64, now_ms: i64) {
        let e = &self.alerts[&fp];
        let firing = e.ends_at_ms.is_none();
        for r in self.cfg.route.matching(&e.labels) {
            let labels = r.group_by.group_labels(&e.labels);
            let key = format!("{}:{}", r.key, labels_string(&labels));
            let g = self.groups.entry(key.clone()).or_insert_with(|| Group {
                receiver: r.receiver.clone(),
                labels,
                timers: r.timers,
                escalation: r.escalation.clone(),
                fps: BTreeSet::new(),
                next_flush_ms: now_ms + r.timers.group_wait_ms,
                flushed: false,
                muted: BTreeSet::new(),
            });
            let new_alert = g.fps.insert(fp);
            // Alertmanager: an alert older than group_wait flushes a group
            // that has not flushed yet at once.
            if new_alert && !g.flushed && e.starts_at_ms + g.timers.group_wait_ms < now_ms {
                g.next_flush_ms = g.next_flush_ms.min(now_ms);
            }
            if firing {
                let m = self.state.marks.entry(key).or_default();
                if m.firing_since_ms.is_none() {
                    m.firing_since_ms = Some(e.starts_at_ms.max(0).min(now_ms));
                    self.dirty = true;
                }
            }
        }
    }

    fn muted_reason(&self, fp: u64, now_ms: i64) -> Option<String> {
        let e = &self.alerts[&fp];
        if let Some(id) = self.state.silences.muting(&e.labels, now_ms) {
            return Some(format!("silenced by {id}"));
        }
        let firing = self
            .alerts
            .iter()
            .filter(|(_, a)| a.ends_at_ms.is_none())
            .map(|(fp, a)| (*fp, &a.labels));
        if e.ends_at_ms.is_none() && inhibited(&self.cfg.inhibit, fp, &e.labels, firing) {
            return Some("inhibited".into());
        }
        None
    }

    /// Everything due at `now_ms`; history entries for newly suppressed alerts.
    pub fn tick(&mut self, now_ms: i64) -> (Vec<Dispatch>, Vec<Entry>) {
        let mut out = Vec::new();
        let mut history = Vec::new();
        let keys: Vec<String> = self.groups.keys().cloned().collect();
        for key in keys {
            let g = &self.groups[&key];
            let due = g.next_flush_ms <= now_ms;
            // Which alerts are muted, recording newly muted ones.
            let mut firing = BTreeSet::new();
            let mut resolved = BTreeSet::new();
            let mut newly_muted = Vec::new();
            let mut unmuted = Vec::new();
            for &fp in &g.fps {
                match self.muted_reason(fp, now_ms) {
                    Some(reason) => {
                        if !g.muted.contains(&fp) {
                            newly_muted.push((fp, reason));
                        }
                    }
                    None => {
                        unmuted.push(fp);
                        if self.alerts[&fp].ends_at_ms.is_none() {
                            firing.insert(fp);
                        } else {
                            resolved.insert(fp);
                        }
                    }
                }
            }
            let g = self.groups.get_mut(&key).expect("key from the map");
            for fp in unmuted {
                g.muted.remove(&fp);
            }
            for (fp, reason) in newly_muted {
                g.muted.insert(fp);
                if self.alerts[&fp].ends_at_ms.is_none() {
                    history.push(Entry::notification(
                        now_ms,
                        &self.alerts[&fp].labels,
                        &g.receiver,
                        "*",
                        Outcome::Suppressed,
                        Some(reason),
                    ));
                }
            }
            if due {
                g.next_flush_ms = now_ms + g.timers.group_interval_ms;
                g.flushed = true;
                let g = &self.groups[&key];
                let kinds = self
                    .cfg
                    .receivers
                    .get(&g.receiver)
                    .cloned()
                    .unwrap_or_default();
                let mut notification = None;
                for (i, kind) in kinds.iter().enumerate() {
                    let nk = nflog::key(&key, &g.receiver, i);
                    // Everything muted: nothing to say (not an empty "resolved").
                    if (firing.is_empty() && resolved.is_empty())
                        || self.in_flight.contains(&nk)
                        || !self.state.nflog.needs_update(
                            &nk,
                            &firing,
                            &resolved,
                            g.timers.repeat_interval_ms,
                            now_ms,
                        )
                    {
                        continue;
                    }
                    let n = notification
                        .get_or_insert_with(|| {
                            Arc::new(self.payload(&g.receiver, &key, &g.labels, &firing, &resolved))
                        })
                        .clone();
                    self.in_flight.insert(nk);
                    out.push(Dispatch {
                        kind: DispatchKind::Notify,
                        group_key: key.clone(),
                        receiver: g.receiver.clone(),
                        channel: i,
                        channel_kind: kind,
                        notification: n,
                        firing: firing.clone(),
                        resolved: resolved.clone(),
                    });
                }
                self.prune(&key);
            }
            if let Some(d) = self.escalate(&key, &firing, now_ms) {
                out.extend(d);
            }
        }
        if self.state.nflog.gc(now_ms) > 0 || self.state.silences.gc(now_ms) {
            self.dirty = true;
        }
        self.gc_marks(now_ms);
        (out, history)
    }

    /// Drops acknowledgements and escalation progress of groups that did
    /// not come back within [`MARKS_GRACE_MS`] of the first tick (their
    /// rule was removed, or they resolved while the process was down).
    fn gc_marks(&mut self, now_ms: i64) {
        let first = *self.first_tick_ms.get_or_insert(now_ms);
        if now_ms < first + MARKS_GRACE_MS {
            return;
        }
        let groups = &self.groups;
        let before = self.state.marks.len();
        self.state.marks.retain(|k, _| groups.contains_key(k));
        if self.state.marks.len() != before {
            self.dirty = true;
        }
    }

    fn escalate(
        &mut self,
        key: &str,
        firing: &BTreeSet<u64>,
        now_ms: i64,
    ) -> Option<Vec<Dispatch>> {
        let g = self.groups.get(key)?;
        let levels = self.cfg.escalations.get(g.escalation.as_ref()?)?;
        let marks = self.state.marks.get(key)?;
        if marks.ack.is_some() || firing.is_empty() {
            return None;
        }
        let since = marks.firing_since_ms?;
        let mut level = marks.escalation_level;
        let mut out = Vec::new();
        while level < levels.len() && now_ms >= since + levels[level].0 {
            let receiver = &levels[level].1;
            let n = Arc::new(self.payload(receiver, key, &g.labels, firing, &BTreeSet::new()));
            for (i, kind) in self
                .cfg
                .receivers
                .get(receiver)
                .into_iter()
                .flatten()
                .enumerate()
            {
                out.push(Dispatch {
                    kind: DispatchKind::Escalation(level + 1),
                    group_key: key.to_string(),
                    receiver: receiver.clone(),
                    channel: i,
                    channel_kind: kind,
                    notification: n.clone(),
                    firing: firing.clone(),
                    resolved: BTreeSet::new(),
                });
            }
            level += 1;
        }
        if level != marks.escalation_level {
            self.state.marks.get_mut(key)?.escalation_level = level;
            self.dirty = true;
        }
        Some(out)
    }

    /// Drops resolved alerts every channel has announced (or never
    /// announced as firing), and the group once it is empty.
    fn prune(&mut self, key: &str) {
        let Some(g) = self.groups.get(key) else {
            return;
        };
        let n = self.cfg.receivers.get(&g.receiver).map_or(0, Vec::len);
        let keys: Vec<String> = (0..n).map(|i| nflog::key(key, &g.receiver, i)).collect();
        if keys.iter().any(|k| self.in_flight.contains(k)) {
            return;
        }
        let done: Vec<u64> = g
            .fps
            .iter()
            .copied()
            .filter(|fp| self.alerts[fp].ends_at_ms.is_some())
            .filter(|fp| {
                g.muted.contains(fp)
                    || keys.iter().all(|k| {
                        self.state
                            .nflog
                            .get(k)
                            .is_none_or(|e| !e.firing.contains(fp) || e.resolved.contains(fp))
                    })
            })
            .collect();
        let g = self.groups.get_mut(key).expect("checked above");
        for fp in &done {
            g.fps.remove(fp);
            g.muted.remove(fp);
        }
        let still_firing = g.fps.iter().any(|fp| self.alerts[fp].ends_at_ms.is_none());
        if !still_firing && self.state.marks.remove(key).is_some() {
            self.dirty = true;
        }
        if g.fps.is_empty() {
            self.groups.remove(key);
        }
        for fp in done {
            if !self.groups.values().any(|g| g.fps.contains(&fp)) {
                self.alerts.remove(&fp);
            }
        }
    }

    /// Records the outcome of `d` at `now_ms`; returns its history entry.
    pub fn delivered(&mut self, d: &Dispatch, error: Option<String>, now_ms: i64) -> Entry {
        let entry = Entry::notification(
            now_ms,
            &d.notification.common_labels,
            &d.receiver,
            d.channel_kind,
            if error.is_none() {
                Outcome::Sent
            } else {
                Outcome::Failed
            },
            error.clone(),
        );
        if d.kind != DispatchKind::Notify {
            return entry;
        }
        let nk = nflog::key(&d.group_key, &d.receiver, d.channel);
        self.in_flight.remove(&nk);
        if error.is_none() {
            self.state
                .nflog
                .log(nk, d.firing.clone(), d.resolved.clone(), now_ms);
            self.dirty = true;
            self.prune(&d.group_key);
        }
        entry
    }

    /// Acknowledges group `id`.
    ///
    /// # Errors
    /// No such group.
    pub fn ack(&mut self, id: &str, by: &str, comment: &str, now_ms: i64) -> Result<(), String> {
        if !self.groups.contains_key(id) {
            return Err(format!("no alert group {id:?}"));
        }
        self.state.marks.entry(id.to_string()).or_default().ack = Some(Ack {
            by: by.to_string(),
            comment: comment.to_string(),
            at_ms: now_ms,
        });
        self.dirty = true;
        Ok(())
    }
}

#[path = "group_view.rs"]
mod view;
pub use view::{AlertView, CoreConfig, GroupView};

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "group_mute_tests.rs"]
mod mute_tests;
