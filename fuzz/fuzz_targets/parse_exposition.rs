//! Fuzzes the exposition parser with arbitrary bytes in both formats: it
//! must return entries or an error, never panic or loop.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_evaluator::scrape::parser::{Format, Parser};

fn drain(mut parser: Parser<'_>, len: usize) {
    let mut entries = 0usize;
    while let Ok(Some(_)) = parser.next_entry() {
        entries += 1;
        // Every entry consumes at least one line, so more entries than
        // bytes would mean the parser stopped advancing.
        assert!(entries <= len + 1, "parser made no progress");
    }
}

fuzz_target!(|data: &[u8]| {
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        if let Ok(parser) = Parser::from_bytes(data, format) {
            drain(parser, data.len());
        }
        if let Ok(text) = std::str::from_utf8(data) {
            drain(Parser::new(text, format), data.len());
        }
    }
});
