//! Golden tests in Prometheus's promqltest style.
//!
//! Every `tests/testdata/*.test` script is run. Commands:
//! - `load <interval>` then indented `series values` lines, where values
//!   use the promqltest notation (`1 2 _ stale`, `0+10x5`, `1x3`, `_x2`);
//! - `clear`;
//! - `eval[_ordered|_fail] instant at <time> <expr>` then indented expected
//!   lines `series value` (or a bare number for a scalar);
//! - `eval[_fail] range from <t> to <t> step <d> <expr>` then indented
//!   `series v1 v2 _ ...` lines, one value (or `_`) per step.
//!
//! Values compare with a relative tolerance of 1e-6 (as promqltest does);
//! NaN equals NaN.

use std::fmt::Write as _;
use std::path::Path;

use tidemark_query::{
    EvalOptions, Labels, MemorySource, Value, eval_instant, eval_range,
    notation::{expand_values, parse_value},
    parse,
    testing::parse_selector_labels,
};

fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<f64>() {
        return Ok((n * 1000.0).round() as i64);
    }
    let e = parse(s).map_err(|e| format!("bad time {s:?}: {e}"))?;
    match e {
        tidemark_query::ast::Expr::Number(n) => Ok((n * 1000.0).round() as i64),
        _ => Err(format!("bad time {s:?}")),
    }
}

/// Splits `metric{a="b c"} rest` into the descriptor and the rest.
fn split_series(line: &str) -> (&str, &str) {
    let line = line.trim();
    let end = if let Some(open) = line.find('{') {
        // Find the closing brace outside quotes.
        let mut in_str: Option<char> = None;
        let mut esc = false;
        let mut close = line.len();
        for (i, c) in line[open..].char_indices() {
            if let Some(q) = in_str {
                if esc {
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == q {
                    in_str = None;
                }
                continue;
            }
            match c {
                '"' | '\'' | '`' => in_str = Some(c),
                '}' => {
                    close = open + i + 1;
                    break;
                }
                _ => {}
            }
        }
        close
    } else {
        line.find(char::is_whitespace).unwrap_or(line.len())
    };
    (&line[..end], line[end..].trim())
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

struct Expect {
    labels: Option<Labels>,
    values: Vec<Option<f64>>,
}

struct Runner {
    src: MemorySource,
    failures: Vec<String>,
    evals: usize,
}

impl Runner {
    fn run_file(&mut self, path: &Path) {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        self.src.clear();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let trimmed = line.trim();
            i += 1;
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            // Gather the indented block that follows.
            let block_start = i;
            while i < lines.len() {
                let l = lines[i];
                if l.trim().is_empty() || !(l.starts_with(' ') || l.starts_with('\t')) {
                    break;
                }
                i += 1;
            }
            let block: Vec<&str> = lines[block_start..i]
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.starts_with('#'))
                .collect();
            let at = format!("{name}:{block_start}");
            if let Err(e) = self.command(trimmed, &block) {
                self.failures.push(format!("{at}: {trimmed}\n    {e}"));
            }
        }
    }

    fn command(&mut self, cmd: &str, block: &[&str]) -> Result<(), String> {
        if cmd == "clear" {
            self.src.clear();
            return Ok(());
        }
        if let Some(rest) = cmd.strip_prefix("load ") {
            let interval = parse_time(rest.trim())?;
            for l in block {
                let (desc, vals) = split_series(l);
                let labels =
                    parse_selector_labels(desc).map_err(|e| format!("bad series {desc:?}: {e}"))?;
                let vals = expand_values(vals).map_err(|e| e.to_string())?;
                let samples: Vec<(i64, f64)> = vals
                    .into_iter()
                    .enumerate()
                    .filter_map(|(k, v)| v.map(|v| (k as i64 * interval, v)))
                    .collect();
                self.src.add(labels, samples);
            }
            return Ok(());
        }
        let (kind, rest) = cmd.split_once(' ').ok_or("bad command")?;
        let (ordered, fail) = match kind {
            "eval" => (false, false),
            "eval_ordered" => (true, false),
            "eval_fail" => (false, true),
            _ => return Err(format!("unknown command {kind:?}")),
        };
        self.evals += 1;
        let opts = EvalOptions::default();
        if let Some(rest) = rest.strip_prefix("instant at ") {
            let (t, expr) = rest.split_once(' ').ok_or("missing expression")?;
            let t = parse_time(t)?;
            let res = parse(expr)
                .map_err(|e| e.to_string())
                .and_then(|e| eval_instant(&self.src, &e, t, &opts).map_err(|e| e.to_string()));
            return match (res, fail) {
                (Err(_), true) => Ok(()),
                (Ok(v), true) => Err(format!("expected failure, got {v:?}")),
                (Err(e), false) => Err(format!("unexpected error: {e}")),
                (Ok(v), false) => check_instant(v, block, ordered),
            };
        }
        if let Some(rest) = rest.strip_prefix("range from ") {
            let parts: Vec<&str> = rest.splitn(6, ' ').collect();
            if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
                return Err("expected `range from <t> to <t> step <d> <expr>`".into());
            }
            let (start, end, step) = (
                parse_time(parts[0])?,
                parse_time(parts[2])?,
                parse_time(parts[4])?,
            );
            let expr = parts[5];
            let res = parse(expr).map_err(|e| e.to_string()).and_then(|e| {
                eval_range(&self.src, &e, start, end, step, &opts).map_err(|e| e.to_string())
            });
            return match (res, fail) {
                (Err(_), true) => Ok(()),
                (Ok(v), true) => Err(format!("expected failure, got {v:?}")),
                (Err(e), false) => Err(format!("unexpected error: {e}")),
                (Ok(series), false) => {
                    let n = ((end - start) / step) as usize + 1;
                    let mut exp = Vec::new();
                    for l in block {
                        let (desc, vals) = split_series(l);
                        let labels = parse_selector_labels(desc).map_err(|e| e.to_string())?;
                        let vals = expand_values(vals).map_err(|e| e.to_string())?;
                        exp.push(Expect {
                            labels: Some(labels),
                            values: vals,
                        });
                    }
                    let mut msg = String::new();
                    if exp.len() != series.len() {
                        let _ =
                            write!(msg, "expected {} series, got {}; ", exp.len(), series.len());
                    }
                    for e in &exp {
                        let labels = e.labels.as_ref().unwrap();
                        let Some(got) = series.iter().find(|s| &s.labels == labels) else {
                            let _ = write!(msg, "missing {labels}; ");
                            continue;
                        };
                        let mut dense = vec![None; n];
                        for &(t, v) in &got.samples {
                            dense[((t - start) / step) as usize] = Some(v);
                        }
                        let mut want = e.values.clone();
                        want.resize(n, None);
                        let same = dense.iter().zip(&want).all(|(a, b)| match (a, b) {
                            (None, None) => true,
                            (Some(a), Some(b)) => close(*a, *b),
                            _ => false,
                        });
                        if !same {
                            let _ = write!(msg, "{labels}: want {want:?}, got {dense:?}; ");
                        }
                    }
                    if msg.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("{msg}\n    got: {series:?}"))
                    }
                }
            };
        }
        Err(format!("cannot parse eval command {rest:?}"))
    }
}

fn check_instant(v: Value, block: &[&str], ordered: bool) -> Result<(), String> {
    let mut exp = Vec::new();
    for l in block {
        if let Ok(x) = parse_value(l.trim()) {
            exp.push(Expect {
                labels: None,
                values: vec![Some(x)],
            });
            continue;
        }
        let (desc, vals) = split_series(l);
        let labels = parse_selector_labels(desc)
            .map_err(|e| format!("bad expected series {desc:?}: {e}"))?;
        let values = expand_values(vals).map_err(|e| e.to_string())?;
        exp.push(Expect {
            labels: Some(labels),
            values,
        });
    }
    match v {
        Value::Scalar { v, .. } => match exp.as_slice() {
            [
                Expect {
                    labels: None,
                    values,
                },
            ] if close(values[0].unwrap_or(f64::NAN), v) => Ok(()),
            _ => Err(format!("scalar {v} does not match expectation")),
        },
        Value::Vector(samples) => {
            if samples.len() != exp.len() {
                return Err(format!(
                    "expected {} samples, got {}: {samples:?}",
                    exp.len(),
                    samples.len()
                ));
            }
            for (k, e) in exp.iter().enumerate() {
                let labels = e
                    .labels
                    .as_ref()
                    .ok_or("expected a vector, test gives a scalar")?;
                let want = e.values.first().copied().flatten().unwrap_or(f64::NAN);
                let got = if ordered {
                    samples.get(k).filter(|s| &s.labels == labels)
                } else {
                    samples.iter().find(|s| &s.labels == labels)
                };
                match got {
                    Some(s) if close(s.v, want) => {}
                    Some(s) => return Err(format!("{labels}: want {want}, got {}", s.v)),
                    None => {
                        return Err(format!(
                            "missing {labels} (ordered: {ordered}) in {samples:?}"
                        ));
                    }
                }
            }
            Ok(())
        }
        Value::Matrix(series) => {
            if series.len() != exp.len() {
                return Err(format!(
                    "expected {} series, got {}: {series:?}",
                    exp.len(),
                    series.len()
                ));
            }
            for e in &exp {
                let labels = e.labels.as_ref().ok_or("expected a matrix")?;
                let s = series
                    .iter()
                    .find(|s| &s.labels == labels)
                    .ok_or(format!("missing {labels}"))?;
                let got: Vec<f64> = s.samples.iter().map(|x| x.1).collect();
                let want: Vec<f64> = e.values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
                if got.len() != want.len() || !got.iter().zip(&want).all(|(a, b)| close(*a, *b)) {
                    return Err(format!("{labels}: want {want:?}, got {got:?}"));
                }
            }
            Ok(())
        }
        Value::String { v, .. } => Err(format!("unexpected string result {v:?}")),
    }
}

#[test]
fn promql_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test scripts in {}", dir.display());
    let mut r = Runner {
        src: MemorySource::new(),
        failures: Vec::new(),
        evals: 0,
    };
    for f in &files {
        r.run_file(f);
    }
    assert!(
        r.failures.is_empty(),
        "{} of {} evals failed:\n{}",
        r.failures.len(),
        r.evals,
        r.failures.join("\n")
    );
    eprintln!("{} evals passed in {} scripts", r.evals, files.len());
}
