//! The scrape loop of one target: fetch, parse, label, relabel, limit,
//! track staleness, commit one batch, and report the synthetic series
//! (`up`, `scrape_duration_seconds`, ...) exactly as Prometheus names them.
//!
//! [`ScrapeLoop::scrape_once`] is one scrape at the injected clock's time, so
//! tests drive it step by step; [`ScrapeLoop::run`] repeats it on the
//! target's interval, at a per-target offset, until cancelled, and then
//! marks every series of the target stale.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::appender::{AppendError, AppendSample, SampleAppender};
use super::config::{format_duration, Credentials, StaticTarget, ValidScrapeConfig};
use super::parser::{is_valid_metric_name, Entry, Format, ParseError, Pieces};
use super::relabel::{relabel, Relabeler};
use super::staleness::{Lookup, SeriesTracker};
use super::target::{Health, Target, TargetHandle, TargetState};
use super::STALE_NAN;
use crate::labels::{Labels, METRIC_NAME};

/// The Accept header Prometheus 2.42 sends: OpenMetrics preferred, the text
/// format as fallback.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

const USER_AGENT: &str = concat!("vigil-evaluator/", env!("CARGO_PKG_VERSION"));

/// The source of "now"; injected so tests step time instead of sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Why a scrape failed; shown as the target's last error.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
    #[error("request to {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("server returned HTTP status {0}")]
    Status(reqwest::StatusCode),
    #[error("scrape timed out after {} (scrape_timeout)", format_duration(*.0))]
    Timeout(Duration),
    #[error("body size limit of {0} bytes exceeded; raise body_size_limit or expose fewer series")]
    BodyTooLarge(u64),
    #[error("cannot read credentials file {path}: {reason}")]
    Credentials { path: String, reason: String },
    #[error("malformed exposition: {0}")]
    Parse(#[from] ParseError),
    #[error("sample_limit of {0} exceeded after relabelling; raise sample_limit or drop series with metric_relabel_configs")]
    SampleLimit(usize),
    #[error("invalid metric name {0:?} after relabelling")]
    InvalidSeries(String),
    #[error(transparent)]
    Store(#[from] AppendError),
}

/// What one scrape did (also visible through the synthetic series).
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeOutcome {
    pub up: bool,
    pub error: Option<String>,
    pub samples_scraped: usize,
    pub samples_post_relabel: usize,
    pub series_added: usize,
    pub stale_markers: usize,
}

#[derive(Debug, Default)]
struct Counts {
    scraped: usize,
    kept: usize,
    added: usize,
}

/// One target's scrape loop.
pub struct ScrapeLoop {
    target: Target,
    interval: Duration,
    timeout: Duration,
    honor_labels: bool,
    credentials: Option<Credentials>,
    rules: Arc<Vec<Relabeler>>,
    sample_limit: usize,
    body_size_limit: u64,
    client: reqwest::Client,
    appender: Arc<dyn SampleAppender>,
    clock: Arc<dyn Clock>,
    tracker: SeriesTracker,
    report_series: [Labels; 5],
    handle: TargetHandle,
    batch: Vec<AppendSample>,
    /// The part of the response body not parsed yet (at most a line plus a
    /// chunk), kept between scrapes.
    body: Vec<u8>,
}

/// The largest line buffer kept from one scrape to the next.
const BODY_BUFFER_KEEP: usize = 1024 * 1024;

const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

impl ScrapeLoop {
    /// A loop for `static_target`, one of `config`'s targets.
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
        Ok(ScrapeLoop {
            target,
            interval: config.scrape_interval,
            timeout: config.scrape_timeout,
            honor_labels: config.honor_labels,
            credentials: config.credentials.clone(),
            rules: Arc::new(config.metric_relabel.clone()),
            sample_limit: config.sample_limit,
            body_size_limit: config.body_size_limit,
            client,
            appender,
            clock,
            tracker: SeriesTracker::new(),
            report_series,
            handle,
            batch: Vec::new(),
            body: Vec::new(),
        })
    }

    /// The state view for the targets API.
    pub fn handle(&self) -> TargetHandle {
        self.handle.clone()
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Scrapes once at the clock's current time and commits the result.
    pub async fn scrape_once(&mut self) -> ScrapeOutcome {
        let start = self.clock.now();
        let t_ms = unix_millis(start);
        self.batch.clear();
        self.tracker.begin();

        let mut body = std::mem::take(&mut self.body);
        body.clear();
        let mut counts = Counts::default();
        let timeout = self.timeout;
        let scrape = self.fetch_and_ingest(&mut body, t_ms, &mut counts);
        let result = match tokio::time::timeout(timeout, scrape).await {
            Ok(result) => result,
            Err(_) => Err(ScrapeError::Timeout(timeout)),
        };
        if body.capacity() > BODY_BUFFER_KEEP {
            // A very long line grew the buffer: do not hold on to it.
            body = Vec::new();
        }
        self.body = body;
        let stale = match &result {
            Ok(()) => self.tracker.finish_success(),
            Err(_) => {
                // Like Prometheus: nothing of a failed scrape is stored, and
                // every series of the last good scrape goes stale.
                self.batch.clear();
                self.tracker.finish_failure()
            }
        };
        let stale_markers = stale.len();
        self.batch
            .extend(stale.into_iter().map(|labels| AppendSample {
                labels,
                t_ms,
                value: STALE_NAN,
            }));

        let duration = self
            .clock
            .now()
            .duration_since(start)
            .unwrap_or(Duration::ZERO);
        let up = result.is_ok();
        let report = [
            if up { 1.0 } else { 0.0 },
            duration.as_secs_f64(),
            counts.scraped as f64,
            counts.kept as f64,
            counts.added as f64,
        ];
        for (labels, value) in self.report_series.iter().zip(report) {
            self.batch.push(AppendSample {
                labels: labels.clone(),
                t_ms,
                value,
            });
        }
        let committed = self.appender.commit(&self.batch).map_err(ScrapeError::from);
        // The batch is refilled by every scrape; keep room for about this
        // many samples instead of what doubling left over.
        let room = self.batch.len() + self.batch.len() / 16 + 16;
        if self.batch.capacity() > room + room / 8 {
            self.batch.shrink_to(room);
        }
        let error = result.err().or(committed.err()).map(|e| e.to_string());
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
            samples_scraped: counts.scraped,
            samples_post_relabel: counts.kept,
            series_added: counts.added,
            stale_markers,
        }
    }

    /// Marks every series of this target stale at the clock's time: the
    /// scraped ones and the synthetic ones. Called when the target goes away.
    pub fn write_end_of_run_staleness(&mut self) -> Result<usize, AppendError> {
        let t_ms = unix_millis(self.clock.now());
        let mut batch: Vec<AppendSample> = self
            .tracker
            .finish_failure()
            .into_iter()
            .chain(self.report_series.iter().cloned())
            .map(|labels| AppendSample {
                labels,
                t_ms,
                value: STALE_NAN,
            })
            .collect();
        batch.shrink_to_fit();
        self.appender.commit(&batch)?;
        Ok(batch.len())
    }

    /// Scrapes every interval, starting at this target's offset within the
    /// interval, until `cancel` fires; then writes end-of-run staleness.
    pub async fn run(mut self, cancel: CancellationToken) {
        let wait = self.initial_offset();
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = self.scrape_once() => {}
            }
        }
        if let Err(e) = self.write_end_of_run_staleness() {
            tracing::warn!(target_url = %self.target.url, error = %e, "cannot write staleness markers for a stopped target");
        }
    }

    /// Spreads targets over the interval: each target scrapes at a fixed
    /// phase derived from its identity, so load is even and restarts keep
    /// the same phase (Prometheus does the same).
    pub fn initial_offset(&self) -> Duration {
        let interval_ms = u64::try_from(self.interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut hasher = DefaultHasher::new();
        self.target.url.hash(&mut hasher);
        self.target.labels.hash(&mut hasher);
        let phase = hasher.finish() % interval_ms;
        let now = u64::try_from(unix_millis(self.clock.now())).unwrap_or(0) % interval_ms;
        Duration::from_millis((phase + interval_ms - now) % interval_ms)
    }

    /// Fetches the exposition and parses it as it arrives, a run of whole
    /// lines at a time, so only the unfinished last line of what has
    /// arrived is buffered (in `body`, empty on entry), never the whole
    /// exposition.
    async fn fetch_and_ingest(
        &mut self,
        body: &mut Vec<u8>,
        t_ms: i64,
        counts: &mut Counts,
    ) -> Result<(), ScrapeError> {
        let (mut response, format) = self.request().await?;
        let limit = self.body_size_limit;
        let mut pieces = Pieces::new(format);
        let mut total: u64 = 0;
        // Chunks are already decompressed, so the limit applies to what the
        // exposition really holds, and an oversized body is abandoned as
        // soon as it crosses it.
        while let Some(chunk) = response.chunk().await.map_err(|e| ScrapeError::Request {
            url: self.target.url.clone(),
            reason: error_chain(&e),
        })? {
            total += chunk.len() as u64;
            if limit > 0 && total > limit {
                return Err(ScrapeError::BodyTooLarge(limit));
            }
            let unterminated = body.len();
            body.extend_from_slice(&chunk);
            if let Some(newline) = body[unterminated..].iter().rposition(|&b| b == b'\n') {
                let end = unterminated + newline + 1;
                self.ingest(&body[..end], &mut pieces, false, t_ms, counts)?;
                body.drain(..end);
            }
        }
        self.ingest(body, &mut pieces, true, t_ms, counts)
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

    /// Parses one piece of the body into `self.batch`, tracking series for
    /// staleness; `last` when the body ends with it.
    fn ingest(
        &mut self,
        piece: &[u8],
        pieces: &mut Pieces,
        last: bool,
        t_ms: i64,
        counts: &mut Counts,
    ) -> Result<(), ScrapeError> {
        let mut parser = pieces.parser(piece, last)?;
        while let Some(entry) = parser.next_entry()? {
            let Entry::Sample(sample) = entry else {
                continue;
            };
            counts.scraped += 1;
            let (key, new) = match self.tracker.lookup(sample.series) {
                Lookup::Dropped => continue,
                Lookup::Kept(key) => (key, false),
                Lookup::Miss => {
                    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(sample.labels.len() + 1);
                    pairs.push((METRIC_NAME, sample.name));
                    pairs.extend(sample.labels.iter().map(|l| (l.name, l.value.as_ref())));
                    let exposed = Labels::from_pairs(pairs);
                    let labelled =
                        merge_target_labels(exposed, &self.target.labels, self.honor_labels);
                    match relabel(labelled, &self.rules) {
                        Some(labels) if !labels.is_empty() => {
                            if let Some(name) = labels.metric_name() {
                                if !is_valid_metric_name(name) {
                                    return Err(ScrapeError::InvalidSeries(name.to_string()));
                                }
                            }
                            self.tracker.insert(sample.series, Some(labels.clone()));
                            (labels, true)
                        }
                        _ => {
                            self.tracker.insert(sample.series, None);
                            continue;
                        }
                    }
                }
            };
            let t = match sample.timestamp_ms {
                Some(explicit) => explicit,
                None => {
                    if !self.tracker.track(&key) {
                        // A duplicate series in one exposition: Prometheus
                        // keeps the first and drops the rest.
                        continue;
                    }
                    t_ms
                }
            };
            counts.kept += 1;
            if self.sample_limit > 0 && counts.kept > self.sample_limit {
                return Err(ScrapeError::SampleLimit(self.sample_limit));
            }
            if new && !self.tracker.seen_before(&key) {
                counts.added += 1;
            }
            self.batch.push(AppendSample {
                labels: key,
                t_ms: t,
                value: sample.value,
            });
        }
        pieces.finish_piece(&parser);
        Ok(())
    }
}

/// Attaches the target's labels to an exposed series. With `honor_labels`
/// the exposed values win; without it a clashing exposed label is kept as
/// `exported_<name>` (prefixed again while that name is taken too).
pub fn merge_target_labels(mut exposed: Labels, target: &Labels, honor_labels: bool) -> Labels {
    for label in target.iter() {
        let clash = exposed.get(label.name).map(str::to_string);
        match clash {
            None => exposed.set(label.name, label.value),
            Some(_) if honor_labels => {}
            Some(value) => {
                let mut name = format!("exported_{}", label.name);
                while exposed.get(&name).is_some() || target.get(&name).is_some() {
                    name.insert_str(0, "exported_");
                }
                exposed.set(&name, &value);
                exposed.set(label.name, label.value);
            }
        }
    }
    exposed
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

/// Starts one loop per target of every config; returns the targets' state
/// handles (for the targets API) and the tasks, which end after `cancel`.
pub fn spawn_scrape_loops(
    configs: &[ValidScrapeConfig],
    appender: &Arc<dyn SampleAppender>,
    clock: &Arc<dyn Clock>,
    cancel: &CancellationToken,
) -> Result<(Vec<TargetHandle>, Vec<tokio::task::JoinHandle<()>>), ScrapeError> {
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for config in configs {
        for target in &config.targets {
            let scrape_loop =
                ScrapeLoop::new(config, target, Arc::clone(appender), Arc::clone(clock))?;
            handles.push(scrape_loop.handle());
            tasks.push(tokio::spawn(scrape_loop.run(cancel.clone())));
        }
    }
    Ok((handles, tasks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn target_labels_win_and_clashes_are_exported_without_honor_labels() {
        let exposed = labels(&[("__name__", "m"), ("job", "app"), ("exported_job", "x")]);
        let target = labels(&[("job", "scrape"), ("instance", "h:1")]);
        let out = merge_target_labels(exposed, &target, false);
        assert_eq!(out.get("job"), Some("scrape"));
        assert_eq!(out.get("exported_exported_job"), Some("app"));
        assert_eq!(out.get("exported_job"), Some("x"));
        assert_eq!(out.get("instance"), Some("h:1"));
    }

    #[test]
    fn exposed_labels_win_with_honor_labels() {
        let exposed = labels(&[("__name__", "m"), ("job", "app")]);
        let target = labels(&[("job", "scrape"), ("instance", "h:1")]);
        let out = merge_target_labels(exposed, &target, true);
        assert_eq!(out.get("job"), Some("app"));
        assert_eq!(out.get("instance"), Some("h:1"));
        assert_eq!(out.get("exported_job"), None);
    }

    #[test]
    fn accept_header_prefers_openmetrics() {
        assert!(ACCEPT_HEADER.starts_with("application/openmetrics-text;version=1.0.0,"));
        assert!(ACCEPT_HEADER.contains("text/plain;version=0.0.4;q=0.5"));
    }
}
