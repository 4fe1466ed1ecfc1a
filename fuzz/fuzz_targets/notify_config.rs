//! Fuzzes the notification (Alertmanager-format) config loader: any text
//! must give a config or errors, never a panic or a hang.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vigil_evaluator::notify::config::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse(text, Path::new("notify.yaml"));
    }
});
