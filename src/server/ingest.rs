//! Ingest endpoints: Influx line protocol (`/write`, `/api/v2/write`) and
//! Prometheus remote write 1.0 (`/api/v1/write`).
//!
//! Invariants:
//! - A bad line or series is rejected alone: every valid sample of the
//!   request is stored, and the response counts accepted and rejected
//!   samples and names the first problems (line numbers, series labels).
//! - Success (all stored) is 204. Partial rejection is 400 (clients must
//!   not retry: the valid part is stored). Backpressure is 429 with
//!   Retry-After; storage failure is 500 (retryable).
//! - Responses are sent only after the samples are durable per the fsync
//!   mode. Parsing and waiting run on the blocking pool, never on the
//!   async workers.

use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tidemark_storage::Labels;

use super::error::ApiError;
use super::metrics::{Protocol, RejectReason};
use super::{AppState, blocking};
use crate::ingest::DEFAULT_MAX_ERRORS;
use crate::ingest::lineproto::{LineParser, Precision};
use crate::ingest::remote_write;
use crate::ingest::resolver::{BatchBuilder, RejectedSeries, Resolved};

#[derive(Debug, Default, Deserialize)]
pub(super) struct WriteParams {
    /// `ns` (default), `us`, `ms`, `s` (and 1.x's `n`, `u`).
    precision: Option<String>,
}

/// `POST /write` and `POST /api/v2/write`.
pub(super) async fn line_protocol(
    State(st): State<Arc<AppState>>,
    Query(params): Query<WriteParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let st2 = st.clone();
    let result = line_protocol_inner(st, params, headers, body).await;
    count_request(&st2, Protocol::LineProtocol, &result);
    result
}

/// Counts one ingest request by the status it is answered with.
fn count_request(st: &AppState, p: Protocol, result: &Result<Response, ApiError>) {
    let status = match result {
        Ok(r) => r.status(),
        Err(e) => e.status,
    };
    st.metrics.ingest_request(p, status);
}

async fn line_protocol_inner(
    st: Arc<AppState>,
    params: WriteParams,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let precision = match params.precision.as_deref() {
        None | Some("") => Precision::Nanoseconds,
        Some(p) => p.parse::<Precision>().map_err(|_| {
            ApiError::bad_data(format!("invalid precision {p:?}: expected ns, us, ms or s"))
        })?,
    };
    let body = decode_body(&headers, body, st.cfg.server.max_decompressed_bytes)?;
    blocking(move || ingest_lines(&st, &body, precision)).await
}

fn ingest_lines(st: &AppState, body: &[u8], precision: Precision) -> Result<Response, ApiError> {
    let mut parser = LineParser::new(precision).with_max_errors(DEFAULT_MAX_ERRORS);
    let mut builder = BatchBuilder::new(&st.lp_cache);
    let now = super::now_ms();
    let mut key = Vec::with_capacity(256);
    let summary = parser.parse(body, 1, |p| {
        let ts = p.timestamp_ms.unwrap_or(now);
        for (field, value) in p.fields() {
            key.clear();
            key.extend_from_slice(p.series_key().as_bytes());
            key.push(0xff);
            key.extend_from_slice(field.raw().as_bytes());
            builder.push(&key, ts, value, || {
                let mut name = String::new();
                p.metric_name_into(&field, &mut name);
                Labels::metric(
                    &name,
                    p.tags()
                        .map(|(k, v)| (k.unescape().into_owned(), v.unescape().into_owned())),
                )
            });
        }
    });
    let resolved = builder.finish(&st.db, st.series_limits())?;
    let line_errors: Vec<String> = summary.errors.iter().map(|e| e.to_string()).collect();
    let rejected = Rejected {
        lines: summary.rejected_lines,
        invalid_series: 0,
    };
    store(st, Protocol::LineProtocol, resolved, rejected, line_errors)
}

/// `POST /api/v1/write`: snappy-compressed protobuf `WriteRequest`.
pub(super) async fn remote_write(
    State(st): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let st2 = st.clone();
    let result = remote_write_inner(st, body).await;
    count_request(&st2, Protocol::RemoteWrite, &result);
    result
}

async fn remote_write_inner(st: Arc<AppState>, body: Bytes) -> Result<Response, ApiError> {
    blocking(move || {
        let raw = remote_write::decompress(&body, st.cfg.server.max_decompressed_bytes)
            .map_err(|e| ApiError::bad_data(e.to_string()))?;
        let mut metadata = Vec::new();
        let mut builder = BatchBuilder::new(&st.rw_cache);
        let mut invalid: Vec<String> = Vec::new();
        let mut invalid_samples = 0u64;
        remote_write::visit(
            &raw,
            |series| {
                // Labels are decoded and checked only for series not seen before.
                let mut labels = match st.rw_cache.get(series.key) {
                    Some(_) => None,
                    None => {
                        let mut scratch = Vec::new();
                        let checked = series
                            .labels(&mut scratch)
                            .map_err(|e| e.to_string())
                            .and_then(|()| remote_write::series_labels(&scratch));
                        match checked {
                            Ok(l) => Some(l),
                            Err(reason) => {
                                invalid_samples += series.samples.len() as u64;
                                if invalid.len() < DEFAULT_MAX_ERRORS {
                                    let spelled: Vec<String> =
                                        scratch.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
                                    invalid.push(format!(
                                        "series {{{}}}: {reason}",
                                        spelled.join(", ")
                                    ));
                                }
                                return;
                            }
                        }
                    }
                };
                for &(ts, v) in series.samples {
                    builder.push(series.key, ts, v, || labels.take().unwrap_or_default());
                }
            },
            |m| metadata.push(m),
        )
        .map_err(|e| ApiError::bad_data(e.to_string()))?;
        for m in &metadata {
            st.db
                .set_metadata(&m.metric_family_name, m.kind(), &m.help, &m.unit)?;
        }
        let resolved = builder.finish(&st.db, st.series_limits())?;
        let rejected = Rejected {
            lines: 0,
            invalid_series: invalid_samples,
        };
        store(
            st.as_ref(),
            Protocol::RemoteWrite,
            resolved,
            rejected,
            invalid,
        )
    })
    .await
}

/// What a request rejected before resolving series.
struct Rejected {
    /// Line-protocol lines that did not parse.
    lines: u64,
    /// Remote-write samples of series with invalid labels.
    invalid_series: u64,
}

/// Appends the batch and builds the response.
fn store(
    st: &AppState,
    protocol: Protocol,
    resolved: Resolved,
    rejected: Rejected,
    mut problems: Vec<String>,
) -> Result<Response, ApiError> {
    let outcome = {
        let _in_flight = st.metrics.batch_in_flight();
        st.db.append(&resolved.batch)?
    };
    st.forward.offer(resolved.batch.entries());
    let rejected_lines = rejected.lines;
    st.metrics.ingest_samples(
        protocol,
        outcome.accepted,
        &[
            (RejectReason::TooOld, outcome.too_old),
            (RejectReason::UnknownSeries, outcome.unknown_series),
            (RejectReason::InvalidLine, rejected.lines),
            (RejectReason::InvalidSeries, rejected.invalid_series),
            (RejectReason::SeriesLimit, resolved.rejected_samples),
        ],
    );
    let rejected_samples = resolved.rejected_samples + rejected.invalid_series + outcome.rejected();
    problems.extend(
        resolved
            .rejected_series
            .iter()
            .take(DEFAULT_MAX_ERRORS)
            .map(|RejectedSeries { labels, reason }| format!("series {labels}: {reason}")),
    );
    if outcome.too_old > 0 {
        problems.push(format!(
            "{} samples older than the out-of-order window were rejected",
            outcome.too_old
        ));
    }
    if rejected_lines == 0 && rejected_samples == 0 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let message = problems
        .first()
        .cloned()
        .unwrap_or_else(|| "some samples were rejected".into());
    Err(
        ApiError::bad_data(format!("partial write: {message}")).with_details(serde_json::json!({
            "accepted_samples": outcome.accepted,
            "rejected_samples": rejected_samples,
            "rejected_lines": rejected_lines,
            "errors": problems,
        })),
    )
}

/// Decompresses a gzip body (`Content-Encoding: gzip`) up to `limit` bytes.
pub(super) fn decode_body(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match encoding {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            let mut dec = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
            dec.read_to_end(&mut out)
                .map_err(|e| ApiError::bad_data(format!("invalid gzip body: {e}")))?;
            if out.len() > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "bad_data",
                    format!("gzip body decompresses to more than {limit} bytes"),
                ));
            }
            Ok(out.into())
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_data",
            format!("unsupported Content-Encoding {other:?}: use gzip or none"),
        )),
    }
}
