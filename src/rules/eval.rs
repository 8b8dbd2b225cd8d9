//! Evaluation of a [`RuleGroup`] at an injected time `t` over any
//! [`SeriesSource`]: recording rules produce samples, alerting rules run
//! Prometheus's alert state machine and produce `ALERTS` /
//! `ALERTS_FOR_STATE` samples.
//!
//! Invariants:
//! - Time is only what the caller passes, so a test drives the state
//!   machine with a fake clock; the monotonic clock is read only to report
//!   how long each rule took.
//! - Rules of a group run in file order, and each rule sees the samples the
//!   group's earlier rules produced at this `t` (an overlay on the source),
//!   as Prometheus's rules see earlier rules' output in storage.
//! - [`GroupState`] is plain serde data (alerts keyed by rule and label
//!   set) so it can be persisted and restored; evaluation never needs more
//!   than it.
//! - State machine (Prometheus `rules/alerting.go`): a label set the
//!   expression returns becomes `Pending` with `active_at = t`; it becomes
//!   `Firing` at the first evaluation where `t - active_at >= for`; when no
//!   longer returned, a pending alert is dropped and a firing one becomes
//!   `Inactive` with `resolved_at = t` (or keeps firing while
//!   `t - keep_firing_since < keep_firing_for`); resolved alerts are kept
//!   [`RESOLVED_RETENTION`] so notifiers can send the resolution; a label set
//!   that comes back after resolving starts over as a new pending alert.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tidemark_query::{
    EvalError, EvalOptions, LabelMatcher, Labels, METRIC_NAME, Sample, SelectorRead, SeriesData,
    SeriesSource, SourceError, Value, eval_instant, instant_reads,
};

use crate::rules::file::{AlertingRule, RecordingRule, Rule, RuleGroup};

/// How long a resolved alert stays in the state (Prometheus: 15 min), ms.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// [`RESOLVED_RETENTION_MS`] as a `Duration`.
pub const RESOLVED_RETENTION: std::time::Duration =
    std::time::Duration::from_millis(RESOLVED_RETENTION_MS as u64);

/// The state of one alert (one output label set of an alerting rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved (kept for [`RESOLVED_RETENTION`]).
    Inactive,
    /// Returned by the expression for less than `for`.
    Pending,
    /// Returned for at least `for` (or kept firing by `keep_firing_for`).
    Firing,
}

impl AlertState {
    /// Prometheus's name: `inactive`, `pending`, `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert: labels (with `alertname`), annotations, state and times (ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Output labels: the series' labels without `__name__`, the rule's
    /// labels expanded, and `alertname`.
    pub labels: BTreeMap<String, String>,
    /// Expanded annotations (refreshed each evaluation).
    pub annotations: BTreeMap<String, String>,
    /// Current state.
    pub state: AlertState,
    /// The expression's value at the last evaluation that returned it.
    pub value: f64,
    /// When it first became pending.
    pub active_at_ms: i64,
    /// When it started firing.
    pub fired_at_ms: Option<i64>,
    /// When it resolved.
    pub resolved_at_ms: Option<i64>,
    /// When the expression stopped returning it while `keep_firing_for` holds it.
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    /// The labels as a query [`Labels`].
    pub fn label_set(&self) -> Labels {
        Labels::from_pairs(self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// The alerts of one alerting rule, keyed by their rendered label set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleAlerts {
    /// Rendered label set (`{a="b", ...}`) → alert.
    pub alerts: BTreeMap<String, Alert>,
    /// The `ALERTS` and `ALERTS_FOR_STATE` label sets of each alert, for
    /// the state they were built for: an alert's labels never change, so
    /// a steady alert costs two reference counts per round, not two label
    /// sets. Derived data: not persisted, not compared, rebuilt on a miss.
    #[serde(skip)]
    series: std::collections::HashMap<String, OutputLabels>,
}

/// See [`RuleAlerts::series`].
#[derive(Debug, Clone)]
struct OutputLabels {
    state: AlertState,
    alerts: Labels,
    for_state: Labels,
}

impl PartialEq for RuleAlerts {
    fn eq(&self, other: &Self) -> bool {
        self.alerts == other.alerts
    }
}

/// Everything a group needs to carry from one evaluation to the next.
///
/// Keyed by `"{index}:{alertname}"` of the rule within its group, so a
/// restored state attaches to the same rule of an unchanged file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// Rule key → its alerts.
    pub rules: BTreeMap<String, RuleAlerts>,
}

impl GroupState {
    /// All alerts of the group (pending, firing and recently resolved).
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.rules.values().flat_map(|r| r.alerts.values())
    }

    /// The alerts of rule `index` (0-based) named `alert`, if any.
    pub fn rule_alerts(&self, index: usize, alert: &str) -> Option<&RuleAlerts> {
        self.rules.get(&rule_key(index, alert))
    }
}

fn lock(state: &Mutex<GroupState>) -> MutexGuard<'_, GroupState> {
    // A panic mid-update leaves alerts a later round overwrites.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn rule_key(index: usize, alert: &str) -> String {
    format!("{index}:{alert}")
}

/// A rule's evaluation failure; the other rules still ran.
#[derive(Debug, thiserror::Error)]
pub enum RuleEvalError {
    /// The query failed.
    #[error("rule {index} ({name:?}): {source}")]
    Query {
        /// 0-based index in the group.
        index: usize,
        /// Record or alert name.
        name: String,
        /// The evaluator's error.
        source: EvalError,
    },
    /// The expression returned a string or a range vector.
    #[error("rule {index} ({name:?}): expression returned a {got}, expected a vector or scalar")]
    ResultType {
        /// 0-based index in the group.
        index: usize,
        /// Record or alert name.
        name: String,
        /// The type returned.
        got: &'static str,
    },
    /// Two output samples with the same label set.
    #[error(
        "rule {index} ({name:?}): vector contains metrics with the same labelset after applying rule labels: {labels}"
    )]
    DuplicateLabelset {
        /// 0-based index in the group.
        index: usize,
        /// Record or alert name.
        name: String,
        /// The label set.
        labels: String,
    },
    /// More series (or pending/firing alerts) than the group's `limit`;
    /// the rule's output is dropped (and its alerts cleared) as in Prometheus.
    #[error("rule {index} ({name:?}): exceeded limit: {got} > {limit}")]
    Limit {
        /// 0-based index in the group.
        index: usize,
        /// Record or alert name.
        name: String,
        /// Series produced.
        got: usize,
        /// The group's limit.
        limit: u64,
    },
}

impl RuleEvalError {
    /// The 0-based index of the failing rule in its group.
    pub fn index(&self) -> usize {
        match self {
            RuleEvalError::Query { index, .. }
            | RuleEvalError::ResultType { index, .. }
            | RuleEvalError::DuplicateLabelset { index, .. }
            | RuleEvalError::Limit { index, .. } => *index,
        }
    }
}

/// The output of one group evaluation.
#[derive(Debug, Default)]
pub struct GroupOutput {
    /// Samples to append: recording-rule output, `ALERTS`, `ALERTS_FOR_STATE`.
    pub samples: Vec<Sample>,
    /// Rules that failed this round.
    pub errors: Vec<RuleEvalError>,
    /// How long each rule took (its query and alert update), in file
    /// order. The only clock read here: it measures, never decides.
    pub durations: Vec<std::time::Duration>,
}

impl RuleGroup {
    /// Every selection [`RuleGroup::eval`] at `t_ms` makes against its
    /// source (the query offset applied), so the caller can read them in
    /// one batch (`crate::source::Prefetched`).
    pub fn reads(&self, t_ms: i64, opts: &EvalOptions) -> Vec<SelectorRead<'_>> {
        let t = t_ms - self.query_offset.as_millis() as i64;
        self.rules
            .iter()
            .flat_map(|r| match r {
                Rule::Recording(r) => instant_reads(&r.expr, t, opts),
                Rule::Alerting(a) => instant_reads(&a.expr, t, opts),
            })
            .collect()
    }

    /// Evaluates every rule at `t_ms`, updating `state`'s alerts, and
    /// returns the samples to write. With a `query_offset`, queries run and
    /// samples are stamped at `t_ms - query_offset` while alert times
    /// (`active_at`, `fired_at`, ...) stay at `t_ms`, as in Prometheus.
    pub fn eval(
        &self,
        state: &mut GroupState,
        source: &dyn SeriesSource,
        t_ms: i64,
        opts: &EvalOptions,
    ) -> GroupOutput {
        let shared = Mutex::new(std::mem::take(state));
        let out = self.eval_shared(&shared, source, t_ms, opts);
        *state = shared.into_inner().unwrap_or_else(|e| e.into_inner());
        out
    }

    /// [`RuleGroup::eval`] with the state behind a lock that is held only
    /// while an alerting rule's alerts are updated, never during a query:
    /// readers (the alerts API) see each rule's alerts as of its last
    /// evaluation, and nothing copies the state per round.
    pub fn eval_shared(
        &self,
        state: &Mutex<GroupState>,
        source: &dyn SeriesSource,
        t_ms: i64,
        opts: &EvalOptions,
    ) -> GroupOutput {
        let t = t_ms - self.query_offset.as_millis() as i64;
        let mut out = GroupOutput::default();
        let mut overlay = Overlay {
            inner: source,
            extra: Vec::new(),
            by_name: std::collections::HashMap::new(),
        };
        // State of rules that no longer exist is dropped; a rule whose query
        // fails this round keeps its alerts (and its `for` clock).
        let live_keys: HashSet<String> = self
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Rule::Alerting(a) => Some(rule_key(i, &a.alert)),
                Rule::Recording(_) => None,
            })
            .collect();
        lock(state).rules.retain(|k, _| live_keys.contains(k));
        for (index, rule) in self.rules.iter().enumerate() {
            let started = Instant::now();
            'rule: {
                let name = rule.name().to_string();
                let expr = match rule {
                    Rule::Recording(r) => &r.expr,
                    Rule::Alerting(a) => &a.expr,
                };
                let vector = match eval_instant(&overlay, expr, t, opts) {
                    Ok(Value::Vector(v)) => v,
                    Ok(Value::Scalar { v, .. }) => vec![Sample {
                        labels: Labels::new(),
                        t,
                        v,
                    }],
                    Ok(other) => {
                        out.errors.push(RuleEvalError::ResultType {
                            index,
                            name,
                            got: other.type_name(),
                        });
                        break 'rule;
                    }
                    Err(source) => {
                        out.errors.push(RuleEvalError::Query {
                            index,
                            name,
                            source,
                        });
                        break 'rule;
                    }
                };
                let produced = match rule {
                    Rule::Recording(r) => recording(r, index, self.limit, vector, t),
                    Rule::Alerting(a) => {
                        let mut state = lock(state);
                        let alerts = state.rules.entry(rule_key(index, &a.alert)).or_default();
                        alerting(a, index, self.limit, alerts, vector, t_ms, t)
                    }
                };
                match produced {
                    Ok(samples) => {
                        overlay.add(&samples);
                        out.samples.extend(samples);
                    }
                    Err(e) => out.errors.push(e),
                }
            }
            out.durations.push(started.elapsed());
        }
        out
    }
}

fn recording(
    r: &RecordingRule,
    index: usize,
    limit: u64,
    vector: Vec<Sample>,
    t: i64,
) -> Result<Vec<Sample>, RuleEvalError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(vector.len());
    for s in vector {
        let mut labels = s.labels;
        labels.set(METRIC_NAME, r.record.clone());
        for (k, v) in &r.labels {
            labels.set(k, v.clone());
        }
        if !seen.insert(labels.clone()) {
            return Err(RuleEvalError::DuplicateLabelset {
                index,
                name: r.record.clone(),
                labels: labels.to_string(),
            });
        }
        out.push(Sample { labels, t, v: s.v });
    }
    if limit > 0 && out.len() as u64 > limit {
        return Err(RuleEvalError::Limit {
            index,
            name: r.record.clone(),
            got: out.len(),
            limit,
        });
    }
    Ok(out)
}

fn alerting(
    a: &AlertingRule,
    index: usize,
    limit: u64,
    state: &mut RuleAlerts,
    vector: Vec<Sample>,
    t: i64,
    sample_t: i64,
) -> Result<Vec<Sample>, RuleEvalError> {
    let for_ms = a.for_.as_millis() as i64;
    let keep_ms = a.keep_firing_for.as_millis() as i64;
    // 1. What the expression returns now (a duplicate label set fails the
    // rule before its state is touched, as in Prometheus).
    let mut returned: HashSet<String> = HashSet::with_capacity(vector.len());
    let mut current = Vec::with_capacity(vector.len());
    for s in vector {
        let mut labels = s.labels.without_name();
        for (k, tpl) in &a.labels {
            labels.set(k, tpl.expand(&s.labels, s.v));
        }
        labels.set("alertname", a.alert.clone());
        let annotations: BTreeMap<String, String> = a
            .annotations
            .iter()
            .map(|(k, tpl)| (k.clone(), tpl.expand(&s.labels, s.v)))
            .collect();
        let key = labels.to_string();
        if !returned.insert(key.clone()) {
            return Err(RuleEvalError::DuplicateLabelset {
                index,
                name: a.alert.clone(),
                labels: key,
            });
        }
        current.push((key, labels, annotations, s.v));
    }
    // 2. Merge into the active set: a live alert keeps its times and only
    // takes the new value and annotations; anything else starts pending.
    for (key, labels, annotations, value) in current {
        match state.alerts.get_mut(&key) {
            Some(old) if old.state != AlertState::Inactive => {
                old.value = value;
                old.annotations = annotations;
            }
            _ => {
                let alert = Alert {
                    labels: labels
                        .as_slice()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    annotations,
                    state: AlertState::Pending,
                    value,
                    active_at_ms: t,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    keep_firing_since_ms: None,
                };
                state.alerts.insert(key, alert);
            }
        }
    }
    // 3. Transitions.
    let mut samples = Vec::new();
    let mut active = 0usize;
    let mut drop = Vec::new();
    let RuleAlerts { alerts, series } = state;
    for (key, alert) in alerts.iter_mut() {
        if !returned.contains(key) {
            let mut keep_firing = false;
            if alert.state == AlertState::Firing && keep_ms > 0 {
                let since = *alert.keep_firing_since_ms.get_or_insert(t);
                keep_firing = t - since < keep_ms;
            }
            if alert.state == AlertState::Pending
                || alert
                    .resolved_at_ms
                    .is_some_and(|r| t - r > RESOLVED_RETENTION_MS)
            {
                drop.push(key.clone());
            }
            if alert.state != AlertState::Inactive && !keep_firing {
                alert.state = AlertState::Inactive;
                alert.resolved_at_ms = Some(t);
            }
            if !keep_firing {
                continue;
            }
        } else {
            alert.keep_firing_since_ms = None;
        }
        active += 1;
        if alert.state == AlertState::Pending && t - alert.active_at_ms >= for_ms {
            alert.state = AlertState::Firing;
            alert.fired_at_ms = Some(t);
        }
        let out = match series.get(key) {
            Some(o) if o.state == alert.state => o,
            _ => {
                let base = alert.label_set();
                let mut alerts = base.clone();
                alerts.set(METRIC_NAME, "ALERTS".into());
                alerts.set("alertstate", alert.state.as_str().into());
                let mut for_state = base;
                for_state.set(METRIC_NAME, "ALERTS_FOR_STATE".into());
                let built = OutputLabels {
                    state: alert.state,
                    alerts,
                    for_state,
                };
                series.insert(key.clone(), built);
                &series[key]
            }
        };
        samples.push(Sample {
            labels: out.alerts.clone(),
            t: sample_t,
            v: 1.0,
        });
        samples.push(Sample {
            labels: out.for_state.clone(),
            t: sample_t,
            v: alert.active_at_ms.div_euclid(1000) as f64,
        });
    }
    for key in drop {
        alerts.remove(&key);
        series.remove(&key);
    }
    if limit > 0 && active as u64 > limit {
        alerts.clear();
        series.clear();
        return Err(RuleEvalError::Limit {
            index,
            name: a.alert.clone(),
            got: active,
            limit,
        });
    }
    Ok(samples)
}

/// The source plus the samples earlier rules of this round produced.
struct Overlay<'a> {
    inner: &'a dyn SeriesSource,
    extra: Vec<Sample>,
    /// Metric name → indexes into `extra`, so a selector with a name reads
    /// only that metric's outputs (a round of many alerting rules would
    /// otherwise rescan every earlier rule's `ALERTS` on each select).
    by_name: std::collections::HashMap<String, Vec<usize>>,
}

impl Overlay<'_> {
    fn add(&mut self, samples: &[Sample]) {
        for s in samples {
            let name = s.labels.get(METRIC_NAME).unwrap_or_default();
            let at = self.extra.len();
            match self.by_name.get_mut(name) {
                Some(v) => v.push(at),
                None => {
                    self.by_name.insert(name.to_string(), vec![at]);
                }
            }
            self.extra.push(s.clone());
        }
    }
}

impl SeriesSource for Overlay<'_> {
    fn select(
        &self,
        matchers: &[LabelMatcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, SourceError> {
        let mut series = self.inner.select(matchers, start_ms, end_ms)?;
        if self.extra.is_empty() {
            return Ok(series);
        }
        let named = matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && m.op == tidemark_query::MatchOp::Equal);
        let candidates: Box<dyn Iterator<Item = &Sample>> = match named {
            Some(m) => Box::new(
                self.by_name
                    .get(&m.value)
                    .into_iter()
                    .flatten()
                    .map(|&i| &self.extra[i]),
            ),
            None => Box::new(self.extra.iter()),
        };
        for s in candidates {
            if s.t < start_ms
                || s.t > end_ms
                || !matchers.iter().all(|m| m.matches_labels(&s.labels))
            {
                continue;
            }
            match series.iter_mut().find(|d| d.labels == s.labels) {
                Some(d) => {
                    // Later writes win: replace an equal timestamp, keep order.
                    match d.samples.binary_search_by_key(&s.t, |(t, _)| *t) {
                        Ok(i) => d.samples[i].1 = s.v,
                        Err(i) => d.samples.insert(i, (s.t, s.v)),
                    }
                }
                None => series.push(SeriesData {
                    labels: s.labels.clone(),
                    samples: vec![(s.t, s.v)],
                }),
            }
        }
        Ok(series)
    }
}
