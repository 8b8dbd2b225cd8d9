//! One target's sender: a tokio task that reads the queue from the acked
//! position, batches records (up to `max_samples_per_send`, waiting at most
//! `batch_send_deadline` for a batch to fill), encodes a remote-write 1.0
//! `WriteRequest` (the prost types of `ingest::remote_write`, snappy
//! block format), POSTs it, and acknowledges it in the queue.
//!
//! Invariants:
//! - The acked position moves only after a 2xx, or after a response that
//!   rejects the batch for good (4xx other than 429: logged, counted in
//!   `failed`, like Prometheus). A retryable failure keeps the batch and
//!   retries it with backoff until it is delivered or the sender stops; a
//!   stop never acknowledges, so the batch is sent again after restart.
//! - Queue reads (file I/O) run on the blocking pool; encoding is per batch
//!   (no per-sample allocation beyond the batch's vectors).
//! - Health `forwarder` is degraded while any target's last attempt failed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use prometheus::IntCounter;
use tidemark_storage::{Db, SeriesId};
use tokio::sync::{Notify, watch};

use super::config::ForwardConfig;
use super::matcher::SeriesFilter;
use super::queue::{Position, Queue, Read, Reader};
use super::record::Entry;
use super::retry::{Backoff, Verdict, classify};
use crate::health::Component;
use crate::ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest};

/// What a target's writer side, sender and metrics share.
pub struct Target {
    pub cfg: ForwardConfig,
    pub filter: SeriesFilter,
    pub queue: Queue,
    /// Woken when records are appended.
    pub appended: Notify,
    pub sent: IntCounter,
    pub failed: IntCounter,
    pub dropped: IntCounter,
    pub retried: IntCounter,
    /// Enqueue time (Unix ms) of the oldest record not yet acknowledged, or
    /// 0 when the sender has nothing in hand.
    pub oldest_unsent_ms: AtomicI64,
    pub last_success_ms: AtomicI64,
}

/// The `forwarder` health component over every target.
pub(crate) struct ForwardHealth {
    component: Component,
    failing: Mutex<BTreeMap<String, String>>,
}

impl ForwardHealth {
    pub(crate) fn new(component: Component) -> Self {
        Self {
            component,
            failing: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn failing(&self, target: &str, reason: String, now_ms: i64) {
        let mut f = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        if f.get(target) == Some(&reason) {
            return;
        }
        f.insert(target.to_string(), reason);
        self.publish(&f, now_ms);
    }

    pub(crate) fn ok(&self, target: &str, now_ms: i64) {
        let mut f = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        if f.remove(target).is_some() {
            self.publish(&f, now_ms);
        }
    }

    fn publish(&self, f: &BTreeMap<String, String>, now_ms: i64) {
        if f.is_empty() {
            self.component.healthy(now_ms);
        } else {
            let parts: Vec<String> = f.iter().map(|(t, r)| format!("target {t}: {r}")).collect();
            self.component.degraded(parts.join("; "), now_ms);
        }
    }
}

/// Samples read from the queue and not yet acknowledged.
#[derive(Default)]
struct Batch {
    samples: Vec<Entry>,
    /// (segment, samples) per record, for [`Queue::ack`].
    consumed: Vec<(u64, u64)>,
    oldest_ms: Option<i64>,
    /// Reader position after the last record in the batch.
    end: Option<Position>,
    /// Damaged records skipped while filling.
    skipped: Vec<(u64, u64, &'static str)>,
}

impl Batch {
    fn clear(&mut self) {
        self.samples.clear();
        self.consumed.clear();
        self.oldest_ms = None;
        self.end = None;
    }
}

/// Reads records until `max` samples or the end of the data.
fn fill(
    q: &Queue,
    r: &mut Reader,
    b: &mut Batch,
    max: usize,
) -> Result<(), super::queue::QueueError> {
    loop {
        // A first record larger than `max` (written under a larger
        // `max_samples_per_send` before a restart) is taken whole.
        let room = if b.samples.is_empty() {
            usize::MAX
        } else {
            max.saturating_sub(b.samples.len())
        };
        match r.next(q, room, &mut b.samples)? {
            Read::Record {
                enqueued_ms,
                samples,
                segment,
            } => {
                b.consumed.push((segment, samples as u64));
                b.oldest_ms.get_or_insert(enqueued_ms);
                b.end = Some(r.position());
                if b.samples.len() >= max {
                    return Ok(());
                }
            }
            Read::NoRoom | Read::End => return Ok(()),
            Read::Skipped {
                segment,
                offset,
                reason,
            } => b.skipped.push((segment, offset, reason)),
        }
    }
}

/// A running sender's state.
pub(crate) struct Sender {
    pub target: Arc<Target>,
    pub db: Arc<Db>,
    pub client: reqwest::Client,
    pub health: Arc<ForwardHealth>,
    pub stop: watch::Receiver<bool>,
    /// Series id → remote-write labels (None: unknown to the index).
    labels: HashMap<SeriesId, Option<Arc<[Label]>>>,
    index: HashMap<SeriesId, usize>,
}

enum Delivery {
    Delivered,
    Rejected,
    Stopped,
}

impl Sender {
    pub(crate) fn new(
        target: Arc<Target>,
        db: Arc<Db>,
        client: reqwest::Client,
        health: Arc<ForwardHealth>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            target,
            db,
            client,
            health,
            stop,
            labels: HashMap::new(),
            index: HashMap::new(),
        }
    }

    /// Stop was requested, or the forwarder is gone.
    fn stopped(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err()
    }

    /// Waits up to `d` for new records or a stop.
    async fn wait(&mut self, d: Duration) {
        let t = self.target.clone();
        tokio::select! {
            _ = t.appended.notified() => {}
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.changed() => {}
        }
    }

    pub(crate) async fn run(mut self) {
        let cfg = self.target.cfg.clone();
        let max = cfg.max_samples_per_send;
        let mut reader = Some(self.target.queue.reader());
        let mut batch = Some(Batch::default());
        while !self.stopped() {
            let (t, mut r, mut b) = (
                self.target.clone(),
                reader.take().expect("reader is put back"),
                batch.take().expect("batch is put back"),
            );
            let joined = tokio::task::spawn_blocking(move || {
                let res = fill(&t.queue, &mut r, &mut b, max);
                (r, b, res)
            })
            .await;
            let Ok((r, mut b, res)) = joined else {
                tracing::error!(target = %cfg.name, "forward queue reader panicked");
                return;
            };
            reader = Some(r);
            for (segment, offset, reason) in b.skipped.drain(..) {
                self.target.dropped.inc();
                tracing::warn!(target = %cfg.name, segment, offset, reason,
                    "damaged forward queue record skipped with the rest of its segment");
            }
            if let Err(e) = res {
                tracing::error!(target = %cfg.name, error = %e, "reading the forward queue");
                batch = Some(b);
                self.wait(Duration::from_secs(1)).await;
                continue;
            }
            let Some(oldest) = b.oldest_ms else {
                self.target.oldest_unsent_ms.store(0, Ordering::Relaxed);
                batch = Some(b);
                self.wait(Duration::from_secs(1)).await;
                continue;
            };
            self.target
                .oldest_unsent_ms
                .store(oldest, Ordering::Relaxed);
            let waited = Duration::from_millis((crate::server::now_ms() - oldest).max(0) as u64);
            if b.samples.len() < max && waited < cfg.batch_send_deadline {
                batch = Some(b);
                self.wait(cfg.batch_send_deadline - waited).await;
                continue;
            }
            let (body, unknown) = self.encode(&b.samples);
            if unknown > 0 {
                self.target.failed.inc_by(unknown);
            }
            let n = b.samples.len() as u64 - unknown;
            let outcome = if n == 0 {
                Delivery::Delivered
            } else {
                self.deliver(body, n).await
            };
            match outcome {
                Delivery::Stopped => return,
                Delivery::Delivered => self.target.sent.inc_by(n),
                Delivery::Rejected => self.target.failed.inc_by(n),
            }
            let end = b.end.expect("a non-empty batch has an end");
            let ack = {
                let (t, consumed) = (self.target.clone(), std::mem::take(&mut b.consumed));
                tokio::task::spawn_blocking(move || t.queue.ack(end, &consumed)).await
            };
            match ack {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(target = %cfg.name, error = %e,
                    "persisting the forward queue position (the batch may be sent again)"),
                Err(e) => tracing::error!(target = %cfg.name, error = %e, "ack task failed"),
            }
            self.target.oldest_unsent_ms.store(0, Ordering::Relaxed);
            b.clear();
            batch = Some(b);
        }
    }

    /// Encodes a batch as a snappy-compressed `WriteRequest`, samples
    /// grouped by series in first-appearance order (each series' samples
    /// keep queue order). Returns the body and how many samples belonged
    /// to series the index does not know (left out).
    pub(crate) fn encode(&mut self, samples: &[Entry]) -> (Bytes, u64) {
        let mut req = WriteRequest::default();
        self.index.clear();
        let mut unknown = 0;
        for &(id, ts, v) in samples {
            let slot = match self.index.get(&id) {
                Some(&i) => i,
                None => {
                    let db = &self.db;
                    let labels = self
                        .labels
                        .entry(id)
                        .or_insert_with(|| {
                            db.labels(id).map(|l| {
                                l.iter()
                                    .map(|l| Label {
                                        name: l.name.clone(),
                                        value: l.value.clone(),
                                    })
                                    .collect()
                            })
                        })
                        .clone();
                    let Some(labels) = labels else {
                        unknown += 1;
                        continue;
                    };
                    req.timeseries.push(TimeSeries {
                        labels: labels.to_vec(),
                        samples: Vec::new(),
                    });
                    self.index.insert(id, req.timeseries.len() - 1);
                    req.timeseries.len() - 1
                }
            };
            req.timeseries[slot].samples.push(Sample {
                value: v,
                timestamp: ts,
            });
        }
        if self.labels.len() > 1_000_000 {
            self.labels.clear();
        }
        let raw = prost::Message::encode_to_vec(&req);
        let body = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("snappy accepts any input below 4 GiB");
        (Bytes::from(body), unknown)
    }

    async fn post(&self, body: Bytes) -> Result<(u16, Option<String>, String), reqwest::Error> {
        let cfg = &self.target.cfg;
        let mut req = self
            .client
            .post(&cfg.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body);
        if let Some(t) = &cfg.bearer_token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &cfg.basic_auth {
            req = req.basic_auth(&b.username, Some(&b.password));
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        let text: String = text.chars().take(512).collect();
        Ok((status, retry_after, text))
    }

    /// Sends until delivered, rejected for good, or stopped.
    async fn deliver(&mut self, body: Bytes, n: u64) -> Delivery {
        let cfg = self.target.cfg.clone();
        let mut backoff = Backoff::new(cfg.min_backoff, cfg.max_backoff);
        let mut attempts = 0u64;
        loop {
            let mut stop = self.stop.clone();
            let res = tokio::select! {
                r = self.post(body.clone()) => r,
                _ = stop.changed() => return Delivery::Stopped,
            };
            attempts += 1;
            let now_ms = crate::server::now_ms();
            let verdict = match res {
                Ok((status, retry_after, text)) => {
                    classify(status, retry_after.as_deref(), &text, SystemTime::now())
                }
                Err(e) => Verdict::Retry {
                    reason: format!("request failed: {}", crate::http_client::error_chain(&e)),
                    retry_after: None,
                },
            };
            match verdict {
                Verdict::Delivered => {
                    self.health.ok(&cfg.name, now_ms);
                    self.target.last_success_ms.store(now_ms, Ordering::Relaxed);
                    if attempts > 1 {
                        tracing::info!(target = %cfg.name, attempts, "remote write recovered");
                    }
                    return Delivery::Delivered;
                }
                Verdict::Reject { reason } => {
                    tracing::error!(target = %cfg.name, url = %cfg.url, samples = n, %reason,
                        "remote write rejected the batch; dropping it (not retryable)");
                    self.health.failing(
                        &cfg.name,
                        format!("dropped {n} samples: {reason}"),
                        now_ms,
                    );
                    return Delivery::Rejected;
                }
                Verdict::Retry {
                    reason,
                    retry_after,
                } => {
                    self.target.retried.inc();
                    let delay = backoff.next_delay(retry_after);
                    if attempts == 1 || attempts.is_power_of_two() {
                        tracing::warn!(target = %cfg.name, url = %cfg.url, attempts, %reason,
                            retry_in_ms = delay.as_millis() as u64, "remote write failed; retrying");
                    }
                    self.health.failing(
                        &cfg.name,
                        format!(
                            "{reason}; retry {attempts} in {}",
                            crate::config::duration::format_duration(delay)
                        ),
                        now_ms,
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => return Delivery::Stopped,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::queue::QueueOptions;
    use tidemark_storage::SeriesId;

    fn queue(dir: &std::path::Path, max_record_samples: usize) -> Queue {
        let opts = QueueOptions {
            max_bytes: 1 << 20,
            segment_bytes: 1 << 16,
            max_record_samples,
        };
        Queue::open(dir, opts).unwrap().0
    }

    #[test]
    fn health_is_degraded_while_any_target_fails() {
        let h = crate::health::Health::new();
        let fh = ForwardHealth::new(h.component("forwarder", 1));
        let get = || {
            h.snapshot()
                .into_iter()
                .find(|c| c.name == "forwarder")
                .unwrap()
        };
        fh.failing("a", "HTTP 503; retry 1 in 30ms".into(), 2);
        fh.failing("b", "request failed: refused".into(), 3);
        let c = get();
        assert_eq!((c.status, c.since_ms), (crate::health::Status::Degraded, 2));
        assert_eq!(
            c.reason.as_deref(),
            Some("target a: HTTP 503; retry 1 in 30ms; target b: request failed: refused")
        );
        fh.ok("a", 4);
        assert_eq!(get().status, crate::health::Status::Degraded);
        assert_eq!(
            get().reason.as_deref(),
            Some("target b: request failed: refused")
        );
        fh.ok("b", 5);
        let c = get();
        assert_eq!(
            (c.status, c.since_ms, c.reason),
            (crate::health::Status::Healthy, 5, None)
        );
    }

    #[test]
    fn fill_stops_at_max_and_takes_an_oversized_first_record_whole() {
        let dir = tempfile::tempdir().unwrap();
        let samples: Vec<Entry> = (0..30).map(|i| (SeriesId(1), i, 0.0)).collect();
        // Records of 10 (as written with max_samples_per_send = 10) ...
        let q = queue(dir.path(), 10);
        q.append(5, &samples).unwrap();
        let mut r = q.reader();
        let mut b = Batch::default();
        fill(&q, &mut r, &mut b, 25).unwrap();
        assert_eq!(b.samples.len(), 20, "the third record does not fit");
        assert_eq!(b.consumed, vec![(1, 10), (1, 10)]);
        assert_eq!(b.oldest_ms, Some(5));
        // ... read back after a restart with max_samples_per_send = 4.
        let mut b = Batch::default();
        fill(&q, &mut r, &mut b, 4).unwrap();
        assert_eq!(b.samples.len(), 10);
        assert_eq!(b.end, Some(r.position()));
        let mut b = Batch::default();
        fill(&q, &mut r, &mut b, 4).unwrap();
        assert!(b.samples.is_empty() && b.end.is_none());
    }
}
