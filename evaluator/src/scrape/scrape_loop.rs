//! The scrape loop of one target: fetch, parse, label, relabel, limit,
//! track staleness, commit one batch, and report the synthetic series
//! (`up`, `scrape_duration_seconds`, ...) exactly as Prometheus names them.
//!
//! [`ScrapeLoop::scrape_once`] is one scrape at the injected clock's time, so
//! tests drive it step by step; [`ScrapeLoop::run`] repeats it on the
//! target's interval, at a per-target offset, until cancelled, and then
//! marks every series of the target stale.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::IntCounterVec;
use tokio_util::sync::CancellationToken;

use super::appender::{AppendError, Sample, SampleAppender, TargetId};
use super::config::{format_duration, Credentials, StaticTarget, ValidScrapeConfig};
use super::ingest::{lock, Counts, Limits, Work};
use super::parser::{Format, ParseError, Pieces};
use super::staleness::SeriesTracker;
use super::target::{Health, Target, TargetHandle, TargetState};
use crate::clock::Clock;
use crate::hash::StableHasher;
use crate::labels::METRIC_NAME;
use crate::stale::STALE_NAN;

/// The Accept header Prometheus 2.42 sends: OpenMetrics preferred, the text
/// format as fallback.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

const USER_AGENT: &str = concat!("vigil-evaluator/", env!("CARGO_PKG_VERSION"));

/// Why a scrape failed; shown as the target's last error.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
    #[error("request to {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("server returned HTTP status {0}")]
    Status(reqwest::StatusCode),
    #[error("scrape timed out after {} (scrape_timeout, which covers fetching, parsing and storing); raise scrape_timeout or expose fewer series", format_duration(*.0))]
    Timeout(Duration),
    #[error("body_size_limit of {0} bytes exceeded; raise body_size_limit or expose fewer series")]
    BodyTooLarge(u64),
    #[error("cannot read credentials file {path}: {reason}")]
    Credentials { path: String, reason: String },
    #[error("malformed exposition: {0}")]
    Parse(#[from] ParseError),
    #[error("sample_limit of {0} exceeded after relabelling; raise sample_limit or drop series with metric_relabel_configs")]
    SampleLimit(usize),
    /// A label limit (`label_limit`, `label_name_length_limit`,
    /// `label_value_length_limit`) was exceeded.
    #[error("{detail}")]
    Limit { limit: &'static str, detail: String },
    #[error("invalid metric name {0:?} after relabelling")]
    InvalidSeries(String),
    #[error(transparent)]
    Store(#[from] AppendError),
    #[error("scrape stopped: the evaluator is shutting down or reloading")]
    Stopped,
    #[error("scrape worker failed: {0}")]
    Worker(String),
}

impl ScrapeError {
    /// The config key of the per-scrape limit this error is about (the
    /// `limit` label of `vigil_scrape_limit_exceeded_total`), if any.
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            ScrapeError::BodyTooLarge(_) => Some("body_size_limit"),
            ScrapeError::SampleLimit(_) => Some("sample_limit"),
            ScrapeError::Limit { limit, .. } => Some(limit),
            ScrapeError::Parse(e) => e.limit,
            ScrapeError::Store(AppendError::SeriesLimit { .. }) => Some("series_limit"),
            _ => None,
        }
    }
}

/// What one scrape did (also visible through the synthetic series).
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeOutcome {
    pub up: bool,
    pub error: Option<String>,
    /// The limit the scrape broke (`sample_limit`, `label_limit`,
    /// `series_limit`...), if that is why it failed.
    pub limit: Option<&'static str>,
    pub samples_scraped: usize,
    pub samples_post_relabel: usize,
    pub series_added: usize,
    pub stale_markers: usize,
}

/// One target's scrape loop.
pub struct ScrapeLoop {
    target: Target,
    interval: Duration,
    timeout: Duration,
    credentials: Option<Credentials>,
    body_size_limit: u64,
    client: reqwest::Client,
    appender: Arc<dyn SampleAppender>,
    target_id: TargetId,
    clock: Arc<dyn Clock>,
    handle: TargetHandle,
    work: Arc<Mutex<Work>>,
    /// Stops a scrape in progress (set by [`ScrapeLoop::run`]).
    cancel: CancellationToken,
    /// `vigil_scrape_limit_exceeded_total{job, limit}`, when counted.
    limits_exceeded: Option<IntCounterVec>,
    /// The part of the response body not parsed yet (at most a line plus
    /// [`PARSE_BATCH`]), kept between scrapes.
    body: Vec<u8>,
}

/// The largest line buffer kept from one scrape to the next.
const BODY_BUFFER_KEEP: usize = 1024 * 1024;

/// Complete lines are handed to the blocking pool once this many bytes
/// have arrived (and at the end of the body): small expositions cost one
/// hand-over per scrape, large ones one per 256 KiB.
const PARSE_BATCH: usize = 256 * 1024;

const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

impl ScrapeLoop {
    /// A loop for `static_target`, one of `config`'s targets. Registers the
    /// target with `appender` (see [`SampleAppender::register_target`]);
    /// dropping the loop unregisters it.
    pub fn new(
        config: &ValidScrapeConfig,
        static_target: &StaticTarget,
        appender: Arc<dyn SampleAppender>,
        clock: Arc<dyn Clock>,
    ) -> Result<ScrapeLoop, ScrapeError> {
        let target = Target {
            job: config.job_name.clone(),
            url: config.url_for(&static_target.address),
            labels: config.target_labels(static_target),
        };
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .gzip(true)
            .build()
            .map_err(|e| ScrapeError::Client(e.to_string()))?;
        let report_series = REPORT_NAMES.map(|name| {
            let mut labels = target.labels.clone();
            labels.set(METRIC_NAME, name);
            labels
        });
        let handle = TargetHandle::new(TargetState {
            job: target.job.clone(),
            scrape_url: target.url.clone(),
            labels: target.labels.clone(),
            health: Health::Unknown,
            last_scrape: None,
            last_scrape_duration: None,
            last_error: None,
            scrape_interval: config.scrape_interval,
            scrape_timeout: config.scrape_timeout,
        });
        let work = Work {
            target_labels: target.labels.clone(),
            honor_labels: config.honor_labels,
            rules: Arc::new(config.metric_relabel.clone()),
            limits: Limits {
                sample: config.sample_limit,
                label: config.label_limit,
                label_name_length: config.label_name_length_limit,
                label_value_length: config.label_value_length_limit,
            },
            tracker: SeriesTracker::new(),
            report_series,
            batch: Vec::new(),
            pieces: Pieces::new(Format::PrometheusText),
            counts: Counts::default(),
        };
        let target_id = appender.register_target();
        Ok(ScrapeLoop {
            target,
            interval: config.scrape_interval,
            timeout: config.scrape_timeout,
            credentials: config.credentials.clone(),
            body_size_limit: config.body_size_limit,
            client,
            appender,
            target_id,
            clock,
            handle,
            work: Arc::new(Mutex::new(work)),
            cancel: CancellationToken::new(),
            limits_exceeded: None,
            body: Vec::new(),
        })
    }

    /// Counts scrapes that broke a limit in `counter`, labelled with the
    /// job and the limit's config key.
    pub fn count_limits_in(&mut self, counter: IntCounterVec) {
        self.limits_exceeded = Some(counter);
    }

    /// The state view for the targets API.
    pub fn handle(&self) -> TargetHandle {
        self.handle.clone()
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Scrapes once at the clock's current time and commits the result.
    /// Everything (request, body, parsing, storing) happens within the
    /// target's `scrape_timeout`; a stop signal ends it early, without
    /// storing anything.
    pub async fn scrape_once(&mut self) -> ScrapeOutcome {
        let start = self.wall_now();
        let t_ms = unix_millis(start);
        let deadline = self.clock.monotonic() + self.timeout;
        {
            let mut work = lock(&self.work);
            work.batch.clear();
            work.counts = Counts::default();
            work.tracker.begin();
        }

        let mut result = self.fetch_and_ingest(deadline, t_ms).await;
        if matches!(result, Err(ScrapeError::Stopped)) {
            // The loop writes end-of-run staleness next; this scrape stores
            // nothing.
            return ScrapeOutcome {
                up: false,
                error: Some(ScrapeError::Stopped.to_string()),
                limit: None,
                samples_scraped: 0,
                samples_post_relabel: 0,
                series_added: 0,
                stale_markers: 0,
            };
        }
        if result.is_ok() && self.clock.monotonic() >= deadline {
            result = Err(ScrapeError::Timeout(self.timeout));
        }
        let duration = self
            .wall_now()
            .duration_since(start)
            .unwrap_or(Duration::ZERO);
        let work = Arc::clone(&self.work);
        let appender = Arc::clone(&self.appender);
        let target_id = self.target_id;
        let finished = tokio::task::spawn_blocking(move || {
            lock(&work).finish(result, t_ms, duration, appender.as_ref(), target_id)
        })
        .await;
        let (result, counts, stale_markers) = match finished {
            Ok(finished) => finished,
            Err(e) => (
                Err(ScrapeError::Worker(e.to_string())),
                Counts::default(),
                0,
            ),
        };

        let limit = result.as_ref().err().and_then(ScrapeError::limit);
        if let (Some(limit), Some(counter)) = (limit, &self.limits_exceeded) {
            counter.with_label_values(&[&self.target.job, limit]).inc();
        }
        let error = result.err().map(|e| e.to_string());
        if let Some(e) = &error {
            tracing::debug!(target_url = %self.target.url, error = %e, "scrape failed");
        }
        self.handle.update(|s| {
            s.health = if error.is_none() {
                Health::Up
            } else {
                Health::Down
            };
            s.last_scrape = Some(start);
            s.last_scrape_duration = Some(duration);
            s.last_error.clone_from(&error);
        });
        ScrapeOutcome {
            up: error.is_none(),
            error,
            limit,
            samples_scraped: counts.scraped,
            samples_post_relabel: counts.kept,
            series_added: counts.added,
            stale_markers,
        }
    }

    /// Marks every series of this target stale at the clock's time: the
    /// scraped ones and the synthetic ones. Called when the target goes away.
    pub fn write_end_of_run_staleness(&mut self) -> Result<usize, AppendError> {
        let t_ms = unix_millis(self.wall_now());
        let mut work = lock(&self.work);
        let mut batch: Vec<Sample> = work
            .tracker
            .finish_failure()
            .into_iter()
            .chain(work.report_series.iter().cloned())
            .map(|labels| Sample {
                labels,
                t_ms,
                value: STALE_NAN,
            })
            .collect();
        batch.shrink_to_fit();
        drop(work);
        self.appender.commit_target(self.target_id, &batch)?;
        Ok(batch.len())
    }

    /// Scrapes every interval, starting at this target's offset within the
    /// interval, until `cancel` fires; then writes end-of-run staleness.
    /// A scrape in progress sees `cancel` too (between two reads of the
    /// body, and every few hundred lines of parsing), so stopping is prompt.
    pub async fn run(mut self, cancel: CancellationToken) {
        self.cancel = cancel.clone();
        let mut next = self.clock.monotonic() + self.initial_offset();
        let mut scraped = false;
        loop {
            let wait = next.saturating_sub(self.clock.monotonic());
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.clock.sleep(wait) => {}
            }
            scraped = true;
            self.scrape_once().await;
            if cancel.is_cancelled() {
                break;
            }
            next = next_tick(next, self.interval, self.clock.monotonic());
        }
        if scraped {
            if let Err(e) = self.write_end_of_run_staleness() {
                tracing::warn!(target_url = %self.target.url, error = %e, "cannot write staleness markers for a stopped target");
            }
        }
    }

    /// Spreads targets over the interval: each target scrapes at a fixed
    /// phase derived from its identity, so load is even and restarts keep
    /// the same phase (Prometheus does the same).
    pub fn initial_offset(&self) -> Duration {
        let interval_ms = u64::try_from(self.interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut hasher = StableHasher::default();
        self.target.url.hash(&mut hasher);
        self.target.labels.hash(&mut hasher);
        let phase = hasher.finish() % interval_ms;
        let now = u64::try_from(unix_millis(self.wall_now())).unwrap_or(0) % interval_ms;
        Duration::from_millis((phase + interval_ms - now) % interval_ms)
    }

    /// The clock's wall time.
    fn wall_now(&self) -> SystemTime {
        self.clock.now().into()
    }

    /// Awaits `future` until the scrape's deadline (on the clock's
    /// monotonic time) or the stop signal.
    async fn within<T>(
        &self,
        deadline: Duration,
        future: impl std::future::Future<Output = T>,
    ) -> Result<T, ScrapeError> {
        let remaining = deadline.saturating_sub(self.clock.monotonic());
        let timed = async {
            tokio::select! {
                biased;
                r = future => Ok(r),
                () = self.clock.sleep(remaining) => Err(ScrapeError::Timeout(self.timeout)),
            }
        };
        tokio::select! {
            () = self.cancel.cancelled() => Err(ScrapeError::Stopped),
            r = timed => r,
        }
    }

    /// Fetches the exposition and parses it as it arrives, runs of whole
    /// lines at a time on the blocking pool, so only the unfinished last
    /// line and at most [`PARSE_BATCH`] bytes are buffered, never the whole
    /// exposition.
    async fn fetch_and_ingest(&mut self, deadline: Duration, t_ms: i64) -> Result<(), ScrapeError> {
        let (mut response, format) = self.within(deadline, self.request()).await??;
        {
            let mut work = lock(&self.work);
            let label_limit = work.limits.label;
            work.pieces = Pieces::new(format).with_label_limit(label_limit);
        }
        let limit = self.body_size_limit;
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        let mut total: u64 = 0;
        // The end of the last complete line in `body`.
        let mut complete = 0;
        // Chunks are already decompressed, so the limit applies to what the
        // exposition really holds, and an oversized body is abandoned as
        // soon as it crosses it.
        while let Some(chunk) = self
            .within(deadline, response.chunk())
            .await?
            .map_err(|e| ScrapeError::Request {
                url: self.target.url.clone(),
                reason: error_chain(&e),
            })?
        {
            total += chunk.len() as u64;
            if limit > 0 && total > limit {
                return Err(ScrapeError::BodyTooLarge(limit));
            }
            let unterminated = body.len();
            body.extend_from_slice(&chunk);
            if let Some(newline) = body[unterminated..].iter().rposition(|&b| b == b'\n') {
                complete = unterminated + newline + 1;
            }
            if complete >= PARSE_BATCH {
                body = self
                    .ingest_blocking(body, complete, false, deadline, t_ms)
                    .await?;
                complete = 0;
            }
        }
        let end = body.len();
        let mut body = self
            .ingest_blocking(body, end, true, deadline, t_ms)
            .await?;
        if body.capacity() > BODY_BUFFER_KEEP {
            // A very long line grew the buffer: do not hold on to it.
            body = Vec::new();
        }
        self.body = body;
        Ok(())
    }

    /// Parses `body[..end]` on the blocking pool; returns the rest of the
    /// body. Awaited to the end (the parser itself watches the deadline and
    /// the stop signal), so the shared state is never left mid-step.
    async fn ingest_blocking(
        &self,
        mut body: Vec<u8>,
        end: usize,
        last: bool,
        deadline: Duration,
        t_ms: i64,
    ) -> Result<Vec<u8>, ScrapeError> {
        let work = Arc::clone(&self.work);
        let stop = self.cancel.clone();
        let timeout = self.timeout;
        let clock = Arc::clone(&self.clock);
        let joined = tokio::task::spawn_blocking(move || {
            let result = lock(&work).ingest(&body[..end], last, t_ms, &|| {
                if stop.is_cancelled() {
                    Err(ScrapeError::Stopped)
                } else if clock.monotonic() >= deadline {
                    Err(ScrapeError::Timeout(timeout))
                } else {
                    Ok(())
                }
            });
            body.drain(..end);
            result.map(|()| body)
        })
        .await;
        joined.map_err(|e| ScrapeError::Worker(e.to_string()))?
    }

    /// Sends the scrape request; returns the response and its body's format.
    async fn request(&self) -> Result<(reqwest::Response, Format), ScrapeError> {
        let url = &self.target.url;
        let mut request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, ACCEPT_HEADER)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", self.timeout.as_secs_f64()),
            );
        if let Some(authorization) = self.authorization().await? {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request.send().await.map_err(|e| ScrapeError::Request {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(ScrapeError::Status(response.status()));
        }
        let format = Format::from_content_type(
            response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        Ok((response, format))
    }

    async fn authorization(&self) -> Result<Option<String>, ScrapeError> {
        match &self.credentials {
            None => Ok(None),
            Some(Credentials::Inline { kind, secret }) => Ok(Some(format!("{kind} {secret}"))),
            Some(Credentials::File { kind, path }) => {
                let secret = tokio::fs::read_to_string(path).await.map_err(|e| {
                    ScrapeError::Credentials {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    }
                })?;
                Ok(Some(format!("{kind} {}", secret.trim())))
            }
        }
    }
}

impl Drop for ScrapeLoop {
    fn drop(&mut self) {
        self.appender.unregister_target(self.target_id);
    }
}

fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// reqwest hides the useful part (connection refused, ...) in its sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The next point of the schedule `last + k * interval` (k >= 1) that is
/// still ahead of `now`: a scrape that overran its interval skips the ticks
/// it missed instead of scraping again at once to catch up.
fn next_tick(last: Duration, interval: Duration, now: Duration) -> Duration {
    let next = last + interval;
    if next > now {
        return next;
    }
    let missed = (now - next).as_nanos() / interval.as_nanos().max(1) + 1;
    next + interval * u32::try_from(missed).unwrap_or(u32::MAX)
}

/// Starts one loop per target of every config; returns the targets' state
/// handles (for the targets API) and the tasks, which end after `cancel`.
/// Scrapes that break a limit are counted in `limits_exceeded` when given
/// (`vigil_scrape_limit_exceeded_total{job, limit}`).
pub fn spawn_scrape_loops(
    configs: &[ValidScrapeConfig],
    appender: &Arc<dyn SampleAppender>,
    clock: &Arc<dyn Clock>,
    cancel: &CancellationToken,
    limits_exceeded: Option<&IntCounterVec>,
) -> Result<(Vec<TargetHandle>, Vec<tokio::task::JoinHandle<()>>), ScrapeError> {
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for config in configs {
        for target in &config.targets {
            let mut scrape_loop =
                ScrapeLoop::new(config, target, Arc::clone(appender), Arc::clone(clock))?;
            if let Some(counter) = limits_exceeded {
                scrape_loop.count_limits_in(counter.clone());
            }
            handles.push(scrape_loop.handle());
            tasks.push(tokio::spawn(scrape_loop.run(cancel.clone())));
        }
    }
    Ok((handles, tasks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_tick_follows_the_interval_grid() {
        let s = Duration::from_secs;
        assert_eq!(next_tick(s(10), s(15), s(12)), s(25));
        assert_eq!(next_tick(s(10), s(15), s(24)), s(25));
    }

    #[test]
    fn an_overrun_scrape_skips_the_ticks_it_missed() {
        let s = Duration::from_secs;
        assert_eq!(next_tick(s(10), s(15), s(25)), s(40));
        assert_eq!(next_tick(s(10), s(15), s(41)), s(55));
    }

    #[test]
    fn accept_header_prefers_openmetrics() {
        assert!(ACCEPT_HEADER.starts_with("application/openmetrics-text;version=1.0.0,"));
        assert!(ACCEPT_HEADER.contains("text/plain;version=0.0.4;q=0.5"));
    }
}
