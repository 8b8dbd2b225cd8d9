//! Segment files: naming, the header, record framing and scanning one
//! segment.
//!
//! Invariants:
//! - A segment is named by its number in decimal (zero-padded to 8 digits
//!   but parsed at any width); other files in the directory are ignored.
//! - A segment starts with a [`HEADER_LEN`]-byte header and then holds only
//!   whole frames; frames are written in order and never rewritten.
//! - A frame's CRC covers its length field as well as its payload, so a
//!   zero-filled frame (length 0, CRC 0) never validates.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::error::{CorruptionKind, WalError};

/// Identifies a Tidemark WAL segment.
pub(crate) const MAGIC: [u8; 4] = *b"TMWL";
/// Bump when the segment or frame layout changes; see the version history in
/// the module docs of `wal`.
pub(crate) const VERSION: u8 = 1;
/// magic (4) + version (1) + reserved, zero (3).
pub(crate) const HEADER_LEN: u64 = (MAGIC.len() + 1 + 3) as u64;
/// length (u32 LE) + CRC-32 (u32 LE).
pub(crate) const FRAME_HEADER_LEN: u64 = 8;
/// The largest payload a frame may carry: far above the largest ingest batch
/// (10,000 samples at ~12 bytes) yet small enough that a corrupt length field
/// is recognised as such instead of being read as a torn giant record.
pub const MAX_RECORD_LEN: u32 = 256 << 20;
/// Read buffer for replay: large sequential reads, bounded memory.
const READ_BUF: usize = 1 << 20;

/// The header every segment starts with.
pub(crate) fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..MAGIC.len()].copy_from_slice(&MAGIC);
    h[MAGIC.len()] = VERSION;
    h
}

/// The CRC-32 (IEEE, via `crc32fast`) of a frame: length bytes, then payload.
pub(crate) fn frame_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    h.finalize()
}

pub(crate) fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:08}"))
}

/// Segment numbers and paths in `dir`, ascending by number.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(WalError::io(dir))? {
        let entry = entry.map_err(WalError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = name.parse::<u64>() {
            out.push((n, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(n, _)| *n);
    Ok(out)
}

/// The outcome of scanning one segment.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    pub(crate) records: u64,
    /// Bytes that are intact: the header plus whole valid frames.
    pub(crate) valid_len: u64,
    pub(crate) file_len: u64,
    /// Damage at `valid_len`, if the segment does not end cleanly.
    pub(crate) damage: Option<CorruptionKind>,
}

/// Reads one segment, calling `f` with each intact payload, and stops at the
/// first damage. `buf` is reused across segments.
pub(crate) fn scan_segment(
    path: &Path,
    buf: &mut Vec<u8>,
    f: &mut dyn FnMut(&[u8]),
) -> Result<SegmentScan, WalError> {
    let io = |e| WalError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut r = BufReader::with_capacity(READ_BUF, file);
    let mut scan = SegmentScan {
        records: 0,
        valid_len: 0,
        file_len,
        damage: None,
    };

    if file_len < HEADER_LEN {
        scan.damage = Some(CorruptionKind::TornHeader);
        return Ok(scan);
    }
    let mut h = [0u8; HEADER_LEN as usize];
    r.read_exact(&mut h).map_err(io)?;
    let want = header();
    if h[..MAGIC.len()] != MAGIC {
        scan.damage = Some(CorruptionKind::BadHeader);
        return Ok(scan);
    }
    // A known magic with another version is a newer format, not damage:
    // refuse rather than "repair" it away.
    if h[MAGIC.len()] != VERSION {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            version: h[MAGIC.len()],
            supported: VERSION,
        });
    }
    if h[MAGIC.len() + 1..] != want[MAGIC.len() + 1..] {
        scan.damage = Some(CorruptionKind::BadHeader);
        return Ok(scan);
    }
    scan.valid_len = HEADER_LEN;

    'frames: loop {
        let left = file_len - scan.valid_len;
        if left == 0 {
            return Ok(scan);
        }
        let damage = 'frame: {
            if left < FRAME_HEADER_LEN {
                break 'frame CorruptionKind::TornRecord;
            }
            let mut fh = [0u8; FRAME_HEADER_LEN as usize];
            r.read_exact(&mut fh).map_err(io)?;
            let [l0, l1, l2, l3, c0, c1, c2, c3] = fh;
            let len_bytes = [l0, l1, l2, l3];
            let len = u32::from_le_bytes(len_bytes);
            if len > MAX_RECORD_LEN {
                break 'frame CorruptionKind::BadLength { len };
            }
            if FRAME_HEADER_LEN + u64::from(len) > left {
                break 'frame CorruptionKind::TornRecord;
            }
            buf.resize(len as usize, 0);
            r.read_exact(buf).map_err(io)?;
            if frame_crc(len_bytes, buf) != u32::from_le_bytes([c0, c1, c2, c3]) {
                break 'frame CorruptionKind::BadChecksum;
            }
            f(buf);
            scan.records += 1;
            scan.valid_len += FRAME_HEADER_LEN + u64::from(len);
            continue 'frames;
        };
        // Zero bytes to the end are a preallocated or zero-filled tail, not
        // a damaged record; say so, since the remedy is the same but the
        // cause differs.
        r.seek(SeekFrom::Start(scan.valid_len)).map_err(io)?;
        scan.damage = Some(if all_zero(&mut r).map_err(io)? {
            CorruptionKind::ZeroedTail
        } else {
            damage
        });
        return Ok(scan);
    }
}

fn all_zero(r: &mut impl Read) -> io::Result<bool> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Ok(true);
        }
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// Makes directory entry changes (create, delete) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WalError::io(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_pinned() {
        assert_eq!(&header(), b"TMWL\x01\0\0\0");
    }

    #[test]
    fn zero_frame_never_validates() {
        assert_ne!(frame_crc([0; 4], &[]), 0);
    }

    #[test]
    fn listing_ignores_foreign_files_and_sorts_numerically() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["00000010", "9", "00000002", "x.tmp", "12a", ""] {
            if !name.is_empty() {
                std::fs::write(dir.path().join(name), b"").unwrap();
            }
        }
        let got: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(got, vec![2, 9, 10]);
    }
}
