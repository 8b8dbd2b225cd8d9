//! Replay and repair: reading a WAL directory in order and cutting it back
//! to its intact prefix.
//!
//! Invariants:
//! - Replay delivers exactly the intact prefix of the log: every record
//!   before the first damage, in order, and nothing after it (not even
//!   intact records in later segments, which would leave a hole in history).
//! - Repair makes the directory equal to that prefix: it first deletes the
//!   later segments (highest first), then truncates the damaged segment at
//!   the damage (or deletes it when its header is bad), syncing each step.
//!   If it crashes part-way, the damage is still there and the next open
//!   repeats the same repair.

use std::fs::OpenOptions;
use std::path::Path;

use super::error::{Corruption, CorruptionKind, ReplayReport, WalError};
use super::segment::{list_segments, scan_segment, sync_dir};

/// Reads every intact record in `dir` in order (oldest segment first),
/// calling `f` with each payload, and reports the first damage. Read-only:
/// it never modifies the directory (use `Wal::open_with_replay` to replay
/// and repair in one pass).
///
/// # Errors
/// [`WalError::Io`] if the directory or a segment cannot be read;
/// [`WalError::UnsupportedVersion`] for a segment written by a newer format.
pub fn replay(dir: &Path, mut f: impl FnMut(&[u8])) -> Result<ReplayReport, WalError> {
    Ok(scan_dir(dir, &mut f)?.report)
}

/// A scanned directory and what repair must do to it.
#[derive(Debug)]
pub(crate) struct DirScan {
    pub(crate) report: ReplayReport,
    /// Segments that survive repair, ascending, with their repaired sizes.
    pub(crate) intact: Vec<(u64, u64)>,
    /// The number the next new segment must take.
    pub(crate) next_segment: u64,
    repair: Option<Repair>,
}

#[derive(Debug)]
struct Repair {
    /// Delete these, highest first.
    delete: Vec<std::path::PathBuf>,
    /// Then truncate this segment to this length.
    truncate: Option<(std::path::PathBuf, u64)>,
}

pub(crate) fn scan_dir(dir: &Path, f: &mut dyn FnMut(&[u8])) -> Result<DirScan, WalError> {
    let _span = tracing::info_span!("wal_replay", dir = %dir.display()).entered();
    let segments = list_segments(dir)?;
    let mut out = DirScan {
        report: ReplayReport::default(),
        intact: Vec::with_capacity(segments.len()),
        next_segment: segments.last().map_or(0, |(n, _)| n + 1),
        repair: None,
    };
    let mut buf = Vec::new();
    for (i, (n, path)) in segments.iter().enumerate() {
        let later = segments.get(i + 1..).unwrap_or_default();
        if let Some(&(prev, _)) = out.intact.last()
            && *n != prev + 1
        {
            let missing = prev + 1;
            let from_here = segments.get(i..).unwrap_or_default();
            out.report.corruption = Some(Corruption {
                segment: missing,
                offset: 0,
                reason: CorruptionKind::MissingSegment,
                dropped_bytes: total_len(from_here)?,
            });
            out.next_segment = missing;
            out.repair = Some(Repair {
                delete: from_here.iter().rev().map(|(_, p)| p.clone()).collect(),
                truncate: None,
            });
            break;
        }
        let scan = scan_segment(path, &mut buf, f)?;
        out.report.records += scan.records;
        out.report.bytes += scan.valid_len;
        let Some(reason) = scan.damage else {
            out.report.segments += 1;
            out.intact.push((*n, scan.file_len));
            continue;
        };
        let header_bad = matches!(
            reason,
            CorruptionKind::TornHeader | CorruptionKind::BadHeader
        );
        let mut delete: Vec<_> = later.iter().rev().map(|(_, p)| p.clone()).collect();
        let truncate = if header_bad {
            // Nothing in it is usable; its number is taken by the next
            // segment, so numbering stays contiguous.
            delete.push(path.clone());
            out.next_segment = *n;
            None
        } else {
            out.report.segments += 1;
            out.intact.push((*n, scan.valid_len));
            out.next_segment = n + 1;
            Some((path.clone(), scan.valid_len))
        };
        out.report.corruption = Some(Corruption {
            segment: *n,
            offset: scan.valid_len,
            reason,
            dropped_bytes: scan.file_len - scan.valid_len + total_len(later)?,
        });
        out.repair = Some(Repair { delete, truncate });
        break;
    }
    Ok(out)
}

/// Applies the repair `scan` planned, if any, and logs it.
pub(crate) fn repair(dir: &Path, scan: &DirScan) -> Result<(), WalError> {
    let (Some(plan), Some(c)) = (&scan.repair, &scan.report.corruption) else {
        return Ok(());
    };
    tracing::warn!(
        dir = %dir.display(),
        segment = c.segment,
        offset = c.offset,
        dropped_bytes = c.dropped_bytes,
        deleted_segments = plan.delete.len(),
        "repairing wal: {c}"
    );
    for path in &plan.delete {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(WalError::Io {
                    path: path.clone(),
                    source: e,
                });
            }
            _ => {}
        }
    }
    if !plan.delete.is_empty() {
        sync_dir(dir)?;
    }
    if let Some((path, len)) = &plan.truncate {
        let io = WalError::io(path);
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| {
                f.set_len(*len)?;
                f.sync_all()
            })
            .map_err(io)?;
    }
    Ok(())
}

fn total_len(segments: &[(u64, std::path::PathBuf)]) -> Result<u64, WalError> {
    let mut total = 0;
    for (_, p) in segments {
        total += std::fs::metadata(p).map_err(WalError::io(p))?.len();
    }
    Ok(total)
}
