//! `/metrics` and `/federate` on the real server over a real socket: the
//! ingest counters match what `/write` answered, OpenMetrics is served when
//! asked for by `Accept`, federation returns exactly the latest sample of
//! matching series, and both outputs pass `promtool check metrics`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Server, get, post, request};
use tidemark::ingest::remote_write::{self, WriteRequest};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The value of the sample line starting with `series ` (exact labels).
fn value_of(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Runs `promtool check metrics` on `body`; skips (prints why) when
/// promtool is missing, unless `CI` is set. With `allow_no_help`, the one
/// lint finding tolerated is "no help text" (exit 3): federation output
/// carries only `# TYPE` lines, exactly like Prometheus's.
fn promtool_check(body: &str, allow_no_help: bool) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not installed and CI is set"
            );
            eprintln!("skipping promtool check: promtool is not installed");
            return;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let only_no_help = out.status.code() == Some(3)
        && report
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| l.ends_with("no help text"));
    assert!(
        out.status.success() || (allow_no_help && only_no_help),
        "promtool check metrics failed ({}):\n{}{}\n--- input ---\n{body}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

#[test]
fn metrics_count_ingest_exactly_and_pass_promtool() {
    // No monitor round during the test: its series would change the
    // index counts asserted below.
    let s = Server::start(|cfg| cfg.monitor.interval = std::time::Duration::from_secs(3600));
    let t = now_ms();
    // 3 good samples (one line has two fields), 1 unparseable line.
    let body = format!(
        "cpu,host=a usage=1.5,system=2i {t}\ncpu,host=a usage=oops {t}\nmem,host=a used=7 {t}\n"
    );
    let r = post(s.addr(), "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    // One sample two hours older than the series' newest: too old.
    let old = t - 2 * 3600 * 1000;
    let r = post(
        s.addr(),
        "/write?precision=ms",
        &[],
        format!("mem,host=a used=1 {old}\n").as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(
        s.addr(),
        "/write?precision=ms",
        &[],
        format!("mem,host=a used=8 {}\n", t + 1).as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let r = get(s.addr(), "/api/v1/query?query=mem_used");
    assert_eq!(r.status, 200, "{}", r.text());
    // Recovery events, so the monitor's families are in the output too.
    let events = serde_json::json!([
        {"kind": "error_observed", "labels": {"component": "db"}, "fields": {"error_kind": "timeout"}},
        {"kind": "recovery_failed", "labels": {"component": "db"}, "fields": {"duration_seconds": 0.3, "attempt": 2}},
        {"kind": "recovery_succeeded", "labels": {"component": "db"}, "fields": {"duration_seconds": 1.5}},
        {"kind": "circuit_breaker", "labels": {"component": "db"}, "fields": {"state": "half_open"}},
    ]);
    let r = post(
        s.addr(),
        "/api/v1/events",
        &[],
        events.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());

    let r = get(s.addr(), "/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let m = r.text();
    let lp = "protocol=\"line_protocol\"";
    assert_eq!(
        value_of(
            &m,
            &format!("tidemark_ingest_samples_accepted_total{{{lp}}}")
        ),
        Some(4.0),
        "{m}"
    );
    for (reason, n) in [
        ("invalid_line", 1.0),
        ("too_old", 1.0),
        ("unknown_series", 0.0),
        ("invalid_series", 0.0),
        ("series_limit", 0.0),
    ] {
        assert_eq!(
            value_of(
                &m,
                &format!("tidemark_ingest_samples_rejected_total{{{lp},reason=\"{reason}\"}}")
            ),
            Some(n),
            "{reason}: {m}"
        );
    }
    assert_eq!(
        value_of(
            &m,
            &format!("tidemark_ingest_requests_total{{code=\"400\",{lp}}}")
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        value_of(
            &m,
            &format!("tidemark_ingest_requests_total{{code=\"204\",{lp}}}")
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(value_of(&m, "tidemark_index_series"), Some(3.0), "{m}");
    assert_eq!(value_of(&m, "tidemark_head_series"), Some(3.0), "{m}");
    assert_eq!(value_of(&m, "tidemark_head_samples"), Some(4.0), "{m}");
    assert_eq!(
        value_of(&m, "tidemark_ingest_batches_in_flight"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        value_of(
            &m,
            "tidemark_query_duration_seconds_count{endpoint=\"query\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value_of(
            &m,
            "tidemark_http_request_duration_seconds_count{route=\"/write\"}"
        ),
        Some(3.0),
        "{m}"
    );
    assert!(m.contains("\nprocess_resident_memory_bytes "), "{m}");
    assert!(m.contains("# HELP tidemark_wal_bytes "), "{m}");
    let db = "component=\"db\"";
    for (series, v) in [
        (format!("errors_total{{{db},kind=\"timeout\"}}"), 1.0),
        (format!("recoveries_total{{{db},outcome=\"failure\"}}"), 1.0),
        (
            format!("recovery_duration_seconds_bucket{{{db},le=\"0.5\"}}"),
            1.0,
        ),
        (
            format!("recovery_duration_seconds_bucket{{{db},le=\"+Inf\"}}"),
            2.0,
        ),
        (format!("consecutive_failures{{{db}}}"), 0.0),
        (format!("circuit_breaker_state{{{db}}}"), 0.5),
    ] {
        assert_eq!(value_of(&m, &series), Some(v), "{series}: {m}");
    }
    assert!(m.contains("# TYPE tidemark_recovery_duration_quantile_seconds summary\n"));
    promtool_check(&m, false);

    // OpenMetrics when the scraper prefers it (Prometheus's own header).
    let r = request(
        s.addr(),
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om = r.text();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert_eq!(om.matches("# EOF").count(), 1);
    assert!(om.contains("# TYPE tidemark_ingest_samples_accepted counter\n"));
    assert!(
        om.contains("# TYPE errors counter\n")
            && om.contains("\nerrors_total{component=\"db\",kind=\"timeout\"} 1\n"),
        "{om}"
    );
    assert!(
        om.contains("recovery_duration_seconds_bucket{component=\"db\",le=\"0.5\"} 1\n"),
        "{om}"
    );
    assert_eq!(
        value_of(
            &om,
            &format!("tidemark_ingest_samples_accepted_total{{{lp}}}")
        ),
        Some(4.0),
        "{om}"
    );
}

#[test]
fn federate_returns_the_latest_sample_of_matching_series() {
    let s = Server::start(|_| {});
    let t = now_ms() - 60_000;
    let body = format!(
        "up,job=a,path=q\"x value=1 {}\n\
         up,job=a,path=q\"x value=2 {}\n\
         up,job=b value=5 {}\n\
         up,job=c value=9 {}\n\
         other,job=a value=3 {}\n",
        t - 20_000,
        t,
        t - 10_000,
        t - 10 * 60_000,
        t,
    );
    let r = post(s.addr(), "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());

    let r = get(s.addr(), "/federate?match[]=up_value");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // job=c's only sample is older than the 5-minute lookback; `other`
    // does not match.
    assert_eq!(
        r.text(),
        format!(
            "# TYPE up_value untyped\n\
             up_value{{job=\"a\",path=\"q\\\"x\"}} 2 {t}\n\
             up_value{{job=\"b\"}} 5 {}\n",
            t - 10_000
        )
    );
    promtool_check(&r.text(), true);

    // Several selectors: the union, grouped by name.
    let r = get(
        s.addr(),
        "/federate?match[]=%7Bjob%3D%22b%22%7D&match[]=other_value",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        format!(
            "# TYPE other_value untyped\nother_value{{job=\"a\"}} 3 {t}\n\
             # TYPE up_value untyped\nup_value{{job=\"b\"}} 5 {}\n",
            t - 10_000
        )
    );

    let r = get(s.addr(), "/federate?match[]=nothing_here");
    assert_eq!((r.status, r.text()), (200, String::new()));
    let r = get(s.addr(), "/federate");
    assert_eq!(r.status, 400);
    let r = get(s.addr(), "/federate?match[]=rate(x%5B5m%5D)");
    assert_eq!(r.status, 400);
}

#[test]
fn remote_write_rejections_are_counted_by_reason() {
    // Room for two new series only: the third is rejected by the limit.
    let s = Server::start(|c| c.limits.max_series = 2);
    let series = common::rw_series;
    let req = WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "up"), ("job", "api")],
                &[(1000, 1.0), (2000, 0.0)],
            ),
            series(&[("job", "nameless")], &[(1000, 1.0), (2000, 1.0)]),
            series(&[("__name__", "up"), ("job", "web")], &[(1000, 1.0)]),
            series(&[("__name__", "up"), ("job", "db")], &[(1000, 1.0)]),
        ],
        metadata: vec![],
    };
    let r = post(
        s.addr(),
        "/api/v1/write",
        &[("Content-Encoding", "snappy")],
        &remote_write::encode(&req),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let m = get(s.addr(), "/metrics").text();
    let rw = "protocol=\"remote_write\"";
    assert_eq!(
        value_of(
            &m,
            &format!("tidemark_ingest_samples_accepted_total{{{rw}}}")
        ),
        Some(3.0),
        "{m}"
    );
    for (reason, n) in [("invalid_series", 2.0), ("series_limit", 1.0)] {
        assert_eq!(
            value_of(
                &m,
                &format!("tidemark_ingest_samples_rejected_total{{{rw},reason=\"{reason}\"}}")
            ),
            Some(n),
            "{reason}: {m}"
        );
    }
    assert_eq!(
        value_of(
            &m,
            &format!("tidemark_ingest_requests_total{{code=\"400\",{rw}}}")
        ),
        Some(1.0),
        "{m}"
    );
    promtool_check(&m, false);
}

/// The real server started here (not through `common::Server`) so the
/// test reaches its state (`RuleManager::eval_group` at a chosen time)
/// and opens the database with the configuration's storage options
/// (rollup tiers `1m` and `1h`, `fsync = "batch"`).
struct Owned {
    rt: tokio::runtime::Runtime,
    running: Option<tidemark::server::Running>,
    _dir: tempfile::TempDir,
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.shutdown());
        }
    }
}

#[test]
fn own_metrics_cover_fsync_tiers_rule_groups_and_notifications() {
    use std::sync::Arc;
    use std::time::Duration;
    use tidemark::notify::config::{
        ChannelConfig, FileChannelConfig, NotifyConfig, ReceiverConfig, RouteConfig,
    };

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.yml");
    // Group `ok` records a sum; group `bad` fails (two series over its
    // limit of one) every round.
    std::fs::write(
        &rules,
        "groups:\n  - name: ok\n    rules:\n      - record: m_sum\n        expr: sum(m_v)\n  - name: bad\n    limit: 1\n    rules:\n      - record: too_many\n        expr: m_v\n",
    )
    .unwrap();
    let out_file = dir.path().join("notify/out.jsonl");
    let data = dir.path().join("data");
    let mut cfg = tidemark::config::Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.storage.data_dir = data.clone();
    cfg.monitor.interval = Duration::from_secs(3600);
    cfg.rules.files = vec![rules.clone()];
    cfg.rules.default_pack = false;
    cfg.rules.evaluation_interval = Duration::from_secs(3600);
    cfg.notify = NotifyConfig {
        receivers: vec![ReceiverConfig {
            name: "ops".into(),
            channels: vec![ChannelConfig::File(FileChannelConfig {
                path: out_file.clone(),
                max_bytes: 1 << 20,
                keep: 1,
            })],
        }],
        route: RouteConfig {
            receiver: Some("ops".into()),
            ..RouteConfig::default()
        },
        ..NotifyConfig::default()
    };
    assert_eq!(
        cfg.storage_options().fsync,
        tidemark_storage::FsyncMode::Batch
    );
    let db = Arc::new(tidemark_storage::Db::open(&data, cfg.storage_options()).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(tidemark::server::start(db, cfg)).unwrap();
    let s = Owned {
        rt,
        running: Some(running),
        _dir: dir,
    };
    let running = s.running.as_ref().unwrap();
    let (addr, state) = (running.addr, running.state.clone());
    let scrape = || {
        let r = get(addr, "/metrics");
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };

    // Before any write: the fsync histogram is there, empty.
    let m = scrape();
    assert_eq!(
        value_of(&m, "tidemark_wal_fsync_duration_seconds_count"),
        Some(0.0),
        "{m}"
    );
    assert!(!m.contains("tidemark_notifications_total"), "{m}");

    let t = now_ms() / 1000 * 1000;
    let body = format!("m,k=a v=1 {t}\nm,k=b v=2 {t}\n");
    let r = post(addr, "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());

    // Rule groups: wait for the scheduler's start-up rounds (at wall-clock
    // time), then evaluate both groups at a chosen time.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while state
        .rules
        .groups()
        .iter()
        .any(|g| g.round().last_eval_ms.is_none())
    {
        assert!(std::time::Instant::now() < deadline, "no start-up round");
        std::thread::sleep(Duration::from_millis(20));
    }
    let groups = state.rules.groups();
    let ok = groups.iter().position(|g| g.group.name == "ok").unwrap();
    let bad = groups.iter().position(|g| g.group.name == "bad").unwrap();
    let file = groups[ok].file.clone();
    let fails_before = groups[bad].round().failures_total;
    let eval_t = t + 1500;
    state.rules.eval_group(ok, eval_t);
    state.rules.eval_group(bad, eval_t);

    // A test notification through the file channel.
    let r = post(
        addr,
        "/api/v1/notifications/test",
        &[("Content-Type", "application/json")],
        br#"{"receiver":"ops"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"][0]["outcome"], "sent", "{}", r.text());
    assert!(std::fs::metadata(&out_file).unwrap().len() > 0);

    // Compaction writes the head into a raw partition.
    let r = post(addr, "/api/v1/admin/compact", &[], b"");
    assert!(r.status < 300, "{}", r.text());

    let m = scrape();
    let v = |series: &str| value_of(&m, series).unwrap_or_else(|| panic!("{series}: {m}"));

    // WAL fsync: group commit synced at least once, buckets cumulative.
    let count = v("tidemark_wal_fsync_duration_seconds_count");
    assert!(count >= 1.0, "{m}");
    assert_eq!(
        v("tidemark_wal_fsync_duration_seconds_bucket{le=\"+Inf\"}"),
        count
    );
    assert!(v("tidemark_wal_fsync_duration_seconds_sum") > 0.0, "{m}");
    let mut prev = 0.0;
    for le in ["0.0005", "0.001", "0.01", "0.1", "1"] {
        let c = v(&format!(
            "tidemark_wal_fsync_duration_seconds_bucket{{le=\"{le}\"}}"
        ));
        assert!(c >= prev && c <= count, "le={le}: {m}");
        prev = c;
    }

    // Tiers: raw holds the compacted partition; the rollup tiers are listed.
    assert!(v("tidemark_tier_bytes{tier=\"raw\"}") > 0.0, "{m}");
    assert!(v("tidemark_tier_partitions{tier=\"raw\"}") >= 1.0, "{m}");
    for tier in ["1m", "1h"] {
        v(&format!("tidemark_tier_bytes{{tier=\"{tier}\"}}"));
        v(&format!("tidemark_tier_partitions{{tier=\"{tier}\"}}"));
    }

    // Rule groups.
    let ok_l = format!("file=\"{file}\",group=\"ok\"");
    let bad_l = format!("file=\"{file}\",group=\"bad\"");
    assert!(
        v(&format!(
            "tidemark_rule_group_last_duration_seconds{{{ok_l}}}"
        )) > 0.0
    );
    assert_eq!(
        v(&format!(
            "tidemark_rule_group_last_evaluation_timestamp_seconds{{{ok_l}}}"
        )),
        eval_t as f64 / 1000.0
    );
    assert_eq!(
        v(&format!(
            "tidemark_rule_evaluation_failures_total{{{ok_l}}}"
        )),
        0.0
    );
    assert_eq!(
        v(&format!(
            "tidemark_rule_evaluation_failures_total{{{bad_l}}}"
        )),
        (fails_before + 1) as f64,
        "{m}"
    );

    // Notifications: exactly the one test send.
    assert_eq!(
        v("tidemark_notifications_total{channel=\"file\",outcome=\"sent\",receiver=\"ops\"}"),
        1.0
    );
    assert!(!m.contains("outcome=\"failed\""), "{m}");
    assert_eq!(
        v("tidemark_notification_latency_seconds_count{channel=\"file\"}"),
        1.0
    );
    assert_eq!(
        v("tidemark_notification_latency_seconds_bucket{channel=\"file\",le=\"+Inf\"}"),
        1.0
    );
    promtool_check(&m, false);

    // The same families in OpenMetrics.
    let r = request(
        addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
        b"",
    );
    assert_eq!(r.status, 200);
    let om = r.text();
    for want in [
        "# TYPE tidemark_notifications counter\n",
        "\ntidemark_notifications_total{channel=\"file\",outcome=\"sent\",receiver=\"ops\"} 1\n",
        "# TYPE tidemark_wal_fsync_duration_seconds histogram\n",
        "# UNIT tidemark_wal_fsync_duration_seconds seconds\n",
        "# TYPE tidemark_rule_evaluation_failures counter\n",
        "# TYPE tidemark_tier_bytes gauge\n",
    ] {
        assert!(om.contains(want), "{want}: {om}");
    }
    assert!(om.ends_with("# EOF\n"));
}
