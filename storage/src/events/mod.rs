//! The event log: timestamped structured records (kind, labels, JSON fields)
//! in time-partitioned segment files under one directory, with their own
//! retention.
//!
//! Code map: `codec` (record and frame bytes), `active` (the append-only
//! log of an open window), `sealed` (compressed immutable files with a
//! footer index), `query` (newest-first, paginated reads).
//!
//! # Files
//!
//! ```text
//! <dir>/<window>-<gen>.log   active: header "TMEV" v1, then CRC frames,
//!                            one record per frame, in append order
//! <dir>/<window>-<gen>.evz   sealed: header "TMEZ" v1, zstd blocks in CRC
//!                            frames (records sorted by time), a footer
//!                            (time range, kinds, per-block index), a trailer
//! ```
//!
//! `<window>` is the start (Unix ms) of the segment's time window
//! (`segment_ms`, one day by default); `<gen>` numbers the files of one
//! window (a window gets another file when events arrive after it was
//! sealed, or when its active log outgrows `max_active_bytes`).
//!
//! # Invariants
//!
//! - **Order**: every event gets a sequence number at append; events are
//!   ordered by `(ts_ms, seq)`, newest first. A [`Cursor`] is such a key, so
//!   pagination returns every event exactly once, ties in time included,
//!   even across sealing and restarts.
//! - **Durability**: with `fsync` on (the default) `append` returns only
//!   after the records are fsynced; a sealed file is complete (written,
//!   fsynced, renamed) before the log it replaces is deleted, and at open a
//!   log whose sealed file exists is deleted, not read twice.
//! - **Bytes from disk are never trusted**: a corrupt record, block or a
//!   torn tail is counted in [`EventStats::corrupt`], logged with file and
//!   offset, and skipped; the rest of the file still reads.
//! - **Retention deletes whole files** whose newest event is older than the
//!   cutoff.
//! - Queries read only the blocks whose time range and kinds can hold a
//!   result, newest first, and stop once the page is full.

mod active;
mod codec;
mod query;
mod sealed;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::types::{Labels, Matcher};

use active::ActiveLog;
use codec::Stored;
use sealed::SealedMeta;

/// One event. `fields` is the text of a JSON object (`"{}"` when absent);
/// storage keeps it verbatim and never parses it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub ts_ms: i64,
    pub kind: String,
    pub labels: Labels,
    pub fields: String,
}

/// Options of an [`EventLog`].
#[derive(Clone, Debug)]
pub struct EventLogOptions {
    /// Width of a segment's time window in ms (default one day).
    pub segment_ms: i64,
    /// fsync every `append` before returning (default true).
    pub fsync: bool,
    /// How long events are kept, in ms; applied by [`EventLog::maintain`]
    /// (default 90 days).
    pub retention_ms: i64,
    /// An active log larger than this is sealed early (default 8 MiB).
    pub max_active_bytes: u64,
    /// Uncompressed bytes per block of a sealed file (default 64 KiB).
    pub block_bytes: usize,
    /// zstd level for sealed files (default 3).
    pub zstd_level: i32,
    /// Largest encoded event (default 1 MiB).
    pub max_event_bytes: usize,
}

impl Default for EventLogOptions {
    fn default() -> Self {
        Self {
            segment_ms: 86_400_000,
            fsync: true,
            retention_ms: 90 * 86_400_000,
            max_active_bytes: 8 << 20,
            block_bytes: 64 << 10,
            zstd_level: 3,
            max_event_bytes: 1 << 20,
        }
    }
}

/// A position in the newest-first order: the key of the last event of a
/// page. Serialises to an opaque string ([`std::fmt::Display`] /
/// [`std::str::FromStr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    ts_ms: i64,
    seq: u64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}{:016x}", self.ts_ms as u64, self.seq)
    }
}

impl std::str::FromStr for Cursor {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, EventError> {
        let bad = || EventError::BadCursor(s.chars().take(64).collect());
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let ts = u64::from_str_radix(&s[..16], 16).map_err(|_| bad())?;
        let seq = u64::from_str_radix(&s[16..], 16).map_err(|_| bad())?;
        Ok(Cursor {
            ts_ms: ts as i64,
            seq,
        })
    }
}

/// A read of the log: events with `start_ms <= ts_ms <= end_ms`, of one of
/// `kinds` (empty: any), whose labels match every matcher, older than
/// `before`; at most `limit`, newest first.
#[derive(Clone, Debug)]
pub struct EventQuery {
    pub start_ms: i64,
    pub end_ms: i64,
    pub kinds: Vec<String>,
    pub matchers: Vec<Matcher>,
    pub limit: usize,
    pub before: Option<Cursor>,
}

/// One page of results; `next` is `Some` when more events match (pass it
/// as `before`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub next: Option<Cursor>,
}

/// Size and health of the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Files: sealed plus active.
    pub segments: u64,
    pub events: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Corrupt records, blocks and torn tails found so far (each counted
    /// once).
    pub corrupt: u64,
    /// Blocks of sealed files read (decompressed) by queries since open.
    pub blocks_read: u64,
}

/// What [`EventLog::maintain`] or [`EventLog::drop_before`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintainReport {
    pub sealed: u64,
    pub deleted: u64,
    pub bytes_freed: u64,
}

/// Why an event-log operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An event of an append cannot be stored; nothing of that append was
    /// written.
    #[error("event {index}: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("invalid cursor {0:?}")]
    BadCursor(String),
    #[error("invalid query: {0}")]
    BadQuery(String),
    #[error("invalid event log options: {0}")]
    BadOptions(String),
}

impl EventError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EventError + '_ {
        move |source| EventError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Counts damage once per place (file, offset), however often it is read.
#[derive(Default)]
pub(crate) struct Damage {
    seen: Mutex<HashSet<(PathBuf, u64)>>,
    count: AtomicU64,
}

impl Damage {
    pub(crate) fn report(&self, path: &Path, offset: u64, what: &str) {
        let new = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((path.to_path_buf(), offset));
        if new {
            self.count.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path = %path.display(), offset, what, "event log: skipping damaged bytes");
        }
    }
    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

struct Inner {
    active: HashMap<i64, ActiveLog>,
    sealed: Vec<Arc<SealedMeta>>,
    next_seq: u64,
}

/// The event log of one directory. All methods take `&self` and may be
/// called from any number of threads.
pub struct EventLog {
    dir: PathBuf,
    opts: EventLogOptions,
    inner: Mutex<Inner>,
    damage: Arc<Damage>,
    blocks_read: AtomicU64,
}

/// Now, in Unix ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl EventLog {
    /// Opens (creating) the log in `dir`; logs of windows closed by now are
    /// sealed.
    pub fn open(dir: &Path, opts: EventLogOptions) -> Result<EventLog, EventError> {
        Self::open_at(dir, opts, now_ms())
    }

    /// [`EventLog::open`] with the current time given: logs of windows that
    /// end at or before `now_ms`, and damaged logs, are sealed.
    pub fn open_at(dir: &Path, opts: EventLogOptions, now_ms: i64) -> Result<EventLog, EventError> {
        if opts.segment_ms <= 0 {
            return Err(EventError::BadOptions("segment_ms must be positive".into()));
        }
        std::fs::create_dir_all(dir).map_err(EventError::io(dir))?;
        let damage = Arc::new(Damage::default());
        let mut logs = Vec::new();
        let mut sealed = Vec::new();
        let mut sealed_names = HashSet::new();
        for entry in std::fs::read_dir(dir).map_err(EventError::io(dir))? {
            let entry = entry.map_err(EventError::io(dir))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                tracing::warn!(path = %path.display(), "event log: removing partial sealed file");
                std::fs::remove_file(&path).map_err(EventError::io(&path))?;
            } else if let Some((window, generation)) = parse_name(name, ".evz") {
                sealed_names.insert((window, generation));
                sealed.push(Arc::new(sealed::load_meta(
                    &path,
                    window,
                    generation,
                    opts.segment_ms,
                    &damage,
                )?));
            } else if let Some((window, generation)) = parse_name(name, ".log") {
                logs.push((window, generation, path));
            }
        }
        let mut inner = Inner {
            active: HashMap::new(),
            sealed,
            next_seq: 0,
        };
        logs.sort();
        for (window, generation, path) in logs {
            if sealed_names.contains(&(window, generation)) {
                // Crash between sealing and deleting the log.
                std::fs::remove_file(&path).map_err(EventError::io(&path))?;
                continue;
            }
            let (log, damaged) = ActiveLog::reopen(&path, window, generation, &opts, &damage)?;
            if let Some(older) = inner.active.remove(&window) {
                // Two logs for one window (a crash mid-rotation): seal the
                // older one.
                seal_into(dir, &opts, &mut inner, older)?;
            }
            if damaged || window.saturating_add(opts.segment_ms) <= now_ms {
                seal_into(dir, &opts, &mut inner, log)?;
            } else {
                inner.active.insert(window, log);
            }
        }
        let max_sealed = inner.sealed.iter().map(|m| m.max_seq + 1).max();
        let max_active = inner
            .active
            .values()
            .flat_map(|l| l.events.iter().map(|s| s.id + 1))
            .max();
        inner.next_seq = max_sealed.max(max_active).unwrap_or(0);
        inner.sealed.sort_by_key(|m| (m.window, m.generation));
        Ok(EventLog {
            dir: dir.to_path_buf(),
            opts,
            inner: Mutex::new(inner),
            damage,
            blocks_read: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `events` (all or none: an event that cannot be stored is an
    /// [`EventError::Invalid`] naming its index). Durable on return when
    /// `fsync` is on.
    pub fn append(&self, events: &[Event]) -> Result<(), EventError> {
        for (index, e) in events.iter().enumerate() {
            if let Some(reason) = codec::check_sizes(e, self.opts.max_event_bytes) {
                return Err(EventError::Invalid { index, reason });
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        let mut by_window: HashMap<i64, Vec<Stored>> = HashMap::new();
        for e in events {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            by_window
                .entry(window_of(e.ts_ms, self.opts.segment_ms))
                .or_default()
                .push(Stored {
                    id: seq,
                    event: e.clone(),
                });
        }
        let mut windows: Vec<i64> = by_window.keys().copied().collect();
        windows.sort_unstable();
        for window in windows {
            let batch = by_window.remove(&window).expect("key listed");
            if !inner.active.contains_key(&window) {
                let generation = next_generation(&inner, window);
                let log = ActiveLog::create(&self.dir, window, generation)?;
                inner.active.insert(window, log);
            }
            let log = inner.active.get_mut(&window).expect("just inserted");
            log.append(batch, self.opts.fsync)?;
            if log.len > self.opts.max_active_bytes {
                let log = inner.active.remove(&window).expect("present");
                // The events are stored either way: a failed early seal
                // leaves the log active and is retried by `maintain`.
                if let Err(e) = seal_into(&self.dir, &self.opts, &mut inner, log) {
                    tracing::warn!(error = %e, window, "event log: sealing a full log failed");
                }
            }
        }
        Ok(())
    }

    /// One page of events matching `q`, newest first.
    pub fn query(&self, q: &EventQuery) -> Result<EventPage, EventError> {
        if q.limit == 0 {
            return Err(EventError::BadQuery("limit must be at least 1".into()));
        }
        let (active, sealed) = {
            let inner = self.lock();
            let active: Vec<Stored> = inner
                .active
                .values()
                .flat_map(|l| l.events.iter())
                .filter(|s| query::matches(q, s))
                .cloned()
                .collect();
            (active, inner.sealed.clone())
        };
        let (page, blocks) = query::run(q, active, &sealed, &self.damage);
        self.blocks_read.fetch_add(blocks, Ordering::Relaxed);
        Ok(page)
    }

    /// Files, events, bytes and damage found so far.
    pub fn stats(&self) -> EventStats {
        let inner = self.lock();
        let mut s = EventStats {
            corrupt: self.damage.count(),
            blocks_read: self.blocks_read.load(Ordering::Relaxed),
            ..EventStats::default()
        };
        for m in &inner.sealed {
            s.segments += 1;
            s.events += m.count;
            s.bytes += m.bytes;
        }
        for l in inner.active.values() {
            s.segments += 1;
            s.events += l.events.len() as u64;
            s.bytes += l.len;
        }
        s
    }

    /// Deletes every file whose newest event is older than `ts_ms`.
    pub fn drop_before(&self, ts_ms: i64) -> Result<MaintainReport, EventError> {
        let mut inner = self.lock();
        let mut report = MaintainReport::default();
        let expired: Vec<Arc<SealedMeta>> = inner
            .sealed
            .iter()
            .filter(|m| m.max_ts < ts_ms)
            .cloned()
            .collect();
        for m in expired {
            // A file that cannot be deleted stays listed (and readable).
            match std::fs::remove_file(&m.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(EventError::io(&m.path)(e)),
            }
            inner.sealed.retain(|x| !Arc::ptr_eq(x, &m));
            report.deleted += 1;
            report.bytes_freed += m.bytes;
        }
        let expired: Vec<i64> = inner
            .active
            .iter()
            .filter(|(_, l)| l.max_ts().is_some_and(|t| t < ts_ms))
            .map(|(w, _)| *w)
            .collect();
        for w in expired {
            let log = inner.active.remove(&w).expect("listed");
            report.deleted += 1;
            report.bytes_freed += log.len;
            log.delete()?;
        }
        if report.deleted > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(report)
    }

    /// Seals active logs whose window ended by `now_ms` and applies
    /// retention (`now_ms - retention_ms`). Call it periodically.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintainReport, EventError> {
        let sealed = {
            let mut inner = self.lock();
            let closed: Vec<i64> = inner
                .active
                .keys()
                .copied()
                .filter(|w| w.saturating_add(self.opts.segment_ms) <= now_ms)
                .collect();
            for w in &closed {
                let log = inner.active.remove(w).expect("listed");
                seal_into(&self.dir, &self.opts, &mut inner, log)?;
            }
            closed.len() as u64
        };
        let mut report = self.drop_before(now_ms.saturating_sub(self.opts.retention_ms))?;
        report.sealed = sealed;
        Ok(report)
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Seals `log` into a compressed file and registers it (an empty log is
/// just deleted). When the sealed file cannot be written, the log goes
/// back to the active set unchanged.
fn seal_into(
    dir: &Path,
    opts: &EventLogOptions,
    inner: &mut Inner,
    log: ActiveLog,
) -> Result<(), EventError> {
    if !log.events.is_empty() {
        match sealed::write(dir, log.window, log.generation, &log.events, opts) {
            Ok(meta) => {
                inner.sealed.push(Arc::new(meta));
                inner.sealed.sort_by_key(|m| (m.window, m.generation));
            }
            Err(e) => {
                inner.active.insert(log.window, log);
                return Err(e);
            }
        }
    }
    // From here the sealed file is authoritative: a log left behind by a
    // failed delete is removed at the next open.
    log.delete()?;
    sync_dir(dir)
}

fn next_generation(inner: &Inner, window: i64) -> u32 {
    inner
        .sealed
        .iter()
        .filter(|m| m.window == window)
        .map(|m| m.generation + 1)
        .chain(inner.active.get(&window).map(|l| l.generation + 1))
        .max()
        .unwrap_or(0)
}

pub(crate) fn window_of(ts_ms: i64, segment_ms: i64) -> i64 {
    ts_ms.div_euclid(segment_ms) * segment_ms
}

pub(crate) fn file_name(window: i64, generation: u32, ext: &str) -> String {
    format!("{window}-{generation:06}{ext}")
}

fn parse_name(name: &str, ext: &str) -> Option<(i64, u32)> {
    let stem = name.strip_suffix(ext)?;
    let (w, g) = stem.rsplit_once('-')?;
    if w.is_empty() || g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((w.parse().ok()?, g.parse().ok()?))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), EventError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(EventError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_cursors_round_trip() {
        assert_eq!(
            parse_name(&file_name(-86_400_000, 3, ".evz"), ".evz"),
            Some((-86_400_000, 3))
        );
        assert_eq!(parse_name("x-1.evz", ".evz"), None);
        assert_eq!(parse_name("5-1.log", ".evz"), None);
        let c = Cursor { ts_ms: -3, seq: 42 };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        assert!("zz".parse::<Cursor>().is_err());
        assert_eq!(window_of(-1, 10), -10);
        assert_eq!(window_of(19, 10), 10);
    }
}
