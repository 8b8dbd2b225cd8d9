//! Differential PromQL test: the same generated data goes into a real
//! Prometheus 2.42 (blocks built by `promtool tsdb create-blocks-from
//! openmetrics`) and into the real `tidemark serve` binary (line protocol
//! over HTTP); then many expressions are evaluated on both, as range and
//! instant queries, and every answer must match: same result type, same
//! label sets, same timestamps, values equal within 1e-9 relative.
//!
//! The dataset, the query workload of the peer benchmark and the way
//! Prometheus is started come from `../shared/peers/` (gen_dataset.py,
//! queries.json, run_peers.py). Two data windows are loaded, one day apart:
//! - A: seed 42, timestamps exactly on the 10 s grid (so range boundaries
//!   hit samples exactly), counter resets; flushed to partitions on tidemark.
//! - B: seed 7, a random scrape phase per target and +-2 s jitter, counter
//!   resets; left in tidemark's head (not flushed), so both read paths are
//!   compared.
//!
//! Expressions marked `xfail:` in tests/differential/queries.txt are known
//! differences: reported, not failing, and the test fails once they match.
//! topk/bottomk answers that differ only in which of several equal-valued
//! series was picked count as equal (see the comment at the comparison).
//!
//! Needs `prometheus`, `promtool`, `python3` and the peers folder
//! (`$TIDEMARK_PEERS_DIR` overrides its place). Without them the test prints
//! why and skips, except when `CI` is set (not empty, `0` or `false`; `.ci/run`
//! sets it and installs them), where it fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Relative tolerance of the issue ("values to 1e-9 relative").
const RTOL: f64 = 1e-9;
/// Absolute floor for values that should be 0 but come out as rounding
/// noise (e.g. a deriv of a constant series): the same `atol` as
/// `../shared/peers/compare.py`.
const ATOL: f64 = 1e-12;

/// Our own expressions, on top of the peer benchmark's queries.json.
const QUERIES: &str = include_str!("differential/queries.txt");

const DAY_MS: i64 = 86_400_000;
/// gen_dataset.py's default start: 2023-11-14T00:00:00Z.
const START_MS: i64 = 1_699_920_000_000;

// ------------------------------------------------------------ processes

/// A child process killed (SIGKILL) and reaped on drop, also on panic.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn check_alive(&mut self, log: &str) {
        if let Ok(Some(st)) = self.child.try_wait() {
            panic!("{} exited early ({st}); log:\n{log}", self.name);
        }
    }
}

fn find_on_path(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

fn peers_dir() -> PathBuf {
    match std::env::var_os("TIDEMARK_PEERS_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Prometheus on `blocks`, started like run_peers.py's `phase_prom`.
fn start_prometheus(tmp: &Path, blocks: &Path) -> (Proc, SocketAddr) {
    let cfg = tmp.join("prometheus.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 10s\n  evaluation_interval: 1m\nscrape_configs: []\n",
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log_path = tmp.join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", blocks.display()))
        .arg(format!("--web.listen-address={addr}"))
        // Retention is relative to the newest block; 2023 data must stay.
        .arg("--storage.tsdb.retention.time=36500d")
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting prometheus");
    let mut p = Proc {
        name: "prometheus",
        child,
    };
    let t0 = Instant::now();
    loop {
        p.check_alive(&tail(&log_path));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            && common::get(addr, "/-/ready").status == 200
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "prometheus not ready after 120 s; log:\n{}",
            tail(&log_path)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("prometheus ready on {addr} in {:?}", t0.elapsed());
    (p, addr)
}

/// `tidemark serve` (the real binary) on a free loopback port.
fn start_tidemark(data_dir: &Path) -> (Proc, SocketAddr) {
    let child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["serve", "--listen", "127.0.0.1:0", "--retention", "100y"])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("TIDEMARK_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tidemark serve");
    let mut p = Proc {
        name: "tidemark",
        child,
    };
    let stderr = p.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Reads the address, then keeps draining stderr (echoed to the test's
    // stderr) so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(a) = line.strip_prefix("tidemark listening on http://") {
                let _ = tx.send(a.trim().to_string());
            } else {
                eprintln!("[tidemark] {line}");
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => a.parse().expect("listen address"),
        Err(_) => {
            p.check_alive("(stderr echoed above)");
            panic!("tidemark serve printed no listen address within 60 s");
        }
    };
    (p, addr)
}

// ------------------------------------------------------------ dataset

struct Window {
    name: &'static str,
    dir: PathBuf,
    min_ms: i64,
    max_ms: i64,
    interval_ms: i64,
}

fn generate(py: &Path, peers: &Path, out: PathBuf, name: &'static str, args: &[&str]) -> Window {
    run(Command::new(py)
        .arg(peers.join("gen_dataset.py"))
        .args(["--size", "tiny", "--services", "3", "--formats", "lp,om"])
        .args(args)
        .arg("--out")
        .arg(&out));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta.json")).unwrap()).unwrap();
    let w = Window {
        name,
        dir: out,
        min_ms: meta["min_ts_ms"].as_i64().unwrap(),
        max_ms: meta["max_ts_ms"].as_i64().unwrap(),
        interval_ms: meta["params"]["interval_ms"].as_i64().unwrap(),
    };
    eprintln!(
        "window {name}: {} series x {} points, [{}, {}] ms",
        meta["series"], meta["params"]["points"], w.min_ms, w.max_ms
    );
    w
}

/// POSTs a line protocol file in chunks of whole lines, in file (time) order.
fn ingest_lp(addr: SocketAddr, path: &Path) {
    let data = std::fs::read(path).unwrap();
    let mut pos = 0;
    while pos < data.len() {
        let mut end = (pos + (2 << 20)).min(data.len());
        while end < data.len() && data[end - 1] != b'\n' {
            end += 1;
        }
        let r = common::post(addr, "/write?precision=ms", &[], &data[pos..end]);
        assert!(
            r.status == 204 || r.status == 200,
            "POST /write of {} bytes {pos}..{end}: HTTP {}: {}",
            path.display(),
            r.status,
            r.text()
        );
        pos = end;
    }
}

// ------------------------------------------------------------ queries

#[derive(Clone)]
enum Kind {
    Range {
        start_ms: i64,
        end_ms: i64,
        step_s: u32,
    },
    Instant {
        t_ms: i64,
    },
}

#[derive(Clone)]
struct Eval {
    expr: String,
    /// A known difference from Prometheus (`xfail:` in queries.txt).
    xfail: bool,
    window: &'static str,
    kind: Kind,
}

impl Eval {
    fn path(&self) -> String {
        let q = encode(&self.expr);
        match self.kind {
            Kind::Range {
                start_ms,
                end_ms,
                step_s,
            } => format!(
                "/api/v1/query_range?query={q}&start={}&end={}&step={step_s}",
                secs(start_ms),
                secs(end_ms)
            ),
            Kind::Instant { t_ms } => format!("/api/v1/query?query={q}&time={}", secs(t_ms)),
        }
    }

    fn describe(&self) -> String {
        match self.kind {
            Kind::Range {
                start_ms,
                end_ms,
                step_s,
            } => format!(
                "range  {:?} [window {}, start={} end={} step={step_s}s]",
                self.expr,
                self.window,
                secs(start_ms),
                secs(end_ms)
            ),
            Kind::Instant { t_ms } => format!(
                "instant {:?} [window {}, time={}]",
                self.expr,
                self.window,
                secs(t_ms)
            ),
        }
    }
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every expression with its `xfail` flag: the peers' queries.json (with
/// `__RANGE__` replaced as query.py does, per window), then
/// tests/differential/queries.txt.
fn expressions(peers: &Path) -> Vec<(String, bool)> {
    let qj: Value = serde_json::from_str(
        &std::fs::read_to_string(peers.join("queries.json")).expect("reading queries.json"),
    )
    .expect("queries.json is JSON");
    let mut out: Vec<(String, bool)> = qj["queries"]
        .as_array()
        .expect("queries.json: queries")
        .iter()
        .map(|q| (q["expr"].as_str().unwrap().to_string(), false))
        .collect();
    assert!(!out.is_empty(), "queries.json has no queries");
    out.extend(
        QUERIES
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| match l.strip_prefix("xfail:") {
                Some(e) => (e.trim().to_string(), true),
                None => (l.to_string(), false),
            }),
    );
    out
}

fn evaluations(exprs: &[(String, bool)], windows: &[Window]) -> Vec<Eval> {
    let mut out = Vec::new();
    for w in windows {
        // query.py's range for the whole dataset, as seconds.
        let range_s = (w.max_ms - w.min_ms) / 1000 + 2 * w.interval_ms / 1000;
        let step60 = 60_000;
        let kinds = [
            // query.py: the data range rounded out to the step grid.
            Kind::Range {
                start_ms: w.min_ms.div_euclid(step60) * step60,
                end_ms: (w.max_ms + step60 - 1).div_euclid(step60) * step60,
                step_s: 60,
            },
            // An odd step, starting off-grid before the data and ending
            // after the lookback window of the last sample.
            Kind::Range {
                start_ms: w.min_ms - 61_500,
                end_ms: w.max_ms + 330_000,
                step_s: 37,
            },
            Kind::Instant {
                t_ms: w.min_ms - 1_000,
            },
            Kind::Instant { t_ms: w.min_ms },
            Kind::Instant {
                t_ms: w.min_ms + 90_500,
            },
            Kind::Instant {
                t_ms: (w.min_ms + w.max_ms) / 2 / 1000 * 1000 + 7_000,
            },
            Kind::Instant { t_ms: w.max_ms },
            // The 5 m lookback edge of the last sample, and just past it.
            Kind::Instant {
                t_ms: w.max_ms + 300_000,
            },
            Kind::Instant {
                t_ms: w.max_ms + 300_001,
            },
        ];
        for (e, xfail) in exprs {
            let expr = e.replace("__RANGE__", &format!("{range_s}s"));
            for k in &kinds {
                out.push(Eval {
                    expr: expr.clone(),
                    xfail: *xfail,
                    window: w.name,
                    kind: k.clone(),
                });
            }
        }
    }
    out
}

/// One answer, normalised: status, result type, and per label set (JSON of
/// the sorted label map) the points by timestamp (ms) in response order.
struct Answer {
    ok: bool,
    error_type: String,
    error: String,
    result_type: String,
    series: BTreeMap<String, Vec<(i64, String)>>,
    /// Label keys in response order (for sort/sort_desc).
    order: Vec<String>,
}

fn answer(addr: SocketAddr, ev: &Eval) -> Answer {
    let r = common::get(addr, &ev.path());
    let j: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "{}: {addr} answered HTTP {} with non-JSON ({e}): {}",
            ev.describe(),
            r.status,
            r.text()
        )
    });
    let mut a = Answer {
        ok: j["status"] == "success",
        error_type: j["errorType"].as_str().unwrap_or_default().to_string(),
        error: j["error"].as_str().unwrap_or_default().to_string(),
        result_type: j["data"]["resultType"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        series: BTreeMap::new(),
        order: Vec::new(),
    };
    if !a.ok {
        return a;
    }
    let point = |p: &Value| -> (i64, String) {
        let t = p[0].as_f64().expect("timestamp is a number");
        let v = p[1].as_str().expect("value is a string").to_string();
        ((t * 1000.0).round() as i64, v)
    };
    let result = &j["data"]["result"];
    match a.result_type.as_str() {
        "scalar" | "string" => {
            a.series.insert("(scalar)".into(), vec![point(result)]);
        }
        _ => {
            for s in result.as_array().expect("result is an array") {
                // serde_json maps are sorted: this is canonical.
                let key = s["metric"].to_string();
                let pts = match (s.get("values"), s.get("value")) {
                    (Some(vs), _) => vs.as_array().unwrap().iter().map(point).collect(),
                    (None, Some(v)) => vec![point(v)],
                    _ => Vec::new(),
                };
                a.order.push(key.clone());
                if a.series.insert(key.clone(), pts).is_some() {
                    a.series
                        .insert(format!("{key} (DUPLICATE label set)"), Vec::new());
                }
            }
        }
    }
    a
}

fn parse_value(s: &str) -> f64 {
    // Prometheus writes NaN, +Inf, -Inf; Rust parses those too.
    s.parse()
        .unwrap_or_else(|_| panic!("not a sample value: {s:?}"))
}

fn same_value(a: &str, b: &str) -> bool {
    same_f64(parse_value(a), parse_value(b))
}

fn same_f64(x: f64, y: f64) -> bool {
    if x.is_nan() || y.is_nan() {
        return x.is_nan() && y.is_nan();
    }
    if x.is_infinite() || y.is_infinite() {
        return x == y;
    }
    (x - y).abs() <= ATOL + RTOL * x.abs().max(y.abs())
}

/// Differences between Prometheus's answer (`want`) and tidemark's (`got`),
/// one readable line each.
fn diff(want: &Answer, got: &Answer) -> Vec<String> {
    let mut out = Vec::new();
    if want.ok != got.ok {
        let show = |a: &Answer| {
            if a.ok {
                format!("success ({}, {} series)", a.result_type, a.series.len())
            } else {
                format!("error {}: {}", a.error_type, a.error)
            }
        };
        out.push(format!(
            "status: prometheus {} / tidemark {}",
            show(want),
            show(got)
        ));
        return out;
    }
    if !want.ok {
        if want.error_type != got.error_type {
            out.push(format!(
                "errorType: prometheus {:?} ({}) / tidemark {:?} ({})",
                want.error_type, want.error, got.error_type, got.error
            ));
        }
        return out;
    }
    if want.result_type != got.result_type {
        out.push(format!(
            "resultType: prometheus {} / tidemark {}",
            want.result_type, got.result_type
        ));
    }
    for (k, wp) in &want.series {
        let Some(gp) = got.series.get(k) else {
            out.push(format!(
                "missing series {k} ({} points, first {:?})",
                wp.len(),
                wp.first()
            ));
            continue;
        };
        let gm: BTreeMap<i64, &String> = gp.iter().map(|(t, v)| (*t, v)).collect();
        let wm: BTreeMap<i64, &String> = wp.iter().map(|(t, v)| (*t, v)).collect();
        for (t, wv) in &wm {
            match gm.get(t) {
                None => out.push(format!(
                    "{k} t={}: missing point, prometheus {wv}",
                    secs(*t)
                )),
                Some(gv) if !same_value(wv, gv) => out.push(format!(
                    "{k} t={}: prometheus {wv} / tidemark {gv}",
                    secs(*t)
                )),
                _ => {}
            }
        }
        for (t, gv) in &gm {
            if !wm.contains_key(t) {
                out.push(format!("{k} t={}: extra point, tidemark {gv}", secs(*t)));
            }
        }
    }
    for (k, gp) in &got.series {
        if !want.series.contains_key(k) {
            out.push(format!(
                "extra series {k} ({} points, first {:?})",
                gp.len(),
                gp.first()
            ));
        }
    }
    out
}

/// Per timestamp, the sorted values of all series.
fn values_by_time(a: &Answer) -> BTreeMap<i64, Vec<f64>> {
    let mut m: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for pts in a.series.values() {
        for (t, v) in pts {
            m.entry(*t).or_default().push(parse_value(v));
        }
    }
    for vs in m.values_mut() {
        vs.sort_by(f64::total_cmp);
    }
    m
}

fn same_values_by_time(want: &Answer, got: &Answer) -> bool {
    let (w, g) = (values_by_time(want), values_by_time(got));
    w.len() == g.len()
        && w.iter().zip(&g).all(|((tw, vw), (tg, vg))| {
            tw == tg && vw.len() == vg.len() && vw.iter().zip(vg).all(|(a, b)| same_f64(*a, *b))
        })
}

/// Runs every evaluation against `addr`, in order.
fn answers(addr: SocketAddr, evals: &[Eval]) -> Vec<Answer> {
    evals.iter().map(|e| answer(addr, e)).collect()
}

// ------------------------------------------------------------ the test

#[test]
fn promql_answers_match_prometheus() {
    let t_start = Instant::now();
    let peers = peers_dir();
    let py = find_on_path("python3");
    let mut missing = Vec::new();
    for bin in ["prometheus", "promtool", "python3"] {
        if find_on_path(bin).is_none() {
            missing.push(format!("`{bin}` not on PATH"));
        }
    }
    for f in ["gen_dataset.py", "queries.json"] {
        if !peers.join(f).is_file() {
            missing.push(format!("{} missing", peers.join(f).display()));
        }
    }
    if !missing.is_empty() {
        let msg = format!(
            "differential PromQL test needs Prometheus 2.42 (`apt-get install prometheus`), \
             python3 and ../shared/peers: {}",
            missing.join("; ")
        );
        let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
        if ci {
            panic!("{msg} (CI is set: .ci/run installs them, so this is a failure)");
        }
        eprintln!("SKIPPED promql_answers_match_prometheus: {msg}");
        return;
    }
    let py = py.unwrap();
    // The reference is Prometheus 2.42 (Debian bookworm's package); say so
    // when the installed one is another version.
    let version = Command::new("prometheus")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    eprintln!("reference: {version}");
    if !version.contains("version 2.42.") {
        eprintln!("note: expected Prometheus 2.42; answers may legitimately differ on {version:?}");
    }
    let tmp = tempfile::tempdir().unwrap();

    // 1. Data: two windows, one day apart.
    let a = generate(
        &py,
        &peers,
        tmp.path().join("a"),
        "A",
        &["--seed", "42", "--counter-resets", "3"],
    );
    let start_b = (START_MS + DAY_MS).to_string();
    let b = generate(
        &py,
        &peers,
        tmp.path().join("b"),
        "B",
        &[
            "--seed",
            "7",
            "--counter-resets",
            "2",
            "--jitter-ms",
            "2000",
            "--start-ms",
            &start_b,
        ],
    );
    assert_eq!(a.min_ms, START_MS);
    assert!(b.min_ms > a.max_ms + DAY_MS / 2);
    let windows = [a, b];

    // 2. Prometheus on promtool-built blocks.
    let blocks = tmp.path().join("prometheus");
    for w in &windows {
        run(Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(w.dir.join("data.om"))
            .arg(&blocks));
    }
    let (_prom, prom) = start_prometheus(tmp.path(), &blocks);

    // 3. tidemark: window A ingested and flushed to partitions, window B
    // ingested and left in the head.
    let (_tm, tm) = start_tidemark(&tmp.path().join("tidemark"));
    ingest_lp(tm, &windows[0].dir.join("data.lp"));
    let r = common::post(tm, "/api/v1/admin/flush", &[], b"");
    assert!(r.status < 300, "flush: HTTP {}: {}", r.status, r.text());
    ingest_lp(tm, &windows[1].dir.join("data.lp"));
    eprintln!("data loaded after {:?}", t_start.elapsed());

    // 4. Evaluate everything on both servers (one thread each), compare.
    let exprs = expressions(&peers);
    let evals = evaluations(&exprs, &windows);
    let t_q = Instant::now();
    let (want, got) = std::thread::scope(|s| {
        let w = s.spawn(|| answers(prom, &evals));
        let g = s.spawn(|| answers(tm, &evals));
        (w.join().unwrap(), g.join().unwrap())
    });
    let query_time = t_q.elapsed();

    let mut report = Vec::new();
    let mut bad_exprs = BTreeSet::new();
    // xfail expression -> (evaluations that differ, first difference)
    let mut known: BTreeMap<&str, (usize, String)> = exprs
        .iter()
        .filter(|(_, x)| *x)
        .map(|(e, _)| (e.as_str(), (0, String::new())))
        .collect();
    let (mut points, mut series, mut errors_both, mut ties) = (0usize, 0usize, 0usize, 0usize);
    for ((ev, w), g) in evals.iter().zip(&want).zip(&got) {
        let mut d = diff(w, g);
        // topk/bottomk: on equal values Prometheus's heap picks an
        // arbitrary one of the tied series; if the label sets differ but
        // the multiset of values at every timestamp is the same, the
        // answers only differ in tie-breaking, which PromQL leaves open.
        if !d.is_empty()
            && (ev.expr.contains("topk") || ev.expr.contains("bottomk"))
            && w.ok
            && g.ok
            && w.result_type == g.result_type
            && same_values_by_time(w, g)
        {
            ties += 1;
            d.clear();
        }
        // sort/sort_desc on an instant query: the order is the answer.
        if d.is_empty()
            && (ev.expr.starts_with("sort(") || ev.expr.starts_with("sort_desc("))
            && matches!(ev.kind, Kind::Instant { .. })
        {
            let first = |a: &Answer| -> Vec<f64> {
                a.order
                    .iter()
                    .map(|k| parse_value(&a.series[k][0].1))
                    .collect()
            };
            let (wv, gv) = (first(w), first(g));
            if wv.iter().zip(&gv).any(|(x, y)| x.total_cmp(y).is_ne()) {
                d.push(format!(
                    "order: prometheus {wv:?} / tidemark {gv:?} (response order)"
                ));
            }
        }
        if w.ok {
            series += w.series.len();
            points += w.series.values().map(Vec::len).sum::<usize>();
        } else {
            errors_both += 1;
        }
        if !d.is_empty() && ev.xfail {
            let k = known.get_mut(ev.expr.as_str()).expect("xfail expression");
            if k.0 == 0 {
                k.1 = format!("{}: {}", ev.describe(), d[0]);
            }
            k.0 += 1;
        } else if !d.is_empty() {
            bad_exprs.insert(ev.expr.clone());
            report.push(format!("MISMATCH {}", ev.describe()));
            for line in d.iter().take(6) {
                report.push(format!("    {line}"));
            }
            if d.len() > 6 {
                report.push(format!("    ... and {} more differences", d.len() - 6));
            }
        }
    }
    eprintln!(
        "compared {} expressions in {} evaluations ({} with data): {series} series, \
         {points} points from Prometheus; {errors_both} evaluations are errors on both; \
         {ties} topk/bottomk answers differ only in tie-breaking; queries took {query_time:?}, \
         total {:?}",
        exprs.len(),
        evals.len(),
        want.iter().filter(|w| w.ok && !w.series.is_empty()).count(),
        t_start.elapsed()
    );
    for (e, (n, first)) in &known {
        eprintln!("known difference (xfail) {e:?}: {n} evaluations differ; first: {first}");
    }
    assert!(
        report.is_empty(),
        "{} of {} evaluations differ from Prometheus 2.42 ({} expressions):\n{}\n\nexpressions:\n  {}",
        report.iter().filter(|l| l.starts_with("MISMATCH")).count(),
        evals.len(),
        bad_exprs.len(),
        report.join("\n"),
        bad_exprs.into_iter().collect::<Vec<_>>().join("\n  ")
    );
    let fixed: Vec<&str> = known
        .iter()
        .filter(|(_, (n, _))| *n == 0)
        .map(|(e, _)| *e)
        .collect();
    assert!(
        fixed.is_empty(),
        "these xfail expressions now match Prometheus everywhere: drop their `xfail:` \
         in tests/differential/queries.txt: {fixed:?}"
    );
    // A comparison that compared nothing is a broken test, not a pass.
    assert!(exprs.len() >= 40, "only {} expressions", exprs.len());
    assert!(
        points > 10_000,
        "only {points} points compared: the data did not load?"
    );
}
