//! The recovery monitor inside the real server: recovery events POSTed to
//! `/api/v1/events` become exactly the expected series (counts, buckets,
//! consecutive failures reset by a success, breaker values), counters stay
//! monotone across a restart, `/api/v1/health` names a failing rule and
//! overloaded ingest, `/metrics` shows the monitor's values, and the demo
//! workload drives a default alert to firing.
//!
//! Time is injected: collect rounds and rule evaluations run at chosen
//! times through the server's state (the background round interval is set
//! to an hour, so no round runs by itself). Only the demo
//! test waits on the wall clock, polling with a bound.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{get, post};
use serde_json::{Value, json};
use tidemark::config::Config;
use tidemark::monitor::{BreakerState, RecoveryEvent, Round};
use tidemark::server::metrics::Protocol;
use tidemark::server::{AppState, Running};
use tidemark_storage::{Db, Matcher, Options};

/// The real server over a data directory the test owns (so it can be
/// restarted on the same one).
struct Harness {
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    db: Option<Arc<Db>>,
    /// The test's own round state ("since the last round" figures).
    round: std::cell::RefCell<Round>,
}

impl Harness {
    fn start(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Harness {
        let mut cfg = Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.storage.data_dir = dir.to_path_buf();
        cfg.monitor.interval = Duration::from_secs(3600);
        tweak(&mut cfg);
        let db = Arc::new(Db::open(dir, Options::default()).unwrap());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let running = rt
            .block_on(tidemark::server::start(db.clone(), cfg))
            .unwrap();
        Harness {
            rt,
            running: Some(running),
            db: Some(db),
            round: Default::default(),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    fn state(&self) -> &Arc<AppState> {
        &self.running.as_ref().unwrap().state
    }

    fn db(&self) -> &Db {
        self.db.as_ref().unwrap()
    }

    /// One monitor round (derived series, resources, health) at `t`.
    fn round(&self, t: i64) {
        let addr = self.addr().to_string();
        self.round.borrow_mut().run(self.state(), &addr, t);
    }

    /// Stops the server and closes the database.
    fn stop(mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
        let db = Arc::try_unwrap(self.db.take().unwrap())
            .unwrap_or_else(|_| panic!("database still shared after shutdown"));
        db.close().unwrap();
    }

    /// The value at `t` of the one series `query` selects.
    fn value(&self, query: &str, t: i64) -> f64 {
        let path = format!(
            "/api/v1/query?query={}&time={}",
            urlencode(query),
            t as f64 / 1000.0
        );
        let r = get(self.addr(), &path);
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        let result = &r.json()["data"]["result"];
        let rows = result.as_array().unwrap();
        assert_eq!(rows.len(), 1, "{query}: {result}");
        rows[0]["value"][1].as_str().unwrap().parse().unwrap()
    }

    /// Every stored (t, v) of the one series matching `matchers`.
    fn samples(&self, matchers: &[(&str, &str)]) -> Vec<(i64, f64)> {
        let m: Vec<Matcher> = matchers.iter().map(|(k, v)| Matcher::equal(k, v)).collect();
        let ids = self.db().select(&m);
        assert_eq!(ids.len(), 1, "{matchers:?}");
        let got = self.db().read(&ids, i64::MIN, i64::MAX).unwrap();
        got[0].1.iter().map(|s| (s.ts, s.value)).collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.shutdown());
        }
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn post_events(h: &Harness, events: &Value) {
    let r = post(
        h.addr(),
        "/api/v1/events",
        &[("Content-Type", "application/json")],
        events.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
}

fn ev(t: i64, kind: &str, fields: Value) -> Value {
    json!({"time": t as f64 / 1000.0, "kind": kind,
           "labels": {"component": "payments"}, "fields": fields})
}

#[test]
fn posted_events_become_exact_series_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), |_| {});
    let t = now_ms() / 1000 * 1000;
    let fail = |s: f64| {
        ev(
            t,
            "recovery_failed",
            json!({"duration_seconds": s, "attempt": 3, "reason": "503"}),
        )
    };
    post_events(
        &h,
        &json!([
            ev(t, "error_observed", json!({"error_kind": "timeout"})),
            ev(t, "error_observed", json!({"error_kind": "timeout"})),
            ev(t, "error_observed", json!({"error_kind": "reset"})),
            ev(t, "recovery_started", json!({})),
            fail(0.003),
            fail(0.7),
            ev(
                t,
                "recovery_succeeded",
                json!({"duration_seconds": 0.04, "attempt": 2})
            ),
            fail(7.0),
            fail(90.0),
            ev(t, "circuit_breaker", json!({"state": "open"})),
            ev(t, "circuit_breaker", json!({"state": "half_open"})),
            ev(t, "fallback_used", json!({})),
            ev(t, "fallback_used", json!({})),
            ev(t, "deploy", json!({"version": "1.2"})),
        ]),
    );
    h.round(t);
    let c = "component=\"payments\"";
    let v = |q: &str| h.value(q, t);
    assert_eq!(v(&format!("errors_total{{{c},kind=\"timeout\"}}")), 2.0);
    assert_eq!(v(&format!("errors_total{{{c},kind=\"reset\"}}")), 1.0);
    assert_eq!(v(&format!("recoveries_started_total{{{c}}}")), 1.0);
    assert_eq!(
        v(&format!("recoveries_total{{{c},outcome=\"success\"}}")),
        1.0
    );
    assert_eq!(
        v(&format!("recoveries_total{{{c},outcome=\"failure\"}}")),
        4.0
    );
    assert_eq!(v(&format!("consecutive_failures{{{c}}}")), 2.0);
    assert_eq!(v(&format!("circuit_breaker_state{{{c}}}")), 0.5);
    assert_eq!(v(&format!("fallbacks_total{{{c}}}")), 2.0);
    for (le, n) in [
        ("0.001", 0.0),
        ("0.005", 1.0),
        ("0.025", 1.0),
        ("0.05", 2.0),
        ("0.5", 2.0),
        ("1", 3.0),
        ("5", 3.0),
        ("10", 4.0),
        ("60", 4.0),
        ("+Inf", 5.0),
    ] {
        let q = format!("recovery_duration_seconds_bucket{{{c},le=\"{le}\"}}");
        assert_eq!(v(&q), n, "{q}");
    }
    assert_eq!(v(&format!("recovery_duration_seconds_count{{{c}}}")), 5.0);
    assert!((v(&format!("recovery_duration_seconds_sum{{{c}}}")) - 97.743).abs() < 1e-9);
    // The non-recovery kind was stored, not derived.
    assert!(
        h.db()
            .select(&[Matcher::equal("__name__", "deploy")])
            .is_empty()
    );

    // A success resets consecutive failures; the breaker closes.
    let t2 = t + 15_000;
    post_events(
        &h,
        &json!([
            ev(t2, "recovery_succeeded", json!({"duration_seconds": 0.2})),
            ev(t2, "circuit_breaker", json!({"state": "closed"})),
        ]),
    );
    h.round(t2);
    assert_eq!(h.value(&format!("consecutive_failures{{{c}}}"), t2), 0.0);
    assert_eq!(h.value(&format!("circuit_breaker_state{{{c}}}"), t2), 0.0);
    assert_eq!(
        h.value(&format!("recoveries_total{{{c},outcome=\"success\"}}"), t2),
        2.0
    );
    // The resource collector's series are stored too.
    assert!(h.value("tidemark_disk_used_ratio", t2) <= 1.0);
    assert!(h.value("process_resident_memory_bytes", t2) > 0.0);

    // /metrics: the current values, the exact quantiles, promtool-clean.
    let r = get(h.addr(), "/metrics");
    assert_eq!(r.status, 200);
    let m = r.text();
    for line in [
        "recoveries_total{component=\"payments\",outcome=\"failure\"} 4\n",
        "consecutive_failures{component=\"payments\"} 0\n",
        "circuit_breaker_state{component=\"payments\"} 0\n",
        "recovery_duration_seconds_bucket{component=\"payments\",le=\"1\"} 4\n",
        "recovery_duration_seconds_count{component=\"payments\"} 6\n",
        "errors_total{component=\"payments\",kind=\"timeout\"} 2\n",
        "# TYPE tidemark_recovery_duration_quantile_seconds summary\n",
    ] {
        assert!(m.contains(line), "missing {line:?} in\n{m}");
    }
    // p50 of {0.003, 0.04, 0.2, 0.7, 7, 90} is the third: 0.2 s (3 digits).
    let p50 = m
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "tidemark_recovery_duration_quantile_seconds{component=\"payments\",quantile=\"0.5\"} ",
            )
        })
        .unwrap_or_else(|| panic!("no p50 in\n{m}"));
    let p50: f64 = p50.parse().unwrap();
    assert!((p50 - 0.2).abs() <= 0.2e-3, "{p50}");
}

#[test]
fn a_malformed_recovery_event_is_rejected_alone_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), |_| {});
    let t = now_ms();
    // The failure lacks duration_seconds: rejected by index and field, its
    // neighbour stored and derived.
    let body = json!([
        ev(t, "fallback_used", json!({})),
        ev(t, "recovery_failed", json!({"attempt": 2})),
    ]);
    let r = post(
        h.addr(),
        "/api/v1/events",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let j = r.json();
    assert_eq!(j["data"]["accepted"], 1, "{j}");
    assert_eq!(j["data"]["errors"][0]["index"], 1, "{j}");
    let why = j["data"]["errors"][0]["error"].as_str().unwrap();
    assert!(why.contains("duration_seconds"), "{why}");
    h.round(t);
    assert_eq!(h.value("fallbacks_total{component=\"payments\"}", t), 1.0);
    assert!(
        h.db()
            .select(&[Matcher::equal("__name__", "recoveries_total")])
            .is_empty()
    );
    let r = get(h.addr(), "/api/v1/events?kind=recovery_failed");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["data"]["events"].as_array().unwrap().is_empty());
}

#[test]
fn counters_stay_monotone_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Events at t; the first server's shutdown round writes them (at wall
    // clock time, before t + 15 s); a round at t + 15 s on the second.
    let t = now_ms() / 1000 * 1000;
    let failed = || RecoveryEvent::RecoveryFailed {
        component: "db".into(),
        duration: Duration::from_millis(300),
        attempt: 3,
        reason: "timeout".into(),
    };
    let h = Harness::start(dir.path(), |_| {});
    let m = &h.state().monitor;
    m.record_all(&[failed(), failed()], t).unwrap();
    m.record(
        RecoveryEvent::CircuitBreaker {
            component: "db".into(),
            state: BreakerState::Open,
        },
        t,
    )
    .unwrap();
    // No explicit round: shutting down writes the last values.
    h.stop();

    let h = Harness::start(dir.path(), |_| {});
    h.state().monitor.record(failed(), t + 15_000).unwrap();
    h.round(t + 15_000);
    let failures = h.samples(&[
        ("__name__", "recoveries_total"),
        ("component", "db"),
        ("outcome", "failure"),
    ]);
    let at = |s: &[(i64, f64)], ts: i64| s.iter().find(|p| p.0 == ts).map(|p| p.1);
    // The shutdown round (and the second server's, also at wall-clock
    // time) wrote 2; this round 3.
    assert!(
        failures.len() >= 2 && failures[0].1 == 2.0 && failures[0].0 < t + 15_000,
        "{failures:?}"
    );
    assert_eq!(at(&failures, t + 15_000), Some(3.0));
    assert!(
        failures.windows(2).all(|w| w[1].1 >= w[0].1),
        "{failures:?}"
    );
    let bucket = h.samples(&[
        ("__name__", "recovery_duration_seconds_bucket"),
        ("component", "db"),
        ("le", "0.5"),
    ]);
    assert_eq!(at(&bucket, t + 15_000), Some(3.0));
    // Gauges continue too: the breaker is still open, failures in a row 3.
    assert_eq!(
        h.value("circuit_breaker_state{component=\"db\"}", t + 15_000),
        1.0
    );
    assert_eq!(
        h.value("consecutive_failures{component=\"db\"}", t + 15_000),
        3.0
    );
    // And PromQL sees no reset.
    assert_eq!(
        h.value(
            "resets(recoveries_total{component=\"db\",outcome=\"failure\"}[5m])",
            t + 15_000
        ),
        0.0
    );
}

#[test]
fn health_lists_components_and_names_a_failing_rule_and_overloaded_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    limit: 1\n    rules:\n      - record: too_many\n        expr: m_v\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let h = Harness::start(data.path(), |cfg| {
        cfg.rules.files = vec![rules.clone()];
        cfg.rules.default_pack = false;
        cfg.rules.evaluation_interval = Duration::from_secs(3600);
    });
    // Samples ten minutes ahead: the scheduler's start-up evaluation (at
    // wall-clock time) cannot see them; the one at `t` below does.
    let t = now_ms() / 1000 * 1000 + 600_000;
    let body = format!("m,k=a v=1 {t}\nm,k=b v=1 {t}\n");
    let r = post(h.addr(), "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    let health = |h: &Harness| {
        let r = get(h.addr(), "/api/v1/health");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"].clone()
    };
    // Listed from the start, before any round assessed them.
    let d = health(&h);
    let names: Vec<&str> = d["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in ["ingest", "monitor", "rules", "storage", "wal"] {
        assert!(names.contains(&want), "{want} missing: {d}");
    }
    let rules_status = |d: &Value| {
        d["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "rules")
            .unwrap()
            .clone()
    };
    h.round(t);
    let d = health(&h);
    assert_eq!(rules_status(&d)["status"], "healthy", "{d}");
    let healthy_since = rules_status(&d)["since"].clone();

    h.state().rules.eval_group(0, t);
    h.round(t + 1000);
    let d = health(&h);
    assert_eq!(d["status"], "degraded", "{d}");
    let r = rules_status(&d);
    assert_eq!(r["status"], "degraded", "{d}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("too_many") && reason.contains("limit"),
        "{reason}"
    );
    // `since` moved to the round that saw the failure (t + 1 s, with ms).
    assert_ne!(r["since"], healthy_since, "{r}");
    assert!(r["since"].as_str().unwrap().ends_with(".000Z"), "{r}");

    // Ingest answered 429 (storage overloaded) since the last round:
    // degraded for one round, healthy again when no more come.
    let component = |d: &Value, name: &str| {
        d["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let metrics = &h.state().metrics;
    for _ in 0..2 {
        metrics.ingest_request(Protocol::RemoteWrite, StatusCode::TOO_MANY_REQUESTS);
    }
    h.round(t + 2000);
    let ingest = component(&health(&h), "ingest");
    assert_eq!(ingest["status"], "degraded", "{ingest}");
    assert_eq!(
        ingest["reason"],
        "storage overloaded: 2 ingest requests answered 429/503 since the last check"
    );
    h.round(t + 3000);
    assert_eq!(component(&health(&h), "ingest")["status"], "healthy");
}

#[test]
fn the_demo_opens_a_breaker_and_a_default_alert_fires() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), |cfg| {
        cfg.monitor.demo = true;
        cfg.monitor.demo_seed = 42;
        // 20 simulated seconds per second: the payments outage (15 s in)
        // trips the breaker about a second after start.
        cfg.monitor.demo_speed = 20.0;
        cfg.monitor.interval = Duration::from_millis(100);
        cfg.rules.evaluation_interval = Duration::from_secs(3600);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let open_at = loop {
        let ids = h.db().select(&[
            Matcher::equal("__name__", "circuit_breaker_state"),
            Matcher::equal("component", "payments"),
        ]);
        if let Some((_, samples)) = h.db().read(&ids, i64::MIN, i64::MAX).unwrap().first()
            && let Some(s) = samples.iter().find(|s| s.value == 1.0)
        {
            break s.ts;
        }
        assert!(
            Instant::now() < deadline,
            "the payments breaker never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Derived series and demo throughput exist.
    assert!(
        !h.db()
            .select(&[Matcher::equal("__name__", "demo_requests_total")])
            .is_empty()
    );
    assert!(
        h.value(
            "sum(recoveries_total{component=\"payments\",outcome=\"failure\"})",
            open_at
        ) >= 5.0
    );
    // Evaluate the default recovery group at that moment: the alert fires.
    let rules = &h.state().rules;
    let group = rules
        .groups()
        .iter()
        .position(|g| g.group.name == "tidemark-recovery")
        .unwrap();
    rules.eval_group(group, open_at);
    let r = get(h.addr(), "/api/v1/alerts");
    assert_eq!(r.status, 200);
    let alerts = r.json()["data"]["alerts"].clone();
    let fired = alerts.as_array().unwrap().iter().any(|a| {
        a["labels"]["alertname"] == "CircuitBreakerOpen"
            && a["labels"]["component"] == "payments"
            && a["state"] == "firing"
    });
    assert!(fired, "{alerts}");
}

#[test]
fn tidemark_own_metrics_are_stored_each_round() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::start(dir.path(), |_| {});
    let t = now_ms();
    let body = format!("m,host=a v=1 {t}\nm,host=b v=2 {t}\n");
    let r = post(h.addr(), "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    h.round(t);
    let addr = h.addr().to_string();
    let q = format!("sum(tidemark_ingest_samples_accepted_total{{instance=\"{addr}\"}})");
    assert_eq!(h.value(&q, t), 2.0);
    // Every producer counts in the engine's own counter.
    let q = format!("tidemark_storage_samples_appended_total{{instance=\"{addr}\"}} >= 2");
    assert!(h.value(&q, t) >= 2.0);
    // Families built per scrape (rule groups, tiers, fsync) are stored too.
    let q = format!("count(tidemark_tier_bytes{{instance=\"{addr}\"}})");
    assert!(h.value(&q, t) >= 1.0);
    // Histograms keep their exposition names.
    let q =
        format!("count(tidemark_http_request_duration_seconds_count{{instance=\"{addr}\"}}) > 0");
    assert!(h.value(&q, t) > 0.0);
}
