//! Evaluation tests: the alert state machine driven by a test clock over
//! `MemorySource`, recording-rule output, template expansion in alerts,
//! and the default pack.

use std::collections::BTreeMap;

use tidemark_query::{EvalOptions, Labels, MemorySource, Sample};

use super::*;

const MIN: i64 = 60_000;

fn group(yaml: &str) -> RuleGroup {
    let mut g = parse_rule_file("t.yml", yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.len(), 1);
    g.remove(0)
}

fn alert_group(expr: &str, extra: &str) -> RuleGroup {
    group(&format!(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: '{expr}'\n{extra}"
    ))
}

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// `m{c="x"}` with value 1 for each minute in `on` (ms times).
fn source(series: &[(&str, &[i64], f64)]) -> MemorySource {
    let mut src = MemorySource::new();
    for (c, times, v) in series {
        src.add(
            lbl(&[("__name__", "m"), ("c", c)]),
            times.iter().map(|t| (*t, *v)),
        );
    }
    src
}

/// Runs the group at `t` and returns `(state of each alert by c, samples)`.
fn step(
    g: &RuleGroup,
    st: &mut GroupState,
    src: &MemorySource,
    t: i64,
) -> (BTreeMap<String, AlertState>, Vec<Sample>) {
    let opts = EvalOptions {
        lookback: std::time::Duration::from_secs(30),
        ..EvalOptions::default()
    };
    let out = g.eval(st, src, t, &opts);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let states = st
        .alerts()
        .map(|a| (a.labels.get("c").cloned().unwrap_or_default(), a.state))
        .collect();
    (states, out.samples)
}

fn minutes(range: std::ops::Range<i64>) -> Vec<i64> {
    range.map(|m| m * MIN).collect()
}

#[test]
fn pending_then_firing_exactly_at_for_then_resolved() {
    let g = alert_group("m > 0", "    for: 3m\n");
    let src = source(&[("x", &minutes(0..6), 1.0)]);
    let mut st = GroupState::default();
    use AlertState::*;
    for (m, want) in [
        (0, Pending),
        (1, Pending),
        (2, Pending),
        (3, Firing),
        (5, Firing),
    ] {
        let (s, _) = step(&g, &mut st, &src, m * MIN);
        assert_eq!(s["x"], want, "minute {m}");
    }
    let a = st.alerts().next().unwrap().clone();
    assert_eq!(a.active_at_ms, 0);
    assert_eq!(a.fired_at_ms, Some(3 * MIN));
    // Series gone (lookback 30 s): resolved at minute 6.
    let (s, samples) = step(&g, &mut st, &src, 6 * MIN + 31_000);
    assert_eq!(s["x"], Inactive);
    assert!(samples.is_empty(), "no ALERTS sample once resolved");
    let a = st.alerts().next().unwrap();
    assert_eq!(a.resolved_at_ms, Some(6 * MIN + 31_000));
    // Kept for the retention, then forgotten.
    step(&g, &mut st, &src, 6 * MIN + 31_000 + RESOLVED_RETENTION_MS);
    assert_eq!(st.alerts().count(), 1);
    step(&g, &mut st, &src, 6 * MIN + 32_000 + RESOLVED_RETENTION_MS);
    assert_eq!(st.alerts().count(), 0);
}

#[test]
fn for_zero_fires_on_first_evaluation_and_pending_that_stops_is_dropped() {
    let g = alert_group("m > 0", "");
    let src = source(&[("x", &[0], 1.0)]);
    let mut st = GroupState::default();
    let (s, _) = step(&g, &mut st, &src, 0);
    assert_eq!(s["x"], AlertState::Firing);

    let g = alert_group("m > 0", "    for: 5m\n");
    let mut st = GroupState::default();
    let (s, _) = step(&g, &mut st, &src, 0);
    assert_eq!(s["x"], AlertState::Pending);
    let (s, _) = step(&g, &mut st, &src, MIN);
    assert!(s.is_empty(), "a pending alert that stops is dropped: {s:?}");
}

#[test]
fn flapping_restarts_the_for_clock() {
    // Present at 0,1 min; gone at 2; back at 3,4,5.
    let g = alert_group("m > 0", "    for: 2m\n");
    let src = source(&[("x", &[0, MIN, 3 * MIN, 4 * MIN, 5 * MIN], 1.0)]);
    let mut st = GroupState::default();
    use AlertState::*;
    let mut seen = Vec::new();
    for m in 0..6 {
        let (s, _) = step(&g, &mut st, &src, m * MIN);
        seen.push(s.get("x").copied());
    }
    assert_eq!(
        seen,
        [
            Some(Pending),
            Some(Pending),
            None,
            Some(Pending),
            Some(Pending),
            Some(Firing)
        ]
    );
    assert_eq!(st.alerts().next().unwrap().active_at_ms, 3 * MIN);

    // A firing alert that resolves and comes back starts over as pending.
    let g = alert_group("m > 0", "");
    let mut st = GroupState::default();
    step(&g, &mut st, &src, MIN);
    let (s, _) = step(&g, &mut st, &src, 2 * MIN);
    assert_eq!(s["x"], Inactive);
    let (s, _) = step(&g, &mut st, &src, 3 * MIN);
    assert_eq!(s["x"], Firing);
    let a = st.alerts().next().unwrap();
    assert_eq!(a.active_at_ms, 3 * MIN);
    assert_eq!(a.resolved_at_ms, None);
}

#[test]
fn keep_firing_for_holds_a_firing_alert() {
    let g = alert_group("m > 0", "    keep_firing_for: 2m\n");
    // Present at minute 0 and 1 only.
    let src = source(&[("x", &[0, MIN], 1.0)]);
    let mut st = GroupState::default();
    use AlertState::*;
    let mut seen = Vec::new();
    for m in 0..6 {
        let (s, samples) = step(&g, &mut st, &src, m * MIN);
        seen.push((s["x"], samples.len()));
    }
    // Gone from minute 2: kept firing at 2 and 3 (since = 2 min, < 2 min
    // elapsed), resolved at 4.
    assert_eq!(
        seen,
        [
            (Firing, 2),
            (Firing, 2),
            (Firing, 2),
            (Firing, 2),
            (Inactive, 0),
            (Inactive, 0)
        ]
    );
    let a = st.alerts().next().unwrap();
    assert_eq!(a.resolved_at_ms, Some(4 * MIN));
    assert_eq!(a.fired_at_ms, Some(0));

    // Coming back while kept firing resets keep_firing_since.
    let src = source(&[("x", &[0, 2 * MIN, 3 * MIN], 1.0)]);
    let mut st = GroupState::default();
    step(&g, &mut st, &src, 0);
    step(&g, &mut st, &src, MIN);
    assert_eq!(st.alerts().next().unwrap().keep_firing_since_ms, Some(MIN));
    step(&g, &mut st, &src, 2 * MIN);
    assert_eq!(st.alerts().next().unwrap().keep_firing_since_ms, None);
    assert_eq!(st.alerts().next().unwrap().active_at_ms, 0);
}

#[test]
fn one_alert_per_label_set_with_its_own_clock() {
    let g = alert_group("m > 0", "    for: 1m\n");
    let src = source(&[("x", &minutes(0..4), 1.0), ("y", &minutes(2..4), 1.0)]);
    let mut st = GroupState::default();
    use AlertState::*;
    step(&g, &mut st, &src, 0);
    step(&g, &mut st, &src, MIN);
    let (s, _) = step(&g, &mut st, &src, 2 * MIN);
    assert_eq!(s["x"], Firing);
    assert_eq!(s["y"], Pending);
    let (s, samples) = step(&g, &mut st, &src, 3 * MIN);
    assert_eq!(s["y"], Firing);
    // ALERTS and ALERTS_FOR_STATE for both.
    let alerts: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.labels.metric_name() == Some("ALERTS"))
        .collect();
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        alerts[0].labels,
        lbl(&[
            ("__name__", "ALERTS"),
            ("alertname", "A"),
            ("alertstate", "firing"),
            ("c", "x")
        ])
    );
    assert!(alerts.iter().all(|s| s.v == 1.0 && s.t == 3 * MIN));
    let for_state: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.labels.metric_name() == Some("ALERTS_FOR_STATE"))
        .collect();
    assert_eq!(
        for_state[1].labels,
        lbl(&[
            ("__name__", "ALERTS_FOR_STATE"),
            ("alertname", "A"),
            ("c", "y")
        ])
    );
    assert_eq!(for_state[0].v, 0.0);
    assert_eq!(for_state[1].v, 120.0, "ActiveAt of y in seconds");
}

#[test]
fn pending_alerts_write_pending_alertstate() {
    let g = alert_group("m > 0", "    for: 1m\n");
    let src = source(&[("x", &[5 * MIN], 1.0)]);
    let mut st = GroupState::default();
    let (_, samples) = step(&g, &mut st, &src, 5 * MIN);
    assert_eq!(samples[0].labels.get("alertstate"), Some("pending"));
    assert_eq!(samples[1].v, 300.0);
}

#[test]
fn templates_expand_in_labels_and_annotations() {
    let g = group(
        r#"
groups:
- name: g
  rules:
  - alert: High
    expr: m > 0
    labels:
      severity: page
      who: "team-{{ $labels.c }}"
    annotations:
      summary: "{{ $labels.c }} is {{ $value }}"
      all: "{{ $labels }}"
"#,
    );
    let src = source(&[("x", &[0], 2.5)]);
    let mut st = GroupState::default();
    step(&g, &mut st, &src, 0);
    let a = st.alerts().next().unwrap();
    assert_eq!(a.labels["who"], "team-x");
    assert_eq!(a.labels["severity"], "page");
    assert_eq!(a.labels["alertname"], "High");
    assert!(!a.labels.contains_key("__name__"));
    assert_eq!(a.annotations["summary"], "x is 2.5");
    assert_eq!(a.annotations["all"], "map[__name__:m c:x]");
    assert_eq!(a.value, 2.5);
}

#[test]
fn recording_rules_output_labels_and_feed_later_rules() {
    let g = group(
        r#"
groups:
- name: g
  rules:
  - record: c:m:doubled
    expr: m * 2
    labels: {team: core, c: overridden}
  - record: total
    expr: sum(c:m:doubled)
  - record: one
    expr: "1"
"#,
    );
    let src = source(&[("x", &[0], 1.5)]);
    let mut st = GroupState::default();
    let (_, samples) = step(&g, &mut st, &src, 10_000);
    assert_eq!(
        samples[0],
        Sample {
            labels: lbl(&[
                ("__name__", "c:m:doubled"),
                ("c", "overridden"),
                ("team", "core")
            ]),
            t: 10_000,
            v: 3.0
        }
    );
    assert_eq!(samples[1].labels, lbl(&[("__name__", "total")]));
    assert_eq!(samples[1].v, 3.0, "the second rule sees the first's output");
    assert_eq!(samples[2].labels, lbl(&[("__name__", "one")]));
    assert_eq!(samples[2].v, 1.0);
}

#[test]
fn duplicate_label_sets_and_limits_are_errors() {
    let g =
        group("groups:\n- name: g\n  rules:\n  - record: r\n    expr: m\n    labels: {c: same}\n");
    let src = source(&[("x", &[0], 1.0), ("y", &[0], 1.0)]);
    let out = g.eval(&mut GroupState::default(), &src, 0, &EvalOptions::default());
    assert!(out.samples.is_empty());
    assert!(matches!(
        out.errors[..],
        [RuleEvalError::DuplicateLabelset { .. }]
    ));

    let g = group("groups:\n- name: g\n  limit: 1\n  rules:\n  - alert: A\n    expr: m\n");
    let mut st = GroupState::default();
    let out = g.eval(&mut st, &src, 0, &EvalOptions::default());
    assert!(matches!(
        out.errors[..],
        [RuleEvalError::Limit {
            got: 2,
            limit: 1,
            ..
        }]
    ));
    assert_eq!(st.alerts().count(), 0);
}

#[test]
fn state_round_trips_through_serde() {
    let g = alert_group("m > 0", "    for: 2m\n");
    let src = source(&[("x", &minutes(0..4), 1.0)]);
    let mut st = GroupState::default();
    step(&g, &mut st, &src, 0);
    step(&g, &mut st, &src, MIN);
    let json = serde_json::to_string(&st).unwrap();
    let mut restored: GroupState = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, st);
    // The restored state keeps the `for` clock running.
    let (s, _) = step(&g, &mut restored, &src, 2 * MIN);
    assert_eq!(s["x"], AlertState::Firing);
    assert!(json.contains("\"pending\""), "{json}");
}

#[test]
fn default_pack_passes_the_checker_and_evaluates() {
    let groups = default_groups().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(groups.len(), 2);
    let alerts: Vec<&AlertingRule> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| match r {
            Rule::Alerting(a) => Some(a),
            Rule::Recording(_) => None,
        })
        .collect();
    assert_eq!(alerts.len(), 7);
    for a in &alerts {
        let sev = a.labels.iter().find(|(k, _)| k == "severity");
        assert!(sev.is_some(), "{} has a severity", a.alert);
        for k in ["summary", "description", "runbook"] {
            assert!(
                a.annotations.iter().any(|(n, _)| n == k),
                "{} has {k}",
                a.alert
            );
        }
    }

    // A breaker open and 6 consecutive failures fire at once.
    let mut src = MemorySource::new();
    src.add(
        lbl(&[("__name__", "circuit_breaker_state"), ("component", "db")]),
        [(0, 1.0)],
    );
    src.add(
        lbl(&[("__name__", "consecutive_failures"), ("component", "db")]),
        [(0, 6.0)],
    );
    let mut st = GroupState::default();
    let out = groups[0].eval(&mut st, &src, 1_000, &EvalOptions::default());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let firing: Vec<String> = st
        .alerts()
        .filter(|a| a.state == AlertState::Firing)
        .map(|a| format!("{}: {}", a.labels["alertname"], a.annotations["summary"]))
        .collect();
    assert_eq!(
        firing,
        [
            "CircuitBreakerOpen: db: circuit breaker open",
            "ConsecutiveFailures: db: 6 recoveries failed in a row"
        ]
    );
}

#[test]
fn a_failing_query_keeps_the_alert_state_and_other_rules_run() {
    let g = group(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: m > 0\n    for: 2m\n  - record: r\n    expr: vector(1)\n",
    );
    let src = source(&[("x", &minutes(0..4), 1.0)]);
    let mut st = GroupState::default();
    step(&g, &mut st, &src, 0);
    // The selector hits the series limit: the alert rule fails, `r` still runs.
    let strict = EvalOptions {
        max_series: 0,
        ..EvalOptions::default()
    };
    let out = g.eval(&mut st, &src, MIN, &strict);
    assert!(
        matches!(out.errors[..], [RuleEvalError::Query { index: 0, .. }]),
        "{:?}",
        out.errors
    );
    assert_eq!(out.samples.len(), 1);
    assert_eq!(out.samples[0].labels, lbl(&[("__name__", "r")]));
    assert_eq!(st.alerts().next().unwrap().state, AlertState::Pending);
    let (s, _) = step(&g, &mut st, &src, 2 * MIN);
    assert_eq!(s["x"], AlertState::Firing, "the for clock kept running");
}

#[test]
fn query_offset_shifts_the_evaluation_time() {
    let g = group("groups:\n- name: g\n  query_offset: 1m\n  rules:\n  - record: r\n    expr: m\n");
    let src = source(&[("x", &[0], 1.0)]);
    let opts = EvalOptions {
        lookback: std::time::Duration::from_secs(30),
        ..EvalOptions::default()
    };
    let out = g.eval(&mut GroupState::default(), &src, MIN, &opts);
    assert_eq!(out.samples.len(), 1);
    assert_eq!(out.samples[0].t, 0, "sampled and stamped at t - offset");

    let g = group("groups:\n- name: g\n  query_offset: 1m\n  rules:\n  - alert: A\n    expr: m\n");
    let mut st = GroupState::default();
    let out = g.eval(&mut st, &src, MIN, &opts);
    assert!(out.samples.iter().all(|s| s.t == 0));
    assert_eq!(st.alerts().next().unwrap().active_at_ms, MIN);
}

#[test]
fn removed_rules_lose_their_state() {
    let g = alert_group("m > 0", "");
    let src = source(&[("x", &[0], 1.0)]);
    let mut st = GroupState::default();
    step(&g, &mut st, &src, 0);
    assert_eq!(st.alerts().count(), 1);
    let other = group("groups:\n- name: g\n  rules:\n  - alert: B\n    expr: m > 5\n");
    step(&other, &mut st, &src, MIN);
    assert_eq!(st.alerts().count(), 0);
    assert!(st.rule_alerts(0, "A").is_none());
}
