//! Instant queries against a datasource's Prometheus HTTP API
//! (`POST <url>/api/v1/query`), with the datasource's credentials and
//! headers, each attempt bounded by `query_timeout`, retried with backoff
//! on failures that can pass (connection problems, 5xx, 429) until the
//! retries or the caller's deadline run out. Answers are read as
//! Prometheus' rule manager reads its own engine's: a vector or a scalar;
//! anything else is the rule's error.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::IntCounter;
use serde_json::Value;

use super::config::DatasourceSettings;
use crate::clock::Clock;
use crate::inline_http::with_headers;
use crate::labels::Labels;
use crate::notify::receivers::http::http_client;
use crate::rules::engine::{QueryError, QueryResult};
use crate::sample::Sample;

/// The first wait between attempts; it doubles with each.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Most of an error body kept in the rule's error.
const MAX_ERROR_BODY: usize = 512;

/// A datasource ready to query.
pub struct DatasourceClient {
    settings: DatasourceSettings,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    errors: IntCounter,
}

impl std::fmt::Debug for DatasourceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasourceClient")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

/// One failed attempt, and whether another can help.
struct Attempt {
    error: String,
    retryable: bool,
}

impl DatasourceClient {
    /// A client for `settings`; failed queries are counted in `errors`.
    pub fn new(
        settings: DatasourceSettings,
        clock: Arc<dyn Clock>,
        errors: IntCounter,
    ) -> Result<DatasourceClient, reqwest::Error> {
        let client = http_client(settings.query_timeout, &settings.http)?;
        Ok(DatasourceClient {
            settings,
            client,
            clock,
            errors,
        })
    }

    /// The settings it was made from.
    pub fn settings(&self) -> &DatasourceSettings {
        &self.settings
    }

    /// `expr` evaluated at `t_ms`, retried until `deadline` at the latest.
    pub async fn instant_query(
        &self,
        expr: &str,
        t_ms: i64,
        deadline: DateTime<Utc>,
    ) -> Result<QueryResult, QueryError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let failed = match self.attempt(expr, t_ms).await {
                Ok(result) => return Ok(result),
                Err(failed) => failed,
            };
            attempt += 1;
            let wake = self.clock.now() + chrono::Duration::from_std(backoff).unwrap_or_default();
            if !failed.retryable || attempt > self.settings.retries || wake >= deadline {
                self.errors.inc();
                return Err(QueryError(format!(
                    "datasource {}: {}",
                    self.settings.url, failed.error
                )));
            }
            tracing::debug!(datasource = %self.settings.url, error = %failed.error, "query failed; retrying");
            self.clock.sleep_until(wake).await;
            backoff *= 2;
        }
    }

    async fn attempt(&self, expr: &str, t_ms: i64) -> Result<QueryResult, Attempt> {
        let time = format!("{}.{:03}", t_ms.div_euclid(1000), t_ms.rem_euclid(1000));
        let timeout = format!("{}ms", self.settings.query_timeout.as_millis());
        let mut request = self
            .client
            .post(format!("{}/api/v1/query", self.settings.url))
            .form(&[("query", expr), ("time", &time), ("timeout", &timeout)]);
        request = with_headers(request, &self.settings.headers, &self.settings.http)
            .await
            .map_err(|e| Attempt {
                error: e.to_string(),
                retryable: e.retryable,
            })?;
        let response = request.send().await.map_err(|e| Attempt {
            error: format!("cannot reach it: {e}"),
            retryable: true,
        })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| Attempt {
            error: format!("answer cut off: {e}"),
            retryable: true,
        })?;
        let json: Option<Value> = serde_json::from_str(&body).ok();
        if !status.is_success() {
            let reason = json.as_ref().and_then(|j| j["error"].as_str()).map_or_else(
                || body.chars().take(MAX_ERROR_BODY).collect(),
                str::to_string,
            );
            return Err(Attempt {
                error: format!("HTTP {}: {reason}", status.as_u16()),
                retryable: status.as_u16() == 429 || status.is_server_error(),
            });
        }
        let json = json.ok_or_else(|| Attempt {
            error: "the answer is not JSON; is `url` a Prometheus query API?".into(),
            retryable: false,
        })?;
        parse_answer(&json).map_err(|error| Attempt {
            error,
            retryable: false,
        })
    }
}

impl DatasourceClient {
    /// Sends an API request (`api_path` such as `/api/v1/query_range`,
    /// with its parameters) to the datasource as it came, once; its status
    /// and body, or why it could not be reached.
    pub async fn forward(
        &self,
        api_path: &str,
        params: &[(String, String)],
    ) -> Result<(u16, Vec<u8>), String> {
        let mut request = self
            .client
            .post(format!("{}{api_path}", self.settings.url))
            .form(params);
        request = with_headers(request, &self.settings.headers, &self.settings.http)
            .await
            .map_err(|e| format!("datasource {}: {e}", self.settings.url))?;
        let response = request
            .send()
            .await
            .map_err(|e| format!("datasource {} cannot be reached: {e}", self.settings.url))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("datasource {}: answer cut off: {e}", self.settings.url))?;
        Ok((status, body.to_vec()))
    }
}

/// A Prometheus `/api/v1/query` answer as a rule's query result.
pub fn parse_answer(json: &Value) -> Result<QueryResult, String> {
    if json["status"] != "success" {
        return Err(json["error"].as_str().unwrap_or("query failed").to_string());
    }
    let data = &json["data"];
    let value = |pair: &Value| -> Result<(i64, f64), String> {
        let t = pair[0].as_f64().ok_or("sample without a time")?;
        let v = pair[1]
            .as_str()
            .ok_or("sample without a value")?
            .parse::<f64>()
            .map_err(|e| format!("bad sample value: {e}"))?;
        Ok(((t * 1000.0).round() as i64, v))
    };
    match data["resultType"].as_str() {
        Some("vector") => {
            let mut out = Vec::new();
            for series in data["result"].as_array().ok_or("vector without a result")? {
                let labels = series["metric"]
                    .as_object()
                    .map(|m| {
                        Labels::from_pairs(
                            m.iter()
                                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))),
                        )
                    })
                    .unwrap_or_default();
                let (t_ms, value) = value(&series["value"])?;
                out.push(Sample {
                    labels,
                    t_ms,
                    value,
                });
            }
            Ok(QueryResult::Vector(out))
        }
        Some("scalar") => Ok(QueryResult::Scalar(value(&data["result"])?.1)),
        _ => Err("rule result is not a vector or scalar".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_and_scalars_read_like_the_rule_manager() {
        let vector = serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "job": "api"}, "value": [1700000000.5, "1"]},
            {"metric": {}, "value": [1700000000.5, "+Inf"]},
            {"metric": {"x": "y"}, "value": [1700000000, "NaN"]}
        ]}});
        let QueryResult::Vector(samples) = parse_answer(&vector).unwrap_or_else(|e| panic!("{e}"))
        else {
            panic!("not a vector");
        };
        assert_eq!(samples[0].labels.get("job"), Some("api"));
        assert_eq!(samples[0].t_ms, 1_700_000_000_500);
        assert!(samples[1].value.is_infinite() && samples[2].value.is_nan());
        let scalar = serde_json::json!({"status": "success", "data": {"resultType": "scalar", "result": [1, "2.5"]}});
        assert_eq!(parse_answer(&scalar), Ok(QueryResult::Scalar(2.5)));
        let matrix = serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert_eq!(
            parse_answer(&matrix),
            Err("rule result is not a vector or scalar".into())
        );
    }
}
