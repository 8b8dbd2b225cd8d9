//! `tidemark serve`: load the configuration (embedded defaults, then
//! `--config`, then flags), open the data directory, serve HTTP until
//! SIGINT/SIGTERM, then drain requests and close the database (flushing
//! the head so the next start replays nothing). `--demo` adds the simulated
//! recovery workload of `crate::monitor::demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tidemark_storage::Db;

use crate::config::{Config, duration::parse_duration};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; every option and its default is in
    /// `src/config/default.toml` (`tidemark config` prints it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides storage.data_dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listen address (overrides server.listen), e.g. 127.0.0.1:9201.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// How long raw data is kept (overrides storage.retention), e.g. 15d,
    /// or 100y to keep backfilled history.
    #[arg(long, value_parser = parse_duration)]
    pub retention: Option<std::time::Duration>,
    /// Run a simulated error-recovery workload (four services with
    /// retries, fallbacks, circuit breakers and error bursts) so the
    /// dashboard, series and default alerts have data (sets monitor.demo).
    #[arg(long)]
    pub demo: bool,
    /// Seed of the demo workload (overrides monitor.demo_seed).
    #[arg(long, requires = "demo")]
    pub demo_seed: Option<u64>,
}

impl ServeArgs {
    /// The effective configuration: file (or embedded defaults) + flags.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut cfg = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            cfg.storage.data_dir = d.clone();
        }
        if let Some(l) = self.listen {
            cfg.server.listen = l;
        }
        if let Some(r) = self.retention {
            cfg.storage.retention = r;
        }
        if self.demo {
            cfg.monitor.demo = true;
        }
        if let Some(seed) = self.demo_seed {
            cfg.monitor.demo_seed = seed;
        }
        Ok(cfg)
    }
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    // Ingest and query handlers run on the blocking pool (parsing, waiting
    // for group commit, evaluation). A small pool bounds memory: every
    // pool thread keeps its own allocator caches, and tokio's default of
    // 512 threads let RSS double under concurrent ingest.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(16)
        .thread_name("tidemark-http")
        .build()
        .context("starting the tokio runtime")?;
    let dir = cfg.storage.data_dir.clone();
    let db = Arc::new(
        Db::open(&dir, cfg.storage_options())
            .with_context(|| format!("opening {}", dir.display()))?,
    );
    rt.block_on(async {
        let running = crate::server::start(db.clone(), cfg)
            .await
            .context("starting the server (rules, listen address)")?;
        tracing::info!(addr = %running.addr, data_dir = %dir.display(), "tidemark serving");
        eprintln!("tidemark listening on http://{}", running.addr);
        if running.state.cfg.monitor.demo {
            eprintln!(
                "demo workload running (seed {}): open http://{}/ to watch it",
                running.state.cfg.monitor.demo_seed, running.addr
            );
        }
        let rules = running.state.rules.clone();
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = reload_on_sighup(rules) => {}
        }
        tracing::info!("shutting down: draining requests");
        running.shutdown().await.context("serving HTTP")
    })?;
    drop(rt);
    match Arc::try_unwrap(db) {
        Ok(db) => db.close().context("closing the database")?,
        // A leaked handle still flushes on drop; nothing else to do.
        Err(_) => tracing::warn!("database still referenced at shutdown; it flushes on drop"),
    }
    Ok(())
}

/// Reloads the rule files on every SIGHUP (as Prometheus does); never
/// returns unless the signal cannot be installed.
async fn reload_on_sighup(rules: Arc<crate::rules::RuleManager>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return std::future::pending().await;
    };
    while hup.recv().await.is_some() {
        let rules = rules.clone();
        let now = crate::server::now_ms();
        match tokio::task::spawn_blocking(move || rules.reload(now)).await {
            Ok(Ok(groups)) => tracing::info!(groups, "SIGHUP: rule files reloaded"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "SIGHUP: rule files not reloaded; the running rules stay")
            }
            Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
        }
    }
    std::future::pending().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
