//! `POST /api/v1/events` and `GET /api/v1/events` on the real server
//! (loopback, port 0): partial acceptance with errors by index and field,
//! filters by kind, `match[]` and time, pagination through `next`,
//! parameter limits, token classes and the body limit.

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Server, get, post};
use serde_json::{Value, json};

const JSON: (&str, &str) = ("Content-Type", "application/json");
/// Retention long enough for the fixed times below (2026-01 and 1970).
const LONG: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The server with a retention that accepts the tests' fixed times.
fn start() -> Server {
    Server::start(|c| c.events.retention = LONG)
}

/// Percent-encodes a query parameter value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn post_events(s: &Server, body: &Value) -> common::Response {
    post(
        s.addr(),
        "/api/v1/events",
        &[JSON],
        body.to_string().as_bytes(),
    )
}

/// `GET /api/v1/events?<query>`, asserting success; returns `data`.
fn query(s: &Server, q: &str) -> Value {
    let r = get(s.addr(), &format!("/api/v1/events?{q}"));
    assert_eq!(r.status, 200, "{q}: {}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "success");
    body["data"].clone()
}

/// Every event of `q` across pages of `limit`, following `next`.
fn all_pages(s: &Server, q: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..1000 {
        let cursor = before
            .as_deref()
            .map(|c| format!("&before={}", enc(c)))
            .unwrap_or_default();
        let data = query(s, &format!("{q}&limit={limit}{cursor}"));
        let events = data["events"].as_array().unwrap();
        assert!(events.len() <= limit);
        out.extend(events.iter().cloned());
        match &data["next"] {
            Value::Null => return out,
            Value::String(c) => {
                assert_eq!(events.len(), limit, "a page with next is full");
                before = Some(c.clone());
            }
            other => panic!("next is {other}"),
        }
    }
    panic!("pagination did not end");
}

fn ns(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["fields"]["n"].as_i64().unwrap())
        .collect()
}

#[test]
fn mixed_batch_stores_the_good_events_and_names_the_bad() {
    let s = start();
    let batch = json!([
        {"time": "2026-01-02T03:04:05.678Z", "kind": "recovery_failed",
         "labels": {"component": "db"},
         "fields": {"attempt": 3, "reason": "timeout", "duration_seconds": 1.5}},
        {"time": 1_767_323_000, "kind": "bad-kind", "labels": {"component": "db"}},
        {"time": 1_767_323_000, "kind": "deploy", "labels": {"bad name": "x"}},
        {"time": "next tuesday", "kind": "deploy"},
        {"kind": "deploy", "labels": {"component": "api"}},
        {"time": 1_767_323_001.5, "kind": "circuit_breaker", "labels": {"component": "db"},
         "fields": {"state": "open"}},
    ]);
    let r = post_events(&s, &batch);
    assert_eq!(r.status, 400, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("3 of 6 events rejected")
    );
    assert_eq!(body["data"]["accepted"], 3);
    assert_eq!(body["data"]["rejected"], 3);
    let errors = body["data"]["errors"].as_array().unwrap();
    let got: Vec<(u64, String)> = errors
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0, 1);
    assert!(got[0].1.contains("kind \"bad-kind\""), "{}", got[0].1);
    assert_eq!(got[1].0, 2);
    assert!(
        got[1].1.contains("labels: invalid label name \"bad name\""),
        "{}",
        got[1].1
    );
    assert_eq!(got[2].0, 3);
    assert!(
        got[2].1.contains("time: cannot parse \"next tuesday\""),
        "{}",
        got[2].1
    );

    // The three good ones are stored, newest first; the one without a time
    // got the server's "now".
    let data = query(&s, "");
    assert_eq!(data["next"], Value::Null);
    let events = data["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["deploy", "recovery_failed", "circuit_breaker"]);
    let stamped = events[0]["time"].as_str().unwrap();
    assert!(stamped.len() == 24 && stamped.ends_with('Z'), "{stamped}");
    assert_eq!(events[0]["labels"], json!({"component": "api"}));
    assert_eq!(events[0]["fields"], json!({}));
    assert_eq!(
        events[1],
        json!({"time": "2026-01-02T03:04:05.678Z", "kind": "recovery_failed",
               "labels": {"component": "db"}, "fields": {"attempt": 3, "reason": "timeout", "duration_seconds": 1.5}})
    );
    assert_eq!(events[2]["time"], "2026-01-02T03:03:21.500Z");

    // A batch of only good events is a 204; an empty one too.
    let r = post_events(&s, &json!([{"time": 1, "kind": "deploy"}]));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(post_events(&s, &json!([])).status, 204);
    assert_eq!(query(&s, "")["events"].as_array().unwrap().len(), 4);
}

#[test]
fn bodies_that_are_not_arrays_of_events_are_rejected_whole() {
    let s = start();
    for (body, want) in [
        (&b"{\"kind\":\"deploy\"}"[..], "body must be a JSON array"),
        (&b"[{\"kind\": "[..], "invalid JSON body"),
        (&b""[..], "invalid JSON body"),
    ] {
        let r = post(s.addr(), "/api/v1/events", &[JSON], body);
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains(want),
            "{}",
            r.text()
        );
    }
    let r = post(
        s.addr(),
        "/api/v1/events",
        &[JSON, ("Content-Encoding", "br")],
        b"[]",
    );
    assert_eq!(r.status, 415, "{}", r.text());
    assert!(query(&s, "")["events"].as_array().unwrap().is_empty());
}

#[test]
fn gzip_bodies_are_accepted_like_other_ingest() {
    use std::io::Write as _;
    let s = start();
    let events = json!([{"time": 1_767_323_000, "kind": "deploy", "labels": {"component": "api"}}]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(events.to_string().as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let r = post(
        s.addr(),
        "/api/v1/events",
        &[JSON, ("Content-Encoding", "gzip")],
        &body,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let got = query(&s, "");
    assert_eq!(got["events"][0]["kind"], "deploy", "{got}");
    let r = post(
        s.addr(),
        "/api/v1/events",
        &[JSON, ("Content-Encoding", "gzip")],
        b"not gzip",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("invalid gzip body"), "{}", r.text());
}

/// 40 events over 4 kinds and 3 components, pairs sharing a timestamp.
fn load(s: &Server) -> Vec<Value> {
    let kinds = [
        "error_observed",
        "recovery_started",
        "recovery_failed",
        "deploy",
    ];
    let comps = ["db", "cache", "api"];
    let events: Vec<Value> = (0..40)
        .map(|n| {
            // Recovery kinds carry what the monitor derives from.
            json!({"time": 1_767_300_000 + (n / 2) * 60, "kind": kinds[n % 4],
                   "labels": {"component": comps[n % 3]},
                   "fields": {"n": n, "error_kind": "timeout", "duration_seconds": 0.5}})
        })
        .collect();
    // Two requests, the second older than the first: order is by time.
    let r = post_events(s, &Value::Array(events[20..].to_vec()));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = post_events(s, &Value::Array(events[..20].to_vec()));
    assert_eq!(r.status, 204, "{}", r.text());
    events
}

/// The `n`s of `events` that pass `keep`, newest first (later n first among
/// equal times, as both share a time only with their pair partner and were
/// posted in n order within a request).
fn expect(events: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<i64> {
    let mut v: Vec<&Value> = events.iter().filter(|e| keep(e)).collect();
    v.sort_by_key(|e| {
        std::cmp::Reverse((
            e["time"].as_i64().unwrap(),
            e["fields"]["n"].as_i64().unwrap(),
        ))
    });
    v.iter()
        .map(|e| e["fields"]["n"].as_i64().unwrap())
        .collect()
}

#[test]
fn filters_and_pagination() {
    let s = start();
    let events = load(&s);

    // Everything, three per page: each event exactly once, newest first, ties
    // included.
    let got = ns(&all_pages(&s, "", 3));
    assert_eq!(got, expect(&events, |_| true));
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 40);

    let got = ns(&all_pages(&s, "kind=deploy&kind=recovery_failed", 4));
    assert_eq!(
        got,
        expect(&events, |e| e["kind"] == "deploy"
            || e["kind"] == "recovery_failed")
    );

    let m = enc(r#"{component="db"}"#);
    let got = ns(&all_pages(&s, &format!("match[]={m}"), 5));
    assert_eq!(got, expect(&events, |e| e["labels"]["component"] == "db"));

    let m = enc(r#"{component=~"db|api",component!="api"}"#);
    let got = ns(&all_pages(
        &s,
        &format!("match[]={m}&kind=error_observed"),
        2,
    ));
    assert_eq!(
        got,
        expect(&events, |e| e["labels"]["component"] == "db"
            && e["kind"] == "error_observed")
    );

    // start/end are inclusive; RFC 3339 and Unix seconds both work.
    let (start, end) = (1_767_300_000 + 3 * 60, 1_767_300_000 + 7 * 60);
    let in_range = |e: &Value| (start..=end).contains(&e["time"].as_i64().unwrap());
    let got = ns(&all_pages(&s, &format!("start={start}&end={end}"), 100));
    assert_eq!(got, expect(&events, in_range));
    assert_eq!(got.len(), 10);
    let got = ns(&all_pages(
        &s,
        &format!("start={}&end={}", enc("2026-01-01T20:43:00Z"), end),
        100,
    ));
    assert_eq!(got, expect(&events, in_range));

    // Default limit is 100: 150 more events give a full first page.
    let many: Vec<Value> = (0..150)
        .map(|n| json!({"time": 1_000 + n, "kind": "deploy", "fields": {"n": 1000 + n}}))
        .collect();
    assert_eq!(post_events(&s, &Value::Array(many)).status, 204);
    let data = query(&s, "");
    assert_eq!(data["events"].as_array().unwrap().len(), 100);
    assert!(data["next"].is_string());
    assert_eq!(all_pages(&s, "", 1000).len(), 190);
}

#[test]
fn bad_parameters_name_the_parameter() {
    let s = start();
    for (q, want) in [
        ("limit=0", "\"limit\""),
        ("limit=1001", "\"limit\""),
        ("limit=ten", "\"limit\""),
        ("before=abc", "\"before\""),
        ("kind=not-a-kind", "\"kind\""),
        ("start=20&end=10", "\"end\""),
        ("end=tomorrow", "\"end\""),
        ("match[]=%7Bcomponent%3D", "match[]"),
    ] {
        let r = get(s.addr(), &format!("/api/v1/events?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        let body = r.json();
        assert_eq!(body["errorType"], "bad_data");
        assert!(
            body["error"].as_str().unwrap().contains(want),
            "{q}: {}",
            r.text()
        );
    }
    assert_eq!(query(&s, "limit=1000")["events"], json!([]));
}

#[test]
fn tokens_and_body_limit() {
    let s = Server::start(|c| {
        c.events.retention = LONG;
        c.auth.write_token = Some("w".into());
        c.auth.read_token = Some("r".into());
        c.server.max_body_bytes = 4096;
    });
    let body = json!([{"kind": "deploy"}]).to_string();
    let r = post(s.addr(), "/api/v1/events", &[JSON], body.as_bytes());
    assert_eq!(r.status, 401);
    let r = post(
        s.addr(),
        "/api/v1/events",
        &[JSON, ("Authorization", "Bearer r")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 401, "the read token does not write");
    let r = post(
        s.addr(),
        "/api/v1/events",
        &[JSON, ("Authorization", "Bearer w")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(get(s.addr(), "/api/v1/events").status, 401);
    let r = common::request(
        s.addr(),
        "GET",
        "/api/v1/events",
        &[("Authorization", "Bearer r")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["events"].as_array().unwrap().len(), 1);

    let big = json!([{"kind": "deploy", "fields": {"x": "y".repeat(5000)}}]).to_string();
    let r = post(
        s.addr(),
        "/api/v1/events",
        &[JSON, ("Authorization", "Bearer w")],
        big.as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text());
}

#[test]
fn events_live_under_the_data_dir() {
    let s = start();
    assert_eq!(
        post_events(&s, &json!([{"time": 5, "kind": "deploy"}])).status,
        204
    );
    let dir = s.data_dir().join("events");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(!files.is_empty(), "no segment in {}", dir.display());
}

#[test]
fn events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = |rt: &tokio::runtime::Runtime| {
        let mut cfg = tidemark::config::Config::default();
        cfg.server.listen = "127.0.0.1:0".parse().unwrap();
        cfg.storage.data_dir = dir.path().to_path_buf();
        let db = std::sync::Arc::new(
            tidemark_storage::Db::open(dir.path(), tidemark_storage::Options::default()).unwrap(),
        );
        (
            rt.block_on(tidemark::server::start(db.clone(), cfg))
                .unwrap(),
            db,
        )
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (running, db) = start(&rt);
    // One event in a closed day two days ago (sealed at the next open, kept
    // by the 90 d retention), one now.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = json!([
        {"time": now_s - 2 * 86_400, "kind": "deploy", "labels": {"component": "db"}},
        {"kind": "recovery_started", "labels": {"component": "db"}},
    ]);
    let r = post(
        running.addr,
        "/api/v1/events",
        &[JSON],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    rt.block_on(running.shutdown()).unwrap();
    drop(db);

    let (running, db) = start(&rt);
    let r = get(running.addr, "/api/v1/events");
    assert_eq!(r.status, 200);
    let events = r.json()["data"]["events"].as_array().unwrap().clone();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["recovery_started", "deploy"]);
    let sealed = std::fs::read_dir(dir.path().join("events"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "evz")
        })
        .count();
    assert!(sealed >= 1, "the closed day was sealed at open");
    rt.block_on(running.shutdown()).unwrap();
    drop(db);
}

#[test]
fn times_outside_retention_or_far_ahead_are_rejected_alone() {
    let s = Server::start(|_| {}); // default retention: 90 d
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = json!([
        {"time": now - 100 * 86_400, "kind": "deploy"},
        {"time": now + 2 * 86_400, "kind": "deploy"},
        {"time": now - 89 * 86_400, "kind": "deploy"},
    ]);
    let r = post_events(&s, &body);
    assert_eq!(r.status, 400, "{}", r.text());
    let data = r.json()["data"].clone();
    assert_eq!(
        (data["accepted"].as_u64(), data["rejected"].as_u64()),
        (Some(1), Some(2))
    );
    let errors = data["errors"].as_array().unwrap();
    assert_eq!(errors[0]["index"], 0);
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("older than the events retention")
    );
    assert_eq!(errors[1]["index"], 1);
    assert!(
        errors[1]["error"]
            .as_str()
            .unwrap()
            .contains("ahead of the server's clock")
    );
    assert_eq!(query(&s, "")["events"].as_array().unwrap().len(), 1);
}
