//! Remote-write forwarding end to end: a source Tidemark forwards to a
//! second, real Tidemark (its `/api/v1/write`) on loopback.
//!
//! Checks: what arrives equals what was ingested (labels and bit-exact
//! values); an outage in the middle loses nothing; a restarted source
//! resumes from its acked position (it neither loses nor resends what was
//! delivered before); a 400 is dropped and counted, not retried; `match`
//! filters series; rule output is forwarded; a full queue drops its oldest
//! segment and counts it. `crash` kills the real binary mid-stream,
//! `protocol` checks the wire (headers, auth, 503/429, Retry-After) and
//! the metrics, `measure` holds the (ignored) figures. Backoffs are
//! configured in milliseconds, so retries take no real time; the tests
//! poll for arrival with a deadline.

mod common;
// Submodules of this test crate live in tests/forward/.
#[path = "forward/crash.rs"]
mod crash;
#[path = "forward/measure.rs"]
mod measure;
#[path = "forward/protocol.rs"]
mod protocol;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, get, post};
use tidemark::config::Config;
use tidemark::forward::ForwardConfig;
use tidemark_storage::{Db, Matcher};

/// A Tidemark server over a data directory the test owns, so it can be
/// stopped and started again on the same data (a source's queue), or on
/// the same port (a target coming back).
struct Node {
    rt: tokio::runtime::Runtime,
    running: Option<tidemark::server::Running>,
    db: Arc<Db>,
}

impl Node {
    fn start(dir: &Path, listen: SocketAddr, tweak: impl FnOnce(&mut Config)) -> Node {
        let mut cfg = Config::default();
        cfg.server.listen = listen;
        cfg.storage.data_dir = dir.to_path_buf();
        cfg.rules.default_pack = false;
        tweak(&mut cfg);
        let db = Arc::new(Db::open(dir, cfg.storage_options()).unwrap());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let running = rt
            .block_on(tidemark::server::start(db.clone(), cfg))
            .unwrap();
        Node {
            rt,
            running: Some(running),
            db,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    /// Shuts the server down; dropping the runtime and the last handle
    /// then closes the database, so the directory can be opened again.
    fn stop(mut self) {
        let r = self.running.take().unwrap();
        self.rt.block_on(r.shutdown()).unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }
}

fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A forward target with test-sized timings.
fn target(name: &str, addr: SocketAddr) -> ForwardConfig {
    ForwardConfig {
        name: name.into(),
        url: format!("http://{addr}/api/v1/write"),
        max_samples_per_send: 500,
        batch_send_deadline: Duration::from_millis(20),
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(30),
        ..ForwardConfig::default()
    }
}

/// A port nothing listens on (connections are refused).
fn refused_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn ingest_lp(addr: SocketAddr, body: &str) {
    let r = post(addr, "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
}

/// `name{labels}` → value of one series in a `/metrics` exposition.
fn metric(addr: SocketAddr, series: &str) -> f64 {
    let text = get(addr, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every series of metric `name` as (sorted labels, (ts, value bits)).
type Dump = Vec<(Vec<(String, String)>, Vec<(i64, u64)>)>;

fn dump(db: &Db, name: &str) -> Dump {
    let ids = db.select(&[Matcher::equal("__name__", name)]);
    let mut out: Dump = db
        .read(&ids, i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|(id, samples)| {
            let labels = db
                .labels(id)
                .unwrap()
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            (
                labels,
                samples.iter().map(|s| (s.ts, s.value.to_bits())).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

fn sample_count(db: &Db, name: &str) -> usize {
    dump(db, name).iter().map(|(_, s)| s.len()).sum()
}

/// `n` line-protocol lines of `m,host=h<i%4> v=<value>` at ts0 + i.
fn lines(m: &str, ts0: i64, n: i64) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{m},host=h{} value={} {}\n",
                i % 4,
                (i as f64) * 1.25 - 3.0,
                ts0 + i
            )
        })
        .collect()
}

const T0: i64 = 1_700_000_000_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn ingested_data_arrives_exactly_with_auth() {
    let rx = Server::start(|c| {
        c.rules.default_pack = false;
        c.auth.write_token = Some("s3cret".into());
    });
    let t0 = now_ms() - 60_000;
    let src = Server::start(|c| {
        c.rules.default_pack = false;
        c.forward = vec![ForwardConfig {
            bearer_token: Some("s3cret".into()),
            ..target("rx", rx.addr())
        }];
    });
    ingest_lp(src.addr(), &lines("lp_metric", t0, 2000));
    // Remote write into the source too: odd label values, NaN, ±Inf, -0.
    let special = [
        (t0, f64::NAN),
        (t0 + 1, f64::INFINITY),
        (t0 + 2, f64::NEG_INFINITY),
        (t0 + 3, -0.0),
        (t0 + 4, 1e-300),
    ];
    let req = tidemark::ingest::remote_write::WriteRequest {
        timeseries: vec![common::rw_series(
            &[
                ("__name__", "rw_metric"),
                ("path", "/a b\"c\\d"),
                ("zone", "é✓"),
            ],
            &special,
        )],
        metadata: vec![],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(&req))
        .unwrap();
    let r = post(src.addr(), "/api/v1/write", &[], &body);
    assert_eq!(r.status, 204, "{}", r.text());

    wait_until("all samples at the receiver", || {
        sample_count(&rx.db, "lp_metric_value") == 2000 && sample_count(&rx.db, "rw_metric") == 5
    });
    assert_eq!(
        dump(&rx.db, "lp_metric_value"),
        dump(&src.db, "lp_metric_value")
    );
    assert_eq!(dump(&rx.db, "rw_metric"), dump(&src.db, "rw_metric"));
    let rw = dump(&rx.db, "rw_metric");
    assert_eq!(rw[0].0[1], ("path".into(), "/a b\"c\\d".into()));
    assert!(f64::from_bits(rw[0].1[0].1).is_nan());
    let sent = r#"tidemark_forward_samples_sent_total{target="rx"}"#;
    wait_until("sent counter", || metric(src.addr(), sent) == 2005.0);
    assert_eq!(
        metric(
            src.addr(),
            r#"tidemark_forward_samples_failed_total{target="rx"}"#
        ),
        0.0
    );
    // The queue is empty once everything is acknowledged.
    wait_until("empty queue", || {
        metric(src.addr(), r#"tidemark_forward_queue_samples{target="rx"}"#) == 0.0
    });
    let fwd = forwarder_health(src.addr());
    assert_eq!(fwd["status"], "healthy", "{fwd}");
}

#[test]
fn outage_in_the_middle_loses_nothing() {
    let rx_dir = tempfile::tempdir().unwrap();
    let rx = Node::start(rx_dir.path(), loopback0(), |_| {});
    let port = rx.addr();
    let t0 = now_ms() - 600_000;
    let src = Server::start(|c| {
        c.rules.default_pack = false;
        c.forward = vec![target("rx", port)];
    });
    ingest_lp(src.addr(), &lines("m", t0, 1000));
    let sent = r#"tidemark_forward_samples_sent_total{target="rx"}"#;
    wait_until("first part delivered", || {
        metric(src.addr(), sent) == 1000.0
    });
    assert_eq!(sample_count(&rx.db, "m_value"), 1000);
    rx.stop();

    // The target is down: the next samples queue up and are retried.
    ingest_lp(src.addr(), &lines("m", t0 + 1000, 1500));
    let retries = r#"tidemark_forward_retries_total{target="rx"}"#;
    wait_until("failed attempts", || metric(src.addr(), retries) >= 3.0);
    let fwd = forwarder_health(src.addr());
    assert_eq!(fwd["status"], "degraded", "{fwd}");
    assert!(
        fwd["reason"].as_str().unwrap().contains("target rx"),
        "{fwd}"
    );
    assert_eq!(
        metric(src.addr(), r#"tidemark_forward_queue_samples{target="rx"}"#),
        1500.0
    );
    assert!(
        metric(
            src.addr(),
            r#"tidemark_forward_oldest_unsent_age_seconds{target="rx"}"#
        ) > 0.0
    );

    // The target comes back on the same port, over the same data.
    let rx = Node::start(rx_dir.path(), port, |_| {});
    wait_until("second part delivered", || {
        metric(src.addr(), sent) == 2500.0
    });
    assert_eq!(sample_count(&rx.db, "m_value"), 2500);
    assert_eq!(dump(&rx.db, "m_value"), dump(&src.db, "m_value"));
    // The returning target received each queued sample once: refused
    // connections never reached it (at-least-once allows more, not less).
    let accepted = metric(
        rx.addr(),
        r#"tidemark_ingest_samples_accepted_total{protocol="remote_write"}"#,
    );
    assert!((1500.0..=2000.0).contains(&accepted), "{accepted}");
    assert_eq!(forwarder_health(src.addr())["status"], "healthy");
    assert_eq!(
        metric(src.addr(), r#"tidemark_forward_queue_samples{target="rx"}"#),
        0.0
    );
}

/// The `forwarder` component of `/api/v1/health`.
fn forwarder_health(addr: SocketAddr) -> serde_json::Value {
    let health = get(addr, "/api/v1/health").json();
    health["data"]["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == "forwarder")
        .cloned()
        .expect("a forwarder component")
}

#[test]
fn restarted_sender_resumes_from_the_acked_position() {
    let src_dir = tempfile::tempdir().unwrap();
    let rx1 = Server::start(|c| c.rules.default_pack = false);
    let port = rx1.addr();
    let t0 = now_ms() - 600_000;
    let src = Node::start(src_dir.path(), loopback0(), |c| {
        // Only the test's series: the monitor's shutdown round is
        // forwarded too and would move the sent counter.
        c.forward = vec![ForwardConfig {
            matchers: vec![r#"{__name__="r_value"}"#.into()],
            ..target("rx", port)
        }];
    });
    ingest_lp(src.addr(), &lines("r", t0, 800));
    let sent = r#"tidemark_forward_samples_sent_total{target="rx"}"#;
    wait_until("delivered before the outage", || {
        metric(src.addr(), sent) == 800.0
    });
    drop(rx1);
    ingest_lp(src.addr(), &lines("r", t0 + 800, 700));
    wait_until("queued while the target is down", || {
        metric(src.addr(), r#"tidemark_forward_retries_total{target="rx"}"#) >= 1.0
    });
    // Stop the source with a non-empty queue; the target comes back on
    // the same port with an empty store; start the source again.
    src.stop();
    let queue_dir = src_dir.path().join("forward").join("rx");
    assert!(
        std::fs::read_dir(&queue_dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".seg"))
    );
    let rx2 = Server::start(|c| {
        c.rules.default_pack = false;
        c.server.listen = port;
    });
    let src = Node::start(src_dir.path(), loopback0(), |c| {
        // Only the test's series: the monitor's shutdown round is
        // forwarded too and would move the sent counter.
        c.forward = vec![ForwardConfig {
            matchers: vec![r#"{__name__="r_value"}"#.into()],
            ..target("rx", port)
        }];
    });
    wait_until("queued samples delivered after restart", || {
        sample_count(&rx2.db, "r_value") == 700
    });
    // Exactly the unacknowledged part: nothing delivered before the
    // restart is sent again, nothing queued is lost.
    let got = dump(&rx2.db, "r_value");
    let ts: Vec<i64> = {
        let mut v: Vec<i64> = got
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.0))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ts, (t0 + 800..t0 + 1500).collect::<Vec<_>>());
    wait_until("sent counter after restart", || {
        metric(src.addr(), sent) == 700.0
    });
    assert_eq!(
        metric(
            rx2.addr(),
            r#"tidemark_ingest_samples_accepted_total{protocol="remote_write"}"#
        ),
        700.0
    );
}

#[test]
fn a_400_is_dropped_and_counted_not_retried() {
    // The receiver refuses samples more than 1 minute older than the
    // series' newest (partial write: 400); the source accepts them (1 h).
    let rx_dir = tempfile::tempdir().unwrap();
    let rx = Node::start(rx_dir.path(), loopback0(), |c| {
        c.storage.ooo_window = Duration::from_secs(60);
    });
    let src = Server::start(|c| {
        c.rules.default_pack = false;
        c.forward = vec![target("rx", rx.addr())];
    });
    let now = now_ms();
    let sent = r#"tidemark_forward_samples_sent_total{target="rx"}"#;
    let failed = r#"tidemark_forward_samples_failed_total{target="rx"}"#;
    ingest_lp(src.addr(), &format!("old,k=v value=1 {now}\n"));
    wait_until("first sample delivered", || metric(src.addr(), sent) == 1.0);
    ingest_lp(
        src.addr(),
        &format!("old,k=v value=2 {}\n", now - 1_800_000),
    );
    wait_until("rejected sample counted", || {
        metric(src.addr(), failed) == 1.0
    });
    // The queue moved on: later samples are delivered.
    ingest_lp(src.addr(), &format!("old,k=v value=3 {}\n", now + 1000));
    wait_until("later sample delivered", || metric(src.addr(), sent) == 2.0);
    assert_eq!(
        metric(src.addr(), r#"tidemark_forward_retries_total{target="rx"}"#),
        0.0
    );
    let got: Vec<(i64, u64)> = dump(&rx.db, "old_value").remove(0).1;
    assert_eq!(
        got,
        vec![(now, 1f64.to_bits()), (now + 1000, 3f64.to_bits())]
    );
    let rejected = metric(
        rx.addr(),
        r#"tidemark_ingest_requests_total{code="400",protocol="remote_write"}"#,
    );
    assert_eq!(rejected, 1.0, "the 400 was not retried");
}

#[test]
fn match_selectors_filter_series() {
    let rx = Server::start(|c| c.rules.default_pack = false);
    let src = Server::start(|c| {
        c.rules.default_pack = false;
        c.forward = vec![ForwardConfig {
            matchers: vec![r#"{job="api"}"#.into(), "keep_me_value".into()],
            ..target("rx", rx.addr())
        }];
    });
    let t = now_ms() - 1000;
    // Filtered-out series first: once the later ones arrived, these would
    // have too (the queue is FIFO).
    ingest_lp(
        src.addr(),
        &format!("req,job=db value=1 {t}\nother,job=web value=1 {t}\n"),
    );
    ingest_lp(
        src.addr(),
        &format!("req,job=api value=2 {t}\nkeep_me value=3 {t}\n"),
    );
    wait_until("matching series", || {
        sample_count(&rx.db, "req_value") == 1 && sample_count(&rx.db, "keep_me_value") == 1
    });
    assert_eq!(rx.samples("req_value", "job", "api"), vec![(t, 2.0)]);
    assert_eq!(sample_count(&rx.db, "other_value"), 0);
    assert_eq!(
        metric(
            src.addr(),
            r#"tidemark_forward_samples_sent_total{target="rx"}"#
        ),
        2.0
    );
}

#[test]
fn unreachable_target_keeps_everything_queued() {
    let dead = refused_port();
    let src = Server::start(|c| {
        c.rules.default_pack = false;
        c.forward = vec![target("dead", dead)];
    });
    ingest_lp(src.addr(), &lines("q", T0, 300));
    wait_until("retries", || {
        metric(
            src.addr(),
            r#"tidemark_forward_retries_total{target="dead"}"#,
        ) >= 2.0
    });
    assert_eq!(
        metric(
            src.addr(),
            r#"tidemark_forward_queue_samples{target="dead"}"#
        ),
        300.0
    );
    assert!(metric(src.addr(), r#"tidemark_forward_queue_bytes{target="dead"}"#) > 300.0 * 24.0);
    assert_eq!(
        metric(
            src.addr(),
            r#"tidemark_forward_samples_sent_total{target="dead"}"#
        ),
        0.0
    );
}

#[test]
fn rule_output_is_forwarded() {
    let rx = Server::start(|c| c.rules.default_pack = false);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("fwd.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: fwd\n    interval: 1h\n    rules:\n      - record: fwd_rule:sum\n        expr: sum(src_value)\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let src = Node::start(&data, loopback0(), |c| {
        c.rules.files = vec![rules.clone()];
        c.forward = vec![target("rx", rx.addr())];
    });
    let t = now_ms() - 5_000;
    ingest_lp(
        src.addr(),
        &format!("src,k=a value=2 {t}\nsrc,k=b value=5 {t}\n"),
    );
    let state = src.running.as_ref().unwrap().state.clone();
    state.rules.eval_group(0, t + 1000);
    wait_until("the recorded sample at the receiver", || {
        dump(&rx.db, "fwd_rule:sum")
            .iter()
            .any(|(_, s)| s.contains(&(t + 1000, 7f64.to_bits())))
    });
    wait_until("every recorded sample forwarded", || {
        dump(&rx.db, "fwd_rule:sum") == dump(&src.db, "fwd_rule:sum")
    });
    assert_eq!(
        dump(&rx.db, "fwd_rule:sum")[0].0,
        vec![("__name__".to_string(), "fwd_rule:sum".to_string())]
    );
}

#[test]
fn full_queue_drops_the_oldest_and_counts_it() {
    let dead = refused_port();
    let src = Server::start(|c| {
        c.rules.default_pack = false;
        c.forward = vec![ForwardConfig {
            segment_bytes: 4096,
            max_queue_bytes: 3 * 4096,
            max_samples_per_send: 100,
            ..target("dead", dead)
        }];
    });
    // 20 batches of 100 samples: 2,420-byte records, one per 4 KiB
    // segment; the queue may hold 12 KiB (5 segments).
    for b in 0..20 {
        ingest_lp(src.addr(), &lines("full", T0 + b * 100, 100));
    }
    let m = |name: &str| {
        metric(
            src.addr(),
            &format!("tidemark_forward_{name}{{target=\"dead\"}}"),
        )
    };
    let (queued, dropped) = (m("queue_samples"), m("samples_dropped_total"));
    assert!(dropped >= 1000.0, "dropped {dropped}");
    assert_eq!(
        queued + dropped,
        2000.0,
        "every sample is queued or counted"
    );
    assert!(m("queue_bytes") <= 3.0 * 4096.0);
}

#[test]
fn monitor_output_is_forwarded() {
    let rx = Server::start(|c| c.rules.default_pack = false);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let src = Node::start(&data, loopback0(), |c| {
        c.rules.default_pack = false;
        c.forward = vec![target("rx", rx.addr())];
    });
    let state = src.running.as_ref().unwrap().state.clone();
    let t = now_ms();
    state
        .monitor
        .record_at([(
            &tidemark::monitor::RecoveryEvent::FallbackUsed {
                component: "db".into(),
            },
            t,
        )])
        .unwrap();
    state.monitor.collect(t).unwrap();
    wait_until("the monitor's series at the receiver", || {
        dump(&rx.db, "fallbacks_total") == dump(&src.db, "fallbacks_total")
            && !dump(&rx.db, "fallbacks_total").is_empty()
    });
}
