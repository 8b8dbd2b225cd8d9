//! The active log of one time window: an append-only file of CRC-framed
//! records, mirrored in memory (events are small and rare) so queries of
//! the open window read no file.
//!
//! Invariants:
//! - The file is a header then whole frames: a failed write is truncated
//!   back to the last whole frame before the error is returned.
//! - `events` holds exactly the records of the file that decoded, in append
//!   order; `len` is the file's length.
//! - Reopening never panics on damage: a bad frame is skipped when its
//!   length can be trusted, a torn tail ends the scan; each is reported to
//!   [`Damage`] with the file and offset.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::codec::{self, Frame, Stored};
use super::{Damage, EventError, EventLogOptions, file_name, sync_dir};

const MAGIC: [u8; 4] = *b"TMEV";
const VERSION: u8 = 1;
/// Longest record a scan accepts regardless of the current options.
const MAX_SCAN_RECORD: usize = 64 << 20;
const HEADER: [u8; 8] = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, 0, 0, 0];

pub(crate) struct ActiveLog {
    pub(crate) window: i64,
    pub(crate) generation: u32,
    pub(crate) path: PathBuf,
    file: File,
    pub(crate) len: u64,
    pub(crate) events: Vec<Stored>,
    buf: Vec<u8>,
}

impl ActiveLog {
    /// Creates a new, empty log (header written and fsynced).
    pub(crate) fn create(dir: &Path, window: i64, generation: u32) -> Result<Self, EventError> {
        let path = dir.join(file_name(window, generation, ".log"));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(EventError::io(&path))?;
        file.write_all(&HEADER)
            .and_then(|()| file.sync_all())
            .map_err(EventError::io(&path))?;
        sync_dir(dir)?;
        Ok(Self {
            window,
            generation,
            path,
            file,
            len: HEADER.len() as u64,
            events: Vec::new(),
            buf: Vec::new(),
        })
    }

    /// Reads an existing log. The flag is true when damage was found (the
    /// caller seals such a log instead of appending after the damage).
    pub(crate) fn reopen(
        path: &Path,
        window: i64,
        generation: u32,
        opts: &EventLogOptions,
        damage: &Damage,
    ) -> Result<(Self, bool), EventError> {
        let bytes = std::fs::read(path).map_err(EventError::io(path))?;
        let mut events = Vec::new();
        let mut damaged = false;
        if bytes.get(..4) != Some(&MAGIC[..]) || bytes.get(4) != Some(&VERSION) {
            damage.report(path, 0, "bad header");
            damaged = true;
        } else {
            // Generous, so a record written under a larger `max_event_bytes`
            // still reads; only a nonsense length ends the scan.
            let max = opts.max_event_bytes.max(MAX_SCAN_RECORD);
            let mut pos = HEADER.len();
            while pos < bytes.len() {
                match codec::read_frame(&bytes, pos, max) {
                    Frame::Ok { payload, next } => {
                        match codec::decode(payload) {
                            Some(s) => events.push(s),
                            None => {
                                damage.report(path, pos as u64, "undecodable record");
                                damaged = true;
                            }
                        }
                        pos = next;
                    }
                    Frame::BadCrc { next } => {
                        damage.report(path, pos as u64, "record CRC mismatch");
                        damaged = true;
                        pos = next;
                    }
                    Frame::Truncated => {
                        damage.report(path, pos as u64, "torn or unreadable tail");
                        damaged = true;
                        break;
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(EventError::io(path))?;
        let log = Self {
            window,
            generation,
            path: path.to_path_buf(),
            file,
            len: bytes.len() as u64,
            events,
            buf: Vec::new(),
        };
        Ok((log, damaged))
    }

    /// Appends `batch` as one write (one frame per event), fsynced when
    /// `fsync`.
    pub(crate) fn append(&mut self, batch: Vec<Stored>, fsync: bool) -> Result<(), EventError> {
        self.buf.clear();
        let mut record = Vec::new();
        for s in &batch {
            record.clear();
            codec::encode(s, &mut record);
            codec::put_frame(&mut self.buf, &record);
        }
        let result = self
            .file
            .write_all(&self.buf)
            .and_then(|()| if fsync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = result {
            // Leave only whole frames behind; the error is what matters.
            let _ = self.file.set_len(self.len);
            return Err(EventError::io(&self.path)(e));
        }
        self.len += self.buf.len() as u64;
        self.events.extend(batch);
        Ok(())
    }

    pub(crate) fn max_ts(&self) -> Option<i64> {
        self.events.iter().map(|s| s.event.ts_ms).max()
    }

    pub(crate) fn delete(self) -> Result<(), EventError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EventError::io(&self.path)(e)),
        }
    }
}
