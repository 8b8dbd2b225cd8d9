//! The OpenMetrics 1.0 side of `/metrics`: `Accept` negotiation and an
//! encoder from gathered `MetricFamily`s (the `prometheus` crate writes only
//! the 0.0.4 text format), plus the label escaping `/federate` shares.
//!
//! Invariants: counters lose `_total` in the family name and regain it on
//! samples; histograms always end with a `+Inf` bucket equal to `_count`;
//! `le`/`quantile` values are canonical (`1.0`, `+Inf`); the output ends
//! with exactly one `# EOF`.

use axum::http::{HeaderMap, header};
use prometheus::proto::{MetricFamily, MetricType};

/// True when `Accept` prefers OpenMetrics over the text format (Prometheus
/// sends `application/openmetrics-text;version=1.0.0,...;q=0.75,
/// text/plain;version=0.0.4;q=0.5,*/*;q=0.1`).
pub fn wants_openmetrics(headers: &HeaderMap) -> bool {
    let mut best_om = 0.0f64;
    let mut best_text = 0.0f64;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0f64;
            for p in parts {
                if let Some((k, v)) = p.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            match media.as_str() {
                "application/openmetrics-text" => best_om = best_om.max(q),
                "text/plain" => best_text = best_text.max(q),
                _ => {}
            }
        }
    }
    best_om > 0.0 && best_om >= best_text
}

/// OpenMetrics 1.0 text: family names without `_total`, `# UNIT` for
/// names ending in a base unit, canonical `le` values, `# EOF` last.
pub(super) fn encode_openmetrics(families: &[MetricFamily]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(16 * 1024);
    for mf in families {
        let name = mf.name();
        let kind = mf.get_field_type();
        // A gauge named `*_info` (always 1) is an OpenMetrics info metric.
        let info = kind == MetricType::GAUGE && name.ends_with("_info");
        let family = match kind {
            MetricType::COUNTER => name.strip_suffix("_total").unwrap_or(name),
            MetricType::GAUGE if info => name.strip_suffix("_info").unwrap_or(name),
            _ => name,
        };
        let type_name = match kind {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE if info => "info",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            MetricType::SUMMARY => "summary",
            MetricType::UNTYPED => "unknown",
        };
        let _ = writeln!(out, "# TYPE {family} {type_name}");
        for unit in ["seconds", "bytes"] {
            if family.ends_with(&format!("_{unit}")) {
                let _ = writeln!(out, "# UNIT {family} {unit}");
            }
        }
        if !mf.help().is_empty() {
            let _ = writeln!(out, "# HELP {family} {}", escape(mf.help()));
        }
        for m in mf.get_metric() {
            let labels = m.get_label();
            let mut sample = |suffix: &str, extra: Option<(&str, &str)>, v: &str| {
                out.push_str(family);
                out.push_str(suffix);
                if !labels.is_empty() || extra.is_some() {
                    out.push('{');
                    let mut first = true;
                    let pairs = labels
                        .iter()
                        .map(|l| (l.name(), l.value()))
                        .chain(extra.iter().copied());
                    for (k, val) in pairs {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        let _ = write!(out, "{k}=\"{}\"", escape(val));
                    }
                    out.push('}');
                }
                out.push(' ');
                out.push_str(v);
                out.push('\n');
            };
            match kind {
                MetricType::COUNTER => sample("_total", None, &float(m.get_counter().get_value())),
                MetricType::GAUGE if info => {
                    sample("_info", None, &float(m.get_gauge().get_value()))
                }
                MetricType::GAUGE => sample("", None, &float(m.get_gauge().get_value())),
                // No untyped metric is registered.
                MetricType::UNTYPED => {}
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut inf_seen = false;
                    for b in h.get_bucket() {
                        let le = b.upper_bound();
                        inf_seen |= le == f64::INFINITY;
                        let count = b.cumulative_count().to_string();
                        sample("_bucket", Some(("le", &canonical(le))), &count);
                    }
                    let count = h.get_sample_count().to_string();
                    if !inf_seen {
                        sample("_bucket", Some(("le", "+Inf")), &count);
                    }
                    sample("_sum", None, &float(h.get_sample_sum()));
                    sample("_count", None, &count);
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        let qs = canonical(q.quantile());
                        sample("", Some(("quantile", &qs)), &float(q.value()));
                    }
                    sample("_sum", None, &float(s.sample_sum()));
                    sample("_count", None, &s.sample_count().to_string());
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// Escapes `\`, `"` and newline (label values and HELP text).
pub(super) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.into()
}

fn float(v: f64) -> String {
    super::format_value(v)
}

/// OpenMetrics canonical numbers for `le`/`quantile`: `1.0`, `0.25`, `+Inf`.
fn canonical(v: f64) -> String {
    let s = float(v);
    if v.is_finite() && !s.contains(['.', 'e', 'E']) {
        format!("{s}.0")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, v.parse().unwrap());
            m
        };
        assert!(wants_openmetrics(&h(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(!wants_openmetrics(&h(
            "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"
        )));
        assert!(!wants_openmetrics(&h("*/*")));
        assert!(!wants_openmetrics(&HeaderMap::new()));
        assert!(!wants_openmetrics(&h("application/openmetrics-text;q=0")));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(canonical(1.0), "1.0");
        assert_eq!(canonical(0.005), "0.005");
        assert_eq!(canonical(f64::INFINITY), "+Inf");
    }
}
