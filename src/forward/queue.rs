//! [`Queue`]: one target's disk-backed queue under
//! `<data_dir>/forward/<target>/`: numbered segment files
//! (`00000000000000000001.seg`, ...) of CRC-framed sample records (see
//! `record`), and `acked`, the position up to which the target confirmed
//! delivery.
//!
//! Invariants:
//! - Records are appended by one writer and read by one [`Reader`]; the
//!   reader never reads past the committed length of a segment, so it never
//!   sees a half-written record.
//! - The acked position only moves forward, and only after a 2xx (the
//!   sender calls [`Queue::ack`]): after a crash the reader resumes there,
//!   so a batch may be sent twice but never skipped. The `acked` file is
//!   replaced atomically (write + rename); a damaged one is reported and
//!   the queue resends from its oldest segment.
//! - A segment is deleted once the acked position is past it.
//! - The queue's size stays under `max_bytes`: when a record would exceed
//!   it, the oldest segments are deleted and their unsent samples counted
//!   as dropped. The segment being written is never dropped.
//! - A torn tail (a crash mid-write) is found at open, reported, and cut
//!   off; later records go to a new segment.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use super::reader::{Read, Reader};
use super::record::{self, Entry, FRAME_HEADER_LEN, FrameError, SEGMENT_HEADER_LEN, SEGMENT_MAGIC};

/// A place in the queue: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// A queue operation that failed on disk.
#[derive(Debug, thiserror::Error)]
#[error("forward queue {}: {source}", path.display())]
pub struct QueueError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> QueueError + '_ {
    move |source| QueueError {
        path: path.to_path_buf(),
        source,
    }
}

/// Sizes of one queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueOptions {
    pub max_bytes: u64,
    pub segment_bytes: u64,
    /// Larger batches are split into records of at most this many samples
    /// (the sender's `max_samples_per_send`, so a record always fits).
    pub max_record_samples: usize,
}

/// Damage found at open and cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub segment: u64,
    pub offset: u64,
    pub bytes: u64,
    pub reason: &'static str,
}

/// What [`Queue::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub segments: usize,
    /// Samples not yet acknowledged.
    pub unsent_samples: u64,
    pub torn: Vec<TornTail>,
    /// The `acked` file existed but was damaged (resending from the start).
    pub bad_ack_file: bool,
}

struct Segment {
    seq: u64,
    /// Committed bytes (header + complete records).
    len: u64,
    /// Samples in records at or after the acked position.
    unsent: u64,
}

struct Inner {
    segments: VecDeque<Segment>,
    /// Append handle of the last segment, if it is still being written.
    active: Option<File>,
    acked: Position,
    total_bytes: u64,
    dirty: bool,
    scratch: Vec<u8>,
}

/// One target's queue (see the module doc).
pub struct Queue {
    dir: PathBuf,
    opts: QueueOptions,
    inner: Mutex<Inner>,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

impl Queue {
    /// Opens (creating) the queue in `dir`, checking every segment.
    ///
    /// # Errors
    /// The directory or a segment cannot be read or written.
    pub fn open(dir: &Path, opts: QueueOptions) -> Result<(Queue, OpenReport), QueueError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
                continue;
            };
            if let Ok(seq) = stem.parse::<u64>() {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut report = OpenReport::default();
        let ack_path = dir.join("acked");
        let mut acked = match std::fs::read(&ack_path) {
            Ok(b) => match record::decode_ack(&b) {
                Some((segment, offset)) => Some(Position { segment, offset }),
                None => {
                    report.bad_ack_file = true;
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&ack_path)(e)),
        };
        let mut segments = VecDeque::new();
        let mut total_bytes = 0;
        for seq in seqs {
            let path = dir.join(segment_name(seq));
            if acked.is_some_and(|a| seq < a.segment) {
                // Fully acknowledged; left over from a crash before deletion.
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            let from = match acked {
                Some(a) if a.segment == seq => a.offset,
                _ => SEGMENT_HEADER_LEN,
            };
            let (len, unsent, torn) = scan_segment(&path, seq, from)?;
            if let Some(t) = torn {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(len).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
                report.torn.push(t);
            }
            report.unsent_samples += unsent;
            total_bytes += len;
            segments.push_back(Segment { seq, len, unsent });
        }
        // An acked position in a segment that no longer exists (or past its
        // end) is moved to the oldest data there is: resend, never skip.
        let first = segments.front().map_or(1, |s| s.seq);
        let acked = match acked.take() {
            Some(a) => match segments.iter().find(|s| s.seq == a.segment) {
                Some(s) => Position {
                    segment: a.segment,
                    offset: a.offset.clamp(SEGMENT_HEADER_LEN, s.len),
                },
                None if a.segment > first => Position {
                    segment: a.segment,
                    offset: SEGMENT_HEADER_LEN,
                },
                None => Position {
                    segment: first,
                    offset: SEGMENT_HEADER_LEN,
                },
            },
            None => Position {
                segment: first,
                offset: SEGMENT_HEADER_LEN,
            },
        };
        report.segments = segments.len();
        let q = Queue {
            dir: dir.to_path_buf(),
            opts,
            inner: Mutex::new(Inner {
                segments,
                active: None,
                acked,
                total_bytes,
                dirty: false,
                scratch: Vec::new(),
            }),
        };
        Ok((q, report))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(segment_name(seq))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `samples` (split into records of at most
    /// `max_record_samples`), enqueued at `now_ms`. Returns how many unsent
    /// samples were dropped to stay under `max_bytes`.
    ///
    /// # Errors
    /// A write failed; the segment is closed and nothing of the failed
    /// record is visible to the reader.
    pub fn append(&self, now_ms: i64, samples: &[Entry]) -> Result<u64, QueueError> {
        let mut dropped = 0;
        let mut g = self.lock();
        let inner = &mut *g;
        for chunk in samples.chunks(self.opts.max_record_samples.max(1)) {
            let mut frame = std::mem::take(&mut inner.scratch);
            frame.clear();
            record::encode_frame(now_ms, chunk, &mut frame);
            let res = self.append_frame(inner, &frame, chunk.len() as u64);
            inner.scratch = frame;
            dropped += res?;
        }
        Ok(dropped)
    }

    fn append_frame(
        &self,
        inner: &mut Inner,
        frame: &[u8],
        samples: u64,
    ) -> Result<u64, QueueError> {
        let flen = frame.len() as u64;
        let full = inner
            .segments
            .back()
            .is_none_or(|s| s.len > SEGMENT_HEADER_LEN && s.len + flen > self.opts.segment_bytes);
        if inner.active.is_none() || full {
            self.rotate(inner)?;
        }
        let mut dropped = 0;
        while inner.total_bytes + flen > self.opts.max_bytes && inner.segments.len() > 1 {
            dropped += self.drop_oldest(inner)?;
        }
        let seg = inner.segments.back_mut().expect("rotate created a segment");
        let file = inner.active.as_ref().expect("rotate opened the segment");
        if let Err(e) = file.write_all_at(frame, seg.len) {
            // Bytes past `len` are never read; start afresh next time.
            inner.active = None;
            return Err(io_err(&self.path(seg.seq))(e));
        }
        seg.len += flen;
        seg.unsent += samples;
        inner.total_bytes += flen;
        inner.dirty = true;
        Ok(dropped)
    }

    /// Closes the current segment (synced) and starts the next one.
    fn rotate(&self, inner: &mut Inner) -> Result<(), QueueError> {
        if let Some(f) = inner.active.take()
            && inner.dirty
        {
            let seq = inner.segments.back().map_or(0, |s| s.seq);
            f.sync_data().map_err(io_err(&self.path(seq)))?;
            inner.dirty = false;
        }
        let seq = inner
            .segments
            .back()
            .map_or(inner.acked.segment, |s| s.seq + 1);
        let path = self.path(seq);
        let f = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.write_all_at(SEGMENT_MAGIC, 0).map_err(io_err(&path))?;
        inner.total_bytes += SEGMENT_HEADER_LEN;
        inner.segments.push_back(Segment {
            seq,
            len: SEGMENT_HEADER_LEN,
            unsent: 0,
        });
        inner.active = Some(f);
        Ok(())
    }

    /// Deletes the oldest segment; returns its unsent samples.
    fn drop_oldest(&self, inner: &mut Inner) -> Result<u64, QueueError> {
        let seg = inner.segments.pop_front().expect("caller checked len > 1");
        let path = self.path(seg.seq);
        std::fs::remove_file(&path).map_err(io_err(&path))?;
        inner.total_bytes -= seg.len;
        if inner.acked.segment <= seg.seq {
            let next = inner.segments.front().map_or(seg.seq + 1, |s| s.seq);
            inner.acked = Position {
                segment: next,
                offset: SEGMENT_HEADER_LEN,
            };
            self.write_ack(inner.acked)?;
        }
        Ok(seg.unsent)
    }

    /// Records that everything before `pos` was delivered; `consumed` is
    /// `(segment, samples)` of the records acknowledged. Deletes segments
    /// that are now fully acknowledged and persists the position.
    ///
    /// # Errors
    /// The `acked` file or a segment could not be written or deleted.
    pub fn ack(&self, pos: Position, consumed: &[(u64, u64)]) -> Result<(), QueueError> {
        let mut g = self.lock();
        let inner = &mut *g;
        if pos <= inner.acked {
            return Ok(());
        }
        for &(seq, n) in consumed {
            if let Some(s) = inner.segments.iter_mut().find(|s| s.seq == seq) {
                s.unsent = s.unsent.saturating_sub(n);
            }
        }
        let mut pos = pos;
        // The end of a closed segment is the start of the next one.
        if let Some(i) = inner.segments.iter().position(|s| s.seq == pos.segment)
            && i + 1 < inner.segments.len()
            && pos.offset >= inner.segments[i].len
        {
            pos = Position {
                segment: inner.segments[i + 1].seq,
                offset: SEGMENT_HEADER_LEN,
            };
        }
        inner.acked = pos;
        while inner.segments.front().is_some_and(|s| s.seq < pos.segment) {
            let seg = inner.segments.pop_front().expect("checked");
            let path = self.path(seg.seq);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            inner.total_bytes -= seg.len;
        }
        self.write_ack(pos)
    }

    fn write_ack(&self, pos: Position) -> Result<(), QueueError> {
        let tmp = self.dir.join("acked.tmp");
        std::fs::write(&tmp, record::encode_ack(pos.segment, pos.offset)).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, self.dir.join("acked")).map_err(io_err(&tmp))
    }

    /// The acknowledged position (where a new reader starts).
    pub fn acked(&self) -> Position {
        self.lock().acked
    }

    /// Bytes on disk not yet acknowledged (segment headers included).
    pub fn queued_bytes(&self) -> u64 {
        let g = self.lock();
        let acked_prefix = g
            .segments
            .front()
            .filter(|s| s.seq == g.acked.segment)
            .map_or(0, |_| g.acked.offset - SEGMENT_HEADER_LEN);
        g.total_bytes - acked_prefix
    }

    /// Samples not yet acknowledged.
    pub fn unsent_samples(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.unsent).sum()
    }

    /// fsyncs the segment being written if it changed.
    ///
    /// # Errors
    /// The fsync failed.
    pub fn sync(&self) -> Result<(), QueueError> {
        let mut g = self.lock();
        if let (Some(f), true) = (&g.active, g.dirty) {
            let seq = g.segments.back().map_or(0, |s| s.seq);
            f.sync_data().map_err(io_err(&self.path(seq)))?;
            g.dirty = false;
        }
        Ok(())
    }

    /// A reader starting at the acknowledged position.
    pub fn reader(&self) -> Reader {
        Reader::new(self.acked())
    }

    /// Where `pos` stands.
    pub(super) fn locate(&self, pos: Position) -> Located {
        let g = self.lock();
        let Some(first) = g.segments.front() else {
            return Located::End;
        };
        if pos.segment < first.seq {
            return Located::Jump(Position {
                segment: first.seq,
                offset: SEGMENT_HEADER_LEN,
            });
        }
        match g.segments.iter().position(|s| s.seq == pos.segment) {
            Some(i) if pos.offset < g.segments[i].len => Located::Data {
                end: g.segments[i].len,
            },
            Some(i) if i + 1 < g.segments.len() => Located::Jump(Position {
                segment: g.segments[i + 1].seq,
                offset: SEGMENT_HEADER_LEN,
            }),
            _ => Located::End,
        }
    }
}

/// Where a reader position stands (see [`Queue::locate`]).
pub(super) enum Located {
    /// At the end of the committed data.
    End,
    /// In a segment that is gone or fully read: continue here.
    Jump(Position),
    /// Before `end`, the segment's committed length.
    Data { end: u64 },
}

/// Reads one segment's records from `from`; returns the committed length,
/// the samples at or after `from`, and the torn tail if any.
fn scan_segment(
    path: &Path,
    seq: u64,
    from: u64,
) -> Result<(u64, u64, Option<TornTail>), QueueError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let size = bytes.len() as u64;
    let torn = |offset: u64, reason: &'static str| TornTail {
        segment: seq,
        offset,
        bytes: size - offset,
        reason,
    };
    if bytes.len() < SEGMENT_MAGIC.len() || &bytes[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        // A crash while creating it: nothing usable; keep a valid header.
        std::fs::write(path, SEGMENT_MAGIC).map_err(io_err(path))?;
        let t = (size > 0).then(|| torn(0, "bad segment header"));
        return Ok((SEGMENT_HEADER_LEN, 0, t));
    }
    let mut off = SEGMENT_HEADER_LEN as usize;
    let mut unsent = 0;
    while off < bytes.len() {
        let Some(header) = bytes.get(off..off + FRAME_HEADER_LEN) else {
            return Ok((
                off as u64,
                unsent,
                Some(torn(off as u64, FrameError::Truncated.as_str())),
            ));
        };
        let header: [u8; FRAME_HEADER_LEN] = header.try_into().expect("sliced to length");
        let end = off + FRAME_HEADER_LEN + record::frame_len(&header);
        let Some(payload) = bytes.get(off + FRAME_HEADER_LEN..end) else {
            return Ok((
                off as u64,
                unsent,
                Some(torn(off as u64, FrameError::Truncated.as_str())),
            ));
        };
        match record::check_frame(&header, payload) {
            Ok((_, count)) => {
                if off as u64 >= from {
                    unsent += count as u64;
                }
            }
            Err(e) => return Ok((off as u64, unsent, Some(torn(off as u64, e.as_str())))),
        }
        off = end;
    }
    Ok((off as u64, unsent, None))
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
