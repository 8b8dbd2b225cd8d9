//! `RuleManager` driven round by round with chosen times over a real
//! database: state restored after a restart, output and stale markers,
//! failing rules, reloads.

use super::*;
use crate::rules::{AlertState, parse_rule_file};

use tidemark_storage::{Matcher, Options, WriteBatch};

const RULES: &str = r#"
groups:
  - name: g
    rules:
      - record: doubled
        expr: some_metric * 2
      - alert: High
        expr: some_metric > 5
        for: 3m
        labels:
          severity: page
"#;

fn put(db: &Db, t: i64, v: f64) {
    let ids = db
        .resolve_many(&[tidemark_storage::Labels::metric(
            "some_metric",
            [("job", "a")],
        )])
        .unwrap();
    let mut b = WriteBatch::new();
    b.push(ids[0], t, v);
    assert_eq!(db.append(&b).unwrap().accepted, 1);
}

fn manager(db: &Arc<Db>, dir: &Path) -> RuleManager {
    let groups = parse_rule_file("r.yml", RULES).unwrap();
    RuleManager::new(
        db.clone(),
        groups
            .into_iter()
            .map(|g| ("r.yml".to_string(), g))
            .collect(),
        Duration::from_secs(60),
        dir,
        EvalOptions::default(),
    )
}

fn the_alert(m: &RuleManager) -> crate::rules::Alert {
    let st = m.groups()[0].status();
    let alerts: Vec<_> = st.state.alerts().cloned().collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    alerts[0].clone()
}

#[test]
fn state_survives_a_restart_and_keeps_active_at() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let t0 = crate::server::now_ms() / 1000 * 1000 - 10 * 60_000;
    for i in 0..10 {
        put(&db, t0 + i * 60_000, 10.0);
    }
    let m = manager(&db, dir.path());
    m.eval_group(0, t0);
    m.eval_group(0, t0 + 60_000);
    let before = the_alert(&m);
    assert_eq!(before.state, AlertState::Pending);
    assert_eq!(before.active_at_ms, t0);
    let st = m.groups()[0].status();
    assert!(
        st.round.rules.iter().all(|r| r.health == RuleHealth::Ok),
        "{st:?}"
    );
    let saved = st.state.clone();
    drop(m);

    // Save/load round trip: the new manager starts from the saved state.
    let m = manager(&db, dir.path());
    assert_eq!(m.groups()[0].status().state, saved);
    // Three minutes after the first round it fires: `for` was not reset.
    m.eval_group(0, t0 + 180_000);
    let after = the_alert(&m);
    assert_eq!(after.state, AlertState::Firing);
    assert_eq!(after.active_at_ms, t0);
    assert_eq!(after.fired_at_ms, Some(t0 + 180_000));

    // The output went to the database: the recording rule and ALERTS.
    let read = |name: &str| {
        let ids = db.select(&[Matcher::equal("__name__", name)]);
        assert!(!ids.is_empty(), "no {name} series");
        let mut got: Vec<(i64, f64)> = db
            .read(&ids, i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .flat_map(|(_, s)| s.into_iter().map(|s| (s.ts, s.value)))
            .collect();
        got.sort_by_key(|p| p.0);
        got
    };
    assert_eq!(
        read("doubled"),
        vec![(t0, 20.0), (t0 + 60_000, 20.0), (t0 + 180_000, 20.0)]
    );
    let firing = db.select(&[
        Matcher::equal("__name__", "ALERTS"),
        Matcher::equal("alertstate", "firing"),
        Matcher::equal("severity", "page"),
    ]);
    assert_eq!(firing.len(), 1);
    assert_eq!(
        read("ALERTS_FOR_STATE").last(),
        Some(&(t0 + 180_000, (t0 / 1000) as f64))
    );
}

#[test]
fn vanished_series_get_stale_markers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let t0 = crate::server::now_ms() / 1000 * 1000 - 10 * 60_000;
    put(&db, t0, 10.0);
    let m = manager(&db, dir.path());
    m.eval_group(0, t0);
    assert_eq!(the_alert(&m).state, AlertState::Pending);
    put(&db, t0 + 60_000, 1.0);
    m.eval_group(0, t0 + 60_000);
    assert_eq!(m.groups()[0].status().state.alerts().count(), 0);
    // The ALERTS series ends with a stale marker at the second round.
    let ids = db.select(&[Matcher::equal("__name__", "ALERTS")]);
    assert_eq!(ids.len(), 1);
    let got = db.read(&ids, i64::MIN, i64::MAX).unwrap();
    let last = got[0].1.last().unwrap();
    assert_eq!(last.ts, t0 + 60_000);
    assert!(tidemark_query::is_stale_nan(last.value), "{}", last.value);
    // So a query just after no longer sees the alert.
    let src = DbSource::new(&db, 1000);
    let q = |e: &str| {
        let expr = tidemark_query::parse(e).unwrap();
        match tidemark_query::eval_instant(&src, &expr, t0 + 90_000, &EvalOptions::default())
            .unwrap()
        {
            tidemark_query::Value::Vector(v) => v.len(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(q("ALERTS"), 0);
    assert_eq!(q("doubled"), 1);
}

#[test]
fn a_failing_rule_is_reported_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let t = crate::server::now_ms();
    let labels = [
        tidemark_storage::Labels::metric("m", [("k", "a")]),
        tidemark_storage::Labels::metric("m", [("k", "b")]),
    ];
    let ids = db.resolve_many(&labels).unwrap();
    let mut b = WriteBatch::new();
    for id in ids {
        b.push(id, t, 1.0);
    }
    db.append(&b).unwrap();
    let rules = "groups:\n  - name: g\n    limit: 1\n    rules:\n      - record: too_many\n        expr: m\n      - record: one\n        expr: sum(m)\n";
    let groups = parse_rule_file("r.yml", rules).unwrap();
    let m = RuleManager::new(
        db.clone(),
        groups
            .into_iter()
            .map(|g| ("r.yml".to_string(), g))
            .collect(),
        Duration::from_secs(60),
        dir.path(),
        EvalOptions::default(),
    );
    assert_eq!(m.groups()[0].round().rules[0].health, RuleHealth::Unknown);
    m.eval_group(0, t);
    let st = m.groups()[0].round();
    assert_eq!(st.last_eval_ms, Some(t));
    assert_eq!(st.rules[0].health, RuleHealth::Err);
    let err = st.rules[0].last_error.as_deref().unwrap();
    assert!(err.contains("exceeded limit"), "{err}");
    assert_eq!(st.rules[1].health, RuleHealth::Ok);
    assert_eq!(st.failures_total, 1);
    m.eval_group(0, t + 60_000);
    assert_eq!(m.groups()[0].round().failures_total, 2);
    assert_eq!(db.select(&[Matcher::equal("__name__", "one")]).len(), 1);
    assert!(
        db.select(&[Matcher::equal("__name__", "too_many")])
            .is_empty()
    );
}

#[test]
fn an_unreadable_state_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules").join(STATE_FILE), b"{not json").unwrap();
    let m = manager(&db, dir.path());
    assert_eq!(m.groups()[0].status().state, GroupState::default());
    m.eval_group(0, crate::server::now_ms());
    // The next save replaces it with a valid file.
    assert!(persist::load(m.state_path()).is_ok());
}

#[test]
fn reload_keeps_state_ends_removed_groups_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let file = dir.path().join("r.yml");
    std::fs::write(&file, RULES).unwrap();
    let mut cfg = Config::default();
    cfg.storage.data_dir = dir.path().to_path_buf();
    cfg.rules.files = vec![file.clone()];
    cfg.rules.default_pack = false;
    let m = RuleManager::from_config(db.clone(), &cfg).unwrap();
    let t0 = crate::server::now_ms() / 1000 * 1000 - 10 * 60_000;
    put(&db, t0, 10.0);
    m.eval_group(0, t0);
    let pending = the_alert(&m);
    assert_eq!(pending.state, AlertState::Pending);

    // Same group, one more rule: the alert keeps its clock.
    std::fs::write(
        &file,
        format!("{RULES}      - record: tripled\n        expr: some_metric * 3\n"),
    )
    .unwrap();
    assert_eq!(m.reload(t0 + 1_000).unwrap(), 1);
    assert_eq!(m.groups()[0].group.rules.len(), 3);
    assert_eq!(the_alert(&m).active_at_ms, t0);
    m.eval_group(0, t0 + 180_000);
    assert_eq!(
        the_alert(&m).state,
        AlertState::Firing,
        "`for` kept running"
    );

    // A broken file changes nothing.
    std::fs::write(
        &file,
        "groups:\n  - name: g\n    rules:\n      - record: x\n",
    )
    .unwrap();
    let err = m.reload(t0 + 181_000).unwrap_err().to_string();
    assert!(err.contains("r.yml"), "{err}");
    assert_eq!(m.groups()[0].group.rules.len(), 3);

    // The group removed: its series end with a stale marker.
    std::fs::write(&file, "groups: []\n").unwrap();
    assert_eq!(m.reload(t0 + 200_000).unwrap(), 0);
    let ids = db.select(&[Matcher::equal("__name__", "tripled")]);
    let got = db.read(&ids, i64::MIN, i64::MAX).unwrap();
    let last = got[0].1.last().unwrap();
    assert_eq!(last.ts, t0 + 200_000);
    assert!(tidemark_query::is_stale_nan(last.value));
    // The saved state has no group left.
    assert!(persist::load(m.state_path()).unwrap().is_empty());
}
