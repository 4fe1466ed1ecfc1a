//! Parser throughput on a realistic exposition: an instrumented HTTP service
//! with 2,000 routes, each with 10 request counters (5 status codes × 2
//! methods) and a 12-bucket latency histogram per method: 76,000 series.
//! Reported in bytes per second (criterion `Throughput::Bytes`).

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_evaluator::scrape::parser::{Entry, Format, Parser};

const ROUTES: usize = 2_000;
const METHODS: [&str; 2] = ["GET", "POST"];
const CODES: [&str; 5] = ["200", "201", "400", "404", "500"];
const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// Builds the exposition in the text format, or in OpenMetrics when `om`.
fn exposition(om: bool) -> (String, usize) {
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

fn parse_all(body: &str, format: Format) -> (usize, f64) {
    let mut parser = Parser::new(body, format);
    let mut count = 0;
    let mut sum = 0.0;
    loop {
        match parser.next_entry() {
            Ok(Some(Entry::Sample(s))) => {
                count += 1;
                sum += s.value + s.labels.len() as f64;
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("generated exposition must parse: {e}"),
        }
    }
    (count, sum)
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("scrape_parse");
    for (label, om, format) in [
        ("prometheus_text_76k_series", false, Format::PrometheusText),
        ("openmetrics_76k_series", true, Format::OpenMetrics),
    ] {
        let (body, series) = exposition(om);
        assert_eq!(series, 76_000);
        assert_eq!(parse_all(&body, format).0, series);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(label, |b| {
            b.iter(|| black_box(parse_all(black_box(&body), format)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
