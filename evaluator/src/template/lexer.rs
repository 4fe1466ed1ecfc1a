//! Splits a Go template into text and action tokens, handling `{{-`/`-}}`
//! whitespace trimming and `{{/* comments */}}` the way `text/template` does.

use super::TemplateError;

/// One token. `pos` is a byte offset into the template source.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: Tok,
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    /// Identifier: a function name or keyword.
    Ident(String),
    /// `.Name` (field access; chained fields are separate tokens).
    Field(String),
    Dot,
    /// `$name` or `$`.
    Variable(String),
    Str(String),
    Number(String),
    Char(char),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

/// Line and column (1-based) of a byte offset, for messages.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = &src[..pos.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

fn err(src: &str, name: &str, pos: usize, msg: impl Into<String>) -> TemplateError {
    let (line, col) = line_col(src, pos);
    TemplateError::Parse {
        name: name.to_string(),
        line,
        col,
        msg: msg.into(),
    }
}

/// Tokenises the whole template.
pub fn lex(src: &str, name: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    let bytes = src.as_bytes();
    let mut trim_next_text = false;
    while pos < src.len() {
        let Some(rel) = src[pos..].find("{{") else {
            push_text(&mut tokens, &src[pos..], pos, trim_next_text, false);
            break;
        };
        let open = pos + rel;
        let trim_left = src[open + 2..].starts_with("- ")
            || src[open + 2..].starts_with("-\t")
            || src[open + 2..].starts_with("-\n")
            || src[open + 2..].starts_with("-\r");
        push_text(&mut tokens, &src[pos..open], pos, trim_next_text, trim_left);
        trim_next_text = false;
        let mut i = open + 2;
        if trim_left {
            i += 1;
        }
        // Comments: `{{/*` ... `*/}}`, optionally with trim markers.
        let after_space = i + src[i..].len() - src[i..].trim_start().len();
        if src[after_space..].starts_with("/*") {
            let Some(end) = src[after_space + 2..].find("*/") else {
                return Err(err(src, name, open, "unclosed comment"));
            };
            let mut j = after_space + 2 + end + 2;
            let rest = &src[j..];
            if let Some(r) = rest
                .strip_prefix(" -}}")
                .or(rest.strip_prefix("\t-}}"))
                .or(rest.strip_prefix("\n-}}"))
            {
                trim_next_text = true;
                j = src.len() - r.len();
            } else if rest.starts_with("}}") {
                j += 2;
            } else {
                return Err(err(src, name, j, "comment ends before closing delimiter"));
            }
            pos = j;
            continue;
        }
        tokens.push(Token {
            kind: Tok::LeftDelim,
            pos: open,
        });
        loop {
            if i >= src.len() {
                return Err(err(src, name, open, "unclosed action"));
            }
            let c = bytes[i];
            if c.is_ascii_whitespace() {
                let start = i;
                while i < src.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                if src[i..].starts_with("-}}") {
                    trim_next_text = true;
                    tokens.push(Token {
                        kind: Tok::RightDelim,
                        pos: i,
                    });
                    i += 3;
                    break;
                }
                tokens.push(Token {
                    kind: Tok::Space,
                    pos: start,
                });
                continue;
            }
            if src[i..].starts_with("}}") {
                tokens.push(Token {
                    kind: Tok::RightDelim,
                    pos: i,
                });
                i += 2;
                break;
            }
            let start = i;
            let kind = match c {
                b'|' | b'(' | b')' | b',' | b'=' => {
                    i += 1;
                    match c {
                        b'|' => Tok::Pipe,
                        b'(' => Tok::LParen,
                        b')' => Tok::RParen,
                        b',' => Tok::Comma,
                        _ => Tok::Assign,
                    }
                }
                b':' => {
                    if bytes.get(i + 1) != Some(&b'=') {
                        return Err(err(src, name, i, "expected :="));
                    }
                    i += 2;
                    Tok::Declare
                }
                b'"' => {
                    let (s, end) = lex_quoted(src, name, i)?;
                    i = end;
                    Tok::Str(s)
                }
                b'`' => {
                    let Some(end) = src[i + 1..].find('`') else {
                        return Err(err(src, name, i, "unterminated raw quoted string"));
                    };
                    let s = src[i + 1..i + 1 + end].to_string();
                    i = i + 2 + end;
                    Tok::Str(s)
                }
                b'\'' => {
                    let rest = &src[i + 1..];
                    let mut chars = rest.char_indices();
                    let ch = match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => '\n',
                            Some((_, 't')) => '\t',
                            Some((_, c)) => c,
                            None => {
                                return Err(err(src, name, i, "unterminated character constant"))
                            }
                        },
                        Some((_, c)) => c,
                        None => return Err(err(src, name, i, "unterminated character constant")),
                    };
                    match chars.next() {
                        Some((off, '\'')) => i = i + 1 + off + 1,
                        _ => return Err(err(src, name, i, "unterminated character constant")),
                    }
                    Tok::Char(ch)
                }
                b'$' => {
                    i += 1;
                    while i < src.len() && is_alnum(bytes[i]) {
                        i += 1;
                    }
                    Tok::Variable(src[start..i].to_string())
                }
                b'.' => {
                    if bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit()) {
                        i = lex_number(src, i);
                        Tok::Number(src[start..i].to_string())
                    } else {
                        i += 1;
                        while i < src.len() && is_alnum(bytes[i]) {
                            i += 1;
                        }
                        if i == start + 1 {
                            Tok::Dot
                        } else {
                            Tok::Field(src[start + 1..i].to_string())
                        }
                    }
                }
                b'0'..=b'9' | b'+' | b'-' => {
                    i = lex_number(src, i);
                    if i == start + 1 && !bytes[start].is_ascii_digit() {
                        return Err(err(
                            src,
                            name,
                            start,
                            format!("bad character {:?}", c as char),
                        ));
                    }
                    Tok::Number(src[start..i].to_string())
                }
                c if is_alnum(c) => {
                    while i < src.len() && is_alnum(bytes[i]) {
                        i += 1;
                    }
                    Tok::Ident(src[start..i].to_string())
                }
                _ => {
                    let ch = src[i..].chars().next().unwrap_or('?');
                    return Err(err(src, name, i, format!("unexpected {ch:?} in command")));
                }
            };
            tokens.push(Token { kind, pos: start });
        }
        pos = i;
    }
    Ok(tokens)
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn lex_number(src: &str, mut i: usize) -> usize {
    let bytes = src.as_bytes();
    if matches!(bytes.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    while i < src.len() {
        let b = bytes[i];
        let exp_sign = matches!(b, b'+' | b'-')
            && matches!(
                bytes.get(i.wrapping_sub(1)),
                Some(b'e' | b'E' | b'p' | b'P')
            );
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || exp_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

fn lex_quoted(src: &str, name: &str, start: usize) -> Result<(String, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Ok((out, start + 1 + off + 1)),
            '\n' => break,
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '\'')) => out.push('\''),
                Some((_, c)) => {
                    return Err(err(
                        src,
                        name,
                        start,
                        format!("unsupported escape sequence \\{c} in string"),
                    ));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(err(src, name, start, "unterminated quoted string"))
}

fn push_text(tokens: &mut Vec<Token>, text: &str, pos: usize, trim_start: bool, trim_end: bool) {
    let mut t = text;
    let mut p = pos;
    if trim_start {
        let trimmed = t.trim_start();
        p += t.len() - trimmed.len();
        t = trimmed;
    }
    if trim_end {
        t = t.trim_end();
    }
    if !t.is_empty() {
        tokens.push(Token {
            kind: Tok::Text(t.to_string()),
            pos: p,
        });
    }
}
