//! Text the Slack and email channels share: Alertmanager's default title
//! (`[FIRING:2] HighErrorRate (checkout critical)`), label ordering, and
//! user templates (`src/rules/template.rs`) applied to a notification.
//!
//! Invariants: pure functions of the notification; the same notification
//! always renders to the same text. Label pairs are ordered the way
//! Alertmanager's `SortedPairs` orders them: `alertname` first, then by
//! name.

use std::collections::BTreeMap;

use tidemark_query::Labels;

use crate::notify::channel::{Notification, NotifyStatus, PayloadAlert};
use crate::rules::{Template, TemplateError};

/// `(name, value)` pairs with `alertname` first, the rest sorted by name.
pub fn sorted_pairs(map: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(map.len());
    if let Some(v) = map.get("alertname") {
        out.push(("alertname", v));
    }
    out.extend(
        map.iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    out
}

/// Alertmanager's default title (`__subject`): status with the number of
/// firing alerts, the group labels' values, and in parentheses the values
/// of the common labels that are not group labels:
/// `[FIRING:2] HighErrorRate (checkout critical)`, `[RESOLVED] HighErrorRate`.
pub fn default_title(n: &Notification) -> String {
    let mut s = match n.status {
        NotifyStatus::Firing => format!("[FIRING:{}]", n.firing()),
        NotifyStatus::Resolved => "[RESOLVED]".to_string(),
    };
    for (_, v) in sorted_pairs(&n.group_labels) {
        s.push(' ');
        s.push_str(v);
    }
    let extra: Vec<&str> = sorted_pairs(&n.common_labels)
        .into_iter()
        .filter(|(k, _)| !n.group_labels.contains_key(*k))
        .map(|(_, v)| v)
        .collect();
    if !extra.is_empty() {
        s.push_str(" (");
        s.push_str(&extra.join(" "));
        s.push(')');
    }
    s
}

/// The alert's name for a heading: its `summary` annotation, else its
/// `alertname` label, else its fingerprint.
pub fn alert_heading(a: &PayloadAlert) -> &str {
    a.annotations
        .get("summary")
        .or_else(|| a.labels.get("alertname"))
        .map_or(a.fingerprint.as_str(), String::as_str)
}

/// A user template over a whole notification (a title or subject).
///
/// Same variables as the webhook's `body_template`: `$labels` are the
/// notification's common labels plus `__status__` (`firing`/`resolved`),
/// `__receiver__`, `__group_key__`, `__firing__` and `__resolved__`
/// (counts); `$value` is the number of firing alerts.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupTemplate(Template);

impl GroupTemplate {
    /// Parses `src`; errors name the position and what is unsupported.
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        Template::parse(src).map(Self)
    }

    pub fn expand(&self, n: &Notification) -> String {
        super::webhook::expand_template(&self.0, n)
    }
}

/// A user template applied to each alert of a notification (a line or
/// block of text per alert).
///
/// `$labels` are the alert's labels, its annotations under their own
/// names when no label has those names (so `{{ $labels.summary }}` is the
/// summary annotation), `__status__`, `__starts_at__` and `__ends_at__`;
/// `$value` is the alert's position in the notification, from 1.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertTemplate(Template);

impl AlertTemplate {
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        Template::parse(src).map(Self)
    }

    pub fn expand(&self, a: &PayloadAlert, position: usize) -> String {
        let mut map = a.labels.clone();
        for (k, v) in &a.annotations {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
        map.insert("__status__".into(), a.status.as_str().to_string());
        map.insert("__starts_at__".into(), a.starts_at.clone());
        map.insert("__ends_at__".into(), a.ends_at.clone());
        self.0.expand(&to_labels(&map), position as f64)
    }
}

fn to_labels(map: &BTreeMap<String, String>) -> Labels {
    Labels::from_pairs(map.iter().map(|(k, v)| (k.clone(), v.clone())))
}

pub use crate::http_client::error_chain;

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(crate) fn alert(
        status: NotifyStatus,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> PayloadAlert {
        PayloadAlert {
            status,
            labels: map(labels),
            annotations: map(annotations),
            starts_at: "2026-11-27T07:00:00.000Z".into(),
            ends_at: if status == NotifyStatus::Firing {
                crate::notify::time::ZERO_TIME.into()
            } else {
                "2026-11-27T07:10:00.000Z".into()
            },
            generator_url: String::new(),
            fingerprint: "00000000000000aa".into(),
        }
    }

    /// Two HighErrorRate alerts of service checkout, grouped by alertname.
    pub(crate) fn checkout(status: NotifyStatus) -> Notification {
        let a = |inst: &str| {
            alert(
                status,
                &[
                    ("alertname", "HighErrorRate"),
                    ("instance", inst),
                    ("service", "checkout"),
                    ("severity", "critical"),
                ],
                &[("summary", "Error rate above 15%")],
            )
        };
        Notification::new(
            "ops",
            "{}:{alertname=\"HighErrorRate\"}",
            map(&[("alertname", "HighErrorRate")]),
            "http://127.0.0.1:9201",
            vec![a("a:1"), a("b:1")],
        )
    }

    #[test]
    fn default_title_is_alertmanagers_subject() {
        let n = checkout(NotifyStatus::Firing);
        assert_eq!(
            default_title(&n),
            "[FIRING:2] HighErrorRate (checkout critical)"
        );
        let n = checkout(NotifyStatus::Resolved);
        assert_eq!(
            default_title(&n),
            "[RESOLVED] HighErrorRate (checkout critical)"
        );
        let mut n = checkout(NotifyStatus::Firing);
        n.group_labels = map(&[("service", "checkout"), ("alertname", "HighErrorRate")]);
        assert_eq!(
            default_title(&n),
            "[FIRING:2] HighErrorRate checkout (critical)"
        );
    }

    #[test]
    fn sorted_pairs_put_alertname_first() {
        let m = map(&[("a", "1"), ("alertname", "X"), ("z", "2")]);
        assert_eq!(
            sorted_pairs(&m),
            vec![("alertname", "X"), ("a", "1"), ("z", "2")]
        );
    }

    #[test]
    fn templates_see_labels_annotations_and_counts() {
        let n = checkout(NotifyStatus::Firing);
        let t = GroupTemplate::parse(
            "{{ $labels.__status__ }}: {{ $value }} x {{ $labels.service }} ({{ $labels.__resolved__ }} resolved)",
        )
            .unwrap();
        assert_eq!(t.expand(&n), "firing: 2 x checkout (0 resolved)");
        let t = AlertTemplate::parse(
            "{{ $value }}. {{ $labels.instance }} {{ $labels.summary }} {{ $labels.__status__ }}",
        )
        .unwrap();
        assert_eq!(
            t.expand(&n.alerts[1], 2),
            "2. b:1 Error rate above 15% firing"
        );
        assert!(GroupTemplate::parse("{{ range .Alerts }}").is_err());
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
