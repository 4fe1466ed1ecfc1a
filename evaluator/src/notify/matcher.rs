//! Alertmanager label matchers (`name="value"`, `name!=value`, `name=~"re"`,
//! `name!~re`): parsing in Alertmanager's syntax and matching against label
//! sets. Routes, inhibit rules, silences and `routes test` all share them, so
//! they live in one place and behave exactly like Alertmanager's.

use std::fmt;

use regex::Regex;

use crate::labels::Labels;

/// Why a matcher string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    #[error(
        "bad matcher format: {0:?}; expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX"
    )]
    Format(String),
    #[error("matcher value contains an unescaped double quote: {0:?}; escape it as \\\"")]
    UnescapedQuote(String),
    #[error("invalid regular expression {pattern:?}: {reason}")]
    Regex { pattern: String, reason: String },
    #[error("invalid label name {0:?}; label names match [a-zA-Z_][a-zA-Z0-9_]*")]
    LabelName(String),
}

/// The comparison a matcher makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    /// The operator as written in matcher syntax.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One label matcher. Regex matchers are fully anchored, as in Alertmanager.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// Builds a matcher, compiling (and anchoring) the regex for `=~`/`!~`.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let (name, value) = (name.into(), value.into());
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(anchored_regex(&value)?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
        })
    }

    /// Whether the label set satisfies this matcher; a missing label counts
    /// as the empty value, as in Alertmanager.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }

    /// Whether a single label value satisfies this matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            // `new` always compiles a regex for the regex operators.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    /// `name="value"` with the value quoted and escaped, so the output parses
    /// back to the same matcher.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// Whether all matchers match (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Formats a matcher list as `{a="b",c=~"d"}` (used in route keys).
pub fn format_matchers(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", parts.join(","))
}

/// Compiles `pattern` anchored at both ends, as Alertmanager does.
pub fn anchored_regex(pattern: &str) -> Result<Regex, MatcherError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|err| MatcherError::Regex {
        pattern: pattern.to_string(),
        // The regex crate's message spans lines (pattern, caret, reason);
        // config errors are one line each, so keep the reason.
        reason: err
            .to_string()
            .lines()
            .last()
            .map(|l| l.trim_start_matches("error: ").to_string())
            .unwrap_or_default(),
    })
}

/// Whether `name` is a valid (classic) Prometheus label name.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses one matcher in Alertmanager's syntax: a label name (letters,
/// digits, `_` and `:`), an operator, and a value that may be double-quoted
/// (with `\"`, `\\` and `\n` escapes) or bare. Surrounding spaces are ignored.
pub fn parse_matcher(input: &str) -> Result<Matcher, MatcherError> {
    let bad = || MatcherError::Format(input.to_string());
    let trimmed = input.trim_start();
    let name_len = trimmed
        .char_indices()
        .find(|&(i, c)| {
            let ok =
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit());
            !ok
        })
        .map_or(trimmed.len(), |(i, _)| i);
    if name_len == 0 {
        return Err(bad());
    }
    let name = &trimmed[..name_len];
    let rest = trimmed[name_len..].trim_start();
    // `=~` before `=`, or the `~` would end up in the value.
    let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (MatchOp::Regex, r)
    } else if let Some(r) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, r)
    } else if let Some(r) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, r)
    } else if let Some(r) = rest.strip_prefix('=') {
        (MatchOp::Equal, r)
    } else {
        return Err(bad());
    };
    let raw = rest.trim();
    let value = unescape_value(raw)?;
    Matcher::new(name, op, value)
}

/// Undoes the quoting of a matcher value. A quoted value must end with its
/// closing quote; a bare value must not contain a quote; unknown escapes are
/// kept literally.
fn unescape_value(raw: &str) -> Result<String, MatcherError> {
    let (body, mut expect_closing_quote) = match raw.strip_prefix('"') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    let mut value = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&(_, 'n')) => {
                    value.push('\n');
                    chars.next();
                }
                Some(&(_, e @ ('"' | '\\'))) => {
                    value.push(e);
                    chars.next();
                }
                // A backslash before anything else, or at the end, is literal.
                _ => value.push('\\'),
            },
            '"' => {
                let last = i + c.len_utf8() == body.len();
                if !expect_closing_quote || !last {
                    return Err(MatcherError::UnescapedQuote(raw.to_string()));
                }
                expect_closing_quote = false;
            }
            c => value.push(c),
        }
    }
    if expect_closing_quote {
        return Err(MatcherError::UnescapedQuote(raw.to_string()));
    }
    Ok(value)
}

/// Parses a comma-separated matcher list, optionally inside `{...}`, as one
/// entry of a `matchers:` list may hold several matchers. Commas inside
/// quoted values do not split.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    let s = input.strip_prefix('{').unwrap_or(input);
    let s = s.strip_suffix('}').unwrap_or(s);
    let mut tokens = Vec::new();
    let mut token = String::new();
    let (mut in_quotes, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            ',' if !in_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            '"' => {
                if escaped {
                    escaped = false;
                } else {
                    in_quotes = !in_quotes;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    if !token.trim().is_empty() {
        tokens.push(token.trim().to_string());
    }
    tokens.iter().map(|t| parse_matcher(t)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn parses_quoted_and_bare_values_with_spaces() {
        let m = parse_matcher(" team = \"a b\" ").unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("team", MatchOp::Equal, "a b")
        );
        let m = parse_matcher("team!=x").unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::NotEqual, "x"));
    }

    #[test]
    fn regex_operator_is_not_read_as_equal_with_tilde_value() {
        let m = parse_matcher("sev=~crit|warn").unwrap();
        assert_eq!(m.op, MatchOp::Regex);
        assert!(m.matches(&labels(&[("sev", "warn")])));
        assert!(
            !m.matches(&labels(&[("sev", "warning")])),
            "regex must be anchored"
        );
    }

    #[test]
    fn escapes_in_quoted_values_are_resolved() {
        let m = parse_matcher(r#"a="x\"y\\z\n""#).unwrap();
        assert_eq!(m.value, "x\"y\\z\n");
        let m = parse_matcher(r"a=\x").unwrap();
        assert_eq!(m.value, r"\x");
    }

    #[test]
    fn unbalanced_quotes_are_rejected() {
        assert!(matches!(
            parse_matcher(r#"a="x"#),
            Err(MatcherError::UnescapedQuote(_))
        ));
        assert!(matches!(
            parse_matcher(r#"a=x""#),
            Err(MatcherError::UnescapedQuote(_))
        ));
        assert!(matches!(
            parse_matcher(r#"a="x",b="y""#),
            Err(MatcherError::UnescapedQuote(_))
        ));
    }

    #[test]
    fn names_must_not_start_with_a_digit() {
        assert!(matches!(
            parse_matcher("1a=b"),
            Err(MatcherError::Format(_))
        ));
        assert!(matches!(
            parse_matcher("{a=\"b\"}"),
            Err(MatcherError::Format(_))
        ));
    }

    #[test]
    fn bare_value_keeps_commas_as_part_of_the_value() {
        let m = parse_matcher("team=x,sev=crit").unwrap();
        assert_eq!(m.value, "x,sev=crit");
    }

    #[test]
    fn matcher_lists_split_on_commas_outside_quotes() {
        let ms = parse_matchers(r#"{a="x,y", b=~"z.*"}"#).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].value, "x,y");
        assert_eq!(ms[1].op, MatchOp::Regex);
    }

    #[test]
    fn missing_label_matches_the_empty_value() {
        assert!(parse_matcher("a=\"\"").unwrap().matches(&labels(&[])));
        assert!(parse_matcher("a!=x").unwrap().matches(&labels(&[])));
        assert!(!parse_matcher("a=~.+").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn display_round_trips() {
        let m = parse_matcher(r#"a!~"x\"y""#).unwrap();
        assert_eq!(parse_matcher(&m.to_string()).unwrap(), m);
    }
}
