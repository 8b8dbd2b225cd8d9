//! `[[forward]]`: one remote-write target per table (typed, documented in
//! `src/config/default.toml`).
//!
//! Invariants:
//! - A target's `name` is its directory under `<data_dir>/forward/` and its
//!   `target` label on `/metrics`, so it is restricted to `[A-Za-z0-9_-]` and
//!   unique; [`ForwardConfig::validate`] says which field is wrong.
//! - `match` selectors are parsed at validation time: a typo fails the
//!   configuration instead of forwarding nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration::serde_duration;

/// HTTP basic authentication sent to a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// One remote-write target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardConfig {
    /// Directory name under `<data_dir>/forward/` and `target` label.
    pub name: String,
    /// The remote-write endpoint, e.g. `http://mimir:9009/api/v1/push`.
    pub url: String,
    /// Prometheus series selectors; a series is forwarded when it matches
    /// any of them. Empty: every series.
    #[serde(rename = "match")]
    pub matchers: Vec<String>,
    pub bearer_token: Option<String>,
    pub basic_auth: Option<BasicAuth>,
    /// Most samples in one request.
    pub max_samples_per_send: usize,
    /// A request is sent once its oldest sample waited this long, even if
    /// it holds fewer than `max_samples_per_send`.
    #[serde(with = "serde_duration")]
    pub batch_send_deadline: Duration,
    /// First retry delay; doubles per failed attempt up to `max_backoff`.
    #[serde(with = "serde_duration")]
    pub min_backoff: Duration,
    #[serde(with = "serde_duration")]
    pub max_backoff: Duration,
    /// One request's time limit (connect + send + response).
    #[serde(with = "serde_duration")]
    pub timeout: Duration,
    /// Disk bound of the queue; when full the oldest segment is dropped
    /// (counted in `tidemark_forward_samples_dropped_total`).
    pub max_queue_bytes: u64,
    /// Size at which a queue segment file is closed and a new one begun.
    pub segment_bytes: u64,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: String::new(),
            matchers: Vec::new(),
            bearer_token: None,
            basic_auth: None,
            max_samples_per_send: 2000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_queue_bytes: 1 << 30,
            segment_bytes: 8 << 20,
        }
    }
}

impl ForwardConfig {
    /// Checks one target; `at` names it in messages (`forward[0]`).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.name.is_empty() {
            return Err(format!("{at}.name is required"));
        }
        if !self
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "{at}.name {:?} may only contain A-Z, a-z, 0-9, '_' and '-'",
                self.name
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "{at}.url {:?} must be an http:// or https:// URL",
                self.url
            ));
        }
        if self.bearer_token.is_some() && self.basic_auth.is_some() {
            return Err(format!("{at}: set bearer_token or basic_auth, not both"));
        }
        if self.max_samples_per_send == 0 {
            return Err(format!("{at}.max_samples_per_send must be positive"));
        }
        if self.min_backoff.is_zero() || self.max_backoff < self.min_backoff {
            return Err(format!(
                "{at}: min_backoff must be positive and at most max_backoff"
            ));
        }
        if self.timeout.is_zero() {
            return Err(format!("{at}.timeout must be positive"));
        }
        if self.segment_bytes < 4096 {
            return Err(format!("{at}.segment_bytes must be at least 4096"));
        }
        if self.max_queue_bytes < 2 * self.segment_bytes {
            return Err(format!(
                "{at}.max_queue_bytes must be at least twice segment_bytes"
            ));
        }
        super::matcher::SeriesFilter::parse(&self.matchers)
            .map_err(|e| format!("{at}.match: {e}"))?;
        Ok(())
    }
}

/// Checks every target and that names are unique.
pub fn validate_all(targets: &[ForwardConfig]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for (i, t) in targets.iter().enumerate() {
        let at = format!("forward[{i}]");
        t.validate(&at)?;
        if !seen.insert(t.name.as_str()) {
            return Err(format!("{at}.name {:?} is used twice", t.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(toml: &str) -> String {
        Config::from_toml(toml, "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn a_target_parses_with_defaults_for_the_rest() {
        let c = Config::from_toml(
            "[[forward]]\nname = \"c\"\nurl = \"http://h:9/api/v1/push\"\nmatch = ['{job=\"a\"}']\nbasic_auth = { username = \"u\", password = \"p\" }\nmin_backoff = \"10ms\"\n",
            "t.toml",
        )
        .unwrap();
        let f = &c.forward[0];
        assert_eq!(f.matchers, vec![r#"{job="a"}"#.to_string()]);
        assert_eq!(f.basic_auth.as_ref().unwrap().username, "u");
        assert_eq!(f.min_backoff, std::time::Duration::from_millis(10));
        assert_eq!(f.max_samples_per_send, 2000);
    }

    #[test]
    fn errors_name_the_target_and_field() {
        let url = "url = \"http://h/w\"\n";
        assert!(err(&format!("[[forward]]\n{url}")).contains("forward[0].name is required"));
        let e = err(&format!("[[forward]]\nname = \"a/b\"\n{url}"));
        assert!(e.contains("forward[0].name \"a/b\""), "{e}");
        let e = err("[[forward]]\nname = \"a\"\nurl = \"h:9\"\n");
        assert!(e.contains("forward[0].url"), "{e}");
        let e = err(&format!(
            "[[forward]]\nname = \"a\"\n{url}[[forward]]\nname = \"a\"\n{url}"
        ));
        assert!(e.contains("forward[1].name \"a\" is used twice"), "{e}");
        let e = err(&format!(
            "[[forward]]\nname = \"a\"\n{url}match = ['{{job=}}']\n"
        ));
        assert!(
            e.contains("forward[0].match") && e.contains("{job=}"),
            "{e}"
        );
        let e = err(&format!("[[forward]]\nname = \"a\"\n{url}matchers = []\n"));
        assert!(e.contains("matchers"), "{e}");
        let e = err(&format!(
            "[[forward]]\nname = \"a\"\n{url}max_queue_bytes = 10000\nsegment_bytes = 8000\n"
        ));
        assert!(e.contains("max_queue_bytes"), "{e}");
    }
}
