//! The error-recovery monitor: the typed recovery API ([`RecoveryEvent`]),
//! the per-component series derived from it (`derive`), the resource
//! collector (`resources`), component health probes (`probes`), the
//! `/metrics` view (`export`) and the `serve --demo` workload (`demo`).
//!
//! [`Monitor`] is what an embedding application (or the `POST
//! /api/v1/events` handler) talks to: [`Monitor::record`] stores an event
//! in the event log and derives from it; [`Monitor::observe`] only derives
//! (for events already stored). [`Monitor::collect`] writes the current
//! derived values to the database at a given time, like a self-scrape, so
//! PromQL `rate()` and the default rule pack work on them; [`MonitorTask`]
//! calls it (and the resource collector and health probes) every
//! `[monitor] interval`.
//!
//! Invariants:
//! - Events are rare next to samples: each component's state sits behind
//!   its own mutex, held for O(buckets) per event and never across I/O; the
//!   component map is behind a read-mostly `RwLock` (write-locked only when
//!   a new component appears).
//! - Counters never go backwards across restarts: [`Monitor::new`] seeds
//!   every derived series from its last stored sample.
//! - At most `max_components` components are tracked; events of further
//!   components are still stored in the event log but not derived, and
//!   counted in [`Monitor::dropped_components`].
//! - Time is a parameter everywhere (`now_ms`); only [`MonitorTask`] reads
//!   the wall clock.
//! - Derived series say what the monitor has seen so far: an event counts
//!   when it is applied, whatever its own time (a late or back-dated event
//!   raises the totals written by the next collect, not past samples).

pub mod config;
pub mod demo;
pub mod derive;
pub mod events;
pub mod export;
pub mod probes;
pub mod resources;
pub mod selfscrape;
mod task;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tidemark_storage::{Db, EventLog, Labels, Matcher, SeriesId, WriteBatch};

pub use derive::{BUCKETS, ComponentState, DerivedSample, QUANTILES};
pub use events::{BreakerState, Event, RecoveryEvent, RecoveryEventError};
pub use task::{MonitorTask, Round};

/// Why recording or collecting failed.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The event log did not take the events (they were still derived).
    #[error("storing recovery events in the event log: {0}")]
    Events(#[from] tidemark_storage::EventError),
    /// Creating the derived series failed.
    #[error("creating monitor series: {0}")]
    Storage(#[from] tidemark_storage::Error),
    /// Appending the derived samples failed.
    #[error("writing monitor samples: {0}")]
    Append(#[from] tidemark_storage::AppendError),
}

/// What [`Monitor::observe`] did with a slice of events.
#[derive(Debug, Default, PartialEq)]
pub struct ObserveReport {
    /// Recovery events applied to the derived series.
    pub derived: usize,
    /// Events of another kind (stored, not derived).
    pub ignored: usize,
    /// Recovery kinds that are malformed, by index into the slice.
    pub invalid: Vec<(usize, RecoveryEventError)>,
}

/// Options of a [`Monitor`] (from `[monitor]`).
#[derive(Clone, Debug)]
pub struct MonitorOptions {
    /// Most components tracked.
    pub max_components: usize,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        Self {
            max_components: 256,
        }
    }
}

type Shared = Arc<Mutex<ComponentState>>;

/// The recovery monitor. See the module docs.
pub struct Monitor {
    db: Arc<Db>,
    events: Option<Arc<EventLog>>,
    components: RwLock<BTreeMap<String, Shared>>,
    opts: MonitorOptions,
    dropped: AtomicU64,
    invalid: AtomicU64,
    /// What the monitor writes is forwarded like ingested samples
    /// (`crate::forward`; inert without `[[forward]]` targets).
    feed: crate::forward::Feed,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Monitor {
    /// A monitor writing to `db` and (when given) storing recorded events
    /// in `events`, its counters seeded from the last stored sample of
    /// every derived series (searched backwards from `now_ms`).
    ///
    /// # Errors
    /// Reading the stored series failed.
    pub fn new(
        db: Arc<Db>,
        events: Option<Arc<EventLog>>,
        opts: MonitorOptions,
        now_ms: i64,
    ) -> Result<Self, MonitorError> {
        let m = Self {
            db,
            events,
            components: RwLock::new(BTreeMap::new()),
            opts,
            dropped: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            feed: crate::forward::Feed::default(),
        };
        m.seed(now_ms)?;
        Ok(m)
    }

    /// [`Monitor::new`] with the options of `[monitor]`; when the stored
    /// series cannot be read, logs it and starts from zero (`rate()` then
    /// sees one counter reset, which it handles).
    /// Forwards what this monitor writes through `feed` (the server's
    /// `AppState::forward`).
    pub fn with_feed(mut self, feed: crate::forward::Feed) -> Self {
        self.feed = feed;
        self
    }

    /// The forwarding handle its writes go through.
    pub fn feed(&self) -> &crate::forward::Feed {
        &self.feed
    }

    pub fn start(db: Arc<Db>, events: Option<Arc<EventLog>>, cfg: &config::MonitorConfig) -> Self {
        let opts = MonitorOptions {
            max_components: cfg.max_components,
        };
        let m = Self {
            db,
            events,
            components: RwLock::new(BTreeMap::new()),
            opts,
            dropped: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            feed: crate::forward::Feed::default(),
        };
        if let Err(e) = m.seed(crate::server::now_ms()) {
            tracing::warn!(error = %e, "monitor: reading stored counters failed; they start from zero");
        }
        m
    }

    /// Sets every derived series' state from its last stored sample.
    /// Reads only a recent window first (an hour, then a day, 30 days,
    /// everything) for the series not found yet, so a start after months
    /// of 15-second samples does not read them all.
    fn seed(&self, now_ms: i64) -> Result<(), MonitorError> {
        let mut pending: HashMap<SeriesId, (&'static str, Option<&'static str>)> = HashMap::new();
        for (name, label) in derive::SEEDED {
            for id in self.db.select(&[Matcher::equal("__name__", name)]) {
                pending.insert(id, (name, label));
            }
        }
        const WINDOWS: [i64; 4] = [3_600_000, 86_400_000, 30 * 86_400_000, i64::MAX];
        for window in WINDOWS {
            if pending.is_empty() {
                break;
            }
            let ids: Vec<SeriesId> = pending.keys().copied().collect();
            for (id, samples) in self
                .db
                .read(&ids, now_ms.saturating_sub(window), i64::MAX)?
            {
                let Some(last) = samples.iter().rev().find(|s| !s.value.is_nan()) else {
                    continue;
                };
                let Some((name, label)) = pending.remove(&id) else {
                    continue;
                };
                let Some(labels) = self.db.labels(id) else {
                    continue;
                };
                let Some(component) = labels.get("component") else {
                    continue;
                };
                let extra = label.and_then(|l| labels.get(l));
                if let Some(st) = self.state(component) {
                    lock(&st).seed(name, extra, last.value);
                }
            }
        }
        Ok(())
    }

    /// The state of `component`, created if new and under the limit.
    fn state(&self, component: &str) -> Option<Shared> {
        if let Some(s) = self
            .components
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(component)
        {
            return Some(s.clone());
        }
        let mut map = self
            .components
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = map.get(component) {
            return Some(s.clone());
        }
        if map.len() >= self.opts.max_components {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let s: Shared = Arc::default();
        map.insert(component.to_string(), s.clone());
        Some(s)
    }

    /// Events not derived because `max_components` was reached.
    pub fn dropped_components(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Applies one event to the derived series (no event log). False when
    /// its component is over the limit.
    pub fn apply(&self, ev: &RecoveryEvent) -> bool {
        match self.state(ev.component()) {
            Some(st) => {
                lock(&st).apply(ev);
                true
            }
            None => false,
        }
    }

    /// Stores `ev` at `now_ms` in the event log and derives from it.
    ///
    /// # Errors
    /// The event log failed; the event was still derived.
    pub fn record(&self, ev: RecoveryEvent, now_ms: i64) -> Result<(), MonitorError> {
        self.record_all(std::slice::from_ref(&ev), now_ms)
    }

    /// [`Monitor::record`] for several events at once (one event-log
    /// append, so one fsync).
    ///
    /// # Errors
    /// The event log failed; the events were still derived.
    pub fn record_all(&self, evs: &[RecoveryEvent], now_ms: i64) -> Result<(), MonitorError> {
        self.record_at(evs.iter().map(|e| (e, now_ms)))
    }

    /// [`Monitor::record_all`] with a time per event.
    ///
    /// # Errors
    /// The event log failed; the events were still derived.
    pub fn record_at<'a>(
        &self,
        evs: impl IntoIterator<Item = (&'a RecoveryEvent, i64)>,
    ) -> Result<(), MonitorError> {
        let mut log = Vec::new();
        for (ev, t) in evs {
            self.apply(ev);
            if self.events.is_some() {
                log.push(ev.to_event(t));
            }
        }
        if let Some(events) = &self.events
            && !log.is_empty()
        {
            events.append(&log)?;
        }
        Ok(())
    }

    /// Recovery events [`Monitor::observe`] could not derive from
    /// (malformed: no component, a missing or mistyped field).
    pub fn invalid_events(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }

    /// Derives from events already stored in the event log (what `POST
    /// /api/v1/events` calls for the events it accepted). Other kinds are
    /// ignored; malformed recovery events are skipped, counted in
    /// [`Monitor::invalid_events`], logged (one line per call, naming the
    /// first) and reported.
    pub fn observe(&self, events: &[Event]) -> ObserveReport {
        let mut report = ObserveReport::default();
        for (i, ev) in events.iter().enumerate() {
            match RecoveryEvent::from_event(ev) {
                Ok(Some(r)) => {
                    if self.apply(&r) {
                        report.derived += 1;
                    }
                }
                Ok(None) => report.ignored += 1,
                Err(e) => report.invalid.push((i, e)),
            }
        }
        if let Some((i, e)) = report.invalid.first() {
            self.invalid
                .fetch_add(report.invalid.len() as u64, Ordering::Relaxed);
            tracing::warn!(
                invalid = report.invalid.len(),
                first_index = i,
                error = %e,
                "recovery events stored but not derived"
            );
        }
        report
    }

    /// Components tracked, sorted.
    pub fn components(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Shared>> {
        self.components
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every derived series of `component` and its current value.
    pub fn samples(&self, component: &str) -> Vec<DerivedSample> {
        self.map()
            .get(component)
            .map(|s| lock(s).samples())
            .unwrap_or_default()
    }

    /// Exact p50/p90/p99/p99.9 recovery durations (seconds, [`QUANTILES`]
    /// order) of `component` since this process started; `None` before its
    /// first recovery ended.
    pub fn quantiles(&self, component: &str) -> Option<[f64; QUANTILES.len()]> {
        self.map().get(component).and_then(|s| lock(s).quantiles())
    }

    /// Calls `f` with every component's name and state (for `/metrics`).
    pub fn for_each(&self, mut f: impl FnMut(&str, &ComponentState)) {
        for (name, st) in self.map().iter() {
            f(name, &lock(st));
        }
    }

    /// Writes every derived series' current value at `now_ms`; answers
    /// how many samples were written.
    ///
    /// # Errors
    /// Series creation or the append failed.
    pub fn collect(&self, now_ms: i64) -> Result<usize, MonitorError> {
        let mut sets = Vec::new();
        let mut values = Vec::new();
        self.for_each(|component, st| {
            for d in st.samples() {
                let pairs = std::iter::once(("component", component.to_string())).chain(d.labels);
                sets.push(Labels::metric(d.name, pairs));
                values.push(d.value);
            }
        });
        write(&self.db, &self.feed, &sets, &values, now_ms)
    }
}

/// Appends one sample per label set at `t` and offers the batch to the
/// forwarder.
pub(crate) fn write(
    db: &Db,
    feed: &crate::forward::Feed,
    sets: &[Labels],
    values: &[f64],
    t: i64,
) -> Result<usize, MonitorError> {
    if sets.is_empty() {
        return Ok(0);
    }
    let ids = db.resolve_many(sets)?;
    let mut batch = WriteBatch::with_capacity(ids.len());
    for (id, v) in ids.into_iter().zip(values) {
        batch.push(id, t, *v);
    }
    let outcome = db.append(&batch)?;
    feed.offer(batch.entries());
    Ok(usize::try_from(outcome.accepted).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tidemark_storage::Options;

    fn failed(c: &str) -> RecoveryEvent {
        RecoveryEvent::RecoveryFailed {
            component: c.into(),
            duration: Duration::from_millis(20),
            attempt: 2,
            reason: "timeout".into(),
        }
    }

    fn last(db: &Db, name: &str, k: &str, v: &str) -> f64 {
        let ids = db.select(&[Matcher::equal("__name__", name), Matcher::equal(k, v)]);
        assert_eq!(ids.len(), 1, "{name}{{{k}={v}}}");
        db.read(&ids, i64::MIN, i64::MAX).unwrap()[0]
            .1
            .last()
            .unwrap()
            .value
    }

    #[test]
    fn collect_writes_and_a_new_monitor_continues_the_counters() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
        let log = Arc::new(EventLog::open(&dir.path().join("events"), Default::default()).unwrap());
        let t = crate::server::now_ms();
        let m = Monitor::new(db.clone(), Some(log.clone()), MonitorOptions::default(), t).unwrap();
        m.record_all(&[failed("db"), failed("db")], t).unwrap();
        // Outcomes, 16 buckets, sum, count, consecutive failures.
        assert_eq!(m.collect(t).unwrap(), 2 + 16 + 2 + 1);
        assert_eq!(last(&db, "consecutive_failures", "component", "db"), 2.0);
        assert_eq!(last(&db, "recoveries_total", "outcome", "failure"), 2.0);
        let stored = log
            .query(&tidemark_storage::EventQuery {
                start_ms: t - 1,
                end_ms: t + 1,
                kinds: vec![],
                matchers: vec![],
                limit: 10,
                before: None,
            })
            .unwrap();
        assert_eq!(stored.events.len(), 2);
        drop(m);

        let m = Monitor::new(db.clone(), Some(log), MonitorOptions::default(), t).unwrap();
        m.record(failed("db"), t + 1000).unwrap();
        m.collect(t + 1000).unwrap();
        assert_eq!(last(&db, "recoveries_total", "outcome", "failure"), 3.0);
        assert_eq!(last(&db, "consecutive_failures", "component", "db"), 3.0);
        assert_eq!(
            last(&db, "recovery_duration_seconds_count", "component", "db"),
            3.0
        );
    }

    #[test]
    fn seeding_finds_old_samples_and_prefers_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
        let t = crate::server::now_ms();
        let day = 86_400_000;
        let put = |labels: &[(&str, &str)], name: &str, ts: i64, v: f64| {
            let set = Labels::metric(name, labels.iter().copied());
            write(&db, &crate::forward::Feed::default(), &[set], &[v], ts).unwrap();
        };
        // Only 40 days old: found by the widest window.
        put(
            &[("component", "old")],
            "fallbacks_total",
            t - 40 * day,
            7.0,
        );
        // Two samples: the newer wins, even with a stale marker after it.
        let failure = [("component", "db"), ("outcome", "failure")];
        put(&failure, "recoveries_total", t - 2 * day, 3.0);
        put(&failure, "recoveries_total", t - 1000, 5.0);
        put(
            &failure,
            "recoveries_total",
            t - 500,
            tidemark_query::stale_nan(),
        );
        let m = Monitor::new(db.clone(), None, MonitorOptions::default(), t).unwrap();
        let value = |c: &str, name: &str| {
            m.samples(c)
                .into_iter()
                .find(|d| d.name == name && d.labels.iter().all(|l| l.1 != "success"))
                .map(|d| d.value)
        };
        assert_eq!(value("old", "fallbacks_total"), Some(7.0));
        assert_eq!(value("db", "recoveries_total"), Some(5.0));
    }

    #[test]
    fn components_beyond_the_limit_are_counted_not_tracked() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
        let m = Monitor::new(db, None, MonitorOptions { max_components: 2 }, 0).unwrap();
        for c in ["a", "b", "c", "a"] {
            m.record(failed(c), 0).unwrap();
        }
        assert_eq!(m.components(), vec!["a", "b"]);
        assert_eq!(m.dropped_components(), 1);
        let report = m.observe(&[
            failed("b").to_event(1),
            Event {
                ts_ms: 1,
                kind: "deploy".into(),
                labels: Labels::from_pairs([("component", "b")]),
                fields: "{}".into(),
            },
            Event {
                ts_ms: 1,
                kind: "fallback_used".into(),
                labels: Labels::from_pairs([("service", "b")]),
                fields: "{}".into(),
            },
        ]);
        assert_eq!((report.derived, report.ignored), (1, 1));
        assert_eq!(report.invalid.len(), 1);
        assert_eq!(report.invalid[0].0, 2);
        let s = m.samples("b");
        let fails = s.iter().find(|d| d.name == "consecutive_failures").unwrap();
        assert_eq!(fails.value, 2.0);
    }
}
