//! `GET /federate?match[]=...`: Prometheus federation, so a central
//! Prometheus can pull selected series from Tidemark.
//!
//! Semantics follow Prometheus 2.42: for every series matching any
//! `match[]` selector, the latest sample at or before now and within the
//! 5-minute lookback; a series whose latest sample is a stale marker is
//! left out. The answer is the text exposition format 0.0.4, series sorted
//! by labels and grouped under one `# TYPE <name> untyped` line per metric
//! name, each sample with its timestamp in milliseconds.

use std::fmt::Write;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tidemark_storage::Sample;

use super::error::ApiError;
use super::metrics::{TEXT_CONTENT_TYPE, escape};
use super::params::parse_matches;
use super::{AppState, blocking};
use crate::source::DbSource;

/// Prometheus's default lookback delta.
const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// `GET /federate`.
pub(super) async fn handler(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    _body: Bytes,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> = match q {
        Some(q) => serde_urlencoded::from_str(&q)
            .map_err(|e| ApiError::bad_data(format!("invalid query string: {e}")))?,
        None => Vec::new(),
    };
    let values: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| v)
        .collect();
    let selectors = parse_matches(&values)?;
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let now = super::now_ms();
    let body = blocking(move || {
        let src = DbSource::new(&st.db, st.cfg.limits.query_max_series);
        let mut ids = Vec::new();
        for sel in &selectors {
            ids.extend(src.select_ids(sel).map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "execution",
                    e.to_string(),
                )
            })?);
        }
        ids.sort();
        ids.dedup();
        let data = st.db.read(&ids, now - LOOKBACK_MS, now)?;
        let mut latest: Vec<(Vec<(String, String)>, Sample)> = data
            .into_iter()
            .filter_map(|(id, samples)| {
                let last = *samples.iter().rfind(|s| s.ts <= now)?;
                if tidemark_query::is_stale_nan(last.value) {
                    return None;
                }
                let labels = st.db.labels(id)?;
                let pairs = labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                Some((pairs, last))
            })
            .collect();
        // Grouped by metric name (as Prometheus does), then by labels.
        latest.sort_by(|a, b| (name_of(&a.0), &a.0).cmp(&(name_of(&b.0), &b.0)));
        Ok(render(&latest))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], body).into_response())
}

fn name_of(labels: &[(String, String)]) -> &str {
    labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map_or("", |(_, v)| v.as_str())
}

/// The exposition of `series` (sorted by metric name).
fn render(series: &[(Vec<(String, String)>, Sample)]) -> String {
    let mut out = String::with_capacity(series.len() * 96);
    let mut current: Option<&str> = None;
    for (labels, s) in series {
        let name = name_of(labels);
        if current != Some(name) {
            let _ = writeln!(out, "# TYPE {name} untyped");
            current = Some(name);
        }
        out.push_str(name);
        let mut first = true;
        for (k, v) in labels.iter().filter(|(k, _)| k != "__name__") {
            out.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        if !first {
            out.push('}');
        }
        let _ = writeln!(out, " {} {}", super::format_value(s.value), s.ts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_name_and_escapes() {
        let l = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let out = render(&[
            (
                l(&[("__name__", "a"), ("x", "q\"\\\n")]),
                Sample::new(5, 1.5),
            ),
            (l(&[("__name__", "a"), ("x", "r")]), Sample::new(6, 2.0)),
            (l(&[("__name__", "b")]), Sample::new(7, f64::INFINITY)),
        ]);
        assert_eq!(
            out,
            "# TYPE a untyped\na{x=\"q\\\"\\\\\\n\"} 1.5 5\na{x=\"r\"} 2 6\n# TYPE b untyped\nb +Inf 7\n"
        );
    }
}
