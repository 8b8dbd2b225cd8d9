//! Byte layout of one event record and of CRC frames, shared by the active
//! log and sealed files.
//!
//! Invariants:
//! - A record is `id u64 ‖ ts i64 ‖ kind (u16 len ‖ bytes) ‖ labels (u32 len
//!   ‖ canonical label bytes) ‖ fields (u32 len ‖ bytes)`, all little endian.
//! - Decoding never trusts the bytes: every length is bounds-checked, every
//!   string is checked to be UTF-8, and a decode failure is `None`, never a
//!   panic.
//! - A frame is `len u32 ‖ crc u32 ‖ payload`, the CRC-32 covering the length
//!   bytes and the payload, so a zero-filled frame never validates.

use crate::types::Labels;

use super::Event;

/// An event with the sequence number that orders it among equal times.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stored {
    pub(crate) id: u64,
    pub(crate) event: Event,
}

impl Stored {
    /// The ordering key: newest first means descending by this.
    pub(crate) fn key(&self) -> (i64, u64) {
        (self.event.ts_ms, self.id)
    }
}

/// Frame header: length (u32 LE) + CRC-32 (u32 LE).
pub(crate) const FRAME_HEADER_LEN: usize = 8;

/// The CRC of a frame: its length bytes, then its payload.
pub(crate) fn frame_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    h.finalize()
}

/// Appends one frame holding `payload` to `out`.
pub(crate) fn put_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&frame_crc(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is at a position of a framed byte stream.
pub(crate) enum Frame<'a> {
    /// A valid frame; the next one starts at `next`.
    Ok { payload: &'a [u8], next: usize },
    /// A whole frame whose CRC does not match; the next one (probably)
    /// starts at `next`.
    BadCrc { next: usize },
    /// Too few bytes for the header or the declared length: a torn tail, or
    /// a length field that cannot be trusted.
    Truncated,
}

/// Reads the frame at `pos` of `buf` (payloads up to `max_len` bytes).
pub(crate) fn read_frame(buf: &[u8], pos: usize, max_len: usize) -> Frame<'_> {
    let Some(header) = buf.get(pos..pos + FRAME_HEADER_LEN) else {
        return Frame::Truncated;
    };
    let len_bytes: [u8; 4] = header[..4].try_into().expect("4 bytes");
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > max_len {
        return Frame::Truncated;
    }
    let start = pos + FRAME_HEADER_LEN;
    let Some(payload) = buf.get(start..start + len) else {
        return Frame::Truncated;
    };
    if frame_crc(len_bytes, payload) != crc {
        return Frame::BadCrc { next: start + len };
    }
    Frame::Ok {
        payload,
        next: start + len,
    }
}

/// Appends the record bytes of `s` to `out`. The caller has checked the
/// lengths fit their fields (see [`check_sizes`]).
pub(crate) fn encode(s: &Stored, out: &mut Vec<u8>) {
    let e = &s.event;
    out.extend_from_slice(&s.id.to_le_bytes());
    out.extend_from_slice(&e.ts_ms.to_le_bytes());
    out.extend_from_slice(&(e.kind.len() as u16).to_le_bytes());
    out.extend_from_slice(e.kind.as_bytes());
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    e.labels.encode_into(out);
    let labels_len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&labels_len.to_le_bytes());
    out.extend_from_slice(&(e.fields.len() as u32).to_le_bytes());
    out.extend_from_slice(e.fields.as_bytes());
}

/// Why an event cannot be stored, or `None` when it can.
pub(crate) fn check_sizes(e: &Event, max_record: usize) -> Option<String> {
    if e.kind.is_empty() {
        return Some("kind is empty".into());
    }
    if e.kind.len() > u16::MAX as usize {
        return Some(format!("kind is {} bytes (max {})", e.kind.len(), u16::MAX));
    }
    let labels: usize = e
        .labels
        .iter()
        .map(|l| l.name.len() + l.value.len() + 2)
        .sum();
    let total = 8 + 8 + 2 + e.kind.len() + 4 + labels + 4 + e.fields.len();
    if total > max_record {
        return Some(format!("event is {total} bytes encoded (max {max_record})"));
    }
    None
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self, n: usize) -> Option<String> {
        Some(std::str::from_utf8(self.take(n)?).ok()?.to_string())
    }
}

/// Decodes one record; `None` when the bytes are not exactly one record.
pub(crate) fn decode(buf: &[u8]) -> Option<Stored> {
    let mut r = Reader { buf, pos: 0 };
    let id = r.u64()?;
    let ts_ms = r.u64()? as i64;
    let kind_len = r.u16()? as usize;
    let kind = r.str(kind_len)?;
    let labels_len = r.u32()? as usize;
    let labels = Labels::decode(r.take(labels_len)?)?;
    let fields_len = r.u32()? as usize;
    let fields = r.str(fields_len)?;
    (r.pos == buf.len() && !kind.is_empty()).then_some(Stored {
        id,
        event: Event {
            ts_ms,
            kind,
            labels,
            fields,
        },
    })
}

/// Appends `s` to a block body: `u32 len ‖ record`.
pub(crate) fn encode_in_block(s: &Stored, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode(s, out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Decodes a block body; `None` if any record in it is malformed (the block
/// CRC passed, so this means a bug or a deliberate forgery, not bit rot).
pub(crate) fn decode_block(body: &[u8]) -> Option<Vec<Stored>> {
    let mut r = Reader { buf: body, pos: 0 };
    let mut out = Vec::new();
    while r.pos < body.len() {
        let len = r.u32()? as usize;
        out.push(decode(r.take(len)?)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Stored {
        Stored {
            id: 7,
            event: Event {
                ts_ms: -5,
                kind: "recovery_failed".into(),
                labels: Labels::from_pairs([("component", "db")]),
                fields: r#"{"attempt":3}"#.into(),
            },
        }
    }

    #[test]
    fn record_round_trips_and_rejects_every_truncation() {
        let mut buf = Vec::new();
        encode(&ev(), &mut buf);
        assert_eq!(decode(&buf), Some(ev()));
        for n in 0..buf.len() {
            assert_eq!(decode(&buf[..n]), None, "prefix of {n} bytes decoded");
        }
    }

    #[test]
    fn frame_detects_flips_and_torn_tails() {
        let mut buf = Vec::new();
        put_frame(&mut buf, b"hello");
        assert!(matches!(
            read_frame(&buf, 0, 100),
            Frame::Ok {
                payload: b"hello",
                next: 13
            }
        ));
        let mut flipped = buf.clone();
        flipped[10] ^= 1;
        assert!(matches!(
            read_frame(&flipped, 0, 100),
            Frame::BadCrc { next: 13 }
        ));
        assert!(matches!(read_frame(&buf[..12], 0, 100), Frame::Truncated));
        assert!(matches!(
            read_frame(&[0u8; 8], 0, 100),
            Frame::BadCrc { .. }
        ));
    }
}
