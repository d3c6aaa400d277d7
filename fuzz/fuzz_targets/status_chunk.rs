//! The status chunk decoder on arbitrary bytes (the chunk and PostgreSQL's figures
//! after it): an error or samples, never a panic.
#![no_main]

use lagtrace::store::codec::status_from_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = status_from_bytes(data);
});
