//! A store's session records (the `sessions` table) on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lagtrace::store::SessionInfo::from_bytes(data);
});
