//! The expanding series notation shared by promqltest `load`/`eval` blocks
//! and `promtool test rules` `input_series`: `1+2x3`, `_`, `_x2`, `stale`,
//! `-2-1x5`, `NaN`, `Inf`, and the series descriptor `metric{label="v"}`.

use crate::labels::{Labels, METRIC_NAME};

/// One position of an expanded series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeriesValue {
    /// No sample at this position (`_`).
    Omitted,
    /// The staleness marker (`stale`).
    Stale,
    Value(f64),
}

/// Why a series line could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NotationError {
    #[error("invalid series value {token:?}: expected a number, `_`, `stale`, `a+bxn`, `a-bxn` or `axn`")]
    Value { token: String },
    #[error("invalid series descriptor {text:?}: {reason}; write it as metric{{label=\"value\"}}")]
    Descriptor { text: String, reason: String },
    #[error("native histogram values ({{{{...}}}}) are not supported")]
    NativeHistogram,
}

fn parse_number(s: &str) -> Option<f64> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        other => {
            if other.is_empty() || !other.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
                return None;
            } else {
                other.parse::<f64>().ok()?
            }
        }
    };
    Some(sign * v)
}

/// Splits `a+b` / `a-b` at the operator that is not part of an exponent or sign.
fn split_step(s: &str) -> Option<(f64, f64)> {
    let bytes = s.as_bytes();
    for i in 1..bytes.len() {
        let c = bytes[i];
        if (c == b'+' || c == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
            let start = parse_number(&s[..i])?;
            let step = parse_number(&s[i + 1..])?;
            return Some((start, if c == b'-' { -step } else { step }));
        }
    }
    None
}

/// Expands one whitespace-separated token.
fn expand_token(token: &str, out: &mut Vec<SeriesValue>) -> Result<(), NotationError> {
    let err = || NotationError::Value {
        token: token.to_string(),
    };
    if token == "_" {
        out.push(SeriesValue::Omitted);
        return Ok(());
    }
    if token == "stale" {
        out.push(SeriesValue::Stale);
        return Ok(());
    }
    if let Some(times) = token.strip_prefix("_x") {
        let n: usize = times.parse().map_err(|_| err())?;
        out.extend(std::iter::repeat_n(SeriesValue::Omitted, n));
        return Ok(());
    }
    if let Some(v) = parse_number(token) {
        out.push(SeriesValue::Value(v));
        return Ok(());
    }
    let (head, times) = token.rsplit_once('x').ok_or_else(err)?;
    let n: usize = times.parse().map_err(|_| err())?;
    if head == "stale" {
        out.extend(std::iter::repeat_n(SeriesValue::Stale, n + 1));
        return Ok(());
    }
    let (start, step) = match parse_number(head) {
        Some(v) => (v, 0.0),
        None => split_step(head).ok_or_else(err)?,
    };
    for i in 0..=n {
        out.push(SeriesValue::Value(start + step * i as f64));
    }
    Ok(())
}

/// Expands a whole value list such as `1+1x3 _ stale 5`.
pub fn expand_values(text: &str) -> Result<Vec<SeriesValue>, NotationError> {
    if text.contains("{{") {
        return Err(NotationError::NativeHistogram);
    }
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        expand_token(token, &mut out)?;
    }
    Ok(out)
}

/// Splits a line into its series descriptor and the rest (the values).
pub fn split_descriptor(line: &str) -> (&str, &str) {
    let line = line.trim();
    let mut in_quote: Option<char> = None;
    let mut escaped = false;
    let mut depth = 0;
    for (i, c) in line.char_indices() {
        if let Some(q) = in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                in_quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_quote = Some(c),
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&line[..=i], line[i + 1..].trim());
                }
            }
            c if c.is_whitespace() && depth == 0 => return (&line[..i], line[i..].trim()),
            _ => {}
        }
    }
    (line, "")
}

/// Parses `metric{label="value", ...}` (or `{...}`) into a label set.
pub fn parse_descriptor(text: &str) -> Result<Labels, NotationError> {
    let text = text.trim();
    let err = |reason: String| NotationError::Descriptor {
        text: text.to_string(),
        reason,
    };
    if text == "{}" {
        return Ok(Labels::default());
    }
    let expr = promql_parser::parser::parse(text).map_err(err)?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(err("not a series selector".to_string()));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(name) = vs.name {
        pairs.push((METRIC_NAME.to_string(), name));
    }
    for m in vs.matchers.matchers {
        if m.op != promql_parser::label::MatchOp::Equal {
            return Err(err(format!("label {} must use `=`", m.name)));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeriesValue::*;

    #[test]
    fn expanding_notation_counts_n_plus_one_values() {
        assert_eq!(
            expand_values("1+2x3").expect("valid"),
            [Value(1.0), Value(3.0), Value(5.0), Value(7.0)]
        );
        assert_eq!(
            expand_values("-2-1x2").expect("valid"),
            [Value(-2.0), Value(-3.0), Value(-4.0)]
        );
        assert_eq!(
            expand_values("5x2").expect("valid"),
            [Value(5.0), Value(5.0), Value(5.0)]
        );
    }

    #[test]
    fn omitted_and_stale_positions_are_kept() {
        assert_eq!(
            expand_values("1 _ stale _x2").expect("valid"),
            [Value(1.0), Omitted, Stale, Omitted, Omitted]
        );
    }

    #[test]
    fn exponents_are_not_mistaken_for_steps() {
        assert_eq!(expand_values("1e-3").expect("valid"), [Value(0.001)]);
        assert_eq!(
            expand_values("1e3+1e1x1").expect("valid"),
            [Value(1000.0), Value(1010.0)]
        );
    }

    #[test]
    fn garbage_value_is_an_error() {
        assert!(expand_values("abc").is_err());
    }

    #[test]
    fn descriptor_is_split_from_values_even_with_spaces_in_labels() {
        let (desc, rest) = split_descriptor(r#"m{a="x y}"} 1 2"#);
        assert_eq!(desc, r#"m{a="x y}"}"#);
        assert_eq!(rest, "1 2");
        let labels = parse_descriptor(desc).expect("valid");
        assert_eq!(labels.get("a"), Some("x y}"));
        assert_eq!(labels.metric_name(), Some("m"));
    }
}
