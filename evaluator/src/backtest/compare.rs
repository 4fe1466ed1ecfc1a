//! Compares a backtest of changed rules with one of the baseline rules
//! (`--baseline`, `--baseline-git`): per rule, notifications and episodes
//! before → after, and which episodes the change no longer detects or
//! newly detects (an episode is matched by an overlapping episode of the
//! same alert on the other side).

use std::fmt::Write;

use serde::Serialize;

use super::range::show;
use super::report::{EpisodeReport, RuleReport};

/// The difference of one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleDiff {
    pub rule: String,
    /// `None`: the rule is new (not in the baseline) / removed (not in the
    /// changed files).
    pub baseline: Option<Summary>,
    pub changed: Option<Summary>,
    /// Baseline episodes no changed episode of the same alert overlaps.
    pub no_longer_detected: Vec<EpisodeReport>,
    /// Changed episodes no baseline episode of the same alert overlaps.
    pub newly_detected: Vec<EpisodeReport>,
}

/// The totals compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub notifications: u64,
    pub episodes: usize,
    pub firing_seconds: f64,
    pub near_misses: u64,
    pub flaps: usize,
}

fn summary(r: &RuleReport) -> Summary {
    Summary {
        notifications: r.notifications_total,
        episodes: r.episodes,
        firing_seconds: r.firing_seconds,
        near_misses: r.near_misses,
        flaps: r.flaps,
    }
}

fn overlaps(a: &EpisodeReport, b: &EpisodeReport) -> bool {
    let end = |e: &EpisodeReport| e.end_ms.unwrap_or(i64::MAX);
    a.label_set == b.label_set && a.start_ms < end(b) && b.start_ms < end(a)
}

fn unmatched(of: &RuleReport, against: Option<&RuleReport>) -> Vec<EpisodeReport> {
    of.episode_list
        .iter()
        .filter(|e| !against.is_some_and(|other| other.episode_list.iter().any(|o| overlaps(e, o))))
        .cloned()
        .collect()
}

/// The differences, in the changed files' rule order, then rules only the
/// baseline has.
pub fn compare(baseline: &[RuleReport], changed: &[RuleReport]) -> Vec<RuleDiff> {
    let mut diffs = Vec::new();
    for new in changed {
        let old = baseline.iter().find(|b| b.rule == new.rule);
        diffs.push(RuleDiff {
            rule: new.rule.clone(),
            baseline: old.map(summary),
            changed: Some(summary(new)),
            no_longer_detected: old.map(|o| unmatched(o, Some(new))).unwrap_or_default(),
            newly_detected: unmatched(new, old),
        });
    }
    for old in baseline {
        if changed.iter().any(|c| c.rule == old.rule) {
            continue;
        }
        diffs.push(RuleDiff {
            rule: old.rule.clone(),
            baseline: Some(summary(old)),
            changed: None,
            no_longer_detected: unmatched(old, None),
            newly_detected: Vec::new(),
        });
    }
    diffs
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn episode_list(episodes: &[EpisodeReport]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = episodes
        .iter()
        .take(SHOWN)
        .map(|e| {
            let end = e.end_ms.map_or_else(|| "end".to_string(), show);
            if e.labels.is_empty() {
                format!("{}–{end}", show(e.start_ms))
            } else {
                format!("{} {}–{end}", e.label_set, show(e.start_ms))
            }
        })
        .collect();
    if episodes.len() > SHOWN {
        parts.push(format!("and {} more", episodes.len() - SHOWN));
    }
    parts.join(", ")
}

/// One line per rule: `RULE: 41 → 6 notifications, 5 → 3 episodes, 2
/// episodes no longer detected: ...`, or `RULE: unchanged (...)`.
pub fn text(diffs: &[RuleDiff]) -> String {
    let mut out = String::new();
    for d in diffs {
        let line = match (&d.baseline, &d.changed) {
            (None, Some(c)) => format!(
                "{}: new rule, {} notifications, {}",
                d.rule,
                c.notifications,
                plural(c.episodes, "episode")
            ),
            (Some(b), None) => format!(
                "{}: removed, had {} notifications, {}",
                d.rule,
                b.notifications,
                plural(b.episodes, "episode")
            ),
            (Some(b), Some(c)) => {
                let mut parts = Vec::new();
                if b.notifications != c.notifications {
                    parts.push(format!(
                        "{} → {} notifications",
                        b.notifications, c.notifications
                    ));
                }
                if b.episodes != c.episodes {
                    parts.push(format!("{} → {} episodes", b.episodes, c.episodes));
                }
                if b.near_misses != c.near_misses {
                    parts.push(format!("{} → {} near misses", b.near_misses, c.near_misses));
                }
                if b.flaps != c.flaps {
                    parts.push(format!("{} → {} flaps", b.flaps, c.flaps));
                }
                if parts.is_empty()
                    && d.no_longer_detected.is_empty()
                    && d.newly_detected.is_empty()
                {
                    format!(
                        "{}: unchanged ({} notifications, {})",
                        d.rule,
                        c.notifications,
                        plural(c.episodes, "episode")
                    )
                } else {
                    format!("{}: {}", d.rule, parts.join(", "))
                }
            }
            (None, None) => continue,
        };
        let mut line = line;
        if !d.no_longer_detected.is_empty() {
            let _ = write!(
                line,
                "; {} no longer detected: {}",
                plural(d.no_longer_detected.len(), "episode"),
                episode_list(&d.no_longer_detected)
            );
        }
        if d.changed.is_some() && d.baseline.is_some() && !d.newly_detected.is_empty() {
            let _ = write!(
                line,
                "; {} newly detected: {}",
                plural(d.newly_detected.len(), "episode"),
                episode_list(&d.newly_detected)
            );
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}
