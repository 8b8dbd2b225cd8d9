#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tidemark_storage::wal::fuzz_check_record_decode(data);
});
