//! What a backtest found, per rule: episodes, time firing, near misses,
//! flaps and notifications per receiver; written as a table, as JSON, or
//! as the list of episodes.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use super::range::{human_duration, show, TimeRange};
use super::replay::{Episode, RuleReplay};
use crate::labels::Labels;
use crate::rules::text_map::TextMap;

/// One episode as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpisodeReport {
    /// The alert's labels (without `alertname`).
    pub labels: BTreeMap<String, String>,
    pub start: String,
    /// `None`: still firing at the end of the range.
    pub end: Option<String>,
    pub duration_seconds: f64,
    /// `start` in milliseconds since the epoch.
    pub start_ms: i64,
    /// `end` in milliseconds since the epoch.
    pub end_ms: Option<i64>,
    #[serde(skip)]
    pub label_set: Labels,
}

/// One alerting rule's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleReport {
    /// `ALERTNAME{static labels}`: what tells rules with the same name apart.
    pub rule: String,
    pub group: String,
    pub file: String,
    pub expr: String,
    pub evaluations: u64,
    pub episodes: usize,
    pub firing_seconds: f64,
    pub near_misses: u64,
    pub flaps: usize,
    /// Notifications per receiver.
    pub notifications: BTreeMap<String, u64>,
    pub notifications_total: u64,
    pub failed_evaluations: u64,
    pub first_error: Option<String>,
    pub episode_list: Vec<EpisodeReport>,
}

/// The key of a rule: its name and static labels.
pub fn rule_key(alertname: &str, labels: &TextMap) -> String {
    if labels.is_empty() {
        return alertname.to_string();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{alertname}{{{}}}", inner.join(", "))
}

/// Episodes that start within `window` after the previous episode of the
/// same alert ended.
pub fn count_flaps(episodes: &[Episode], window: Duration) -> usize {
    let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let mut last_end: HashMap<&Labels, Option<i64>> = HashMap::new();
    let mut flaps = 0;
    let mut sorted: Vec<&Episode> = episodes.iter().collect();
    sorted.sort_by_key(|e| e.start_ms);
    for e in sorted {
        if let Some(Some(end)) = last_end.get(&e.labels) {
            if e.start_ms - end <= window {
                flaps += 1;
            }
        }
        last_end.insert(&e.labels, e.end_ms);
    }
    flaps
}

impl RuleReport {
    /// The report of a finished replay.
    pub fn new(
        key: String,
        group: &str,
        file: &str,
        replay: &RuleReplay,
        notifications: BTreeMap<String, u64>,
        range: TimeRange,
        flap_window: Duration,
    ) -> RuleReport {
        let episode_list: Vec<EpisodeReport> = replay
            .episodes
            .iter()
            .map(|e| {
                let mut labels = e.labels.clone();
                labels.remove("alertname");
                let end = e.end_ms.unwrap_or(range.to_ms);
                EpisodeReport {
                    labels: labels
                        .iter()
                        .map(|l| (l.name.to_string(), l.value.to_string()))
                        .collect(),
                    start: show(e.start_ms),
                    end: e.end_ms.map(show),
                    duration_seconds: (end - e.start_ms) as f64 / 1000.0,
                    start_ms: e.start_ms,
                    end_ms: e.end_ms,
                    label_set: labels,
                }
            })
            .collect();
        RuleReport {
            rule: key,
            group: group.to_string(),
            file: file.to_string(),
            expr: replay.spec().expr.clone(),
            evaluations: replay.evaluations,
            episodes: episode_list.len(),
            firing_seconds: episode_list.iter().map(|e| e.duration_seconds).sum(),
            near_misses: replay.near_misses,
            flaps: count_flaps(&replay.episodes, flap_window),
            notifications_total: notifications.values().sum(),
            notifications,
            failed_evaluations: replay.failed_evaluations,
            first_error: replay.first_error.clone(),
            episode_list,
        }
    }

    /// `receiver=n, ...`, or `0`.
    pub fn notifications_text(&self) -> String {
        if self.notifications.is_empty() {
            return "0".into();
        }
        self.notifications
            .iter()
            .map(|(r, n)| format!("{r}={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Left-aligned columns separated by two spaces.
pub fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The default output: one line per rule, then the rules' errors.
pub fn table(reports: &[RuleReport]) -> String {
    let mut rows = vec![[
        "RULE",
        "EPISODES",
        "FIRING",
        "NEAR MISSES",
        "FLAPS",
        "NOTIFICATIONS",
    ]
    .map(String::from)
    .to_vec()];
    for r in reports {
        rows.push(vec![
            r.rule.clone(),
            r.episodes.to_string(),
            human_duration(Duration::from_secs_f64(r.firing_seconds)),
            r.near_misses.to_string(),
            r.flaps.to_string(),
            r.notifications_text(),
        ]);
    }
    let mut out = columns(&rows);
    for r in reports.iter().filter(|r| r.failed_evaluations > 0) {
        let _ = writeln!(
            out,
            "{}: {} of {} evaluations failed, first {}",
            r.rule,
            r.failed_evaluations,
            r.evaluations,
            r.first_error.as_deref().unwrap_or("")
        );
    }
    out
}

/// Every episode: rule, labels, start, end (or `firing at the end`),
/// duration.
pub fn episodes(reports: &[RuleReport]) -> String {
    let mut rows = vec![["RULE", "ALERT LABELS", "START", "END", "DURATION"]
        .map(String::from)
        .to_vec()];
    for r in reports {
        for e in &r.episode_list {
            rows.push(vec![
                r.rule.clone(),
                e.label_set.to_string(),
                e.start.clone(),
                e.end
                    .clone()
                    .unwrap_or_else(|| "(firing at the end)".into()),
                human_duration(Duration::from_secs_f64(e.duration_seconds)),
            ]);
        }
    }
    columns(&rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn episode(instance: &str, start_s: i64, end_s: Option<i64>) -> Episode {
        Episode {
            labels: Labels::from_pairs([("alertname", "A"), ("instance", instance)]),
            start_ms: start_s * 1000,
            end_ms: end_s.map(|e| e * 1000),
        }
    }

    #[test]
    fn a_flap_starts_soon_after_the_same_alert_ended() {
        let episodes = [
            episode("a", 0, Some(60)),
            episode("b", 100, Some(200)),
            episode("a", 120, Some(180)),
            episode("a", 1200, None),
        ];
        assert_eq!(count_flaps(&episodes, Duration::from_secs(60)), 1);
        assert_eq!(count_flaps(&episodes, Duration::from_secs(1020)), 2);
        assert_eq!(count_flaps(&episodes, Duration::from_secs(59)), 0);
    }

    #[test]
    fn rule_keys_show_static_labels() {
        let labels = TextMap::from([("severity".to_string(), "warning".to_string())]);
        assert_eq!(rule_key("High", &labels), "High{severity=\"warning\"}");
        assert_eq!(rule_key("High", &TextMap::new()), "High");
    }
}
