//! The observation and beat chunk decoder on arbitrary bytes: an error or spans, never
//! a panic, a hang or an allocation out of proportion to the input.
#![no_main]

use lagtrace::store::codec::{SpanChunk, decode_spans_each};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(chunk) = SpanChunk::from_bytes(data) {
        let mut n = 0u64;
        let _ = decode_spans_each(&chunk, |_| n += 1);
    }
});
