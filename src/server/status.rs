//! `GET /api/v1/status/tsdb`: cardinality in Prometheus's shape plus
//! Tidemark's per-tier sizes (see `crate::tsdb_status`). Scans the index,
//! partitions and tier files on the blocking pool.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};

use super::error::ApiError;
use super::{AppState, blocking};

/// Entries per list when `limit` is not given (Prometheus's default).
const DEFAULT_LIMIT: usize = 10;

pub(super) async fn tsdb(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(ApiError::bad_data(format!(
                    "limit must be a positive integer, got {s:?}"
                )));
            }
        },
    };
    let status = blocking(move || {
        let events = Some(st.events.stats());
        crate::tsdb_status::tsdb_status(&st.db, limit, events)
            .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(axum::Json(
        serde_json::json!({"status": "success", "data": status}),
    ))
}
