//! The HTTP server (axum on tokio): ingest endpoints, health, and (with the
//! query layer) the Prometheus HTTP API.
//!
//! Invariants:
//! - Handlers never block an async worker: anything that parses a body or
//!   waits on storage runs on the blocking pool.
//! - Every route belongs to one token class (write, read, admin) or is open
//!   (health); see `auth`.
//! - Shutdown stops accepting, drains in-flight requests, then the caller
//!   closes the database (which flushes the head).

mod alerting;
mod api;
mod auth;
mod dashboard;
pub mod error;
pub mod events;
mod federate;
mod health;
mod ingest;
pub mod metrics;
pub(crate) mod metrics_extra;
mod openmetrics;
mod params;
mod status;

pub use api::{format_value, value_json};

/// Parses a Prometheus API timestamp (Unix seconds or RFC 3339) to ms.
pub fn parse_time_param(name: &str, s: &str) -> Result<i64, error::ApiError> {
    params::parse_time(name, s)
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use tidemark_storage::Db;

use crate::config::Config;
use crate::ingest::resolver::{SeriesCache, SeriesLimits};
use crate::rules::{RuleManager, Scheduler};
use auth::RequiredToken;

/// What every handler shares.
pub struct AppState {
    pub db: Arc<Db>,
    pub cfg: Arc<Config>,
    /// Line-protocol series keys (`measurement,tags` + field) → ids.
    pub lp_cache: SeriesCache,
    /// Remote-write series keys (raw label fields) → ids. Separate from
    /// `lp_cache` so keys of the two spellings can never collide.
    pub rw_cache: SeriesCache,
    /// Tidemark's own metrics (`/metrics`).
    pub metrics: metrics::Metrics,
    /// The rule groups `serve` evaluates (their status feeds
    /// `/api/v1/rules` and `/api/v1/alerts`).
    pub rules: Arc<RuleManager>,
    /// Component health (`/api/v1/health`).
    pub health: Arc<crate::health::Health>,
    /// Accepted batches go to the remote-write forwarder through this
    /// (inert when no `[[forward]]` target is configured).
    pub forward: crate::forward::Feed,
    /// The recovery monitor (typed events → derived series).
    pub monitor: Arc<crate::monitor::Monitor>,
    /// The event log (`/api/v1/events`), `<data_dir>/events`.
    pub events: Arc<tidemark_storage::events::EventLog>,
    /// The notifier (routing, grouping, silences, channels).
    pub notifier: Arc<crate::notify::Notifier>,
    pub ready: AtomicBool,
}

impl AppState {
    pub fn new(
        db: Arc<Db>,
        cfg: Config,
        rules: Arc<RuleManager>,
        events: Arc<tidemark_storage::events::EventLog>,
        health: Arc<crate::health::Health>,
        notifier: Arc<crate::notify::Notifier>,
    ) -> Arc<Self> {
        let metrics = metrics::Metrics::new(db.options().max_inflight_batches);
        let forward = crate::forward::Feed::default();
        let monitor = Arc::new(
            crate::monitor::Monitor::start(db.clone(), Some(events.clone()), &cfg.monitor)
                .with_feed(forward.clone()),
        );
        Arc::new(Self {
            db,
            cfg: Arc::new(cfg),
            lp_cache: SeriesCache::default(),
            rw_cache: SeriesCache::default(),
            metrics,
            rules,
            health,
            notifier,
            forward,
            monitor,
            events,
            ready: AtomicBool::new(true),
        })
    }

    fn series_limits(&self) -> SeriesLimits {
        SeriesLimits {
            max_series: self.cfg.limits.max_series,
            max_new_per_request: self.cfg.limits.max_new_series_per_request,
        }
    }
}

fn token(class: &'static str, token: &Option<String>) -> RequiredToken {
    RequiredToken {
        class,
        token: token.as_deref().map(Arc::from),
    }
}

/// All routes.
pub fn router(st: Arc<AppState>) -> Router {
    let auth_cfg = &st.cfg.auth;
    let write = Router::new()
        .route("/write", post(ingest::line_protocol))
        .route("/api/v2/write", post(ingest::line_protocol))
        .route("/api/v1/write", post(ingest::remote_write))
        .route("/api/v1/events", post(events::post))
        .route_layer(axum::middleware::from_fn_with_state(
            token("write", &auth_cfg.write_token),
            auth::require_token,
        ));
    let read = Router::new()
        .route("/api/v1/query", get(api::query).post(api::query))
        .route(
            "/api/v1/query_range",
            get(api::query_range).post(api::query_range),
        )
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route("/api/v1/metadata", get(api::metadata))
        .route("/api/v1/status/buildinfo", get(api::buildinfo))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/rules", get(api::rules))
        .route("/api/v1/alerts", get(api::alerts))
        .merge(alerting::read_routes())
        .route("/api/v1/events", get(events::get))
        .route("/federate", get(federate::handler))
        .route("/metrics", get(metrics::handler))
        .route_layer(axum::middleware::from_fn_with_state(
            token("read", &auth_cfg.read_token),
            auth::require_token,
        ));
    let admin = Router::new()
        .route("/api/v1/admin/flush", post(admin_flush))
        .route("/-/reload", post(reload_rules))
        .route("/api/v1/admin/compact", post(admin_compact))
        .merge(alerting::admin_routes())
        .route_layer(axum::middleware::from_fn_with_state(
            token("admin", &auth_cfg.admin_token),
            auth::require_token,
        ));
    let open = Router::new()
        .route("/-/healthy", get(|| async { "Tidemark is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/api/v1/health", get(health::handler))
        // The dashboard page holds no data; its API calls carry the token.
        .merge(dashboard::routes());
    Router::new()
        .merge(write)
        .merge(read)
        .merge(admin)
        .merge(open)
        .route_layer(axum::middleware::from_fn_with_state(
            st.clone(),
            metrics::track_http,
        ))
        .layer(DefaultBodyLimit::max(st.cfg.server.max_body_bytes))
        .with_state(st)
}

/// `POST /api/v1/admin/flush`: writes the head to partitions now.
async fn admin_flush(
    State(st): State<Arc<AppState>>,
) -> Result<axum::http::StatusCode, error::ApiError> {
    blocking(move || Ok(st.db.flush()?)).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `POST /-/reload` (Prometheus's lifecycle endpoint): reads the rule
/// files again. A file that does not validate leaves the running rules as
/// they were and answers 422 with the error (file, group, rule, position).
async fn reload_rules(
    State(st): State<Arc<AppState>>,
) -> Result<axum::Json<serde_json::Value>, error::ApiError> {
    let groups = blocking(move || {
        st.rules.reload(now_ms()).map_err(|e| {
            error::ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "bad_data",
                format!("rule files not reloaded: {e}"),
            )
        })
    })
    .await?;
    Ok(axum::Json(
        serde_json::json!({"status": "success", "data": {"groups": groups}}),
    ))
}

/// `POST /api/v1/admin/compact`: flushes, then folds every partition into
/// its sealed block file (what the background thread does for closed
/// windows), so on-disk size can be measured right after an ingest.
async fn admin_compact(
    State(st): State<Arc<AppState>>,
) -> Result<axum::Json<serde_json::Value>, error::ApiError> {
    let rewritten = blocking(move || {
        st.db.flush()?;
        Ok(st.db.compact()?)
    })
    .await?;
    Ok(axum::Json(
        serde_json::json!({"status": "success", "data": {"partitions_rewritten": rewritten}}),
    ))
}

async fn ready(State(st): State<Arc<AppState>>) -> (axum::http::StatusCode, &'static str) {
    if st.ready.load(Ordering::Acquire) {
        (axum::http::StatusCode::OK, "Tidemark is Ready.\n")
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "Tidemark is shutting down.\n",
        )
    }
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    scheduler: Scheduler,
    notifier: crate::notify::NotifierTask,
    monitor: crate::monitor::MonitorTask,
    forwarder: Option<crate::forward::Forwarder>,
    events_maintenance: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, waits for in-flight requests to finish, then
    /// stops rule evaluation (waiting for a round in progress), so nothing
    /// uses the database when this returns.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.state.ready.store(false, Ordering::Release);
        let _ = self.stop.send(());
        let served = self
            .task
            .await
            .map_err(|e| std::io::Error::other(format!("server task failed: {e}")));
        self.monitor.stop().await;
        self.events_maintenance.abort();
        self.scheduler.stop().await;
        self.notifier.stop().await;
        if let Some(f) = self.forwarder {
            f.shutdown().await;
        }
        served?
    }
}

/// Loads the rules (`cfg.rules`) and their saved state, binds
/// `cfg.server.listen` (port 0 picks a free port), and serves and
/// evaluates rules in the background on the current tokio runtime.
///
/// # Errors
/// An invalid rule file (`InvalidInput`, the message names file, group and
/// rule) or the address cannot be bound.
pub async fn start(db: Arc<Db>, cfg: Config) -> std::io::Result<Running> {
    let rules = RuleManager::from_config(db.clone(), &cfg)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(cfg.server.listen).await?;
    let addr = listener.local_addr()?;
    let rules = Arc::new(rules);
    let events = Arc::new(events::open(&cfg)?);
    let health = crate::health::Health::new();
    let history = Arc::new(crate::notify::events::EventLogHistory::new(events.clone()));
    let notifier = crate::notify::Notifier::new(
        &cfg.notify,
        Some(&cfg.storage.data_dir),
        &health,
        history,
        now_ms(),
    )
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    rules.set_alert_sink(notifier.clone());
    let notifier_task = notifier.start();
    let state = AppState::new(db, cfg, rules.clone(), events.clone(), health, notifier);
    let forwarder = crate::forward::start_for_server(&state)?;
    let app = router(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let scheduler = Scheduler::start(rules);
    let events_maintenance = events::start_maintenance(events);
    let monitor = crate::monitor::MonitorTask::start(state.clone(), addr);
    Ok(Running {
        addr,
        state,
        stop,
        task,
        scheduler,
        notifier: notifier_task,
        monitor,
        forwarder,
        events_maintenance,
    })
}

/// Runs `f` on tokio's blocking pool: parsing bodies, waiting for group
/// commit and evaluating queries must never stall an async worker.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, error::ApiError> + Send + 'static,
) -> Result<T, error::ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error::ApiError::internal(format!("blocking task failed: {e}")))?
}

/// Wall-clock time in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
