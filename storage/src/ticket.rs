//! Completion tracking for a submitted batch: the [`Ticket`] a producer waits
//! on, completed by the shard writers that hold its parts.
//!
//! Invariants:
//! - `remaining` counts the shard parts not yet finished; the part that
//!   brings it to zero marks the ticket done and releases the batch's
//!   in-flight permit exactly once.
//! - Lock-free handshake: the waiter publishes its thread, then checks
//!   `done`; a finisher sets `done`, then unparks any published waiter. With
//!   SeqCst on both sides at least one of them sees the other, so a wake-up
//!   is never lost.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

use crate::error::Error;

/// What happened to the samples of one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Stored (and durable per the fsync mode when returned by `wait`).
    pub accepted: u64,
    /// Rejected: older than the series' newest sample minus the
    /// out-of-order window.
    pub too_old: u64,
    /// Rejected: the `SeriesId` does not exist.
    pub unknown_series: u64,
}

impl AppendOutcome {
    pub fn rejected(&self) -> u64 {
        self.too_old + self.unknown_series
    }
}

pub(crate) struct TicketState {
    remaining: AtomicUsize,
    done: AtomicBool,
    accepted: AtomicU64,
    too_old: AtomicU64,
    unknown: AtomicU64,
    error: OnceLock<String>,
    waiter: OnceLock<Thread>,
    inflight: Arc<AtomicUsize>,
}

impl TicketState {
    pub(crate) fn new(parts: usize, inflight: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicUsize::new(parts),
            done: AtomicBool::new(parts == 0),
            accepted: AtomicU64::new(0),
            too_old: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            error: OnceLock::new(),
            waiter: OnceLock::new(),
            inflight,
        })
    }

    pub(crate) fn count(&self, accepted: u64, too_old: u64, unknown: u64) {
        self.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.too_old.fetch_add(too_old, Ordering::Relaxed);
        self.unknown.fetch_add(unknown, Ordering::Relaxed);
    }

    /// Records why the batch failed; the first reason is kept.
    pub(crate) fn fail(&self, reason: &str) {
        let _ = self.error.set(reason.to_string());
    }

    /// Marks one shard part finished.
    pub(crate) fn finish_part(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inflight.fetch_sub(1, Ordering::AcqRel);
            self.done.store(true, Ordering::SeqCst);
            if let Some(t) = self.waiter.get() {
                t.unpark();
            }
        }
    }
}

/// A submitted batch. [`Ticket::wait`] blocks until every sample is applied
/// and durable per the database's fsync mode.
#[must_use = "a batch is acknowledged only once its ticket is waited on"]
pub struct Ticket {
    pub(crate) state: Arc<TicketState>,
}

impl Ticket {
    /// True when `wait` would return without blocking.
    pub fn is_done(&self) -> bool {
        self.state.done.load(Ordering::SeqCst)
    }

    /// Blocks until the batch is applied and durable. `Err` means a writer
    /// hit a disk error: the batch is not acknowledged (parts of it may still
    /// be readable).
    pub fn wait(self) -> Result<AppendOutcome, Error> {
        let s = &self.state;
        if !s.done.load(Ordering::SeqCst) {
            let _ = s.waiter.set(std::thread::current());
            while !s.done.load(Ordering::SeqCst) {
                std::thread::park();
            }
        }
        if let Some(e) = s.error.get() {
            return Err(Error::WriterFailed(e.clone()));
        }
        Ok(AppendOutcome {
            accepted: s.accepted.load(Ordering::Relaxed),
            too_old: s.too_old.load(Ordering::Relaxed),
            unknown_series: s.unknown.load(Ordering::Relaxed),
        })
    }
}
