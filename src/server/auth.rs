//! Optional bearer tokens, one per class of endpoint (write, read, admin).
//! An unset token leaves its class open; a set one requires
//! `Authorization: Bearer <token>`, compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The token a route group requires, if any.
#[derive(Clone)]
pub(super) struct RequiredToken {
    pub(super) class: &'static str,
    pub(super) token: Option<Arc<str>>,
}

pub(super) async fn require_token(
    State(req_token): State<RequiredToken>,
    req: Request,
    next: Next,
) -> Response {
    let Some(expected) = &req_token.token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), expected.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("invalid bearer token for {} endpoints", req_token.class),
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "{} endpoints need an Authorization: Bearer token",
                req_token.class
            ),
        )
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
