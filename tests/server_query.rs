//! The Prometheus HTTP API on the real server: data goes in through line
//! protocol, answers come back in Prometheus's JSON shapes, and bad
//! requests get Prometheus's error types.

mod common;

use common::{Server, get, post};

/// 10 minutes of two counters and a gauge at 10 s, from t = 1000 s.
fn load(s: &Server) {
    let mut body = String::new();
    for i in 0..60i64 {
        let t = 1_000 + i * 10;
        body.push_str(&format!("http,job=api requests_total={} {t}\n", i * 10));
        body.push_str(&format!("http,job=web requests_total={} {t}\n", i * 20));
        body.push_str(&format!("node,host=a cpu_percent={}.5 {t}\n", i % 7));
    }
    let r = post(s.addr(), "/write?precision=s", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
}

fn q(s: &Server, path: &str) -> serde_json::Value {
    let r = get(s.addr(), path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let j = r.json();
    assert_eq!(j["status"], "success");
    j["data"].clone()
}

#[test]
fn grafana_health_check_and_instant_queries() {
    let s = Server::start(|_| {});
    load(&s);
    // Grafana's data source test.
    let d = q(&s, "/api/v1/query?query=1%2B1&time=1500");
    assert_eq!(d["resultType"], "scalar");
    assert_eq!(d["result"], serde_json::json!([1500, "2"]));

    // rate over a perfectly linear counter: 1/s and 2/s.
    let d = q(
        &s,
        "/api/v1/query?query=rate(http_requests_total%5B1m%5D)&time=1500",
    );
    assert_eq!(d["resultType"], "vector");
    let result = d["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"], serde_json::json!({"job": "api"}));
    assert_eq!(result[0]["value"], serde_json::json!([1500, "1"]));
    assert_eq!(result[1]["value"][1], "2");

    // POST form-encoded, like Grafana's default.
    let r = post(
        s.addr(),
        "/api/v1/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"query=sum(http_requests_total)&time=1590",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["data"]["result"][0]["value"],
        serde_json::json!([1590, "1770"])
    );

    // Lookback: 5 minutes after the last sample the series is gone.
    let d = q(&s, "/api/v1/query?query=node_cpu_percent&time=1891");
    assert_eq!(d["result"].as_array().unwrap().len(), 0);
}

#[test]
fn range_query_series_labels_metadata() {
    let s = Server::start(|_| {});
    load(&s);
    let d = q(
        &s,
        "/api/v1/query_range?query=http_requests_total%7Bjob%3D%22web%22%7D&start=1000&end=1060&step=30",
    );
    assert_eq!(d["resultType"], "matrix");
    assert_eq!(
        d["result"][0]["values"],
        serde_json::json!([[1000, "0"], [1030, "60"], [1060, "120"]])
    );
    assert_eq!(d["result"][0]["metric"]["__name__"], "http_requests_total");

    let d = q(&s, "/api/v1/series?match%5B%5D=http_requests_total");
    assert_eq!(d.as_array().unwrap().len(), 2);
    let d = q(
        &s,
        "/api/v1/series?match%5B%5D=http_requests_total&start=0&end=500",
    );
    assert_eq!(d.as_array().unwrap().len(), 0, "no samples before t=1000 s");
    let d = q(&s, "/api/v1/labels");
    assert_eq!(d, serde_json::json!(["__name__", "host", "job"]));
    let d = q(&s, "/api/v1/label/job/values");
    assert_eq!(d, serde_json::json!(["api", "web"]));
    let d = q(
        &s,
        "/api/v1/label/__name__/values?match%5B%5D=%7Bhost%3D%22a%22%7D",
    );
    assert_eq!(d, serde_json::json!(["node_cpu_percent"]));
    let d = q(&s, "/api/v1/status/buildinfo");
    assert!(d["version"].as_str().unwrap().starts_with("2."));
    assert_eq!(q(&s, "/api/v1/metadata"), serde_json::json!({}));
}

#[test]
fn errors_follow_prometheus() {
    let s = Server::start(|c| {
        c.limits.query_max_series = 1;
    });
    load(&s);
    let r = get(s.addr(), "/api/v1/query?query=sum(");
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(j["errorType"], "bad_data");
    assert!(j["error"].as_str().unwrap().contains("1:5"), "{j}");

    let r = get(
        s.addr(),
        "/api/v1/query_range?query=up&start=0&end=1000000&step=1",
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("11000 points"), "{}", r.text());

    let r = get(
        s.addr(),
        "/api/v1/query_range?query=up&start=10&end=0&step=1",
    );
    assert_eq!(r.status, 400);

    let r = get(
        s.addr(),
        "/api/v1/query?query=http_requests_total&time=1500",
    );
    assert_eq!(
        r.status,
        422,
        "two series over a limit of one: {}",
        r.text()
    );
    assert_eq!(r.json()["errorType"], "execution");

    let r = get(s.addr(), "/api/v1/query?time=1500");
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(j["error"], "missing parameter \"query\"");
}
