//! One ingest shard: a bounded queue and the writer thread that owns the
//! shard's head and WAL.
//!
//! Invariants:
//! - Only the writer thread touches its [`Head`] and [`Wal`]; producers and
//!   readers talk to it through the queue, so the per-sample path takes no
//!   lock.
//! - A batch is acknowledged (its ticket part finished) only after its WAL
//!   record is fsynced (`always`: per batch; `batch`: group commit when the
//!   queue drains or `group_commit` after the oldest unsynced batch) or,
//!   with `never`, once applied.
//! - Only accepted samples reach the WAL, so replay cannot resurrect a
//!   sample that was rejected as too old.
//! - Head flush: sync, rotate the WAL, write the head's chunks durably to the
//!   partitions, and only then delete the WAL segments before the rotation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::error::Error;
use crate::head::{Appended, Head};
use crate::index::Index;
use crate::partition::{Partitions, PendingChunk, encode_for_partitions};
use crate::selfstats::FsyncHistogram;
use crate::ticket::TicketState;
use crate::types::{Sample, SeriesId, Timestamp};
use crate::wal::{self, FsyncMode, Wal};

/// One `(series, timestamp, value)` entry of a batch.
pub(crate) type Entry = (SeriesId, Timestamp, f64);

/// Head samples of several series, answered to a reader.
pub(crate) type HeadSnapshot = Vec<(SeriesId, Vec<Sample>)>;

/// A message to a shard writer.
pub(crate) enum Msg {
    Append {
        entries: Vec<Entry>,
        ticket: Arc<TicketState>,
    },
    Read {
        ids: Vec<SeriesId>,
        start: Timestamp,
        end: Timestamp,
        reply: crossbeam_channel::Sender<HeadSnapshot>,
    },
    Flush {
        reply: crossbeam_channel::Sender<Result<(), String>>,
    },
    Stats {
        reply: crossbeam_channel::Sender<ShardStats>,
    },
}

/// A shard's head figures.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ShardStats {
    pub(crate) head_series: usize,
    pub(crate) head_samples: usize,
    pub(crate) head_bytes: usize,
    pub(crate) wal_bytes: u64,
    /// Samples accepted by this shard since open.
    pub(crate) samples_appended: u64,
    /// Durations of this shard's WAL syncs since open.
    pub(crate) fsync: FsyncHistogram,
}

/// Settings a writer needs.
#[derive(Clone, Debug)]
pub(crate) struct WriterConfig {
    pub(crate) fsync: FsyncMode,
    pub(crate) group_commit: Duration,
    pub(crate) flush_interval: Duration,
    pub(crate) max_head_samples: usize,
}

pub(crate) struct Writer {
    pub(crate) cfg: WriterConfig,
    pub(crate) rx: crossbeam_channel::Receiver<Msg>,
    pub(crate) head: Head,
    pub(crate) wal: Wal,
    pub(crate) index: Arc<Index>,
    pub(crate) parts: Arc<Partitions>,
    /// Emptied entry buffers handed back to producers for reuse.
    pub(crate) free: Arc<ArrayQueue<Vec<Entry>>>,
    pending: Vec<Arc<TicketState>>,
    oldest_unsynced: Option<Instant>,
    last_flush: Instant,
    wal_buf: Vec<u8>,
    scratch: Vec<Sample>,
    chunks: Vec<PendingChunk>,
    failed: Option<String>,
    /// Samples accepted since open (owned by this thread; read via `Stats`).
    appended: u64,
    /// WAL sync durations (owned by this thread; read via `Stats`).
    fsync_hist: FsyncHistogram,
}

impl Writer {
    pub(crate) fn new(
        cfg: WriterConfig,
        rx: crossbeam_channel::Receiver<Msg>,
        head: Head,
        wal: Wal,
        index: Arc<Index>,
        parts: Arc<Partitions>,
        free: Arc<ArrayQueue<Vec<Entry>>>,
    ) -> Self {
        Self {
            cfg,
            rx,
            head,
            wal,
            index,
            parts,
            free,
            pending: Vec::new(),
            oldest_unsynced: None,
            last_flush: Instant::now(),
            wal_buf: Vec::new(),
            scratch: Vec::new(),
            chunks: Vec::new(),
            failed: None,
            appended: 0,
            fsync_hist: FsyncHistogram::default(),
        }
    }

    /// Runs until every sender is gone, then flushes the head.
    pub(crate) fn run(mut self) {
        loop {
            let timeout = match self.oldest_unsynced {
                Some(t) => self.cfg.group_commit.saturating_sub(t.elapsed()),
                None => self
                    .cfg
                    .flush_interval
                    .saturating_sub(self.last_flush.elapsed())
                    .min(Duration::from_secs(1)),
            };
            match self.rx.recv_timeout(timeout) {
                Ok(msg) => self.handle(msg),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            let idle = self.rx.is_empty();
            let due = self
                .oldest_unsynced
                .is_some_and(|t| t.elapsed() >= self.cfg.group_commit);
            if idle || due {
                self.commit();
            }
            if self.head.samples() >= self.cfg.max_head_samples
                || (self.head.samples() > 0 && self.last_flush.elapsed() >= self.cfg.flush_interval)
            {
                let _ = self.flush();
            }
        }
        self.commit();
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "final head flush failed; the WAL keeps the data for replay");
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Append { entries, ticket } => self.append(entries, ticket),
            Msg::Read {
                ids,
                start,
                end,
                reply,
            } => {
                let snapshot = ids
                    .into_iter()
                    .map(|id| {
                        let mut out = Vec::new();
                        self.head.collect(id, start, end, &mut out);
                        (id, out)
                    })
                    .collect();
                let _ = reply.send(snapshot);
            }
            Msg::Flush { reply } => {
                self.commit();
                let _ = reply.send(self.flush().map_err(|e| e.to_string()));
            }
            Msg::Stats { reply } => {
                let _ = reply.send(ShardStats {
                    head_series: self.head.active_series(),
                    head_samples: self.head.samples(),
                    head_bytes: self.head.memory_bytes(),
                    wal_bytes: self.wal.size_bytes(),
                    samples_appended: self.appended,
                    fsync: self.fsync_hist,
                });
            }
        }
    }

    fn append(&mut self, mut entries: Vec<Entry>, ticket: Arc<TicketState>) {
        if let Some(e) = &self.failed {
            ticket.fail(e);
            ticket.finish_part();
            self.recycle(entries);
            return;
        }
        let (mut too_old, mut unknown) = (0, 0);
        let head = &mut self.head;
        let index = &self.index;
        entries.retain(|&(id, ts, v)| {
            if !index.contains(id) {
                unknown += 1;
                return false;
            }
            match head.append(id, ts, v) {
                Appended::Yes => true,
                Appended::TooOld => {
                    too_old += 1;
                    false
                }
            }
        });
        ticket.count(entries.len() as u64, too_old, unknown);
        self.appended += entries.len() as u64;
        if !entries.is_empty() {
            self.wal_buf.clear();
            wal::encode_samples(entries.iter().copied(), &mut self.wal_buf);
            if let Err(e) = self.wal.append(&self.wal_buf) {
                self.fail(Error::from(e));
            }
        }
        self.recycle(entries);
        self.pending.push(ticket);
        self.oldest_unsynced.get_or_insert_with(Instant::now);
        if self.cfg.fsync == FsyncMode::Always {
            self.commit();
        }
    }

    fn recycle(&self, mut entries: Vec<Entry>) {
        entries.clear();
        let _ = self.free.push(entries);
    }

    /// Makes appended records durable per the fsync mode and acknowledges
    /// the batches waiting on them.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let res = match self.cfg.fsync {
            FsyncMode::Never => self.wal.flush(),
            FsyncMode::Always | FsyncMode::Batch => {
                let started = Instant::now();
                let res = self.wal.sync();
                self.fsync_hist.observe(started.elapsed());
                res
            }
        };
        if let Err(e) = res {
            self.fail(Error::from(e));
        }
        for t in self.pending.drain(..) {
            if let Some(e) = &self.failed {
                t.fail(e);
            }
            t.finish_part();
        }
        self.oldest_unsynced = None;
    }

    fn fail(&mut self, e: Error) {
        tracing::error!(error = %e, "shard writer failed; rejecting further writes");
        self.failed.get_or_insert_with(|| e.to_string());
    }

    /// Moves the head into the partitions and truncates the WAL.
    fn flush(&mut self) -> Result<(), Error> {
        self.last_flush = Instant::now();
        if self.head.samples() == 0 && self.head.active_series() == 0 {
            return Ok(());
        }
        let _span = tracing::debug_span!("head_flush", samples = self.head.samples()).entered();
        let segment = self.wal.rotate()?;
        let parts = &self.parts;
        let chunks = &mut self.chunks;
        self.head.drain(&mut self.scratch, |id, samples| {
            encode_for_partitions(parts, id, samples, chunks)
        });
        let res = self.parts.write(&mut self.chunks);
        self.chunks.clear();
        res?;
        self.wal.remove_before(segment)?;
        Ok(())
    }
}
