//! Prometheus' `humanize*` template functions, byte-for-byte: SI and binary
//! prefixes, durations split into days to seconds, percentages and UTC
//! timestamps, all with Go's `%.4g` formatting.

use super::gofmt;

const SI_UP: [&str; 8] = ["k", "M", "G", "T", "P", "E", "Z", "Y"];
const SI_DOWN: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];

fn g4(v: f64) -> String {
    gofmt::format_float(v, 'g', Some(4))
}

/// `humanize`: SI prefix (k, M, ... / m, u, ...), 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in SI_UP {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in SI_DOWN {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// `humanize1024`: binary prefix (ki, Mi, ...) for magnitudes above 1.
pub fn humanize_1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

/// `humanizeDuration`: seconds as `1d 2h 3m 4s`, or with SI prefix below 1s.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        // Go converts an out-of-range float to int64 as amd64 does:
        // the minimum int64 (Rust would saturate).
        let total = if v >= 9.223_372_036_854_776e18 {
            i64::MIN
        } else {
            v as i64
        };
        let (seconds, minutes, hours, days) = (
            total % 60,
            (total / 60) % 60,
            (total / 3600) % 24,
            total / 86400,
        );
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut prefix = "";
    for p in SI_DOWN {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// `humanizePercentage`: a ratio as a percentage.
pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", g4(v * 100.0))
}

/// Go's `time.Time.String()` of a UTC instant.
pub fn humanize_timestamp(v: f64) -> Result<String, String> {
    if v.is_nan() || v.is_infinite() {
        return Ok(g4(v));
    }
    // Prometheus goes through model.Time, i.e. whole milliseconds.
    let nanos_total = v * 1e9;
    if nanos_total > i64::MAX as f64 || nanos_total < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            gofmt::format_float_v(v)
        ));
    }
    let ms = (nanos_total as i64) / 1_000_000;
    let (secs, nanos) = (ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000);
    let Some(t) = chrono::DateTime::from_timestamp(secs, nanos as u32) else {
        return Err(format!("timestamp {v} is out of range"));
    };
    let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_matches_prometheus_formats() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(12.5), "12.5");
        assert_eq!(humanize(1000.0), "1k");
        assert_eq!(humanize(0.00123), "1.23m");
        assert_eq!(humanize(-2500.0), "-2.5k");
        assert_eq!(humanize(f64::INFINITY), "+Inf");
        assert_eq!(humanize(f64::NAN), "NaN");
    }

    #[test]
    fn humanize_1024_uses_binary_prefixes() {
        assert_eq!(humanize_1024(1048576.0), "1Mi");
        assert_eq!(humanize_1024(1536.0), "1.5ki");
        assert_eq!(humanize_1024(0.5), "0.5");
    }

    #[test]
    fn humanize_duration_splits_days_hours_minutes_seconds() {
        assert_eq!(humanize_duration(899.99), "14m 59s");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(3600.0), "1h 0m 0s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_duration(-65.0), "-1m 5s");
    }

    #[test]
    fn humanize_percentage_and_timestamp() {
        assert_eq!(humanize_percentage(0.1234567), "12.35%");
        assert_eq!(humanize_percentage(0.05), "5%");
        assert_eq!(
            humanize_timestamp(1435065584.128).as_deref(),
            Ok("2015-06-23 13:19:44.128 +0000 UTC")
        );
        assert_eq!(
            humanize_timestamp(0.0).as_deref(),
            Ok("1970-01-01 00:00:00 +0000 UTC")
        );
    }
}
