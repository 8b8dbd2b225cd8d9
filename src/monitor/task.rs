//! Driving the monitor inside `tidemark serve`: [`Round`] is one collect
//! round at a given time (derived series, resource figures, health
//! probes); [`MonitorTask`] runs a round every `[monitor] interval` on the
//! blocking pool, and the demo workload when `[monitor] demo` is set.
//!
//! Invariants:
//! - [`Round::run`] takes the time as an argument; only the task reads the
//!   wall clock, so tests drive rounds at chosen times.
//! - [`MonitorTask::stop`] runs one last round (so events derived since
//!   the previous one reach the store, and the next start seeds from
//!   them), waits for it and for the demo to stop; nothing of the monitor
//!   touches the database afterwards.
//! - A failing round is logged once (one line) and reported in health;
//!   the next round tries again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tidemark_storage::{AppendError, Labels};

use super::probes::{self, ProbeInput, WriteFailure};
use super::resources::{self, Resources};
use super::{MonitorError, write};
use crate::server::AppState;

/// State carried between rounds (for "since the last round" figures).
#[derive(Debug, Default)]
pub struct Round {
    overloaded_seen: u64,
    dropped_seen: u64,
    /// The resource figures of the last round.
    pub last_resources: Resources,
}

impl Round {
    /// Runs one round at `now_ms`: writes the derived series and resource
    /// figures (labelled `instance`), then reports component health.
    /// Blocking: call it on the blocking pool.
    pub fn run(&mut self, st: &AppState, instance: &str, now_ms: i64) {
        let mut write_error = None;
        let mut note = |e: MonitorError| {
            if write_error.is_none() {
                tracing::warn!(error = %e, "monitor round: writing series failed");
                write_error = Some(classify(&e));
            }
        };
        if let Err(e) = st.monitor.collect(now_ms) {
            note(e);
        }
        let res = resources::collect(&st.cfg.storage.data_dir, st.cfg.monitor.memory_limit_bytes);
        let (sets, values): (Vec<Labels>, Vec<f64>) = res
            .samples()
            .into_iter()
            .map(|(name, v)| (Labels::metric(name, [("instance", instance)]), v))
            .unzip();
        if let Err(e) = write(&st.db, &st.forward, &sets, &values, now_ms) {
            note(e);
        }
        // Refreshes the storage gauges too, so the stored copy is current.
        let stats = st.db.stats();
        let mut families = crate::server::metrics::per_scrape_families(st, &stats);
        families.extend(st.metrics.gather());
        let (sets, values) = super::selfscrape::samples(&families, instance);
        if let Err(e) = write(&st.db, &st.forward, &sets, &values, now_ms) {
            note(e);
        }

        let overloaded = st.metrics.ingest_overloaded_requests();
        let dropped = st.monitor.dropped_components();
        let (in_flight, limit) = st.metrics.batches_in_flight();
        let input = ProbeInput {
            overloaded_requests: overloaded.saturating_sub(self.overloaded_seen),
            batches_in_flight: in_flight,
            batches_in_flight_limit: limit,
            corrupt_chunks: stats.corrupt_chunks,
            disk_used_ratio: res.disk_used_ratio(),
            write_error,
            failing_rules: failing_rules(st),
            dropped_events: dropped.saturating_sub(self.dropped_seen),
        };
        self.overloaded_seen = overloaded;
        self.dropped_seen = dropped;
        self.last_resources = res;
        for (name, status, reason) in probes::assess(&input) {
            st.health.report(name, status, reason, now_ms);
        }
    }
}

fn classify(e: &MonitorError) -> WriteFailure {
    let msg = e.to_string();
    match e {
        MonitorError::Append(AppendError::Overloaded { .. }) => WriteFailure::Overloaded(msg),
        MonitorError::Append(AppendError::Closed)
        | MonitorError::Storage(tidemark_storage::Error::Closed) => WriteFailure::Closed(msg),
        _ => WriteFailure::Storage(msg),
    }
}

/// `(file/group/rule, error)` of every rule whose last evaluation failed.
fn failing_rules(st: &AppState) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in st.rules.groups().iter() {
        let status = g.round();
        for (rule, s) in g.group.rules.iter().zip(&status.rules) {
            if s.health == crate::rules::scheduler::RuleHealth::Err {
                out.push((
                    format!("{}/{}/{}", g.file, g.group.name, rule.name()),
                    s.last_error.clone().unwrap_or_default(),
                ));
            }
        }
    }
    out
}

/// The monitor's background work: a collect round every interval (the
/// first one interval after start, like a scrape) and, if configured, the
/// demo workload.
pub struct MonitorTask {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MonitorTask {
    /// Starts on the current tokio runtime. `addr` is the bound listen
    /// address (the `instance` label of resource series).
    pub fn start(st: Arc<AppState>, addr: SocketAddr) -> MonitorTask {
        // Listed (healthy since now) before the first round assesses them.
        let now = crate::server::now_ms();
        for name in probes::COMPONENTS {
            st.health.component(name, now);
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = vec![tokio::spawn(run_rounds(
            st.clone(),
            addr.to_string(),
            stopped.clone(),
        ))];
        let m = &st.cfg.monitor;
        if m.demo {
            tasks.push(tokio::spawn(super::demo::run(
                st.monitor.clone(),
                st.db.clone(),
                super::demo::DemoOptions {
                    seed: m.demo_seed,
                    speed: m.demo_speed,
                    ..Default::default()
                },
                stopped,
            )));
        }
        MonitorTask { stop, tasks }
    }

    /// Stops the demo and the rounds after one last round, waiting for
    /// work in progress.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "monitor task failed");
            }
        }
    }
}

async fn run_rounds(
    st: Arc<AppState>,
    instance: String,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let interval = st.cfg.monitor.interval.max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let round = Arc::new(std::sync::Mutex::new(Round::default()));
    let instance: Arc<str> = instance.into();
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            r = stopped.changed() => r.is_err() || *stopped.borrow(),
        };
        let (st, round, instance) = (st.clone(), round.clone(), instance.clone());
        let t = crate::server::now_ms();
        let done = tokio::task::spawn_blocking(move || {
            round
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .run(&st, &instance, t);
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "monitor round failed");
        }
        if last {
            return;
        }
    }
}
