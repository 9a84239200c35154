//! Any bytes, read as (lossy) UTF-8: `parse` must return, never panic, and
//! every diagnostic must render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(diagnostics) = andon_config::parse("andon.yaml", &text) {
        let _ = diagnostics.to_string();
    }
});
