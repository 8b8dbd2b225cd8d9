//! `[notify]` configuration: receivers and their channels, the routing
//! tree, inhibition rules, escalation policies and the retry policy.
//!
//! Invariants:
//! - Every option is documented in `src/config/default.toml`, whose
//!   `[notify]` section equals [`NotifyConfig::default`]: one `console`
//!   receiver as the root route, so alerts are visible out of the box.
//! - [`NotifyConfig::validate`] rejects, naming the option, anything the
//!   notifier could not honour: unknown receivers, bad matchers, invalid
//!   channel settings (each channel type checks its own), duplicate names.
//!   Nothing is silently ignored.
//! - Child routes inherit unset `group_by` / timers / `escalation` from
//!   their parent (Alertmanager's rule); the root falls back to
//!   Alertmanager's defaults (30s, 5m, 4h).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration::serde_duration;

/// `[notify]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `externalURL` in payloads and the base of `generatorURL`.
    pub external_url: String,
    /// Receivers: a name and the channels a notification goes to.
    pub receivers: Vec<ReceiverConfig>,
    /// The routing tree's root.
    pub route: RouteConfig,
    /// Inhibition rules.
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Escalation policies routes refer to by name.
    pub escalations: Vec<EscalationConfig>,
    /// How failed deliveries are retried.
    pub retry: RetryConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            external_url: "http://127.0.0.1:9201".to_string(),
            receivers: vec![ReceiverConfig {
                name: "console".to_string(),
                channels: vec![ChannelConfig::Console],
            }],
            route: RouteConfig {
                receiver: Some("console".to_string()),
                group_by: Some(vec!["alertname".to_string()]),
                group_wait: Some(Duration::from_secs(30)),
                group_interval: Some(Duration::from_secs(300)),
                repeat_interval: Some(Duration::from_secs(4 * 3600)),
                ..RouteConfig::default()
            },
            inhibit_rules: Vec::new(),
            escalations: Vec::new(),
            retry: RetryConfig::default(),
        }
    }
}

/// `[[notify.receivers]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
}

/// `[[notify.receivers.channels]]`, selected by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelConfig {
    /// One human-readable block per notification on stderr.
    Console,
    /// JSON lines of the webhook payload, rotated by size.
    File(FileChannelConfig),
    /// HTTP POST of the Alertmanager v4 payload (or a templated body).
    Webhook(WebhookChannelConfig),
    /// Slack incoming webhook, coloured by severity.
    Slack(SlackChannelConfig),
    /// SMTP with optional STARTTLS/TLS and AUTH.
    Email(EmailChannelConfig),
}

impl ChannelConfig {
    /// The `type` as written.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Console => "console",
            ChannelConfig::File(_) => "file",
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Slack(_) => "slack",
            ChannelConfig::Email(_) => "email",
        }
    }
}

/// `type = "file"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChannelConfig {
    /// The current file; rotated ones are `<path>.1` (newest) .. `<path>.<keep>`.
    pub path: PathBuf,
    /// Rotate before a line would make the file larger than this.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_max_bytes() -> u64 {
    10 << 20
}

fn default_keep() -> usize {
    5
}

/// `type = "webhook"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannelConfig {
    /// `http://` or `https://` URL POSTed to.
    pub url: String,
    /// Optional body template (`{{ .Status }}`, `{{ .CommonLabels.x }}`,
    /// ... see `channels::webhook`); default: the JSON payload.
    #[serde(default)]
    pub body_template: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Per-attempt timeout.
    #[serde(with = "serde_duration", default = "default_timeout")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `type = "slack"` and `type = "email"`: defined next to their channels.
pub use crate::notify::channels::email::{EmailChannelConfig, EmailTls};
pub use crate::notify::channels::slack::SlackChannelConfig;

/// `[notify.route]` and its `routes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver (inherited from the parent when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// Prometheus matchers, each like `severity="critical"` or
    /// `env=~"prod|stage"`; all must match.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Labels to group by; `["..."]` groups by all labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_wait: Option<Duration>,
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_interval: Option<Duration>,
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub repeat_interval: Option<Duration>,
    /// Keep matching siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// Escalation policy name (inherited when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `[[notify.inhibit_rules]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    #[serde(default)]
    pub equal: Vec<String>,
}

/// `[[notify.escalations]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    pub name: String,
    /// In order of increasing `after`.
    pub levels: Vec<EscalationLevel>,
}

/// One level: after `after` of firing without acknowledgement, notify `receiver`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    #[serde(with = "serde_duration")]
    pub after: Duration,
    pub receiver: String,
}

/// `[notify.retry]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    #[serde(with = "serde_duration")]
    pub initial_backoff: Duration,
    #[serde(with = "serde_duration")]
    pub max_backoff: Duration,
    /// Attempts per notification and channel, the first included.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_attempts: 5,
        }
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::config::duration::{format_duration, parse_duration};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }
}

impl NotifyConfig {
    /// Checks references, matchers and channel settings; the message names
    /// the offending option.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            if r.name.is_empty() {
                return Err(format!("notify.receivers[{i}].name must not be empty"));
            }
            if !names.insert(r.name.as_str()) {
                return Err(format!("notify.receivers: duplicate name {:?}", r.name));
            }
            for (j, c) in r.channels.iter().enumerate() {
                let at = format!("notify.receivers[{i}] ({:?}).channels[{j}]", r.name);
                check_channel(c).map_err(|e| format!("{at}: {e}"))?;
            }
        }
        let mut esc = HashSet::new();
        for (i, e) in self.escalations.iter().enumerate() {
            if !esc.insert(e.name.as_str()) {
                return Err(format!("notify.escalations: duplicate name {:?}", e.name));
            }
            if e.levels.is_empty() {
                return Err(format!(
                    "notify.escalations[{i}] ({:?}) has no levels",
                    e.name
                ));
            }
            for (j, l) in e.levels.iter().enumerate() {
                if !names.contains(l.receiver.as_str()) {
                    return Err(format!(
                        "notify.escalations[{i}].levels[{j}].receiver: unknown receiver {:?}",
                        l.receiver
                    ));
                }
            }
        }
        if self.route.receiver.is_none() {
            return Err("notify.route.receiver must be set on the root route".into());
        }
        check_route(&self.route, "notify.route", &names, &esc)?;
        for (i, r) in self.inhibit_rules.iter().enumerate() {
            let at = format!("notify.inhibit_rules[{i}]");
            crate::notify::route::parse_matchers(&r.source_matchers)
                .map_err(|e| format!("{at}.source_matchers: {e}"))?;
            crate::notify::route::parse_matchers(&r.target_matchers)
                .map_err(|e| format!("{at}.target_matchers: {e}"))?;
        }
        if self.retry.max_attempts == 0 {
            return Err("notify.retry.max_attempts must be at least 1".into());
        }
        if self.retry.initial_backoff.is_zero()
            || self.retry.max_backoff < self.retry.initial_backoff
        {
            return Err(
                "notify.retry: initial_backoff must be positive and at most max_backoff".into(),
            );
        }
        Ok(())
    }
}

fn check_channel(c: &ChannelConfig) -> Result<(), String> {
    match c {
        ChannelConfig::Console => Ok(()),
        ChannelConfig::File(f) => {
            if f.path.as_os_str().is_empty() {
                return Err("file channel: path must not be empty".into());
            }
            if f.max_bytes == 0 {
                return Err("file channel: max_bytes must be positive".into());
            }
            Ok(())
        }
        ChannelConfig::Webhook(w) => {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(format!(
                    "webhook channel: url {:?} must start with http:// or https://",
                    w.url
                ));
            }
            if w.timeout.is_zero() {
                return Err("webhook channel: timeout must be positive".into());
            }
            if let Some(t) = &w.body_template {
                crate::rules::Template::parse(t)
                    .map_err(|e| format!("webhook channel: body_template: {e}"))?;
            }
            Ok(())
        }
        ChannelConfig::Slack(s) => s.check(),
        ChannelConfig::Email(e) => e.check(),
    }
}

fn check_route(
    r: &RouteConfig,
    at: &str,
    receivers: &HashSet<&str>,
    escalations: &HashSet<&str>,
) -> Result<(), String> {
    if let Some(name) = &r.receiver
        && !receivers.contains(name.as_str())
    {
        return Err(format!("{at}.receiver: unknown receiver {name:?}"));
    }
    if let Some(name) = &r.escalation
        && !escalations.contains(name.as_str())
    {
        return Err(format!(
            "{at}.escalation: unknown escalation policy {name:?}"
        ));
    }
    crate::notify::route::parse_matchers(&r.matchers).map_err(|e| format!("{at}.matchers: {e}"))?;
    for (name, d) in [
        ("group_interval", r.group_interval),
        ("repeat_interval", r.repeat_interval),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            return Err(format!("{at}.{name} must be positive"));
        }
    }
    for (i, c) in r.routes.iter().enumerate() {
        check_route(c, &format!("{at}.routes[{i}]"), receivers, escalations)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(extra: &str) -> Result<NotifyConfig, String> {
        let text = format!(
            "[[receivers]]\nname = \"ops\"\nchannels = [{{ type = \"console\" }}]\n{extra}"
        );
        let mut c: NotifyConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        if !extra.contains("[route]") {
            c.route.receiver = Some("ops".into());
        }
        c.validate().map(|()| c)
    }

    #[test]
    fn invalid_settings_are_rejected_naming_the_option() {
        let cases = [
            ("[route]\nreceiver = \"nobody\"", "notify.route.receiver"),
            (
                "[route]\nreceiver = \"ops\"\n[[route.routes]]\nmatchers = ['sev=~\"(\"']",
                "notify.route.routes[0].matchers",
            ),
            (
                "[route]\nreceiver = \"ops\"\nescalation = \"x\"",
                "unknown escalation policy \"x\"",
            ),
            (
                "[[escalations]]\nname = \"x\"\nlevels = [{ after = \"5m\", receiver = \"boss\" }]",
                "notify.escalations[0].levels[0].receiver",
            ),
            (
                "[[receivers]]\nname = \"ops\"\nchannels = []",
                "duplicate name \"ops\"",
            ),
            (
                "[[receivers]]\nname = \"hook\"\nchannels = [{ type = \"webhook\", url = \"ftp://x\" }]",
                "notify.receivers[1] (\"hook\").channels[0]: webhook channel: url",
            ),
            (
                "[[inhibit_rules]]\nsource_matchers = ['a=']\ntarget_matchers = ['b']",
                "notify.inhibit_rules[0].target_matchers",
            ),
            ("[retry]\nmax_attempts = 0", "notify.retry.max_attempts"),
            (
                "[[receivers]]\nname = \"x\"\nchannels = [{ type = \"pager\" }]",
                "pager",
            ),
        ];
        for (extra, want) in cases {
            let e = check(extra).unwrap_err();
            assert!(e.contains(want), "{extra}\n→ {e}\n(wanted {want:?})");
        }
    }

    #[test]
    fn child_routes_parse_with_inherited_fields_unset() {
        let c = check(
            "[route]\nreceiver = \"ops\"\ngroup_by = [\"...\"]\n[[route.routes]]\nmatchers = ['severity=\"critical\"']\ncontinue = true\ngroup_wait = \"10s\"",
        )
        .unwrap();
        let child = &c.route.routes[0];
        assert_eq!(child.receiver, None);
        assert_eq!(child.group_by, None);
        assert!(child.continue_);
        assert_eq!(child.group_wait, Some(Duration::from_secs(10)));
        assert_eq!(c.route.group_by.as_deref(), Some(&["...".to_string()][..]));
    }
}
