//! Sample encodings: the streaming head chunk and sealed, checksummed chunks.
//! (Being written; see the encoding helper's report.)

/// Fuzz property for sealed-chunk decoding (see `fuzz/README.md`).
#[doc(hidden)]
pub fn fuzz_check_chunk_decode(_data: &[u8]) {}
