//! [`Reader`]: reads a [`Queue`]'s records in order from a position, never
//! past a segment's committed length, checking every frame's CRC (bytes
//! from disk are never trusted: a damaged record is reported and the rest
//! of its segment skipped).

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::queue::{Located, Position, Queue, QueueError, io_err};
use super::record::{self, Entry, FRAME_HEADER_LEN, FrameError};

/// What one [`Reader::next`] call produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// A record's samples were appended; they came from `segment`.
    Record {
        enqueued_ms: i64,
        samples: usize,
        segment: u64,
    },
    /// The next record has more samples than the room given; nothing read.
    NoRoom,
    /// No more committed data.
    End,
    /// A damaged record (bytes from disk are never trusted): the rest of
    /// its segment was skipped.
    Skipped {
        segment: u64,
        offset: u64,
        reason: &'static str,
    },
}

/// Reads records in order from a position (one per queue, the sender's).
pub struct Reader {
    pos: Position,
    file: Option<(u64, File)>,
    header: [u8; FRAME_HEADER_LEN],
    payload: Vec<u8>,
}

impl Reader {
    pub(super) fn new(pos: Position) -> Self {
        Reader {
            pos,
            file: None,
            header: [0; FRAME_HEADER_LEN],
            payload: Vec::new(),
        }
    }

    /// The position after the last record read.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Moves back to `pos` (after a failed send, to re-read a batch).
    pub fn seek(&mut self, pos: Position) {
        self.pos = pos;
    }

    /// Reads the next record into `out` if it has at most `room` samples.
    ///
    /// # Errors
    /// A segment could not be opened or read.
    pub fn next(
        &mut self,
        q: &Queue,
        room: usize,
        out: &mut Vec<Entry>,
    ) -> Result<Read, QueueError> {
        let end = loop {
            match q.locate(self.pos) {
                Located::End => return Ok(Read::End),
                Located::Jump(p) => self.pos = p,
                Located::Data { end } => break end,
            }
        };
        let seq = self.pos.segment;
        if self.file.as_ref().is_none_or(|(s, _)| *s != seq) {
            let path = q.path(seq);
            let f = File::open(&path).map_err(io_err(&path))?;
            self.file = Some((seq, f));
        }
        let (_, f) = self.file.as_ref().expect("opened above");
        let path = || q.path(seq);
        let off = self.pos.offset;
        let skip = |r: &mut Reader, reason: FrameError| {
            r.pos.offset = end;
            Ok(Read::Skipped {
                segment: seq,
                offset: off,
                reason: reason.as_str(),
            })
        };
        if off + FRAME_HEADER_LEN as u64 > end {
            return skip(self, FrameError::Truncated);
        }
        f.read_exact_at(&mut self.header, off)
            .map_err(io_err(&path()))?;
        let len = record::frame_len(&self.header);
        let next = off + (FRAME_HEADER_LEN + len) as u64;
        if next > end {
            return skip(self, FrameError::Truncated);
        }
        if len >= record::RECORD_HEADER_LEN {
            // Peek at the count before reading the samples.
            let mut head = [0u8; record::RECORD_HEADER_LEN];
            f.read_exact_at(&mut head, off + FRAME_HEADER_LEN as u64)
                .map_err(io_err(&path()))?;
            let count = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
            if count > room && count * record::SAMPLE_LEN + record::RECORD_HEADER_LEN == len {
                return Ok(Read::NoRoom);
            }
        }
        self.payload.resize(len, 0);
        f.read_exact_at(&mut self.payload, off + FRAME_HEADER_LEN as u64)
            .map_err(io_err(&path()))?;
        match record::check_frame(&self.header, &self.payload) {
            Ok((enqueued_ms, samples)) => {
                record::decode_samples(&self.payload, out);
                self.pos.offset = next;
                Ok(Read::Record {
                    enqueued_ms,
                    samples,
                    segment: seq,
                })
            }
            Err(e) => skip(self, e),
        }
    }
}
