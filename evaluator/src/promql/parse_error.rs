//! Parse errors as Prometheus words them: `LINE:COL: parse error: MESSAGE`,
//! with Prometheus' type names ("range vector", "instant vector") and
//! double-quoted names. The `promql-parser` crate reports neither positions
//! nor Prometheus' wording, and API clients (Grafana's query editor,
//! scripts comparing against Prometheus) show the position to the user, so
//! it is recovered here from the query text.
//!
//! Positions are exact for errors the lexer finds (unclosed brackets,
//! unterminated strings, stray characters), for wrongly typed or unknown
//! function calls, and for empty input; for other syntax errors the parser
//! gives no position, and the start of the first token the longest valid
//! prefix of the query cannot be extended with is used.

use promql_parser::parser;

/// Longest query whose error position is searched for (the search parses
/// prefixes, quadratic in the length); longer ones are reported at their
/// end.
const MAX_SEARCH_LEN: usize = 4096;

/// `message`, the parser's error for `query`, as Prometheus prints it.
pub fn prometheus_parse_error(query: &str, message: &str) -> String {
    let message = prometheus_wording(message);
    let offset = error_offset(query, &message).min(query.len());
    let (line, col) = line_col(query, offset);
    format!("{line}:{col}: parse error: {message}")
}

/// Line and column (both from 1) of byte `offset`, counted as Prometheus
/// counts them: the column is bytes since the last line break.
fn line_col(query: &str, offset: usize) -> (usize, usize) {
    let before = &query.as_bytes()[..offset];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let col = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => offset - nl,
        None => offset + 1,
    };
    (line, col)
}

/// Prometheus' names for value types, and `"name"` for `'name'`.
fn prometheus_wording(message: &str) -> String {
    let mut text = message.to_string();
    if let Some(rest) = text.strip_prefix("no expression found in input") {
        // The lexer appends the (empty) input; Prometheus does not.
        if rest.is_empty() || rest.starts_with(':') {
            return "no expression found in input".to_string();
        }
    }
    if text.starts_with("unterminated quoted string") {
        // The parser names the quote character; Prometheus does not.
        return "unterminated quoted string".to_string();
    }
    for (ours, theirs) in [
        ("expected type matrix", "expected type range vector"),
        ("expected type vector", "expected type instant vector"),
        (", got matrix", ", got range vector"),
        (", got vector", ", got instant vector"),
        (
            "of type scalar or vector, got: matrix",
            "of type scalar or instant vector, got \"range vector\"",
        ),
        (
            "of type scalar or vector, got: string",
            "of type scalar or instant vector, got \"string\"",
        ),
    ] {
        text = text.replace(ours, theirs);
    }
    // 'name' → "name" in the parser's function-call messages.
    for marker in ["function '", "call to '", "name '"] {
        if let Some(start) = text.find(marker) {
            let open = start + marker.len() - 1;
            if let Some(len) = text[open + 1..].find('\'') {
                let close = open + 1 + len;
                text.replace_range(close..=close, "\"");
                text.replace_range(open..=open, "\"");
            }
        }
    }
    text
}

/// Byte offset Prometheus reports `message` (already in its wording) at.
fn error_offset(query: &str, message: &str) -> usize {
    if message == "no expression found in input" {
        return 0;
    }
    if let Some(name) = quoted_after(message, "in call to function \"") {
        // Wrong argument type: Prometheus points at the argument.
        let wants_range = message.contains("expected type range vector");
        if let Some(at) = call_argument(query, &name, wants_range) {
            return at;
        }
    }
    for marker in ["in call to \"", "unknown function with name \""] {
        if let Some(name) = quoted_after(message, marker) {
            if let Some((name_at, _)) = calls(query, &name).next() {
                return name_at;
            }
        }
    }
    if query.len() > MAX_SEARCH_LEN {
        return query.len();
    }
    if let Err(full) = parser::lexer(query) {
        return lexer_error_offset(query, &full);
    }
    if message.starts_with("unexpected end of input")
        || message.contains("binary expression")
        || message.starts_with("unary expression")
    {
        return if message.starts_with("unexpected end of input") {
            query.len()
        } else {
            0
        };
    }
    grammar_error_offset(query)
}

/// The name in `message` after `marker` up to the next `"`.
fn quoted_after(message: &str, marker: &str) -> Option<String> {
    let start = message.find(marker)? + marker.len();
    let len = message[start..].find('"')?;
    Some(message[start..start + len].to_string())
}

/// `(offset of the name, offset after the opening parenthesis)` of every
/// call of function `name` in `query`.
fn calls<'a>(query: &'a str, name: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
    let bytes = query.as_bytes();
    query.match_indices(name).filter_map(move |(at, _)| {
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        if at > 0 && ident(bytes[at - 1]) {
            return None;
        }
        let after = at + name.len();
        let rest = &query[after..];
        let paren = rest.len() - rest.trim_start().len();
        (rest.trim_start().starts_with('(')).then_some((at, after + paren + 1))
    })
}

/// Where the first argument of the call of `name` with the wrongly typed
/// argument starts: the first call whose argument has (or, when a range is
/// wanted, lacks) a `[`.
fn call_argument(query: &str, name: &str, wants_range: bool) -> Option<usize> {
    let skip_space = |from: usize| from + (query[from..].len() - query[from..].trim_start().len());
    let mut first = None;
    for (_, open) in calls(query, name) {
        let arg = skip_space(open);
        first.get_or_insert(arg);
        let end = query[arg..]
            .find([')', ','])
            .map_or(query.len(), |n| arg + n);
        if query[arg..end].contains('[') != wants_range {
            return Some(arg);
        }
    }
    first
}

/// The lexer failed with `full` on the whole query: Prometheus reports such
/// an error where the token being lexed started, which is the end of the
/// shortest prefix that fails the same way, less the offending character
/// (or at the end, for "unclosed"/"end of input" errors; after it, for a
/// stray `)`, which Prometheus emits before it notices).
fn lexer_error_offset(query: &str, full: &str) -> usize {
    if full.contains("unclosed") || full.contains("end of input") || full.contains("at the end") {
        return query.len();
    }
    let shortest = query
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .find(|&end| matches!(parser::lexer(&query[..end]), Err(e) if e == full))
        .unwrap_or(query.len());
    if full.starts_with("unexpected right parenthesis") {
        return shortest;
    }
    let last = query[..shortest]
        .chars()
        .next_back()
        .map_or(0, char::len_utf8);
    shortest - last
}

/// For a syntax error the parser gives no position: the first token after
/// the longest prefix that parses on its own.
fn grammar_error_offset(query: &str) -> usize {
    let longest_valid = query
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .filter(|&end| end < query.len())
        .rev()
        .find(|&end| parser::parse(&query[..end]).is_ok());
    match longest_valid {
        Some(end) => end + (query[end..].len() - query[end..].trim_start().len()),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our message for `query`, Prometheus-worded.
    fn ours(query: &str) -> String {
        match parser::parse(query) {
            Ok(_) => panic!("{query:?} parsed"),
            Err(message) => prometheus_parse_error(query, &message),
        }
    }

    // Every expectation below is what Prometheus 2.42 answers.

    #[test]
    fn lexer_errors_are_placed_where_prometheus_places_them() {
        assert_eq!(ours("sum("), "1:5: parse error: unclosed left parenthesis");
        assert_eq!(
            ours("up{"),
            "1:4: parse error: unexpected end of input inside braces"
        );
        assert_eq!(
            ours(")"),
            "1:2: parse error: unexpected right parenthesis ')'"
        );
        assert_eq!(
            ours("up ~ 1"),
            "1:4: parse error: unexpected character: '~'"
        );
        assert_eq!(
            ours(r#"x{a="b}"#),
            "1:5: parse error: unterminated quoted string"
        );
        assert_eq!(
            ours("sum by (a) (x"),
            "1:14: parse error: unclosed left parenthesis"
        );
    }

    #[test]
    fn empty_input_is_at_the_start() {
        assert_eq!(ours(""), "1:1: parse error: no expression found in input");
    }

    #[test]
    fn function_argument_types_use_prometheus_names_and_point_at_the_argument() {
        assert_eq!(
            ours("rate(  up)"),
            r#"1:8: parse error: expected type range vector in call to function "rate", got instant vector"#
        );
        assert_eq!(
            ours("sum(x) / rate(foo)"),
            r#"1:15: parse error: expected type range vector in call to function "rate", got instant vector"#
        );
        assert_eq!(
            ours("abs(up[5m])"),
            r#"1:5: parse error: expected type instant vector in call to function "abs", got range vector"#
        );
        assert_eq!(
            ours("label_replace(up)"),
            r#"1:1: parse error: expected 5 argument(s) in call to "label_replace", got 1"#
        );
        assert_eq!(
            ours("foo(up)"),
            r#"1:1: parse error: unknown function with name "foo""#
        );
    }

    #[test]
    fn unary_minus_on_a_range_uses_prometheus_type_names() {
        assert_eq!(
            ours("-up[5m]"),
            r#"1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got "range vector""#
        );
    }

    #[test]
    fn syntax_errors_point_at_the_first_token_that_cannot_follow() {
        assert!(ours("foo bar").starts_with("1:5: parse error: "));
        assert!(ours("foo == bar on").starts_with("1:12: parse error: "));
    }

    #[test]
    fn positions_count_lines_and_columns_in_bytes() {
        assert_eq!(line_col("a\nbc", 3), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
