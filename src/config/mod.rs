//! Typed configuration: a TOML file (every option documented in the
//! embedded `default.toml`), resolved into [`Config`] with parsed durations
//! and checked values, plus the flags that override it.
//!
//! Invariants:
//! - `Config::default()` equals the parsed embedded `default.toml` (a test
//!   holds them together), so the documented defaults are the real ones.
//! - Unknown keys are errors naming the key: a typo never silently falls
//!   back to a default.

pub mod duration;
pub mod size;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use duration::serde_duration;

/// The documented default configuration, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// A configuration file that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub rules: RulesConfig,
    /// `[[forward]]`: remote-write targets, each with its disk-backed
    /// queue; see `crate::forward::config`.
    pub forward: Vec<crate::forward::ForwardConfig>,
    /// `[notify]`: receivers and channels, routing, inhibition, escalation
    /// and retries; see `crate::notify::config`.
    pub notify: crate::notify::config::NotifyConfig,
    /// `[monitor]`: collect interval, component limit, memory budget and
    /// the demo workload; see `crate::monitor::config`.
    pub monitor: crate::monitor::config::MonitorConfig,
    /// `[events]`: the event log's retention, segment width and fsync.
    pub events: EventsConfig,
}

/// `[events]`: the event log (`POST`/`GET /api/v1/events`) under
/// `<data_dir>/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Events are kept this long; whole expired segment files are deleted.
    #[serde(with = "serde_duration")]
    pub retention: Duration,
    /// Time window of one segment file.
    #[serde(with = "serde_duration")]
    pub segment: Duration,
    /// fsync every accepted POST before answering.
    pub fsync: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(90 * 86_400),
            segment: Duration::from_secs(86_400),
            fsync: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    Always,
    Batch,
    Never,
}

impl From<Fsync> for tidemark_storage::FsyncMode {
    fn from(f: Fsync) -> Self {
        match f {
            Fsync::Always => Self::Always,
            Fsync::Batch => Self::Batch,
            Fsync::Never => Self::Never,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub fsync: Fsync,
    #[serde(with = "serde_duration")]
    pub retention: Duration,
    #[serde(with = "serde_duration")]
    pub ooo_window: Duration,
    #[serde(with = "serde_duration")]
    pub flush_interval: Duration,
    #[serde(with = "serde_duration")]
    pub partition: Duration,
    #[serde(with = "serde_duration")]
    pub compact_interval: Duration,
    /// `[[storage.tiers]]`: rollup tiers, finest first.
    pub tiers: Vec<TierConfig>,
    /// Raw partitions may use at most this much disk; 0 = no cap.
    #[serde(with = "size::serde_size")]
    pub retention_max_size: u64,
    /// `[[storage.retention_overrides]]`: per-series raw retention.
    pub retention_overrides: Vec<RetentionOverrideConfig>,
}

/// One `[[storage.retention_overrides]]` entry: series `match` selects
/// keep their raw samples for `retention` instead of `storage.retention`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionOverrideConfig {
    /// A series selector, e.g. `{__name__=~"recovery_.*"}`.
    #[serde(rename = "match")]
    pub selector: String,
    #[serde(with = "serde_duration")]
    pub retention: Duration,
}

/// One `[[storage.tiers]]` entry: a downsampling tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: String,
    #[serde(with = "serde_duration")]
    pub resolution: Duration,
    /// Zero keeps the tier forever.
    #[serde(with = "serde_duration")]
    pub retention: Duration,
    /// Size cap of the tier's files ("0" = none): oldest files go first.
    #[serde(default, with = "size::serde_size")]
    pub max_size: u64,
}

impl TierConfig {
    fn new(name: &str, resolution_s: u64, retention_d: u64) -> Self {
        Self {
            name: name.into(),
            resolution: Duration::from_secs(resolution_s),
            retention: Duration::from_secs(retention_d * 86_400),
            max_size: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_series: usize,
    pub max_new_series_per_request: usize,
    pub query_max_samples: usize,
    pub query_max_series: usize,
    #[serde(with = "serde_duration")]
    pub query_timeout: Duration,
    pub max_points_per_series: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub write_token: Option<String>,
    pub read_token: Option<String>,
    pub admin_token: Option<String>,
}

/// `[rules]`: which rule files `serve` evaluates, and how often.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Prometheus rule files (recording and alerting rules).
    pub files: Vec<PathBuf>,
    /// Evaluate the embedded default rule pack too.
    pub default_pack: bool,
    /// Interval of groups that set none.
    #[serde(with = "serde_duration")]
    pub evaluation_interval: Duration,
    /// Thresholds of the default pack's alerts.
    pub thresholds: crate::rules::thresholds::Thresholds,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            default_pack: true,
            evaluation_interval: Duration::from_secs(60),
            thresholds: crate::rules::thresholds::Thresholds::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9201)),
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            fsync: Fsync::Batch,
            retention: Duration::from_secs(15 * 86_400),
            ooo_window: Duration::from_secs(3600),
            flush_interval: Duration::from_secs(600),
            partition: Duration::from_secs(86_400),
            compact_interval: Duration::from_secs(600),
            tiers: vec![
                TierConfig::new("1m", 60, 90),
                TierConfig::new("1h", 3600, 5 * 365),
            ],
            retention_max_size: 0,
            retention_overrides: Vec::new(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_series: 10_000_000,
            max_new_series_per_request: 100_000,
            query_max_samples: 50_000_000,
            query_max_series: 500_000,
            query_timeout: Duration::from_secs(120),
            max_points_per_series: 11_000,
        }
    }
}

impl Config {
    /// Parses TOML text; `origin` names it in errors (a path or "default").
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |message: String| {
            Err(ConfigError::Invalid {
                origin: origin.to_string(),
                message,
            })
        };
        if self.storage.partition < Duration::from_secs(60) {
            return bad("storage.partition must be at least 1m".into());
        }
        if self.storage.retention.is_zero() {
            return bad("storage.retention must be positive".into());
        }
        for (i, o) in self.storage.retention_overrides.iter().enumerate() {
            if let Err(e) = crate::source::selector_matchers(&o.selector) {
                return bad(format!("storage.retention_overrides[{i}].match: {e}"));
            }
            if o.retention.is_zero() {
                return bad(format!(
                    "storage.retention_overrides[{i}].retention must be positive"
                ));
            }
        }
        if self.server.max_body_bytes == 0 || self.server.max_decompressed_bytes == 0 {
            return bad("server.max_body_bytes and max_decompressed_bytes must be positive".into());
        }
        if self.rules.evaluation_interval.is_zero() {
            return bad("rules.evaluation_interval must be positive".into());
        }
        if self.events.retention.is_zero() {
            return bad("events.retention must be positive".into());
        }
        if self.events.segment < Duration::from_secs(60) {
            return bad("events.segment must be at least 1m".into());
        }
        if let Err(e) = crate::rules::thresholds::validate(&self.rules.thresholds) {
            return bad(e);
        }
        if self.limits.max_points_per_series == 0 {
            return bad("limits.max_points_per_series must be positive".into());
        }
        if let Err(message) = crate::forward::config::validate_all(&self.forward) {
            return bad(message);
        }
        if let Err(message) = self.notify.validate() {
            return bad(message);
        }
        if let Err(message) = self.monitor.validate() {
            return bad(message);
        }
        Ok(())
    }

    /// Storage options this configuration selects.
    pub fn storage_options(&self) -> tidemark_storage::Options {
        let s = &self.storage;
        tidemark_storage::Options {
            fsync: s.fsync.into(),
            ooo_window: s.ooo_window,
            flush_interval: s.flush_interval,
            partition_duration: s.partition,
            compact_interval: s.compact_interval,
            tiers: s
                .tiers
                .iter()
                .map(|t| tidemark_storage::TierSpec {
                    name: t.name.clone(),
                    resolution: t.resolution,
                    retention: (!t.retention.is_zero()).then_some(t.retention),
                    partition: None,
                    max_bytes: (t.max_size > 0).then_some(t.max_size),
                })
                .collect(),
            retention: Some(s.retention),
            retention_max_bytes: (s.retention_max_size > 0).then_some(s.retention_max_size),
            // Selectors were checked by `validate`.
            retention_overrides: s
                .retention_overrides
                .iter()
                .filter_map(|o| {
                    Some(tidemark_storage::RetentionOverride {
                        matchers: crate::source::selector_matchers(&o.selector).ok()?,
                        retention: o.retention,
                    })
                })
                .collect(),
            ..tidemark_storage::Options::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_file_is_the_default() {
        assert_eq!(
            Config::from_toml(DEFAULT_TOML, "default").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Config::from_toml("[storage]\nretenion = \"1d\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("retenion"), "{e}");
        let e = Config::from_toml("[storage]\nretention = \"1x\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("1x"), "{e}");
        let e = Config::from_toml("[storage]\nfsync = \"sometimes\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("sometimes"), "{e}");
        let e = Config::from_toml("[storage]\npartition = \"1s\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("storage.partition"), "{e}");
    }

    #[test]
    fn retention_size_and_overrides_reach_the_engine() {
        let c = Config::from_toml(
            "[storage]\nretention_max_size = \"2GiB\"\n[[storage.retention_overrides]]\nmatch = '{__name__=~\"recovery_.*\"}'\nretention = \"90d\"\n",
            "t",
        )
        .unwrap();
        let o = c.storage_options();
        assert_eq!(o.retention_max_bytes, Some(2 << 30));
        assert_eq!(o.retention_overrides.len(), 1);
        assert_eq!(
            o.retention_overrides[0].retention,
            Duration::from_secs(90 * 86_400)
        );
        let e = Config::from_toml(
            "[[storage.retention_overrides]]\nmatch = '{__name__=~'\nretention = \"1d\"\n",
            "t",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("storage.retention_overrides[0].match"),
            "{e}"
        );
        let e = Config::from_toml("[storage]\nretention_max_size = \"5XB\"\n", "t").unwrap_err();
        assert!(e.to_string().contains("5XB"), "{e}");
    }

    #[test]
    fn partial_files_keep_other_defaults() {
        let c = Config::from_toml("[server]\nlisten = \"127.0.0.1:1234\"\n", "t").unwrap();
        assert_eq!(c.server.listen.port(), 1234);
        assert_eq!(c.storage, StorageConfig::default());
    }
}
