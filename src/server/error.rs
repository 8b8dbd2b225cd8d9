//! HTTP errors in Prometheus's JSON envelope
//! (`{"status":"error","errorType":"bad_data","error":"..."}`), with the
//! status codes its clients act on: 400 bad input (don't retry), 401
//! missing token, 422 query limits, 429 backpressure (retry after), 503
//! timeouts and shutdown, 500 storage failures.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// Extra fields merged into the JSON body (e.g. ingest counts).
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_data", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl From<tidemark_storage::AppendError> for ApiError {
    fn from(e: tidemark_storage::AppendError) -> Self {
        use tidemark_storage::AppendError as E;
        match e {
            E::Overloaded { .. } => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "unavailable", e.to_string())
            }
            E::Closed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            E::Storage(e) => Self::internal(e.to_string()),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl From<tidemark_storage::Error> for ApiError {
    fn from(e: tidemark_storage::Error) -> Self {
        Self::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "status": "error",
            "errorType": self.kind,
            "error": self.message,
        });
        if let (Some(serde_json::Value::Object(extra)), serde_json::Value::Object(obj)) =
            (self.details, &mut body)
        {
            obj.extend(extra);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
