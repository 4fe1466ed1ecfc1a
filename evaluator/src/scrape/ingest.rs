//! The CPU side of one scrape: parse the exposition piece by piece, attach
//! the target's labels, relabel, check Prometheus' per-scrape limits, track
//! series for staleness and build the batch the store commits. It runs on
//! tokio's blocking pool (see [`super::scrape_loop`]), under a lock only one
//! step of one scrape holds at a time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::appender::{AppendError, Sample, SampleAppender, TargetId};
use super::parser::{is_valid_metric_name, Entry, ParseError, Pieces};
use super::relabel::{relabel, Relabeler};
use super::scrape_loop::ScrapeError;
use super::staleness::{Lookup, SeriesTracker};
use crate::labels::{Labels, METRIC_NAME};
use crate::stale::STALE_NAN;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub(super) scraped: usize,
    pub(super) kept: usize,
    pub(super) added: usize,
}

/// The per-scrape limits of a target (0 = no limit).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) sample: usize,
    pub(super) label: usize,
    pub(super) label_name_length: usize,
    pub(super) label_value_length: usize,
}

/// Parsing and committing are CPU work proportional to the exposition, so
/// they run on tokio's blocking pool, never on the async workers that serve
/// HTTP and run the rules; this is the state that work needs, shared with
/// it under a lock that only one step of one scrape holds at a time.
pub(super) struct Work {
    pub(super) target_labels: Labels,
    pub(super) honor_labels: bool,
    pub(super) rules: Arc<Vec<Relabeler>>,
    pub(super) limits: Limits,
    pub(super) tracker: SeriesTracker,
    pub(super) report_series: [Labels; 5],
    pub(super) batch: Vec<Sample>,
    pub(super) pieces: Pieces,
    pub(super) counts: Counts,
}

/// How many entries the blocking parser handles between two looks at the
/// deadline and the stop signal.
const CHECK_EVERY: u32 = 256;

pub(super) fn lock(work: &Mutex<Work>) -> MutexGuard<'_, Work> {
    work.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Work {
    /// Parses one piece of the body into `self.batch`, tracking series for
    /// staleness; `last` when the body ends with it. `check` is called
    /// every [`CHECK_EVERY`] entries and ends the work with its error.
    pub(super) fn ingest(
        &mut self,
        piece: &[u8],
        last: bool,
        t_ms: i64,
        check: &dyn Fn() -> Result<(), ScrapeError>,
    ) -> Result<(), ScrapeError> {
        let mut pieces = self.pieces;
        let mut parser = pieces.parser(piece, last).map_err(parse_error)?;
        let mut entries: u32 = 0;
        while let Some(entry) = parser.next_entry().map_err(parse_error)? {
            entries = entries.wrapping_add(1);
            if entries % CHECK_EVERY == 0 {
                check()?;
            }
            let Entry::Sample(sample) = entry else {
                continue;
            };
            self.counts.scraped += 1;
            let (key, new) = match self.tracker.lookup(sample.series) {
                Lookup::Dropped => continue,
                Lookup::Kept(key) => (key, false),
                Lookup::Miss => {
                    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(sample.labels.len() + 1);
                    pairs.push((METRIC_NAME, sample.name));
                    pairs.extend(sample.labels.iter().map(|l| (l.name, l.value.as_ref())));
                    let exposed = Labels::from_pairs(pairs);
                    let labelled =
                        merge_target_labels(exposed, &self.target_labels, self.honor_labels);
                    match relabel(labelled, &self.rules) {
                        Some(labels) if !labels.is_empty() => {
                            if let Some(name) = labels.metric_name() {
                                if !is_valid_metric_name(name) {
                                    return Err(ScrapeError::InvalidSeries(name.to_string()));
                                }
                            }
                            self.limits.check(&labels)?;
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
            self.counts.kept += 1;
            if self.limits.sample > 0 && self.counts.kept > self.limits.sample {
                return Err(ScrapeError::SampleLimit(self.limits.sample));
            }
            if new && !self.tracker.seen_before(&key) {
                self.counts.added += 1;
            }
            self.batch.push(Sample {
                labels: key,
                t_ms: t,
                value: sample.value,
            });
        }
        pieces.finish_piece(&parser);
        self.pieces = pieces;
        Ok(())
    }

    /// Ends a scrape: staleness, the synthetic series, and the commit. A
    /// scrape the store refuses for the series limit ends like a failed
    /// one: its previous series go stale and `up` is 0. Returns the
    /// scrape's result, its counts and the number of staleness markers.
    pub(super) fn finish(
        &mut self,
        result: Result<(), ScrapeError>,
        t_ms: i64,
        duration: Duration,
        appender: &dyn SampleAppender,
        target: TargetId,
    ) -> (Result<(), ScrapeError>, Counts, usize) {
        let mut stale = match &result {
            Ok(()) => self.tracker.finish_success(),
            Err(_) => {
                // Like Prometheus: nothing of a failed scrape is stored, and
                // every series of the last good scrape goes stale.
                self.batch.clear();
                self.tracker.finish_failure()
            }
        };
        self.push_stale_and_report(&stale, t_ms, result.is_ok(), duration);
        let mut result = result;
        match appender.commit_target(target, &self.batch) {
            Ok(()) => {}
            Err(refused @ AppendError::SeriesLimit { .. }) if result.is_ok() => {
                // Nothing was stored. The series of the last good scrape
                // (written again, or gone) and this scrape's new ones are
                // forgotten and marked stale (the store ignores markers for
                // series it never held).
                stale.extend(self.tracker.finish_failure());
                self.batch.clear();
                self.counts.added = 0;
                self.push_stale_and_report(&stale, t_ms, false, duration);
                if let Err(e) = appender.commit_target(target, &self.batch) {
                    tracing::warn!(error = %e, "cannot store the staleness of a target refused for the series limit");
                }
                result = Err(ScrapeError::Store(refused));
            }
            Err(e) => {
                if result.is_ok() {
                    result = Err(ScrapeError::Store(e));
                }
            }
        }
        // The batch is refilled by every scrape; keep room for about this
        // many samples instead of what doubling left over.
        let room = self.batch.len() + self.batch.len() / 16 + 16;
        if self.batch.capacity() > room + room / 8 {
            self.batch.shrink_to(room);
        }
        (result, self.counts, stale.len())
    }

    fn push_stale_and_report(&mut self, stale: &[Labels], t_ms: i64, up: bool, duration: Duration) {
        self.batch.extend(stale.iter().map(|labels| Sample {
            labels: labels.clone(),
            t_ms,
            value: STALE_NAN,
        }));
        let report = [
            if up { 1.0 } else { 0.0 },
            duration.as_secs_f64(),
            self.counts.scraped as f64,
            self.counts.kept as f64,
            self.counts.added as f64,
        ];
        for (labels, value) in self.report_series.iter().zip(report) {
            self.batch.push(Sample {
                labels: labels.clone(),
                t_ms,
                value,
            });
        }
    }
}

/// A parse error that is really a broken limit becomes a limit error.
fn parse_error(e: ParseError) -> ScrapeError {
    match e.limit {
        Some(limit) => ScrapeError::Limit {
            limit,
            detail: format!("line {}: {}", e.line, e.reason),
        },
        None => ScrapeError::Parse(e),
    }
}

impl Limits {
    /// Prometheus' label checks on a final label set (after relabelling):
    /// the number of labels with `__name__`, and every name's and value's
    /// length in bytes.
    fn check(&self, labels: &Labels) -> Result<(), ScrapeError> {
        let metric = || short(labels.metric_name().unwrap_or(""));
        if self.label > 0 && labels.len() > self.label {
            return Err(ScrapeError::Limit {
                limit: "label_limit",
                detail: format!(
                    "label_limit exceeded (metric: {}, number of labels: {}, limit: {}); raise label_limit or drop labels with metric_relabel_configs",
                    metric(),
                    labels.len(),
                    self.label
                ),
            });
        }
        for label in labels.iter() {
            if self.label_name_length > 0 && label.name.len() > self.label_name_length {
                return Err(ScrapeError::Limit {
                    limit: "label_name_length_limit",
                    detail: format!(
                        "label_name_length_limit exceeded (metric: {}, label name: {}, length: {}, limit: {}); raise label_name_length_limit or drop the label with metric_relabel_configs",
                        metric(),
                        short(label.name),
                        label.name.len(),
                        self.label_name_length
                    ),
                });
            }
            if self.label_value_length > 0 && label.value.len() > self.label_value_length {
                return Err(ScrapeError::Limit {
                    limit: "label_value_length_limit",
                    detail: format!(
                        "label_value_length_limit exceeded (metric: {}, label name: {}, length: {}, limit: {}); raise label_value_length_limit or drop the label with metric_relabel_configs",
                        metric(),
                        short(label.name),
                        label.value.len(),
                        self.label_value_length
                    ),
                });
            }
        }
        Ok(())
    }
}

/// At most 50 characters of `text`, quoted (as Prometheus' `%.50s`).
fn short(text: &str) -> String {
    match text.char_indices().nth(50) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// Attaches the target's labels to an exposed series. With `honor_labels`
/// the exposed values win; without it a clashing exposed label is kept as
/// `exported_<name>` (prefixed again while that name is taken too).
fn merge_target_labels(mut exposed: Labels, target: &Labels, honor_labels: bool) -> Labels {
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
}
