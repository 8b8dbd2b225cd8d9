//! Behaviour of the notifier core, driven with explicit times.

use super::*;
use crate::notify::channel::NotifyStatus;
use crate::notify::config::NotifyConfig;
use crate::notify::history::EntryKind;
use crate::notify::silence::{Recurrence, SilenceInput, SilenceMatcher};
use crate::notify::time::format_rfc3339_ms;

pub(super) const S: i64 = 1000;
pub(super) const M: i64 = 60 * S;
pub(super) const H: i64 = 60 * M;
/// 2026-11-27T00:00:00Z, a Friday.
pub(super) const T0: i64 = 1_795_737_600_000;

pub(super) fn core(extra: &str) -> Core {
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

pub(super) fn alert(
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

pub(super) fn firing(name: &str, i: &str, at: i64) -> (Alert, String) {
    alert(
        &[("alertname", name), ("i", i)],
        AlertState::Firing,
        at,
        None,
    )
}

pub(super) fn resolved(name: &str, i: &str, fired: i64, at: i64) -> (Alert, String) {
    alert(
        &[("alertname", name), ("i", i)],
        AlertState::Inactive,
        fired,
        Some(at),
    )
}

/// Ticks at `now`, reports every dispatch delivered, returns them.
pub(super) fn flush(c: &mut Core, now: i64) -> Vec<Dispatch> {
    let (ds, _) = c.tick(now);
    for d in &ds {
        c.delivered(d, None, now);
    }
    ds
}

pub(super) fn alert_ids(d: &Dispatch) -> Vec<(String, NotifyStatus)> {
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

pub(super) fn silence(
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

pub(super) const ESCALATION: &str = r#"
[route]
receiver = "ops"
group_by = ["alertname"]
group_wait = "30s"
escalation = "oncall"
[[escalations]]
name = "oncall"
levels = [{ after = "10m", receiver = "lead" }, { after = "30m", receiver = "manager" }]
"#;

pub(super) fn escalations(ds: &[Dispatch]) -> Vec<(usize, String)> {
    ds.iter()
        .filter_map(|d| match d.kind {
            DispatchKind::Escalation(l) => Some((l, d.receiver.clone())),
            DispatchKind::Notify => None,
        })
        .collect()
}

pub(super) fn reload(c: &Core) -> Core {
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
