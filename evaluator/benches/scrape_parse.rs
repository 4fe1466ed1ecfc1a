//! Parser throughput on a realistic exposition: an instrumented HTTP service
//! with 2,000 routes, each with 10 request counters (5 status codes × 2
//! methods) and a 12-bucket latency histogram per method: 76,000 series.
//! Reported in bytes per second (criterion `Throughput::Bytes`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_evaluator::scrape::parser::{Entry, Format, Parser};

#[path = "support/exposition.rs"]
mod exposition;

use exposition::exposition;

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
