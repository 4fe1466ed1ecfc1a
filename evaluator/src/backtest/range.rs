//! The time range of a backtest: `--from`/`--to` as RFC 3339, Unix seconds,
//! `now`, or a duration meaning "that long before now" (`7d`, `2h`), and
//! the limit on its length.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::notify::config::parse_duration;

/// The longest range a backtest accepts unless told otherwise.
pub const DEFAULT_MAX_RANGE: Duration = Duration::from_secs(31 * 24 * 3600);

/// A validated range, in milliseconds since the epoch (`from < to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl TimeRange {
    /// `from`..`to`, refused when empty, reversed or longer than `max`.
    pub fn new(from_ms: i64, to_ms: i64, max: Duration) -> Result<TimeRange, String> {
        if to_ms <= from_ms {
            return Err(format!(
                "--from ({}) must be before --to ({}); swap them or pick another range",
                show(from_ms),
                show(to_ms)
            ));
        }
        let length = Duration::from_millis((to_ms - from_ms) as u64);
        if length > max {
            return Err(format!(
                "the range {} – {} is {}, over the limit of {}; shorten it or raise --max-range",
                show(from_ms),
                show(to_ms),
                human_duration(length),
                human_duration(max)
            ));
        }
        Ok(TimeRange { from_ms, to_ms })
    }

    pub fn length(&self) -> Duration {
        Duration::from_millis((self.to_ms - self.from_ms) as u64)
    }
}

/// Parses a `--from`/`--to` value relative to `now`.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<i64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() {
            return Ok((seconds * 1000.0).round() as i64);
        }
    }
    if let Ok(ago) = parse_duration(text) {
        let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(now.timestamp_millis().saturating_sub(ago));
    }
    Err(format!(
        "{text:?} is not a time: write RFC 3339 (2026-12-01T00:00:00Z), Unix seconds (1764547200), `now`, or how long ago (7d, 2h30m)"
    ))
}

/// RFC 3339 in UTC, to the second (milliseconds when there are any).
pub fn show(ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    let format = if ms % 1000 == 0 {
        chrono::SecondsFormat::Secs
    } else {
        chrono::SecondsFormat::Millis
    };
    t.to_rfc3339_opts(format, true)
}

/// `3d4h`, `5m30s`, `0s`: the largest units, no zero parts.
pub fn human_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs == 0 {
        return if millis == 0 {
            "0s".into()
        } else {
            format!("{millis}ms")
        };
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap_or_else(|e| panic!("{e}"))
            .to_utc()
    }

    #[test]
    fn times_are_rfc3339_unix_now_or_ago() {
        let n = now().timestamp_millis();
        assert_eq!(parse_time("now", now()), Ok(n));
        assert_eq!(parse_time("7d", now()), Ok(n - 7 * 86_400_000));
        assert_eq!(parse_time("2h30m", now()), Ok(n - 9_000_000));
        assert_eq!(parse_time("1764547200", now()), Ok(1_764_547_200_000));
        assert_eq!(
            parse_time("2026-12-04T11:00:00+01:00", now()),
            Ok(n - 2 * 3_600_000)
        );
        let err = parse_time("yesterday", now()).unwrap_err();
        assert!(err.contains("\"yesterday\" is not a time"), "{err}");
    }

    #[test]
    fn ranges_must_be_forward_and_within_the_limit() {
        assert!(TimeRange::new(0, 1000, DEFAULT_MAX_RANGE).is_ok());
        let err = TimeRange::new(1000, 0, DEFAULT_MAX_RANGE).unwrap_err();
        assert!(err.contains("must be before --to"), "{err}");
        let err = TimeRange::new(0, 32 * 86_400_000, DEFAULT_MAX_RANGE).unwrap_err();
        assert!(
            err.contains("is 32d, over the limit of 31d") && err.contains("--max-range"),
            "{err}"
        );
    }

    #[test]
    fn durations_read_like_prometheus_ones() {
        assert_eq!(human_duration(Duration::from_secs(93_784)), "1d2h3m4s");
        assert_eq!(human_duration(Duration::from_secs(300)), "5m");
        assert_eq!(human_duration(Duration::ZERO), "0s");
    }
}
