//! Behaviour of the notifier core, driven with explicit times.

use super::*;
use crate::notify::channel::NotifyStatus;
use crate::notify::config::NotifyConfig;
use crate::notify::history::EntryKind;
use crate::notify::silence::{Recurrence, SilenceInput, SilenceMatcher};
use crate::notify::time::format_rfc3339_ms;

const S: i64 = 1000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
/// 2026-11-27T00:00:00Z, a Friday.
const T0: i64 = 1_795_737_600_000;

fn core(extra: &str) -> Core {
    let text = format!(
        r#"
[[receivers]]
name = "ops"
channels = [{{ type = "console" }}, {{ type = "console" }}]
[[receivers]]
name = "lead"
channels = [{{ type = "console" }}]
[[receivers]]
name = "manager"
channels = [{{ type = "console" }}]
{extra}
"#
    );
    let mut cfg: NotifyConfig = toml::from_str(&text).unwrap();
    if !text.contains("[route]") {
        cfg.route.receiver = Some("ops".into());
        cfg.route.group_interval = Some(std::time::Duration::from_secs(300));
        cfg.route.repeat_interval = Some(std::time::Duration::from_secs(3600));
    }
    Core::new(
        CoreConfig::from_config(&cfg).unwrap(),
        PersistedState::default(),
    )
}

fn alert(
    labels: &[(&str, &str)],
    state: AlertState,
    fired: i64,
    resolved: Option<i64>,
) -> (Alert, String) {
    (
        Alert {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::from([("summary".to_string(), "x".to_string())]),
            state,
            value: 1.0,
            active_at_ms: fired,
            fired_at_ms: Some(fired),
            resolved_at_ms: resolved,
            keep_firing_since_ms: None,
        },
        String::new(),
    )
}

fn firing(name: &str, i: &str, at: i64) -> (Alert, String) {
    alert(
        &[("alertname", name), ("i", i)],
        AlertState::Firing,
        at,
        None,
    )
}

fn resolved(name: &str, i: &str, fired: i64, at: i64) -> (Alert, String) {
    alert(
        &[("alertname", name), ("i", i)],
        AlertState::Inactive,
        fired,
        Some(at),
    )
}

/// Ticks at `now`, reports every dispatch delivered, returns them.
fn flush(c: &mut Core, now: i64) -> Vec<Dispatch> {
    let (ds, _) = c.tick(now);
    for d in &ds {
        c.delivered(d, None, now);
    }
    ds
}

fn alert_ids(d: &Dispatch) -> Vec<(String, NotifyStatus)> {
    d.notification
        .alerts
        .iter()
        .map(|a| (a.labels["i"].clone(), a.status))
        .collect()
}

#[test]
fn grouping_waits_group_wait_and_sends_one_notification_per_group_and_channel() {
    let mut c = core("");
    c.on_alerts("g", &[firing("A", "1", T0), firing("B", "1", T0)], T0);
    c.on_alerts(
        "g",
        &[
            firing("A", "1", T0),
            firing("B", "1", T0),
            firing("A", "2", T0 + 10 * S),
        ],
        T0 + 10 * S,
    );
    assert!(flush(&mut c, T0 + 29 * S).is_empty(), "group_wait not over");
    let ds = flush(&mut c, T0 + 30 * S);
    // Two groups (alertname A and B) × two channels of "ops".
    assert_eq!(ds.len(), 4);
    let a: Vec<&Dispatch> = ds
        .iter()
        .filter(|d| d.group_key == "{}:{alertname=\"A\"}")
        .collect();
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].channel, a[1].channel), (0, 1));
    assert_eq!(
        alert_ids(a[0]),
        [
            ("1".to_string(), NotifyStatus::Firing),
            ("2".to_string(), NotifyStatus::Firing)
        ]
    );
    assert_eq!(
        a[0].notification.group_labels,
        BTreeMap::from([("alertname".into(), "A".into())])
    );
    assert_eq!(a[0].notification.receiver, "ops");
    assert!(flush(&mut c, T0 + 31 * S).is_empty());
}

#[test]
fn a_new_alert_joins_an_existing_group_at_the_next_group_interval() {
    let mut c = core("");
    c.on_alerts("g", &[firing("A", "1", T0)], T0);
    assert_eq!(flush(&mut c, T0 + 30 * S).len(), 2);
    c.on_alerts(
        "g",
        &[firing("A", "1", T0), firing("A", "2", T0 + M)],
        T0 + M,
    );
    assert!(
        flush(&mut c, T0 + 30 * S + 5 * M - 1).is_empty(),
        "batched until group_interval"
    );
    let ds = flush(&mut c, T0 + 30 * S + 5 * M);
    assert_eq!(ds.len(), 2);
    assert_eq!(alert_ids(&ds[0]).len(), 2);
}

#[test]
fn unchanged_firing_group_is_repeated_after_repeat_interval_only() {
    let mut c = core("");
    c.on_alerts("g", &[firing("A", "1", T0)], T0);
    assert_eq!(flush(&mut c, T0 + 30 * S).len(), 2);
    let mut sent = Vec::new();
    let mut t = T0 + 30 * S;
    while t <= T0 + 30 * S + 2 * H {
        t += 5 * M;
        c.on_alerts("g", &[firing("A", "1", T0)], t);
        if !flush(&mut c, t).is_empty() {
            sent.push(t - (T0 + 30 * S));
        }
    }
    // repeat_interval 1h, flushes every 5m: resent at 1h and 2h.
    assert_eq!(sent, [H, 2 * H]);
}

#[test]
fn resolved_is_sent_once_then_the_group_goes_away() {
    let mut c = core("");
    c.on_alerts("g", &[firing("A", "1", T0), firing("A", "2", T0)], T0);
    assert_eq!(flush(&mut c, T0 + 30 * S).len(), 2);
    c.on_alerts(
        "g",
        &[resolved("A", "1", T0, T0 + M), firing("A", "2", T0)],
        T0 + M,
    );
    let ds = flush(&mut c, T0 + 30 * S + 5 * M);
    assert_eq!(ds.len(), 2);
    assert_eq!(
        alert_ids(&ds[0]),
        [
            ("1".to_string(), NotifyStatus::Resolved),
            ("2".to_string(), NotifyStatus::Firing)
        ]
    );
    assert_eq!(
        ds[0].notification.alerts[0].ends_at,
        format_rfc3339_ms(T0 + M)
    );
    // Still reported as resolved by the evaluator: not sent again.
    c.on_alerts(
        "g",
        &[resolved("A", "1", T0, T0 + M), firing("A", "2", T0)],
        T0 + 6 * M,
    );
    assert!(flush(&mut c, T0 + 30 * S + 10 * M).is_empty());
    // The last one resolves (it disappears from the evaluator's list).
    c.on_alerts("g", &[], T0 + 11 * M);
    let ds = flush(&mut c, T0 + 30 * S + 15 * M);
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[0].notification.status, NotifyStatus::Resolved);
    assert_eq!(
        alert_ids(&ds[0]),
        [("2".to_string(), NotifyStatus::Resolved)]
    );
    assert!(c.groups(T0).is_empty());
    assert!(flush(&mut c, T0 + 30 * S + 20 * M).is_empty());
}

#[test]
fn failed_delivery_is_retried_at_the_next_flush_for_that_channel_only() {
    let mut c = core("");
    c.on_alerts("g", &[firing("A", "1", T0)], T0);
    let (ds, _) = c.tick(T0 + 30 * S);
    assert_eq!(ds.len(), 2);
    c.delivered(&ds[0], None, T0 + 31 * S);
    let e = c.delivered(&ds[1], Some("HTTP 500".into()), T0 + 31 * S);
    assert_eq!(
        (e.outcome, e.error.as_deref()),
        (Some(Outcome::Failed), Some("HTTP 500"))
    );
    let ds = flush(&mut c, T0 + 30 * S + 5 * M);
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].channel, 1);
}

fn silence(
    c: &mut Core,
    matchers: &[(&str, &str)],
    start: i64,
    end: i64,
    rec: Option<Recurrence>,
) -> String {
    c.silences_mut()
        .upsert(
            SilenceInput {
                id: None,
                matchers: matchers
                    .iter()
                    .map(|(n, v)| SilenceMatcher {
                        name: n.to_string(),
                        value: v.to_string(),
                        is_regex: true,
                        is_equal: true,
                    })
                    .collect(),
                starts_at_ms: start,
                ends_at_ms: end,
                created_by: "t".into(),
                comment: "c".into(),
                recurrence: rec,
            },
            start,
        )
        .unwrap()
}

#[test]
fn silenced_alerts_are_not_sent_and_recorded_as_suppressed_once() {
    let mut c = core("");
    let id = silence(&mut c, &[("i", "1|3")], T0, T0 + H, None);
    c.on_alerts("g", &[firing("A", "1", T0), firing("A", "2", T0)], T0);
    let (ds, hist) = c.tick(T0 + 30 * S);
    assert_eq!(ds.len(), 2);
    assert_eq!(alert_ids(&ds[0]), [("2".to_string(), NotifyStatus::Firing)]);
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].outcome, Some(Outcome::Suppressed));
    assert_eq!(
        hist[0].error.as_deref(),
        Some(format!("silenced by {id}").as_str())
    );
    for d in &ds {
        c.delivered(d, None, T0 + 30 * S);
    }
    let (_, hist) = c.tick(T0 + 35 * S);
    assert!(hist.is_empty(), "suppression recorded once");
    // A group whose alerts are all silenced sends nothing at all.
    c.on_alerts(
        "g",
        &[
            firing("A", "1", T0),
            firing("A", "2", T0),
            firing("B", "3", T0 + M),
        ],
        T0 + M,
    );
    assert!(
        flush(&mut c, T0 + 2 * M)
            .iter()
            .all(|d| d.group_key.contains("\"A\""))
    );
    assert!(
        c.groups(T0 + 2 * M)
            .iter()
            .any(|g| g.silenced && g.labels["alertname"] == "B")
    );
    // When the silence ends, the muted alert is notified.
    let ds = flush(&mut c, T0 + H + 30 * S);
    assert!(
        ds.iter()
            .any(|d| alert_ids(d).contains(&("3".to_string(), NotifyStatus::Firing)))
    );
}

#[test]
fn recurring_silence_mutes_only_inside_its_window() {
    let mut c = core("");
    // Fridays 00:00-01:00 UTC; T0 is a Friday midnight.
    let rec = Recurrence {
        days: vec!["fri".into()],
        start: "00:00".into(),
        duration: "1h".into(),
        timezone: "UTC".into(),
    };
    silence(
        &mut c,
        &[("alertname", "A")],
        T0 - 30 * 86_400_000,
        T0 + 30 * 86_400_000,
        Some(rec),
    );
    c.on_alerts("g", &[firing("A", "1", T0)], T0);
    assert!(flush(&mut c, T0 + 30 * S).is_empty(), "inside the window");
    assert!(flush(&mut c, T0 + 30 * S + 5 * M).is_empty());
    let mut t = T0 + 30 * S + 5 * M;
    while flush(&mut c, t).is_empty() {
        t += 5 * M;
        assert!(t < T0 + 2 * H);
    }
    assert!(
        t >= T0 + H,
        "sent at {} min, before the window closed",
        (t - T0) / M
    );
}

#[test]
fn a_firing_source_inhibits_targets_with_equal_labels() {
    let mut c = core(
        r#"
[[inhibit_rules]]
source_matchers = ['severity="critical"']
target_matchers = ['severity="warning"']
equal = ["component"]
"#,
    );
    let crit = alert(
        &[
            ("alertname", "Crit"),
            ("severity", "critical"),
            ("component", "db"),
            ("i", "1"),
        ],
        AlertState::Firing,
        T0,
        None,
    );
    let warn_db = alert(
        &[
            ("alertname", "Warn"),
            ("severity", "warning"),
            ("component", "db"),
            ("i", "2"),
        ],
        AlertState::Firing,
        T0,
        None,
    );
    let warn_api = alert(
        &[
            ("alertname", "Warn"),
            ("severity", "warning"),
            ("component", "api"),
            ("i", "3"),
        ],
        AlertState::Firing,
        T0,
        None,
    );
    c.on_alerts("g", &[crit.clone(), warn_db.clone(), warn_api.clone()], T0);
    let (ds, hist) = c.tick(T0 + 30 * S);
    let warn: Vec<&Dispatch> = ds.iter().filter(|d| d.group_key.contains("Warn")).collect();
    assert_eq!(
        alert_ids(warn[0]),
        [("3".to_string(), NotifyStatus::Firing)]
    );
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].error.as_deref(), Some("inhibited"));
    for d in &ds {
        c.delivered(d, None, T0 + 30 * S);
    }
    // The source resolves: the target is notified at the next flush.
    let (mut crit_r, u) = crit;
    crit_r.state = AlertState::Inactive;
    crit_r.resolved_at_ms = Some(T0 + M);
    c.on_alerts("g", &[(crit_r, u), warn_db, warn_api], T0 + M);
    let ds = flush(&mut c, T0 + 30 * S + 5 * M);
    let warn: Vec<&Dispatch> = ds.iter().filter(|d| d.group_key.contains("Warn")).collect();
    // Sorted by label set: component="api" (3) before "db" (2).
    assert_eq!(
        alert_ids(warn[0]),
        [
            ("3".to_string(), NotifyStatus::Firing),
            ("2".to_string(), NotifyStatus::Firing)
        ]
    );
}

const ESCALATION: &str = r#"
[route]
receiver = "ops"
group_by = ["alertname"]
group_wait = "30s"
escalation = "oncall"
[[escalations]]
name = "oncall"
levels = [{ after = "10m", receiver = "lead" }, { after = "30m", receiver = "manager" }]
"#;

fn escalations(ds: &[Dispatch]) -> Vec<(usize, String)> {
    ds.iter()
        .filter_map(|d| match d.kind {
            DispatchKind::Escalation(l) => Some((l, d.receiver.clone())),
            DispatchKind::Notify => None,
        })
        .collect()
}

#[test]
fn unacknowledged_firing_group_escalates_level_by_level() {
    let mut c = core(ESCALATION);
    c.on_alerts("g", &[firing("A", "1", T0)], T0);
    let mut got = Vec::new();
    for t in (0..=40).map(|m| T0 + m * M) {
        for (l, r) in escalations(&flush(&mut c, t)) {
            got.push((l, r, (t - T0) / M));
        }
    }
    assert_eq!(
        got,
        [(1, "lead".to_string(), 10), (2, "manager".to_string(), 30)]
    );
    assert_eq!(c.groups(T0)[0].escalation_level, 2);
}

#[test]
fn acknowledging_stops_escalation_until_the_group_resolves() {
    let mut c = core(ESCALATION);
    c.on_alerts("g", &[firing("A", "1", T0)], T0);
    flush(&mut c, T0 + 30 * S);
    let id = c.groups(T0)[0].id.clone();
    assert!(c.ack("nope", "me", "x", T0).is_err());
    c.ack(&id, "alice", "looking", T0 + M).unwrap();
    for t in (2..=60).map(|m| T0 + m * M) {
        assert!(
            escalations(&flush(&mut c, t)).is_empty(),
            "escalated at {t}"
        );
    }
    assert_eq!(c.groups(T0)[0].ack.as_ref().unwrap().by, "alice");
    // Resolves, fires again: a fresh group, not acknowledged, escalates.
    c.on_alerts("g", &[], T0 + 61 * M);
    flush(&mut c, T0 + 65 * M);
    assert!(c.groups(T0).is_empty());
    c.on_alerts("g", &[firing("A", "1", T0 + 70 * M)], T0 + 70 * M);
    let mut first = None;
    for t in (70..=90).map(|m| T0 + m * M) {
        if !escalations(&flush(&mut c, t)).is_empty() && first.is_none() {
            first = Some((t - T0) / M);
        }
    }
    assert_eq!(first, Some(80));
}

fn reload(c: &Core) -> Core {
    let json = serde_json::to_string(&c.state).unwrap();
    let mut state: PersistedState = serde_json::from_str(&json).unwrap();
    assert!(state.silences.after_load().is_empty());
    Core::new(c.cfg.clone(), state)
}

#[test]
fn restart_neither_duplicates_a_sent_notification_nor_loses_a_due_one() {
    let mut c = core("");
    c.on_alerts("g", &[firing("A", "1", T0)], T0);
    assert_eq!(flush(&mut c, T0 + 30 * S).len(), 2);
    // B fired but group_wait had not passed when the process stopped.
    c.on_alerts(
        "g",
        &[firing("A", "1", T0), firing("B", "1", T0 + M)],
        T0 + M,
    );
    let mut c = reload(&c);
    // After the restart the evaluator hands over the same alerts.
    let t = T0 + 3 * M;
    let hist = c.on_alerts("g", &[firing("A", "1", T0), firing("B", "1", T0 + M)], t);
    assert!(hist.is_empty(), "no state change recorded again: {hist:?}");
    let ds = flush(&mut c, t);
    assert_eq!(
        ds.len(),
        2,
        "{:?}",
        ds.iter().map(|d| &d.group_key).collect::<Vec<_>>()
    );
    assert!(ds.iter().all(|d| d.group_key == "{}:{alertname=\"B\"}"));
    // A is repeated on schedule (1h after it was sent), not earlier.
    for t2 in (1..)
        .map(|k| t + k * 5 * M)
        .take_while(|&x| x < T0 + 30 * S + H)
    {
        assert!(
            flush(&mut c, t2)
                .iter()
                .all(|d| !d.group_key.contains("\"A\"")),
            "A repeated early at {t2}"
        );
    }
    let ds = flush(&mut c, T0 + 30 * S + H + 5 * M);
    assert!(
        ds.iter().any(|d| d.group_key.contains("\"A\"")),
        "A repeated on schedule"
    );
    // Resolved while stopped: announced after the restart.
    let mut c = reload(&c);
    c.on_alerts(
        "g",
        &[resolved("A", "1", T0, T0 + 2 * H), firing("B", "1", T0 + M)],
        T0 + 2 * H,
    );
    let ds = flush(&mut c, T0 + 2 * H);
    let a: Vec<&Dispatch> = ds
        .iter()
        .filter(|d| d.group_key.contains("\"A\""))
        .collect();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].notification.status, NotifyStatus::Resolved);
}

#[test]
fn state_changes_are_recorded_for_history() {
    let mut c = core("");
    let mut p = firing("A", "1", T0);
    p.0.state = AlertState::Pending;
    p.0.fired_at_ms = None;
    let h = c.on_alerts("g", &[p], T0);
    assert_eq!(
        (h[0].from.as_deref(), h[0].to.as_deref()),
        (Some("inactive"), Some("pending"))
    );
    let h = c.on_alerts("g", &[firing("A", "1", T0 + M)], T0 + M);
    assert_eq!(
        (h[0].from.as_deref(), h[0].to.as_deref(), h[0].time_ms),
        (Some("pending"), Some("firing"), T0 + M)
    );
    assert!(
        c.on_alerts("g", &[firing("A", "1", T0 + M)], T0 + 2 * M)
            .is_empty()
    );
    let h = c.on_alerts("g", &[resolved("A", "1", T0 + M, T0 + 3 * M)], T0 + 3 * M);
    assert_eq!(
        (h[0].kind, h[0].to.as_deref()),
        (EntryKind::State, Some("inactive"))
    );
}

#[test]
fn marks_of_groups_that_do_not_come_back_are_dropped_after_the_grace_period() {
    let mut c = core(ESCALATION);
    c.on_alerts("g", &[firing("A", "1", T0)], T0);
    flush(&mut c, T0 + 30 * S);
    let id = c.groups(T0)[0].id.clone();
    c.ack(&id, "alice", "", T0 + M).unwrap();
    // Restart; the rule is gone, so the group never comes back.
    let mut c = reload(&c);
    assert!(c.state.marks.contains_key(&id));
    flush(&mut c, T0 + 2 * M);
    flush(&mut c, T0 + 2 * M + MARKS_GRACE_MS - 1);
    assert!(
        c.state.marks.contains_key(&id),
        "dropped during the grace period"
    );
    flush(&mut c, T0 + 2 * M + MARKS_GRACE_MS);
    assert!(!c.state.marks.contains_key(&id));
    assert!(c.take_dirty());
}

#[test]
fn silencing_an_already_notified_group_sends_nothing_not_an_empty_resolution() {
    let mut c = core("");
    c.on_alerts("g", &[firing("A", "1", T0)], T0);
    assert_eq!(flush(&mut c, T0 + 30 * S).len(), 2);
    silence(&mut c, &[("alertname", "A")], T0 + M, T0 + 2 * H, None);
    for t in (1..=23).map(|k| T0 + 30 * S + k * 5 * M) {
        c.on_alerts("g", &[firing("A", "1", T0)], t);
        assert!(flush(&mut c, t).is_empty(), "sent at {t}");
    }
    // Once the silence ends the alert is due again (repeat_interval passed).
    let ds = flush(&mut c, T0 + 30 * S + 24 * 5 * M);
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[0].notification.status, NotifyStatus::Firing);
    assert_eq!(ds[0].notification.alerts.len(), 1);
}
