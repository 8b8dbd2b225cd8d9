//! Tidemark's own metrics, served at `GET /metrics` in the Prometheus text
//! exposition format 0.0.4, or OpenMetrics 1.0 when the scraper's `Accept`
//! header prefers `application/openmetrics-text` (negotiated and encoded
//! by `server::openmetrics`).
//!
//! [`Metrics`] owns a private `prometheus::Registry` (never the global
//! default) and every metric:
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `tidemark_build_info` | gauge | `version` |
//! | `tidemark_ingest_samples_accepted_total` | counter | `protocol` |
//! | `tidemark_ingest_samples_rejected_total` | counter | `protocol`, `reason` |
//! | `tidemark_ingest_requests_total` | counter | `protocol`, `code` |
//! | `tidemark_ingest_batches_in_flight` | gauge | |
//! | `tidemark_ingest_batches_in_flight_limit` | gauge | |
//! | `tidemark_head_series` | gauge | |
//! | `tidemark_head_samples` | gauge | |
//! | `tidemark_head_chunk_bytes` | gauge | |
//! | `tidemark_wal_bytes` | gauge | |
//! | `tidemark_partitions` | gauge | |
//! | `tidemark_partition_bytes` | gauge | |
//! | `tidemark_index_bytes` | gauge | |
//! | `tidemark_disk_bytes` | gauge | |
//! | `tidemark_index_series` | gauge | |
//! | `tidemark_index_memory_bytes` | gauge | |
//! | `tidemark_corrupt_chunks_total` | counter | |
//! | `tidemark_storage_samples_appended_total` | counter | | (every producer, in-process included) |
//! | `tidemark_query_duration_seconds` | histogram | `endpoint` |
//! | `tidemark_http_request_duration_seconds` | histogram | `route` |
//! | `tidemark_wal_fsync_duration_seconds` | histogram | | (per scrape: WAL syncs of group commit / `fsync = "always"`) |
//! | `tidemark_tier_bytes` | gauge | `tier` (`raw`, `1m`, `1h`) | (per scrape: in-memory file sizes) |
//! | `tidemark_tier_partitions` | gauge | `tier` | (per scrape) |
//! | `tidemark_rule_group_last_duration_seconds` | gauge | `file`, `group` | (per scrape) |
//! | `tidemark_rule_group_last_evaluation_timestamp_seconds` | gauge | `file`, `group` | (per scrape; 0 before the first round) |
//! | `tidemark_rule_evaluation_failures_total` | counter | `file`, `group` | (per scrape; one per failing rule per round) |
//! | `tidemark_notifications_total` | counter | `receiver`, `channel`, `outcome` (`sent`, `failed`, `suppressed` with `channel="*"`) | (per scrape) |
//! | `tidemark_notification_latency_seconds` | histogram | `channel` | (per scrape: successful sends, retries included) |
//! | `process_*` | | (Linux: CPU, memory, fds, start time, threads) |
//!
//! The families marked "per scrape" are built by `server::metrics_extra`
//! from the database, the rule manager and the notifier at each scrape
//! (they are not in the registry, so the monitor's self-scrape does not
//! store them),
//! plus the recovery monitor's current values (`errors_total`,
//! `recoveries_total`, `recovery_duration_seconds`, breaker states, ...;
//! `crate::monitor::export` lists them), built per scrape.
//!
//! Invariants:
//! - Per-request cost is a few atomic adds on label handles resolved at
//!   start-up; nothing is done per sample.
//! - Storage figures come from `Db::stats()`, which messages every shard
//!   writer, so they are gathered once per scrape, never per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tidemark_storage::DbStats;

use super::error::ApiError;
use super::openmetrics::encode_openmetrics;
pub(super) use super::openmetrics::escape;
pub use super::openmetrics::wants_openmetrics;
use super::{AppState, blocking};

/// The Content-Type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The Content-Type of OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why ingest rejected samples (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// Older than the series' newest sample minus the out-of-order window.
    TooOld = 0,
    /// The series id does not exist.
    UnknownSeries = 1,
    /// A line-protocol line that does not parse (counted once per line).
    InvalidLine = 2,
    /// A remote-write series with invalid labels.
    InvalidSeries = 3,
    /// The series could not be created: series limits.
    SeriesLimit = 4,
}

const REASONS: [&str; 5] = [
    "too_old",
    "unknown_series",
    "invalid_line",
    "invalid_series",
    "series_limit",
];

/// The ingest protocol (the `protocol` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    LineProtocol = 0,
    RemoteWrite = 1,
}

const PROTOCOLS: [&str; 2] = ["line_protocol", "remote_write"];

/// Status codes ingest answers with, resolved up front.
const CODES: [u16; 8] = [204, 400, 401, 413, 415, 429, 500, 503];

/// Every route of the router, resolved up front for the HTTP histogram.
const ROUTES: &[&str] = &[
    "/write",
    "/api/v2/write",
    "/api/v1/write",
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
    "/api/v1/label/{name}/values",
    "/api/v1/metadata",
    "/api/v1/status/buildinfo",
    "/api/v1/rules",
    "/api/v1/alerts",
    "/api/v1/admin/flush",
    "/api/v1/admin/compact",
    "/-/healthy",
    "/-/ready",
    "/metrics",
    "/federate",
];

/// Query endpoints (the `endpoint` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryEndpoint {
    Query = 0,
    QueryRange = 1,
}

/// Errors of rendering the exposition.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("encoding metrics: {0}")]
    Encode(#[from] prometheus::Error),
    #[error("metrics output is not UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

impl From<MetricsError> for ApiError {
    fn from(e: MetricsError) -> Self {
        ApiError::internal(e.to_string())
    }
}

struct ProtocolHandles {
    accepted: IntCounter,
    rejected: [IntCounter; REASONS.len()],
    by_code: [IntCounter; CODES.len()],
}

/// The registry and every metric Tidemark exports about itself.
pub struct Metrics {
    registry: Registry,
    ingest: [ProtocolHandles; PROTOCOLS.len()],
    ingest_requests: IntCounterVec,
    in_flight: IntGauge,
    in_flight_limit: IntGauge,
    head_series: IntGauge,
    head_samples: IntGauge,
    head_bytes: IntGauge,
    wal_bytes: IntGauge,
    partitions: IntGauge,
    partition_bytes: IntGauge,
    index_bytes: IntGauge,
    disk_bytes: IntGauge,
    index_series: IntGauge,
    index_memory_bytes: IntGauge,
    corrupt_chunks: IntCounter,
    samples_appended: IntCounter,
    query: [Histogram; 2],
    http: HashMap<&'static str, Histogram>,
    http_vec: HistogramVec,
}

impl Metrics {
    /// Registers every metric. `inflight_limit` is the storage's in-flight
    /// batch budget (`Options::max_inflight_batches`).
    pub fn new(inflight_limit: usize) -> Self {
        Self::try_new(inflight_limit).expect("static metric definitions are valid and unique")
    }

    fn try_new(inflight_limit: usize) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let build = IntGaugeVec::new(
            Opts::new(
                "tidemark_build_info",
                "Tidemark's version; the value is always 1.",
            ),
            &["version"],
        )?;
        register(r, &build)?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);

        let accepted = IntCounterVec::new(
            Opts::new(
                "tidemark_ingest_samples_accepted_total",
                "Samples stored by the ingest endpoints.",
            ),
            &["protocol"],
        )?;
        register(r, &accepted)?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "tidemark_ingest_samples_rejected_total",
                "Samples rejected by the ingest endpoints, by reason (an unparseable line-protocol line counts as one).",
            ),
            &["protocol", "reason"],
        )?;
        register(r, &rejected)?;
        let ingest_requests = IntCounterVec::new(
            Opts::new(
                "tidemark_ingest_requests_total",
                "Ingest requests answered, by protocol and HTTP status code.",
            ),
            &["protocol", "code"],
        )?;
        register(r, &ingest_requests)?;
        let ingest = [0, 1].map(|p| {
            let proto = PROTOCOLS[p];
            ProtocolHandles {
                accepted: accepted.with_label_values(&[proto]),
                rejected: REASONS.map(|reason| rejected.with_label_values(&[proto, reason])),
                by_code: CODES.map(|c| ingest_requests.with_label_values(&[proto, &c.to_string()])),
            }
        });

        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            register(r, &g)?;
            Ok(g)
        };
        let in_flight = gauge(
            "tidemark_ingest_batches_in_flight",
            "Ingest batches handed to storage and not yet durable (queue depth).",
        )?;
        let in_flight_limit = gauge(
            "tidemark_ingest_batches_in_flight_limit",
            "Most batches storage accepts in flight before applying backpressure.",
        )?;
        in_flight_limit.set(inflight_limit as i64);
        let head_series = gauge("tidemark_head_series", "Series with samples in the head.")?;
        let head_samples = gauge("tidemark_head_samples", "Samples in the head.")?;
        let head_bytes = gauge(
            "tidemark_head_chunk_bytes",
            "Heap bytes of the head's chunks.",
        )?;
        let wal_bytes = gauge("tidemark_wal_bytes", "Bytes of write-ahead log on disk.")?;
        let partitions = gauge("tidemark_partitions", "Partitions (time windows) on disk.")?;
        let partition_bytes = gauge("tidemark_partition_bytes", "Bytes of partitions on disk.")?;
        let index_bytes = gauge("tidemark_index_bytes", "Bytes of the series index on disk.")?;
        let disk_bytes = gauge(
            "tidemark_disk_bytes",
            "Bytes on disk: partitions, index and write-ahead log.",
        )?;
        let index_series = gauge("tidemark_index_series", "Series in the index.")?;
        let index_memory_bytes = gauge(
            "tidemark_index_memory_bytes",
            "Heap bytes of the in-memory index.",
        )?;
        let corrupt_chunks = IntCounter::new(
            "tidemark_corrupt_chunks_total",
            "Corrupt chunks skipped by reads since the database was opened.",
        )?;
        register(r, &corrupt_chunks)?;
        let samples_appended = IntCounter::new(
            "tidemark_storage_samples_appended_total",
            "Samples the engine accepted from every producer (HTTP ingest, rules, the monitor, in-process callers).",
        )?;
        register(r, &samples_appended)?;

        let query_vec = HistogramVec::new(
            HistogramOpts::new(
                "tidemark_query_duration_seconds",
                "PromQL evaluation time, by API endpoint.",
            ),
            &["endpoint"],
        )?;
        register(r, &query_vec)?;
        let query = ["query", "query_range"].map(|e| query_vec.with_label_values(&[e]));

        let http_vec = HistogramVec::new(
            HistogramOpts::new(
                "tidemark_http_request_duration_seconds",
                "HTTP request handling time, by route.",
            ),
            &["route"],
        )?;
        register(r, &http_vec)?;
        let http = ROUTES
            .iter()
            .map(|route| (*route, http_vec.with_label_values(&[*route])))
            .collect();

        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(Self {
            registry,
            ingest,
            ingest_requests,
            in_flight,
            in_flight_limit,
            head_series,
            head_samples,
            head_bytes,
            wal_bytes,
            partitions,
            partition_bytes,
            index_bytes,
            disk_bytes,
            index_series,
            index_memory_bytes,
            corrupt_chunks,
            samples_appended,
            query,
            http,
            http_vec,
        })
    }

    /// Counts one ingest request's stored and rejected samples.
    pub fn ingest_samples(&self, p: Protocol, accepted: u64, rejected: &[(RejectReason, u64)]) {
        let h = &self.ingest[p as usize];
        if accepted > 0 {
            h.accepted.inc_by(accepted);
        }
        for (reason, n) in rejected {
            if *n > 0 {
                h.rejected[*reason as usize].inc_by(*n);
            }
        }
    }

    /// Ingest requests answered 429 or 503 (storage overloaded) so far.
    pub fn ingest_overloaded_requests(&self) -> u64 {
        self.ingest
            .iter()
            .flat_map(|h| CODES.iter().zip(&h.by_code))
            .filter(|(c, _)| matches!(**c, 429 | 503))
            .map(|(_, counter)| counter.get())
            .sum()
    }

    /// (batches in flight, the in-flight limit).
    pub fn batches_in_flight(&self) -> (i64, i64) {
        (self.in_flight.get(), self.in_flight_limit.get())
    }

    /// Counts one ingest request by the status it was answered with.
    pub fn ingest_request(&self, p: Protocol, status: StatusCode) {
        let code = status.as_u16();
        match CODES.iter().position(|c| *c == code) {
            Some(i) => self.ingest[p as usize].by_code[i].inc(),
            None => self
                .ingest_requests
                .with_label_values(&[PROTOCOLS[p as usize], status.as_str()])
                .inc(),
        }
    }

    /// Marks one batch as handed to storage until the guard drops.
    pub fn batch_in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Records one PromQL evaluation.
    pub fn observe_query(&self, e: QueryEndpoint, started: Instant) {
        self.query[e as usize].observe(started.elapsed().as_secs_f64());
    }

    fn observe_http(&self, route: &str, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        match self.http.get(route) {
            Some(h) => h.observe(secs),
            // Matched paths are route templates, so this stays bounded.
            None => self.http_vec.with_label_values(&[route]).observe(secs),
        }
    }

    /// Sets the storage gauges from one `Db::stats()`.
    pub fn set_storage(&self, s: &DbStats) {
        let i = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let u = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.head_series.set(i(s.head_series));
        self.head_samples.set(i(s.head_samples));
        self.head_bytes.set(i(s.head_bytes));
        self.wal_bytes.set(u(s.wal_bytes));
        self.partitions.set(i(s.partitions));
        self.partition_bytes.set(u(s.partition_bytes));
        self.index_bytes.set(u(s.index_bytes));
        self.disk_bytes.set(u(s.disk_bytes));
        self.index_series.set(i(s.series));
        self.index_memory_bytes.set(i(s.index_memory_bytes));
        let seen = self.corrupt_chunks.get();
        if s.corrupt_chunks > seen {
            self.corrupt_chunks.inc_by(s.corrupt_chunks - seen);
        }
        let seen = self.samples_appended.get();
        if s.samples_appended > seen {
            self.samples_appended.inc_by(s.samples_appended - seen);
        }
    }

    /// Adds a collector (the forwarder's) to the `/metrics` registry.
    pub fn register_collector(
        &self,
        c: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(c)
    }

    /// Every registered family's current values (the monitor stores them
    /// as series each round; see `monitor::selfscrape`).
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// The exposition: (Content-Type, body).
    pub fn render(&self, openmetrics: bool) -> Result<(&'static str, String), MetricsError> {
        self.render_with(openmetrics, Vec::new())
    }

    /// The exposition of the registry plus `extra` families (the
    /// monitor's current values, built per scrape).
    pub fn render_with(
        &self,
        openmetrics: bool,
        extra: Vec<MetricFamily>,
    ) -> Result<(&'static str, String), MetricsError> {
        let mut families = self.registry.gather();
        if !extra.is_empty() {
            families.extend(extra);
            families.sort_by(|a, b| a.name().cmp(b.name()));
        }
        if openmetrics {
            return Ok((OPENMETRICS_CONTENT_TYPE, encode_openmetrics(&families)));
        }
        let mut buf = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&families, &mut buf)?;
        Ok((TEXT_CONTENT_TYPE, String::from_utf8(buf)?))
    }
}

fn register<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: &C,
) -> Result<(), prometheus::Error> {
    r.register(Box::new(c.clone()))
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight<'a>(&'a IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The families built per scrape from one `Db::stats()`, the rule groups
/// and the notifier (after refreshing the storage gauges of the registry). With
/// [`Metrics::gather`] this is every Tidemark metric except the monitor's
/// (which `monitor::export` adds on `/metrics` and the monitor stores
/// itself); the monitor's self-scrape stores both.
pub fn per_scrape_families(st: &AppState, stats: &DbStats) -> Vec<MetricFamily> {
    st.metrics.set_storage(stats);
    let mut out = super::metrics_extra::storage_families(stats, &st.db.tier_sizes());
    out.extend(super::metrics_extra::rule_and_notify_families(st));
    out
}

/// `GET /metrics`.
pub(super) async fn handler(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let openmetrics = wants_openmetrics(&headers);
    let (content_type, body) = blocking(move || {
        let mut extra = crate::monitor::export::families(&st.monitor);
        extra.extend(per_scrape_families(&st, &st.db.stats()));
        Ok(st.metrics.render_with(openmetrics, extra)?)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// Middleware timing every request by its route template.
pub(super) async fn track_http(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = next.run(req).await;
    if let Some(route) = route {
        st.metrics.observe_http(route.as_str(), started);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_both_formats_render() {
        let m = Metrics::new(64);
        m.ingest_samples(Protocol::LineProtocol, 3, &[(RejectReason::InvalidLine, 1)]);
        m.ingest_request(Protocol::RemoteWrite, StatusCode::IM_A_TEAPOT);
        m.observe_query(QueryEndpoint::Query, Instant::now());
        let (ct, text) = m.render(false).unwrap();
        assert_eq!(ct, TEXT_CONTENT_TYPE);
        assert!(
            text.contains("tidemark_ingest_samples_accepted_total{protocol=\"line_protocol\"} 3\n")
        );
        assert!(text.contains("code=\"418\""));
        let (ct, om) = m.render(true).unwrap();
        assert_eq!(ct, OPENMETRICS_CONTENT_TYPE);
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE tidemark_ingest_samples_accepted counter\n"));
        assert!(om.contains("# UNIT tidemark_query_duration_seconds seconds\n"));
        assert!(om.contains("le=\"1.0\""), "{om}");
        assert!(
            om.contains("# TYPE tidemark_build info\n")
                && om.contains("\ntidemark_build_info{version=")
        );
    }
}
