//! Durations in Prometheus notation (`1d2h30m`, `500ms`, `15s`), so that
//! every Vigil config reads like the Prometheus configs its users already
//! write.
//!
//! The grammar is Prometheus' own: one or more `<integer><unit>` terms with
//! units `y`, `w`, `d`, `h`, `m`, `s`, `ms`, each unit at most once and in
//! that order (largest first); a bare `0` means zero. A year is 365 days.
//! Nothing else is accepted: no spaces, signs, fractions or bare numbers.

use std::fmt;
use std::time::Duration;

/// Why a duration string was rejected. The message quotes the input, says
/// what is wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration; write a number with a unit, e.g. 30s")]
    Empty,
    /// Not a sequence of `<integer><unit>` terms (a bare number, a
    /// fraction, a sign, a space).
    #[error("invalid duration {0:?}: {reason}", reason = self.reason())]
    Malformed(String),
    /// A term has a unit Prometheus does not know.
    #[error("invalid duration {input:?}: {reason}", reason = self.reason())]
    UnknownUnit { input: String, unit: String },
    /// A unit is repeated or comes after a smaller one (`30m1h`).
    #[error("invalid duration {input:?}: {reason}", reason = self.reason())]
    UnitOrder { input: String, unit: String },
    /// The total does not fit in 64-bit milliseconds.
    #[error("invalid duration {0:?}: {reason}", reason = self.reason())]
    Overflow(String),
}

impl DurationError {
    /// What is wrong, without the input: for callers that phrase the
    /// message around the input themselves.
    pub fn reason(&self) -> String {
        match self {
            DurationError::Empty => "empty; write a number with a unit, e.g. 30s".to_owned(),
            DurationError::Malformed(_) => "expected <number><unit> terms such as 30s, 5m or 1h30m (units: y, w, d, h, m, s, ms)".to_owned(),
            DurationError::UnknownUnit { unit, .. } => format!("unknown unit {unit:?} (units: y, w, d, h, m, s, ms)"),
            DurationError::UnitOrder { unit, .. } => format!("unit {unit:?} is repeated or out of order; write units largest first, each once (e.g. 1h30m)"),
            DurationError::Overflow(_) => "too long a duration".to_owned(),
        }
    }

    /// The rejected input.
    pub fn input(&self) -> &str {
        match self {
            DurationError::Empty => "",
            DurationError::Malformed(input) | DurationError::Overflow(input) => input,
            DurationError::UnknownUnit { input, .. } | DurationError::UnitOrder { input, .. } => {
                input
            }
        }
    }
}

/// Units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration such as `1d2h30m` or `500ms`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = input;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the next unit allowed; enforces "largest first, once".
    let mut next_allowed = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Malformed(input.to_owned()));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        if unit_len == 0 {
            return Err(DurationError::Malformed(input.to_owned()));
        }
        let (unit, after) = after.split_at(unit_len);
        let Some(position) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(DurationError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
            });
        };
        if position < next_allowed {
            return Err(DurationError::UnitOrder {
                input: input.to_owned(),
                unit: unit.to_owned(),
            });
        }
        next_allowed = position + 1;
        let overflow = || DurationError::Overflow(input.to_owned());
        let value: u64 = number.parse().map_err(|_| overflow())?;
        let term = value.checked_mul(UNITS[position].1).ok_or_else(overflow)?;
        total_ms = total_ms.checked_add(term).ok_or_else(overflow)?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration back into Prometheus notation (`1h30m`, `500ms`), for
/// messages that quote a configured value.
pub fn format_duration(duration: Duration) -> String {
    struct Prom(u128);
    impl fmt::Display for Prom {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut ms = self.0;
            if ms == 0 {
                return f.write_str("0s");
            }
            for (name, len) in UNITS {
                let len = u128::from(len);
                if ms >= len {
                    write!(f, "{}{}", ms / len, name)?;
                    ms %= len;
                }
            }
            Ok(())
        }
    }
    Prom(duration.as_millis()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_terms() {
        let cases = [
            ("15s", 15_000),
            ("500ms", 500),
            ("1d2h30m", (24 * 3600 + 2 * 3600 + 30 * 60) * 1000),
            ("1w", 7 * 24 * 3600 * 1000),
            ("1y", 365 * 24 * 3600 * 1000),
            ("1m30s250ms", 90_250),
            ("0", 0),
        ];
        for (input, ms) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_millis(ms)),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_malformed_durations_with_a_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("30"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("1.5s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration(" 5s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("5sec"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("30m1h"),
            Err(DurationError::UnitOrder { .. })
        ));
        assert!(matches!(
            parse_duration("1s1s"),
            Err(DurationError::UnitOrder { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999y"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn error_message_names_the_units() {
        let message = parse_duration("5sec").map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err(
                "invalid duration \"5sec\": unknown unit \"sec\" (units: y, w, d, h, m, s, ms)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn formats_back_into_prometheus_notation() {
        assert_eq!(
            format_duration(Duration::from_millis(5_400_500)),
            "1h30m500ms"
        );
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(
            format_duration(parse_duration("1d2h").unwrap_or_default()),
            "1d2h"
        );
    }
}
