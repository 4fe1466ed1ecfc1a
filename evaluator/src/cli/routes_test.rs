//! `routes test`: prints the receivers an alert with the given labels is
//! routed to, comma-separated in routing order, exactly as
//! `amtool config routes test` does, so the two can be compared; then
//! whether each matched route's time intervals mute it.

use std::path::Path;

use crate::labels::Labels;
use crate::notify::config;
use crate::notify::matcher::{parse_matcher, MatchOp};
use crate::notify::route::{RouteOpts, RouteTree};

use chrono::{DateTime, Utc};

/// Prints the receivers the labels route to; `Ok(true)` means success.
/// Then, for each matched route with time intervals, one line saying
/// whether it is muted at `at` and by which intervals (amtool does not
/// evaluate time; its output is the first line alone).
///
/// Labels are written as amtool takes them: `name=value`, `name="value"`
/// (quotes allow spaces and escapes), later duplicates winning; an empty
/// value is the same as leaving the label out.
pub fn run(notify_config: &Path, labels: &[String], at: DateTime<Utc>) -> anyhow::Result<bool> {
    let labels = parse_labels(labels)?;
    let config = config::load_file(notify_config)?;
    for warning in &config.warnings {
        eprintln!("{warning}");
    }
    let tree = RouteTree::new(&config.route);
    println!("{}", tree.receivers(&labels).join(","));
    for node in tree.matching(&labels) {
        if let Some(line) = time_line(&node.opts, &node.path, at) {
            println!("{line}");
        }
    }
    Ok(true)
}

/// `receiver (route path): muted at <t> by a, b` or `... sends at <t>`,
/// with the route's intervals; `None` for a route without any.
pub fn time_line(opts: &RouteOpts, path: &str, at: DateTime<Utc>) -> Option<String> {
    let names = |list: &[std::sync::Arc<crate::notify::time_interval::NamedTimeInterval>]| {
        list.iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (mute, active) = (
        names(&opts.mute_time_intervals),
        names(&opts.active_time_intervals),
    );
    if mute.is_empty() && active.is_empty() {
        return None;
    }
    let muted_by = opts.muted_by(at);
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let state = if muted_by.is_empty() {
        format!("sends at {at}")
    } else {
        format!("muted at {at} by {}", muted_by.join(", "))
    };
    Some(format!(
        "{} ({path}): {state} (mute_time_intervals: [{mute}], active_time_intervals: [{active}])",
        opts.receiver
    ))
}

/// Parses `name=value` arguments into a label set.
pub fn parse_labels(args: &[String]) -> anyhow::Result<Labels> {
    let mut pairs = Vec::with_capacity(args.len());
    for arg in args {
        let matcher = parse_matcher(arg)
            .map_err(|err| anyhow::anyhow!("cannot parse label {arg:?}: {err}"))?;
        if matcher.op != MatchOp::Equal {
            anyhow::bail!("cannot parse label {arg:?}: labels must be given as name=value pairs");
        }
        pairs.push((matcher.name, matcher.value));
    }
    Ok(Labels::from_pairs(pairs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn later_duplicates_win_and_empty_values_unset() {
        let labels = parse_labels(&args(&["a=1", "a=2", "b=x", "b="])).unwrap();
        assert_eq!(labels, Labels::from_pairs([("a", "2")]));
    }

    #[test]
    fn quoted_values_keep_spaces_and_commas() {
        let labels = parse_labels(&args(&["a=\"x, y\""])).unwrap();
        assert_eq!(labels.get("a"), Some("x, y"));
    }

    #[test]
    fn non_equality_matchers_are_rejected() {
        assert!(parse_labels(&args(&["a!=1"])).is_err());
        assert!(parse_labels(&args(&["a=~1"])).is_err());
        assert!(parse_labels(&args(&["novalue"])).is_err());
    }
}
