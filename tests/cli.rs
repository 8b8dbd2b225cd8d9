//! End-to-end tests of the `tidemark` binary: `import` and `bench` run as a
//! user would run them, and their `--json` reports are checked for real
//! values.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn tidemark(args: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(args)
        .output()
        .expect("run tidemark");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "tidemark {args:?} failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let json = if args.contains(&"--json") {
        assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
        serde_json::from_str(&stdout).expect("stdout is one JSON object")
    } else {
        Value::Null
    };
    (json, stdout)
}

/// 4 hosts × 30 scrapes of `cpu` (2 fields) and `mem` (1 field + 1 string
/// field) at 10 s, with one malformed line in the middle. Returns the
/// number of numeric samples on the good lines.
fn write_lp(path: &Path) -> u64 {
    let start = 1_700_000_000_000i64;
    let mut body = String::new();
    let mut samples = 0;
    for i in 0..30 {
        let ts = start + i * 10_000;
        for h in 0..4 {
            body += &format!(
                "cpu,host=h{h},job=node usage_percent={}.{:02},iowait_percent=0.5 {ts}\n",
                10 + i % 7,
                (i * 13 + h) % 100
            );
            body += &format!(
                "mem,host=h{h},job=node used_percent={}.5,note=\"a b,c\" {ts}\n",
                40 + h
            );
            samples += 3;
        }
        if i == 15 {
            body += "cpu,host=h0 usage_percent=1.2.3 1700000150000\n";
        }
    }
    std::fs::write(path, body).unwrap();
    samples
}

#[test]
fn import_line_protocol_reports_samples_rejections_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.lp");
    let expected = write_lp(&file);
    let data = dir.path().join("db");
    let (r, _) = tidemark(&[
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        "--precision",
        "ms",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert_eq!(r["samples"].as_u64(), Some(expected), "{r}");
    assert_eq!(r["rejected_lines"].as_u64(), Some(1), "{r}");
    assert_eq!(
        r["series"].as_u64(),
        Some(12),
        "4 hosts x 3 numeric fields: {r}"
    );
    let errors = r["errors"].as_array().unwrap();
    // The bad line follows 16 scrapes of 8 lines.
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .ends_with("line 129: invalid float \"1.2.3\" for field \"usage_percent\""),
        "{r}"
    );
    assert!(r["bytes_per_sample"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(r["samples_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["elapsed_secs"].as_f64().unwrap() > 0.0, "{r}");

    // Importing again into the same directory reopens it and adds no series.
    let (again, _) = tidemark(&[
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        "--format",
        "lp",
        "--precision",
        "ms",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert_eq!(again["series"].as_u64(), Some(12), "{again}");
}

#[test]
fn import_text_output_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.lp");
    write_lp(&file);
    let data = dir.path().join("db");
    let (_, out) = tidemark(&[
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        "--precision",
        "ms",
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("rejected lines: 1"), "{out}");
    assert!(out.contains("line 129: invalid float"), "{out}");
    assert!(out.contains("bytes/sample"), "{out}");
}

#[test]
fn import_openmetrics_with_metadata_and_eof() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.om");
    let mut body = String::from("# TYPE http_requests counter\n# HELP http_requests Requests.\n");
    for i in 0..50 {
        body += &format!(
            "http_requests_total{{host=\"h1\",job=\"api\"}} {} {}.{:03}\n",
            i * 7,
            1_700_000_000 + i * 10,
            i % 1000
        );
    }
    body += "# TYPE up gauge\nup{job=\"api\"} 1 1700000000.000\nup{job=\"api\" 1\n# EOF\n";
    std::fs::write(&file, body).unwrap();
    let data = dir.path().join("db");
    let (r, _) = tidemark(&[
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
        file.to_str().unwrap(),
    ]);
    assert_eq!(r["samples"].as_u64(), Some(51), "{r}");
    assert_eq!(r["rejected_lines"].as_u64(), Some(1), "{r}");
    assert_eq!(r["series"].as_u64(), Some(2), "{r}");
    assert!(
        r["errors"][0].as_str().unwrap().contains("line 55: "),
        "{r}"
    );
}

#[test]
fn import_unknown_extension_needs_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.csv");
    std::fs::write(&file, "m v=1 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["import", "--data-dir"])
        .arg(dir.path().join("db"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pass --format"), "{err}");
}

#[test]
fn bench_json_reports_every_figure() {
    let (r, _) = tidemark(&[
        "bench",
        "--series",
        "60",
        "--samples-per-series",
        "50",
        "--producers",
        "2",
        "--batch",
        "500",
        "--fsync",
        "never",
        "--json",
    ]);
    assert_eq!(r["samples"].as_u64(), Some(60 * 50), "{r}");
    assert_eq!(r["batches"].as_u64(), Some(6), "3000 samples / 500: {r}");
    assert_eq!(r["storage_rejected_samples"].as_u64(), Some(0), "{r}");
    assert!(r["samples_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["bytes_per_sample"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(r["bytes_per_series"].as_f64().is_some(), "{r}");
    let (p50, p99, p999) = (
        r["p50_append_us"].as_u64().unwrap(),
        r["p99_append_us"].as_u64().unwrap(),
        r["p999_append_us"].as_u64().unwrap(),
    );
    assert!(p50 > 0 && p50 <= p99 && p99 <= p999, "{r}");
}

#[test]
fn bench_keeps_an_explicit_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bench-db");
    let (r, _) = tidemark(&[
        "bench",
        "--data-dir",
        data.to_str().unwrap(),
        "--series",
        "9",
        "--samples-per-series",
        "10",
        "--producers",
        "3",
        "--batch",
        "7",
        "--json",
    ]);
    assert_eq!(r["samples"].as_u64(), Some(90), "{r}");
    assert_eq!(r["producers"].as_u64(), Some(3), "{r}");
    assert!(data.is_dir());
    assert!(std::fs::read_dir(&data).unwrap().next().is_some());
}

#[test]
fn query_a_data_directory_instant_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let lp = dir.path().join("in.lp");
    write_lp(&lp);
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    tidemark(&[
        "import",
        "--data-dir",
        data,
        "--precision",
        "ms",
        "--json",
        lp.to_str().unwrap(),
    ]);

    // mem_used_percent is 40.5 + host index at every scrape.
    let (r, _) = tidemark(&[
        "query",
        "--data-dir",
        data,
        "--time",
        "1700000290",
        "--json",
        "sum(mem_used_percent)",
    ]);
    assert_eq!(r["resultType"], "vector");
    assert_eq!(
        r["result"][0]["value"],
        serde_json::json!([1700000290, "168"])
    );

    let (r, _) = tidemark(&[
        "query",
        "--data-dir",
        data,
        "--start",
        "1700000000",
        "--end",
        "1700000020",
        "--step",
        "10s",
        "--json",
        "mem_used_percent{host=\"h2\"}",
    ]);
    assert_eq!(r["resultType"], "matrix");
    assert_eq!(
        r["result"][0]["values"],
        serde_json::json!([
            [1700000000, "42.5"],
            [1700000010, "42.5"],
            [1700000020, "42.5"]
        ])
    );

    let (_, table) = tidemark(&[
        "query",
        "--data-dir",
        data,
        "--time",
        "1700000290",
        "count(cpu_usage_percent)",
    ]);
    assert!(table.contains("@1700000290.000  4"), "{table}");

    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["query", "--data-dir", data, "sum(("])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1:6"),
        "parse error names its position"
    );
}

/// Imports `lp` (ms precision) into `<dir>/d`; returns that path.
fn import_ms(dir: &Path, lp: &Path) -> String {
    let d = dir.join("d").to_str().unwrap().to_string();
    tidemark(&[
        "import",
        "--data-dir",
        &d,
        "--precision",
        "ms",
        "--json",
        lp.to_str().unwrap(),
    ]);
    d
}

#[test]
fn compact_rolls_up_then_expires_old_data_and_frees_disk() {
    let dir = tempfile::tempdir().unwrap();
    let lp = dir.path().join("data.lp");
    // Three days of a 2023 series, one sample a minute: far past the
    // default 15 d raw retention.
    let start = 1_700_000_000_000i64 - 1_700_000_000_000i64 % 86_400_000;
    let mut body = String::new();
    for i in 0..3 * 1440i64 {
        body += &format!("load,host=a value={}.25 {}\n", i % 17, start + i * 60_000);
    }
    std::fs::write(&lp, body).unwrap();
    let d = import_ms(dir.path(), &lp);
    let d = d.as_str();
    let (out, _) = tidemark(&["compact", d, "--json"]);
    assert_eq!(out["windows_dropped"], 3, "{out}");
    assert!(out["rollup_windows_built"].as_u64().unwrap() >= 3, "{out}");
    let (before, after) = (
        out["disk_bytes_before"].as_u64().unwrap(),
        out["disk_bytes_after"].as_u64().unwrap(),
    );
    assert!(after < before, "{out}");
    let (ins, _) = tidemark(&["inspect", d, "--json"]);
    assert_eq!(
        ins["top_metrics_by_series"],
        serde_json::json!([{"name": "load_value", "value": 1}]),
        "{ins}"
    );
    // The 1m tier still answers for the expired days.
    let (q, _) = tidemark(&[
        "query",
        "--data-dir",
        d,
        "--json",
        "--time",
        &((start + 86_400_000) / 1000).to_string(),
        "count_over_time(load_value[1d])",
    ]);
    assert_eq!(q["result"][0]["value"][1], "1440", "{q}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let lp = dir.path().join("data.lp");
    write_lp(&lp);
    let d = import_ms(dir.path(), &lp);
    let d = d.as_str();
    // The 2023 data is past retention: compact logs what it drops.
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .env("TIDEMARK_LOG", "info")
        .args(["--log-format", "json", "compact", d])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("retention applied")),
        "info logs expected on stderr: {stderr}"
    );
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
}
