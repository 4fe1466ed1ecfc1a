//! Memory per series of the in-memory store: loads N series with a 10-minute
//! window at a 15s scrape interval and reports the growth of the process'
//! resident set (VmRSS) divided by N.
//!
//! Run: `cargo bench -p vigil-evaluator --bench store_memory` (or
//! `cargo test -p vigil-evaluator --bench store_memory` for a debug build;
//! allocation sizes, hence the figure, are the same).

mod fixture;

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let n: usize = std::env::var("VIGIL_BENCH_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(76_000);
    let samples = 41; // 10 minutes at 15s
    let labels = fixture::series_labels(n);
    let before = rss_kib();
    let mut store = vigil_evaluator::store::Store::new(n + 1);
    for i in 0..samples {
        for l in &labels {
            if let Err(e) = store.append(l, i as i64 * fixture::SCRAPE_MS, i as f64) {
                panic!("append failed: {e}");
            }
        }
    }
    let after = rss_kib();
    drop(labels);
    match (before, after) {
        (Some(b), Some(a)) => {
            let per_series = (a.saturating_sub(b) as f64 * 1024.0) / n as f64;
            println!(
                "store_memory: {n} series x {samples} samples: RSS +{} KiB = {per_series:.0} bytes/series ({:.1} bytes/sample incl. index)",
                a.saturating_sub(b),
                per_series / samples as f64
            );
        }
        _ => println!("store_memory: /proc/self/status not readable; no figure"),
    }
    assert_eq!(store.series_count(), n);
}
