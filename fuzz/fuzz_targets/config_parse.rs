//! `andon.yaml` from any bytes (read as lossy UTF-8): `andon_config::parse`
//! must return, never panic, and every diagnostic must render — a user's
//! broken file is the most common input Andon sees.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match andon_config::parse("andon.yaml", &text) {
        Ok(config) => {
            // The checked model must be printable too (`andon check` shows it).
            let _ = format!("{config:?}");
        }
        Err(diagnostics) => {
            let _ = diagnostics.to_string();
        }
    }
});
