//! Sealed event files: immutable, zstd-compressed blocks of records sorted
//! by `(ts_ms, seq)`, with a footer index so queries skip files and blocks.
//!
//! ```text
//! header   "TMEZ" ‖ version 1 ‖ 0×3
//! block    frame (len u32 ‖ crc u32 ‖ payload), payload = raw_len u32 ‖ zstd
//!          of (u32 len ‖ record)*
//! footer   window i64 ‖ generation u32 ‖ count u64 ‖ min_ts i64 ‖ max_ts i64
//!          ‖ max_seq u64 ‖ kinds u32 ‖ (u16 len ‖ kind)* ‖ blocks u32 ‖
//!          (offset u64 ‖ count u32 ‖ min_ts i64 ‖ max_ts i64 ‖ kinds u64)*
//!          where a block's `kinds` has bit i set when it holds the file's
//!          i-th kind (all bits when the file has more than 64 kinds)
//! trailer  footer_len u32 ‖ crc u32 (of footer_len ‖ footer) ‖ "TMEZ"
//! ```
//!
//! Invariants:
//! - A file is written under `.tmp`, fsynced and renamed, so a visible
//!   `.evz` is complete.
//! - Loading reads only the trailer and footer. A damaged footer falls back
//!   to a scan of the block frames (reported once); a damaged block costs
//!   only its own events (reported once, by file and offset).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::codec::{self, Frame, Stored};
use super::{Damage, EventError, EventLogOptions, file_name, sync_dir};

const MAGIC: [u8; 4] = *b"TMEZ";
const VERSION: u8 = 1;
const HEADER: [u8; 8] = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, 0, 0, 0];
const TRAILER_LEN: usize = 12;
/// Bound on a block's declared sizes, so a corrupt length is recognised.
const MAX_BLOCK: usize = 64 << 20;

#[derive(Clone, Debug)]
pub(crate) struct BlockMeta {
    pub(crate) offset: u64,
    pub(crate) count: u32,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    /// Bit i: holds `kinds[i]` of the file (see [`kind_bit`]).
    pub(crate) kinds: u64,
}

/// The mask bit of the file's `index`-th kind; every bit when the file has
/// more kinds than a mask can tell apart.
pub(crate) fn kind_bit(index: usize, file_kinds: usize) -> u64 {
    if file_kinds > 64 {
        u64::MAX
    } else {
        1 << index
    }
}

#[derive(Clone, Debug)]
pub(crate) struct SealedMeta {
    pub(crate) path: PathBuf,
    pub(crate) window: i64,
    pub(crate) generation: u32,
    pub(crate) bytes: u64,
    pub(crate) count: u64,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) max_seq: u64,
    /// Sorted, unique.
    pub(crate) kinds: Vec<String>,
    /// In file order, which is ascending time.
    pub(crate) blocks: Vec<BlockMeta>,
}

/// Writes the sealed file of `events` (non-empty) and returns its index.
pub(crate) fn write(
    dir: &Path,
    window: i64,
    generation: u32,
    events: &[Stored],
    opts: &EventLogOptions,
) -> Result<SealedMeta, EventError> {
    let mut sorted: Vec<&Stored> = events.iter().collect();
    sorted.sort_by_key(|s| s.key());
    let mut kinds: Vec<String> = sorted.iter().map(|s| s.event.kind.clone()).collect();
    kinds.sort_unstable();
    kinds.dedup();

    let mut out = HEADER.to_vec();
    let mut blocks = Vec::new();
    let mut body = Vec::new();
    let mut start = 0;
    let mut mask = 0u64;
    for i in 0..sorted.len() {
        codec::encode_in_block(sorted[i], &mut body);
        let k = kinds
            .binary_search(&sorted[i].event.kind)
            .expect("kind listed");
        mask |= kind_bit(k, kinds.len());
        if body.len() >= opts.block_bytes || i + 1 == sorted.len() {
            let compressed =
                zstd::bulk::compress(&body, opts.zstd_level).map_err(|e| EventError::Io {
                    path: dir.to_path_buf(),
                    source: e,
                })?;
            let mut payload = Vec::with_capacity(4 + compressed.len());
            payload.extend_from_slice(&(body.len() as u32).to_le_bytes());
            payload.extend_from_slice(&compressed);
            blocks.push(BlockMeta {
                offset: out.len() as u64,
                count: (i + 1 - start) as u32,
                min_ts: sorted[start].event.ts_ms,
                max_ts: sorted[i].event.ts_ms,
                kinds: mask,
            });
            codec::put_frame(&mut out, &payload);
            body.clear();
            mask = 0;
            start = i + 1;
        }
    }
    let mut meta = SealedMeta {
        path: dir.join(file_name(window, generation, ".evz")),
        window,
        generation,
        bytes: 0,
        count: sorted.len() as u64,
        min_ts: sorted.first().map_or(i64::MAX, |s| s.event.ts_ms),
        max_ts: sorted.last().map_or(i64::MIN, |s| s.event.ts_ms),
        max_seq: sorted.iter().map(|s| s.id).max().unwrap_or(0),
        kinds,
        blocks,
    };
    let footer = encode_footer(&meta);
    let len = (footer.len() as u32).to_le_bytes();
    out.extend_from_slice(&footer);
    out.extend_from_slice(&len);
    out.extend_from_slice(&codec::frame_crc(len, &footer).to_le_bytes());
    out.extend_from_slice(&MAGIC);
    meta.bytes = out.len() as u64;

    let tmp = meta.path.with_extension("evz.tmp");
    let mut f = File::create(&tmp).map_err(EventError::io(&tmp))?;
    f.write_all(&out)
        .and_then(|()| f.sync_all())
        .map_err(EventError::io(&tmp))?;
    std::fs::rename(&tmp, &meta.path).map_err(EventError::io(&meta.path))?;
    sync_dir(dir)?;
    Ok(meta)
}

fn encode_footer(m: &SealedMeta) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&m.window.to_le_bytes());
    f.extend_from_slice(&m.generation.to_le_bytes());
    f.extend_from_slice(&m.count.to_le_bytes());
    f.extend_from_slice(&m.min_ts.to_le_bytes());
    f.extend_from_slice(&m.max_ts.to_le_bytes());
    f.extend_from_slice(&m.max_seq.to_le_bytes());
    f.extend_from_slice(&(m.kinds.len() as u32).to_le_bytes());
    for k in &m.kinds {
        f.extend_from_slice(&(k.len() as u16).to_le_bytes());
        f.extend_from_slice(k.as_bytes());
    }
    f.extend_from_slice(&(m.blocks.len() as u32).to_le_bytes());
    for b in &m.blocks {
        f.extend_from_slice(&b.offset.to_le_bytes());
        f.extend_from_slice(&b.count.to_le_bytes());
        f.extend_from_slice(&b.min_ts.to_le_bytes());
        f.extend_from_slice(&b.max_ts.to_le_bytes());
        f.extend_from_slice(&b.kinds.to_le_bytes());
    }
    f
}

struct Cur<'a>(&'a [u8]);

impl Cur<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
    fn i64(&mut self) -> Option<i64> {
        self.take::<8>().map(i64::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
}

fn decode_footer(bytes: &[u8], path: &Path, file_len: u64) -> Option<SealedMeta> {
    let mut c = Cur(bytes);
    let window = c.i64()?;
    let generation = c.u32()?;
    let count = c.u64()?;
    let min_ts = c.i64()?;
    let max_ts = c.i64()?;
    let max_seq = c.u64()?;
    let n = c.u32()? as usize;
    let mut kinds = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len = u16::from_le_bytes(c.take::<2>()?) as usize;
        let (k, rest) = c.0.split_at_checked(len)?;
        kinds.push(std::str::from_utf8(k).ok()?.to_string());
        c.0 = rest;
    }
    let n = c.u32()? as usize;
    let mut blocks = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        blocks.push(BlockMeta {
            offset: c.u64()?,
            count: c.u32()?,
            min_ts: c.i64()?,
            max_ts: c.i64()?,
            kinds: c.u64()?,
        });
    }
    c.0.is_empty().then_some(SealedMeta {
        path: path.to_path_buf(),
        window,
        generation,
        bytes: file_len,
        count,
        min_ts,
        max_ts,
        max_seq,
        kinds,
        blocks,
    })
}

/// The index of a sealed file: from its footer, or (footer damaged) by
/// scanning its blocks. Only I/O errors fail; damage is reported.
pub(crate) fn load_meta(
    path: &Path,
    window: i64,
    generation: u32,
    segment_ms: i64,
    damage: &Damage,
) -> Result<SealedMeta, EventError> {
    let mut f = File::open(path).map_err(EventError::io(path))?;
    let file_len = f.metadata().map_err(EventError::io(path))?.len();
    if let Some(meta) = read_footer(&mut f, path, file_len)
        .map_err(EventError::io(path))?
        .filter(|m| m.window == window && m.generation == generation)
    {
        return Ok(meta);
    }
    damage.report(
        path,
        file_len.saturating_sub(TRAILER_LEN as u64),
        "bad footer; scanning blocks",
    );
    let mut bytes = Vec::new();
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_to_end(&mut bytes))
        .map_err(EventError::io(path))?;
    Ok(scan(&bytes, path, window, generation, segment_ms, damage))
}

fn read_footer(f: &mut File, path: &Path, file_len: u64) -> std::io::Result<Option<SealedMeta>> {
    if file_len < (HEADER.len() + TRAILER_LEN) as u64 {
        return Ok(None);
    }
    let mut trailer = [0u8; TRAILER_LEN];
    f.seek(SeekFrom::Start(file_len - TRAILER_LEN as u64))?;
    f.read_exact(&mut trailer)?;
    if trailer[8..] != MAGIC {
        return Ok(None);
    }
    let len_bytes: [u8; 4] = trailer[..4].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(len_bytes) as u64;
    let crc = u32::from_le_bytes(trailer[4..8].try_into().expect("4 bytes"));
    if len + (HEADER.len() + TRAILER_LEN) as u64 > file_len {
        return Ok(None);
    }
    let mut footer = vec![0u8; len as usize];
    f.seek(SeekFrom::Start(file_len - TRAILER_LEN as u64 - len))?;
    f.read_exact(&mut footer)?;
    if codec::frame_crc(len_bytes, &footer) != crc {
        return Ok(None);
    }
    Ok(decode_footer(&footer, path, file_len))
}

/// Rebuilds the index of a file whose footer is damaged from its block
/// frames. The time range falls back to the whole window when nothing is
/// readable, so retention still applies to the file.
fn scan(
    bytes: &[u8],
    path: &Path,
    window: i64,
    generation: u32,
    segment_ms: i64,
    damage: &Damage,
) -> SealedMeta {
    let mut meta = SealedMeta {
        path: path.to_path_buf(),
        window,
        generation,
        bytes: bytes.len() as u64,
        count: 0,
        min_ts: i64::MAX,
        max_ts: i64::MIN,
        max_seq: 0,
        kinds: Vec::new(),
        blocks: Vec::new(),
    };
    if bytes.get(..5) == Some(&HEADER[..5]) {
        let mut pos = HEADER.len();
        while pos < bytes.len() {
            match codec::read_frame(bytes, pos, MAX_BLOCK) {
                Frame::Ok { payload, next } => {
                    if let Some(events) = decode_payload(payload) {
                        add_block(&mut meta, pos as u64, &events);
                    } else {
                        // Not a block: the footer, or damage. Stop here.
                        break;
                    }
                    pos = next;
                }
                Frame::BadCrc { next } => {
                    damage.report(path, pos as u64, "block CRC mismatch");
                    pos = next;
                }
                Frame::Truncated => break,
            }
        }
    }
    if meta.blocks.is_empty() {
        meta.min_ts = window;
        meta.max_ts = window.saturating_add(segment_ms - 1);
    }
    meta.kinds.sort_unstable();
    meta.kinds.dedup();
    meta
}

fn add_block(meta: &mut SealedMeta, offset: u64, events: &[Stored]) {
    let Some(first) = events.first() else { return };
    let mut b = BlockMeta {
        offset,
        count: events.len() as u32,
        min_ts: first.event.ts_ms,
        max_ts: first.event.ts_ms,
        // A rebuilt index does not know the file's kind order.
        kinds: u64::MAX,
    };
    for s in events {
        b.min_ts = b.min_ts.min(s.event.ts_ms);
        b.max_ts = b.max_ts.max(s.event.ts_ms);
        meta.max_seq = meta.max_seq.max(s.id);
        if !meta.kinds.contains(&s.event.kind) {
            meta.kinds.push(s.event.kind.clone());
        }
    }
    meta.count += events.len() as u64;
    meta.min_ts = meta.min_ts.min(b.min_ts);
    meta.max_ts = meta.max_ts.max(b.max_ts);
    meta.blocks.push(b);
}

fn decode_payload(payload: &[u8]) -> Option<Vec<Stored>> {
    let (raw_len, compressed) = payload.split_at_checked(4)?;
    let raw_len = u32::from_le_bytes(raw_len.try_into().ok()?) as usize;
    if raw_len > MAX_BLOCK {
        return None;
    }
    let body = zstd::bulk::decompress(compressed, raw_len).ok()?;
    if body.len() != raw_len {
        return None;
    }
    codec::decode_block(&body)
}

/// The events of block `index` of `meta`; empty (and reported) when the
/// block is damaged. A file deleted by retention meanwhile reads as empty.
pub(crate) fn read_block(meta: &SealedMeta, index: usize, damage: &Damage) -> Vec<Stored> {
    let b = &meta.blocks[index];
    let end = meta
        .blocks
        .get(index + 1)
        .map_or(meta.bytes, |next| next.offset);
    let result = (|| -> std::io::Result<Vec<u8>> {
        let mut f = File::open(&meta.path)?;
        f.seek(SeekFrom::Start(b.offset))?;
        let mut header = [0u8; codec::FRAME_HEADER_LEN];
        f.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as u64;
        let limit = end.saturating_sub(b.offset + codec::FRAME_HEADER_LEN as u64);
        let mut buf = header.to_vec();
        if len <= limit && len as usize <= MAX_BLOCK {
            buf.resize(codec::FRAME_HEADER_LEN + len as usize, 0);
            f.read_exact(&mut buf[codec::FRAME_HEADER_LEN..])?;
        }
        Ok(buf)
    })();
    let buf = match result {
        Ok(buf) => buf,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %meta.path.display(), offset = b.offset, error = %e, "event log: reading block failed");
            damage.report(&meta.path, b.offset, "block unreadable");
            return Vec::new();
        }
    };
    let decoded = match codec::read_frame(&buf, 0, MAX_BLOCK) {
        Frame::Ok { payload, .. } => decode_payload(payload),
        Frame::BadCrc { .. } | Frame::Truncated => None,
    };
    match decoded {
        Some(events) => events,
        None => {
            damage.report(&meta.path, b.offset, "damaged block");
            Vec::new()
        }
    }
}
