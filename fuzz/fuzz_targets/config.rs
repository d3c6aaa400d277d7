//! The config parser and validator on arbitrary text: a config or one error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lagtrace::config::parse("fuzz.toml", text);
    }
});
