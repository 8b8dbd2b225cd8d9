//! The Prometheus HTTP API (read side): `/api/v1/query`, `/query_range`,
//! `/series`, `/labels`, `/label/{name}/values`, `/metadata`,
//! `/status/buildinfo`, and `/rules` and `/alerts` (the status of the rule
//! groups `serve` evaluates). GET and form-encoded POST both work, as
//! Grafana and promtool use either.
//!
//! Invariants:
//! - Responses use Prometheus's envelope and number formatting (values as
//!   strings, `+Inf`/`-Inf`/`NaN`; timestamps as float seconds), so its
//!   clients parse them unchanged.
//! - Query evaluation runs on the blocking pool with the configured
//!   timeout, sample and series limits; exceeding one is a 422/503 naming
//!   the limit, never an unbounded allocation.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use tidemark_query::{EvalError, EvalOptions, SeriesSource, Value};

use super::error::ApiError;
use super::metrics::QueryEndpoint;
use super::params::{format_rfc3339, parse_duration_ms, parse_matches, parse_time};
use super::{AppState, blocking};
use crate::source::{DbSource, TierChoice};

/// Request parameters from the URL query and a form-encoded body.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    fn from_request(
        query: Option<String>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let mut pairs: Vec<(String, String)> = match query {
            Some(q) => serde_urlencoded::from_str(&q)
                .map_err(|e| ApiError::bad_data(format!("invalid query string: {e}")))?,
            None => Vec::new(),
        };
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form && !body.is_empty() {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|e| ApiError::bad_data(format!("invalid form body: {e}")))?;
            pairs.extend(form);
        }
        Ok(Params(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_data(format!("missing parameter {name:?}")))
    }

    fn time_or(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name).filter(|v| !v.is_empty()) {
            Some(v) => parse_time(name, v),
            None => Ok(default),
        }
    }
}

macro_rules! params {
    ($q:expr, $h:expr, $b:expr) => {
        Params::from_request($q, &$h, &$b)?
    };
}

fn success(data: Json) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// Prometheus's float formatting: shortest round-trip decimal, `+Inf`,
/// `-Inf`, `NaN`.
pub fn format_value(v: f64) -> String {
    FormatValue(v).to_string()
}

fn ts(t_ms: i64) -> Json {
    if t_ms % 1000 == 0 {
        json!(t_ms / 1000)
    } else {
        json!(t_ms as f64 / 1000.0)
    }
}

fn point(t_ms: i64, v: f64) -> Json {
    json!([ts(t_ms), format_value(v)])
}

fn metric(labels: &tidemark_query::Labels) -> Json {
    let m: serde_json::Map<String, Json> = labels
        .as_slice()
        .iter()
        .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
        .collect();
    Json::Object(m)
}

fn eval_error(e: EvalError) -> ApiError {
    let kind = e.prometheus_error_type();
    let status = match kind {
        "timeout" => StatusCode::SERVICE_UNAVAILABLE,
        "internal" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, kind, e.to_string())
}

fn parse_expr(q: &str) -> Result<tidemark_query::ast::Expr, ApiError> {
    tidemark_query::parse(q)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))
}

impl AppState {
    fn eval_options(&self, timeout_ms: Option<i64>) -> EvalOptions {
        let l = &self.cfg.limits;
        let mut timeout = l.query_timeout;
        if let Some(ms) = timeout_ms {
            timeout = timeout.min(std::time::Duration::from_millis(ms.max(0) as u64));
        }
        EvalOptions {
            max_samples: l.query_max_samples,
            timeout,
            max_series: l.query_max_series,
            ..EvalOptions::default()
        }
    }

    fn source(&self) -> DbSource<'_> {
        DbSource::new(&self.db, self.cfg.limits.query_max_series)
    }
}

/// The `tier=raw|1m|1h` parameter (debugging): which data a query reads.
fn tier_param(p: &Params, db: &tidemark_storage::Db) -> Result<TierChoice, ApiError> {
    match p.get("tier") {
        None | Some("") => Ok(TierChoice::Auto),
        Some(v) => DbSource::parse_tier(db, v)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"tier\": {e}"))),
    }
}

fn timeout_param(p: &Params) -> Result<Option<i64>, ApiError> {
    p.get("timeout")
        .map(|t| parse_duration_ms("timeout", t))
        .transpose()
}

/// A query result as Prometheus's `data` object (`resultType` + `result`).
pub fn value_json(v: &Value) -> Json {
    let (kind, result) = match v {
        Value::Scalar { t, v } => ("scalar", point(*t, *v)),
        Value::String { t, v } => ("string", json!([ts(*t), v])),
        Value::Vector(samples) => (
            "vector",
            Json::Array(
                samples
                    .iter()
                    .map(|s| json!({"metric": metric(&s.labels), "value": point(s.t, s.v)}))
                    .collect(),
            ),
        ),
        Value::Matrix(series) => (
            "matrix",
            Json::Array(
                series
                    .iter()
                    .map(|s| {
                        let values: Vec<Json> =
                            s.samples.iter().map(|(t, v)| point(*t, *v)).collect();
                        json!({"metric": metric(&s.labels), "values": values})
                    })
                    .collect(),
            ),
        ),
    };
    json!({"resultType": kind, "result": result})
}

/// `GET|POST /api/v1/query`
pub(super) async fn query(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params!(q, headers, body);
    let expr = parse_expr(p.require("query")?)?;
    let t = p.time_or("time", super::now_ms())?;
    let opts = st.eval_options(timeout_param(&p)?);
    let tier = tier_param(&p, &st.db)?;
    blocking(move || {
        let started = std::time::Instant::now();
        let v = tidemark_query::eval_instant(&st.source().with_tier(tier), &expr, t, &opts);
        st.metrics.observe_query(QueryEndpoint::Query, started);
        let v = v.map_err(eval_error)?;
        if let Value::Matrix(series) = &v {
            return Ok(matrix_response(series));
        }
        Ok(success(value_json(&v)))
    })
    .await
}

/// Writes a matrix result straight into a JSON buffer: a large range
/// result (100 series × 720 points) would otherwise be a tree of ~150,000
/// `serde_json::Value` allocations.
fn write_matrix(series: &[tidemark_query::Series], out: &mut Vec<u8>) {
    use std::io::Write;
    out.push(b'[');
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"metric\":");
        serde_json::to_writer(&mut *out, &metric(&s.labels)).expect("writing to a Vec cannot fail");
        out.extend_from_slice(b",\"values\":[");
        for (j, (t, v)) in s.samples.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.push(b'[');
            write_ts(*t, out);
            let _ = write!(out, ",\"{}\"]", FormatValue(*v));
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
}

/// A timestamp in seconds as Prometheus writes it (`1700000000` or
/// `1700000000.5`).
fn write_ts(t_ms: i64, out: &mut Vec<u8>) {
    use std::io::Write;
    let _ = if t_ms % 1000 == 0 {
        write!(out, "{}", t_ms / 1000)
    } else {
        write!(out, "{}", t_ms as f64 / 1000.0)
    };
}

/// [`format_value`] without the allocation.
struct FormatValue(f64);

impl std::fmt::Display for FormatValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v == f64::INFINITY {
            f.write_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            f.write_str("-Inf")
        } else {
            write!(f, "{v}")
        }
    }
}

/// `{"status":"success","data":{"resultType":"matrix","result":[...]}}`.
fn matrix_response(series: &[tidemark_query::Series]) -> Response {
    let points: usize = series.iter().map(|s| s.samples.len()).sum();
    let mut body = Vec::with_capacity(64 + series.len() * 128 + points * 24);
    body.extend_from_slice(br#"{"status":"success","data":{"resultType":"matrix","result":"#);
    write_matrix(series, &mut body);
    body.extend_from_slice(b"}}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET|POST /api/v1/query_range`
pub(super) async fn query_range(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params!(q, headers, body);
    let expr = parse_expr(p.require("query")?)?;
    let start = parse_time("start", p.require("start")?)?;
    let end = parse_time("end", p.require("end")?)?;
    let step = parse_duration_ms("step", p.require("step")?)?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let max_points = st.cfg.limits.max_points_per_series as i64;
    if (end - start) / step > max_points {
        return Err(ApiError::bad_data(format!(
            "exceeded maximum resolution of {max_points} points per timeseries. Try decreasing the query resolution (?step=XX)"
        )));
    }
    let opts = st.eval_options(timeout_param(&p)?);
    let tier = tier_param(&p, &st.db)?;
    blocking(move || {
        let started = std::time::Instant::now();
        let src = st.source().with_tier(tier);
        let series = tidemark_query::eval_range(&src, &expr, start, end, step, &opts);
        st.metrics.observe_query(QueryEndpoint::QueryRange, started);
        let series = series.map_err(eval_error)?;
        Ok(matrix_response(&series))
    })
    .await
}

/// `GET|POST /api/v1/series`
pub(super) async fn series(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params!(q, headers, body);
    let selectors = parse_matches(&p.all("match[]"))?;
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let range = match (p.get("start"), p.get("end")) {
        (None, None) => None,
        _ => Some((p.time_or("start", i64::MIN)?, p.time_or("end", i64::MAX)?)),
    };
    blocking(move || {
        let src = st.source();
        let mut ids = Vec::new();
        for sel in &selectors {
            ids.extend(src.select_ids(sel).map_err(source_error)?);
        }
        ids.sort();
        ids.dedup();
        if let Some((start, end)) = range {
            // Only series with samples in the range, like Prometheus.
            let data = st.db.read(&ids, start, end)?;
            ids = data
                .into_iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|(id, _)| id)
                .collect();
        }
        let out: Vec<Json> = ids.iter().map(|id| metric(&src.labels(*id))).collect();
        Ok(success(Json::Array(out)))
    })
    .await
}

/// `GET|POST /api/v1/labels`
pub(super) async fn labels(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params!(q, headers, body);
    let selectors = parse_matches(&p.all("match[]"))?;
    blocking(move || {
        let src = st.source();
        union_over(&selectors, |sel| src.label_names(sel, i64::MIN, i64::MAX))
    })
    .await
}

/// `GET /api/v1/label/{name}/values`
pub(super) async fn label_values(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params!(q, headers, body);
    let selectors = parse_matches(&p.all("match[]"))?;
    blocking(move || {
        let src = st.source();
        union_over(&selectors, |sel| {
            src.label_values(&name, sel, i64::MIN, i64::MAX)
        })
    })
    .await
}

/// The sorted union of `f` over every `match[]` selector (or over no
/// matchers, meaning all series, when none was given).
fn union_over(
    selectors: &[Vec<tidemark_query::LabelMatcher>],
    f: impl Fn(&[tidemark_query::LabelMatcher]) -> Result<Vec<String>, tidemark_query::SourceError>,
) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    if selectors.is_empty() {
        out = f(&[]).map_err(source_error)?;
    }
    for sel in selectors {
        out.extend(f(sel).map_err(source_error)?);
    }
    Ok(success(json!(tidemark_query::sorted_unique(out))))
}

fn source_error(e: tidemark_query::SourceError) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "execution", e.to_string())
}

/// `GET /api/v1/metadata[?metric=name&limit=n]`
pub(super) async fn metadata(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params!(q, headers, body);
    let metric_filter = p.get("metric").map(str::to_string);
    let limit = match p.get("limit") {
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"limit\": {l:?} is not a number"
            ))
        })?),
        None => None,
    };
    let all = st.db.metadata()?;
    let mut out: BTreeMap<String, Json> = BTreeMap::new();
    for (name, m) in all {
        if metric_filter.as_deref().is_some_and(|f| f != name) {
            continue;
        }
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        out.insert(
            name,
            json!([{"type": m.kind, "help": m.help, "unit": m.unit}]),
        );
    }
    Ok(success(json!(out)))
}

/// `GET /api/v1/status/buildinfo`. `version` is the Prometheus API level
/// Tidemark answers like (Grafana picks features by it); `application`
/// and `tidemarkVersion` say what is really answering.
pub(super) async fn buildinfo() -> Response {
    success(json!({
        "version": "2.42.0",
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": "tidemark",
        "tidemarkVersion": env!("CARGO_PKG_VERSION"),
    }))
}

fn duration_secs(d: std::time::Duration) -> Json {
    json!(d.as_secs_f64())
}

fn string_map<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Json {
    Json::Object(
        pairs
            .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
            .collect(),
    )
}

/// An alert as Prometheus's API shows it.
fn alert_json(a: &crate::rules::Alert) -> Json {
    json!({
        "labels": string_map(a.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        "annotations": string_map(a.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        "state": a.state.as_str(),
        "activeAt": format_rfc3339(a.active_at_ms),
        "value": crate::rules::template::go_float_e(a.value),
    })
}

/// Pending and firing alerts (resolved ones are kept in the state for
/// notifiers, but Prometheus's API does not list them).
fn active_alerts(state: &crate::rules::GroupState) -> impl Iterator<Item = &crate::rules::Alert> {
    state
        .alerts()
        .filter(|a| a.state != crate::rules::AlertState::Inactive)
}

/// Go's zero `time.Time`, what Prometheus shows before the first round.
const NEVER: &str = "0001-01-01T00:00:00Z";

/// `GET /api/v1/rules`: every group with its rules, their health, last
/// error and active alerts (Prometheus's format). A rule's
/// `evaluationTime` is its own query and alert update; the group's also
/// counts the batched read of its selections and the append.
pub(super) async fn rules(State(st): State<Arc<AppState>>) -> Response {
    use crate::rules::{AlertState, Rule};
    let mut groups = Vec::new();
    for g in st.rules.groups().iter() {
        let status = g.status();
        let last_eval = status
            .round
            .last_eval_ms
            .map_or_else(|| NEVER.to_string(), format_rfc3339);
        let eval_time = status.round.eval_duration.as_secs_f64();
        let mut rules = Vec::new();
        for (i, rule) in g.group.rules.iter().enumerate() {
            let rs = status.round.rules.get(i).cloned().unwrap_or_default();
            let mut r = match rule {
                Rule::Recording(r) => json!({
                    "type": "recording",
                    "name": r.record,
                    "query": r.expr_text.trim(),
                    "labels": string_map(r.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                }),
                Rule::Alerting(a) => {
                    let alerts: Vec<&crate::rules::Alert> = status
                        .state
                        .rule_alerts(i, &a.alert)
                        .map(|ra| {
                            ra.alerts
                                .values()
                                .filter(|x| x.state != AlertState::Inactive)
                                .collect()
                        })
                        .unwrap_or_default();
                    let state = if alerts.iter().any(|x| x.state == AlertState::Firing) {
                        "firing"
                    } else if alerts.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    json!({
                        "type": "alerting",
                        "name": a.alert,
                        "query": a.expr_text.trim(),
                        "state": state,
                        "duration": duration_secs(a.for_),
                        "keepFiringFor": duration_secs(a.keep_firing_for),
                        "labels": string_map(a.labels.iter().map(|(k, t)| (k.as_str(), t.source()))),
                        "annotations": string_map(a.annotations.iter().map(|(k, t)| (k.as_str(), t.source()))),
                        "alerts": alerts.into_iter().map(alert_json).collect::<Vec<_>>(),
                    })
                }
            };
            let obj = r.as_object_mut().expect("rule JSON is an object");
            obj.insert("health".into(), json!(rs.health.as_str()));
            obj.insert("lastError".into(), json!(rs.last_error.unwrap_or_default()));
            obj.insert("lastEvaluation".into(), json!(last_eval));
            obj.insert(
                "evaluationTime".into(),
                json!(rs.eval_duration.as_secs_f64()),
            );
            rules.push(r);
        }
        groups.push(json!({
            "name": g.group.name,
            "file": g.file,
            "interval": duration_secs(g.interval),
            "limit": g.group.limit,
            "rules": rules,
            "lastEvaluation": last_eval,
            "evaluationTime": eval_time,
        }));
    }
    success(json!({"groups": groups}))
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub(super) async fn alerts(State(st): State<Arc<AppState>>) -> Response {
    let mut out = Vec::new();
    for g in st.rules.groups().iter() {
        let status = g.status();
        out.extend(active_alerts(&status.state).map(alert_json));
    }
    success(json!({"alerts": out}))
}
