//! Rules inside the real server: a rule file is evaluated at its interval,
//! the alert fires from ingested data, recording-rule output and `ALERTS`
//! are queryable, and `/api/v1/rules` / `/api/v1/alerts` answer in
//! Prometheus's format. Waits poll with a bound; nothing sleeps a fixed time.

mod common;

use std::time::{Duration, Instant};

use common::{Server, get, post};
use serde_json::{Value, json};

const RULES: &str = r#"
groups:
  - name: test
    rules:
      - record: some_metric:doubled
        expr: some_metric * 2
      - alert: SomeMetricHigh
        expr: some_metric > 5
        for: 0s
        labels:
          severity: page
        annotations:
          summary: "job {{ $labels.job }} is at {{ $value }}"
"#;

fn data(s: &Server, path: &str) -> Value {
    let r = get(s.addr(), path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let j = r.json();
    assert_eq!(j["status"], "success", "{j}");
    j["data"].clone()
}

/// Polls `f` until it returns `Some`, for at most 10 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A server evaluating `RULES` (written to a file the caller may edit)
/// every second, with or without the default pack.
fn rule_server(default_pack: bool) -> (Server, std::path::PathBuf, tempfile::TempDir) {
    let rules_dir = tempfile::tempdir().unwrap();
    let file = rules_dir.path().join("test.yml");
    std::fs::write(&file, RULES).unwrap();
    let s = Server::start(|cfg| {
        cfg.rules.files = vec![file.clone()];
        cfg.rules.evaluation_interval = Duration::from_secs(1);
        cfg.rules.default_pack = default_pack;
    });
    (s, file, rules_dir)
}

#[test]
fn an_alert_fires_and_recording_output_is_queryable() {
    let (s, file, _rules_dir) = rule_server(true);
    let t = now_ms();
    let body = format!("some,job=a metric=10 {t}\nsome,job=b metric=1 {t}\n");
    let r = post(s.addr(), "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());

    // The alert fires (for: 0s) for job a only.
    let alert = eventually("the alert to fire", || {
        let d = data(&s, "/api/v1/alerts");
        let alerts = d["alerts"].as_array().unwrap().clone();
        alerts.into_iter().find(|a| a["state"] == "firing")
    });
    assert_eq!(
        alert["labels"],
        json!({"alertname": "SomeMetricHigh", "job": "a", "severity": "page"})
    );
    assert_eq!(alert["annotations"], json!({"summary": "job a is at 10"}));
    assert_eq!(alert["value"], "1e+01");
    let active_at = alert["activeAt"].as_str().unwrap();
    assert!(
        active_at.ends_with('Z') && active_at.contains('T'),
        "{active_at}"
    );
    let d = data(&s, "/api/v1/alerts");
    assert_eq!(d["alerts"].as_array().unwrap().len(), 1, "{d}");

    // Recording-rule output and ALERTS are in the database.
    let doubled = eventually("the recording rule's series", || {
        let d = data(&s, "/api/v1/query?query=some_metric:doubled");
        let r = d["result"].as_array().unwrap().clone();
        (r.len() == 2).then_some(r)
    });
    let mut values: Vec<(String, String)> = doubled
        .iter()
        .map(|x| {
            (
                x["metric"]["job"].as_str().unwrap().to_string(),
                x["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    values.sort();
    assert_eq!(
        values,
        vec![("a".into(), "20".into()), ("b".into(), "2".into())]
    );
    assert_eq!(doubled[0]["metric"]["__name__"], "some_metric:doubled");
    let alerts = data(
        &s,
        "/api/v1/query?query=ALERTS%7Balertname%3D%22SomeMetricHigh%22%7D",
    );
    let result = alerts["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{alerts}");
    assert_eq!(
        result[0]["metric"],
        json!({"__name__": "ALERTS", "alertname": "SomeMetricHigh", "alertstate": "firing", "job": "a", "severity": "page"})
    );
    let for_state = data(&s, "/api/v1/query?query=ALERTS_FOR_STATE");
    assert_eq!(for_state["result"].as_array().unwrap().len(), 1);

    // /api/v1/rules: the test group and the default pack, all healthy.
    let d = data(&s, "/api/v1/rules");
    let groups = d["groups"].as_array().unwrap();
    let g = groups.iter().find(|g| g["name"] == "test").expect("group");
    assert_eq!(g["file"], file.display().to_string());
    assert_eq!(g["interval"], json!(1.0));
    let rules = g["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["type"], "recording");
    assert_eq!(rules[0]["name"], "some_metric:doubled");
    assert_eq!(rules[0]["query"], "some_metric * 2");
    assert_eq!(rules[0]["health"], "ok");
    assert_eq!(rules[0]["lastError"], "");
    assert_eq!(rules[1]["type"], "alerting");
    assert_eq!(rules[1]["name"], "SomeMetricHigh");
    assert_eq!(rules[1]["health"], "ok");
    assert_eq!(rules[1]["state"], "firing");
    assert_eq!(rules[1]["duration"], json!(0.0));
    assert_eq!(rules[1]["labels"], json!({"severity": "page"}));
    assert_eq!(
        rules[1]["annotations"],
        json!({"summary": "job {{ $labels.job }} is at {{ $value }}"})
    );
    assert_eq!(rules[1]["alerts"].as_array().unwrap().len(), 1);
    let group_time = g["evaluationTime"].as_f64().unwrap();
    for r in rules {
        // Each rule reports its own time, within its group's.
        let t = r["evaluationTime"].as_f64().unwrap();
        assert!(t > 0.0 && t <= group_time, "{t} vs group {group_time}: {r}");
        assert_ne!(r["lastEvaluation"], "0001-01-01T00:00:00Z", "{r}");
    }
    assert!(
        groups.iter().any(|g| g["file"] == "<default rules>"),
        "default pack listed: {d}"
    );
    // State is persisted for the next start.
    let state = s.data_dir().join("rules").join("state.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(saved.to_string().contains("SomeMetricHigh"), "{saved}");
}

#[test]
fn an_invalid_rule_file_stops_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: sum(\n",
    )
    .unwrap();
    let mut cfg = tidemark::config::Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().unwrap();
    cfg.storage.data_dir = dir.path().to_path_buf();
    cfg.rules.files = vec![file.clone()];
    let db = std::sync::Arc::new(
        tidemark_storage::Db::open(dir.path(), tidemark_storage::Options::default()).unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = match rt.block_on(tidemark::server::start(db, cfg)) {
        Ok(_) => panic!("started with an invalid rule file"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("bad.yml"), "{err}");
}

/// `POST /-/reload` reads the rule files again: a new rule is evaluated, a
/// kept alert keeps its `activeAt`, and a broken file changes nothing.
#[test]
fn reload_picks_up_edited_rule_files_and_refuses_broken_ones() {
    let (s, file, _rules_dir) = rule_server(false);
    let t = now_ms();
    let body = format!("some,job=a metric=10 {t}\n");
    let r = post(s.addr(), "/write?precision=ms", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    let firing = |s: &Server| {
        let d = data(s, "/api/v1/alerts");
        d["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == "SomeMetricHigh" && a["state"] == "firing")
            .cloned()
    };
    let before = eventually("the alert to fire", || firing(&s));
    let rule_names = |s: &Server| -> Vec<String> {
        let d = data(s, "/api/v1/rules");
        d["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(rule_names(&s), ["some_metric:doubled", "SomeMetricHigh"]);

    // A third rule appended to the group, then reloaded.
    let edited =
        format!("{RULES}      - record: some_metric:tripled\n        expr: some_metric * 3\n");
    std::fs::write(&file, edited).unwrap();
    let r = post(s.addr(), "/-/reload", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["groups"], 1, "{}", r.text());
    assert_eq!(
        rule_names(&s),
        [
            "some_metric:doubled",
            "SomeMetricHigh",
            "some_metric:tripled"
        ]
    );
    let tripled = eventually("the new rule's output", || {
        let d = data(&s, "/api/v1/query?query=some_metric:tripled");
        d["result"].as_array().unwrap().first().cloned()
    });
    assert_eq!(tripled["value"][1], "30");
    let after = firing(&s).expect("still firing after the reload");
    assert_eq!(after["activeAt"], before["activeAt"], "`for` was not reset");

    // A broken file: 422 naming the file, and the running rules stay.
    std::fs::write(
        &file,
        "groups:\n  - name: test\n    rules:\n      - record: x\n        expr: sum(\n",
    )
    .unwrap();
    let r = post(s.addr(), "/-/reload", &[], b"");
    assert_eq!(r.status, 422, "{}", r.text());
    let err = r.json()["error"].as_str().unwrap().to_string();
    assert!(err.contains("test.yml"), "{err}");
    assert_eq!(
        rule_names(&s),
        [
            "some_metric:doubled",
            "SomeMetricHigh",
            "some_metric:tripled"
        ]
    );
    assert!(firing(&s).is_some());

    // A group that is gone stops; its alert resolves in the notifier.
    std::fs::write(&file, RULES.replace("name: test", "name: other")).unwrap();
    let r = post(s.addr(), "/-/reload", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let resolved = eventually("the removed group's alert to resolve", || {
        let d = data(&s, "/api/v1/alerts/history?alertname=SomeMetricHigh");
        d["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "state" && e["from"] == "firing" && e["to"] == "inactive")
            .cloned()
    });
    assert_eq!(resolved["labels"]["job"], "a", "{resolved}");
}

/// `tidemark serve` as a process reloads its rule files on SIGHUP, as
/// Prometheus does.
#[test]
fn serve_binary_reloads_rule_files_on_sighup() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let config = dir.path().join("tidemark.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[rules]\nfiles = [{:?}]\ndefault_pack = false\n",
            dir.path().join("data"),
            rules
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, stderr) =
        common::wait_listening(std::io::BufReader::new(child.stderr.take().unwrap()));
    // Keep reading stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    let groups = |addr| -> Vec<String> {
        let r = get(addr, "/api/v1/rules");
        r.json()["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(groups(addr), ["test"]);
    std::fs::write(&rules, RULES.replace("name: test", "name: renamed")).unwrap();
    let pid = child.id().to_string();
    let st = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    eventually("the renamed group", || {
        (groups(addr) == ["renamed"]).then_some(())
    });
    let _ = std::process::Command::new("kill").arg(&pid).status();
    assert!(child.wait().unwrap().success(), "clean exit on SIGTERM");
}
