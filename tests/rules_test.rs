//! `tidemark rules test` run as a user would, on test files written for
//! `promtool test rules`: the same files go through the real promtool
//! (Debian `prometheus` package, installed by `.ci/run`) and through
//! tidemark, and both must agree — pass on the passing file, fail on the
//! failing one. The passing file exercises the embedded default rule pack
//! (recording rules, `for`, `keep_firing_for`, templated annotations).

use std::path::Path;
use std::process::{Command, Output};

const DEFAULT_PACK: &str = include_str!("../src/rules/default.yml");

/// Unit tests of the default pack. Input at 15 s steps: 20 % of `db`'s
/// recoveries fail (critical after 2 m, warning after 5 m); `cache`'s
/// breaker is open from 30 s to 60 s; `db` fails 5 and 6 times in a row
/// at 30 s and 45 s, and `keep_firing_for: 1m` holds that alert to 1m45s.
const PASSING: &str = r#"
rule_files: [default.yml]
evaluation_interval: 15s
tests:
  - name: error rate
    interval: 15s
    input_series:
      - series: 'recoveries_total{component="db",outcome="failure"}'
        values: '0+1x40'
      - series: 'recoveries_total{component="db",outcome="success"}'
        values: '0+4x40'
    alert_rule_test:
      - eval_time: 1m
        alertname: RecoveryErrorRateCritical
      - eval_time: 3m
        alertname: RecoveryErrorRateCritical
        exp_alerts:
          - exp_labels: {component: db, severity: critical}
            exp_annotations:
              summary: "db: 20% of recoveries fail"
              description: "More than 15 % of recovery attempts of db failed over the last 5 minutes (now 20%); recovery is not keeping up."
              runbook: "Check whether the dependency of db is down; consider opening its circuit breaker or enabling its fallback."
      - eval_time: 3m
        alertname: RecoveryErrorRateHigh
      - eval_time: 6m
        alertname: RecoveryErrorRateHigh
        exp_alerts:
          - exp_labels: {component: db, severity: warning}
            exp_annotations:
              summary: "db: 20% of recoveries fail"
              description: "More than 5 % of recovery attempts of db failed over the last 5 minutes (now 20%)."
              runbook: "Look at the recent failure reasons of db (tidemark query 'recoveries_total{outcome=\"failure\"}'), then at the dependency it retries against."
    promql_expr_test:
      - expr: error_rate
        eval_time: 3m
        exp_samples:
          - labels: 'error_rate{component="db"}'
            value: 0.19999999999999998
      - expr: recovery_success_ratio
        eval_time: 3m
        exp_samples:
          - labels: 'recovery_success_ratio{component="db"}'
            value: 0.7999999999999999
  - name: breakers and failure streaks
    interval: 15s
    input_series:
      - series: 'circuit_breaker_state{component="cache"}'
        values: '0 0 1 1 1 0.5 0 0 0'
      - series: 'consecutive_failures{component="db"}'
        values: '0 3 5 6 0 0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 45s
        alertname: CircuitBreakerOpen
        exp_alerts:
          - exp_labels: {component: cache, severity: critical}
            exp_annotations:
              summary: "cache: circuit breaker open"
              description: "The circuit breaker of cache is open: calls are short-circuited to the fallback or failing fast."
              runbook: "Find why the breaker tripped (errors_total of cache); it half-opens by itself once the dependency answers again."
      - eval_time: 90s
        alertname: CircuitBreakerOpen
      - eval_time: 90s
        alertname: ConsecutiveFailures
        exp_alerts:
          - exp_labels: {component: db, severity: critical}
            exp_annotations:
              summary: "db: 6 recoveries failed in a row"
              description: "db has failed 6 consecutive recovery attempts (threshold 5)."
              runbook: "Recovery of db is not working at all; check the last failure reason and the dependency's health."
      - eval_time: 2m
        alertname: ConsecutiveFailures
"#;

/// One wrong expectation (the alert fires at 45 s) and one wrong value.
const FAILING: &str = r#"
rule_files: [default.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'circuit_breaker_state{component="cache"}'
        values: '0 0 1 1 1'
    alert_rule_test:
      - eval_time: 45s
        alertname: CircuitBreakerOpen
    promql_expr_test:
      - expr: circuit_breaker_state
        eval_time: 30s
        exp_samples:
          - labels: 'circuit_breaker_state{component="cache"}'
            value: 0.5
"#;

fn write_fixture(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("default.yml"), DEFAULT_PACK).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(program: &str, args: &[&str], file: &Path) -> (Output, String) {
    let out = Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e} (promtool comes with the Debian `prometheus` package; .ci/run installs it)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn tidemark(file: &Path) -> (Output, String) {
    run(env!("CARGO_BIN_EXE_tidemark"), &["rules", "test"], file)
}

fn promtool(file: &Path) -> (Output, String) {
    run("promtool", &["test", "rules"], file)
}

#[test]
fn default_pack_tests_pass_in_tidemark_and_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_fixture(dir.path(), "pass.yml", PASSING);
    let (out, text) = promtool(&file);
    assert!(
        out.status.success(),
        "promtool must accept the fixture:\n{text}"
    );
    let (out, text) = tidemark(&file);
    assert!(out.status.success(), "tidemark rules test failed:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn failed_expectations_fail_in_both_and_tidemark_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_fixture(dir.path(), "fail.yml", FAILING);
    let (out, text) = promtool(&file);
    assert!(!out.status.success(), "promtool passed:\n{text}");
    let (out, text) = tidemark(&file);
    assert!(!out.status.success(), "tidemark passed:\n{text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(
        text.contains("alertname: CircuitBreakerOpen, time: 45s"),
        "{text}"
    );
    assert!(text.contains(r#"got: [0: labels: {"alertname": "CircuitBreakerOpen", "component": "cache", "severity": "critical"}"#), "{text}");
    assert!(
        text.contains(r#"expr: "circuit_breaker_state", time: 30s"#),
        "{text}"
    );
}

#[test]
fn problems_with_the_test_file_name_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_fixture(
        dir.path(),
        "bad.yml",
        "rule_files: [default.yml]\ntests:\n  - input_series:\n      - series: 'up'\n        values: '1 2 x'\n",
    );
    let (out, text) = tidemark(&file);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("bad series value \"x\""), "{text}");
    let missing = write_fixture(
        dir.path(),
        "missing.yml",
        "rule_files: [nope.yml]\ntests: []\n",
    );
    let (out, text) = tidemark(&missing);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("nope.yml"), "{text}");
}
