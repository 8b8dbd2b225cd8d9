//! The Slack channel: one incoming-webhook POST per notification, an
//! attachment coloured by severity (critical red, warning orange, other
//! grey, resolved green) with Alertmanager's title, a text listing each
//! alert (summary, description, other annotations, labels, start) and a
//! plain `fallback`; optional `channel`, `username`, `icon_emoji`
//! overrides and user title/text templates.
//!
//! Invariants:
//! - [`render`] is a pure function of the configuration and the
//!   notification: what a test captures is what [`render`] returns.
//! - The title is at most [`MAX_TITLE_CHARS`] characters.
//! - Text taken from alerts is escaped for Slack (`&`, `<`, `>`), so a
//!   label value cannot inject a link or a mention; user templates are
//!   trusted and not escaped.
//! - One `send` is one POST. HTTP 429 and 5xx and transport errors are
//!   retryable, every other non-2xx is permanent; errors name the status
//!   and Slack's answer (`invalid_payload`, `channel_not_found`, ...) but
//!   never the webhook URL, which is a secret.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::text::{
    AlertTemplate, GroupTemplate, alert_heading, default_title, error_chain, sorted_pairs, truncate,
};
use crate::config::duration::serde_duration;
use crate::notify::channel::{
    Channel, ChannelError, Notification, NotifyStatus, PayloadAlert, SendFuture,
};

/// Attachment colour of a notification with a firing `critical` alert.
pub const COLOR_CRITICAL: &str = "#d63232";
/// ... with a firing `warning` alert and no critical one.
pub const COLOR_WARNING: &str = "#e8912d";
/// ... firing with any other (or no) `severity`.
pub const COLOR_OTHER: &str = "#a0a0a0";
/// ... resolved.
pub const COLOR_RESOLVED: &str = "#2eb886";

/// Longest Slack answer quoted in an error.
const MAX_ERROR_BODY: usize = 512;

/// Slack shows at most this many characters of an attachment title;
/// longer titles are cut with `…` (as Alertmanager does).
pub const MAX_TITLE_CHARS: usize = 1024;

/// `s` cut to `max` characters, the last one `…` when cut.
fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let mut out: String = s.chars().take(max - 1).collect();
            out.push('…');
            out
        }
    }
}

/// `type = "slack"` in `[[notify.receivers.channels]]`. `Debug` hides the
/// webhook URL (a secret).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackChannelConfig {
    /// The incoming-webhook URL (`https://hooks.slack.com/services/...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A file holding the URL instead (it is a secret); read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// Post to this channel instead of the webhook's default (`#ops`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Post under this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Post with this emoji as avatar (`:rotating_light:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    /// Attachment title template (see `channels::text::GroupTemplate`);
    /// default: Alertmanager's `[FIRING:2] HighErrorRate (checkout critical)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_template: Option<String>,
    /// Template expanded once per alert (see `channels::text::AlertTemplate`),
    /// the results joined by newlines; default: the built-in alert list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_template: Option<String>,
    /// Per-attempt timeout.
    #[serde(with = "serde_duration", default = "default_timeout")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl std::fmt::Debug for SlackChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackChannelConfig")
            .field("url", &self.url.as_ref().map(|_| "<secret>"))
            .field("url_file", &self.url_file)
            .field("channel", &self.channel)
            .field("username", &self.username)
            .field("icon_emoji", &self.icon_emoji)
            .field("title_template", &self.title_template)
            .field("text_template", &self.text_template)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SlackChannelConfig {
    /// A configuration posting to `url` with every option at its default.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            url_file: None,
            channel: None,
            username: None,
            icon_emoji: None,
            title_template: None,
            text_template: None,
            timeout: default_timeout(),
        }
    }

    /// Checks what can be checked without reading files; the message names
    /// the option.
    pub fn check(&self) -> Result<(), String> {
        match (&self.url, &self.url_file) {
            (Some(_), Some(_)) => return Err("slack channel: set url or url_file, not both".into()),
            (None, None) => return Err("slack channel: url (or url_file) is required".into()),
            (Some(u), None) => check_url(u)?,
            (None, Some(_)) => {}
        }
        if self.timeout.is_zero() {
            return Err("slack channel: timeout must be positive".into());
        }
        if let Some(t) = &self.title_template {
            GroupTemplate::parse(t).map_err(|e| format!("slack channel: title_template: {e}"))?;
        }
        if let Some(t) = &self.text_template {
            AlertTemplate::parse(t).map_err(|e| format!("slack channel: text_template: {e}"))?;
        }
        Ok(())
    }
}

fn check_url(u: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(u)
        .map_err(|e| format!("slack channel: url is not a valid URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "slack channel: url must start with https:// (or http://), not {}:",
            parsed.scheme()
        ));
    }
    Ok(())
}

/// What [`render`] needs: the overrides and parsed templates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlackMessage {
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub title: Option<GroupTemplate>,
    pub text: Option<AlertTemplate>,
}

impl SlackMessage {
    /// The message settings of `cfg` (templates parsed).
    pub fn from_config(cfg: &SlackChannelConfig) -> Result<Self, String> {
        cfg.check()?;
        Ok(Self {
            channel: cfg.channel.clone(),
            username: cfg.username.clone(),
            icon_emoji: cfg.icon_emoji.clone(),
            title: cfg
                .title_template
                .as_deref()
                .map(GroupTemplate::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
            text: cfg
                .text_template
                .as_deref()
                .map(AlertTemplate::parse)
                .transpose()
                .map_err(|e| e.to_string())?,
        })
    }
}

/// The attachment colour: green when resolved, else by the most severe
/// `severity` label among firing alerts.
pub fn color(n: &Notification) -> &'static str {
    if n.status == NotifyStatus::Resolved {
        return COLOR_RESOLVED;
    }
    let firing = || {
        n.alerts
            .iter()
            .filter(|a| a.status == NotifyStatus::Firing)
            .filter_map(|a| a.labels.get("severity"))
    };
    if firing().any(|s| s.eq_ignore_ascii_case("critical")) {
        COLOR_CRITICAL
    } else if firing().any(|s| s.eq_ignore_ascii_case("warning")) {
        COLOR_WARNING
    } else {
        COLOR_OTHER
    }
}

/// Escapes the three characters Slack's message format reserves.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The built-in text of one alert:
///
/// ```text
/// *[FIRING] Error rate above 15%* - `critical`
/// *Description:* ...
/// *runbook:* ...
/// *Labels:* `alertname=HighErrorRate` `instance=a:1`
/// *Started:* 2026-11-27T07:00:00.000Z
/// ```
fn alert_text(a: &PayloadAlert) -> String {
    let status = match a.status {
        NotifyStatus::Firing => "FIRING",
        NotifyStatus::Resolved => "RESOLVED",
    };
    let mut s = format!("*[{status}] {}*", escape(alert_heading(a)));
    if let Some(sev) = a.labels.get("severity") {
        s.push_str(&format!(" - `{}`", escape(sev)));
    }
    if let Some(d) = a.annotations.get("description") {
        s.push_str(&format!("\n*Description:* {}", escape(d)));
    }
    for (k, v) in &a.annotations {
        if k != "summary" && k != "description" {
            s.push_str(&format!("\n*{}:* {}", escape(k), escape(v)));
        }
    }
    let labels: Vec<String> = sorted_pairs(&a.labels)
        .into_iter()
        .map(|(k, v)| format!("`{}={}`", escape(k), escape(v)))
        .collect();
    s.push_str(&format!("\n*Labels:* {}", labels.join(" ")));
    s.push_str(&format!("\n*Started:* {}", a.starts_at));
    if a.status == NotifyStatus::Resolved {
        s.push_str(&format!("\n*Ended:* {}", a.ends_at));
    }
    s
}

/// The incoming-webhook JSON for `n`.
pub fn render(msg: &SlackMessage, n: &Notification) -> Value {
    let title = match &msg.title {
        Some(t) => t.expand(n),
        None => default_title(n),
    };
    let title = truncate_chars(&title, MAX_TITLE_CHARS);
    let text = match &msg.text {
        Some(t) => n
            .alerts
            .iter()
            .enumerate()
            .map(|(i, a)| t.expand(a, i + 1))
            .collect::<Vec<_>>()
            .join("\n"),
        None => n
            .alerts
            .iter()
            .map(alert_text)
            .collect::<Vec<_>>()
            .join("\n\n"),
    };
    let summaries: Vec<&str> = n.alerts.iter().map(alert_heading).collect();
    let fallback = format!("{title}: {}", summaries.join("; "));
    let mut attachment = Map::new();
    attachment.insert("color".into(), json!(color(n)));
    attachment.insert("title".into(), json!(title));
    if !n.external_url.is_empty() {
        attachment.insert("title_link".into(), json!(n.external_url));
    }
    attachment.insert("text".into(), json!(text));
    attachment.insert("fallback".into(), json!(fallback));
    attachment.insert("mrkdwn_in".into(), json!(["text"]));
    let mut body = Map::new();
    for (key, v) in [
        ("channel", &msg.channel),
        ("username", &msg.username),
        ("icon_emoji", &msg.icon_emoji),
    ] {
        if let Some(v) = v {
            body.insert(key.into(), json!(v));
        }
    }
    body.insert(
        "attachments".into(),
        Value::Array(vec![Value::Object(attachment)]),
    );
    Value::Object(body)
}

/// A Slack incoming webhook.
pub struct SlackChannel {
    url: reqwest::Url,
    msg: SlackMessage,
    client: reqwest::Client,
}

impl SlackChannel {
    /// Builds the channel: parses templates, reads `url_file`, creates the
    /// HTTP client. Errors name the option or file.
    pub fn new(cfg: &SlackChannelConfig) -> Result<Self, String> {
        let msg = SlackMessage::from_config(cfg)?;
        let url = match (&cfg.url, &cfg.url_file) {
            (Some(u), _) => u.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("slack channel: reading url_file {}: {e}", path.display())
                })?;
                let u = text.trim().to_string();
                check_url(&u).map_err(|e| format!("{e} (in url_file {})", path.display()))?;
                u
            }
            (None, None) => unreachable!("checked"),
        };
        let url = reqwest::Url::parse(&url).map_err(|e| format!("slack channel: url: {e}"))?;
        let client = crate::http_client::client(cfg.timeout)
            .map_err(|e| format!("slack channel: HTTP client: {e}"))?;
        Ok(Self { url, msg, client })
    }
}

impl Channel for SlackChannel {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(&render(&self.msg, n))
                .map_err(|e| ChannelError::Permanent(format!("slack: encoding JSON: {e}")))?;
            let resp = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    ChannelError::Retryable(format!("slack: {}", error_chain(&e.without_url())))
                })?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let answer = resp.text().await.unwrap_or_default();
            let msg = format!(
                "slack webhook answered HTTP {status}: {}",
                truncate(answer.trim(), MAX_ERROR_BODY)
            );
            Err(ChannelError::from_http_status(status.as_u16(), msg))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::tests::{alert, checkout, map};
    use super::*;

    #[test]
    fn colour_follows_the_worst_firing_severity() {
        let mut n = checkout(NotifyStatus::Firing);
        assert_eq!(color(&n), COLOR_CRITICAL);
        n.alerts[0]
            .labels
            .insert("severity".into(), "warning".into());
        assert_eq!(color(&n), COLOR_CRITICAL, "one critical is enough");
        n.alerts[1]
            .labels
            .insert("severity".into(), "warning".into());
        assert_eq!(color(&n), COLOR_WARNING);
        n.alerts[1].labels.insert("severity".into(), "info".into());
        n.alerts[0].labels.remove("severity");
        assert_eq!(color(&n), COLOR_OTHER);
        // A resolved critical alert does not colour a firing notification.
        n.alerts[0]
            .labels
            .insert("severity".into(), "critical".into());
        n.alerts[0].status = NotifyStatus::Resolved;
        assert_eq!(color(&n), COLOR_OTHER);
        assert_eq!(color(&checkout(NotifyStatus::Resolved)), COLOR_RESOLVED);
    }

    #[test]
    fn render_builds_the_attachment() {
        let mut n = checkout(NotifyStatus::Firing);
        n.alerts[0]
            .annotations
            .insert("description".into(), "5xx > 15% <for 5m> & rising".into());
        n.alerts[0]
            .annotations
            .insert("runbook".into(), "README#high-error-rate".into());
        let msg = SlackMessage {
            channel: Some("#ops".into()),
            icon_emoji: Some(":fire:".into()),
            ..SlackMessage::default()
        };
        let v = render(&msg, &n);
        let want = json!({
            "channel": "#ops",
            "icon_emoji": ":fire:",
            "attachments": [{
                "color": "#d63232",
                "title": "[FIRING:2] HighErrorRate (checkout critical)",
                "title_link": "http://127.0.0.1:9201",
                "text": "*[FIRING] Error rate above 15%* - `critical`\n\
                         *Description:* 5xx &gt; 15% &lt;for 5m&gt; &amp; rising\n\
                         *runbook:* README#high-error-rate\n\
                         *Labels:* `alertname=HighErrorRate` `instance=a:1` `service=checkout` `severity=critical`\n\
                         *Started:* 2026-11-27T07:00:00.000Z\n\n\
                         *[FIRING] Error rate above 15%* - `critical`\n\
                         *Labels:* `alertname=HighErrorRate` `instance=b:1` `service=checkout` `severity=critical`\n\
                         *Started:* 2026-11-27T07:00:00.000Z",
                "fallback": "[FIRING:2] HighErrorRate (checkout critical): Error rate above 15%; Error rate above 15%",
                "mrkdwn_in": ["text"],
            }]
        });
        assert_eq!(v, want);
    }

    #[test]
    fn templates_replace_title_and_text() {
        let cfg = SlackChannelConfig {
            title_template: Some("{{ $labels.service }} is {{ $labels.__status__ }}".into()),
            text_template: Some("{{ $value }}: {{ $labels.instance }}".into()),
            ..SlackChannelConfig::with_url("http://127.0.0.1:1/x")
        };
        let msg = SlackMessage::from_config(&cfg).unwrap();
        let v = render(&msg, &checkout(NotifyStatus::Resolved));
        assert_eq!(v["attachments"][0]["title"], "checkout is resolved");
        assert_eq!(v["attachments"][0]["text"], "1: a:1\n2: b:1");
        assert_eq!(v["attachments"][0]["color"], COLOR_RESOLVED);
        assert!(v.get("channel").is_none());
    }

    #[test]
    fn resolved_alerts_show_their_end() {
        let a = alert(NotifyStatus::Resolved, &[("alertname", "Disk")], &[]);
        let n = Notification::new("r", "k", map(&[]), "", vec![a]);
        let v = render(&SlackMessage::default(), &n);
        let att = &v["attachments"][0];
        assert_eq!(att["title"], "[RESOLVED] (Disk)");
        assert!(att.get("title_link").is_none());
        assert_eq!(
            att["text"],
            "*[RESOLVED] Disk*\n*Labels:* `alertname=Disk`\n\
             *Started:* 2026-11-27T07:00:00.000Z\n*Ended:* 2026-11-27T07:10:00.000Z"
        );
    }

    #[test]
    fn long_titles_are_cut_to_slacks_limit() {
        let mut n = checkout(NotifyStatus::Firing);
        n.group_labels.insert("service".into(), "é".repeat(2000));
        let v = render(&SlackMessage::default(), &n);
        let title = v["attachments"][0]["title"].as_str().unwrap();
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert!(title.starts_with("[FIRING:2] HighErrorRate éé") && title.ends_with("é…"));
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
    }

    #[test]
    fn debug_hides_the_webhook_url() {
        let c = SlackChannelConfig::with_url("https://hooks.slack.com/services/T/B/SECRET");
        let d = format!("{c:?}");
        assert!(!d.contains("SECRET") && d.contains("<secret>"), "{d}");
    }

    #[test]
    fn config_errors_name_the_option() {
        let mut c = SlackChannelConfig::with_url("ftp://x");
        assert!(
            c.check()
                .unwrap_err()
                .contains("url must start with https://")
        );
        c.url = None;
        assert!(
            c.check()
                .unwrap_err()
                .contains("url (or url_file) is required")
        );
        c.url = Some("https://hooks.example/x".into());
        c.title_template = Some("{{ .Foo }}".into());
        assert!(c.check().unwrap_err().contains("title_template"));
        c.title_template = None;
        c.url_file = Some("/nonexistent".into());
        assert!(c.check().unwrap_err().contains("not both"));
        c.url = None;
        assert!(c.check().is_ok());
        let e = SlackChannel::new(&c).err().unwrap();
        assert!(e.contains("url_file /nonexistent"), "{e}");
    }
}
