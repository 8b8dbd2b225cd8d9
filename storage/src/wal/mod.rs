//! Write-ahead log. (Being written; see the WAL helper's report.)

/// Fuzz property for WAL record decoding (see `fuzz/README.md`).
#[doc(hidden)]
pub fn fuzz_check_record_decode(_data: &[u8]) {}
