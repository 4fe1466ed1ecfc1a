//! Heap allocations of the engine in steady state: the five-rule group of
//! `promql_rules.rs` evaluated repeatedly over the 76k-series fixture, and
//! the 76k-series exposition parsed repeatedly, under a counting global
//! allocator (`stats_alloc`). Prints allocations per evaluation, per input
//! sample and per output sample, for each rule and for the parser.
//!
//! Run: `cargo bench -p vigil-evaluator --bench promql_alloc`
//! (`VIGIL_BENCH_SERIES`, `VIGIL_BENCH_ROUNDS` override 76,000 and 5).
//! Lines starting with `result` are read by `benches/run`.

#[path = "support/exposition.rs"]
mod exposition;
mod fixture;

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use vigil_evaluator::promql::{Engine, Value};
use vigil_evaluator::scrape::parser::{Entry, Format, Parser};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The rules of `promql_rules.rs`, each with the queries that count the
/// input samples it reads (one per selector).
const RULES: [(&str, &[&str]); 5] = [
    (
        r#"sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m])) > 0.05"#,
        &[
            r#"sum(count_over_time(http_requests_total{status=~"5.."}[5m]))"#,
            r#"sum(count_over_time(http_requests_total[5m]))"#,
        ],
    ),
    (
        r#"histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))"#,
        &[r#"sum(count_over_time(http_request_duration_seconds_bucket[5m]))"#],
    ),
    (r#"up == 0"#, &[r#"count(up)"#]),
    (
        r#"sum by (instance) (rate(http_requests_total[5m]))"#,
        &[r#"sum(count_over_time(http_requests_total[5m]))"#],
    ),
    (
        r#"max_over_time(up[10m]) - min_over_time(up[10m])"#,
        &[
            r#"sum(count_over_time(up[10m]))"#,
            r#"sum(count_over_time(up[10m]))"#,
        ],
    ),
];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scalar_of(value: &Value) -> f64 {
    match value {
        Value::Vector(v) => v.iter().map(|s| s.value).sum(),
        Value::Scalar(_, v) => *v,
        _ => 0.0,
    }
}

fn main() {
    let n = env_or("VIGIL_BENCH_SERIES", 76_000);
    let rounds = env_or("VIGIL_BENCH_ROUNDS", 5);
    let (store, now) = fixture::filled_store(n, 41);
    let engine = Engine::default();
    let parse = |q: &str| engine.parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));

    println!(
        "promql_alloc: {} series, {rounds} rounds after one warm-up",
        store.series_count()
    );
    println!(
        "{:>14} {:>12} {:>14} {:>14} {:>12}  rule",
        "allocs/eval", "KiB/eval", "input samples", "allocs/sample", "out samples"
    );
    let (mut group_allocs, mut group_samples) = (0.0, 0.0);
    for (rule, counters) in RULES {
        let query = parse(rule);
        let samples: f64 = counters
            .iter()
            .map(
                |c| match engine.instant_query_parsed(&store, &parse(c), now) {
                    Ok((v, _)) => scalar_of(&v),
                    Err(e) => panic!("{c}: {e}"),
                },
            )
            .sum();
        // Warm-up: the first evaluation may fill caches inside the store.
        let out = match engine.instant_query_parsed(&store, &query, now) {
            Ok((Value::Vector(v), _)) => v.len(),
            Ok(_) => 0,
            Err(e) => panic!("{rule}: {e}"),
        };
        let region = Region::new(GLOBAL);
        for _ in 0..rounds {
            if let Err(e) = engine.instant_query_parsed(&store, &query, now) {
                panic!("{rule}: {e}");
            }
        }
        let stats = region.change();
        let per_eval = stats.allocations as f64 / rounds as f64;
        let bytes = stats.bytes_allocated as f64 / rounds as f64;
        group_allocs += per_eval;
        group_samples += samples;
        println!(
            "{per_eval:>14.1} {:>12.1} {samples:>14.0} {:>14.4} {out:>12}  {rule}",
            bytes / 1024.0,
            per_eval / samples
        );
    }
    println!(
        "group: {group_allocs:.0} allocations per evaluation, {group_samples:.0} input samples, {:.4} allocations per input sample",
        group_allocs / group_samples
    );
    println!("result\tengine: allocations per rule-group evaluation\tallocs\t{group_allocs:.0}");
    println!(
        "result\tengine: allocations per input sample\tallocs\t{:.4}",
        group_allocs / group_samples
    );

    // The scrape parser over the 76k-series exposition (text format).
    let (body, series) = exposition::exposition(false);
    let parse_all = || {
        let mut parser = Parser::new(&body, Format::PrometheusText);
        let mut count = 0usize;
        loop {
            match parser.next_entry() {
                Ok(Some(Entry::Sample(_))) => count += 1,
                Ok(Some(_)) => {}
                Ok(None) => break count,
                Err(e) => panic!("generated exposition must parse: {e}"),
            }
        }
    };
    assert_eq!(parse_all(), series);
    let region = Region::new(GLOBAL);
    for _ in 0..rounds {
        parse_all();
    }
    let stats = region.change();
    let per_parse = stats.allocations as f64 / rounds as f64;
    println!(
        "parser: {per_parse:.0} allocations per parse of {series} samples, {:.4} per sample",
        per_parse / series as f64
    );
    println!(
        "result\tparser: allocations per sample\tallocs\t{:.4}",
        per_parse / series as f64
    );
}
