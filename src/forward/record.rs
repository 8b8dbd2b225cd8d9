//! Bytes of the forward queue: segment header, CRC-framed records of
//! compact sample batches, and the acked-position file.
//!
//! ```text
//! segment  = "TMFWDQ01" frame*
//! frame    = len: u32 LE | crc: u32 LE (CRC-32 of len bytes + payload) | payload
//! payload  = enqueued_ms: i64 LE | count: u32 LE | count × sample
//! sample   = series id: u64 LE | timestamp ms: i64 LE | value: f64 bits LE
//! acked    = "TMFWDACK" | segment: u64 LE | offset: u64 LE | crc: u32 LE (of the 24 bytes before)
//! ```
//!
//! Invariants: a frame's CRC covers its length too, so a torn or
//! overwritten length is detected; decoders never trust a length before
//! checking it against what was read.

use tidemark_storage::SeriesId;

pub const SEGMENT_MAGIC: &[u8; 8] = b"TMFWDQ01";
pub const SEGMENT_HEADER_LEN: u64 = 8;
pub const FRAME_HEADER_LEN: usize = 8;
pub const RECORD_HEADER_LEN: usize = 12;
pub const SAMPLE_LEN: usize = 24;
const ACK_MAGIC: &[u8; 8] = b"TMFWDACK";
pub const ACK_LEN: usize = 28;

/// One sample as the queue stores it.
pub type Entry = (SeriesId, i64, f64);

pub fn frame_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    h.finalize()
}

/// Appends one framed record of `samples` to `out`.
pub fn encode_frame(enqueued_ms: i64, samples: &[Entry], out: &mut Vec<u8>) {
    let payload_len = RECORD_HEADER_LEN + samples.len() * SAMPLE_LEN;
    let start = out.len();
    out.reserve(FRAME_HEADER_LEN + payload_len);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&enqueued_ms.to_le_bytes());
    out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    for &(id, ts, v) in samples {
        out.extend_from_slice(&id.0.to_le_bytes());
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    let len = (payload_len as u32).to_le_bytes();
    let crc = frame_crc(len, &out[start + FRAME_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Why a frame could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame runs past the end of the written data (a torn write).
    Truncated,
    /// The CRC does not match (a torn or damaged write).
    Checksum,
    /// The payload's sample count disagrees with its length.
    Malformed,
}

impl FrameError {
    pub fn as_str(self) -> &'static str {
        match self {
            FrameError::Truncated => "truncated record",
            FrameError::Checksum => "checksum mismatch",
            FrameError::Malformed => "malformed record",
        }
    }
}

/// Payload length declared by a frame header.
pub fn frame_len(header: &[u8; FRAME_HEADER_LEN]) -> usize {
    u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize
}

/// Checks a frame's CRC and shape; returns `(enqueued_ms, count)`.
pub fn check_frame(
    header: &[u8; FRAME_HEADER_LEN],
    payload: &[u8],
) -> Result<(i64, usize), FrameError> {
    let len = [header[0], header[1], header[2], header[3]];
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if frame_crc(len, payload) != crc {
        return Err(FrameError::Checksum);
    }
    if payload.len() < RECORD_HEADER_LEN {
        return Err(FrameError::Malformed);
    }
    let enqueued = i64::from_le_bytes(payload[0..8].try_into().expect("8 bytes"));
    let count = u32::from_le_bytes(payload[8..12].try_into().expect("4 bytes")) as usize;
    if payload.len() != RECORD_HEADER_LEN + count * SAMPLE_LEN {
        return Err(FrameError::Malformed);
    }
    Ok((enqueued, count))
}

/// Appends a checked payload's samples to `out`.
pub fn decode_samples(payload: &[u8], out: &mut Vec<Entry>) {
    for s in payload[RECORD_HEADER_LEN..].chunks_exact(SAMPLE_LEN) {
        let word = |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        out.push((SeriesId(word(0)), word(8) as i64, f64::from_bits(word(16))));
    }
}

pub fn encode_ack(segment: u64, offset: u64) -> [u8; ACK_LEN] {
    let mut b = [0u8; ACK_LEN];
    b[..8].copy_from_slice(ACK_MAGIC);
    b[8..16].copy_from_slice(&segment.to_le_bytes());
    b[16..24].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&b[..24]);
    b[24..].copy_from_slice(&crc.to_le_bytes());
    b
}

pub fn decode_ack(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() != ACK_LEN || &b[..8] != ACK_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[24..28].try_into().ok()?);
    if crc32fast::hash(&b[..24]) != crc {
        return None;
    }
    Some((
        u64::from_le_bytes(b[8..16].try_into().ok()?),
        u64::from_le_bytes(b[16..24].try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(frame: &[u8]) -> ([u8; FRAME_HEADER_LEN], &[u8]) {
        (frame[..8].try_into().unwrap(), &frame[8..])
    }

    #[test]
    fn frames_round_trip_bit_exactly() {
        let samples = vec![
            (SeriesId(7), -5, f64::from_bits(0x7ff0_0000_0000_0002)),
            (SeriesId(u64::MAX), i64::MAX, -0.0),
        ];
        let mut buf = Vec::new();
        encode_frame(1234, &samples, &mut buf);
        let (h, p) = split(&buf);
        assert_eq!(frame_len(&h), p.len());
        assert_eq!(check_frame(&h, p), Ok((1234, 2)));
        let mut out = Vec::new();
        decode_samples(p, &mut out);
        assert_eq!(out.len(), 2);
        for (a, b) in out.iter().zip(&samples) {
            assert_eq!((a.0, a.1, a.2.to_bits()), (b.0, b.1, b.2.to_bits()));
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let mut buf = Vec::new();
        encode_frame(1, &[(SeriesId(1), 2, 3.0)], &mut buf);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let (h, p) = split(&bad);
            let ok = frame_len(&h) == p.len() && check_frame(&h, p).is_ok();
            assert!(!ok, "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn ack_file_round_trips_and_rejects_damage() {
        let b = encode_ack(3, 4096);
        assert_eq!(decode_ack(&b), Some((3, 4096)));
        let mut bad = b;
        bad[10] ^= 1;
        assert_eq!(decode_ack(&bad), None);
        assert_eq!(decode_ack(&b[..20]), None);
    }
}
