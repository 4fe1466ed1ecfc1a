//! `--remote-write URL`: the backtested `ALERTS` and `ALERTS_FOR_STATE`
//! series (with staleness markers where an alert ends) sent to a
//! remote-write receiver, as vmalert's replay mode does, with the
//! evaluator's remote-write encoding. Unlike the live queue, nothing is
//! dropped: each batch is sent before the backtest goes on, and a refused
//! batch stops the backtest with the receiver's answer.

use crate::remote_write::encode_write_request;
use crate::remote_write::queue::PROTOCOL_VERSION;
use crate::sample::Sample;

/// Samples sent in one request.
const BATCH: usize = 5_000;
/// Most of an error answer kept in the message.
const MAX_ERROR_BODY: usize = 300;

/// Buffers samples and sends them in batches.
pub struct BacktestWriter {
    client: reqwest::Client,
    url: String,
    buffer: Vec<Sample>,
    /// Samples the receiver accepted.
    pub sent: u64,
}

impl BacktestWriter {
    pub fn new(url: &str) -> Result<BacktestWriter, String> {
        reqwest::Url::parse(url)
            .map_err(|e| format!("--remote-write {url:?} is not a URL ({e})"))?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client for --remote-write: {e}"))?;
        Ok(BacktestWriter {
            client,
            url: url.to_string(),
            buffer: Vec::new(),
            sent: 0,
        })
    }

    /// Takes samples; whether a batch is full and should be sent.
    pub fn push(&mut self, samples: Vec<Sample>) -> bool {
        self.buffer.extend(samples);
        self.buffer.len() >= BATCH
    }

    /// Sends what is buffered.
    pub async fn flush(&mut self) -> Result<(), String> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let body = encode_write_request(&self.buffer);
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", PROTOCOL_VERSION)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "--remote-write {} cannot be reached: {e}; check the URL and that the receiver is running",
                    self.url
                )
            })?;
        let status = response.status();
        if !status.is_success() {
            let text: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(MAX_ERROR_BODY)
                .collect();
            return Err(format!(
                "--remote-write {} refused {} samples with HTTP {}: {}",
                self.url,
                self.buffer.len(),
                status.as_u16(),
                text.trim()
            ));
        }
        self.sent += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}
