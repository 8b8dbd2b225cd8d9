//! Alerting endpoints (`src/server/http-api.md`, "Alerting"): alert
//! groups and acknowledgement, silences, alert history and test
//! notifications, over the notifier in `AppState.notifier`.
//!
//! Invariants: bodies are parsed strictly (unknown fields are errors) and
//! every 4xx names the field; handlers hold the notifier's core only for
//! bookkeeping (history reads and test sends run off the core's lock).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, now_ms, parse_time_param};
use crate::notify::history;
use crate::notify::silence::{Recurrence, SilenceInput, SilenceMatcher};
use crate::notify::time::format_rfc3339_ms;

/// Read-token routes.
pub(super) fn read_routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/api/v1/alerts/groups", get(groups))
        .route("/api/v1/silences", get(list_silences))
        .route("/api/v1/alerts/history", get(history))
}

/// Admin-token routes.
pub(super) fn admin_routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/api/v1/alerts/groups/{id}/ack", post(ack))
        .route("/api/v1/silences", post(upsert_silence))
        .route("/api/v1/silence/{id}", delete(expire_silence))
        .route("/api/v1/notifications/test", post(test_notification))
}

fn ok(data: Value) -> Json<Value> {
    Json(json!({"status": "success", "data": data}))
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_data(format!("invalid body: {e}")))
}

fn not_found(message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
}

async fn groups(State(st): State<Arc<AppState>>) -> Json<Value> {
    let groups = st.notifier.groups(now_ms());
    let data: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            json!({
                "id": g.id,
                "receiver": g.receiver,
                "labels": g.labels,
                "alerts": g.alerts.iter().map(|a| json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "state": if a.firing { "firing" } else { "inactive" },
                    "activeAt": format_rfc3339_ms(a.active_at_ms),
                    "value": super::format_value(a.value),
                })).collect::<Vec<_>>(),
                "acknowledged": g.ack.map(|a| json!({
                    "by": a.by, "comment": a.comment, "at": format_rfc3339_ms(a.at_ms),
                })),
                "escalation_level": g.escalation_level,
                "silenced": g.silenced,
            })
        })
        .collect();
    ok(Value::Array(data))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
    #[serde(default)]
    comment: String,
}

async fn ack(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: AckBody = body(&bytes)?;
    if b.by.trim().is_empty() {
        return Err(ApiError::bad_data("by: must name who acknowledges"));
    }
    st.notifier
        .with_core(|c| c.ack(&id, &b.by, &b.comment, now_ms()))
        .map_err(not_found)?;
    persist(&st).await?;
    Ok(ok(json!({"id": id})))
}

async fn persist(st: &Arc<AppState>) -> Result<(), ApiError> {
    let n = st.notifier.clone();
    super::blocking(move || {
        n.persist(false)
            .map_err(|e| ApiError::internal(format!("saving notifier state: {e}")))
    })
    .await
}

async fn list_silences(State(st): State<Arc<AppState>>) -> Json<Value> {
    let now = now_ms();
    let data: Vec<Value> = st.notifier.with_core(|c| {
        c.silences()
            .list()
            .map(|s| {
                json!({
                    "id": s.id,
                    "matchers": s.matchers,
                    "startsAt": format_rfc3339_ms(s.starts_at_ms),
                    "endsAt": format_rfc3339_ms(s.ends_at_ms),
                    "updatedAt": format_rfc3339_ms(s.updated_at_ms),
                    "createdBy": s.created_by,
                    "comment": s.comment,
                    "status": {"state": s.state(now)},
                    "recurrence": s.recurrence,
                })
            })
            .collect()
    });
    ok(Value::Array(data))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SilenceBody {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    starts_at: Option<Value>,
    ends_at: Value,
    created_by: String,
    comment: String,
    #[serde(default)]
    recurrence: Option<Recurrence>,
}

fn time_value(name: &str, v: &Value) -> Result<i64, ApiError> {
    match v {
        Value::String(s) => parse_time_param(name, s),
        Value::Number(n) => parse_time_param(name, &n.to_string()),
        _ => Err(ApiError::bad_data(format!(
            "{name}: expected RFC 3339 or Unix seconds"
        ))),
    }
}

async fn upsert_silence(
    State(st): State<Arc<AppState>>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: SilenceBody = body(&bytes)?;
    let now = now_ms();
    let input = SilenceInput {
        id: b.id,
        matchers: b.matchers,
        starts_at_ms: match &b.starts_at {
            Some(v) => time_value("startsAt", v)?,
            None => now,
        },
        ends_at_ms: time_value("endsAt", &b.ends_at)?,
        created_by: b.created_by,
        comment: b.comment,
        recurrence: b.recurrence,
    };
    let id = st
        .notifier
        .with_core(|c| c.silences_mut().upsert(input, now))
        .map_err(ApiError::bad_data)?;
    persist(&st).await?;
    Ok(ok(json!({"silenceID": id})))
}

async fn expire_silence(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.notifier
        .with_core(|c| c.silences_mut().expire(&id, now_ms()))
        .map_err(|e| {
            if e.starts_with("no silence") {
                not_found(e)
            } else {
                ApiError::bad_data(e)
            }
        })?;
    persist(&st).await?;
    Ok(ok(json!({"silenceID": id})))
}

async fn history(
    State(st): State<Arc<AppState>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    for k in params.keys() {
        if !["start", "end", "alertname", "limit"].contains(&k.as_str()) {
            return Err(ApiError::bad_data(format!("unknown parameter {k:?}")));
        }
    }
    let start = params
        .get("start")
        .map(|s| parse_time_param("start", s))
        .transpose()?
        .unwrap_or(i64::MIN);
    let end = params
        .get("end")
        .map(|s| parse_time_param("end", s))
        .transpose()?
        .unwrap_or(i64::MAX);
    let limit = match params.get("limit") {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_data(format!(
                    "limit: {s:?} is not an integer from 1 to 10000"
                )));
            }
        },
    };
    let q = history::Query {
        start_ms: start,
        end_ms: end,
        alertname: params.get("alertname").cloned(),
        limit,
    };
    let n = st.notifier.clone();
    let (entries, stats) = super::blocking(move || Ok(n.history(&q))).await?;
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut v = json!({
                "time": format_rfc3339_ms(e.time_ms),
                "kind": match e.kind {
                    history::EntryKind::State => "state",
                    history::EntryKind::Notification => "notification",
                },
                "alertname": e.alertname,
                "labels": e.labels,
            });
            let m = v.as_object_mut().expect("object");
            match e.kind {
                history::EntryKind::State => {
                    m.insert("from".into(), json!(e.from));
                    m.insert("to".into(), json!(e.to));
                }
                history::EntryKind::Notification => {
                    m.insert("receiver".into(), json!(e.receiver));
                    m.insert("channel".into(), json!(e.channel));
                    m.insert("outcome".into(), json!(e.outcome));
                    m.insert("error".into(), json!(e.error));
                }
            }
            v
        })
        .collect();
    Ok(ok(json!({"entries": entries, "stats": stats})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    receiver: String,
}

async fn test_notification(
    State(st): State<Arc<AppState>>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: TestBody = body(&bytes)?;
    let results = st
        .notifier
        .test_receiver(&b.receiver, now_ms())
        .await
        .map_err(ApiError::bad_data)?;
    let data: Vec<Value> = results
        .into_iter()
        .map(|(channel, error)| {
            json!({
                "channel": channel,
                "outcome": if error.is_none() { "sent" } else { "failed" },
                "error": error,
            })
        })
        .collect();
    Ok(ok(Value::Array(data)))
}
