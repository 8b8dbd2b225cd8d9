//! Muting (silences, inhibition) and escalation of the notifier core,
//! driven with explicit times.

use super::tests::*;
use super::*;
use crate::notify::channel::NotifyStatus;
use crate::notify::silence::Recurrence;

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
