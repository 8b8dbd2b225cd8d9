//! The webhook channel: POSTs Alertmanager's webhook payload (version 4)
//! as JSON, or `body_template` expanded with the rule template language,
//! with the configured headers and a per-attempt timeout.
//!
//! Invariants: HTTP 2xx is success; 429 and 5xx, timeouts and connection
//! errors are retryable; other statuses are permanent. The rustls crypto
//! provider (ring) is installed once per process before the first client
//! is built.

use std::collections::BTreeMap;

use tidemark_query::Labels;

use crate::notify::channel::{Channel, ChannelError, Notification, SendFuture};
use crate::notify::config::WebhookChannelConfig;
use crate::rules::Template;

/// POSTs to a URL.
pub struct WebhookChannel {
    url: String,
    headers: BTreeMap<String, String>,
    template: Option<Template>,
    client: reqwest::Client,
}

impl WebhookChannel {
    /// # Errors
    /// A bad body template or an HTTP client that cannot be built.
    pub fn new(cfg: &WebhookChannelConfig) -> Result<Self, String> {
        let template = cfg
            .body_template
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(|e| format!("webhook body_template: {e}"))?;
        let client = crate::http_client::client(cfg.timeout)
            .map_err(|e| format!("webhook {}: building HTTP client: {e}", cfg.url))?;
        Ok(Self {
            url: cfg.url.clone(),
            headers: cfg.headers.clone(),
            template,
            client,
        })
    }
}

/// The templated body of `n`: `$labels` are the common labels plus
/// `__status__`, `__receiver__`, `__group_key__`, `__firing__` and
/// `__resolved__`; `$value` is the number of firing alerts.
pub fn expand_template(t: &Template, n: &Notification) -> String {
    let firing = n.firing();
    let resolved = n.alerts.len() - firing;
    let mut pairs: Vec<(String, String)> = n
        .common_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.push(("__status__".into(), n.status.as_str().into()));
    pairs.push(("__receiver__".into(), n.receiver.clone()));
    pairs.push(("__group_key__".into(), n.group_key.clone()));
    pairs.push(("__firing__".into(), firing.to_string()));
    pairs.push(("__resolved__".into(), resolved.to_string()));
    let labels = Labels::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    t.expand(&labels, firing as f64)
}

impl Channel for WebhookChannel {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let (body, content_type) = match &self.template {
                Some(t) => (
                    expand_template(t, n).into_bytes(),
                    "text/plain; charset=utf-8",
                ),
                None => (
                    serde_json::to_vec(n)
                        .map_err(|e| ChannelError::Permanent(format!("encoding payload: {e}")))?,
                    "application/json",
                ),
            };
            let mut req = self
                .client
                .post(&self.url)
                .header("Content-Type", content_type)
                .header(
                    "User-Agent",
                    concat!("Tidemark/", env!("CARGO_PKG_VERSION")),
                );
            for (k, v) in &self.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let resp = req.body(body).send().await.map_err(|e| {
                ChannelError::Retryable(format!(
                    "POST {}: {}",
                    self.url,
                    crate::http_client::error_chain(&e)
                ))
            })?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let text = resp.text().await.unwrap_or_default();
            let msg = format!(
                "POST {}: HTTP {}: {}",
                self.url,
                status.as_u16(),
                text.chars().take(200).collect::<String>()
            );
            Err(ChannelError::from_http_status(status.as_u16(), msg))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::notify::channel::{NotifyStatus, PayloadAlert};

    #[test]
    fn body_template_sees_common_labels_status_and_counts() {
        let alert = |i: &str, status| PayloadAlert {
            status,
            labels: BTreeMap::from([
                ("alertname".to_string(), "A".to_string()),
                ("i".to_string(), i.to_string()),
            ]),
            annotations: BTreeMap::new(),
            starts_at: String::new(),
            ends_at: String::new(),
            generator_url: String::new(),
            fingerprint: String::new(),
        };
        let n = Notification::new(
            "ops",
            "k",
            BTreeMap::new(),
            "",
            vec![
                alert("1", NotifyStatus::Firing),
                alert("2", NotifyStatus::Resolved),
            ],
        );
        let t = Template::parse(
            r#"{"text":"{{ $labels.alertname }} {{ $labels.__status__ }} to {{ $labels.__receiver__ }}: {{ $value }} firing, {{ $labels.__resolved__ }} resolved{{ $labels.i }}"}"#,
        )
        .unwrap();
        assert_eq!(
            expand_template(&t, &n),
            r#"{"text":"A firing to ops: 1 firing, 1 resolved"}"#
        );
    }

    #[test]
    fn bad_template_is_rejected_at_construction() {
        let e = WebhookChannel::new(&WebhookChannelConfig {
            url: "http://127.0.0.1:1/".into(),
            body_template: Some("{{ .Nope }}".into()),
            headers: BTreeMap::new(),
            timeout: std::time::Duration::from_secs(1),
        })
        .err()
        .unwrap();
        assert!(e.contains("body_template"), "{e}");
    }
}
