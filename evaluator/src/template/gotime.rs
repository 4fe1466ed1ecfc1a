//! Go's `time.Time` and `time.Duration` as templates see them: `String()`
//! (`2006-01-02 15:04:05.999999999 -0700 MST`), `Format` with Go's
//! reference-time layouts, `Duration.String()` (`1h2m3.5s`), and the time
//! zones of the system's zoneinfo database for `tz`.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

use super::value::Value;

/// A point in time in a zone: the instant, the zone's offset then and its
/// abbreviation (`UTC`, `CET`; empty for a bare offset).
#[derive(Debug, Clone, PartialEq)]
pub struct GoTime {
    pub instant: DateTime<Utc>,
    pub offset_secs: i32,
    pub zone: String,
}

impl GoTime {
    /// The instant in UTC.
    pub fn utc(instant: DateTime<Utc>) -> GoTime {
        GoTime {
            instant,
            offset_secs: 0,
            zone: "UTC".into(),
        }
    }

    /// Go's zero `time.Time` (`0001-01-01 00:00:00 +0000 UTC`).
    pub fn zero() -> GoTime {
        GoTime::utc(
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
    }

    pub fn is_zero(&self) -> bool {
        *self == GoTime::zero()
    }

    /// The wall-clock fields in the time's zone.
    fn local(&self) -> chrono::NaiveDateTime {
        self.instant.naive_utc() + Duration::seconds(i64::from(self.offset_secs))
    }

    /// Go's `Time.Format(layout)`.
    pub fn format(&self, layout: &str) -> String {
        let t = self.local();
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let Some((token, len)) = next_token(rest) else {
                let c = rest.chars().next().unwrap_or_default();
                out.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            };
            self.push_token(&mut out, &t, token, &rest[..len]);
            rest = &rest[len..];
        }
        out
    }

    fn push_token(&self, out: &mut String, t: &chrono::NaiveDateTime, token: Token, text: &str) {
        let hour12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        match token {
            Token::Year4 => out.push_str(&format!("{:04}", t.year())),
            Token::Year2 => out.push_str(&format!("{:02}", t.year().rem_euclid(100))),
            Token::MonthLong => out.push_str(MONTHS[t.month0() as usize]),
            Token::MonthShort => out.push_str(&MONTHS[t.month0() as usize][..3]),
            Token::Month2 => out.push_str(&format!("{:02}", t.month())),
            Token::Month1 => out.push_str(&t.month().to_string()),
            Token::DayLong => out.push_str(DAYS[t.weekday().num_days_from_sunday() as usize]),
            Token::DayShort => {
                out.push_str(&DAYS[t.weekday().num_days_from_sunday() as usize][..3])
            }
            Token::Day2 => out.push_str(&format!("{:02}", t.day())),
            Token::DaySpace => out.push_str(&format!("{:>2}", t.day())),
            Token::Day1 => out.push_str(&t.day().to_string()),
            Token::YearDay => out.push_str(&format!("{:03}", t.ordinal())),
            Token::Hour24 => out.push_str(&format!("{:02}", t.hour())),
            Token::Hour12 => out.push_str(&format!("{hour12:02}")),
            Token::Hour1 => out.push_str(&hour12.to_string()),
            Token::Minute2 => out.push_str(&format!("{:02}", t.minute())),
            Token::Minute1 => out.push_str(&t.minute().to_string()),
            Token::Second2 => out.push_str(&format!("{:02}", t.second())),
            Token::Second1 => out.push_str(&t.second().to_string()),
            Token::PmUpper => out.push_str(if t.hour() >= 12 { "PM" } else { "AM" }),
            Token::PmLower => out.push_str(if t.hour() >= 12 { "pm" } else { "am" }),
            Token::Zone => {
                if self.zone.is_empty() {
                    out.push_str(&offset(self.offset_secs, false, true));
                } else {
                    out.push_str(&self.zone);
                }
            }
            Token::Offset { z, colon, minutes } => {
                if z && self.offset_secs == 0 {
                    out.push('Z');
                } else {
                    out.push_str(&offset(self.offset_secs, colon, minutes));
                }
            }
            Token::Fraction { digits, trim } => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                let mut frac = nanos[..digits].to_string();
                if trim {
                    frac = frac.trim_end_matches('0').to_string();
                    if !frac.is_empty() {
                        out.push_str(&text[..1]);
                        out.push_str(&frac);
                    }
                } else {
                    out.push_str(&text[..1]);
                    out.push_str(&frac);
                }
            }
        }
    }
}

/// Go's `Time.String()`.
impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format("2006-01-02 15:04:05.999999999 -0700 MST"))
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

#[derive(Debug, Clone, Copy)]
enum Token {
    Year4,
    Year2,
    MonthLong,
    MonthShort,
    Month2,
    Month1,
    DayLong,
    DayShort,
    Day2,
    DaySpace,
    Day1,
    YearDay,
    Hour24,
    Hour12,
    Hour1,
    Minute2,
    Minute1,
    Second2,
    Second1,
    PmUpper,
    PmLower,
    Zone,
    Offset { z: bool, colon: bool, minutes: bool },
    Fraction { digits: usize, trim: bool },
}

/// The layout element at the start of `s`, and its length.
fn next_token(s: &str) -> Option<(Token, usize)> {
    const FIXED: &[(&str, Token)] = &[
        ("January", Token::MonthLong),
        ("Jan", Token::MonthShort),
        ("Monday", Token::DayLong),
        ("Mon", Token::DayShort),
        ("MST", Token::Zone),
        ("2006", Token::Year4),
        ("002", Token::YearDay),
        ("01", Token::Month2),
        ("02", Token::Day2),
        ("03", Token::Hour12),
        ("04", Token::Minute2),
        ("05", Token::Second2),
        ("06", Token::Year2),
        ("_2", Token::DaySpace),
        ("15", Token::Hour24),
        ("PM", Token::PmUpper),
        ("pm", Token::PmLower),
        (
            "Z07:00",
            Token::Offset {
                z: true,
                colon: true,
                minutes: true,
            },
        ),
        (
            "Z0700",
            Token::Offset {
                z: true,
                colon: false,
                minutes: true,
            },
        ),
        (
            "Z07",
            Token::Offset {
                z: true,
                colon: false,
                minutes: false,
            },
        ),
        (
            "-07:00",
            Token::Offset {
                z: false,
                colon: true,
                minutes: true,
            },
        ),
        (
            "-0700",
            Token::Offset {
                z: false,
                colon: false,
                minutes: true,
            },
        ),
        (
            "-07",
            Token::Offset {
                z: false,
                colon: false,
                minutes: false,
            },
        ),
        ("1", Token::Month1),
        ("2", Token::Day1),
        ("3", Token::Hour1),
        ("4", Token::Minute1),
        ("5", Token::Second1),
    ];
    // `.000`/`,999` fractions directly after a seconds element.
    if let Some(sep @ ('.' | ',')) = s.chars().next() {
        let rest = &s[1..];
        let digit = rest.chars().next();
        if let Some(d @ ('0' | '9')) = digit {
            let n = rest.chars().take_while(|c| *c == d).count();
            let after = rest[n..].chars().next();
            if !after.is_some_and(|c| c.is_ascii_digit()) && n <= 9 {
                let _ = sep;
                return Some((
                    Token::Fraction {
                        digits: n,
                        trim: d == '9',
                    },
                    n + 1,
                ));
            }
        }
    }
    FIXED
        .iter()
        .find(|(text, _)| s.starts_with(text))
        .map(|(text, token)| (*token, text.len()))
}

fn offset(secs: i32, colon: bool, minutes: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.abs() / 60;
    let (h, mm) = (m / 60, m % 60);
    match (minutes, colon) {
        (false, _) => format!("{sign}{h:02}"),
        (true, true) => format!("{sign}{h:02}:{mm:02}"),
        (true, false) => format!("{sign}{h:02}{mm:02}"),
    }
}

/// Go's `Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn duration_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if u < 1_000_000_000 {
        let (unit, div) = match u {
            0..=999 => ("ns", 1u64),
            1_000..=999_999 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", fraction(u, div));
    }
    let secs = u / 1_000_000_000;
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = fraction(u % 60_000_000_000, 1_000_000_000);
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h{m}m"));
    } else if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s);
    out.push('s');
    out
}

/// `v / div` with the fractional digits Go prints (trailing zeros cut).
fn fraction(v: u64, div: u64) -> String {
    let whole = v / div;
    let rem = v % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let frac = format!("{rem:0width$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// The methods of `time.Time` that templates use; `None` if there is no
/// such method.
pub fn time_method(t: &GoTime, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    let want = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    let result = match name {
        "Unix" => want(0).map(|()| Value::Int(t.instant.timestamp())),
        "UnixMilli" => want(0).map(|()| Value::Int(t.instant.timestamp_millis())),
        "IsZero" => want(0).map(|()| Value::Bool(t.is_zero())),
        "UTC" => want(0).map(|()| Value::Time(GoTime::utc(t.instant))),
        "String" => want(0).map(|()| Value::Str(t.to_string())),
        "Format" => want(1).and_then(|()| match &args[0] {
            Value::Str(layout) => Ok(Value::Str(t.format(layout))),
            other => Err(format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            )),
        }),
        _ => return None,
    };
    Some(result)
}

/// The time `t` in the zone `name` of the system's zoneinfo database
/// (`UTC`, `Local` is not offered: templates must not depend on the host).
pub fn in_zone(t: &GoTime, name: &str) -> Result<GoTime, String> {
    if name.is_empty() || name == "UTC" {
        return Ok(GoTime::utc(t.instant));
    }
    let zone = super::tzif::load(name)?;
    let (offset_secs, abbrev) = zone.at(t.instant.timestamp());
    Ok(GoTime {
        instant: t.instant,
        offset_secs,
        zone: abbrev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, nanos: u32) -> GoTime {
        GoTime::utc(Utc.timestamp_opt(secs, nanos).single().expect("valid time"))
    }

    #[test]
    fn strings_like_go() {
        assert_eq!(
            at(1_700_000_000, 0).to_string(),
            "2023-11-14 22:13:20 +0000 UTC"
        );
        assert_eq!(
            at(1_700_000_000, 120_000_000).to_string(),
            "2023-11-14 22:13:20.12 +0000 UTC"
        );
        assert_eq!(GoTime::zero().to_string(), "0001-01-01 00:00:00 +0000 UTC");
        let t = GoTime {
            offset_secs: 5 * 3600 + 1800,
            zone: String::new(),
            ..at(1_700_000_000, 0)
        };
        assert_eq!(t.to_string(), "2023-11-15 03:43:20 +0530 +0530");
    }

    #[test]
    fn layouts_like_go() {
        let t = at(1_700_000_000, 123_456_789);
        assert_eq!(
            t.format("2006-01-02T15:04:05Z07:00"),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            t.format("Mon Jan _2 3:4:5 PM 2006 .000 .999999999 -07:00 MST"),
            "Tue Nov 14 10:13:20 PM 2023 .123 .123456789 +00:00 UTC"
        );
        assert_eq!(
            t.format("Monday, January 2 06 002"),
            "Tuesday, November 14 23 318"
        );
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string(1_500_000), "1.5ms");
        assert_eq!(duration_string(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(duration_string(60_000_000_000), "1m0s");
        assert_eq!(duration_string(-2_000_000_000), "-2s");
        assert_eq!(duration_string(999), "999ns");
    }
}
