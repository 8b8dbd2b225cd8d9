//! Sample encodings: the streaming head chunk and sealed, checksummed chunks.
//!
//! Code map:
//! - `head_chunk`: [`HeadChunk`], the head's append-only in-memory chunk
//!   (delta-of-delta timestamps + Gorilla XOR values in one bit stream).
//! - `chunk`: the sealed on-disk chunk ([`encode_chunk`], [`decode_chunk`],
//!   [`read_chunk_header`]); `storage/docs/format.md` has its byte layout.
//! - `timestamps`, `gorilla`, `decimal`: the column encodings a sealed chunk
//!   picks from; `diffs`: the zero-run difference stream they share.
//! - `bits`, `varint`, `decbuf`: bit stream, varints, and the bounds-checked
//!   read cursor every decoder goes through.
//!
//! Architecture invariant: nothing in here knows about series, files or
//! redb; a chunk is bytes in, samples out. No `unsafe`, and no decoder
//! indexes or unwraps input bytes.

mod bits;
mod chunk;
mod decbuf;
mod decimal;
mod diffs;
mod error;
mod gorilla;
mod head_chunk;
#[cfg(test)]
mod testutil;
mod timestamps;
mod varint;

pub use chunk::{
    ChunkHeader, Compression, Effort, FORMAT_VERSION, MAX_CHUNK_SAMPLES, ValueEncoding,
    decode_chunk, encode_chunk, encode_chunk_with, read_chunk_header,
};
pub use error::{ChunkError, Section};
pub use head_chunk::{HeadChunk, HeadChunkIter};

use crate::types::Sample;

/// Fuzz property for sealed-chunk decoding (see `fuzz/README.md`): never
/// panics, and anything that decodes re-encodes and decodes to bit-identical
/// samples with the same header.
///
/// Random bytes almost never carry a valid CRC, so the input is also tried
/// with a correct CRC appended; that lets a fuzzer reach the body decoders.
#[doc(hidden)]
pub fn fuzz_check_chunk_decode(data: &[u8]) {
    check_decodes_consistently(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    check_decodes_consistently(&sealed);
}

fn check_decodes_consistently(bytes: &[u8]) {
    let mut samples = vec![Sample::new(-1, -1.0)];
    let decoded = decode_chunk(bytes, &mut samples);
    let header = read_chunk_header(bytes);
    let Ok(h) = decoded else {
        assert_eq!(samples.len(), 1, "a failed decode must leave `out` alone");
        return;
    };
    let Ok(h2) = header else {
        panic!("decode_chunk accepted what read_chunk_header rejected: {header:?}");
    };
    assert_eq!(h, h2);
    let samples = samples.get(1..).unwrap_or_default();
    assert_eq!(samples.len(), h.count as usize);
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        assert_eq!((first.ts, last.ts), (h.min_ts, h.max_ts));
    }
    let mut again = Vec::new();
    encode_chunk(samples, &mut again);
    let mut round = Vec::new();
    let h3 = decode_chunk(&again, &mut round).expect("a re-encoded chunk must decode");
    assert_eq!(
        (h3.count, h3.min_ts, h3.max_ts),
        (h.count, h.min_ts, h.max_ts)
    );
    assert_eq!(round.len(), samples.len());
    for (a, b) in samples.iter().zip(&round) {
        assert!(a.bit_eq(b), "round trip changed {a:?} into {b:?}");
    }
}
