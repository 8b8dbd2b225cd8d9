//! Overridable thresholds of the default rule pack (`[rules.thresholds]`).
//!
//! `default.yml` stays a plain Prometheus rule file with the default
//! numbers written in (promtool reads it unchanged; `rules test` fixtures
//! test it). An override rewrites, in the pack's text, each place a
//! threshold appears: the comparison in the alert's expression and the
//! number quoted in its annotations.
//!
//! Invariant: every pattern below occurs exactly once in `default.yml`
//! (a test checks it), so editing the pack without updating this table
//! fails loudly instead of silently ignoring an override.

use serde::{Deserialize, Serialize};

use super::{DEFAULT_RULES, DEFAULT_RULES_NAME, RuleErrors, RuleGroup, parse_rule_file};

/// Thresholds of the default alerts; the defaults are DESIGN.md's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// `RecoveryErrorRateHigh`: share of failed recoveries (0..1).
    pub error_rate_warning: f64,
    /// `RecoveryErrorRateCritical`: share of failed recoveries (0..1).
    pub error_rate_critical: f64,
    /// `RecoverySlow`: p99 recovery duration in seconds.
    pub recovery_p99_seconds: f64,
    /// `ConsecutiveFailures`: failed recoveries in a row.
    pub consecutive_failures: f64,
    /// `MemoryHigh`: RSS / memory limit (0..1).
    pub memory_ratio: f64,
    /// `DiskFull`: used / size of the data directory's filesystem (0..1).
    pub disk_ratio: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            error_rate_warning: 0.05,
            error_rate_critical: 0.15,
            recovery_p99_seconds: 5.0,
            consecutive_failures: 5.0,
            memory_ratio: 0.8,
            disk_ratio: 0.9,
        }
    }
}

/// How a threshold is written in a piece of text.
#[derive(Clone, Copy)]
enum Form {
    /// As in PromQL (`0.05`).
    Number,
    /// As a percentage for people (`5 %`).
    Percent,
}

/// (pattern with the default written in, the piece before it, the form).
/// The pattern is `prefix` followed by the default rendered in `form`.
type Site = (&'static str, Form);

fn sites(t: &Thresholds) -> [(f64, f64, &'static [Site]); 6] {
    let d = Thresholds::default();
    [
        (
            d.error_rate_warning,
            t.error_rate_warning,
            &[
                ("error_rate > ", Form::Number),
                ("More than ", Form::Percent),
            ],
        ),
        (
            d.error_rate_critical,
            t.error_rate_critical,
            &[
                ("error_rate > ", Form::Number),
                ("More than ", Form::Percent),
            ],
        ),
        (
            d.recovery_p99_seconds,
            t.recovery_p99_seconds,
            &[
                ("recovery_duration_seconds:p99_5m > ", Form::Number),
                ("is {{ $value | humanizeDuration }}, above ", Form::Number),
            ],
        ),
        (
            d.consecutive_failures,
            t.consecutive_failures,
            &[
                ("consecutive_failures >= ", Form::Number),
                ("consecutive recovery attempts (threshold ", Form::Number),
            ],
        ),
        (
            d.memory_ratio,
            t.memory_ratio,
            &[
                ("tidemark_memory_limit_bytes > ", Form::Number),
                ("of its limit (threshold ", Form::Percent),
            ],
        ),
        (
            d.disk_ratio,
            t.disk_ratio,
            &[
                ("tidemark_disk_used_ratio > ", Form::Number),
                ("used (threshold ", Form::Percent),
            ],
        ),
    ]
}

fn render(v: f64, form: Form) -> String {
    match form {
        Form::Number => format!("{v}"),
        Form::Percent => format!("{} %", (v * 1e6).round() / 1e4),
    }
}

/// The pattern as it appears in the pack for the default value, and the
/// same text for `value`. The percentage form keeps a word boundary: the
/// pattern ends at ` %`, so `5 %` cannot match inside `15 %`.
fn pattern(prefix: &str, default: f64, value: f64, form: Form) -> (String, String) {
    (
        format!("{prefix}{}", render(default, form)),
        format!("{prefix}{}", render(value, form)),
    )
}

/// The default pack's text with `t` written in.
///
/// # Panics
/// Never for the shipped pack: a test checks each pattern occurs once.
pub fn render_pack(t: &Thresholds) -> String {
    // Find every site in the original text first, so an override equal to
    // another rule's default cannot be rewritten twice.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    for (default, value, places) in sites(t) {
        if default == value {
            continue;
        }
        for &(prefix, form) in places {
            let (from, to) = pattern(prefix, default, value, form);
            if let Some(at) = find_whole(DEFAULT_RULES, &from) {
                edits.push((at, at + from.len(), to));
            }
        }
    }
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(DEFAULT_RULES.len() + 64);
    let mut pos = 0;
    for (from, to, text) in edits {
        out.push_str(&DEFAULT_RULES[pos..from]);
        out.push_str(&text);
        pos = to;
    }
    out.push_str(&DEFAULT_RULES[pos..]);
    out
}

/// Offsets of `pat` in `text` where it is not followed by a character
/// that continues a number (so `> 5` does not match `> 50`).
fn whole_matches<'a>(text: &'a str, pat: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(pat)
        .map(|(at, _)| at)
        .filter(move |&at| {
            let next = text[at + pat.len()..].chars().next();
            !next.is_some_and(|c| c.is_ascii_digit() || c == '.')
        })
}

fn find_whole(text: &str, pat: &str) -> Option<usize> {
    whole_matches(text, pat).next()
}

/// The default pack with thresholds `t`, parsed and validated.
///
/// # Errors
/// Only if a threshold makes an expression invalid (it cannot: numbers
/// are checked at config load), reported like any rule file error.
pub fn default_groups_with(t: &Thresholds) -> Result<Vec<RuleGroup>, RuleErrors> {
    parse_rule_file(DEFAULT_RULES_NAME, &render_pack(t))
}

/// Why a threshold value is unusable, naming the key.
pub fn validate(t: &Thresholds) -> Result<(), String> {
    let ratios = [
        ("error_rate_warning", t.error_rate_warning),
        ("error_rate_critical", t.error_rate_critical),
        ("memory_ratio", t.memory_ratio),
        ("disk_ratio", t.disk_ratio),
    ];
    for (k, v) in ratios {
        if !(v > 0.0 && v <= 1.0) {
            return Err(format!("rules.thresholds.{k} must be in (0, 1], got {v}"));
        }
    }
    for (k, v) in [
        ("recovery_p99_seconds", t.recovery_p99_seconds),
        ("consecutive_failures", t.consecutive_failures),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("rules.thresholds.{k} must be positive, got {v}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{AlertingRule, Rule};

    #[test]
    fn every_site_occurs_exactly_once_in_the_pack() {
        let d = Thresholds::default();
        for (default, _, places) in sites(&d) {
            for &(prefix, form) in places {
                let (from, _) = pattern(prefix, default, default, form);
                assert_eq!(whole_matches(DEFAULT_RULES, &from).count(), 1, "{from:?}");
            }
        }
    }

    fn alert<'a>(groups: &'a [RuleGroup], name: &str) -> &'a AlertingRule {
        groups
            .iter()
            .flat_map(|g| &g.rules)
            .find_map(|r| match r {
                Rule::Alerting(a) if a.alert == name => Some(a),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no alert {name}"))
    }

    fn ann<'a>(a: &'a AlertingRule, key: &str) -> &'a str {
        a.annotations
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| t.source())
            .unwrap_or_else(|| panic!("{} has no {key}", a.alert))
    }

    #[test]
    fn overrides_change_expressions_and_annotations() {
        let t = Thresholds {
            error_rate_warning: 0.1,
            error_rate_critical: 0.5,
            recovery_p99_seconds: 2.5,
            consecutive_failures: 3.0,
            memory_ratio: 0.95,
            disk_ratio: 0.75,
        };
        let g = default_groups_with(&t).unwrap();
        let high = alert(&g, "RecoveryErrorRateHigh");
        assert_eq!(high.expr_text.trim(), "error_rate > 0.1");
        assert!(
            ann(high, "description").starts_with("More than 10 % of"),
            "{}",
            ann(high, "description")
        );
        let crit = alert(&g, "RecoveryErrorRateCritical");
        assert_eq!(crit.expr_text.trim(), "error_rate > 0.5");
        assert!(ann(crit, "description").starts_with("More than 50 % of"));
        assert_eq!(
            alert(&g, "RecoverySlow").expr_text.trim(),
            "recovery_duration_seconds:p99_5m > 2.5"
        );
        let cf = alert(&g, "ConsecutiveFailures");
        assert_eq!(cf.expr_text.trim(), "consecutive_failures >= 3");
        assert!(ann(cf, "description").contains("(threshold 3)"));
        let mem = alert(&g, "MemoryHigh");
        assert!(
            mem.expr_text.trim().ends_with("> 0.95"),
            "{}",
            mem.expr_text
        );
        assert!(ann(mem, "description").contains("(threshold 95 %)"));
        let disk = alert(&g, "DiskFull");
        assert_eq!(disk.expr_text.trim(), "tidemark_disk_used_ratio > 0.75");
        assert!(ann(disk, "description").contains("(threshold 75 %)"));
    }

    #[test]
    fn an_override_equal_to_another_default_is_applied_once() {
        let t = Thresholds {
            error_rate_warning: 0.15,
            error_rate_critical: 0.3,
            ..Thresholds::default()
        };
        let g = default_groups_with(&t).unwrap();
        assert_eq!(
            alert(&g, "RecoveryErrorRateHigh").expr_text.trim(),
            "error_rate > 0.15"
        );
        assert_eq!(
            alert(&g, "RecoveryErrorRateCritical").expr_text.trim(),
            "error_rate > 0.3"
        );
    }

    #[test]
    fn defaults_render_the_pack_unchanged_and_bad_values_are_named() {
        assert_eq!(render_pack(&Thresholds::default()), DEFAULT_RULES);
        let bad = Thresholds {
            disk_ratio: 1.5,
            ..Thresholds::default()
        };
        assert!(
            validate(&bad)
                .unwrap_err()
                .contains("rules.thresholds.disk_ratio")
        );
        let bad = Thresholds {
            consecutive_failures: f64::NAN,
            ..Thresholds::default()
        };
        assert!(validate(&bad).unwrap_err().contains("consecutive_failures"));
    }
}
