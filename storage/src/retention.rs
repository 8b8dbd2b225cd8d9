//! Raw-data retention: by age (a default plus per-series overrides chosen
//! by label matchers) and by a size cap, whichever hits first.
//!
//! Invariants:
//! - Space comes back for real: an expired window's files are deleted; a
//!   window where only some series expired is rewritten without them
//!   (`partition::retain`).
//! - Age-based expiry waits until a window is rolled up into the first
//!   tier (when tiers exist), so the tiers never miss raw data that aged
//!   out before the background rollup reached it. The size cap does not
//!   wait (disk is a hard limit); it logs when it drops raw data no tier
//!   holds yet.
//! - The size cap never drops the newest window (the one being written).
//! - A series' retention is the first override whose matchers select it,
//!   else the default; with no default and no override it is kept.

use std::collections::HashSet;
use std::time::Duration;

use crate::db::{Db, Shared};
use crate::error::Error;
use crate::partition::retain::Retained;
use crate::rollup::TierInfo;
use crate::types::{Matcher, SeriesId, Timestamp};

/// Keep the series `matchers` select for `retention` instead of the
/// default (longer or shorter).
#[derive(Clone, Debug)]
pub struct RetentionOverride {
    pub matchers: Vec<Matcher>,
    pub retention: Duration,
}

/// What one retention pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Windows deleted whole (by age or by the size cap).
    pub windows_dropped: usize,
    /// Windows rewritten without some series.
    pub windows_rewritten: usize,
    /// Series removed from rewritten windows (counted per window).
    pub series_removed: usize,
    pub bytes_freed: u64,
}

impl Db {
    /// Applies `Options::retention`, `retention_overrides` and
    /// `retention_max_bytes` at `now_ms` (the background thread does this
    /// every `compact_interval`).
    pub fn apply_retention(&self, now_ms: Timestamp) -> Result<RetentionReport, Error> {
        apply(&self.shared, now_ms)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One pass; see the module docs.
pub(crate) fn apply(shared: &Shared, now_ms: Timestamp) -> Result<RetentionReport, Error> {
    let opts = &shared.opts;
    let mut report = RetentionReport::default();
    let default = opts.retention.map(ms);
    let overrides: Vec<(HashSet<SeriesId>, i64)> = opts
        .retention_overrides
        .iter()
        .map(|o| {
            (
                shared.index.select(&o.matchers).into_iter().collect(),
                ms(o.retention),
            )
        })
        .collect();
    let retention_of = |id: SeriesId| -> Option<i64> {
        overrides
            .iter()
            .find(|(ids, _)| ids.contains(&id))
            .map(|(_, r)| *r)
            .or(default)
    };
    // The shortest retention anything has: windows ending after
    // `now - shortest` hold nothing expired.
    let shortest = overrides.iter().map(|(_, r)| *r).chain(default).min();
    if let Some(shortest) = shortest {
        let tiers = shared.rollups.info();
        for w in shared.parts.windows() {
            if w.end > now_ms.saturating_sub(shortest) {
                break;
            }
            if !w.sealed || !rolled_up(&tiers, w.start, w.end) {
                continue;
            }
            let expired =
                |id: SeriesId| retention_of(id).is_some_and(|r| w.end <= now_ms.saturating_sub(r));
            if overrides.is_empty() {
                // Every series has the default: the whole window goes.
                if shared.parts.drop_window(w.start)? {
                    report.windows_dropped += 1;
                    report.bytes_freed += w.bytes;
                }
                continue;
            }
            match shared.parts.retain_series(w.start, &|id| !expired(id))? {
                Retained::Unchanged | Retained::NotSealed => {}
                Retained::Rewritten {
                    removed,
                    bytes_freed,
                } => {
                    report.windows_rewritten += 1;
                    report.series_removed += removed;
                    report.bytes_freed += bytes_freed;
                }
                Retained::Dropped { bytes_freed } => {
                    report.windows_dropped += 1;
                    report.bytes_freed += bytes_freed;
                }
            }
        }
    }
    if let Some(cap) = opts.retention_max_bytes {
        size_cap(shared, cap, &mut report)?;
    }
    if report != RetentionReport::default() {
        tracing::info!(
            dropped = report.windows_dropped,
            rewritten = report.windows_rewritten,
            series_removed = report.series_removed,
            bytes_freed = report.bytes_freed,
            "retention applied"
        );
    }
    Ok(report)
}

/// Whether the first tier holds `[start, end)` (true without tiers).
fn rolled_up(tiers: &[TierInfo], start: Timestamp, end: Timestamp) -> bool {
    tiers
        .first()
        .is_none_or(|t| t.coverage.iter().any(|&(s, e)| s <= start && end <= e))
}

/// Drops the oldest windows until raw partitions fit in `cap` bytes,
/// keeping the newest window.
fn size_cap(shared: &Shared, cap: u64, report: &mut RetentionReport) -> Result<(), Error> {
    let windows = shared.parts.windows();
    let mut total: u64 = windows.iter().map(|w| w.bytes).sum();
    let tiers = shared.rollups.info();
    for w in windows.iter().take(windows.len().saturating_sub(1)) {
        if total <= cap {
            break;
        }
        if !rolled_up(&tiers, w.start, w.end) {
            tracing::warn!(
                start = w.start,
                "raw size cap drops a window no rollup tier holds yet"
            );
        }
        if shared.parts.drop_window(w.start)? {
            report.windows_dropped += 1;
            report.bytes_freed += w.bytes;
            total -= w.bytes;
        }
    }
    Ok(())
}
