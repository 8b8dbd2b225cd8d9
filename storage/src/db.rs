//! [`Db`]: the engine's public face. Opens a data directory, routes batches
//! to the shard writers, answers reads by merging head and partitions.
//!
//! Data directory layout:
//! ```text
//! index.redb          series catalog and metric metadata (see `index`)
//! wal/<shard>/        one WAL per shard writer (see `wal`)
//! raw/<start>-<gen>.redb  time partitions of chunks (see `partition`)
//! ```
//!
//! Concurrency contract: every method takes `&self`; a `Db` is `Send + Sync`
//! and meant to be shared (e.g. in an `Arc`) by any number of producer and
//! reader threads. Appends never take a lock per sample: a batch is split by
//! shard (`SeriesId % shards`) into recycled buffers and handed to bounded
//! queues; backpressure is an in-flight batch budget.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::error::{AppendError, Error};
use crate::head::{Head, dedup_keep_last};
use crate::index::{Index, MetricMetadata};
use crate::partition::{PartitionInfo, Partitions, PendingChunk, encode_for_partitions, sync_dir};
use crate::shard::{Entry, Msg, ShardStats, Writer, WriterConfig};
use crate::ticket::{Ticket, TicketState};
use crate::types::{Labels, Matcher, Sample, SeriesId, Timestamp};
use crate::wal::{self, FsyncMode, Wal, WalOptions};

/// A read is split across cores when it covers at least this much work
/// per core, in series × hours (32 series over an hour is ~11,500 samples
/// at 10 s). Spawning scoped threads costs tens of microseconds: rule
/// rounds issue thousands of small reads of a few minutes each (the `rules`
/// bench) and stay on the caller's thread; dashboards and the peers
/// queries read hundreds of series over hours and use every core.
const PARALLEL_READ_SERIES_HOURS: u128 = 32;

/// How the engine is tuned. Every field has a working default.
#[derive(Clone, Debug)]
pub struct Options {
    /// When acknowledged writes reach the disk. Default `Batch`.
    pub fsync: FsyncMode,
    /// Longest an acknowledgement waits for a group commit under `Batch`.
    /// Default 10 ms.
    pub group_commit: Duration,
    /// Number of shard writer threads. Default: the number of cores, at
    /// most 4.
    pub shards: NonZeroUsize,
    /// Batches in flight (queued or being written) across all shards before
    /// `submit` pushes back. Default 64.
    pub max_inflight_batches: usize,
    /// How long `submit` waits for room before returning
    /// [`AppendError::Overloaded`]. Default 5 s; zero fails fast.
    pub append_timeout: Duration,
    /// Samples may arrive this much older than their series' newest sample.
    /// Default 1 h: with 10 min, four concurrent line-protocol clients
    /// sending a time-ordered dataset lost one 6,700-sample batch that one
    /// client delivered late (the peers benchmark); older samples cost only
    /// an out-of-order buffer in the head and a merge at compaction.
    pub ooo_window: Duration,
    /// The head is flushed to partitions at least this often. Default 10 min.
    pub flush_interval: Duration,
    /// A shard flushes its head once it holds this many samples (about 2
    /// bytes each). Default 16 M.
    pub max_head_samples: usize,
    /// Width of one raw partition. Default 1 day.
    pub partition_duration: Duration,
    /// Closed partitions are compacted into large blocks this often by a
    /// background thread, which also applies retention. Default 10 min;
    /// zero disables both.
    pub compact_interval: Duration,
    /// Partitions whose window ended longer ago than this are deleted by
    /// the background thread. `None` (default) keeps everything.
    pub retention: Option<Duration>,
    /// Raw partitions may use at most this many bytes: the oldest windows
    /// go first (never the newest). `None` (default): no cap.
    pub retention_max_bytes: Option<u64>,
    /// Per-series retention chosen by label matchers, first match wins
    /// (see `retention`). Default none.
    pub retention_overrides: Vec<crate::retention::RetentionOverride>,
    /// Rollup tiers, finest first (see `rollup`): each built from the one
    /// before it, the first from sealed raw partitions, by the background
    /// thread after compaction. Default none; `TierSpec::defaults()` (1m
    /// kept 90 d, 1h kept 5 y) is what the server's configuration uses.
    /// Each resolution must divide the raw partition width.
    pub tiers: Vec<crate::rollup::TierSpec>,
    pub wal: WalOptions,
}

impl Default for Options {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            fsync: FsyncMode::Batch,
            group_commit: Duration::from_millis(10),
            shards: NonZeroUsize::new(cores.clamp(1, 4)).expect("clamped to >= 1"),
            max_inflight_batches: 64,
            append_timeout: Duration::from_secs(5),
            ooo_window: Duration::from_secs(3600),
            flush_interval: Duration::from_secs(600),
            max_head_samples: 16 << 20,
            partition_duration: Duration::from_secs(86_400),
            compact_interval: Duration::from_secs(600),
            retention: None,
            retention_max_bytes: None,
            retention_overrides: Vec::new(),
            tiers: Vec::new(),
            wal: WalOptions::default(),
        }
    }
}

/// A reusable batch of samples addressed by [`SeriesId`].
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    entries: Vec<Entry>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, id: SeriesId, ts: Timestamp, value: f64) {
        self.entries.push((id, ts, value));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The samples `(series, timestamp, value)` in push order (read-only:
    /// forwarding copies accepted batches from here).
    pub fn entries(&self) -> &[(SeriesId, Timestamp, f64)] {
        &self.entries
    }
}

/// Size and activity figures of a database.
#[derive(Clone, Copy, Debug, Default)]
pub struct DbStats {
    /// Series in the index.
    pub series: usize,
    /// Series with samples in the head.
    pub head_series: usize,
    pub head_samples: usize,
    /// Heap bytes of head chunks.
    pub head_bytes: usize,
    /// Heap bytes of the in-memory index (labels, lookup, postings).
    pub index_memory_bytes: usize,
    pub partitions: usize,
    /// Bytes on disk: partitions + rollup tiers + index + WAL.
    pub disk_bytes: u64,
    pub partition_bytes: u64,
    /// Bytes of all rollup tier files.
    pub rollup_bytes: u64,
    pub index_bytes: u64,
    pub wal_bytes: u64,
    /// Corrupt chunks skipped by reads since open.
    pub corrupt_chunks: u64,
    /// Samples accepted by `submit`/`append` since open (every producer:
    /// HTTP ingest, rules, the monitor, an embedding program).
    pub samples_appended: u64,
    /// WAL fsync durations of every shard since open (empty with
    /// `fsync = "never"`).
    pub wal_fsync: crate::selfstats::FsyncHistogram,
}

pub(crate) struct Shared {
    dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) index: Arc<Index>,
    pub(crate) parts: Arc<Partitions>,
    pub(crate) rollups: Arc<crate::rollup::Rollups>,
    inflight: Arc<AtomicUsize>,
}

/// An open database. See the module docs for the concurrency contract.
pub struct Db {
    pub(crate) shared: Arc<Shared>,
    senders: Vec<crossbeam_channel::Sender<Msg>>,
    free: Vec<Arc<ArrayQueue<Vec<Entry>>>>,
    writers: Vec<JoinHandle<()>>,
    maintenance: Option<(crossbeam_channel::Sender<()>, JoinHandle<()>)>,
    /// Cores to spread large reads over, read once at open
    /// (`available_parallelism` reads cgroup files on every call).
    cores: usize,
}

impl Db {
    /// Opens or creates the database in `dir`, replays the WAL into the
    /// partitions (a torn or corrupt WAL tail is truncated and reported in
    /// the log), and starts the shard writers.
    ///
    /// Only one `Db` may have a directory open at a time (redb locks its
    /// files; a second open fails).
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db, Error> {
        let dir = dir.as_ref().to_path_buf();
        let _span = tracing::info_span!("open", dir = %dir.display()).entered();
        std::fs::create_dir_all(dir.join("wal")).map_err(|e| Error::io(&dir, e))?;
        let durable = opts.fsync != FsyncMode::Never;
        let index = Arc::new(Index::open(&dir, durable)?);
        let parts = Arc::new(Partitions::open(
            &dir.join("raw"),
            opts.partition_duration.as_millis().max(1) as i64,
            durable,
        )?);
        let rollups = Arc::new(crate::rollup::Rollups::open(
            &dir,
            &opts.tiers,
            parts.duration(),
        )?);
        let shards = opts.shards.get();
        let ooo_ms = opts.ooo_window.as_millis() as i64;
        let mut heads: Vec<Head> = (0..shards).map(|s| Head::new(s, shards, ooo_ms)).collect();
        replay(&dir, &index, &parts, &mut heads, shards)?;

        let inflight = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            opts: opts.clone(),
            index,
            parts,
            rollups,
            inflight,
        });
        let cfg = WriterConfig {
            fsync: opts.fsync,
            group_commit: opts.group_commit,
            flush_interval: opts.flush_interval,
            max_head_samples: opts.max_head_samples,
        };
        let cap = opts.max_inflight_batches.max(1);
        let mut db = Db {
            shared: shared.clone(),
            senders: Vec::with_capacity(shards),
            free: Vec::with_capacity(shards),
            writers: Vec::with_capacity(shards),
            maintenance: None,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        for (shard, head) in heads.into_iter().enumerate() {
            let (wal, _) = Wal::open(&wal_dir(&dir, shard), opts.wal.clone())?;
            // Each in-flight batch puts at most one message in each queue, so
            // a queue of `cap` slots plus a few for control messages never
            // blocks a producer that holds a permit.
            let (tx, rx) = crossbeam_channel::bounded(cap + 8);
            let free = Arc::new(ArrayQueue::new(cap + 8));
            let writer = Writer::new(
                cfg.clone(),
                rx,
                head,
                wal,
                shared.index.clone(),
                shared.parts.clone(),
                free.clone(),
            );
            let handle = std::thread::Builder::new()
                .name(format!("tidemark-shard-{shard}"))
                .spawn(move || writer.run())
                .map_err(|e| Error::io(&dir, e))?;
            db.senders.push(tx);
            db.free.push(free);
            db.writers.push(handle);
        }
        if !opts.compact_interval.is_zero() {
            db.maintenance = Some(spawn_maintenance(shared)?);
        }
        Ok(db)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// The id of the series `labels`, creating it when new. A new series is
    /// durable (under `always`/`batch`) before its id is returned.
    /// Thread-safe; existing series resolve under a striped read lock.
    pub fn resolve(&self, labels: &Labels) -> Result<SeriesId, Error> {
        self.shared.index.resolve(labels)
    }

    /// [`Db::resolve`] for many label sets, with one commit for all new ones.
    pub fn resolve_many(&self, sets: &[Labels]) -> Result<Vec<SeriesId>, Error> {
        self.shared.index.resolve_many(sets)
    }

    /// Looks up an existing series without creating it.
    pub fn lookup(&self, labels: &Labels) -> Option<SeriesId> {
        let mut key = Vec::with_capacity(128);
        labels.encode_into(&mut key);
        self.shared.index.lookup(&key)
    }

    /// Number of series in the index (cheap: an atomic load).
    pub fn series_count(&self) -> usize {
        self.shared.index.len()
    }

    /// The labels of a series.
    pub fn labels(&self, id: SeriesId) -> Option<Labels> {
        self.shared.index.labels(id)
    }

    /// Records metric metadata (`# TYPE`/`# HELP`/`# UNIT`); durable on return.
    pub fn set_metadata(
        &self,
        metric: &str,
        kind: &str,
        help: &str,
        unit: &str,
    ) -> Result<(), Error> {
        let meta = MetricMetadata {
            kind: kind.to_string(),
            help: help.to_string(),
            unit: unit.to_string(),
        };
        self.shared.index.set_metadata(metric, &meta)
    }

    /// Metadata of all metrics that have some.
    pub fn metadata(&self) -> Result<Vec<(String, MetricMetadata)>, Error> {
        self.shared.index.metadata()
    }

    /// Hands a batch to the shard writers and returns at once (after
    /// waiting up to `append_timeout` for room). The batch is copied; the
    /// caller may reuse it. Samples are visible to reads once applied, and
    /// acknowledged (durable per the fsync mode) when the ticket's `wait`
    /// returns.
    ///
    /// # Errors
    /// [`AppendError::Overloaded`] when the in-flight budget stayed full for
    /// the whole timeout: nothing of the batch was queued.
    pub fn submit(&self, batch: &WriteBatch) -> Result<Ticket, AppendError> {
        self.acquire_permit()?;
        let shards = self.senders.len();
        let mut parts: Vec<Vec<Entry>> = (0..shards)
            .map(|s| self.free[s].pop().unwrap_or_default())
            .collect();
        for &e in &batch.entries {
            parts[e.0.0 as usize % shards].push(e);
        }
        let used = parts.iter().filter(|p| !p.is_empty()).count();
        let state = TicketState::new(used, self.shared.inflight.clone());
        if used == 0 {
            self.shared.inflight.fetch_sub(1, Ordering::AcqRel);
        }
        for (shard, entries) in parts.into_iter().enumerate() {
            if entries.is_empty() {
                let _ = self.free[shard].push(entries);
                continue;
            }
            let msg = Msg::Append {
                entries,
                ticket: state.clone(),
            };
            if self.senders[shard].send(msg).is_err() {
                state.fail("the database is closed");
                state.finish_part();
            }
        }
        Ok(Ticket { state })
    }

    /// [`Db::submit`] then [`Ticket::wait`]: returns once the batch is
    /// durable per the fsync mode.
    pub fn append(&self, batch: &WriteBatch) -> Result<crate::AppendOutcome, AppendError> {
        Ok(self.submit(batch)?.wait()?)
    }

    fn acquire_permit(&self) -> Result<(), AppendError> {
        let max = self.shared.opts.max_inflight_batches.max(1);
        let inflight = &self.shared.inflight;
        let started = Instant::now();
        let mut backoff = Duration::from_micros(20);
        loop {
            let cur = inflight.load(Ordering::Acquire);
            if cur < max {
                if inflight
                    .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            let waited = started.elapsed();
            if waited >= self.shared.opts.append_timeout {
                return Err(AppendError::Overloaded { waited });
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(2));
        }
    }

    /// Series matching all matchers, ascending by id.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        self.shared.index.select(matchers)
    }

    /// All label names / all values of one label, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.shared.index.label_names()
    }

    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.shared.index.label_values(name)
    }

    /// Samples of each series in `ids` within `[start, end]` (inclusive),
    /// sorted, one sample per timestamp (the last written wins). Sees every
    /// sample applied before the call; corrupt chunks are skipped and
    /// counted in [`DbStats::corrupt_chunks`].
    pub fn read(
        &self,
        ids: &[SeriesId],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<(SeriesId, Vec<Sample>)>, Error> {
        // Head first: a flush racing with this read moves samples into a
        // partition, where the partition read below still finds them.
        let shards = self.senders.len();
        let mut by_shard: Vec<Vec<SeriesId>> = vec![Vec::new(); shards];
        for id in ids {
            by_shard[id.0 as usize % shards].push(*id);
        }
        let mut replies = Vec::with_capacity(shards);
        for (shard, ids) in by_shard.into_iter().enumerate() {
            if ids.is_empty() {
                replies.push(None);
                continue;
            }
            let (tx, rx) = crossbeam_channel::bounded(1);
            self.senders[shard]
                .send(Msg::Read {
                    ids,
                    start,
                    end,
                    reply: tx,
                })
                .map_err(|_| Error::Closed)?;
            replies.push(Some(rx));
        }
        // Each shard answers its ids in the order they were sent, so the
        // answers are consumed in `ids` order by walking one per shard.
        let mut head: Vec<std::vec::IntoIter<(SeriesId, Vec<Sample>)>> = Vec::with_capacity(shards);
        for rx in replies {
            let answer = match rx {
                Some(rx) => rx.recv().map_err(|_| Error::Closed)?,
                None => Vec::new(),
            };
            head.push(answer.into_iter());
        }
        let parts = &self.shared.parts;
        let read_all = |ids: &[SeriesId]| parts.read_many(ids, start, end);
        // Decoding dominates large reads: spread them over the cores.
        let span_ms = u128::try_from(end.saturating_sub(start)).unwrap_or(0);
        let work = ids.len() as u128 * span_ms / (PARALLEL_READ_SERIES_HOURS * 3_600_000);
        let threads = self
            .cores
            .min(usize::try_from(work).unwrap_or(usize::MAX))
            .max(1);
        let mut out = if threads == 1 {
            read_all(ids)?
        } else {
            let per = ids.len().div_ceil(threads);
            let pieces: Vec<Result<Vec<_>, Error>> = std::thread::scope(|s| {
                let handles: Vec<_> = ids
                    .chunks(per)
                    .map(|c| s.spawn(move || read_all(c)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("read thread panicked"))
                    .collect()
            });
            let mut out = Vec::with_capacity(ids.len());
            for p in pieces {
                out.extend(p?);
            }
            out
        };
        for (id, samples) in &mut out {
            if let Some((hid, h)) = head[id.0 as usize % shards].next() {
                debug_assert_eq!(hid, *id, "shard answers follow the request order");
                merge_newer(samples, h);
            }
        }
        Ok(out)
    }

    /// Writes every shard's head to the partitions and truncates the WALs.
    /// Durable on return (unless fsync is `never`).
    pub fn flush(&self) -> Result<(), Error> {
        let mut replies = Vec::new();
        for tx in &self.senders {
            let (rtx, rrx) = crossbeam_channel::bounded(1);
            tx.send(Msg::Flush { reply: rtx })
                .map_err(|_| Error::Closed)?;
            replies.push(rrx);
        }
        for r in replies {
            r.recv()
                .map_err(|_| Error::Closed)?
                .map_err(Error::WriterFailed)?;
        }
        Ok(())
    }

    /// Folds every partition's flushed chunks into its sealed block file,
    /// including the current window (for backfills and benchmarks; the
    /// background thread compacts only closed windows). Call [`Db::flush`]
    /// first to include the head. Returns the number of partitions
    /// rewritten.
    pub fn compact(&self) -> Result<usize, Error> {
        self.shared.parts.compact(Timestamp::MAX)
    }

    /// Scans every partition's chunk headers: per-partition file size,
    /// chunk bytes, series and samples (for `tidemark inspect`). Reads the
    /// whole catalog of chunks, so it costs a full key scan.
    pub fn inspect(&self) -> Result<Vec<PartitionInfo>, Error> {
        self.shared.parts.inspect()
    }

    /// Deletes every partition whose window ended at or before `before`
    /// (ms); the background thread does this with `Options::retention`.
    /// Returns the number of partitions deleted.
    pub fn drop_before(&self, before: Timestamp) -> Result<usize, Error> {
        self.shared.parts.drop_before(before)
    }

    /// Size and activity figures.
    pub fn stats(&self) -> DbStats {
        let mut st = DbStats {
            series: self.shared.index.len(),
            index_memory_bytes: self.shared.index.memory_bytes(),
            partitions: self.shared.parts.len(),
            partition_bytes: self.shared.parts.disk_bytes(),
            rollup_bytes: self.shared.rollups.disk_bytes(),
            index_bytes: self.shared.index.disk_bytes(),
            corrupt_chunks: self.shared.parts.corrupt_chunks(),
            ..Default::default()
        };
        let mut replies = Vec::new();
        for tx in &self.senders {
            let (rtx, rrx) = crossbeam_channel::bounded(1);
            if tx.send(Msg::Stats { reply: rtx }).is_ok() {
                replies.push(rrx);
            }
        }
        for r in replies {
            if let Ok(s) = r.recv() {
                let ShardStats {
                    head_series,
                    head_samples,
                    head_bytes,
                    wal_bytes,
                    samples_appended,
                    fsync,
                } = s;
                st.wal_fsync.merge(&fsync);
                st.samples_appended += samples_appended;
                st.head_series += head_series;
                st.head_samples += head_samples;
                st.head_bytes += head_bytes;
                st.wal_bytes += wal_bytes;
            }
        }
        st.disk_bytes = st.partition_bytes + st.rollup_bytes + st.index_bytes + st.wal_bytes;
        st
    }

    /// Flushes the head and stops the writers. Dropping a `Db` does the
    /// same but cannot report errors.
    pub fn close(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        if let Some((stop, handle)) = self.maintenance.take() {
            drop(stop);
            let _ = handle.join();
        }
        let flushed = if self.senders.is_empty() {
            Ok(())
        } else {
            self.flush()
        };
        self.senders.clear();
        let mut panicked = false;
        for h in self.writers.drain(..) {
            panicked |= h.join().is_err();
        }
        flushed?;
        if panicked {
            return Err(Error::WriterFailed("a shard writer panicked".into()));
        }
        Ok(())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "closing the database failed");
        }
    }
}

/// Appends `newer` (sorted) to `older` (sorted); on equal timestamps the
/// newer sample wins.
fn merge_newer(older: &mut Vec<Sample>, newer: Vec<Sample>) {
    if newer.is_empty() {
        return;
    }
    if older.last().is_none_or(|l| l.ts < newer[0].ts) {
        older.extend(newer);
        return;
    }
    // `sort_by_key` is stable: on equal timestamps the older sample stays
    // first and `dedup_keep_last` keeps the newer one.
    older.extend(newer);
    older.sort_by_key(|s| s.ts);
    dedup_keep_last(older, 0);
}

fn wal_dir(dir: &Path, shard: usize) -> PathBuf {
    dir.join("wal").join(shard.to_string())
}

/// Replays every WAL directory into the heads, writes the heads to the
/// partitions and deletes the replayed segments, so writers start clean.
fn replay(
    dir: &Path,
    index: &Index,
    parts: &Partitions,
    heads: &mut [Head],
    shards: usize,
) -> Result<(), Error> {
    let wal_root = dir.join("wal");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&wal_root)
        .map_err(|e| Error::io(&wal_root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Ok(());
    }
    let _span = tracing::info_span!("wal_replay").entered();
    let started = Instant::now();
    let mut entries: Vec<Entry> = Vec::new();
    let (mut records, mut samples, mut skipped) = (0u64, 0u64, 0u64);
    for d in &dirs {
        let report = wal::replay(d, |payload| {
            entries.clear();
            match wal::decode_record(payload, &mut entries) {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(dir = %d.display(), error = %e, "skipping undecodable WAL record");
                    skipped += 1;
                    return;
                }
            }
            records += 1;
            for &(id, ts, v) in &entries {
                if !index.contains(id) {
                    skipped += 1;
                    continue;
                }
                // The WAL holds only accepted samples: bypass the window.
                let _ = heads[id.0 as usize % shards].append(id, ts, v);
                samples += 1;
            }
        })?;
        if let Some(c) = &report.corruption {
            tracing::warn!(dir = %d.display(), "{c}");
        }
    }
    let mut chunks: Vec<PendingChunk> = Vec::new();
    let mut scratch = Vec::new();
    for head in heads.iter_mut() {
        head.drain(&mut scratch, |id, s| {
            encode_for_partitions(parts, id, s, &mut chunks)
        });
    }
    parts.write(&mut chunks)?;
    for d in &dirs {
        std::fs::remove_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    sync_dir(&wal_root)?;
    if records > 0 {
        tracing::info!(
            records,
            samples,
            skipped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "WAL replayed"
        );
    }
    Ok(())
}

fn spawn_maintenance(
    shared: Arc<Shared>,
) -> Result<(crossbeam_channel::Sender<()>, JoinHandle<()>), Error> {
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    let shared_dir = shared.dir.clone();
    let interval = shared.opts.compact_interval;
    let handle = std::thread::Builder::new()
        .name("tidemark-maintenance".into())
        .spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = rx.recv_timeout(interval)
            {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                // Compact, then roll up, then expire: raw data reaches the
                // tiers before age-based retention may delete it.
                let closed_before = now - shared.opts.ooo_window.as_millis() as i64;
                if let Err(e) = shared.parts.compact(closed_before) {
                    tracing::warn!(error = %e, "background compaction failed");
                }
                match shared.rollups.run(&shared.parts, closed_before) {
                    Ok(r) if r.windows_built > 0 => tracing::info!(
                        windows = r.windows_built,
                        raw_samples = r.raw_samples,
                        elapsed_ms = r.elapsed.as_millis() as u64,
                        "rollups built"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "background rollup failed"),
                }
                if let Err(e) = crate::retention::apply(&shared, now) {
                    tracing::warn!(error = %e, "applying retention failed");
                }
                if let Err(e) = shared.rollups.apply_retention(now) {
                    tracing::warn!(error = %e, "applying tier retention failed");
                }
            }
        })
        .map_err(|e| Error::io(shared_dir, e))?;
    Ok((tx, handle))
}
