//! Notifications with Alertmanager semantics, built in: routing, grouping
//! (group_wait / group_interval / repeat_interval), deduplication through
//! a persisted notification log, silences, inhibition, acknowledgement and
//! escalation, and delivery through [`channel::Channel`]s with retries.
//!
//! - [`channel`]: the payload ([`channel::Notification`], Alertmanager
//!   webhook v4) and the [`channel::Channel`] trait; [`channels`]: console,
//!   file, webhook (and how a channel is built from configuration).
//! - [`config`]: `[notify]`; [`route`]: matchers and the routing tree.
//! - [`group`]: the synchronous core ([`group::Core`]): aggregation
//!   groups, timers, muting, escalation; [`nflog`]: the dedup log;
//!   [`silence`], [`inhibit`]; [`dispatch`]: retries with backoff.
//! - [`history`]: alert history and statistics; [`events`]: the same in
//!   the event log; [`stats`]: delivery counts and latency for `/metrics`
//!   (counted wherever an outcome is recorded in history).
//! - [`Notifier`]: the core behind a mutex, the channels, persistence under
//!   `<data_dir>/notify/state.json` and the tokio driver ([`NotifierTask`]).
//!
//! Invariants:
//! - Only [`NotifierTask`] reads the clock; everything else takes `now_ms`
//!   (send latencies for `/metrics` are measured with a monotonic `Instant`
//!   and never decide anything).
//! - The core's mutex is held for bookkeeping only, never across a send or
//!   file write: each delivery runs in its own tokio task, so a slow or
//!   failing channel never blocks the others or the rule evaluator.
//! - The state file is written atomically (temporary file, fsync, rename)
//!   after every tick that changed it and on stop; an unreadable file is
//!   logged and the notifier starts empty rather than refusing to start.

pub mod channel;
pub mod channels;
pub mod config;
pub mod dispatch;
pub mod events;
pub mod group;
pub mod history;
pub mod inhibit;
pub mod nflog;
pub mod route;
pub mod silence;
pub mod stats;
pub mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::health::{Component, Health};
use crate::rules::Alert;
use channel::{Channel, Notification, NotifyStatus, PayloadAlert};
use config::{NotifyConfig, RetryConfig};
use group::{Core, CoreConfig, Dispatch, GroupView, PersistedState};
use history::{Entry, History, Outcome};

/// The state file under `<data_dir>/notify/`.
pub const STATE_FILE: &str = "state.json";

/// Why the notifier could not start or persist.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notify configuration: {0}")]
    Config(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Receives each rule group's alerts after an evaluation.
pub trait AlertSink: Send + Sync {
    /// The complete alert list of rule group `source` (pending, firing and
    /// recently resolved), each with its rule's expression, at `now_ms`.
    fn alerts(&self, source: &str, alerts: &[(Alert, String)], now_ms: i64);
}

/// The notifier.
pub struct Notifier {
    core: Mutex<Core>,
    channels: BTreeMap<String, Vec<Arc<dyn Channel>>>,
    channel_health: BTreeMap<(String, usize), Component>,
    component: Component,
    retry: RetryConfig,
    history: Arc<dyn History>,
    stats: stats::NotifyStats,
    state_path: Option<PathBuf>,
    external_url: String,
    save_lock: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Notifier {
    /// Builds routes and channels from `cfg`, loads the persisted state
    /// from `<data_dir>/notify/` (when a data dir is given) and registers
    /// health components at `now_ms`.
    ///
    /// # Errors
    /// Invalid configuration or a channel that cannot be built.
    pub fn new(
        cfg: &NotifyConfig,
        data_dir: Option<&Path>,
        health: &Arc<Health>,
        history: Arc<dyn History>,
        now_ms: i64,
    ) -> Result<Arc<Self>, NotifyError> {
        let mut channels = BTreeMap::new();
        for r in &cfg.receivers {
            let mut list = Vec::new();
            for (i, c) in r.channels.iter().enumerate() {
                list.push(channels::build(c).map_err(|e| {
                    NotifyError::Config(format!("receiver {:?} channel {i}: {e}", r.name))
                })?);
            }
            channels.insert(r.name.clone(), list);
        }
        Self::with_channels(cfg, channels, data_dir, health, history, now_ms)
    }

    /// Like [`Notifier::new`], with the channel implementations given:
    /// receiver name → channels (an embedding program's own [`Channel`]s,
    /// or test doubles). Every receiver of `cfg` must be present.
    ///
    /// # Errors
    /// Invalid configuration, or `channels` and `cfg.receivers` name
    /// different receivers.
    pub fn with_channels(
        cfg: &NotifyConfig,
        channels: BTreeMap<String, Vec<Arc<dyn Channel>>>,
        data_dir: Option<&Path>,
        health: &Arc<Health>,
        history: Arc<dyn History>,
        now_ms: i64,
    ) -> Result<Arc<Self>, NotifyError> {
        let mut core_cfg = CoreConfig::from_config(cfg).map_err(NotifyError::Config)?;
        let configured: std::collections::BTreeSet<&String> =
            cfg.receivers.iter().map(|r| &r.name).collect();
        if !channels.keys().eq(configured.iter().copied()) {
            return Err(NotifyError::Config(format!(
                "channels given for receivers {:?}, configured {configured:?}",
                channels.keys().collect::<Vec<_>>()
            )));
        }
        core_cfg.receivers = channels
            .iter()
            .map(|(name, list)| (name.clone(), list.iter().map(|c| c.kind()).collect()))
            .collect();
        let mut channel_health = BTreeMap::new();
        for (name, list) in &channels {
            for (i, ch) in list.iter().enumerate() {
                channel_health.insert(
                    (name.clone(), i),
                    health.component(format!("channel:{name}/{}", ch.kind()), now_ms),
                );
            }
        }
        let state_path = data_dir.map(|d| d.join("notify").join(STATE_FILE));
        let component = health.component("notifier", now_ms);
        let state = match state_path.as_deref().map(load_state) {
            Some(Ok(s)) => s,
            None => PersistedState::default(),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "ignoring unreadable notifier state; starting empty");
                component.degraded(format!("state file unreadable, started empty: {e}"), now_ms);
                PersistedState::default()
            }
        };
        Ok(Arc::new(Self {
            core: Mutex::new(Core::new(core_cfg, state)),
            channels,
            channel_health,
            component,
            retry: cfg.retry.clone(),
            history,
            stats: stats::NotifyStats::default(),
            state_path,
            external_url: cfg.external_url.trim_end_matches('/').to_string(),
            save_lock: Mutex::new(()),
        }))
    }

    /// Delivery counts and latencies (for `/metrics`).
    pub fn stats(&self) -> &stats::NotifyStats {
        &self.stats
    }

    /// Records `entries` in history and counts their outcomes.
    fn record(&self, entries: &[Entry]) {
        self.stats.count(entries);
        self.history.record(entries);
    }

    /// Runs `f` on the core.
    pub fn with_core<T>(&self, f: impl FnOnce(&mut Core) -> T) -> T {
        f(&mut lock(&self.core))
    }

    /// Everything due at `now_ms` (records suppressions in history).
    pub fn tick(&self, now_ms: i64) -> Vec<Dispatch> {
        let (ds, hist) = lock(&self.core).tick(now_ms);
        self.record(&hist);
        ds
    }

    /// Sends `d` through its channel with retries, then records the
    /// outcome (notification log, history, channel health).
    pub async fn deliver(&self, d: Dispatch) {
        let Some(ch) = self
            .channels
            .get(&d.receiver)
            .and_then(|l| l.get(d.channel))
        else {
            return;
        };
        let started = std::time::Instant::now();
        let (attempts, result) = dispatch::send_with_retry(
            ch.as_ref(),
            &d.notification,
            &self.retry,
            tokio::time::sleep,
        )
        .await;
        if result.is_ok() {
            self.stats.observe_latency(ch.kind(), started.elapsed());
        }
        let now = time::now_ms();
        let error = result.as_ref().err().map(|e| e.to_string());
        if let Some(h) = self.channel_health.get(&(d.receiver.clone(), d.channel)) {
            match &error {
                None => h.healthy(now),
                Some(e) => h.degraded(format!("{e} (after {attempts} attempts)"), now),
            }
        }
        if let Some(e) = &error {
            tracing::warn!(receiver = %d.receiver, channel = d.channel_kind, error = %e, attempts, "notification failed");
        }
        let entry = lock(&self.core).delivered(&d, error, now);
        self.record(&[entry]);
    }

    /// Spawns one task per dispatch on the current tokio runtime.
    pub fn spawn_deliveries(self: &Arc<Self>, ds: Vec<Dispatch>) {
        for d in ds {
            let me = self.clone();
            tokio::spawn(async move { me.deliver(d).await });
        }
    }

    /// Writes the state file if anything changed (or `force`).
    ///
    /// # Errors
    /// The file cannot be written (also reported as `notifier` degraded).
    pub fn persist(&self, force: bool) -> Result<(), NotifyError> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        let _g = lock(&self.save_lock);
        let json = {
            let mut core = lock(&self.core);
            if !core.take_dirty() && !force {
                return Ok(());
            }
            serde_json::to_vec(&core.state).expect("state serializes")
        };
        let now = time::now_ms();
        match write_atomic(path, &json) {
            Ok(()) => {
                self.component.healthy(now);
                Ok(())
            }
            Err(e) => {
                lock(&self.core).mark_dirty();
                self.component.degraded(e.to_string(), now);
                Err(e)
            }
        }
    }

    /// The groups as the API shows them.
    pub fn groups(&self, now_ms: i64) -> Vec<GroupView> {
        lock(&self.core).groups(now_ms)
    }

    /// History entries and statistics.
    pub fn history(&self, q: &history::Query) -> (Vec<Entry>, Vec<history::Stats>) {
        self.history.query(q)
    }

    /// Names of configured receivers.
    pub fn receivers(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }

    /// Sends a test notification through every channel of `receiver`
    /// (one attempt each, concurrently); `(channel kind, error)` per channel.
    ///
    /// # Errors
    /// Unknown receiver.
    pub async fn test_receiver(
        &self,
        receiver: &str,
        now_ms: i64,
    ) -> Result<Vec<(&'static str, Option<String>)>, String> {
        let list = self
            .channels
            .get(receiver)
            .ok_or_else(|| format!("receiver: no receiver {receiver:?}"))?;
        let labels = BTreeMap::from([
            (
                "alertname".to_string(),
                "TidemarkTestNotification".to_string(),
            ),
            ("severity".to_string(), "none".to_string()),
        ]);
        let alert = PayloadAlert {
            status: NotifyStatus::Firing,
            labels: labels.clone(),
            annotations: BTreeMap::from([(
                "summary".to_string(),
                "Test notification from Tidemark: this channel works.".to_string(),
            )]),
            starts_at: time::format_rfc3339_ms(now_ms),
            ends_at: time::ZERO_TIME.to_string(),
            generator_url: self.external_url.clone(),
            fingerprint: format!("{:016x}", route::fingerprint(&labels)),
        };
        let key = format!("{{}}/test:{}", route::labels_string(&labels));
        let n = Notification::new(
            receiver,
            &key,
            labels.clone(),
            &self.external_url,
            vec![alert],
        );
        let sends: Vec<_> = list
            .iter()
            .map(|ch| {
                let n = &n;
                async move {
                    let started = std::time::Instant::now();
                    let err = ch.send(n).await.err().map(|e| e.to_string());
                    if err.is_none() {
                        self.stats.observe_latency(ch.kind(), started.elapsed());
                    }
                    (ch.kind(), err)
                }
            })
            .collect();
        let results = join_all(sends).await;
        let entries: Vec<Entry> = results
            .iter()
            .map(|(kind, err)| {
                Entry::notification(
                    now_ms,
                    &labels,
                    receiver,
                    kind,
                    if err.is_none() {
                        Outcome::Sent
                    } else {
                        Outcome::Failed
                    },
                    err.clone(),
                )
            })
            .collect();
        self.record(&entries);
        Ok(results)
    }

    /// Starts the production driver: every second, tick at the wall clock,
    /// spawn deliveries and persist.
    pub fn start(self: &Arc<Self>) -> NotifierTask {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        let ds = me.tick(time::now_ms());
                        me.spawn_deliveries(ds);
                        if !me.with_core(|c| c.is_dirty()) {
                            continue;
                        }
                        let m = me.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            if let Err(e) = m.persist(false) {
                                tracing::warn!(error = %e, "saving notifier state failed");
                            }
                        })
                        .await;
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        NotifierTask {
            stop,
            task,
            notifier: self.clone(),
        }
    }
}

/// Runs futures concurrently on the current task and collects their outputs in order.
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut handles: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, h) in handles.iter_mut().enumerate() {
            if out[i].is_none() {
                match h.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("all ready")).collect()
}

impl AlertSink for Notifier {
    fn alerts(&self, source: &str, alerts: &[(Alert, String)], now_ms: i64) {
        let with_urls: Vec<(Alert, String)> = alerts
            .iter()
            .map(|(a, expr)| {
                let q = serde_urlencoded::to_string([("g0.expr", expr.as_str()), ("g0.tab", "1")])
                    .unwrap_or_default();
                (a.clone(), format!("{}/graph?{q}", self.external_url))
            })
            .collect();
        let hist = lock(&self.core).on_alerts(source, &with_urls, now_ms);
        self.record(&hist);
    }
}

/// The running driver.
pub struct NotifierTask {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    notifier: Arc<Notifier>,
}

impl NotifierTask {
    /// Stops ticking and writes the state file.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let n = self.notifier;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = n.persist(true) {
                tracing::warn!(error = %e, "saving notifier state failed");
            }
        })
        .await;
    }
}

fn load_state(path: &Path) -> Result<PersistedState, NotifyError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PersistedState::default()),
        Err(source) => {
            return Err(NotifyError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut s: PersistedState = serde_json::from_slice(&bytes).map_err(|e| NotifyError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    for bad in s.silences.after_load() {
        tracing::warn!(%bad, "dropped an invalid silence from the state file");
    }
    Ok(s)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NotifyError> {
    use std::io::Write;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| NotifyError::Io { path: p, source }
    };
    let dir = path.parent().expect("state path has a parent");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
#[path = "notifier_tests.rs"]
mod tests;
