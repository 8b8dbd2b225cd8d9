//! Prometheus rule files: the YAML shape (`groups: [{name, interval, limit,
//! labels, rules: [{record|alert, expr, for, keep_firing_for, labels,
//! annotations}]}]`), parsed with `serde-saphyr`, and the promtool-style
//! checks that turn it into validated [`RuleGroup`]s.
//!
//! Invariants: a [`RuleGroup`] only exists validated: every expression
//! parsed, every name valid, every template parsed. Validation collects
//! every problem of a file rather than stopping at the first; each
//! [`RuleError`] names the file, the group, the rule (index and name) and,
//! where known, the YAML line and the position inside the expression.
//! Unknown YAML fields are errors (as in Prometheus's strict unmarshal).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use tidemark_query::ast::{Expr, ValueType};

use crate::config::duration::{DurationError, parse_duration};
use crate::ingest::remote_write::{valid_label_name, valid_metric_name};
use crate::rules::template::{Template, TemplateError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<Spanned<RawGroup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    interval: Option<String>,
    query_offset: Option<String>,
    #[serde(default)]
    limit: u64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    record: Option<String>,
    alert: Option<String>,
    expr: Option<Spanned<String>>,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A validated rule group.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    /// Unique name within the file (and, for a loader, across files).
    pub name: String,
    /// Evaluation interval; `None` means the global default
    /// ([`DEFAULT_INTERVAL`] unless configured).
    pub interval: Option<Duration>,
    /// Evaluate `t - query_offset` instead of `t`.
    pub query_offset: Duration,
    /// Most series one rule may produce (alerts pending/firing for an
    /// alerting rule); 0 = no limit.
    pub limit: u64,
    /// The rules, in file order (evaluation order).
    pub rules: Vec<Rule>,
}

/// Prometheus's default `evaluation_interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

impl RuleGroup {
    /// The interval to evaluate at, `default` when the group sets none.
    pub fn interval_or(&self, default: Duration) -> Duration {
        self.interval.unwrap_or(default)
    }
}

/// One rule of a group.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `record:`
    Recording(RecordingRule),
    /// `alert:`
    Alerting(AlertingRule),
}

impl Rule {
    /// The record or alert name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.record,
            Rule::Alerting(a) => &a.alert,
        }
    }
}

/// A recording rule: `record` is a valid metric name, labels are literal.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    /// The output metric name.
    pub record: String,
    /// The expression text as written.
    pub expr_text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// Labels set on every output sample (group labels merged in; the rule wins).
    pub labels: BTreeMap<String, String>,
}

/// An alerting rule; label values and annotations are templates.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    /// The `alertname` label.
    pub alert: String,
    /// The expression text as written.
    pub expr_text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// How long a series must be returned before the alert fires.
    pub for_: Duration,
    /// How long the alert keeps firing after the expression stops returning it.
    pub keep_firing_for: Duration,
    /// Label templates (group labels merged in; the rule wins).
    pub labels: Vec<(String, Template)>,
    /// Annotation templates.
    pub annotations: Vec<(String, Template)>,
}

/// Where in a file a [`RuleError`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// 1-based index of the rule in its group.
    pub index: usize,
    /// `record` or `alert`, or `rule` when neither is set.
    pub kind: &'static str,
    /// Its name ("" when missing).
    pub name: String,
}

/// One problem found in a rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    /// The file as given.
    pub file: String,
    /// 1-based YAML line, when known.
    pub line: Option<u32>,
    /// 1-based YAML column, when known (YAML syntax and shape errors).
    pub col: Option<u32>,
    /// The group's name, when the problem is inside a group.
    pub group: Option<String>,
    /// The rule, when the problem is inside a rule.
    pub rule: Option<RuleRef>,
    /// What is wrong.
    pub kind: RuleErrorKind,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.col {
                write!(f, ":{col}")?;
            }
        }
        if let Some(g) = &self.group {
            write!(f, ": group {g:?}")?;
        }
        if let Some(r) = &self.rule {
            write!(f, ", rule {}", r.index)?;
            if !r.name.is_empty() {
                write!(f, " ({} {:?})", r.kind, r.name)?;
            }
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for RuleError {}

/// What is wrong in a rule file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleErrorKind {
    /// The file is not YAML of the expected shape (unknown field, wrong type, ...).
    #[error("{0}")]
    Yaml(String),
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Io(String),
    /// A group without a name.
    #[error("group name must not be empty")]
    EmptyGroupName,
    /// Two groups share a name.
    #[error("duplicate group name {0:?}")]
    DuplicateGroup(String),
    /// A group with no rules.
    #[error("group has no rules")]
    NoRules,
    /// A duration field that does not parse, or is zero where it must not be.
    #[error("invalid {field}: {source}")]
    Duration {
        /// `interval`, `for`, ...
        field: &'static str,
        /// The parser's message.
        source: DurationError,
    },
    /// `interval: 0`.
    #[error("interval must be greater than zero")]
    ZeroInterval,
    /// A rule with both `record` and `alert`.
    #[error("only one of 'record' and 'alert' must be set")]
    RecordAndAlert,
    /// A rule with neither.
    #[error("one of 'record' or 'alert' must be set")]
    NeitherRecordNorAlert,
    /// `record` is not a valid metric name.
    #[error("invalid recording rule name {0:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidRecordName(String),
    /// `alert:` empty.
    #[error("alert name must not be empty")]
    EmptyAlertName,
    /// `expr` missing or empty.
    #[error("field 'expr' must be set")]
    MissingExpr,
    /// The expression does not parse; `line`/`col` are inside the expression.
    #[error("could not parse expression at {line}:{col} of the expression: {message}")]
    Expr {
        /// 1-based line inside the expression.
        line: usize,
        /// 1-based column inside the expression.
        col: usize,
        /// The parser's message.
        message: String,
    },
    /// The expression has a type rules cannot use (a range vector or a string).
    #[error("expression must return an instant vector or a scalar, not a {0}")]
    ExprType(&'static str),
    /// A field recording rules do not take (`for`, `keep_firing_for`, `annotations`).
    #[error("invalid field {0:?} in recording rule")]
    FieldOnRecordingRule(&'static str),
    /// A label name that is not `[a-zA-Z_][a-zA-Z0-9_]*`, or `__name__`.
    #[error("invalid label name {0:?}")]
    InvalidLabelName(String),
    /// An annotation name that is not a valid label name.
    #[error("invalid annotation name {0:?}")]
    InvalidAnnotationName(String),
    /// A template in a label value or annotation outside the supported subset.
    #[error("{field} {name:?}: {source}")]
    Template {
        /// `label` or `annotation`.
        field: &'static str,
        /// The label or annotation name.
        name: String,
        /// The template problem.
        source: TemplateError,
    },
}

/// Every problem of one or more rule files.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct RuleErrors(pub Vec<RuleError>);

fn render(errs: &[RuleError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates the rule file at `path`.
///
/// # Errors
/// [`RuleErrors`] with every problem found (an unreadable file is one).
pub fn load_rule_file(path: &std::path::Path) -> Result<Vec<RuleGroup>, RuleErrors> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_rule_file(&name, &text),
        Err(e) => Err(RuleErrors(vec![RuleError {
            file: name,
            line: None,
            col: None,
            group: None,
            rule: None,
            kind: RuleErrorKind::Io(e.to_string()),
        }])),
    }
}

/// Parses and validates rule-file text; `file` names it in errors.
///
/// # Errors
/// [`RuleErrors`] with every problem found.
pub fn parse_rule_file(file: &str, text: &str) -> Result<Vec<RuleGroup>, RuleErrors> {
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: Vec::new() }
    } else {
        match serde_saphyr::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let loc = e.location().filter(|l| l.line() > 0);
                return Err(RuleErrors(vec![RuleError {
                    file: file.to_string(),
                    line: loc.map(|l| l.line() as u32),
                    col: loc.map(|l| l.column() as u32),
                    group: None,
                    rule: None,
                    kind: RuleErrorKind::Yaml(yaml_message(&e)),
                }]));
            }
        }
    };
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    for g in raw.groups {
        let line = line_of(&g.referenced);
        let g = g.value;
        let mut err = |kind, line, rule: Option<RuleRef>| {
            errors.push(RuleError {
                file: file.to_string(),
                line,
                col: None,
                group: Some(g.name.clone()),
                rule,
                kind,
            });
        };
        if g.name.is_empty() {
            err(RuleErrorKind::EmptyGroupName, line, None);
        } else if !seen.insert(g.name.clone()) {
            err(RuleErrorKind::DuplicateGroup(g.name.clone()), line, None);
        }
        let interval = match g.interval.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(d)) if d.is_zero() => {
                err(RuleErrorKind::ZeroInterval, line, None);
                None
            }
            Some(Ok(d)) => Some(d),
            Some(Err(source)) => {
                err(
                    RuleErrorKind::Duration {
                        field: "interval",
                        source,
                    },
                    line,
                    None,
                );
                None
            }
        };
        let query_offset = match g.query_offset.as_deref().map(parse_duration) {
            None => Duration::ZERO,
            Some(Ok(d)) => d,
            Some(Err(source)) => {
                err(
                    RuleErrorKind::Duration {
                        field: "query_offset",
                        source,
                    },
                    line,
                    None,
                );
                Duration::ZERO
            }
        };
        for k in g.labels.keys() {
            if !valid_label_name(k) || k == "__name__" {
                err(RuleErrorKind::InvalidLabelName(k.clone()), line, None);
            }
        }
        if g.rules.is_empty() {
            err(RuleErrorKind::NoRules, line, None);
        }
        let mut rules = Vec::new();
        for (i, r) in g.rules.into_iter().enumerate() {
            let rline = line_of(&r.referenced);
            let (rule, rule_errs) = check_rule(i + 1, r.value, &g.labels);
            for (kind, l, rref) in rule_errs {
                err(kind, l.or(rline), Some(rref));
            }
            if let Some(rule) = rule {
                rules.push(rule);
            }
        }
        groups.push(RuleGroup {
            name: g.name,
            interval,
            query_offset,
            limit: g.limit,
            rules,
        });
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(RuleErrors(errors))
    }
}

/// The first line of saphyr's message without its `line N column M: `
/// prefix (we print our own `file:line:col:`).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let s = e.to_string();
    let first = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid YAML")
        .trim()
        .trim_start_matches("error: ");
    strip_location(first).to_string()
}

/// `line 6 column 5: msg` → `msg`.
fn strip_location(s: &str) -> &str {
    let Some(rest) = s.strip_prefix("line ") else {
        return s;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix(" column ") else {
        return s;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    rest.strip_prefix(": ").unwrap_or(s)
}

fn line_of(loc: &serde_saphyr::Location) -> Option<u32> {
    let l = loc.line();
    (l > 0).then_some(l as u32)
}

type RuleProblems = Vec<(RuleErrorKind, Option<u32>, RuleRef)>;

fn check_rule(
    index: usize,
    r: RawRule,
    group_labels: &BTreeMap<String, String>,
) -> (Option<Rule>, RuleProblems) {
    let (kind, name) = match (&r.record, &r.alert) {
        (Some(n), None) => ("record", n.clone()),
        (None, Some(n)) => ("alert", n.clone()),
        (Some(n), Some(_)) => ("record", n.clone()),
        (None, None) => ("rule", String::new()),
    };
    let rref = RuleRef { index, kind, name };
    let mut errs: RuleProblems = Vec::new();
    let mut push = |k, line| errs.push((k, line, rref.clone()));
    match (&r.record, &r.alert) {
        (Some(_), Some(_)) => push(RuleErrorKind::RecordAndAlert, None),
        (None, None) => push(RuleErrorKind::NeitherRecordNorAlert, None),
        (Some(rec), None) if !valid_metric_name(rec) => {
            push(RuleErrorKind::InvalidRecordName(rec.clone()), None)
        }
        (None, Some(a)) if a.is_empty() => push(RuleErrorKind::EmptyAlertName, None),
        _ => {}
    }
    let (expr_text, expr_line) = match &r.expr {
        Some(e) => (e.value.clone(), line_of(&e.referenced)),
        None => (String::new(), None),
    };
    let expr = if expr_text.trim().is_empty() {
        push(RuleErrorKind::MissingExpr, None);
        None
    } else {
        match tidemark_query::parse(&expr_text) {
            Ok(e) => match e.value_type() {
                ValueType::Vector | ValueType::Scalar => Some(e),
                other => {
                    push(RuleErrorKind::ExprType(other.describe()), expr_line);
                    None
                }
            },
            Err(e) => {
                push(
                    RuleErrorKind::Expr {
                        line: e.line,
                        col: e.col,
                        message: e.kind.to_string(),
                    },
                    expr_line,
                );
                None
            }
        }
    };
    let mut duration =
        |field: &'static str, v: &Option<String>| match v.as_deref().map(parse_duration) {
            None => Duration::ZERO,
            Some(Ok(d)) => d,
            Some(Err(source)) => {
                push(RuleErrorKind::Duration { field, source }, None);
                Duration::ZERO
            }
        };
    let for_ = duration("for", &r.for_);
    let keep_firing_for = duration("keep_firing_for", &r.keep_firing_for);
    let mut labels = group_labels.clone();
    labels.extend(r.labels);
    for k in labels.keys() {
        if !valid_label_name(k) || k == "__name__" {
            push(RuleErrorKind::InvalidLabelName(k.clone()), None);
        }
    }
    for k in r.annotations.keys() {
        if !valid_label_name(k) {
            push(RuleErrorKind::InvalidAnnotationName(k.clone()), None);
        }
    }
    let is_record = r.record.is_some() && r.alert.is_none();
    if is_record {
        if r.for_.is_some() {
            push(RuleErrorKind::FieldOnRecordingRule("for"), None);
        }
        if r.keep_firing_for.is_some() {
            push(RuleErrorKind::FieldOnRecordingRule("keep_firing_for"), None);
        }
        if !r.annotations.is_empty() {
            push(RuleErrorKind::FieldOnRecordingRule("annotations"), None);
        }
    }
    let mut templates = |field: &'static str, m: &BTreeMap<String, String>| {
        let mut out = Vec::new();
        for (k, v) in m {
            match Template::parse(v) {
                Ok(t) => out.push((k.clone(), t)),
                Err(source) => push(
                    RuleErrorKind::Template {
                        field,
                        name: k.clone(),
                        source,
                    },
                    None,
                ),
            }
        }
        out
    };
    let label_templates = if is_record {
        Vec::new()
    } else {
        templates("label", &labels)
    };
    let annotations = templates("annotation", &r.annotations);
    if !errs.is_empty() {
        return (None, errs);
    }
    let Some(expr) = expr else {
        return (None, errs);
    };
    let rule = match (r.record, r.alert) {
        (Some(record), None) => Rule::Recording(RecordingRule {
            record,
            expr_text,
            expr,
            labels,
        }),
        (None, Some(alert)) => Rule::Alerting(AlertingRule {
            alert,
            expr_text,
            expr,
            for_,
            keep_firing_for,
            labels: label_templates,
            annotations,
        }),
        _ => return (None, errs),
    };
    (Some(rule), errs)
}

/// Totals of a validated file, for `rules check`.
pub fn count_rules(groups: &[RuleGroup]) -> usize {
    groups.iter().map(|g| g.rules.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<RuleError> {
        parse_rule_file("r.yml", text).unwrap_err().0
    }

    fn one(text: &str) -> RuleError {
        let e = errs(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        e.into_iter().next().unwrap()
    }

    #[test]
    fn parses_a_valid_file() {
        let g = parse_rule_file(
            "r.yml",
            r#"
groups:
  - name: g1
    interval: 30s
    limit: 10
    rules:
      - record: job:errors:rate5m
        expr: sum by (job) (rate(errors_total[5m]))
        labels: {team: a}
      - alert: HighErrors
        expr: job:errors:rate5m > 0.5
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: "{{ $labels.job }}-page"
        annotations:
          summary: "errors at {{ $value | humanizePercentage }}"
  - name: g2
    rules:
      - record: x
        expr: vector(1)
"#,
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].interval, Some(Duration::from_secs(30)));
        assert_eq!(g[0].limit, 10);
        assert_eq!(g[1].interval_or(DEFAULT_INTERVAL), DEFAULT_INTERVAL);
        assert_eq!(count_rules(&g), 3);
        let Rule::Alerting(a) = &g[0].rules[1] else {
            panic!()
        };
        assert_eq!(a.for_, Duration::from_secs(300));
        assert_eq!(a.keep_firing_for, Duration::from_secs(60));
        assert_eq!(a.labels[0].0, "severity");
        assert!(parse_rule_file("empty.yml", "").unwrap().is_empty());
    }

    #[test]
    fn expr_errors_name_group_rule_and_position() {
        let e = one("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(rate(x[5m])\n");
        assert_eq!(e.group.as_deref(), Some("g"));
        assert_eq!(
            e.rule,
            Some(RuleRef {
                index: 1,
                kind: "alert",
                name: "A".into()
            })
        );
        assert_eq!(e.line, Some(5));
        let RuleErrorKind::Expr { line, col, .. } = &e.kind else {
            panic!("{e}")
        };
        assert_eq!((*line, *col), (1, 16));
        let s = e.to_string();
        assert!(
            s.starts_with(
                "r.yml:5: group \"g\", rule 1 (alert \"A\"): could not parse expression at 1:16"
            ),
            "{s}"
        );
    }

    #[test]
    fn each_problem_is_named() {
        type Check = fn(&RuleErrorKind) -> bool;
        let cases: &[(&str, Check)] = &[
            (
                "groups:\n- name: g\n  rules:\n  - record: a\n    alert: b\n    expr: up\n",
                |k| *k == RuleErrorKind::RecordAndAlert,
            ),
            ("groups:\n- name: g\n  rules:\n  - expr: up\n", |k| {
                *k == RuleErrorKind::NeitherRecordNorAlert
            }),
            (
                "groups:\n- name: g\n  rules:\n  - record: 'bad-name'\n    expr: up\n",
                |k| matches!(k, RuleErrorKind::InvalidRecordName(n) if n == "bad-name"),
            ),
            ("groups:\n- name: g\n  rules:\n  - record: a\n", |k| {
                *k == RuleErrorKind::MissingExpr
            }),
            (
                "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5x\n",
                |k| matches!(k, RuleErrorKind::Duration { field: "for", .. }),
            ),
            (
                "groups:\n- name: g\n  interval: 0s\n  rules:\n  - alert: A\n    expr: up\n",
                |k| *k == RuleErrorKind::ZeroInterval,
            ),
            (
                "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    for: 1m\n",
                |k| *k == RuleErrorKind::FieldOnRecordingRule("for"),
            ),
            (
                "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {'1x': y}\n",
                |k| matches!(k, RuleErrorKind::InvalidLabelName(n) if n == "1x"),
            ),
            (
                "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: {__name__: y}\n",
                |k| matches!(k, RuleErrorKind::InvalidLabelName(n) if n == "__name__"),
            ),
            (
                "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations: {'a-b': y}\n",
                |k| matches!(k, RuleErrorKind::InvalidAnnotationName(n) if n == "a-b"),
            ),
            (
                "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations: {s: '{{ if 1 }}'}\n",
                |k| matches!(k, RuleErrorKind::Template { field: "annotation", name, .. } if name == "s"),
            ),
            (
                "groups:\n- name: ''\n  rules:\n  - alert: A\n    expr: up\n",
                |k| *k == RuleErrorKind::EmptyGroupName,
            ),
            ("groups:\n- name: g\n  rules: []\n", |k| {
                *k == RuleErrorKind::NoRules
            }),
            (
                "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    severity: x\n",
                |k| matches!(k, RuleErrorKind::Yaml(m) if m.contains("severity")),
            ),
        ];
        for (text, check) in cases {
            let e = one(text);
            assert!(check(&e.kind), "{text}\n=> {e}");
            assert!(e.to_string().starts_with("r.yml"), "{e}");
        }
    }

    #[test]
    fn duplicate_groups_and_all_errors_reported() {
        let e = errs(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n- name: g\n  rules:\n  - record: 'x y'\n    expr: up\n  - alert: B\n    expr: 'up +'\n",
        );
        assert_eq!(e.len(), 3, "{e:#?}");
        assert_eq!(e[0].kind, RuleErrorKind::DuplicateGroup("g".into()));
        assert_eq!(e[0].line, Some(6));
        assert_eq!(e[1].rule.as_ref().unwrap().index, 1);
        assert_eq!(e[2].rule.as_ref().unwrap().index, 2);
        assert_eq!(e[2].rule.as_ref().unwrap().name, "B");
        assert!(matches!(e[2].kind, RuleErrorKind::Expr { .. }));
    }

    #[test]
    fn bad_yaml_has_a_line_and_column() {
        let e = one("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: [unclosed\n");
        assert!(matches!(e.kind, RuleErrorKind::Yaml(_)), "{e}");
        assert_eq!((e.line, e.col), (Some(5), Some(11)), "{e}");
        let e = one("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    severity: x\n");
        assert!(
            e.to_string()
                .starts_with("r.yml:6:5: unknown field `severity`"),
            "{e}"
        );
    }

    #[test]
    fn expression_type_is_checked() {
        for (expr, got) in [("up[5m]", "range vector"), ("'\"s\"'", "string")] {
            let e = one(&format!(
                "groups:\n- name: g\n  rules:\n  - record: r\n    expr: {expr}\n"
            ));
            assert!(
                matches!(e.kind, RuleErrorKind::ExprType(t) if t.contains(got)),
                "{e}"
            );
        }
    }
}
