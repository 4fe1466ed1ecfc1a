//! The lexical pieces of the exposition parser: label blocks, quoted and
//! escaped strings, sample values, timestamps, names and the short excerpts
//! error messages quote. Each works on one line's bytes and never panics.

use std::borrow::Cow;
use std::fmt;

use super::ParsedLabel;

/// Parses `name="value", ...}` starting just after `{`; returns the index
/// just after the closing `}`. With `limit` > 0, stops with an error as soon
/// as `out` holds more than `limit` labels.
pub(super) fn parse_label_block<'a>(
    line: &'a str,
    mut i: usize,
    out: &mut Vec<ParsedLabel<'a>>,
    limit: usize,
) -> Result<usize, String> {
    let bytes = line.as_bytes();
    loop {
        i = skip_ws(bytes, i);
        match bytes.get(i) {
            None => return Err("unterminated label set: missing \"}\"".into()),
            Some(b'}') => return Ok(i + 1),
            Some(_) => {}
        }
        let name_end = scan_label_name(bytes, i);
        if name_end == i {
            return Err(format!(
                "invalid label name at {}: must match [a-zA-Z_][a-zA-Z0-9_]*",
                quote_snippet(&line[i..])
            ));
        }
        let name = &line[i..name_end];
        i = skip_ws(bytes, name_end);
        if bytes.get(i) != Some(&b'=') {
            return Err(format!(
                "expected \"=\" after label name {}",
                quote_snippet(name)
            ));
        }
        i = skip_ws(bytes, i + 1);
        if bytes.get(i) != Some(&b'"') {
            return Err(format!(
                "expected a quoted value for label {}",
                quote_snippet(name)
            ));
        }
        let (value, end) = parse_quoted(line, i + 1)
            .ok_or_else(|| format!("unterminated value for label {}", quote_snippet(name)))?;
        out.push(ParsedLabel { name, value });
        if limit > 0 && out.len() > limit {
            return Err(format!(
                "more than {limit} labels on one sample (label_limit); raise label_limit or expose fewer labels"
            ));
        }
        i = skip_ws(bytes, end);
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(i + 1),
            None => return Err("unterminated label set: missing \"}\"".into()),
            Some(_) => {
                return Err(format!(
                    "expected \",\" or \"}}\" after the value of label {}, found {}",
                    quote_snippet(name),
                    quote_snippet(&line[i..])
                ))
            }
        }
    }
}

/// Reads a quoted string starting after the opening quote; returns the
/// unescaped value and the index after the closing quote. `\\`, `\"` and
/// `\n` are unescaped; other escapes are kept verbatim, as Prometheus does.
fn parse_quoted(line: &str, start: usize) -> Option<(Cow<'_, str>, usize)> {
    let bytes = line.as_bytes();
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some((Cow::Borrowed(&line[start..i]), i + 1)),
            b'\\' => break,
            _ => i += 1,
        }
    }
    if i >= bytes.len() {
        return None;
    }
    let mut owned = String::with_capacity(i - start + 16);
    owned.push_str(&line[start..i]);
    let mut chunk_start = i;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                owned.push_str(&line[chunk_start..i]);
                return Some((Cow::Owned(owned), i + 1));
            }
            b'\\' => {
                owned.push_str(&line[chunk_start..i]);
                match bytes.get(i + 1) {
                    Some(b'\\') => owned.push('\\'),
                    Some(b'"') => owned.push('"'),
                    Some(b'n') => owned.push('\n'),
                    Some(_) => {
                        // Keep an unknown escape as written; the escaped
                        // character is copied with the next chunk.
                        owned.push('\\');
                        i += 1;
                        chunk_start = i;
                        continue;
                    }
                    None => return None,
                }
                i += 2;
                chunk_start = i;
            }
            _ => i += 1,
        }
    }
    None
}

pub(super) fn unescape_help(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Fails on the first label name that occurs twice. Small sets (the usual
/// case) are compared pairwise; larger ones are sorted, so the check stays
/// O(n log n) however many labels a hostile line carries.
pub(super) fn check_duplicate_labels(labels: &[ParsedLabel<'_>]) -> Result<(), String> {
    const PAIRWISE_UP_TO: usize = 16;
    let duplicate = |name: &str| format!("duplicate label name {}", quote_snippet(name));
    if labels.len() <= PAIRWISE_UP_TO {
        for (i, label) in labels.iter().enumerate() {
            if labels[..i].iter().any(|l| l.name == label.name) {
                return Err(duplicate(label.name));
            }
        }
        return Ok(());
    }
    let mut names: Vec<&str> = labels.iter().map(|l| l.name).collect();
    names.sort_unstable();
    match names.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(duplicate(pair[0])),
        None => Ok(()),
    }
}

/// Parses a sample value the way Go's ParseFloat does for the spellings
/// expositions use: decimals, exponents, `NaN`, `+Inf`, `-Inf`.
pub(super) fn parse_value(token: &str) -> Result<f64, String> {
    if let Some(v) = parse_simple_integer(token) {
        return Ok(v);
    }
    token
        .parse::<f64>()
        .map_err(|_| format!("invalid sample value {}", quote_snippet(token)))
}

/// Fast path for the most common value shape, a short unsigned integer.
fn parse_simple_integer(token: &str) -> Option<f64> {
    let bytes = token.as_bytes();
    if bytes.is_empty() || bytes.len() > 15 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    // At most 15 digits, so the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    Some(v as f64)
}

pub(super) fn parse_openmetrics_timestamp(token: &str) -> Result<i64, String> {
    let seconds: f64 = token.parse().map_err(|_| {
        format!(
            "invalid timestamp {}: expected seconds since the epoch",
            quote_snippet(token)
        )
    })?;
    let ms = (seconds * 1000.0).round();
    // i64 milliseconds cover ±292 million years; anything beyond is bogus.
    if !ms.is_finite() || ms.abs() >= 9.0e18 {
        return Err(format!("timestamp {} out of range", quote_snippet(token)));
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(ms as i64)
}

pub(super) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(super) fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_ws(bytes[i]) {
        i += 1;
    }
    i
}

pub(super) fn scan_token(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && !is_ws(bytes[i]) {
        i += 1;
    }
    i
}

pub(super) fn scan_metric_name(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    match bytes.get(i) {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' || *b == b':' => i += 1,
        _ => return start,
    }
    while i < bytes.len()
        && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
    {
        i += 1;
    }
    i
}

fn scan_label_name(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    match bytes.get(i) {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => i += 1,
        _ => return start,
    }
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    i
}

/// Whether `name` is a valid metric name.
pub fn is_valid_metric_name(name: &str) -> bool {
    !name.is_empty() && scan_metric_name(name.as_bytes(), 0) == name.len()
}

/// Whether `name` is a valid label name.
pub fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty() && scan_label_name(name.as_bytes(), 0) == name.len()
}

/// A short, quoted excerpt of input for error messages.
pub(super) fn quote_snippet(text: &str) -> Snippet<'_> {
    Snippet(text)
}

pub(super) struct Snippet<'a>(&'a str);

impl fmt::Display for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 40;
        if self.0.is_empty() {
            return f.write_str("end of line");
        }
        let mut end = self.0.len().min(MAX);
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        if end < self.0.len() {
            write!(f, "{:?}…", &self.0[..end])
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}
