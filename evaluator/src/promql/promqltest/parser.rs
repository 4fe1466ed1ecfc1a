//! Reads a promqltest script into commands; native-histogram loads are
//! recognised (so their cases can be skipped), never evaluated.

use crate::labels::Labels;
use crate::promql::series_notation::{
    expand_values, parse_descriptor, split_descriptor, NotationError, SeriesValue,
};

/// A script could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
}

/// One loaded series.
#[derive(Debug, Clone)]
pub struct LoadSeries {
    pub labels: Labels,
    pub values: Vec<SeriesValue>,
}

/// How a message expectation is matched.
#[derive(Debug, Clone)]
pub enum MessageMatch {
    Any,
    Exact(String),
    Regex(String),
}

/// What an `eval` expects besides its samples.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    pub fail: Option<MessageMatch>,
    pub warn: Vec<MessageMatch>,
    pub info: Vec<MessageMatch>,
    pub no_warn: bool,
    pub no_info: bool,
    pub ordered: bool,
    pub string: Option<String>,
    /// `expect range vector from A to B step S` (ms).
    pub range_vector: Option<(i64, i64, i64)>,
}

/// One expected series of an `eval`.
#[derive(Debug, Clone)]
pub struct ExpectedSeries {
    pub labels: Labels,
    pub values: Vec<SeriesValue>,
}

/// One `eval` command.
#[derive(Debug, Clone)]
pub struct EvalCase {
    pub line: usize,
    pub query: String,
    /// `(start, end, step)`; for an instant query start == end and step 0.
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub instant: bool,
    pub expect: Expectation,
    pub series: Vec<ExpectedSeries>,
    /// Why the case cannot be evaluated by Vigil (native histograms …).
    pub unsupported: Option<String>,
}

/// A script command.
#[derive(Debug, Clone)]
pub enum Command {
    Load {
        line: usize,
        interval: i64,
        series: Vec<LoadSeries>,
        /// Label sets of native-histogram series, which are not loaded.
        histograms: Vec<Labels>,
    },
    Clear,
    Eval(EvalCase),
}

/// Parses a Prometheus duration (`1m`, `1h30m`) or plain seconds into ms.
fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1000.0).round() as i64);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let mut ms: i64 = 0;
    let mut rest = body;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        ms += n * factor;
        rest = &rest[unit_len..];
    }
    Some(if neg { -ms } else { ms })
}

fn syntax(line: usize, message: impl Into<String>) -> ScriptError {
    ScriptError::Syntax {
        line,
        message: message.into(),
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('`') && s.ends_with('`')))
    {
        promql_parser::util::unquote_string(s).unwrap_or_else(|_| s[1..s.len() - 1].to_string())
    } else {
        s.to_string()
    }
}

fn message_match(rest: &str) -> MessageMatch {
    let rest = rest.trim();
    if let Some(m) = rest.strip_prefix("msg:") {
        MessageMatch::Exact(m.trim().to_string())
    } else if let Some(r) = rest.strip_prefix("regex:") {
        MessageMatch::Regex(r.trim().to_string())
    } else {
        MessageMatch::Any
    }
}

/// Applies one `expect …` line.
fn parse_expect(line_no: usize, rest: &str, e: &mut Expectation) -> Result<(), ScriptError> {
    let rest = rest.trim();
    let (kind, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    match kind {
        "fail" => e.fail = Some(message_match(tail)),
        "warn" => e.warn.push(message_match(tail)),
        "info" => e.info.push(message_match(tail)),
        "no_warn" => e.no_warn = true,
        "no_info" => e.no_info = true,
        "ordered" => e.ordered = true,
        "string" => e.string = Some(unquote(tail)),
        "range" => {
            let parts: Vec<&str> = tail.split_whitespace().collect();
            match parts.as_slice() {
                ["vector", "from", a, "to", b, "step", s] => {
                    let (a, b, s) = (parse_time(a), parse_time(b), parse_time(s));
                    match (a, b, s) {
                        (Some(a), Some(b), Some(s)) => e.range_vector = Some((a, b, s)),
                        _ => return Err(syntax(line_no, "invalid times in `expect range vector`")),
                    }
                }
                _ => {
                    return Err(syntax(
                        line_no,
                        "expected `expect range vector from <start> to <end> step <step>`",
                    ))
                }
            }
        }
        other => return Err(syntax(line_no, format!("unknown expectation {other:?}"))),
    }
    Ok(())
}

/// Parses the `eval …` header line.
fn parse_eval_header(line_no: usize, line: &str) -> Result<EvalCase, ScriptError> {
    let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let mut expect = Expectation::default();
    match cmd {
        "eval" => {}
        "eval_fail" => expect.fail = Some(MessageMatch::Any),
        "eval_warn" => expect.warn.push(MessageMatch::Any),
        "eval_info" => expect.info.push(MessageMatch::Any),
        "eval_ordered" => expect.ordered = true,
        other => return Err(syntax(line_no, format!("unknown command {other:?}"))),
    }
    let rest = rest.trim();
    let bad = || syntax(line_no, format!("invalid eval header {line:?}"));
    if let Some(r) = rest.strip_prefix("instant") {
        let r = r.trim().strip_prefix("at").ok_or_else(bad)?.trim();
        let (at, query) = r.split_once(char::is_whitespace).ok_or_else(bad)?;
        let at = parse_time(at).ok_or_else(bad)?;
        return Ok(EvalCase {
            line: line_no,
            query: query.trim().to_string(),
            start: at,
            end: at,
            step: 0,
            instant: true,
            expect,
            series: Vec::new(),
            unsupported: None,
        });
    }
    if let Some(r) = rest.strip_prefix("range") {
        let words: Vec<&str> = r.trim().splitn(7, char::is_whitespace).collect();
        if let ["from", start, "to", end, "step", step, query] = words.as_slice() {
            return Ok(EvalCase {
                line: line_no,
                query: query.trim().to_string(),
                start: parse_time(start).ok_or_else(bad)?,
                end: parse_time(end).ok_or_else(bad)?,
                step: parse_time(step).ok_or_else(bad)?,
                instant: false,
                expect,
                series: Vec::new(),
                unsupported: None,
            });
        }
    }
    Err(bad())
}

fn notation_error(line: usize, e: NotationError) -> ScriptError {
    syntax(line, e.to_string())
}

/// Parses a whole script.
pub fn parse_script(text: &str) -> Result<Vec<Command>, ScriptError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut commands = Vec::new();
    let mut i = 0;
    // A block's body runs until the next blank line or unindented command.
    let is_body = |l: &str| {
        let t = l.trim();
        let command = l.starts_with(|c: char| !c.is_whitespace()) && is_command(t);
        !(t.is_empty() || command)
    };
    while i < lines.len() {
        let raw = lines[i];
        let line_no = i + 1;
        let line = raw.trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if cmd == "clear" {
            commands.push(Command::Clear);
            continue;
        }
        if cmd == "load" || cmd == "load_with_nhcb" {
            let interval = parse_time(rest)
                .ok_or_else(|| syntax(line_no, format!("invalid load interval {rest:?}")))?;
            let mut series = Vec::new();
            let nhcb = cmd == "load_with_nhcb";
            let mut histograms = Vec::new();
            while i < lines.len() && is_body(lines[i]) {
                let body_line = i + 1;
                let (desc, values) = split_descriptor(lines[i]);
                i += 1;
                if desc.starts_with('#') {
                    continue;
                }
                let labels = parse_descriptor(desc).map_err(|e| notation_error(body_line, e))?;
                if values.contains("{{") {
                    histograms.push(labels);
                    continue;
                }
                if nhcb {
                    if let Some(h) = nhcb_labels(&labels) {
                        histograms.push(h);
                    }
                }
                let values = expand_values(values).map_err(|e| notation_error(body_line, e))?;
                series.push(LoadSeries { labels, values });
            }
            commands.push(Command::Load {
                line: line_no,
                interval,
                series,
                histograms,
            });
            continue;
        }
        if cmd.starts_with("eval") {
            let mut case = parse_eval_header(line_no, line)?;
            while i < lines.len() && is_body(lines[i]) {
                let body_line = i + 1;
                let body = lines[i].trim();
                i += 1;
                if body.starts_with('#') {
                    continue;
                }
                if let Some(rest) = body.strip_prefix("expect ") {
                    parse_expect(body_line, rest, &mut case.expect)?;
                    continue;
                }
                if let Some(rest) = body.strip_prefix("expected_fail_message") {
                    case.expect.fail = Some(MessageMatch::Exact(rest.trim().to_string()));
                    continue;
                }
                if let Some(rest) = body.strip_prefix("expected_fail_regexp") {
                    case.expect.fail = Some(MessageMatch::Regex(rest.trim().to_string()));
                    continue;
                }
                if body.contains("{{") {
                    case.unsupported = Some("expects native histogram values".to_string());
                    continue;
                }
                let (desc, values) = split_descriptor(body);
                if expand_values(desc).is_ok() {
                    // A bare scalar result.
                    let values = expand_values(body).map_err(|e| notation_error(body_line, e))?;
                    case.series.push(ExpectedSeries {
                        labels: Labels::default(),
                        values,
                    });
                    continue;
                }
                if desc.starts_with('"') || desc.starts_with('`') {
                    case.expect.string = Some(unquote(body));
                    continue;
                }
                let labels = parse_descriptor(desc).map_err(|e| notation_error(body_line, e))?;
                let values = expand_values(values).map_err(|e| notation_error(body_line, e))?;
                case.series.push(ExpectedSeries { labels, values });
            }
            commands.push(Command::Eval(case));
            continue;
        }
        return Err(syntax(line_no, format!("unknown command {cmd:?}")));
    }
    Ok(commands)
}

fn is_command(line: &str) -> bool {
    let cmd = line.split_whitespace().next().unwrap_or("");
    matches!(cmd, "load" | "load_with_nhcb" | "clear") || cmd.starts_with("eval")
}

/// The native histogram a `load_with_nhcb` block derives from a classic
/// histogram series (`x_bucket`/`x_sum`/`x_count` → `x` without `le`).
fn nhcb_labels(labels: &Labels) -> Option<Labels> {
    let name = labels.metric_name()?;
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))?;
    let mut h = labels.clone();
    h.remove("le");
    h.set(crate::labels::METRIC_NAME, base);
    Some(h)
}
