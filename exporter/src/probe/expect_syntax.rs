//! The structural check of an `expect` expression: every operator has its
//! operands, every bracket is closed, and values are separated by operators.
//!
//! evalexpr 11 builds an operator tree from `status ==` or `status == 200 &&`
//! without complaint (the operator node is simply left with one child) and
//! only fails when the tree is evaluated, so the config check used to accept
//! them and every probe then failed with reason `expectation`. This module
//! tokenizes the source the way evalexpr does, but keeps the position of every
//! token, and walks it with a two-state machine (an operand is expected / an
//! operator is expected). The first place where the expression cannot go on
//! is reported with its character offset and what is missing there.

use std::fmt;

/// Where an expression is malformed and what is missing there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Character offset (0-based, in `char`s, not bytes) of the token the
    /// problem is reported at; the length of the source for "it ends here".
    pub at: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// What a token is, as far as the structure of the expression goes.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A literal or variable name; `text` is what was written.
    Value,
    /// An identifier that evalexpr treats as a function name because a value
    /// or `(` follows it directly.
    Function,
    /// `-` or `!` in front of an operand.
    Prefix,
    /// An infix operator (arithmetic, comparison, logic, assignment).
    Infix,
    /// `,` (tuple) or `;` (chain).
    Separator,
    Open,
    Close,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    text: String,
    /// Character offset of the first character.
    at: usize,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` at character {}", self.text, self.at + 1)
    }
}

/// Characters that end a literal or identifier, as in evalexpr's tokenizer.
fn is_special(c: char) -> bool {
    matches!(
        c,
        '+' | '-'
            | '*'
            | '/'
            | '%'
            | '^'
            | '('
            | ')'
            | ','
            | ';'
            | '='
            | '!'
            | '>'
            | '<'
            | '&'
            | '|'
            | '"'
    ) || c.is_whitespace()
}

/// Checks that `source` is a complete expression. `Ok` does not mean that
/// evalexpr accepts it (names and types are checked elsewhere), only that
/// nothing is missing or left over.
pub fn check(source: &str) -> Result<(), Malformed> {
    let tokens = tokenize(source)?;
    let end = source.chars().count();
    let mut expecting_operand = true;
    // Open brackets, for "never closed" and "no matching (" messages.
    let mut open: Vec<&Token> = Vec::new();
    let mut previous: Option<&Token> = None;
    for token in &tokens {
        if expecting_operand {
            match token.kind {
                Kind::Value => expecting_operand = false,
                Kind::Function | Kind::Prefix => {}
                Kind::Open => open.push(token),
                // `()` is the empty tuple: a value, e.g. a call without arguments.
                Kind::Close if previous.is_some_and(|p| p.kind == Kind::Open) => {
                    open.pop();
                    expecting_operand = false;
                }
                Kind::Infix | Kind::Separator | Kind::Close => {
                    return Err(missing_operand(previous, token));
                }
            }
        } else {
            match token.kind {
                Kind::Infix | Kind::Separator => expecting_operand = true,
                Kind::Close => {
                    if open.pop().is_none() {
                        return Err(Malformed {
                            at: token.at,
                            message: format!(
                                "{token} has no matching `(`; remove it or add the `(` it closes"
                            ),
                        });
                    }
                }
                Kind::Prefix => {
                    return Err(Malformed {
                        at: token.at,
                        message: format!(
                            "{token} follows a complete value; `!` negates what comes after it (`!contains_str(body, \"error\")`), and `!=` compares"
                        ),
                    });
                }
                Kind::Value | Kind::Function | Kind::Open => {
                    let after = previous.map_or_else(String::new, |p| format!(" between {p} and"));
                    return Err(Malformed {
                        at: token.at,
                        message: format!(
                            "an operator is missing{after} {token}; join them with `&&`, `||`, `==`, ... or remove one"
                        ),
                    });
                }
            }
        }
        previous = Some(token);
    }
    if expecting_operand {
        let message = match previous {
            None => "the expression has no value; write a condition such as `status == 200`"
                .to_owned(),
            Some(last) if last.kind == Kind::Open => format!(
                "the expression ends after {last}; write what belongs inside the brackets and close them with `)`"
            ),
            Some(last) if last.kind == Kind::Function => format!(
                "the function {last} has no argument; call it with brackets, e.g. `{}(body)`",
                last.text
            ),
            Some(last) => format!(
                "{last} is missing its right-hand operand: the expression ends there; {}",
                operand_hint(last)
            ),
        };
        return Err(Malformed { at: end, message });
    }
    if let Some(unclosed) = open.last() {
        return Err(Malformed {
            at: unclosed.at,
            message: format!("{unclosed} is never closed; add `)` where it ends"),
        });
    }
    Ok(())
}

/// The error for `token` standing where an operand was expected, after
/// `previous` (an operator, a separator, `(`, or nothing).
fn missing_operand(previous: Option<&Token>, token: &Token) -> Malformed {
    let message = match previous {
        None => format!(
            "{token} has no left-hand operand: the expression starts with it; write what it applies to first, e.g. `status {} 200`",
            token.text
        ),
        Some(p) if p.kind == Kind::Open => format!(
            "{token} has no left-hand operand: it follows {p} directly; write what it applies to first"
        ),
        Some(p) if p.text == "==" && token.text == "=" && p.at + 2 == token.at => format!(
            "{p} is followed by `=`: there is no `===` operator; write `==` to compare"
        ),
        Some(p) if p.text == "!=" && token.text == "=" && p.at + 2 == token.at => format!(
            "{p} is followed by `=`: there is no `!==` operator; write `!=` to compare"
        ),
        Some(p) if p.kind == Kind::Function => format!(
            "the function {p} is followed by {token} instead of its argument; call it with brackets, e.g. `{}(body)`",
            p.text
        ),
        Some(p) if token.kind == Kind::Close => format!(
            "{p} is missing its right-hand operand before {token}; {}",
            operand_hint(p)
        ),
        Some(p) => format!(
            "{p} is missing its right-hand operand: {token} follows it directly; remove one of them or write the value between them"
        ),
    };
    Malformed {
        at: token.at,
        message,
    }
}

/// What to write after an operator that lacks its right-hand side.
fn operand_hint(operator: &Token) -> String {
    match operator.text.as_str() {
        "&&" | "||" => format!(
            "write the condition it joins, e.g. `status == 200 {} latency_ms < 800`, or remove it",
            operator.text
        ),
        "," => "write the value after the comma or remove it".to_owned(),
        ";" => "remove the trailing `;`".to_owned(),
        "!" => "write what it negates, e.g. `!contains_str(body, \"error\")`".to_owned(),
        "-" => "write the number after it".to_owned(),
        text => format!("write the value to compare or combine with, e.g. `status {text} 200`"),
    }
}

/// Splits `source` into tokens the way evalexpr 11 does (same operators,
/// literals, strings with `\"` and `\\` escapes, `//` and `/* */` comments),
/// keeping each token's character offset.
fn tokenize(source: &str) -> Result<Vec<Token>, Malformed> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let three: String = chars[i..chars.len().min(i + 3)].iter().collect();
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if two == "//" {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if two == "/*" {
            let close = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/');
            match close {
                Some(j) => {
                    i = j + 2;
                    continue;
                }
                None => {
                    return Err(Malformed {
                        at: start,
                        message: format!(
                            "the comment `/*` at character {} is never closed; end it with `*/`",
                            start + 1
                        ),
                    })
                }
            }
        }
        let (kind, len) = if c == '"' {
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => {
                        return Err(Malformed {
                            at: start,
                            message: format!(
                                "the string starting with `\"` at character {} is never closed; end it with `\"`",
                                start + 1
                            ),
                        })
                    }
                    Some('"') => break,
                    Some('\\') => match chars.get(j + 1) {
                        Some('"' | '\\') => j += 2,
                        other => {
                            let escape = other.map_or_else(String::new, |c| c.to_string());
                            return Err(Malformed {
                                at: j,
                                message: format!(
                                    "`\\{escape}` at character {} is not an escape an expectation understands; only `\\\"` and `\\\\` are",
                                    j + 1
                                ),
                            });
                        }
                    },
                    Some(_) => j += 1,
                }
            }
            (Kind::Value, j + 1 - i)
        } else if three == "&&=" || three == "||=" {
            (Kind::Infix, 3)
        } else if matches!(
            two.as_str(),
            "==" | "!=" | ">=" | "<=" | "&&" | "||" | "+=" | "-=" | "*=" | "/=" | "%=" | "^="
        ) {
            (Kind::Infix, 2)
        } else if c == '&' || c == '|' {
            return Err(Malformed {
                at: start,
                message: format!(
                    "`{c}` at character {} is not an operator; write `{c}{c}`",
                    start + 1
                ),
            });
        } else if c == '-' || c == '!' {
            // Minus is binary after a value, as in evalexpr; `!` is always prefix.
            let after_value = tokens
                .last()
                .is_some_and(|t| matches!(t.kind, Kind::Value | Kind::Close));
            if c == '-' && after_value {
                (Kind::Infix, 1)
            } else {
                (Kind::Prefix, 1)
            }
        } else if matches!(c, '+' | '*' | '/' | '%' | '^' | '=' | '>' | '<') {
            (Kind::Infix, 1)
        } else if c == ',' || c == ';' {
            (Kind::Separator, 1)
        } else if c == '(' {
            (Kind::Open, 1)
        } else if c == ')' {
            (Kind::Close, 1)
        } else {
            let mut j = i;
            while j < chars.len() && !is_special(chars[j]) {
                j += 1;
            }
            // evalexpr reads `1e-3` and `2E+5` as one float.
            let literal: String = chars[i..j].iter().collect();
            if matches!(chars.get(j), Some('-' | '+')) {
                let mut k = j + 1;
                while k < chars.len() && !is_special(chars[k]) {
                    k += 1;
                }
                let joined: String = chars[i..k].iter().collect();
                if k > j + 1 && literal.parse::<f64>().is_err() && joined.parse::<f64>().is_ok() {
                    j = k;
                }
            }
            (Kind::Value, j - i)
        };
        let text: String = chars[i..i + len].iter().collect();
        tokens.push(Token {
            kind,
            text,
            at: start,
        });
        i += len;
    }
    mark_functions(&mut tokens);
    Ok(tokens)
}

/// evalexpr treats an identifier directly followed by a value or `(` as a
/// function call (`len(body)`, `len body`).
fn mark_functions(tokens: &mut [Token]) {
    for i in 0..tokens.len().saturating_sub(1) {
        let is_identifier = tokens[i].kind == Kind::Value && is_identifier(&tokens[i].text);
        let next_is_argument = matches!(tokens[i + 1].kind, Kind::Value | Kind::Open);
        if is_identifier && next_is_argument {
            tokens[i].kind = Kind::Function;
        }
    }
}

/// True for a literal that evalexpr reads as an identifier rather than a
/// number, boolean or string.
fn is_identifier(text: &str) -> bool {
    let number = text.parse::<i64>().is_ok()
        || text
            .strip_prefix("0x")
            .is_some_and(|hex| i64::from_str_radix(hex, 16).is_ok())
        || text.parse::<f64>().is_ok();
    !(text.starts_with('"') || number || text == "true" || text == "false")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_expressions_pass() {
        for source in [
            "status == 200",
            "status >= 200 && status < 400",
            "(status == 200 || status == 204) && latency_ms < 800",
            "!contains_str(body, \"error\")",
            "!(status == 500)",
            "status == -1 || -latency_ms < 0",
            "len(body) > 0",
            "len body > 0",
            "str::regex_matches(body, \"^ok\\\\s\")",
            "contains(headers, \"x: \\\"y\\\"\")",
            "if(status == 200, true, false)",
            "f() == ()",
            "latency_ms < 1e-3 || latency_ms > 2E+5",
            "status == 0x1F",
            "status == 200 // trailing comment",
            "status /* inline */ == 200",
            "2 ^ 3 % 5 * 1 / 1 + 1 - 1 == 4",
            "status = 200",
            "a &&= b",
        ] {
            assert_eq!(check(source), Ok(()), "{source}");
        }
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        let error = check("body == \"é\" &&").expect_err("trailing &&");
        assert_eq!(error.at, 14);
        let error = check("\"é\" 1").expect_err("two values");
        assert_eq!(error.at, 4);
    }
}
