//! The status chunk decoder on arbitrary bytes: an error or samples, never a panic.
#![no_main]

use lagtrace::store::codec::{StatusChunk, decode_status};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(chunk) = postcard::from_bytes::<StatusChunk>(data) {
        let _ = decode_status(&chunk);
    }
});
