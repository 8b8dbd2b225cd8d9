//! The notifier core's configuration ([`CoreConfig`], resolved from
//! `[notify]`) and what it shows: notification payloads built from a
//! group's alerts and the API's view of groups.
//!
//! Invariant: payload alerts are ordered by label set, so a notification's
//! bytes depend only on its alerts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Ack, Core};
use crate::notify::channel::{Notification, NotifyStatus, PayloadAlert};
use crate::notify::inhibit::InhibitRule;
use crate::notify::route::{Route, labels_string};
use crate::notify::time::{ZERO_TIME, format_rfc3339_ms};

/// The resolved configuration the core needs.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub route: Route,
    /// Receiver name → its channels' kinds, in configured order.
    pub receivers: BTreeMap<String, Vec<&'static str>>,
    pub inhibit: Vec<InhibitRule>,
    /// Policy name → levels (after ms, receiver).
    pub escalations: HashMap<String, Vec<(i64, String)>>,
    pub external_url: String,
}

impl CoreConfig {
    /// Resolves `[notify]` (already validated by `Config`).
    ///
    /// # Errors
    /// A bad matcher or reference, named.
    pub fn from_config(c: &crate::notify::config::NotifyConfig) -> Result<Self, String> {
        c.validate()?;
        Ok(Self {
            route: Route::build(&c.route)?,
            receivers: c
                .receivers
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        r.channels.iter().map(|c| c.kind()).collect(),
                    )
                })
                .collect(),
            inhibit: c
                .inhibit_rules
                .iter()
                .map(InhibitRule::build)
                .collect::<Result<_, _>>()?,
            escalations: c
                .escalations
                .iter()
                .map(|e| {
                    let levels = e
                        .levels
                        .iter()
                        .map(|l| (l.after.as_millis() as i64, l.receiver.clone()))
                        .collect();
                    (e.name.clone(), levels)
                })
                .collect(),
            external_url: c.external_url.trim_end_matches('/').to_string(),
        })
    }
}

/// A group as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupView {
    pub id: String,
    pub receiver: String,
    pub labels: BTreeMap<String, String>,
    pub alerts: Vec<AlertView>,
    pub ack: Option<Ack>,
    pub escalation_level: usize,
    pub silenced: bool,
}

/// An alert as the API shows it (Prometheus's alert object).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertView {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub firing: bool,
    pub active_at_ms: i64,
    pub value: f64,
}

impl Core {
    pub(super) fn payload(
        &self,
        receiver: &str,
        key: &str,
        labels: &BTreeMap<String, String>,
        firing: &BTreeSet<u64>,
        resolved: &BTreeSet<u64>,
    ) -> Notification {
        let mut alerts: Vec<PayloadAlert> = firing
            .iter()
            .chain(resolved)
            .map(|fp| {
                let e = &self.alerts[fp];
                PayloadAlert {
                    status: if e.ends_at_ms.is_some() {
                        NotifyStatus::Resolved
                    } else {
                        NotifyStatus::Firing
                    },
                    labels: e.labels.clone(),
                    annotations: e.annotations.clone(),
                    starts_at: format_rfc3339_ms(e.starts_at_ms),
                    ends_at: e
                        .ends_at_ms
                        .map_or_else(|| ZERO_TIME.to_string(), format_rfc3339_ms),
                    generator_url: e.generator_url.clone(),
                    fingerprint: format!("{fp:016x}"),
                }
            })
            .collect();
        alerts.sort_by_cached_key(|a| labels_string(&a.labels));
        Notification::new(
            receiver,
            key,
            labels.clone(),
            &self.cfg.external_url,
            alerts,
        )
    }

    /// Every group, by key.
    pub fn groups(&self, now_ms: i64) -> Vec<GroupView> {
        self.groups
            .iter()
            .map(|(key, g)| {
                let marks = self.state.marks.get(key).cloned().unwrap_or_default();
                GroupView {
                    id: key.clone(),
                    receiver: g.receiver.clone(),
                    labels: g.labels.clone(),
                    alerts: g
                        .fps
                        .iter()
                        .map(|fp| {
                            let e = &self.alerts[fp];
                            AlertView {
                                labels: e.labels.clone(),
                                annotations: e.annotations.clone(),
                                firing: e.ends_at_ms.is_none(),
                                active_at_ms: e.active_at_ms,
                                value: e.value,
                            }
                        })
                        .collect(),
                    ack: marks.ack,
                    escalation_level: marks.escalation_level,
                    silenced: !g.fps.is_empty()
                        && g.fps.iter().all(|fp| {
                            self.state
                                .silences
                                .muting(&self.alerts[fp].labels, now_ms)
                                .is_some()
                        }),
                }
            })
            .collect()
    }
}
