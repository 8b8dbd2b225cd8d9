//! The channel contract: what a notification is (the Alertmanager webhook
//! payload, version 4) and the [`Channel`] trait every delivery channel
//! (console, file, webhook, Slack, email) implements.
//!
//! Invariants:
//! - [`Notification`] serializes to exactly Alertmanager's webhook payload
//!   v4 field names (`groupKey`, `externalURL`, `generatorURL`, ...), so a
//!   receiver written for Alertmanager accepts it unchanged.
//! - A channel's `send` is one attempt: retries, backoff, concurrency and
//!   health reporting belong to the notifier's dispatcher, which uses
//!   [`ChannelError::is_retryable`] to decide whether to try again.
//! - `send` never blocks the calling thread: it is an async future that
//!   does its I/O with tokio (or `spawn_blocking` for blocking work).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// Whether a notification (or one of its alerts) is firing or resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyStatus {
    Firing,
    Resolved,
}

impl NotifyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyStatus::Firing => "firing",
            NotifyStatus::Resolved => "resolved",
        }
    }
}

/// One alert inside a [`Notification`] (Alertmanager's webhook alert).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadAlert {
    pub status: NotifyStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 (UTC, milliseconds).
    pub starts_at: String,
    /// RFC 3339; Go's zero time `0001-01-01T00:00:00Z` while firing.
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// 16 hex digits identifying the label set (stable across restarts).
    pub fingerprint: String,
}

/// What a channel delivers: Alertmanager's webhook payload, version 4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Always `"4"`.
    pub version: String,
    /// The aggregation group's key, e.g. `{}:{alertname="HighErrorRate"}`.
    pub group_key: String,
    /// Alerts left out to respect a channel's limit (0: none).
    pub truncated_alerts: u64,
    /// `firing` when any alert fires, else `resolved`.
    pub status: NotifyStatus,
    /// The receiver's name.
    pub receiver: String,
    /// The group's `group_by` labels.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert has with the same value.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert has with the same value.
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<PayloadAlert>,
}

/// The payload version this crate writes.
pub const PAYLOAD_VERSION: &str = "4";

impl Notification {
    /// Builds the payload for `alerts` of one group, computing `status`
    /// and the common labels and annotations.
    pub fn new(
        receiver: &str,
        group_key: &str,
        group_labels: BTreeMap<String, String>,
        external_url: &str,
        alerts: Vec<PayloadAlert>,
    ) -> Self {
        let status = if alerts.iter().any(|a| a.status == NotifyStatus::Firing) {
            NotifyStatus::Firing
        } else {
            NotifyStatus::Resolved
        };
        let common = |get: fn(&PayloadAlert) -> &BTreeMap<String, String>| {
            let mut it = alerts.iter();
            let mut out = it.next().map(|a| get(a).clone()).unwrap_or_default();
            for a in it {
                out.retain(|k, v| get(a).get(k) == Some(v));
            }
            out
        };
        let common_labels = common(|a| &a.labels);
        let common_annotations = common(|a| &a.annotations);
        Self {
            version: PAYLOAD_VERSION.to_string(),
            group_key: group_key.to_string(),
            truncated_alerts: 0,
            status,
            receiver: receiver.to_string(),
            group_labels,
            common_labels,
            common_annotations,
            external_url: external_url.to_string(),
            alerts,
        }
    }

    /// Number of firing alerts.
    pub fn firing(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| a.status == NotifyStatus::Firing)
            .count()
    }

    /// A short title: `[FIRING:2] HighErrorRate (db critical)`, the way
    /// Alertmanager's default templates title a notification.
    pub fn title(&self) -> String {
        let mut s = match self.status {
            NotifyStatus::Firing => format!("[FIRING:{}]", self.firing()),
            NotifyStatus::Resolved => "[RESOLVED]".to_string(),
        };
        let mut values: Vec<&str> = Vec::new();
        if let Some(n) = self.group_labels.get("alertname") {
            values.push(n);
        }
        values.extend(
            self.group_labels
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(_, v)| v.as_str()),
        );
        if values.is_empty()
            && let Some(n) = self.common_labels.get("alertname")
        {
            values.push(n);
        }
        for v in values {
            s.push(' ');
            s.push_str(v);
        }
        s
    }
}

/// One failed delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Worth trying again later: timeouts, connection errors, HTTP 5xx and
    /// 429, SMTP 4xx.
    #[error("{0}")]
    Retryable(String),
    /// Trying again cannot help: HTTP 4xx, a rejected recipient, a bad
    /// template, an unwritable path.
    #[error("{0}")]
    Permanent(String),
}

impl ChannelError {
    /// An HTTP endpoint's non-2xx answer: 429 and 5xx are worth retrying,
    /// other statuses are not (the rule webhook and Slack share).
    pub fn from_http_status(status: u16, msg: String) -> ChannelError {
        if status == 429 || (500..600).contains(&status) {
            ChannelError::Retryable(msg)
        } else {
            ChannelError::Permanent(msg)
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, ChannelError::Retryable(_))
    }

    /// The message, without the retryable/permanent distinction.
    pub fn message(&self) -> &str {
        match self {
            ChannelError::Retryable(m) | ChannelError::Permanent(m) => m,
        }
    }
}

/// What [`Channel::send`] returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ChannelError>> + Send + 'a>>;

/// A delivery channel. Object safe: the notifier holds `Arc<dyn Channel>`.
///
/// Implementations: `channels::console`, `channels::file`,
/// `channels::webhook` (and Slack and email). Construct them from
/// configuration with [`crate::notify::channels::build`].
pub trait Channel: Send + Sync {
    /// The channel type as configured: `console`, `file`, `webhook`,
    /// `slack`, `email` (used in health names `channel:<receiver>/<kind>`
    /// and in history).
    fn kind(&self) -> &'static str;

    /// One delivery attempt of `n`.
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: NotifyStatus, labels: &[(&str, &str)]) -> PayloadAlert {
        PayloadAlert {
            status,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::from([("summary".to_string(), "s".to_string())]),
            starts_at: "2026-11-27T07:00:00.000Z".into(),
            ends_at: crate::notify::time::ZERO_TIME.into(),
            generator_url: String::new(),
            fingerprint: "0000000000000001".into(),
        }
    }

    #[test]
    fn payload_has_alertmanager_v4_field_names_and_common_labels() {
        let n = Notification::new(
            "ops",
            "{}:{alertname=\"A\"}",
            BTreeMap::from([("alertname".to_string(), "A".to_string())]),
            "http://x",
            vec![
                alert(
                    NotifyStatus::Firing,
                    &[("alertname", "A"), ("job", "db"), ("i", "1")],
                ),
                alert(
                    NotifyStatus::Resolved,
                    &[("alertname", "A"), ("job", "db"), ("i", "2")],
                ),
            ],
        );
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["groupKey"], "{}:{alertname=\"A\"}");
        assert_eq!(v["externalURL"], "http://x");
        assert_eq!(v["truncatedAlerts"], 0);
        assert_eq!(
            v["commonLabels"],
            serde_json::json!({"alertname": "A", "job": "db"})
        );
        assert_eq!(v["commonAnnotations"], serde_json::json!({"summary": "s"}));
        assert_eq!(v["alerts"][1]["status"], "resolved");
        assert!(v["alerts"][0].get("generatorURL").is_some());
        assert!(v["alerts"][0].get("startsAt").is_some());
        assert_eq!(n.title(), "[FIRING:1] A");
        let back: Notification = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn errors_say_whether_to_retry() {
        assert!(ChannelError::Retryable("HTTP 503".into()).is_retryable());
        assert!(!ChannelError::Permanent("HTTP 400".into()).is_retryable());
        assert_eq!(
            ChannelError::Permanent("HTTP 400".into()).to_string(),
            "HTTP 400"
        );
    }
}
