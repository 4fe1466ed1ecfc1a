//! Parser for the two text exposition formats a target may answer with:
//! Prometheus text format 0.0.4 and OpenMetrics 1.0 text.
//!
//! It is a pull parser over one borrowed body: names, raw series text and
//! unescaped label values are slices of the body, and only label values or
//! help texts that contain escapes are copied. A body can also be parsed in
//! pieces of whole lines as it arrives ([`Pieces`]), so a scrape never holds
//! a whole large exposition. It never panics on input;
//! every malformed line gives a [`ParseError`] with its 1-based line number.
//!
//! Facts it follows (checked against Prometheus 2.42): OpenMetrics
//! timestamps are float seconds and text-format timestamps integer
//! milliseconds; OpenMetrics bodies must end with `# EOF`; exemplars are
//! validated and skipped; `_created` samples are ordinary samples (Prometheus
//! 2.42 ingests them as series; skipping them came later behind a flag).

use std::borrow::Cow;

mod lexical;

use lexical::{
    check_duplicate_labels, is_ws, parse_label_block, parse_openmetrics_timestamp, parse_value,
    quote_snippet, scan_metric_name, scan_token, skip_ws, unescape_help,
};
pub use lexical::{is_valid_label_name, is_valid_metric_name};

/// Which text format a body is in; chosen from the response's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (also the fallback for unknown types).
    PrometheusText,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// Picks the format for a Content-Type header value: OpenMetrics for
    /// `application/openmetrics-text`, the Prometheus text format otherwise
    /// (as Prometheus does for missing or unknown types).
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        let media_type = content_type
            .and_then(|ct| ct.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// The metric type declared by a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `untyped` in the text format, `unknown` in OpenMetrics.
    Unknown,
}

/// One label of a parsed sample; the value is borrowed unless it had escapes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLabel<'a> {
    pub name: &'a str,
    pub value: Cow<'a, str>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLine<'p, 'a> {
    /// The metric name.
    pub name: &'a str,
    /// The raw series text, name and label block exactly as exposed; stable
    /// across scrapes of the same series, so it serves as a cache key.
    pub series: &'a str,
    /// The labels in exposition order (not including the metric name).
    pub labels: &'p [ParsedLabel<'a>],
    pub value: f64,
    /// Explicit timestamp in milliseconds since the epoch, if the line had one.
    pub timestamp_ms: Option<i64>,
}

/// One meaningful line of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'p, 'a> {
    Sample(SampleLine<'p, 'a>),
    Help { name: &'a str, help: Cow<'a, str> },
    Type { name: &'a str, kind: MetricType },
    Unit { name: &'a str, unit: &'a str },
}

/// A malformed exposition: where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number in the (decompressed) body.
    pub line: usize,
    pub reason: String,
    /// Set when the line broke a limit given to the parser (the config key,
    /// `label_limit`) rather than the format.
    pub limit: Option<&'static str>,
}

/// Pull parser over one exposition body.
#[derive(Debug)]
pub struct Parser<'a> {
    body: &'a str,
    pos: usize,
    line: usize,
    format: Format,
    labels: Vec<ParsedLabel<'a>>,
    exemplar_labels: Vec<ParsedLabel<'a>>,
    finished: bool,
    /// Whether the body is the end of the exposition (see [`Pieces`]).
    last_piece: bool,
    eof_seen: bool,
    /// Most labels one sample (or exemplar) may have; 0 = no limit. A line
    /// with more is rejected as soon as the extra label is read, so one
    /// hostile line costs at most this many labels of work and memory.
    label_limit: usize,
    /// The last error came from `label_limit`.
    limit_hit: bool,
}

/// Where a body parsed in pieces stands between two pieces: a scrape
/// parses each run of complete lines as it arrives instead of holding the
/// whole body. Every piece but the last must end with a newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pieces {
    format: Format,
    lines_before: usize,
    /// OpenMetrics `# EOF` was in an earlier piece: nothing may follow.
    eof_seen: bool,
    label_limit: usize,
}

impl Pieces {
    pub fn new(format: Format) -> Pieces {
        Pieces {
            format,
            lines_before: 0,
            eof_seen: false,
            label_limit: 0,
        }
    }

    /// Every piece's parser rejects samples with more than `limit` labels
    /// (see [`Parser::with_label_limit`]); 0 = no limit.
    pub fn with_label_limit(mut self, limit: usize) -> Pieces {
        self.label_limit = limit;
        self
    }

    /// A parser for the next piece; `last` when no more bytes follow it.
    /// Call [`Pieces::finish_piece`] with it once it returned `Ok(None)`.
    pub fn parser<'a>(&self, piece: &'a [u8], last: bool) -> Result<Parser<'a>, ParseError> {
        if self.eof_seen && !piece.is_empty() {
            return Err(ParseError {
                line: self.lines_before + 1,
                reason: "content after \"# EOF\"".into(),
                limit: None,
            });
        }
        let mut parser = Parser::from_bytes(piece, self.format).map_err(|e| ParseError {
            line: self.lines_before + e.line,
            reason: e.reason,
            limit: None,
        })?;
        parser.line = self.lines_before;
        parser.label_limit = self.label_limit;
        parser.last_piece = last;
        parser.eof_seen = self.eof_seen;
        Ok(parser)
    }

    /// Carries the line count and the end marker over to the next piece.
    pub fn finish_piece(&mut self, parser: &Parser<'_>) {
        self.lines_before = parser.line;
        self.eof_seen = parser.eof_seen;
    }
}

impl<'a> Parser<'a> {
    /// A parser over a body already known to be UTF-8.
    pub fn new(body: &'a str, format: Format) -> Parser<'a> {
        Parser {
            body,
            pos: 0,
            line: 0,
            format,
            labels: Vec::with_capacity(8),
            exemplar_labels: Vec::new(),
            finished: false,
            last_piece: true,
            eof_seen: false,
            label_limit: 0,
            limit_hit: false,
        }
    }

    /// Rejects any sample (or exemplar) with more than `limit` labels, with
    /// [`ParseError::limit`] set to `label_limit`; 0 = no limit.
    pub fn with_label_limit(mut self, limit: usize) -> Parser<'a> {
        self.label_limit = limit;
        self
    }

    /// A parser over raw bytes; fails with the line of the first byte that
    /// is not UTF-8 (label values must be valid UTF-8).
    pub fn from_bytes(body: &'a [u8], format: Format) -> Result<Parser<'a>, ParseError> {
        match std::str::from_utf8(body) {
            Ok(text) => Ok(Parser::new(text, format)),
            Err(e) => {
                let valid = &body[..e.valid_up_to()];
                let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
                Err(ParseError {
                    line,
                    reason: "invalid UTF-8 in exposition".to_string(),
                    limit: None,
                })
            }
        }
    }

    /// The number of the line most recently returned or rejected.
    pub fn line_number(&self) -> usize {
        self.line
    }

    /// The next entry, `Ok(None)` at a well-formed end, or the first error.
    /// After an error the parser is finished.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_, 'a>>, ParseError> {
        match self.advance() {
            Ok(Some(kind)) => Ok(Some(self.entry(kind))),
            Ok(None) => Ok(None),
            Err(reason) => {
                self.finished = true;
                Err(ParseError {
                    line: self.line,
                    reason,
                    limit: self.limit_hit.then_some("label_limit"),
                })
            }
        }
    }

    fn entry(&self, kind: Pending<'a>) -> Entry<'_, 'a> {
        match kind {
            Pending::Sample {
                name,
                series,
                value,
                timestamp_ms,
            } => Entry::Sample(SampleLine {
                name,
                series,
                labels: &self.labels,
                value,
                timestamp_ms,
            }),
            Pending::Help { name, help } => Entry::Help { name, help },
            Pending::Type { name, kind } => Entry::Type { name, kind },
            Pending::Unit { name, unit } => Entry::Unit { name, unit },
        }
    }

    /// Moves to the next meaningful line and parses it.
    fn advance(&mut self) -> Result<Option<Pending<'a>>, String> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let body = self.body;
            if self.pos >= body.len() {
                self.finished = true;
                if self.format == Format::OpenMetrics && self.last_piece && !self.eof_seen {
                    self.line += 1;
                    return Err("missing \"# EOF\" at the end of an OpenMetrics exposition".into());
                }
                return Ok(None);
            }
            let rest = &body[self.pos..];
            let (line, consumed) = match rest.find('\n') {
                Some(i) => (&rest[..i], i + 1),
                None => (rest, rest.len()),
            };
            self.pos += consumed;
            self.line += 1;
            match self.format {
                Format::PrometheusText => {
                    let line = line.trim_start_matches([' ', '\t']);
                    if line.is_empty() {
                        continue;
                    }
                    if let Some(comment) = line.strip_prefix('#') {
                        match parse_text_comment(comment)? {
                            Some(entry) => return Ok(Some(entry)),
                            None => continue,
                        }
                    }
                    return self.parse_sample(line).map(Some);
                }
                Format::OpenMetrics => {
                    if line.is_empty() {
                        return Err("empty line (not allowed in OpenMetrics)".into());
                    }
                    if let Some(comment) = line.strip_prefix('#') {
                        if comment == " EOF" {
                            self.finished = true;
                            self.eof_seen = true;
                            if self.pos < body.len() {
                                self.line += 1;
                                return Err("content after \"# EOF\"".into());
                            }
                            return Ok(None);
                        }
                        return parse_openmetrics_comment(comment).map(Some);
                    }
                    return self.parse_sample(line).map(Some);
                }
            }
        }
    }

    fn parse_sample(&mut self, line: &'a str) -> Result<Pending<'a>, String> {
        let bytes = line.as_bytes();
        let name_end = scan_metric_name(bytes, 0);
        if name_end == 0 {
            return Err(format!(
                "expected a metric name matching [a-zA-Z_:][a-zA-Z0-9_:]*, found {}",
                quote_snippet(line)
            ));
        }
        let name = &line[..name_end];
        let mut i = name_end;
        self.labels.clear();
        let series_end;
        if bytes.get(i) == Some(&b'{') {
            i = parse_label_block(line, i + 1, &mut self.labels, self.label_limit)
                .inspect_err(|_| self.limit_hit = self.over_label_limit(self.labels.len()))?;
            series_end = i;
        } else {
            series_end = i;
        }
        let series = &line[..series_end];
        if self.labels.len() > 1 {
            check_duplicate_labels(&self.labels)?;
        }

        let after_series = skip_ws(bytes, i);
        if after_series == i || after_series >= bytes.len() {
            if after_series >= bytes.len() {
                return Err(format!("missing value after {}", quote_snippet(series)));
            }
            return Err(format!(
                "expected a space after {}, found {}",
                quote_snippet(series),
                quote_snippet(&line[i..])
            ));
        }
        i = after_series;
        let value_end = scan_token(bytes, i);
        let value = parse_value(&line[i..value_end])?;
        i = skip_ws(bytes, value_end);

        let mut timestamp_ms = None;
        if i < bytes.len() && bytes[i] != b'#' {
            let ts_end = scan_token(bytes, i);
            let token = &line[i..ts_end];
            timestamp_ms = Some(match self.format {
                Format::PrometheusText => token.parse::<i64>().map_err(|_| {
                    format!(
                        "invalid timestamp {}: expected integer milliseconds",
                        quote_snippet(token)
                    )
                })?,
                Format::OpenMetrics => parse_openmetrics_timestamp(token)?,
            });
            i = skip_ws(bytes, ts_end);
        }

        if i < bytes.len() {
            match self.format {
                Format::OpenMetrics if bytes[i] == b'#' => {
                    self.skip_exemplar(line, i)?;
                }
                _ => {
                    return Err(format!(
                        "unexpected {} after the sample value",
                        quote_snippet(&line[i..])
                    ))
                }
            }
        }

        Ok(Pending::Sample {
            name,
            series,
            value,
            timestamp_ms,
        })
    }

    fn over_label_limit(&self, labels: usize) -> bool {
        self.label_limit > 0 && labels > self.label_limit
    }

    /// Validates `# {labels} value [timestamp]` and discards it: exemplars
    /// are not stored.
    fn skip_exemplar(&mut self, line: &'a str, start: usize) -> Result<(), String> {
        let bytes = line.as_bytes();
        let mut i = start + 1;
        if bytes.get(i) != Some(&b' ') {
            return Err("expected \" # {\" before an exemplar".into());
        }
        i = skip_ws(bytes, i);
        if bytes.get(i) != Some(&b'{') {
            return Err(format!(
                "expected \"{{\" to open exemplar labels, found {}",
                quote_snippet(&line[i..])
            ));
        }
        self.exemplar_labels.clear();
        i = parse_label_block(line, i + 1, &mut self.exemplar_labels, self.label_limit)
            .inspect_err(|_| self.limit_hit = self.over_label_limit(self.exemplar_labels.len()))?;
        let value_start = skip_ws(bytes, i);
        if value_start == i || value_start >= bytes.len() {
            return Err("missing exemplar value".into());
        }
        let value_end = scan_token(bytes, value_start);
        parse_value(&line[value_start..value_end]).map_err(|e| format!("exemplar: {e}"))?;
        i = skip_ws(bytes, value_end);
        if i < bytes.len() {
            let ts_end = scan_token(bytes, i);
            parse_openmetrics_timestamp(&line[i..ts_end]).map_err(|e| format!("exemplar: {e}"))?;
            i = skip_ws(bytes, ts_end);
            if i < bytes.len() {
                return Err(format!(
                    "unexpected {} after the exemplar",
                    quote_snippet(&line[i..])
                ));
            }
        }
        Ok(())
    }
}

/// A parsed line whose labels still sit in the parser's buffer.
enum Pending<'a> {
    Sample {
        name: &'a str,
        series: &'a str,
        value: f64,
        timestamp_ms: Option<i64>,
    },
    Help {
        name: &'a str,
        help: Cow<'a, str>,
    },
    Type {
        name: &'a str,
        kind: MetricType,
    },
    Unit {
        name: &'a str,
        unit: &'a str,
    },
}

/// Text format: `# HELP` and `# TYPE` are meaningful, anything else is a
/// comment and skipped.
fn parse_text_comment(comment: &str) -> Result<Option<Pending<'_>>, String> {
    let bytes = comment.as_bytes();
    let start = skip_ws(bytes, 0);
    if start == 0 {
        return Ok(None);
    }
    let keyword_end = scan_token(bytes, start);
    let keyword = &comment[start..keyword_end];
    if keyword != "HELP" && keyword != "TYPE" {
        return Ok(None);
    }
    let name_start = skip_ws(bytes, keyword_end);
    if name_start == keyword_end {
        // "# HELPER ..." or a bare "# HELP": a plain comment.
        return Ok(None);
    }
    let name_end = scan_metric_name(bytes, name_start);
    let name = &comment[name_start..name_end];
    if name.is_empty() || (name_end < bytes.len() && !is_ws(bytes[name_end])) {
        return Err(format!(
            "invalid metric name {} in # {keyword}",
            quote_snippet(&comment[name_start..scan_token(bytes, name_start)])
        ));
    }
    let text_start = skip_ws(bytes, name_end);
    let text = &comment[text_start..];
    if keyword == "HELP" {
        return Ok(Some(Pending::Help {
            name,
            help: unescape_help(text),
        }));
    }
    let text = text.trim_end_matches([' ', '\t']);
    let kind = match text {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        "summary" => MetricType::Summary,
        "untyped" => MetricType::Unknown,
        other => {
            return Err(format!(
                "invalid metric type {} (expected counter, gauge, histogram, summary or untyped)",
                quote_snippet(other)
            ))
        }
    };
    Ok(Some(Pending::Type { name, kind }))
}

/// OpenMetrics: only `# HELP`, `# TYPE`, `# UNIT` (and `# EOF`, handled by
/// the caller) may start with `#`.
fn parse_openmetrics_comment(comment: &str) -> Result<Pending<'_>, String> {
    let rest = comment.strip_prefix(' ').ok_or_else(|| {
        "expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\" (OpenMetrics has no free comments)"
            .to_string()
    })?;
    let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Err(format!(
            "unknown comment {}: OpenMetrics allows only HELP, TYPE, UNIT and EOF",
            quote_snippet(comment)
        ));
    }
    let bytes = rest.as_bytes();
    let name_end = scan_metric_name(bytes, 0);
    let name = &rest[..name_end];
    if name.is_empty() || (name_end < bytes.len() && bytes[name_end] != b' ') {
        return Err(format!(
            "invalid metric name {} in # {keyword}",
            quote_snippet(&rest[..scan_token(bytes, 0)])
        ));
    }
    let text = rest.get(name_end + 1..).unwrap_or("");
    match keyword {
        "HELP" => Ok(Pending::Help {
            name,
            help: unescape_help(text),
        }),
        "UNIT" => {
            if !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
            {
                return Err(format!("invalid unit {}", quote_snippet(text)));
            }
            Ok(Pending::Unit { name, unit: text })
        }
        _ => {
            let kind = match text {
                "counter" => MetricType::Counter,
                "gauge" => MetricType::Gauge,
                "histogram" => MetricType::Histogram,
                "gaugehistogram" => MetricType::GaugeHistogram,
                "summary" => MetricType::Summary,
                "info" => MetricType::Info,
                "stateset" => MetricType::StateSet,
                "unknown" => MetricType::Unknown,
                other => {
                    return Err(format!(
                        "invalid metric type {} (expected counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown)",
                        quote_snippet(other)
                    ))
                }
            };
            Ok(Pending::Type { name, kind })
        }
    }
}

#[cfg(test)]
mod tests;
