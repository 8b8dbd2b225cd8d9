//! Rules: Prometheus rule-group files (recording and alerting rules), their
//! validation (`tidemark rules check`), their evaluation at an injected time
//! with Prometheus's alert state machine, and the default rule pack.
//!
//! - [`file`]: YAML shape, promtool-style validation, [`RuleGroup`].
//! - [`eval`]: [`RuleGroup::eval`] over any `SeriesSource`, [`GroupState`]
//!   (serde, for persistence), `ALERTS` / `ALERTS_FOR_STATE` samples.
//! - [`template`]: the `{{ $labels.x }}` / `{{ $value }}` expander.
//! - [`thresholds`]: `[rules.thresholds]` overrides written into the pack.
//! - [`unittest`]: `tidemark rules test` (promtool's rule test files).
//! - [`scheduler`]: [`RuleManager`] (evaluate a group at a given time,
//!   append its output, persist alert state) and [`Scheduler`] (one tokio
//!   task per group, in `tasks`), run by `tidemark serve`; `output` (stale markers,
//!   series ids kept between rounds, the non-blocking append) and
//!   `persist` (the alert state file) are its parts.
//!
//! Invariants: outside `scheduler`, nothing here reads the wall clock (rule
//! durations are measured on the monotonic one), opens
//! files other than the rule file asked for, or writes samples: evaluation
//! returns samples and the scheduler appends them. The default pack
//! ([`DEFAULT_RULES`]) must pass the same validation as user files (a
//! test enforces it).

pub mod eval;
pub mod file;
mod output;
mod persist;
pub mod scheduler;
mod tasks;
pub mod template;
pub mod thresholds;
pub mod unittest;

pub use eval::{
    Alert, AlertState, GroupOutput, GroupState, RESOLVED_RETENTION, RESOLVED_RETENTION_MS,
    RuleAlerts, RuleEvalError,
};
pub use file::{
    AlertingRule, DEFAULT_INTERVAL, RecordingRule, Rule, RuleError, RuleErrorKind, RuleErrors,
    RuleGroup, RuleRef, load_rule_file, parse_rule_file,
};
pub use scheduler::{RuleManager, RulesError};
pub use tasks::Scheduler;
pub use template::{Template, TemplateError};

/// The default rule pack's YAML (`src/rules/default.yml`).
pub const DEFAULT_RULES: &str = include_str!("default.yml");

/// The name the default pack has in error messages.
pub const DEFAULT_RULES_NAME: &str = "<default rules>";

/// The default rule pack, parsed and validated.
///
/// # Errors
/// Never in a released binary (a test checks the pack); the type keeps
/// callers honest if the pack is ever edited badly.
pub fn default_groups() -> Result<Vec<RuleGroup>, RuleErrors> {
    thresholds::default_groups_with(&thresholds::Thresholds::default())
}

#[cfg(test)]
mod tests;
