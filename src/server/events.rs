//! `POST /api/v1/events` (write class) and `GET /api/v1/events` (read
//! class) over the event log (`AppState.events`), exactly as
//! `src/server/http-api.md` ("Events") fixes them, plus the background task
//! that seals closed segments and applies `[events] retention`.
//!
//! Invariants:
//! - A bad event rejects only itself: every valid event of a request is
//!   stored, and the 400 response counts accepted and rejected events and
//!   names each rejected one by index and field.
//! - Parsing, appending (fsync) and querying run on the blocking pool.
//! - The response is sent only after the accepted events are durable (with
//!   `[events] fsync = true`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tidemark_storage::events::{Cursor, Event, EventError, EventLog, EventLogOptions, EventQuery};
use tidemark_storage::{Labels, Matcher};

use super::error::ApiError;
use super::params::{parse_matches, parse_time};
use super::{AppState, blocking};
use crate::config::Config;
use crate::ingest::remote_write::valid_label_name;
use crate::notify::time::format_rfc3339_ms;

/// `limit` when the request gives none.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` a request may ask for.
pub const MAX_LIMIT: usize = 1000;
/// How often closed segments are sealed and retention is applied.
const MAINTAIN_EVERY: Duration = Duration::from_secs(60);
/// Rejected events named in a response, at most.
const MAX_ERRORS: usize = 100;

/// The event log's options from `[events]`.
pub fn log_options(cfg: &Config) -> EventLogOptions {
    EventLogOptions {
        segment_ms: cfg.events.segment.as_millis().min(i64::MAX as u128) as i64,
        fsync: cfg.events.fsync,
        retention_ms: cfg.events.retention.as_millis().min(i64::MAX as u128) as i64,
        ..EventLogOptions::default()
    }
}

/// Opens `<data_dir>/events`.
pub fn open(cfg: &Config) -> std::io::Result<EventLog> {
    let dir = cfg.storage.data_dir.join("events");
    EventLog::open(&dir, log_options(cfg)).map_err(|e| match e {
        EventError::Io { source, path } => {
            std::io::Error::new(source.kind(), format!("{}: {source}", path.display()))
        }
        other => std::io::Error::other(other.to_string()),
    })
}

/// Seals closed segments and applies retention every minute until aborted.
pub(super) fn start_maintenance(log: Arc<EventLog>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTAIN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let log = log.clone();
            let done = tokio::task::spawn_blocking(move || log.maintain(super::now_ms())).await;
            match done {
                Ok(Ok(r)) if r.sealed + r.deleted > 0 => {
                    tracing::info!(
                        sealed = r.sealed,
                        deleted = r.deleted,
                        bytes_freed = r.bytes_freed,
                        "event log maintenance"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "event log maintenance failed"),
                Err(e) => tracing::warn!(error = %e, "event log maintenance task failed"),
            }
        }
    })
}

/// How far ahead of the server's clock an event's time may be.
pub const MAX_FUTURE_MS: i64 = 86_400_000;

/// The times `POST` accepts at `now_ms`: not older than the retention
/// (retention would delete them at once), at most [`MAX_FUTURE_MS`] ahead
/// (a far-future time is a unit mistake, and would hold a segment open).
pub fn accepted_times(now_ms: i64, retention_ms: i64) -> (i64, i64) {
    (
        now_ms.saturating_sub(retention_ms),
        now_ms.saturating_add(MAX_FUTURE_MS),
    )
}

/// Checks one JSON event and builds it, or says which field is wrong.
/// `now_ms` is the time of events that give none; times outside `window`
/// (from [`accepted_times`]) are rejected.
pub fn parse_event(v: &Value, now_ms: i64, window: (i64, i64)) -> Result<Event, String> {
    let Value::Object(obj) = v else {
        return Err(format!("expected a JSON object, got {}", type_name(v)));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "time" | "kind" | "labels" | "fields"))
    {
        return Err(format!(
            "unknown field {k:?} (expected time, kind, labels, fields)"
        ));
    }
    let ts_ms = match obj.get("time") {
        None | Some(Value::Null) => now_ms,
        Some(t) => parse_event_time(t)?,
    };
    if ts_ms < window.0 {
        return Err(format!(
            "time: {} is older than the events retention (before {})",
            format_rfc3339_ms(ts_ms),
            format_rfc3339_ms(window.0)
        ));
    }
    if ts_ms > window.1 {
        return Err(format!(
            "time: {} is more than 1d ahead of the server's clock",
            format_rfc3339_ms(ts_ms)
        ));
    }
    let kind = match obj.get("kind") {
        Some(Value::String(k)) if valid_label_name(k) => k.clone(),
        Some(Value::String(k)) => {
            return Err(format!("kind {k:?} must match [a-zA-Z_][a-zA-Z0-9_]*"));
        }
        None | Some(Value::Null) => return Err("kind: missing".into()),
        Some(other) => return Err(format!("kind: expected a string, got {}", type_name(other))),
    };
    let labels = match obj.get("labels") {
        None | Some(Value::Null) => Labels::default(),
        Some(Value::Object(m)) => {
            let mut pairs = Vec::with_capacity(m.len());
            for (name, value) in m {
                if !valid_label_name(name) {
                    return Err(format!(
                        "labels: invalid label name {name:?} (must match [a-zA-Z_][a-zA-Z0-9_]*)"
                    ));
                }
                if name.starts_with("__") {
                    return Err(format!(
                        "labels: label name {name:?} is reserved (starts with \"__\")"
                    ));
                }
                let Value::String(value) = value else {
                    return Err(format!(
                        "labels.{name}: expected a string, got {}",
                        type_name(value)
                    ));
                };
                pairs.push((name.as_str(), value.as_str()));
            }
            Labels::from_pairs(pairs)
        }
        Some(other) => {
            return Err(format!(
                "labels: expected an object, got {}",
                type_name(other)
            ));
        }
    };
    let fields = match obj.get("fields") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(f @ Value::Object(_)) => f.to_string(),
        Some(other) => {
            return Err(format!(
                "fields: expected an object, got {}",
                type_name(other)
            ));
        }
    };
    Ok(Event {
        ts_ms,
        kind,
        labels,
        fields,
    })
}

/// Years 0000..=9999, like RFC 3339, in ms.
const TIME_RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;

fn parse_event_time(t: &Value) -> Result<i64, String> {
    let ms = match t {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite())
            .map(|s| (s * 1000.0).round())
            .filter(|ms| (*TIME_RANGE.start() as f64..=*TIME_RANGE.end() as f64).contains(ms))
            .map(|ms| ms as i64)
            .ok_or_else(|| format!("time: {n} is out of range"))?,
        Value::String(s) => parse_time("time", s)
            .map_err(|_| format!("time: cannot parse {s:?} (expected Unix seconds or RFC 3339)"))?,
        other => {
            return Err(format!(
                "time: expected a number or a string, got {}",
                type_name(other)
            ));
        }
    };
    if !TIME_RANGE.contains(&ms) {
        return Err(format!("time: {t} is out of range"));
    }
    Ok(ms)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `POST /api/v1/events`: a JSON array of events.
pub(super) async fn post(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Plain or gzip, decompressed up to the same cap as the other ingest.
    let body = super::ingest::decode_body(&headers, body, st.cfg.server.max_decompressed_bytes)?;
    blocking(move || ingest(&st, &body, super::now_ms())).await
}

/// Parses, validates and stores one request's events.
fn ingest(st: &AppState, body: &[u8], now_ms: i64) -> Result<Response, ApiError> {
    let items: Vec<Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(other) => {
            return Err(ApiError::bad_data(format!(
                "body must be a JSON array of events, got {}",
                type_name(&other)
            )));
        }
        Err(e) => return Err(ApiError::bad_data(format!("invalid JSON body: {e}"))),
    };
    let total = items.len();
    let mut errors: Vec<(usize, String)> = Vec::new();
    let mut accepted: Vec<Event> = Vec::with_capacity(total);
    let mut index_of: Vec<usize> = Vec::with_capacity(total);
    let retention_ms = st.cfg.events.retention.as_millis().min(i64::MAX as u128) as i64;
    let window = accepted_times(now_ms, retention_ms);
    for (i, item) in items.iter().enumerate() {
        // Recovery kinds must also carry what the monitor derives from
        // (component, duration, breaker state...), or they are rejected
        // here instead of being stored and silently not counted.
        let parsed = parse_event(item, now_ms, window).and_then(|e| {
            crate::monitor::RecoveryEvent::from_event(&e)
                .map(|_| e)
                .map_err(|err| err.to_string())
        });
        match parsed {
            Ok(e) => {
                accepted.push(e);
                index_of.push(i);
            }
            Err(reason) => errors.push((i, reason)),
        }
    }
    // Storage refuses a whole append when one event cannot be stored (too
    // large): drop that one alone and store the rest.
    loop {
        match st.events.append(&accepted) {
            Ok(()) => break,
            Err(EventError::Invalid { index, reason }) if index < accepted.len() => {
                accepted.remove(index);
                errors.push((index_of.remove(index), reason));
            }
            Err(e) => return Err(ApiError::internal(format!("storing events: {e}"))),
        }
    }

    // >>> Derived metrics hook: `accepted` holds exactly the events that
    // were just stored (durably). The monitor turns them into series here.
    on_events_stored(st, &accepted);
    // <<<

    if errors.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    errors.sort_by_key(|(i, _)| *i);
    let (first_index, first) = &errors[0];
    let message = format!(
        "{} of {total} events rejected; event {first_index}: {first}",
        errors.len()
    );
    let listed: Vec<Value> = errors
        .iter()
        .take(MAX_ERRORS)
        .map(|(i, e)| json!({"index": i, "error": e}))
        .collect();
    Err(ApiError::bad_data(message).with_details(json!({
        "data": {"accepted": accepted.len(), "rejected": errors.len(), "errors": listed}
    })))
}

/// Called with the events a POST just stored, after they are durable.
/// The monitor's derivation of series from recovery events goes here.
fn on_events_stored(st: &AppState, stored: &[Event]) {
    st.monitor.observe(stored);
}

/// `GET /api/v1/events`.
pub(super) async fn get(
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = parse_query(raw.as_deref().unwrap_or(""))?;
    blocking(move || {
        let page = st.events.query(&q).map_err(|e| match e {
            EventError::BadCursor(_) | EventError::BadQuery(_) => ApiError::bad_data(e.to_string()),
            other => ApiError::internal(format!("reading events: {other}")),
        })?;
        let events: Vec<Value> = page.events.iter().map(event_json).collect();
        let next = page.next.map(|c| c.to_string());
        Ok(axum::Json(json!({
            "status": "success",
            "data": {"events": events, "next": next},
        }))
        .into_response())
    })
    .await
}

/// An event as the API shows it.
pub fn event_json(e: &Event) -> Value {
    let labels: Map<String, Value> = e
        .labels
        .iter()
        .map(|l| (l.name.clone(), Value::String(l.value.clone())))
        .collect();
    // Stored text came from a JSON object; anything else (an in-process
    // writer's mistake) is shown as the string it is.
    let fields = serde_json::from_str::<Value>(&e.fields)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::String(e.fields.clone()));
    json!({
        "time": format_rfc3339_ms(e.ts_ms),
        "kind": e.kind,
        "labels": labels,
        "fields": fields,
    })
}

/// The query parameters of `GET /api/v1/events`, checked.
pub fn parse_query(raw: &str) -> Result<EventQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|e| ApiError::bad_data(format!("invalid query string: {e}")))?;
    let last = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let all = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let start_ms = last("start").map_or(Ok(i64::MIN), |s| parse_time("start", s))?;
    let end_ms = last("end").map_or(Ok(i64::MAX), |s| parse_time("end", s))?;
    if end_ms < start_ms {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let limit = match last("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_data(format!(
                    "invalid parameter \"limit\": {s:?} is not an integer from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let before = last("before")
        .map(|s| {
            s.parse::<Cursor>().map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"before\": {s:?} is not a cursor from a previous \"next\""
                ))
            })
        })
        .transpose()?;
    let kinds = all("kind");
    if let Some(k) = kinds.iter().find(|k| !valid_label_name(k)) {
        return Err(ApiError::bad_data(format!(
            "invalid parameter \"kind\": {k:?} must match [a-zA-Z_][a-zA-Z0-9_]*"
        )));
    }
    let selectors = parse_matches(&all("match[]"))?;
    if selectors.len() > 1 {
        return Err(ApiError::bad_data(
            "invalid parameter \"match[]\": events take at most one selector",
        ));
    }
    let mut matchers = Vec::new();
    for m in selectors.into_iter().flatten() {
        if m.name == "__name__" {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"match[]\": events have no metric name; use {{label=\"...\"}} (got a matcher on __name__ = {:?})",
                m.value
            )));
        }
        let op = match m.op {
            tidemark_query::MatchOp::Equal => tidemark_storage::MatchOp::Equal,
            tidemark_query::MatchOp::NotEqual => tidemark_storage::MatchOp::NotEqual,
            tidemark_query::MatchOp::Regex => tidemark_storage::MatchOp::Regex,
            tidemark_query::MatchOp::NotRegex => tidemark_storage::MatchOp::NotRegex,
        };
        matchers.push(
            Matcher::new(&m.name, op, &m.value)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?,
        );
    }
    Ok(EventQuery {
        start_ms,
        end_ms,
        kinds,
        matchers,
        limit,
        before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_763_652_345;

    fn parse(v: Value) -> Result<Event, String> {
        parse_event(&v, NOW, (0, NOW + MAX_FUTURE_MS))
    }

    #[test]
    fn events_parse_with_defaults_and_every_time_spelling() {
        let e = parse(json!({"kind": "deploy"})).unwrap();
        assert_eq!((e.ts_ms, e.fields.as_str()), (NOW, "{}"));
        assert!(e.labels.is_empty());
        let e = parse(
            json!({"time": 1.5, "kind": "k", "labels": {"component": "db"},
                             "fields": {"attempt": 3}}),
        )
        .unwrap();
        assert_eq!(e.ts_ms, 1500);
        assert_eq!(e.labels.get("component"), Some("db"));
        assert_eq!(e.fields, r#"{"attempt":3}"#);
        assert_eq!(
            parse(json!({"time": "2026-11-27T07:14:12.345Z", "kind": "k"}))
                .unwrap()
                .ts_ms,
            NOW
        );
        assert_eq!(
            parse(json!({"time": "1.5", "kind": "k"})).unwrap().ts_ms,
            1500
        );
    }

    #[test]
    fn bad_events_name_the_field() {
        let cases = [
            (json!([1]), "expected a JSON object"),
            (json!({"kind": "a-b"}), "kind \"a-b\" must match"),
            (json!({}), "kind: missing"),
            (json!({"kind": 3}), "kind: expected a string"),
            (
                json!({"kind": "k", "time": "soon"}),
                "time: cannot parse \"soon\"",
            ),
            (
                json!({"kind": "k", "time": 1e300}),
                "time: 1e+300 is out of range",
            ),
            (
                json!({"kind": "k", "time": true}),
                "time: expected a number or a string",
            ),
            (
                json!({"kind": "k", "labels": {"1x": "v"}}),
                "labels: invalid label name \"1x\"",
            ),
            (json!({"kind": "k", "labels": {"__x": "v"}}), "is reserved"),
            (
                json!({"kind": "k", "labels": {"a": 1}}),
                "labels.a: expected a string",
            ),
            (
                json!({"kind": "k", "labels": []}),
                "labels: expected an object",
            ),
            (
                json!({"kind": "k", "fields": "x"}),
                "fields: expected an object",
            ),
            (json!({"kind": "k", "tags": {}}), "unknown field \"tags\""),
            (
                json!({"kind": "k", "time": -1}),
                "older than the events retention",
            ),
            (
                json!({"kind": "k", "time": (NOW + MAX_FUTURE_MS + 1) as f64 / 1000.0}),
                "more than 1d ahead",
            ),
        ];
        for (v, want) in cases {
            let err = parse(v.clone()).unwrap_err();
            assert!(err.contains(want), "{v}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn query_parameters_are_checked() {
        let q = parse_query(
            "kind=a&kind=b&match[]=%7Bcomponent%3D~%22d.*%22%7D&limit=5&start=10&end=20",
        )
        .unwrap();
        assert_eq!(q.kinds, vec!["a", "b"]);
        assert_eq!((q.start_ms, q.end_ms, q.limit), (10_000, 20_000, 5));
        assert!(q.matchers[0].matches("db") && !q.matchers[0].matches("cache"));
        let q = parse_query("").unwrap();
        assert_eq!(
            (q.start_ms, q.end_ms, q.limit, q.before),
            (i64::MIN, i64::MAX, DEFAULT_LIMIT, None)
        );
        for (raw, want) in [
            ("limit=0", "\"limit\""),
            ("limit=1001", "\"limit\""),
            ("limit=x", "\"limit\""),
            ("before=zz", "\"before\""),
            ("kind=a-b", "\"kind\""),
            ("start=20&end=10", "\"end\""),
            ("start=yesterday", "\"start\""),
            ("match[]=up", "__name__"),
            (
                "match[]=%7Ba%3D%22b%22%7D&match[]=%7Bc%3D%22d%22%7D",
                "at most one",
            ),
        ] {
            let err = parse_query(raw).unwrap_err();
            assert!(
                err.message.contains(want),
                "{raw}: {:?} lacks {want}",
                err.message
            );
        }
    }

    #[test]
    fn events_render_with_millisecond_times_and_parsed_fields() {
        let e = Event {
            ts_ms: NOW,
            kind: "deploy".into(),
            labels: Labels::from_pairs([("component", "db")]),
            fields: r#"{"v":"1.2"}"#.into(),
        };
        assert_eq!(
            event_json(&e),
            json!({"time": "2026-11-27T07:14:12.345Z", "kind": "deploy",
                   "labels": {"component": "db"}, "fields": {"v": "1.2"}})
        );
    }
}
