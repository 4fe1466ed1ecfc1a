//! Rule-group evaluation speed: five typical alerting/recording expressions
//! evaluated as instant queries over ~76k series, as a rule group would.
//!
//! Run: `cargo bench -p vigil-evaluator --bench promql_rules`
//! (`VIGIL_BENCH_SERIES` and `VIGIL_BENCH_ROUNDS` override the defaults).

mod fixture;

use std::time::Instant;

use vigil_evaluator::promql::{Engine, Value};

const RULES: [&str; 5] = [
    r#"sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m])) > 0.05"#,
    r#"histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))"#,
    r#"up == 0"#,
    r#"sum by (instance) (rate(http_requests_total[5m]))"#,
    r#"max_over_time(up[10m]) - min_over_time(up[10m])"#,
];

fn main() {
    let n: usize = std::env::var("VIGIL_BENCH_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(76_000);
    let rounds: usize = std::env::var("VIGIL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (store, now) = fixture::filled_store(n, 41);
    let engine = Engine::default();
    let queries: Vec<_> = RULES
        .iter()
        .map(|q| engine.parse(q).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    for q in &queries {
        let t0 = Instant::now();
        if let Err(e) = engine.instant_query_parsed(&store, q, now) {
            panic!("{}: {e}", q.text());
        }
        println!("  {:>12?}  {}", t0.elapsed(), q.text());
    }
    let mut results = 0;
    let start = Instant::now();
    for _ in 0..rounds {
        for q in &queries {
            match engine.instant_query_parsed(&store, q, now) {
                Ok((Value::Vector(v), _)) => results += v.len(),
                Ok(_) => {}
                Err(e) => panic!("{}: {e}", q.text()),
            }
        }
    }
    let per_group = start.elapsed() / rounds as u32;
    println!(
        "promql_rules: {} series, 5 rules: {:?} per group evaluation ({} result samples per round)",
        store.series_count(),
        per_group,
        results / rounds
    );
}
