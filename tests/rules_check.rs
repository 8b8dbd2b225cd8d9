//! `tidemark rules check` run as a user would: a good file prints
//! `FILE: N groups, M rules OK` and exits 0; a bad file prints every
//! problem (file, line, group, rule, expression position) and exits non-zero.

use std::process::{Command, Output};

fn rules_check(args: &[&str]) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("rules")
        .arg("check")
        .args(args)
        .output()
        .expect("run tidemark");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

const GOOD: &str = r#"
groups:
  - name: recovery
    interval: 30s
    rules:
      - record: component:errors:rate5m
        expr: sum by (component) (rate(errors_total[5m]))
      - alert: ErrorsHigh
        expr: component:errors:rate5m > 1
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.component }}: {{ $value | humanize }} errors/s"
  - name: other
    rules:
      - alert: Down
        expr: up == 0
"#;

const BAD: &str = r#"
groups:
  - name: recovery
    rules:
      - record: 'not a name'
        expr: up
      - alert: Broken
        expr: sum(rate(errors_total[5m])
      - alert: BadTemplate
        expr: up
        annotations:
          summary: "{{ if $value }}x{{ end }}"
  - name: recovery
    rules:
      - expr: up
"#;

#[test]
fn good_file_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.yml");
    std::fs::write(&path, GOOD).unwrap();
    let p = path.to_str().unwrap();
    let (out, stdout, stderr) = rules_check(&[p, "--default"]);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains(&format!("{p}: 2 groups, 3 rules OK")),
        "{stdout}"
    );
    assert!(
        stdout.contains("<default rules>: 2 groups, 11 rules OK"),
        "{stdout}"
    );
}

#[test]
fn bad_file_fails_with_every_problem_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, GOOD).unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, BAD).unwrap();
    let (g, b) = (good.to_str().unwrap(), bad.to_str().unwrap());
    let (out, stdout, stderr) = rules_check(&[g, b]);
    assert!(!out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains(&format!("{g}: 2 groups, 3 rules OK")),
        "{stdout}"
    );
    for want in [
        format!(
            "{b}:5: group \"recovery\", rule 1 (record \"not a name\"): invalid recording rule name"
        ),
        format!(
            "{b}:8: group \"recovery\", rule 2 (alert \"Broken\"): could not parse expression at 1:27 of the expression"
        ),
        format!(
            "{b}:9: group \"recovery\", rule 3 (alert \"BadTemplate\"): annotation \"summary\""
        ),
        format!("{b}:13: group \"recovery\": duplicate group name \"recovery\""),
        format!("{b}:15: group \"recovery\", rule 1: one of 'record' or 'alert' must be set"),
        format!("{b}: 5 errors"),
        "1 of 2 rule files have errors".to_string(),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }

    let (out, _, stderr) = rules_check(&[dir.path().join("missing.yml").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot read file"), "{stderr}");
}
