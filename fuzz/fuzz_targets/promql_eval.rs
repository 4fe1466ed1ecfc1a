//! Fuzzes PromQL: any text is parsed and, when it parses, evaluated as an
//! instant query and a short range query against a small in-memory store.
//! Parse errors and evaluation errors are fine; a panic, a hang or an
//! unbounded allocation is a bug.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_evaluator::labels::Labels;
use vigil_evaluator::promql::Engine;
use vigil_evaluator::store::Store;

const MIN: i64 = 60_000;

/// A few series of the usual kinds (counter, gauge, histogram buckets),
/// one sample a minute for an hour.
fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut store = Store::default();
        let mut add = |pairs: &[(&str, &str)], f: &dyn Fn(i64) -> f64| {
            let labels = Labels::from_pairs(pairs.iter().copied());
            for i in 0..=60 {
                store.append(&labels, i * MIN, f(i)).expect("append");
            }
        };
        add(&[("__name__", "up"), ("job", "a")], &|_| 1.0);
        add(&[("__name__", "up"), ("job", "b")], &|i| (i % 2) as f64);
        add(&[("__name__", "http_requests_total"), ("job", "a"), ("code", "200")], &|i| (i * 10) as f64);
        add(&[("__name__", "http_requests_total"), ("job", "a"), ("code", "500")], &|i| i as f64);
        add(&[("__name__", "temperature"), ("room", "x")], &|i| 20.0 + (i as f64).sin());
        for le in ["0.1", "0.5", "1", "+Inf"] {
            add(&[("__name__", "latency_bucket"), ("le", le)], &|i| (i * 3) as f64);
        }
        store
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let engine = Engine::default();
    if engine.parse(text).is_err() {
        return;
    }
    let _ = engine.instant_query(store(), text, 30 * MIN);
    let _ = engine.range_query(store(), text, 20 * MIN, 40 * MIN, MIN);
});
