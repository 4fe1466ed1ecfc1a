//! Fuzzes the rule-file loader: any text must give rule groups or an error
//! that names where it is wrong, never a panic or a hang.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vigil_evaluator::rules::file::parse_rule_file;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_rule_file(Path::new("fuzz.yaml"), text);
    }
});
