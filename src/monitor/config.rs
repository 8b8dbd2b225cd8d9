//! `[monitor]`: how often the recovery monitor and resource collector
//! write their series, the component limit, the memory budget of
//! MemoryHigh, and the demo workload. Documented in
//! `src/config/default.toml`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration::serde_duration;

/// `[monitor]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// How often derived series, resource figures and health are written.
    #[serde(with = "serde_duration")]
    pub interval: Duration,
    /// Most components whose events are turned into series.
    pub max_components: usize,
    /// The 100 % of MemoryHigh in bytes; 0 detects it (cgroup v2
    /// `memory.max`, else `MemTotal`).
    pub memory_limit_bytes: u64,
    /// Run the simulated workload (`tidemark serve --demo`).
    pub demo: bool,
    /// Seed of the demo's simulation.
    pub demo_seed: u64,
    /// Simulated seconds per wall second in the demo.
    pub demo_speed: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            max_components: 256,
            memory_limit_bytes: 0,
            demo: false,
            demo_seed: 1,
            demo_speed: 1.0,
        }
    }
}

impl MonitorConfig {
    /// Checks values serde cannot.
    ///
    /// # Errors
    /// A message naming the bad option.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_millis(10) {
            return Err("monitor.interval must be at least 10ms".into());
        }
        if self.max_components == 0 {
            return Err("monitor.max_components must be positive".into());
        }
        if !(self.demo_speed.is_finite() && self.demo_speed > 0.0) {
            return Err(format!(
                "monitor.demo_speed must be a positive number, got {}",
                self.demo_speed
            ));
        }
        Ok(())
    }
}
