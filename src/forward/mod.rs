//! Remote-write forwarding: every sample batch Tidemark accepts (HTTP
//! ingest, rule output) is copied to each `[[forward]]` target whose
//! `match` selectors it passes, through a disk-backed queue per target
//! (`<data_dir>/forward/<name>/`, see `queue`), and sent by one task per
//! target as Prometheus remote write 1.0 (see `sender`).
//!
//! ```text
//! producers ── Feed::offer(batch) ──▶ bounded channel ──▶ writer thread
//!   (copy of the batch, waits for          filter per target (cached per series)
//!    "appended"; no per-sample work)       Queue::append (CRC-framed records)
//!                                                     │ notify
//!                                                     ▼
//!                      sender task per target: read from acked position, batch,
//!                      encode, POST, retry/backoff, ack after 2xx
//! ```
//!
//! Invariants:
//! - The producer's cost is one copy of the batch into a message, a
//!   channel send and a wait for the writer's "appended" (one thread hop
//!   per batch, no lock, nothing per sample); filtering and encoding happen
//!   on the writer thread. So when an ingest request is answered, its
//!   samples are in the queue files. When the writer falls behind for
//!   longer than [`FEED_TIMEOUT`] the batch is dropped and counted
//!   (`samples_dropped_total`) rather than blocking ingest.
//! - Delivery is at least once: a sample in the queue is sent until a 2xx
//!   (or a permanent 4xx) acknowledges it; the queue survives restarts.
//!   Records are written before the producer's `offer` returns (a killed
//!   process loses nothing it acknowledged) and fsynced at least every
//!   [`SYNC_EVERY`] (a power loss may lose up to that much of the queue;
//!   the samples stay in local storage). Rule output is offered after its
//!   append: a crash between the two leaves that round's output local only.
//! - Samples are forwarded as the batch was submitted: the target applies
//!   its own out-of-order rules to samples Tidemark itself refused as too
//!   old.

pub mod config;
pub mod matcher;
mod metrics;
pub mod queue;
mod reader;
pub mod record;
pub mod retry;
mod sender;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tidemark_storage::{Db, SeriesId};

pub use config::{BasicAuth, ForwardConfig};
pub use metrics::ForwardCollector;
pub use record::Entry;

use queue::{Queue, QueueOptions};
use sender::{ForwardHealth, Sender, Target};

/// Longest a producer waits for room in the writer's channel.
pub const FEED_TIMEOUT: Duration = Duration::from_secs(1);
/// The queues are fsynced at least this often while written.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Batches buffered between producers and the writer thread.
const CHANNEL_BATCHES: usize = 256;

/// Why the forwarder could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error("forward target {target}: HTTP client: {message}")]
    Client { target: String, message: String },
    #[error("forward writer thread: {0}")]
    Thread(std::io::Error),
}

enum Msg {
    /// Samples, and who waits for them to be appended.
    Batch(Vec<Entry>, crossbeam_channel::Sender<()>),
    Stop,
}

struct Connection {
    tx: crossbeam_channel::Sender<Msg>,
    targets: Vec<Arc<Target>>,
}

/// The producers' handle: cheap to clone; does nothing until the
/// forwarder connects it (no targets configured: nothing ever does).
#[derive(Clone, Default)]
pub struct Feed {
    conn: Arc<OnceLock<Connection>>,
}

impl Feed {
    /// Queues a copy of an accepted batch for every target; returns once
    /// it is written to the queues (or after [`FEED_TIMEOUT`]).
    pub fn offer(&self, entries: &[Entry]) {
        let Some(c) = self.conn.get() else { return };
        if entries.is_empty() {
            return;
        }
        let (done, appended) = crossbeam_channel::bounded(1);
        let sent =
            c.tx.send_timeout(Msg::Batch(entries.to_vec(), done), FEED_TIMEOUT);
        if sent.is_ok() {
            // A timeout here still leaves the batch to the writer.
            let _ = appended.recv_timeout(FEED_TIMEOUT);
        } else {
            for t in &c.targets {
                t.dropped.inc_by(entries.len() as u64);
            }
            tracing::warn!(
                samples = entries.len(),
                "forward queue writer is behind; batch not forwarded"
            );
        }
    }

    /// Whether a forwarder is connected.
    pub fn is_connected(&self) -> bool {
        self.conn.get().is_some()
    }
}

/// The running forwarder: the writer thread and one sender per target.
pub struct Forwarder {
    tx: crossbeam_channel::Sender<Msg>,
    targets: Vec<Arc<Target>>,
    writer: Option<std::thread::JoinHandle<()>>,
    senders: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    collector: Option<ForwardCollector>,
}

impl Forwarder {
    /// Opens every target's queue under `<data_dir>/forward/<name>/`
    /// (reporting torn tails) and starts the writer thread and the senders
    /// on the current tokio runtime. `None` when no target is configured.
    ///
    /// # Errors
    /// A queue cannot be opened, or the HTTP client cannot be built.
    pub fn start(
        db: Arc<Db>,
        cfgs: &[ForwardConfig],
        data_dir: &Path,
        health: &Arc<crate::health::Health>,
    ) -> Result<Option<Forwarder>, ForwardError> {
        if cfgs.is_empty() {
            return Ok(None);
        }
        let now = crate::server::now_ms();
        let counters = metrics::Counters::new();
        let fh = Arc::new(ForwardHealth::new(health.component("forwarder", now)));
        let mut targets = Vec::new();
        for cfg in cfgs {
            let filter = matcher::SeriesFilter::parse(&cfg.matchers).map_err(|message| {
                ForwardError::Client {
                    target: cfg.name.clone(),
                    message,
                }
            })?;
            let dir = data_dir.join("forward").join(&cfg.name);
            let (queue, report) = Queue::open(
                &dir,
                QueueOptions {
                    max_bytes: cfg.max_queue_bytes,
                    segment_bytes: cfg.segment_bytes,
                    max_record_samples: cfg.max_samples_per_send,
                },
            )?;
            for t in &report.torn {
                tracing::warn!(target = %cfg.name, segment = t.segment, offset = t.offset,
                    bytes = t.bytes, reason = t.reason,
                    "forward queue had a torn tail (crash mid-write); cut off");
            }
            if report.bad_ack_file {
                tracing::warn!(target = %cfg.name,
                    "forward queue position file was damaged; resending from the oldest segment");
            }
            if report.unsent_samples > 0 {
                tracing::info!(target = %cfg.name, samples = report.unsent_samples,
                    "forward queue resumes with unsent samples");
            }
            let name = [cfg.name.as_str()];
            targets.push(Arc::new(Target {
                cfg: cfg.clone(),
                filter,
                queue,
                appended: tokio::sync::Notify::new(),
                sent: counters.sent.with_label_values(&name),
                failed: counters.failed.with_label_values(&name),
                dropped: counters.dropped.with_label_values(&name),
                retried: counters.retried.with_label_values(&name),
                oldest_unsent_ms: AtomicI64::new(0),
                last_success_ms: AtomicI64::new(0),
            }));
        }
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
        let writer = {
            let (db, targets) = (db.clone(), targets.clone());
            std::thread::Builder::new()
                .name("forward-writer".into())
                .spawn(move || writer_loop(&rx, &targets, &db))
                .map_err(ForwardError::Thread)?
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut senders = Vec::new();
        for t in &targets {
            let client = crate::http_client::client(t.cfg.timeout).map_err(|message| {
                ForwardError::Client {
                    target: t.cfg.name.clone(),
                    message,
                }
            })?;
            let s = Sender::new(t.clone(), db.clone(), client, fh.clone(), stop_rx.clone());
            senders.push(tokio::spawn(s.run()));
        }
        let collector = ForwardCollector::new(counters, targets.clone());
        Ok(Some(Forwarder {
            tx,
            targets,
            writer: Some(writer),
            senders,
            stop,
            collector: Some(collector),
        }))
    }

    /// Makes `feed` deliver to this forwarder (a feed connects once).
    pub fn connect(&self, feed: &Feed) {
        let _ = feed.conn.set(Connection {
            tx: self.tx.clone(),
            targets: self.targets.clone(),
        });
    }

    /// The `/metrics` collector (taken once, to register it).
    pub fn take_collector(&mut self) -> Option<ForwardCollector> {
        self.collector.take()
    }

    /// Queues what producers handed over, fsyncs the queues, and stops the
    /// senders (a batch in flight is not acknowledged: it is sent again on
    /// the next start).
    pub async fn shutdown(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(w) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        let _ = self.stop.send(true);
        for s in self.senders.drain(..) {
            let _ = s.await;
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.tx.try_send(Msg::Stop);
        let _ = self.stop.send(true);
    }
}

/// Filters each batch per target and appends it to the queues.
fn writer_loop(rx: &crossbeam_channel::Receiver<Msg>, targets: &[Arc<Target>], db: &Db) {
    let mut w = QueueWriter {
        targets,
        db,
        matches: vec![HashMap::new(); targets.len()],
        filtered: Vec::new(),
        failing: vec![false; targets.len()],
    };
    // Under steady load the channel never times out: sync by the clock.
    let mut synced = std::time::Instant::now();
    loop {
        match rx.recv_timeout(SYNC_EVERY) {
            Ok(Msg::Batch(b, done)) => {
                w.queue(&b);
                let _ = done.try_send(());
            }
            Ok(Msg::Stop) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        if synced.elapsed() >= SYNC_EVERY {
            sync_all(targets);
            synced = std::time::Instant::now();
        }
    }
    // Batches a producer handed over while stopping.
    while let Ok(Msg::Batch(b, done)) = rx.try_recv() {
        w.queue(&b);
        let _ = done.try_send(());
    }
    sync_all(targets);
}

struct QueueWriter<'a> {
    targets: &'a [Arc<Target>],
    db: &'a Db,
    /// Per target: series id → passes the target's `match`.
    matches: Vec<HashMap<SeriesId, bool>>,
    filtered: Vec<Entry>,
    /// Per target: the last append failed (log once per failure period).
    failing: Vec<bool>,
}

impl QueueWriter<'_> {
    fn queue(&mut self, batch: &[Entry]) {
        let now = crate::server::now_ms();
        for (i, t) in self.targets.iter().enumerate() {
            let samples: &[Entry] = if t.filter.is_all() {
                batch
            } else {
                let (cache, db) = (&mut self.matches[i], self.db);
                if cache.len() > 1_000_000 {
                    cache.clear();
                }
                self.filtered.clear();
                self.filtered.extend(batch.iter().filter(|(id, _, _)| {
                    *cache
                        .entry(*id)
                        .or_insert_with(|| db.labels(*id).is_some_and(|l| t.filter.matches(&l)))
                }));
                &self.filtered
            };
            if samples.is_empty() {
                continue;
            }
            match t.queue.append(now, samples) {
                Ok(dropped) => {
                    if dropped > 0 {
                        t.dropped.inc_by(dropped);
                        tracing::warn!(target = %t.cfg.name, samples = dropped,
                            max_queue_bytes = t.cfg.max_queue_bytes,
                            "forward queue full; dropped its oldest segment");
                    }
                    self.failing[i] = false;
                    t.appended.notify_one();
                }
                Err(e) => {
                    t.dropped.inc_by(samples.len() as u64);
                    if !self.failing[i] {
                        tracing::error!(target = %t.cfg.name, error = %e,
                            "writing the forward queue; samples dropped until it recovers");
                    }
                    self.failing[i] = true;
                }
            }
        }
    }
}

fn sync_all(targets: &[Arc<Target>]) {
    for t in targets {
        if let Err(e) = t.queue.sync() {
            tracing::error!(target = %t.cfg.name, error = %e, "fsync of the forward queue");
        }
    }
}

/// Starts the forwarder of `serve` (if `[[forward]]` targets are
/// configured): connects the ingest and rule-output feeds and registers
/// the metrics.
///
/// # Errors
/// A queue cannot be opened or the HTTP client not built.
pub fn start_for_server(st: &crate::server::AppState) -> std::io::Result<Option<Forwarder>> {
    let started = Forwarder::start(
        st.db.clone(),
        &st.cfg.forward,
        &st.cfg.storage.data_dir,
        &st.health,
    )
    .map_err(std::io::Error::other)?;
    let Some(mut f) = started else {
        return Ok(None);
    };
    f.connect(&st.forward);
    f.connect(st.rules.feed());
    if let Some(c) = f.take_collector() {
        st.metrics
            .register_collector(Box::new(c))
            .map_err(std::io::Error::other)?;
    }
    Ok(Some(f))
}
