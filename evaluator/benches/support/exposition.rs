//! The 76,000-series exposition of an instrumented HTTP service (2,000
//! routes, each with 10 request counters (5 status codes × 2 methods) and a
//! 12-bucket latency histogram per method), shared by the parser bench
//! (`benches/scrape_parse.rs`) and `examples/write_exposition.rs`, which
//! writes it to a file for `benches/side_by_side.sh`, so both measure the
//! same bytes.
#![allow(dead_code)]

use std::fmt::Write as _;

pub const ROUTES: usize = 2_000;
pub const METHODS: [&str; 2] = ["GET", "POST"];
pub const CODES: [&str; 5] = ["200", "201", "400", "404", "500"];
pub const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// Builds the exposition in the text format, or in OpenMetrics when `om`.
pub fn exposition(om: bool) -> (String, usize) {
    let mut out = String::with_capacity(8 << 20);
    let mut series = 0;
    let counter = if om {
        "http_requests"
    } else {
        "http_requests_total"
    };
    let _ = writeln!(
        out,
        "# HELP {counter} Requests served, by route, method and status code."
    );
    let _ = writeln!(out, "# TYPE {counter} counter");
    for route in 0..ROUTES {
        for method in METHODS {
            for code in CODES {
                let _ = writeln!(
                    out,
                    "http_requests_total{{route=\"/api/v1/resource_{route}/items\",method=\"{method}\",code=\"{code}\"}} {}",
                    route * 7 + code.len() * 13
                );
                series += 1;
            }
        }
    }
    let _ = writeln!(out, "# HELP http_request_duration_seconds Request latency.");
    let _ = writeln!(out, "# TYPE http_request_duration_seconds histogram");
    for route in 0..ROUTES {
        for method in METHODS {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{route=\"/api/v1/resource_{route}/items\",method=\"{method}\",le=\"{le}\"}} {}",
                    route + i * 31
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{route=\"/api/v1/resource_{route}/items\",method=\"{method}\"}} {}.{}",
                route * 3,
                route % 1000
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{route=\"/api/v1/resource_{route}/items\",method=\"{method}\"}} {}",
                route + 11 * 31
            );
            series += BUCKETS.len() + 2;
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    (out, series)
}
