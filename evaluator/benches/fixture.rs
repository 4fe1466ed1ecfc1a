//! Shared synthetic data for the store and PromQL benches: a realistic mix
//! of request counters, histogram buckets and gauges, scraped every 15s.
//! Each bench binary uses a different part of it.
#![allow(dead_code)]

use vigil_evaluator::labels::Labels;
use vigil_evaluator::store::Store;

pub const SCRAPE_MS: i64 = 15_000;

/// Label sets of `n` series: counters by job/instance/method/status, latency
/// buckets by job/instance/le, and one `up` per instance.
pub fn series_labels(n: usize) -> Vec<Labels> {
    let statuses = [
        "200", "201", "204", "301", "400", "404", "429", "500", "502", "503",
    ];
    let methods = ["GET", "POST", "PUT", "DELETE"];
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    let mut out = Vec::with_capacity(n);
    let mut instance = 0;
    while out.len() < n {
        let job = format!("svc-{}", instance % 50);
        let inst = format!("10.0.{}.{}:9310", instance / 250, instance % 250);
        out.push(Labels::from_pairs([
            ("__name__", "up"),
            ("job", &job),
            ("instance", &inst),
        ]));
        for m in methods {
            for s in statuses {
                out.push(Labels::from_pairs([
                    ("__name__", "http_requests_total"),
                    ("job", job.as_str()),
                    ("instance", inst.as_str()),
                    ("method", m),
                    ("status", s),
                ]));
            }
        }
        for le in les {
            out.push(Labels::from_pairs([
                ("__name__", "http_request_duration_seconds_bucket"),
                ("job", job.as_str()),
                ("instance", inst.as_str()),
                ("le", le),
            ]));
        }
        instance += 1;
    }
    out.truncate(n);
    out
}

/// A store holding `n` series with `samples` samples each, ending at the
/// returned timestamp.
pub fn filled_store(n: usize, samples: usize) -> (Store, i64) {
    let labels = series_labels(n);
    let mut store = Store::new(n + 1);
    for i in 0..samples {
        let t = i as i64 * SCRAPE_MS;
        for (k, l) in labels.iter().enumerate() {
            let v = if l.metric_name() == Some("up") {
                1.0
            } else {
                (i * (k % 7 + 1)) as f64
            };
            if let Err(e) = store.append(l, t, v) {
                panic!("bench fixture append failed: {e}");
            }
        }
    }
    (store, (samples as i64 - 1) * SCRAPE_MS)
}
