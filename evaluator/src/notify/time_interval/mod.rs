//! Time intervals, as Alertmanager's `time_intervals` (and the older
//! `mute_time_intervals`) define them: a named list of intervals, each
//! matching when every field it sets matches the time in its `location`
//! (an IANA zone, DST included; default UTC): `times` (`HH:MM` to `HH:MM`,
//! the end excluded, `24:00` allowed), `weekdays` (`monday:friday`),
//! `days_of_month` (`1:5`, `-3:-1` counted from the month's end),
//! `months` (`january:march` or `1:3`) and `years` (`2025:2026`). A route
//! names them in `mute_time_intervals` (no notifications while one
//! matches) and `active_time_intervals` (notifications only while one
//! matches); as in Alertmanager, a route's lists are its own, not inherited
//! from its parent, and the root route may have none.

use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike, Utc};
use serde_yaml::Value;

use crate::template::tzif::{self, Zone};

/// One problem of a time interval definition: the field path below the
/// interval, and what is wrong.
pub type FieldProblem = (String, String);

/// A named list of intervals (`time_intervals[].name`).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTimeInterval {
    pub name: String,
    pub intervals: Vec<TimeInterval>,
}

impl NamedTimeInterval {
    /// Whether any of its intervals contains `t`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.intervals.iter().any(|i| i.contains(t))
    }
}

/// One interval; an unset field matches every time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeInterval {
    /// Minutes of the day, `[start, end)`.
    pub times: Option<Vec<(u32, u32)>>,
    /// Sunday is 0, as Go's `time.Weekday`.
    pub weekdays: Option<Vec<(u32, u32)>>,
    pub days_of_month: Option<Vec<(i32, i32)>>,
    /// Numbers out of 1..=12 are accepted (as Alertmanager) and match
    /// nothing.
    pub months: Option<Vec<(i32, i32)>>,
    pub years: Option<Vec<(i32, i32)>>,
    pub location: Option<Location>,
}

/// An IANA time zone, by name.
#[derive(Debug, Clone)]
pub struct Location {
    pub name: String,
    zone: Option<Arc<Zone>>,
}

impl PartialEq for Location {
    fn eq(&self, other: &Location) -> bool {
        self.name == other.name
    }
}

impl Location {
    fn offset_at(&self, t: DateTime<Utc>) -> FixedOffset {
        let seconds = match &self.zone {
            Some(zone) => zone.at(t.timestamp()).0,
            // `Local`: the process's own zone.
            None => chrono::Local
                .offset_from_utc_datetime(&t.naive_utc())
                .local_minus_utc(),
        };
        FixedOffset::east_opt(seconds)
            .unwrap_or_else(|| FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()))
    }
}

impl TimeInterval {
    /// Whether `t` (seen in the interval's location) is inside it.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let local = match &self.location {
            Some(location) => t.with_timezone(&location.offset_at(t)),
            None => t.fixed_offset(),
        };
        let in_ranges = |ranges: &Option<Vec<(i32, i32)>>, value: i32| {
            ranges
                .as_ref()
                .is_none_or(|r| r.iter().any(|&(b, e)| b <= value && value <= e))
        };
        let minute = local.hour() * 60 + local.minute();
        let times_ok = self.times.as_ref().is_none_or(|r| {
            r.iter()
                .any(|&(start, end)| start <= minute && minute < end)
        });
        let days_ok = self.days_of_month.as_ref().is_none_or(|ranges| {
            let days = days_in_month(local.year(), local.month()) as i32;
            let day = local.day() as i32;
            ranges.iter().any(|&(b, e)| {
                let begin = if b < 0 { days + b + 1 } else { b };
                let end = if e < 0 { days + e + 1 } else { e };
                // As Alertmanager: a start after the month's end never
                // matches; the bounds are clamped to the month.
                begin <= days && day >= begin.clamp(-days, days) && day <= end.clamp(-days, days)
            })
        });
        let weekday = local.weekday().num_days_from_sunday();
        let weekday_ok = self
            .weekdays
            .as_ref()
            .is_none_or(|r| r.iter().any(|&(b, e)| b <= weekday && weekday <= e));
        times_ok
            && days_ok
            && weekday_ok
            && in_ranges(&self.months, local.month() as i32)
            && in_ranges(&self.years, local.year())
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const KEYS: [&str; 6] = [
    "times",
    "weekdays",
    "days_of_month",
    "months",
    "years",
    "location",
];

/// Parses one interval (a mapping); every problem with its field path
/// below the interval.
pub fn parse_interval(value: &Value) -> Result<TimeInterval, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut interval = TimeInterval::default();
    let Some(map) = value.as_mapping() else {
        if !value.is_null() {
            problems.push((
                String::new(),
                "expected a mapping of times, weekdays, days_of_month, months, years, location"
                    .into(),
            ));
        }
        return if problems.is_empty() {
            Ok(interval)
        } else {
            Err(problems)
        };
    };
    for (key, item) in map {
        let key = key.as_str().unwrap_or_default();
        match key {
            "times" => interval.times = Some(list(item, key, &mut problems, parse_times)),
            "weekdays" => {
                interval.weekdays =
                    Some(list(item, key, &mut problems, |s| range(s, weekday, "day")))
            }
            "days_of_month" => {
                interval.days_of_month = Some(list(item, key, &mut problems, parse_days))
            }
            "months" => {
                interval.months = Some(list(item, key, &mut problems, |s| range(s, month, "month")))
            }
            "years" => {
                interval.years = Some(list(item, key, &mut problems, |s| {
                    range(
                        s,
                        |p| {
                            p.trim()
                                .parse::<i32>()
                                .map_err(|e| format!("{p:?} is not a valid year: {e}"))
                        },
                        "year",
                    )
                }))
            }
            "location" => match item.as_str() {
                Some("UTC") | Some("") => {}
                Some("Local") => {
                    interval.location = Some(Location {
                        name: "Local".into(),
                        zone: None,
                    })
                }
                Some(name) => match tzif::load(name) {
                    Ok(zone) => {
                        interval.location = Some(Location {
                            name: name.into(),
                            zone: Some(Arc::new(zone)),
                        })
                    }
                    Err(e) => problems.push((
                        key.into(),
                        format!("{e}; use an IANA zone name such as Europe/Berlin"),
                    )),
                },
                None => problems.push((
                    key.into(),
                    "expected an IANA zone name such as Europe/Berlin".into(),
                )),
            },
            other => problems.push((
                other.to_string(),
                format!(
                    "unknown field `{other}`; expected one of: {}",
                    KEYS.join(", ")
                ),
            )),
        }
    }
    if problems.is_empty() {
        Ok(interval)
    } else {
        Err(problems)
    }
}

fn list<T>(
    value: &Value,
    key: &str,
    problems: &mut Vec<FieldProblem>,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> Vec<T> {
    let Some(items) = value.as_sequence() else {
        if !value.is_null() {
            problems.push((key.to_string(), "expected a list".into()));
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse(item) {
            Ok(v) => out.push(v),
            Err(e) => problems.push((format!("{key}[{i}]"), e)),
        }
    }
    out
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `start` or `start:end`, each parsed by `one`; the start may not be after
/// the end.
fn range<T: PartialOrd + Copy>(
    value: &Value,
    one: impl Fn(&str) -> Result<T, String>,
    what: &str,
) -> Result<(T, T), String> {
    let text = scalar(value).ok_or("expected a string such as `start:end`")?;
    let (b, e) = match text.split_once(':') {
        Some((b, e)) => (one(b)?, one(e)?),
        None => {
            let v = one(&text)?;
            (v, v)
        }
    };
    if b > e {
        return Err(format!(
            "start {what} cannot be after end {what} in {text:?}"
        ));
    }
    Ok((b, e))
}

/// A weekday by name, in any case; Sunday is 0.
fn weekday(text: &str) -> Result<u32, String> {
    let lower = text.trim().to_lowercase();
    WEEKDAYS
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as u32)
        .ok_or_else(|| format!("{text:?} is not a valid weekday"))
}

/// A month by name (any case) or number; as Alertmanager, a number is not
/// checked against 1..=12.
fn month(text: &str) -> Result<i32, String> {
    let lower = text.trim().to_lowercase();
    if let Some(i) = MONTHS.iter().position(|n| *n == lower) {
        return Ok(i as i32 + 1);
    }
    lower
        .parse::<i32>()
        .map_err(|_| format!("{text:?} is not a valid month"))
}

fn parse_days(value: &Value) -> Result<(i32, i32), String> {
    let text = scalar(value).ok_or("expected a string such as `1:5` or `-3:-1`")?;
    let day = |p: &str| -> Result<i32, String> {
        let d: i32 = p
            .trim()
            .parse()
            .map_err(|_| format!("{p:?} is not a valid day of the month"))?;
        if d == 0 || d.abs() > 31 {
            return Err(format!("{d} is not a valid day of the month: out of range (1 to 31, or -31 to -1 from the end)"));
        }
        Ok(d)
    };
    let (b, e) = match text.split_once(':') {
        Some((b, e)) => (day(b)?, day(e)?),
        None => {
            let d = day(&text)?;
            (d, d)
        }
    };
    // Alertmanager orders only bounds of the same sign.
    if b.signum() == e.signum() && b > e {
        return Err(format!("start day cannot be after end day in {text:?}"));
    }
    Ok((b, e))
}

fn parse_times(value: &Value) -> Result<(u32, u32), String> {
    let map = value
        .as_mapping()
        .ok_or("expected {start_time: 'HH:MM', end_time: 'HH:MM'}")?;
    let get = |k: &str| {
        map.get(k)
            .and_then(Value::as_str)
            .ok_or(format!("missing {k} ('HH:MM')"))
    };
    if let Some(other) = map
        .keys()
        .filter_map(Value::as_str)
        .find(|k| *k != "start_time" && *k != "end_time")
    {
        return Err(format!(
            "unknown field `{other}`; expected start_time and end_time"
        ));
    }
    let minute = |text: &str| -> Result<u32, String> {
        let bad = || format!("{text:?} is not a valid time: use HH:MM from 00:00 to 24:00");
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h.to_string().len() > 2
            || m > 59
            || h > 24
            || (h == 24 && m > 0)
            || m.to_string().len() > 2
        {
            return Err(bad());
        }
        Ok(h * 60 + m)
    };
    let (start, end) = (minute(get("start_time")?)?, minute(get("end_time")?)?);
    if start >= end {
        return Err("start_time must be before end_time".into());
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests;
