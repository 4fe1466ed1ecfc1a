//! Reads the past from the datasource: one expression's values at every
//! evaluation time of a chunk of the range, with one
//! `POST <url>/api/v1/query_range` (step = the rule group's interval), so
//! a backtest holds one chunk of answers at a time, never the whole range.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use crate::datasource::DatasourceClient;
use crate::labels::Labels;
use crate::sample::Sample;

/// Most evaluation steps asked for in one query (Prometheus refuses more
/// than 11,000 points per series).
pub const MAX_STEPS_PER_QUERY: i64 = 1000;

/// What one query needs: the expression, its evaluation interval and the
/// group's `query_offset`. Rules that share all three share one query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    pub expr: String,
    pub interval_ms: i64,
    pub query_offset_ms: i64,
}

impl Source {
    /// The evaluation times of this source in `[start_ms, end_ms)`:
    /// multiples of the interval (since the epoch).
    pub fn steps(&self, start_ms: i64, end_ms: i64) -> impl Iterator<Item = i64> {
        let step = self.interval_ms.max(1);
        let first = start_ms + (step - start_ms.rem_euclid(step)) % step;
        (0..)
            .map(move |k| first + k * step)
            .take_while(move |t| *t < end_ms)
    }
}

/// The answers of one chunk: evaluation time → the vector the expression
/// returned (times without any series are absent).
pub type StepVectors = HashMap<i64, Vec<Sample>>;

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Matrix>,
}

#[derive(Deserialize)]
struct Matrix {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Queries `source.expr` at its evaluation times in `[start_ms, end_ms)`
/// (at each time minus the query offset); the samples are keyed and
/// stamped by evaluation time.
pub async fn fetch_chunk(
    client: &DatasourceClient,
    source: &Source,
    start_ms: i64,
    end_ms: i64,
) -> Result<StepVectors, String> {
    let mut steps = source.steps(start_ms, end_ms);
    let Some(first) = steps.next() else {
        return Ok(StepVectors::new());
    };
    let last = steps.last().unwrap_or(first);
    let seconds = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    let offset = source.query_offset_ms;
    let params = [
        ("query".to_string(), source.expr.clone()),
        ("start".to_string(), seconds(first - offset)),
        ("end".to_string(), seconds(last - offset)),
        ("step".to_string(), seconds(source.interval_ms)),
        (
            "timeout".to_string(),
            format!("{}ms", client.settings().query_timeout.as_millis()),
        ),
    ];
    let url = &client.settings().url;
    let what = || {
        format!(
            "query_range of `{}` from {} to {}",
            source.expr,
            super::range::show(first - offset),
            super::range::show(last - offset)
        )
    };
    let (status, body) = client.forward("/api/v1/query_range", &params).await.map_err(|e| {
        format!("{e}; check that --datasource names a running Prometheus-compatible server (it must answer {url}/api/v1/query_range)")
    })?;
    let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
        let start: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        format!(
            "datasource {url} answered the {} with HTTP {status} and not a Prometheus API answer ({e}): {start:?}; is --datasource the base URL of a Prometheus-compatible query API?",
            what()
        )
    })?;
    if answer.status != "success" {
        return Err(format!(
            "datasource {url} refused the {} (HTTP {status}): {}",
            what(),
            answer.error.as_deref().unwrap_or("no reason given")
        ));
    }
    let matrix = answer
        .data
        .ok_or_else(|| format!("datasource {url} answered the {} without data", what()))?;
    if matrix.result_type != "matrix" {
        return Err(format!(
            "datasource {url} answered the {} with a {} instead of a matrix",
            what(),
            matrix.result_type
        ));
    }
    let mut out = StepVectors::new();
    for series in matrix.result {
        let labels = Labels::from_pairs(series.metric.iter());
        for (t, value) in series.values {
            let value = parse_value(&value).map_err(|e| {
                format!(
                    "datasource {url} answered the {} with a bad sample value: {e}",
                    what()
                )
            })?;
            let t_ms = (t * 1000.0).round() as i64 + offset;
            out.entry(t_ms).or_default().push(Sample {
                labels: labels.clone(),
                t_ms,
                value,
            });
        }
    }
    Ok(out)
}

/// A sample value as the Prometheus API writes it (`"1.5"`, `"+Inf"`,
/// `"NaN"`).
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse::<f64>().map_err(|e| format!("{text:?}: {e}")),
    }
}

/// The length of a chunk: [`MAX_STEPS_PER_QUERY`] steps of the shortest
/// interval, so no query asks for more steps than that.
pub fn chunk_length(shortest_interval: Duration) -> i64 {
    let interval = i64::try_from(shortest_interval.as_millis()).unwrap_or(i64::MAX);
    interval.max(1).saturating_mul(MAX_STEPS_PER_QUERY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_the_multiples_of_the_interval_within_the_chunk() {
        let source = Source {
            expr: "up".into(),
            interval_ms: 1000,
            query_offset_ms: 0,
        };
        assert_eq!(
            source.steps(1500, 4000).collect::<Vec<_>>(),
            vec![2000, 3000]
        );
        assert_eq!(
            source.steps(2000, 4001).collect::<Vec<_>>(),
            vec![2000, 3000, 4000]
        );
        assert_eq!(source.steps(2000, 2000).count(), 0);
    }

    #[test]
    fn api_values_parse_with_their_infinities() {
        assert_eq!(parse_value("+Inf"), Ok(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Ok(f64::NEG_INFINITY));
        assert!(parse_value("NaN").is_ok_and(f64::is_nan));
        assert!(parse_value("x").is_err());
    }
}
