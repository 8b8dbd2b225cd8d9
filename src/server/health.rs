//! `GET /api/v1/health` (open, no token): the component health registry
//! (`AppState.health`) in the shape `src/server/http-api.md` ("Health")
//! fixes: overall status (the worst component's) and every component with
//! its status, reason and since when (RFC 3339 with milliseconds).
//!
//! Invariant: the handler only reads the registry (one short lock); the
//! probes that fill it run elsewhere (monitor rounds, notifier, channels).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::health::ComponentReport;

/// `2026-11-27T07:14:12.345Z`: always three fraction digits.
fn time_ms(ms: i64) -> String {
    let whole = super::params::format_rfc3339(ms - ms.rem_euclid(1000));
    let base = whole.strip_suffix('Z').unwrap_or(&whole);
    format!("{base}.{:03}Z", ms.rem_euclid(1000))
}

fn component(c: &ComponentReport) -> Value {
    json!({
        "name": c.name,
        "status": c.status,
        "reason": c.reason,
        "since": time_ms(c.since_ms),
    })
}

/// `GET /api/v1/health`.
pub(super) async fn handler(State(st): State<Arc<AppState>>) -> Json<Value> {
    let components: Vec<Value> = st.health.snapshot().iter().map(component).collect();
    Json(json!({
        "status": "success",
        "data": {
            "status": st.health.overall(),
            "components": components,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Status;

    #[test]
    fn times_have_milliseconds_and_components_their_fields() {
        assert_eq!(time_ms(1_795_763_652_345), "2026-11-27T07:14:12.345Z");
        assert_eq!(time_ms(1_795_763_652_000), "2026-11-27T07:14:12.000Z");
        let c = ComponentReport {
            name: "wal".into(),
            status: Status::Degraded,
            reason: Some("disk 97 % full".into()),
            since_ms: 1_795_763_652_005,
        };
        assert_eq!(
            component(&c),
            json!({"name": "wal", "status": "degraded", "reason": "disk 97 % full",
                   "since": "2026-11-27T07:14:12.005Z"})
        );
    }
}
