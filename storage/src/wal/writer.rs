//! The WAL writer: appending framed records to the current segment,
//! rotating, syncing and removing old segments.
//!
//! Invariants:
//! - One writer per directory, driven by one thread: every mutating method
//!   takes `&mut self` and there are no locks.
//! - A record is framed whole into `buf` and written to exactly one segment;
//!   a segment grows past `segment_size` only when it holds a single record
//!   larger than that.
//! - After a failed write or fsync the writer is poisoned: the tail on disk
//!   is unknown and Linux may have dropped the dirty pages, so retrying
//!   fsync could report success for lost data. Reopening repairs the tail.
//! - Rotation fsyncs the old segment before starting the next one, so a
//!   later `sync()` of the new segment never makes a record durable while
//!   an earlier one is not.
//! - `remove_before` never deletes the segment being written.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{ReplayReport, WalError};
use super::replay::{repair, scan_dir};
use super::segment::{
    FRAME_HEADER_LEN, HEADER_LEN, MAX_RECORD_LEN, frame_crc, header, segment_path, sync_dir,
};

/// How often the shard writer makes appended records durable. The WAL does
/// not apply this itself: the caller calls [`Wal::sync`] after every batch
/// (`Always`), at least every 10 ms (`Batch`, group commit) or never
/// (`Never`, calling [`Wal::flush`] instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsyncMode {
    Always,
    #[default]
    Batch,
    Never,
}

/// Options for [`Wal::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment is rotated before a record would take it past this size.
    pub segment_size: u64,
}

impl Default for WalOptions {
    /// 64 MiB segments: large enough that rotation (one fsync plus a file
    /// create) is rare, small enough that truncation after a head flush
    /// frees space promptly.
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
        }
    }
}

/// Buffered bytes are handed to the OS once they reach this size, so memory
/// stays bounded between caller flushes while writes stay large.
const FLUSH_THRESHOLD: usize = 1 << 20;

/// The write-ahead log of one ingest shard.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    file: File,
    /// The segment being written.
    segment: u64,
    /// Bytes of `segment` already handed to the OS (header included).
    written: u64,
    /// Framed records not yet written; reused, so steady-state appends do
    /// not allocate.
    buf: Vec<u8>,
    /// Older live segments, ascending, with their sizes.
    closed: VecDeque<(u64, u64)>,
    closed_bytes: u64,
    poisoned: bool,
}

impl Wal {
    /// Opens (creating) the WAL in `dir`: validates every record, repairs a
    /// torn or corrupt tail (see `Corruption`), and starts a new segment
    /// after the last one. Records are not delivered anywhere; to rebuild
    /// state from them, use [`Wal::open_with_replay`] (one pass) instead.
    ///
    /// # Errors
    /// [`WalError::Io`] on any filesystem failure,
    /// [`WalError::UnsupportedVersion`] for a segment of a newer format.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, ReplayReport), WalError> {
        Self::open_with_replay(dir, opts, |_| {})
    }

    /// Like [`Wal::open`], but calls `f` with every intact record payload in
    /// order, oldest segment first, before repairing and opening for
    /// appends. This is how the shard writer rebuilds its head on start.
    ///
    /// # Errors
    /// As for [`Wal::open`].
    pub fn open_with_replay(
        dir: &Path,
        opts: WalOptions,
        mut f: impl FnMut(&[u8]),
    ) -> Result<(Wal, ReplayReport), WalError> {
        std::fs::create_dir_all(dir).map_err(WalError::io(dir))?;
        let scan = scan_dir(dir, &mut f)?;
        repair(dir, &scan)?;
        let (file, path) = create_segment(dir, scan.next_segment)?;
        let closed: VecDeque<_> = scan.intact.iter().copied().collect();
        let wal = Wal {
            dir: dir.to_path_buf(),
            opts,
            file,
            segment: scan.next_segment,
            written: HEADER_LEN,
            buf: Vec::new(),
            closed_bytes: closed.iter().map(|(_, len)| len).sum(),
            closed,
            poisoned: false,
        };
        tracing::debug!(segment = wal.segment, path = %path.display(), "wal opened");
        Ok((wal, scan.report))
    }

    /// Appends one record (buffered; see [`Wal::flush`] and [`Wal::sync`]).
    ///
    /// # Errors
    /// [`WalError::RecordTooLarge`] above `MAX_RECORD_LEN` (nothing is
    /// written), [`WalError::Poisoned`], or an I/O error from a flush or
    /// rotation this append triggered.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), WalError> {
        self.append_with(|buf| buf.extend_from_slice(payload))
    }

    /// Appends one record whose payload `encode` appends to the given
    /// buffer, saving the copy [`Wal::append`] makes. `encode` must only
    /// append; it sees earlier buffered records before its own bytes.
    ///
    /// # Errors
    /// As for [`Wal::append`].
    pub fn append_with(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<(), WalError> {
        self.check_usable()?;
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; FRAME_HEADER_LEN as usize]);
        // If `encode` panics, `buf` holds a partial frame: stay poisoned.
        self.poisoned = true;
        encode(&mut self.buf);
        self.poisoned = false;
        let frame = self.buf.get_mut(start..).unwrap_or_default();
        let payload_len = frame.len() - FRAME_HEADER_LEN as usize;
        let len = match u32::try_from(payload_len) {
            Ok(len) if len <= MAX_RECORD_LEN => len,
            _ => {
                self.buf.truncate(start);
                return Err(WalError::RecordTooLarge {
                    len: payload_len,
                    max: MAX_RECORD_LEN,
                });
            }
        };
        let (head, payload) = frame.split_at_mut(FRAME_HEADER_LEN as usize);
        let crc = frame_crc(len.to_le_bytes(), payload);
        head[..4].copy_from_slice(&len.to_le_bytes());
        head[4..].copy_from_slice(&crc.to_le_bytes());

        let before = self.written + start as u64;
        let frame_len = FRAME_HEADER_LEN + u64::from(len);
        if before > HEADER_LEN && before + frame_len > self.opts.segment_size {
            // The record starts the next segment: write what precedes it to
            // the current one, then move on.
            self.write_out(start)?;
            self.next_segment()?;
        }
        if self.buf.len() >= FLUSH_THRESHOLD {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes buffered records to the OS and fsyncs the current segment
    /// (`fdatasync`). Everything appended before returns `Ok` survives a
    /// crash or power loss.
    ///
    /// # Errors
    /// [`WalError::Io`]; the writer is then poisoned.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.flush()?;
        let r = self.file.sync_data();
        self.poison_on_err(r)
    }

    /// Writes buffered records to the OS without fsync: they survive a
    /// process crash but not power loss.
    ///
    /// # Errors
    /// [`WalError::Io`]; the writer is then poisoned.
    pub fn flush(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        self.write_out(self.buf.len())
    }

    /// Syncs and closes the current segment and starts a new one; returns
    /// the new segment's number. Every record appended before this call is
    /// in a segment numbered below it.
    ///
    /// # Errors
    /// [`WalError::Io`]; the writer is then poisoned.
    pub fn rotate(&mut self) -> Result<u64, WalError> {
        self.flush()?;
        self.next_segment()?;
        Ok(self.segment)
    }

    /// Deletes every segment numbered below `segment`, oldest first, except
    /// the one being written. Call it once their records are durable
    /// elsewhere (after a head flush).
    ///
    /// # Errors
    /// [`WalError::Io`] if a file cannot be deleted; segments deleted before
    /// the failure stay deleted and the rest stay live.
    pub fn remove_before(&mut self, segment: u64) -> Result<(), WalError> {
        let mut removed = false;
        while let Some(&(n, len)) = self.closed.front() {
            if n >= segment {
                break;
            }
            let path = segment_path(&self.dir, n);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(WalError::Io { path, source: e });
                }
                _ => {}
            }
            self.closed.pop_front();
            self.closed_bytes -= len;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Total bytes of live segments, including records still buffered.
    pub fn size_bytes(&self) -> u64 {
        self.closed_bytes + self.written + self.buf.len() as u64
    }

    /// The segment being written.
    pub fn current_segment(&self) -> u64 {
        self.segment
    }

    /// Syncs and closes the WAL. Dropping it instead only flushes to the OS,
    /// best effort.
    ///
    /// # Errors
    /// As for [`Wal::sync`].
    pub fn close(mut self) -> Result<(), WalError> {
        self.sync()
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn poison_on_err(&mut self, r: std::io::Result<()>) -> Result<(), WalError> {
        r.map_err(|source| {
            self.poisoned = true;
            WalError::Io {
                path: segment_path(&self.dir, self.segment),
                source,
            }
        })
    }

    /// Writes the first `n` buffered bytes to the current segment.
    fn write_out(&mut self, n: usize) -> Result<(), WalError> {
        if n == 0 {
            return Ok(());
        }
        let r = self.file.write_all(self.buf.get(..n).unwrap_or_default());
        self.poison_on_err(r)?;
        self.written += n as u64;
        self.buf.drain(..n);
        Ok(())
    }

    /// Syncs the current segment and switches to a fresh one; bytes still in
    /// `buf` go to the new segment.
    fn next_segment(&mut self) -> Result<(), WalError> {
        let r = self.file.sync_data();
        self.poison_on_err(r)?;
        let next = self.segment + 1;
        let created = create_segment(&self.dir, next);
        let (file, _) = created.inspect_err(|_| self.poisoned = true)?;
        self.closed.push_back((self.segment, self.written));
        self.closed_bytes += self.written;
        self.file = file;
        self.segment = next;
        self.written = HEADER_LEN;
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if !self.poisoned && !self.buf.is_empty() {
            // Best effort, like BufWriter; `close` reports errors.
            let _ = self.file.write_all(&self.buf);
        }
    }
}

/// Creates segment `n` with its header written and its directory entry
/// synced. Fails if the file exists: numbers are never reused while live.
fn create_segment(dir: &Path, n: u64) -> Result<(File, PathBuf), WalError> {
    let path = segment_path(dir, n);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&header()).map(|()| f))
        .map_err(WalError::io(&path))?;
    file.flush().map_err(WalError::io(&path))?;
    sync_dir(dir)?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::replay;

    fn records(dir: &Path) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let report = replay(dir, |p| out.push(p.to_vec())).unwrap();
        assert_eq!(report.corruption, None);
        out
    }

    #[test]
    fn rotates_before_overflow_and_never_splits() {
        let dir = tempfile::tempdir().unwrap();
        // Header 8 + two 8+20-byte frames = 64.
        let opts = WalOptions { segment_size: 64 };
        let (mut wal, report) = Wal::open(dir.path(), opts).unwrap();
        assert_eq!(report, ReplayReport::default());
        assert_eq!(wal.current_segment(), 0);
        for i in 0..5u8 {
            wal.append(&[i; 20]).unwrap();
        }
        // An oversized record gets a segment of its own.
        wal.append(&[9; 100]).unwrap();
        wal.append(&[7; 20]).unwrap();
        wal.sync().unwrap();
        assert_eq!(wal.current_segment(), 4);
        let sizes: Vec<u64> = (0..=4)
            .map(|n| {
                std::fs::metadata(segment_path(dir.path(), n))
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, vec![64, 64, 36, 116, 36]);
        assert_eq!(wal.size_bytes(), sizes.iter().sum::<u64>());
        let got = records(dir.path());
        assert_eq!(got.len(), 7);
        assert_eq!(got[5], vec![9; 100]);
    }

    #[test]
    fn rotate_and_remove_before() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        wal.append(b"a").unwrap();
        assert_eq!(wal.rotate().unwrap(), 1);
        wal.append(b"b").unwrap();
        assert_eq!(wal.rotate().unwrap(), 2);
        wal.append(b"c").unwrap();
        wal.flush().unwrap();
        assert_eq!(wal.size_bytes(), 3 * (HEADER_LEN + FRAME_HEADER_LEN + 1));
        wal.remove_before(2).unwrap();
        assert_eq!(records(dir.path()), vec![b"c".to_vec()]);
        assert_eq!(wal.size_bytes(), HEADER_LEN + FRAME_HEADER_LEN + 1);
        // Never deletes the segment being written.
        wal.remove_before(u64::MAX).unwrap();
        assert_eq!(records(dir.path()), vec![b"c".to_vec()]);
        drop(wal);
        // Reopening continues after the last segment and keeps numbering.
        let (mut wal, report) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(report.records, 1);
        assert_eq!(wal.current_segment(), 3);
        wal.append(&[]).unwrap();
        wal.close().unwrap();
        assert_eq!(records(dir.path()), vec![b"c".to_vec(), vec![]]);
    }

    #[test]
    fn append_with_encodes_in_place_and_rejects_huge() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        wal.append_with(|b| b.extend_from_slice(b"xyz")).unwrap();
        let err = wal
            .append_with(|b| b.resize(b.len() + MAX_RECORD_LEN as usize + 1, 0))
            .unwrap_err();
        assert!(matches!(err, WalError::RecordTooLarge { .. }), "{err}");
        wal.append(b"after").unwrap();
        wal.sync().unwrap();
        assert_eq!(
            records(dir.path()),
            vec![b"xyz".to_vec(), b"after".to_vec()]
        );
    }

    #[test]
    fn steady_state_append_does_not_grow_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        let payload = vec![1u8; 50_000];
        for _ in 0..3 {
            wal.append(&payload).unwrap();
            wal.flush().unwrap();
        }
        let cap = wal.buf.capacity();
        for _ in 0..100 {
            wal.append(&payload).unwrap();
            wal.flush().unwrap();
        }
        assert_eq!(wal.buf.capacity(), cap);
    }
}
