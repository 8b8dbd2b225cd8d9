//! Notifications end to end: the real server evaluates a rule file whose
//! alert fires from ingested data (`for: 0s`, 1 s group interval, short
//! notify timers), and a real local HTTP receiver captures the webhook
//! POSTs. Checks the Alertmanager v4 payload exactly, the file channel's
//! JSON lines, silences through the API, acknowledgement, the history
//! endpoint and test notifications. Waits poll with a bound; the timer
//! semantics themselves are tested with an injected clock in
//! `src/notify/group_tests.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::capture::Capture;
use common::{Server, get, post, request};
use serde_json::{Value, json};
use tidemark::notify::config::{
    ChannelConfig, FileChannelConfig, NotifyConfig, ReceiverConfig, RetryConfig, RouteConfig,
    WebhookChannelConfig,
};

const RULES: &str = r#"
groups:
  - name: notify
    interval: 1s
    rules:
      - alert: ValueHigh
        expr: probe_value > 5
        for: 0s
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.job }} is at {{ $value }}"
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn data(s: &Server, path: &str) -> Value {
    let r = get(s.addr(), path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["data"].clone()
}

fn post_json(s: &Server, path: &str, body: &Value) -> (u16, Value) {
    let r = post(
        s.addr(),
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    (r.status, r.json())
}

struct Setup {
    server: Server,
    hook: Capture,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

/// The notify configuration of these tests: receiver `team` with a
/// webhook to `url` and a file channel at `file`; 0 s group_wait, 1 s
/// group_interval, 1 h repeat_interval; fast retries.
fn notify_config(url: String, file: PathBuf, group_by: &[&str]) -> NotifyConfig {
    let group_by = group_by.iter().map(|s| s.to_string()).collect();
    let f = file;
    NotifyConfig {
        external_url: "http://tidemark.test".into(),
        receivers: vec![ReceiverConfig {
            name: "team".into(),
            channels: vec![
                ChannelConfig::Webhook(WebhookChannelConfig {
                    url,
                    body_template: None,
                    headers: [("X-Token".to_string(), "s3cret".to_string())].into(),
                    timeout: Duration::from_secs(5),
                }),
                ChannelConfig::File(FileChannelConfig {
                    path: f,
                    max_bytes: 1 << 20,
                    keep: 2,
                }),
            ],
        }],
        route: RouteConfig {
            receiver: Some("team".into()),
            group_by: Some(group_by),
            group_wait: Some(Duration::ZERO),
            group_interval: Some(Duration::from_secs(1)),
            repeat_interval: Some(Duration::from_secs(3600)),
            ..RouteConfig::default()
        },
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_attempts: 3,
        },
        ..NotifyConfig::default()
    }
}

fn setup(group_by: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let file = dir.path().join("out/alerts.jsonl");
    let hook = Capture::start();
    let notify = notify_config(hook.url("/hook"), file.clone(), group_by);
    let server = Server::start(move |cfg| {
        cfg.rules.files = vec![rules];
        cfg.rules.default_pack = false;
        cfg.notify = notify;
    });
    Setup {
        server,
        hook,
        file,
        _dir: dir,
    }
}

fn ingest(s: &Server, lines: &[(&str, f64)]) {
    let t = now_ms();
    let body: String = lines
        .iter()
        .map(|(job, v)| format!("probe,job={job} value={v} {t}\n"))
        .collect();
    let r = post(s.addr(), "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
}

fn file_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn firing_alert_reaches_webhook_and_file_as_alertmanager_v4_payloads() {
    let s = setup(&["alertname", "job"]);
    ingest(&s.server, &[("a", 10.0), ("b", 1.0)]);
    let got = s.hook.wait_for(1, Duration::from_secs(20));
    let req = &got[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hook"));
    assert!(req.headers.contains(&("x-token".into(), "s3cret".into())));
    assert!(
        req.headers
            .contains(&("content-type".into(), "application/json".into()))
    );
    let mut p = req.json();
    let alert = p["alerts"][0].as_object_mut().unwrap();
    let starts = alert.remove("startsAt").unwrap();
    let fingerprint = alert.remove("fingerprint").unwrap();
    assert!(starts.as_str().unwrap().ends_with('Z'), "{starts}");
    assert_eq!(fingerprint.as_str().unwrap().len(), 16);
    let labels = json!({"alertname": "ValueHigh", "job": "a", "severity": "critical"});
    assert_eq!(
        p,
        json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"ValueHigh\", job=\"a\"}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "team",
            "groupLabels": {"alertname": "ValueHigh", "job": "a"},
            "commonLabels": labels,
            "commonAnnotations": {"summary": "a is at 10"},
            "externalURL": "http://tidemark.test",
            "alerts": [{
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "a is at 10"},
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://tidemark.test/graph?g0.expr=probe_value+%3E+5&g0.tab=1",
            }],
        })
    );
    // The file channel wrote the same payload as one JSON line.
    let lines = eventually("the file channel's line", || {
        let l = file_lines(&s.file);
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(lines[0], req.json());

    // Group visible, and no duplicate while nothing changes (1 s flushes).
    let groups = data(&s.server, "/api/v1/alerts/groups");
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    assert_eq!(groups[0]["receiver"], "team");
    assert_eq!(groups[0]["alerts"][0]["state"], "firing");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(s.hook.requests().len(), 1, "sent again though unchanged");

    // Resolution is sent once.
    ingest(&s.server, &[("a", 1.0)]);
    let got = s.hook.wait_for(2, Duration::from_secs(20));
    let p = got[1].json();
    assert_eq!(p["status"], "resolved");
    assert_eq!(p["alerts"][0]["status"], "resolved");
    assert_ne!(p["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    eventually("the group to go away", || {
        data(&s.server, "/api/v1/alerts/groups")
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    });

    // History: state changes and notification attempts, with statistics.
    let h = eventually("history entries", || {
        let h = data(&s.server, "/api/v1/alerts/history?alertname=ValueHigh");
        (h["entries"].as_array().unwrap().len() >= 6).then_some(h)
    });
    let entries = h["entries"].as_array().unwrap();
    let states: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["kind"] == "state")
        .map(|e| (e["from"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("firing", "inactive"), ("inactive", "firing")]);
    let sent: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["kind"] == "notification")
        .map(|e| {
            (
                e["channel"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert!(sent.iter().all(|(_, o)| *o == "sent"));
    assert_eq!(h["stats"][0]["alertname"], "ValueHigh");
    // Bad parameters are named.
    for (q, want) in [
        ("limit=0", "limit"),
        ("start=yesterday", "start"),
        ("foo=1", "foo"),
    ] {
        let r = get(s.server.addr(), &format!("/api/v1/alerts/history?{q}"));
        assert_eq!(r.status, 400, "{q}");
        assert!(
            r.json()["error"].as_str().unwrap().contains(want),
            "{q}: {}",
            r.text()
        );
    }
    assert_eq!(h["stats"][0]["fired"], 1);
    assert!(
        h["stats"][0]["mean_time_to_resolve_seconds"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn silence_through_the_api_stops_notifications_and_ack_is_recorded() {
    let s = setup(&["alertname", "job"]);
    let ends = now_ms() / 1000 + 3600;
    let (st, r) = post_json(
        &s.server,
        "/api/v1/silences",
        &json!({
            "matchers": [{"name": "job", "value": "a|c", "isRegex": true}],
            "endsAt": ends,
            "createdBy": "test",
            "comment": "maintenance",
        }),
    );
    assert_eq!(st, 200, "{r}");
    let id = r["data"]["silenceID"].as_str().unwrap().to_string();
    // Bad input names the field and stores nothing.
    let (st, r) = post_json(
        &s.server,
        "/api/v1/silences",
        &json!({"matchers": [], "endsAt": ends, "createdBy": "t", "comment": "c"}),
    );
    assert_eq!(st, 400);
    assert!(r["error"].as_str().unwrap().contains("matchers"), "{r}");

    ingest(&s.server, &[("a", 10.0), ("b", 10.0)]);
    let got = s.hook.wait_for(1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(2000));
    let got_later = s.hook.requests();
    assert_eq!(got_later.len(), got.len(), "only job b notified");
    assert!(got.iter().all(|r| r.json()["groupLabels"]["job"] == "b"));

    let silences = data(&s.server, "/api/v1/silences");
    assert_eq!(silences[0]["id"], id);
    assert_eq!(silences[0]["status"]["state"], "active");
    assert_eq!(
        silences[0]["matchers"],
        json!([{"name": "job", "value": "a|c", "isRegex": true, "isEqual": true}])
    );
    let groups = data(&s.server, "/api/v1/alerts/groups");
    let silenced: Vec<bool> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["silenced"].as_bool().unwrap())
        .collect();
    assert_eq!(silenced, [true, false], "{groups}");
    let h = data(&s.server, "/api/v1/alerts/history?alertname=ValueHigh");
    assert!(
        h["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "suppressed" && e["labels"]["job"] == "a"),
        "{h}"
    );

    // Acknowledge the silenced group by its id.
    let gid = groups[0]["id"].as_str().unwrap();
    let path = format!(
        "/api/v1/alerts/groups/{}/ack",
        gid.bytes().map(|b| format!("%{b:02X}")).collect::<String>()
    );
    let (st, r) = post_json(
        &s.server,
        &path,
        &json!({"by": "alice", "comment": "on it"}),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["data"]["id"], gid);
    let groups = data(&s.server, "/api/v1/alerts/groups");
    assert_eq!(groups[0]["acknowledged"]["by"], "alice");
    let (st, _) = post_json(
        &s.server,
        "/api/v1/alerts/groups/nope/ack",
        &json!({"by": "a"}),
    );
    assert_eq!(st, 404);

    // Expiring the silence lets job a through.
    let r = request(
        s.server.addr(),
        "DELETE",
        &format!("/api/v1/silence/{id}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got = eventually("job a after the silence ended", || {
        s.hook
            .requests()
            .into_iter()
            .find(|r| r.json()["groupLabels"]["job"] == "a")
    });
    assert_eq!(got.json()["status"], "firing");
    assert_eq!(
        data(&s.server, "/api/v1/silences")[0]["status"]["state"],
        "expired"
    );
}

#[test]
fn test_notification_reports_each_channel_and_a_failing_one_degrades_health() {
    let s = setup(&["alertname"]);
    let (st, r) = post_json(
        &s.server,
        "/api/v1/notifications/test",
        &json!({"receiver": "team"}),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r["data"],
        json!([
            {"channel": "webhook", "outcome": "sent", "error": null},
            {"channel": "file", "outcome": "sent", "error": null},
        ])
    );
    let got = s.hook.wait_for(1, Duration::from_secs(5));
    assert_eq!(
        got[0].json()["commonLabels"]["alertname"],
        "TidemarkTestNotification"
    );
    s.hook.respond_with(400);
    let (_, r) = post_json(
        &s.server,
        "/api/v1/notifications/test",
        &json!({"receiver": "team"}),
    );
    assert_eq!(r["data"][0]["outcome"], "failed");
    assert!(
        r["data"][0]["error"].as_str().unwrap().contains("HTTP 400"),
        "{r}"
    );
    let (st, r) = post_json(
        &s.server,
        "/api/v1/notifications/test",
        &json!({"receiver": "nobody"}),
    );
    assert_eq!(st, 400);
    assert!(r["error"].as_str().unwrap().contains("nobody"), "{r}");

    // A real alert through a failing webhook (HTTP 503: retryable): three
    // attempts, then degraded; the file channel is not held up.
    s.hook.respond_with(503);
    let before = s.hook.requests().len();
    ingest(&s.server, &[("a", 10.0)]);
    eventually("the file channel's line", || {
        (!file_lines(&s.file).is_empty()).then_some(())
    });
    let health = eventually("webhook channel degraded", || {
        let h = data(&s.server, "/api/v1/health");
        let c = h["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "channel:team/webhook")
            .cloned()?;
        (c["status"] == "degraded").then_some(c)
    });
    let reason = health["reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 503") && reason.contains("after 3 attempts"),
        "{health}"
    );
    assert_eq!(s.hook.requests().len() - before, 3);
    let h = eventually("the failure in history", || {
        let h = data(&s.server, "/api/v1/alerts/history?alertname=ValueHigh");
        h["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["channel"] == "webhook")
            .cloned()
    });
    assert_eq!(h["outcome"], "failed");
    assert!(h["error"].as_str().unwrap().contains("HTTP 503"), "{h}");
}

/// Starts the real server over `dir` (a second call reopens the same data).
fn start_at(
    dir: &Path,
    rules: &Path,
    notify: NotifyConfig,
) -> (tokio::runtime::Runtime, tidemark::server::Running) {
    let mut cfg = tidemark::config::Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.storage.data_dir = dir.to_path_buf();
    cfg.rules.files = vec![rules.to_path_buf()];
    cfg.rules.default_pack = false;
    cfg.notify = notify;
    let db = std::sync::Arc::new(
        tidemark_storage::Db::open(dir, tidemark_storage::Options::default()).unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(tidemark::server::start(db, cfg)).unwrap();
    (rt, running)
}

fn write_value(addr: std::net::SocketAddr, v: f64) {
    let body = format!("probe,job=a value={v} {}\n", now_ms());
    let r = post(addr, "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
}

#[test]
fn a_restart_does_not_page_again_and_still_sends_the_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let data_dir = dir.path().join("data");
    let hook = Capture::start();
    let cfg = || {
        notify_config(
            hook.url("/hook"),
            dir.path().join("a.jsonl"),
            &["alertname"],
        )
    };

    let (rt, running) = start_at(&data_dir, &rules, cfg());
    write_value(running.addr, 10.0);
    hook.wait_for(1, Duration::from_secs(20));
    rt.block_on(running.shutdown()).unwrap();
    drop(rt);
    assert!(data_dir.join("notify/state.json").exists());

    let (rt, running) = start_at(&data_dir, &rules, cfg());
    // The restored alert is handed over again by the first rounds; the
    // notification log says it was already sent.
    eventually("the alert group to be rebuilt", || {
        let r = get(running.addr, "/api/v1/alerts/groups");
        (!r.json()["data"].as_array().unwrap().is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(hook.requests().len(), 1, "paged again after a restart");
    write_value(running.addr, 1.0);
    let got = hook.wait_for(2, Duration::from_secs(20));
    assert_eq!(got[1].json()["status"], "resolved");
    rt.block_on(running.shutdown()).unwrap();
}
