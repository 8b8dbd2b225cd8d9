//! A small expander for the Go-template subset Prometheus rule labels and
//! annotations use: `{{ $labels.name }}`, `{{ $labels }}`, `{{ $value }}`
//! (and the `.Labels.name` / `.Labels` / `.Value` spellings), optionally
//! piped through `humanize`, `humanizePercentage` or `humanizeDuration`.
//! `{{-` / `-}}` trim the neighbouring whitespace as in Go.
//!
//! Invariants: a [`Template`] is parsed once (at rule-file check time) and
//! anything outside this subset is a [`TemplateError`] then, never at
//! evaluation time; expansion cannot fail. Values print like Go's `%v`
//! (`1e+06`, `0.5`, `NaN`, `+Inf`); `$labels` prints like a Go map
//! (`map[a:b c:d]`, keys sorted); a missing label expands to `""`.

use std::fmt::Write as _;

use tidemark_query::Labels;

/// A template that is not in the supported subset; says what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?}: {reason} (at byte {pos})")]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// Byte offset of the problem.
    pub pos: usize,
    /// What is wrong.
    pub reason: String,
}

/// What an action prints.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    /// `$labels.name`
    Label(String),
    /// `$labels`
    Labels,
    /// `$value`
    Value,
}

/// A formatting function applied through `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Humanize,
    HumanizePercentage,
    HumanizeDuration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Action(Var, Vec<Func>),
}

/// A parsed template, ready to expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

impl Template {
    /// Parses `src`.
    ///
    /// # Errors
    /// [`TemplateError`] for unclosed actions, unknown variables or
    /// functions, and any syntax outside the subset (`if`, `range`, ...).
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let err = |pos: usize, reason: String| TemplateError {
            template: src.to_string(),
            pos,
            reason,
        };
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            let mut before = &rest[..open];
            let mut inner_start = open + 2;
            if rest[inner_start..].starts_with("- ") || rest[inner_start..].starts_with("-\t") {
                before = before.trim_end();
                inner_start += 1;
            }
            text.push_str(before);
            let Some(close_rel) = rest[inner_start..].find("}}") else {
                return Err(err(offset + open, "unclosed action: missing \"}}\"".into()));
            };
            let mut inner = &rest[inner_start..inner_start + close_rel];
            let mut after = &rest[inner_start + close_rel + 2..];
            let trim_right = inner.ends_with(" -") || inner.ends_with("\t-");
            if trim_right {
                inner = &inner[..inner.len() - 1];
                after = after.trim_start();
            }
            let action = parse_action(inner).map_err(|r| err(offset + open, r))?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(action);
            offset += rest.len() - after.len();
            rest = after;
        }
        if let Some(close) = rest.find("}}") {
            return Err(err(offset + close, "\"}}\" without \"{{\"".into()));
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            parts,
            source: src.to_string(),
        })
    }

    /// The template text as written (what `/api/v1/rules` shows).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template has no action (expands to itself).
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Expands the template for one alert: its labels and value.
    pub fn expand(&self, labels: &Labels, value: f64) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action(var, funcs) => {
                    let s = match var {
                        Var::Label(name) => labels.get_or_empty(name).to_string(),
                        Var::Labels => go_map(labels),
                        Var::Value => match funcs.first() {
                            Some(f) => {
                                // Functions after the first see a string in Go;
                                // the parser allows only one.
                                apply(*f, value)
                            }
                            None => go_float(value),
                        },
                    };
                    out.push_str(&s);
                }
            }
        }
        out
    }
}

fn parse_action(inner: &str) -> Result<Part, String> {
    let mut stages = inner.split('|').map(str::trim);
    let head = stages.next().unwrap_or("");
    let var = match head {
        "$value" | ".Value" => Var::Value,
        "$labels" | ".Labels" => Var::Labels,
        _ => {
            if let Some(name) = head
                .strip_prefix("$labels.")
                .or_else(|| head.strip_prefix(".Labels."))
            {
                if !crate::ingest::remote_write::valid_label_name(name) {
                    return Err(format!("invalid label name {name:?} in {head:?}"));
                }
                Var::Label(name.to_string())
            } else if head.is_empty() {
                return Err("empty action".into());
            } else {
                return Err(format!(
                    "unsupported template action {head:?} (supported: $labels, $labels.NAME, $value, \
                     optionally piped to humanize, humanizePercentage or humanizeDuration)"
                ));
            }
        }
    };
    let mut funcs = Vec::new();
    for stage in stages {
        let f = match stage {
            "humanize" => Func::Humanize,
            "humanizePercentage" => Func::HumanizePercentage,
            "humanizeDuration" => Func::HumanizeDuration,
            other => return Err(format!("unknown template function {other:?}")),
        };
        funcs.push(f);
    }
    if !funcs.is_empty() && var != Var::Value {
        return Err("humanize functions apply only to $value".into());
    }
    if funcs.len() > 1 {
        return Err("at most one function per action".into());
    }
    Ok(Part::Action(var, funcs))
}

/// Go's `map[string]string` `%v`: `map[a:b c:d]`, keys sorted.
fn go_map(labels: &Labels) -> String {
    let mut s = String::from("map[");
    for (i, (k, v)) in labels.as_slice().iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{k}:{v}");
    }
    s.push(']');
    s
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)` (`1e+00`, `1.5e-07`), the
/// form Prometheus's API gives an alert's value in.
pub fn go_float_e(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    go_exp(&format!("{v:e}"))
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(v, 'g', -1, 64)`).
pub fn go_float(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    // Shortest digits; exponent form when exp < -4 || exp >= 6 (Go's
    // rule for the shortest precision).
    let sci = format!("{v:e}");
    let (_, exp) = sci_parts(&sci);
    if !(-4..6).contains(&exp) {
        return go_exp(&sci);
    }
    format!("{v}")
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        })
    } else {
        None
    }
}

/// Splits Rust's `{:e}` output (`1.5e-7`) into mantissa and exponent.
fn sci_parts(s: &str) -> (&str, i32) {
    let (m, e) = s.split_once('e').unwrap_or((s, "0"));
    (m, e.parse().unwrap_or(0))
}

/// Rust's `1.5e-7` as Go's `1.5e-07`.
fn go_exp(s: &str) -> String {
    let (m, e) = sci_parts(s);
    let sign = if e < 0 { '-' } else { '+' };
    format!("{m}e{sign}{:02}", e.abs())
}

/// Go's `%.{prec}g`.
pub fn go_g(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, v);
    let (m, exp) = sci_parts(&sci);
    if exp < -4 || exp >= prec as i32 {
        let m = trim_zeros(m);
        go_exp(&format!("{m}e{exp}"))
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn apply(f: Func, v: f64) -> String {
    match f {
        Func::Humanize => humanize(v),
        Func::HumanizePercentage => format!("{}%", go_g(v * 100.0, 4)),
        Func::HumanizeDuration => humanize_duration(v),
    }
}

/// Prometheus's `humanize`: SI prefixes, 4 significant digits.
fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_g(v, 4);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g(v, 4))
}

/// Prometheus's `humanizeDuration` of seconds: `1d 2h 3m 4s`, `4.5s`, `12ms`.
fn humanize_duration(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}s", go_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        let a = v.abs();
        let secs = a as i64;
        let (d, h, m, s) = (
            secs / 86_400,
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
        );
        return if d != 0 {
            format!("{sign}{d}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", go_g(a, 4))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g(v, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels::from_pairs([("__name__", "errors"), ("component", "db"), ("env", "prod")])
    }

    fn expand(t: &str, v: f64) -> String {
        Template::parse(t).unwrap().expand(&labels(), v)
    }

    #[test]
    fn expands_labels_value_and_map() {
        assert_eq!(
            expand("{{ $labels.component }} at {{$value}}", 0.25),
            "db at 0.25"
        );
        assert_eq!(expand("{{ .Labels.env }}/{{ .Value }}", 3.0), "prod/3");
        assert_eq!(
            expand("{{ $labels }}", 1.0),
            "map[__name__:errors component:db env:prod]"
        );
        assert_eq!(expand("[{{ $labels.missing }}]", 1.0), "[]");
        assert_eq!(expand("no actions", 1.0), "no actions");
        assert_eq!(expand("a  {{- $value -}}  b", 1.0), "a1b");
    }

    #[test]
    fn values_print_like_go() {
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(f64::NAN), "NaN");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
        assert_eq!(go_g(0.123456, 4), "0.1235");
        assert_eq!(go_g(12345.0, 4), "1.234e+04");
        assert_eq!(go_g(5.0, 4), "5");
    }

    #[test]
    fn humanize_functions() {
        assert_eq!(expand("{{ $value | humanize }}", 1234.0), "1.234k");
        assert_eq!(expand("{{ $value | humanize }}", 0.005), "5m");
        assert_eq!(expand("{{ $value | humanizePercentage }}", 0.0712), "7.12%");
        assert_eq!(expand("{{ $value | humanizeDuration }}", 7.5), "7.5s");
        assert_eq!(expand("{{ $value | humanizeDuration }}", 0.25), "250ms");
        assert_eq!(
            expand("{{ $value | humanizeDuration }}", 93784.0),
            "1d 2h 3m 4s"
        );
    }

    #[test]
    fn rejects_unknown_syntax() {
        for bad in [
            "{{ if $value }}x{{ end }}",
            "{{ $labels.a | humanize }}",
            "{{ $value | printf \"%.2f\" }}",
            "{{ $externalLabels.x }}",
            "{{ $labels.1bad }}",
            "oops {{ $value",
            "oops }}",
            "{{ }}",
        ] {
            let e = Template::parse(bad).unwrap_err();
            assert_eq!(e.template, bad);
            assert!(!e.reason.is_empty(), "{bad}");
        }
        let e = Template::parse("x {{ range $labels }}").unwrap_err();
        assert!(e.reason.contains("unsupported template action"), "{e}");
        assert_eq!(e.pos, 2);
    }
}
