#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tidemark_storage::encoding::fuzz_check_chunk_decode(data);
});
