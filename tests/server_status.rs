//! `GET /api/v1/status/tsdb` on the real server: Prometheus's cardinality
//! lists with exact counts, and Tidemark's raw tier figures after a flush
//! and compaction equal to what was ingested.

mod common;

use common::{Server, get, post};

#[test]
fn cardinality_and_tier_figures_are_exact() {
    let s = Server::start(|_| {});
    // 3 hosts × 2 services of http_requests_total (6 series), 3 of cpu (3).
    let mut body = String::new();
    for i in 0..20i64 {
        let t = 1_000 + i * 10;
        for h in 0..3 {
            for svc in ["api", "web"] {
                body.push_str(&format!(
                    "http,host=h{h},service={svc} requests_total={i} {t}\n"
                ));
            }
            body.push_str(&format!("node,host=h{h} cpu_percent={i}.5 {t}\n"));
        }
    }
    let r = post(s.addr(), "/write?precision=s", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    let r = post(s.addr(), "/api/v1/admin/compact", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());

    let r = get(s.addr(), "/api/v1/status/tsdb?limit=2");
    assert_eq!(r.status, 200, "{}", r.text());
    let d = &r.json()["data"];
    assert_eq!(d["headStats"]["numSeries"], 9);
    assert_eq!(
        d["seriesCountByMetricName"],
        serde_json::json!([
            {"name": "http_requests_total", "value": 6},
            {"name": "node_cpu_percent", "value": 3},
        ])
    );
    // host has 3 values, __name__ 2, service 2 (ties sorted by name).
    assert_eq!(
        d["labelValueCountByLabelName"],
        serde_json::json!([{"name": "host", "value": 3}, {"name": "__name__", "value": 2}])
    );
    // host=h0 is on 3 series (2 http + 1 cpu), like h1 and h2; service=api on 3.
    let pairs = d["seriesCountByLabelValuePair"].as_array().unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(
        pairs[0],
        serde_json::json!({"name": "__name__=http_requests_total", "value": 6})
    );
    assert_eq!(pairs[1]["value"], 3);
    assert_eq!(d["headStats"]["numLabelPairs"], 2 + 3 + 2);

    let raw = &d["tiers"][0];
    assert_eq!(raw["name"], "raw");
    assert_eq!(raw["samples"], 9 * 20);
    assert!(raw["bytes"].as_u64().unwrap() > 0, "{raw}");
    assert_eq!(raw["corruptChunks"], 0);
    // The test server runs without rollup tiers: raw is the only one.
    assert_eq!(d["tiers"].as_array().unwrap().len(), 1, "{d}");

    let r = get(s.addr(), "/api/v1/status/tsdb?limit=0");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("limit"), "{}", r.text());
}
