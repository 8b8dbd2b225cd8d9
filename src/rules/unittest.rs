//! `tidemark rules test`: rule unit tests in promtool's test-file format
//! (`rule_files`, `evaluation_interval`, `tests` with `input_series`,
//! `alert_rule_test` and `promql_expr_test`), so test files written for
//! `promtool test rules` run unchanged.
//!
//! Semantics follow promtool: input series get one sample per `interval`
//! from time 0 (promqltest value notation, see
//! `tidemark_query::notation`); every group is evaluated at 0,
//! `evaluation_interval`, 2 × … up to the latest time any test asks about,
//! its output (recording rules, `ALERTS`) added to the data so later rules
//! and later rounds see it. An alert test compares the *firing* alerts of
//! its `alertname` after the first round at or after `eval_time` (labels
//! gain `alertname`; order does not matter); expression tests run on the
//! final data. Values compare with a relative tolerance of 1e-6.
//!
//! Invariant: a problem with the test file itself (unreadable, bad YAML,
//! bad rule file, bad notation) is an error naming the place; a failed
//! expectation is a [`Failure`] of its test group, and the other groups
//! still run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tidemark_query::{EvalOptions, Labels, MemorySource, Value, eval_instant, parse};

use crate::config::duration::parse_duration;
use crate::rules::{AlertState, GroupState, RuleGroup, load_rule_file};

/// A test file that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum UnitTestError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// One failed expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The test group (`name`, or `#index` when unnamed).
    pub group: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    labels: String,
    value: f64,
}

/// Runs every test group of the file at `path`; rule files are resolved
/// relative to its directory, like promtool.
///
/// # Errors
/// [`UnitTestError`] when the file or a rule file it names cannot be used.
pub fn run_test_file(path: &Path) -> Result<Vec<Failure>, UnitTestError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| UnitTestError::Read {
        file: file.clone(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    run_test_text(&file, &text, dir)
}

/// Runs test-file `text` (named `file` in errors) with rule files
/// relative to `dir`.
///
/// # Errors
/// See [`run_test_file`].
pub fn run_test_text(file: &str, text: &str, dir: &Path) -> Result<Vec<Failure>, UnitTestError> {
    let invalid = |message: String| UnitTestError::Invalid {
        file: file.to_string(),
        message,
    };
    let tf: TestFile = serde_saphyr::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let eval_interval = match &tf.evaluation_interval {
        Some(s) => duration(s).map_err(&invalid)?,
        None => 60_000,
    };
    if eval_interval <= 0 {
        return Err(invalid("evaluation_interval must be positive".into()));
    }
    let mut groups: Vec<RuleGroup> = Vec::new();
    for rf in &tf.rule_files {
        let p: PathBuf = dir.join(rf);
        let loaded = load_rule_file(&p).map_err(|e| invalid(format!("rule file {rf}: {e}")))?;
        groups.extend(loaded);
    }
    order_groups(&mut groups, &tf.group_eval_order).map_err(&invalid)?;
    let mut failures = Vec::new();
    for (i, tg) in tf.tests.iter().enumerate() {
        let name = tg.name.clone().unwrap_or_else(|| format!("#{i}"));
        let found = run_group(tg, &groups, eval_interval)
            .map_err(|m| invalid(format!("test {name}: {m}")))?;
        failures.extend(found.into_iter().map(|message| Failure {
            group: name.clone(),
            message,
        }));
    }
    Ok(failures)
}

/// Puts the groups named in `order` first, in that order (promtool's
/// `group_eval_order`); the rest keep file order.
fn order_groups(groups: &mut Vec<RuleGroup>, order: &[String]) -> Result<(), String> {
    let mut ordered = Vec::with_capacity(groups.len());
    for name in order {
        let Some(pos) = groups.iter().position(|g| &g.name == name) else {
            return Err(format!("group_eval_order names unknown group {name:?}"));
        };
        ordered.push(groups.remove(pos));
    }
    ordered.append(groups);
    *groups = ordered;
    Ok(())
}

fn duration(s: &str) -> Result<i64, String> {
    parse_duration(s)
        .map(|d: Duration| d.as_millis() as i64)
        .map_err(|e| e.to_string())
}

/// Runs one test group; returns its failed expectations.
fn run_group(
    tg: &TestGroup,
    groups: &[RuleGroup],
    eval_interval: i64,
) -> Result<Vec<String>, String> {
    if !tg.external_labels.is_empty() || tg.external_url.is_some() {
        return Err("external_labels and external_url are not supported yet".into());
    }
    let interval = match &tg.interval {
        Some(s) => duration(s)?,
        None => eval_interval,
    };
    if interval <= 0 {
        return Err("interval must be positive".into());
    }
    let mut src = MemorySource::new();
    for s in &tg.input_series {
        let labels = tidemark_query::testing::parse_selector_labels(&s.series)
            .map_err(|e| format!("input series {:?}: {e}", s.series))?;
        let values = tidemark_query::notation::expand_values(&s.values)
            .map_err(|e| format!("input series {:?}: {e}", s.series))?;
        let samples = values
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (k as i64 * interval, v)));
        src.add(labels, samples);
    }
    let mut alert_tests = Vec::with_capacity(tg.alert_rule_test.len());
    for t in &tg.alert_rule_test {
        alert_tests.push((duration(&t.eval_time)?, t));
    }
    alert_tests.sort_by_key(|(t, _)| *t);
    let mut expr_tests = Vec::with_capacity(tg.promql_expr_test.len());
    for t in &tg.promql_expr_test {
        expr_tests.push((duration(&t.eval_time)?, t));
    }
    let last = alert_tests
        .iter()
        .map(|(t, _)| *t)
        .chain(expr_tests.iter().map(|(t, _)| *t))
        .max()
        .unwrap_or(0);
    let opts = EvalOptions::default();
    let mut states: Vec<GroupState> = vec![GroupState::default(); groups.len()];
    let mut failures = Vec::new();
    let mut next_alert_test = 0;
    let mut t = 0;
    while t <= last || next_alert_test < alert_tests.len() {
        for (g, state) in groups.iter().zip(states.iter_mut()) {
            let out = g.eval(state, &src, t, &opts);
            for e in &out.errors {
                failures.push(format!("group {:?} at {}: {e}", g.name, fmt_ms(t)));
            }
            for s in out.samples {
                src.add(s.labels, [(s.t, s.v)]);
            }
        }
        while let Some((at, test)) = alert_tests.get(next_alert_test) {
            if *at > t {
                break;
            }
            if let Some(f) = check_alerts(test, &states, *at) {
                failures.push(f);
            }
            next_alert_test += 1;
        }
        t += eval_interval;
    }
    for (at, test) in &expr_tests {
        if let Some(f) = check_expr(test, &src, *at, &opts)? {
            failures.push(f);
        }
    }
    Ok(failures)
}

/// One alert as compared: labels (with `alertname`) and annotations.
type AlertShape = (BTreeMap<String, String>, BTreeMap<String, String>);

fn check_alerts(test: &AlertTest, states: &[GroupState], at: i64) -> Option<String> {
    let mut got: Vec<AlertShape> = states
        .iter()
        .flat_map(GroupState::alerts)
        .filter(|a| a.state == AlertState::Firing)
        .filter(|a| a.labels.get("alertname") == Some(&test.alertname))
        .map(|a| (a.labels.clone(), a.annotations.clone()))
        .collect();
    let mut want: Vec<AlertShape> = test
        .exp_alerts
        .iter()
        .map(|e| {
            let mut labels = e.exp_labels.clone();
            labels.insert("alertname".into(), test.alertname.clone());
            (labels, e.exp_annotations.clone())
        })
        .collect();
    got.sort();
    want.sort();
    (got != want).then(|| {
        format!(
            "alertname: {}, time: {},\n        exp: {},\n        got: {}",
            test.alertname,
            fmt_ms(at),
            fmt_alerts(&want),
            fmt_alerts(&got)
        )
    })
}

fn fmt_alerts(alerts: &[AlertShape]) -> String {
    let mut s = String::from("[");
    for (i, (labels, annotations)) in alerts.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{i}: labels: {labels:?} annotations: {annotations:?}");
    }
    s.push(']');
    s
}

fn check_expr(
    test: &ExprTest,
    src: &MemorySource,
    at: i64,
    opts: &EvalOptions,
) -> Result<Option<String>, String> {
    let expr = parse(&test.expr).map_err(|e| format!("expr {:?}: {e}", test.expr))?;
    let got: Vec<(Labels, f64)> = match eval_instant(src, &expr, at, opts) {
        Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
        Ok(Value::Scalar { v, .. }) => vec![(Labels::new(), v)],
        Ok(other) => {
            return Ok(Some(format!(
                "expr: {:?}, time: {}: expected an instant vector or scalar, got {}",
                test.expr,
                fmt_ms(at),
                other.type_name()
            )));
        }
        Err(e) => {
            return Ok(Some(format!(
                "expr: {:?}, time: {}: {e}",
                test.expr,
                fmt_ms(at)
            )));
        }
    };
    let mut want = Vec::with_capacity(test.exp_samples.len());
    for s in &test.exp_samples {
        let labels = tidemark_query::testing::parse_selector_labels(&s.labels)
            .map_err(|e| format!("exp_samples labels {:?}: {e}", s.labels))?;
        want.push((labels, s.value));
    }
    let key = |x: &(Labels, f64)| x.0.to_string();
    let mut got_sorted = got.clone();
    got_sorted.sort_by_key(key);
    want.sort_by_key(key);
    let same = got_sorted.len() == want.len()
        && got_sorted
            .iter()
            .zip(&want)
            .all(|(g, w)| g.0 == w.0 && close(g.1, w.1));
    Ok((!same).then(|| {
        format!(
            "expr: {:?}, time: {},\n        exp: {},\n        got: {}",
            test.expr,
            fmt_ms(at),
            fmt_samples(&want),
            fmt_samples(&got_sorted)
        )
    }))
}

fn fmt_samples(samples: &[(Labels, f64)]) -> String {
    let parts: Vec<String> = samples.iter().map(|(l, v)| format!("{l} {v}")).collect();
    format!("[{}]", parts.join(", "))
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

fn fmt_ms(ms: i64) -> String {
    crate::config::duration::format_duration(Duration::from_millis(ms.max(0) as u64))
}
