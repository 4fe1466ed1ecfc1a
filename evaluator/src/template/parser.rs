//! Builds the template tree from tokens, checking at parse time what Go's
//! `text/template` checks then: defined functions, defined variables,
//! balanced `if`/`range`/`with`/`end`, so `check rules` catches them.

use super::ast::{Arg, Branch, Cmd, Node, Pipe, TemplateCall};
use super::lexer::{line_col, Tok, Token};
use super::TemplateError;

struct Parser<'a> {
    src: &'a str,
    name: &'a str,
    tokens: Vec<Token>,
    i: usize,
    vars: Vec<String>,
    funcs: &'a dyn Fn(&str) -> bool,
    range_depth: usize,
    /// `None` where `define`/`template`/`block` are refused (rule
    /// templates); else the templates defined so far.
    defines: Option<Vec<(String, Vec<Node>)>>,
    /// Nesting of control structures and defines: `define` is only allowed
    /// at the top level.
    depth: usize,
}

/// What ended a list of nodes.
enum Terminator {
    Eof,
    End,
    Else(usize),
}

/// One parsed source: its top-level nodes and the templates it defines
/// with `{{define}}` and `{{block}}`, in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub nodes: Vec<Node>,
    pub defines: Vec<(String, Vec<Node>)>,
}

/// Parses `src`; `predeclared` variables (e.g. `$labels`) are in scope,
/// `is_func` says which function names exist, and `named` allows
/// `define`/`template`/`block` (else they are a parse error).
pub fn parse(
    src: &str,
    name: &str,
    predeclared: &[&str],
    is_func: &dyn Fn(&str) -> bool,
    named: bool,
) -> Result<Parsed, TemplateError> {
    let tokens = super::lexer::lex(src, name)?;
    let mut vars = vec!["$".to_string()];
    vars.extend(predeclared.iter().map(|s| s.to_string()));
    let mut p = Parser {
        src,
        name,
        tokens,
        i: 0,
        vars,
        funcs: is_func,
        range_depth: 0,
        defines: named.then(Vec::new),
        depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        Terminator::Eof => Ok(Parsed {
            nodes,
            defines: p.defines.unwrap_or_default(),
        }),
        Terminator::End => Err(p.err(p.pos(), "unexpected {{end}}")),
        Terminator::Else(pos) => Err(p.err(pos, "unexpected {{else}}")),
    }
}

impl Parser<'_> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> TemplateError {
        let (line, col) = line_col(self.src, pos);
        TemplateError::Parse {
            name: self.name.to_string(),
            line,
            col,
            msg: msg.into(),
        }
    }

    fn pos(&self) -> usize {
        self.tokens
            .get(self.i)
            .or(self.tokens.last())
            .map_or(0, |t| t.pos)
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.i).map(|t| &t.kind)
    }

    fn peek_non_space(&self) -> Option<&Tok> {
        self.tokens[self.i..]
            .iter()
            .map(|t| &t.kind)
            .find(|k| **k != Tok::Space)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn next_non_space(&mut self) -> Option<Token> {
        while self.peek() == Some(&Tok::Space) {
            self.i += 1;
        }
        self.next()
    }

    fn expect_right(&mut self, context: &str) -> Result<(), TemplateError> {
        let pos = self.pos();
        match self.next_non_space() {
            Some(Token {
                kind: Tok::RightDelim,
                ..
            }) => Ok(()),
            _ => Err(self.err(pos, format!("unexpected token in {context}; expected }}}}"))),
        }
    }

    fn list(&mut self) -> Result<(Vec<Node>, Terminator), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let Some(tok) = self.next() else {
                return Ok((nodes, Terminator::Eof));
            };
            match tok.kind {
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::LeftDelim => {
                    let kw = match self.peek_non_space() {
                        Some(Tok::Ident(k)) => Some(k.clone()),
                        _ => None,
                    };
                    let kw_pos = self.pos();
                    match kw.as_deref() {
                        Some("end") => {
                            self.next_non_space();
                            self.expect_right("end")?;
                            return Ok((nodes, Terminator::End));
                        }
                        Some("else") => {
                            self.next_non_space();
                            return Ok((nodes, Terminator::Else(kw_pos)));
                        }
                        Some("if") => {
                            self.next_non_space();
                            nodes.push(Node::If(self.branch("if")?));
                        }
                        Some("with") => {
                            self.next_non_space();
                            nodes.push(Node::With(self.branch("with")?));
                        }
                        Some("range") => {
                            self.next_non_space();
                            self.range_depth += 1;
                            let b = self.branch("range");
                            self.range_depth -= 1;
                            nodes.push(Node::Range(b?));
                        }
                        Some(k @ ("break" | "continue")) => {
                            if self.range_depth == 0 {
                                return Err(
                                    self.err(kw_pos, format!("{{{{{k}}}}} outside {{{{range}}}}"))
                                );
                            }
                            self.next_non_space();
                            self.expect_right(k)?;
                            nodes.push(if k == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        Some(k @ ("define" | "template" | "block")) => {
                            if self.defines.is_none() {
                                return Err(self.err(
                                    kw_pos,
                                    format!("{{{{{k}}}}} is not supported in rule templates"),
                                ));
                            }
                            let at = self.next_non_space().map_or(kw_pos, |t| t.pos);
                            if let Some(node) = self.named(k, at)? {
                                nodes.push(node);
                            }
                        }
                        _ => {
                            let pipe = self.pipeline("command", true)?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                _ => return Err(self.err(tok.pos, "unexpected token outside action")),
            }
        }
    }

    /// `if`/`with`/`range` after the keyword: pipeline, body, optional else.
    fn branch(&mut self, kind: &str) -> Result<Branch, TemplateError> {
        self.depth += 1;
        let branch = self.branch_body(kind);
        self.depth -= 1;
        branch
    }

    fn branch_body(&mut self, kind: &str) -> Result<Branch, TemplateError> {
        let scope = self.vars.len();
        let pipe = self.pipeline(kind, true)?;
        if kind == "range" && pipe.decl.len() > 2 {
            return Err(self.err(pipe.pos, "too many declarations in range"));
        }
        let (list, end) = self.list()?;
        let else_list = match end {
            Terminator::Eof => {
                return Err(self.err(
                    pipe.pos,
                    format!("unexpected EOF: {{{{{kind}}}}} without {{{{end}}}}"),
                ))
            }
            Terminator::End => None,
            Terminator::Else(_) => {
                // `{{else if ...}}` / `{{else with ...}}` nest a branch that
                // shares our {{end}}.
                let chained = match self.peek_non_space() {
                    Some(Tok::Ident(k)) if (k == "if" || k == "with") && kind != "range" => {
                        Some(k.clone())
                    }
                    _ => None,
                };
                if let Some(k) = chained {
                    self.next_non_space();
                    let inner = self.branch(&k)?;
                    Some(vec![if k == "if" {
                        Node::If(inner)
                    } else {
                        Node::With(inner)
                    }])
                } else {
                    self.expect_right("else")?;
                    let (else_list, end) = self.list()?;
                    match end {
                        Terminator::End => Some(else_list),
                        Terminator::Else(pos) => {
                            return Err(self.err(pos, "expected end; found {{else}}"))
                        }
                        Terminator::Eof => {
                            return Err(self.err(
                                pipe.pos,
                                format!("unexpected EOF: {{{{{kind}}}}} without {{{{end}}}}"),
                            ))
                        }
                    }
                }
            }
        };
        self.vars.truncate(scope);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    /// `define`, `template` or `block` after the keyword. A define adds to
    /// the defined templates and leaves no node.
    fn named(&mut self, kw: &str, kw_pos: usize) -> Result<Option<Node>, TemplateError> {
        let name_pos = self.pos();
        let name = match self.next_non_space() {
            Some(Token {
                kind: Tok::Str(s), ..
            }) => s,
            _ => {
                return Err(self.err(
                    name_pos,
                    format!(
                        "unexpected token in {{{{{kw}}}}} clause; expected a quoted template name"
                    ),
                ))
            }
        };
        if kw == "template" {
            let pipe = if self.peek_non_space() == Some(&Tok::RightDelim) {
                self.next_non_space();
                None
            } else {
                Some(self.pipeline("template", false)?)
            };
            return Ok(Some(Node::Template(TemplateCall {
                pos: kw_pos,
                name,
                pipe,
            })));
        }
        if kw == "define" && self.depth > 0 {
            return Err(self.err(kw_pos, "{{define}} is only allowed at the top level"));
        }
        let pipe = if kw == "block" {
            Some(self.pipeline("block", false)?)
        } else {
            self.expect_right("define clause")?;
            None
        };
        // A defined template sees only `$` (its own dot).
        let outer = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let outer_range = std::mem::replace(&mut self.range_depth, 0);
        self.depth += 1;
        let body = self.list();
        self.depth -= 1;
        self.vars = outer;
        self.range_depth = outer_range;
        match body? {
            (list, Terminator::End) => {
                if let Some(defines) = &mut self.defines {
                    defines.push((name.clone(), list));
                }
            }
            (_, Terminator::Else(pos)) => {
                return Err(self.err(pos, format!("unexpected {{{{else}}}} in {{{{{kw}}}}}")))
            }
            (_, Terminator::Eof) => {
                return Err(self.err(
                    kw_pos,
                    format!("unexpected EOF: {{{{{kw}}}}} without {{{{end}}}}"),
                ))
            }
        }
        Ok(pipe.map(|pipe| {
            Node::Template(TemplateCall {
                pos: kw_pos,
                name,
                pipe: Some(pipe),
            })
        }))
    }

    fn pipeline(&mut self, context: &str, allow_decl: bool) -> Result<Pipe, TemplateError> {
        let pos = self.pos();
        let mut decl = Vec::new();
        let mut is_assign = false;
        // Look ahead for `$x :=`, `$x =` or `$k, $v :=`.
        if allow_decl {
            let save = self.i;
            let mut names = Vec::new();
            while let Some(Token {
                kind: Tok::Variable(v),
                ..
            }) = self.next_non_space()
            {
                names.push(v);
                match self.next_non_space().map(|t| t.kind) {
                    Some(Tok::Declare) => {
                        decl = names.clone();
                        break;
                    }
                    Some(Tok::Assign) if names.len() == 1 => {
                        decl = names.clone();
                        is_assign = true;
                        break;
                    }
                    Some(Tok::Comma) if context == "range" && names.len() == 1 => continue,
                    _ => break,
                }
            }
            if decl.is_empty() {
                self.i = save;
            } else if is_assign && !self.vars.contains(&decl[0]) {
                return Err(self.err(pos, format!("undefined variable \"{}\"", decl[0])));
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.command()?;
            cmds.push(cmd);
            match self.next_non_space() {
                Some(Token {
                    kind: Tok::Pipe, ..
                }) => continue,
                Some(Token {
                    kind: Tok::RightDelim,
                    ..
                }) if context != "paren" => break,
                Some(Token {
                    kind: Tok::RParen, ..
                }) if context == "paren" => break,
                Some(t) => {
                    return Err(self.err(
                        t.pos,
                        format!("unexpected {} in {context}", describe(&t.kind)),
                    ))
                }
                None => return Err(self.err(pos, format!("unclosed action in {context}"))),
            }
        }
        if !is_assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe {
            pos,
            decl,
            is_assign,
            cmds,
        })
    }

    fn command(&mut self) -> Result<Cmd, TemplateError> {
        while self.peek() == Some(&Tok::Space) {
            self.i += 1;
        }
        let pos = self.pos();
        let mut args = Vec::new();
        loop {
            while self.peek() == Some(&Tok::Space) {
                self.i += 1;
            }
            match self.peek() {
                None | Some(Tok::RightDelim | Tok::Pipe | Tok::RParen) => break,
                _ => {}
            }
            let arg = self.operand()?;
            args.push(arg);
            match self.peek() {
                Some(Tok::Space | Tok::RightDelim | Tok::Pipe | Tok::RParen) | None => {}
                Some(k) => {
                    let k = k.clone();
                    return Err(self.err(
                        self.pos(),
                        format!("unexpected {} in operand", describe(&k)),
                    ));
                }
            }
        }
        if args.is_empty() {
            return Err(self.err(pos, "missing value for command"));
        }
        Ok(Cmd { pos, args })
    }

    fn fields(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Tok::Field(f)) = self.peek() {
            out.push(f.clone());
            self.i += 1;
        }
        out
    }

    fn operand(&mut self) -> Result<Arg, TemplateError> {
        let Some(tok) = self.next() else {
            return Err(self.err(self.pos(), "unexpected EOF in operand"));
        };
        let arg = match tok.kind {
            Tok::Dot => {
                if let Some(Tok::Field(_)) = self.peek() {
                    return Err(self.err(tok.pos, "unexpected . after term \".\""));
                }
                Arg::Dot
            }
            Tok::Field(f) => {
                let mut chain = vec![f];
                chain.extend(self.fields());
                Arg::Field(chain)
            }
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    return Err(self.err(tok.pos, format!("undefined variable \"{v}\"")));
                }
                let chain = self.fields();
                Arg::Variable(v, chain)
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => {
                    if !(self.funcs)(&name) {
                        return Err(self.err(tok.pos, format!("function \"{name}\" not defined")));
                    }
                    Arg::Ident(name)
                }
            },
            Tok::Str(s) => Arg::Str(s),
            Tok::Char(c) => Arg::Int(c as i64, format!("{c:?}")),
            Tok::Number(n) => parse_number(&n)
                .ok_or_else(|| self.err(tok.pos, format!("bad number syntax: {n:?}")))?,
            Tok::LParen => {
                let pipe = self.pipeline("paren", false)?;
                let chain = self.fields();
                Arg::Chain(Box::new(pipe), chain)
            }
            other => {
                return Err(self.err(
                    tok.pos,
                    format!("unexpected {} in operand", describe(&other)),
                ))
            }
        };
        Ok(arg)
    }
}

fn parse_number(n: &str) -> Option<Arg> {
    let clean = n.replace('_', "");
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let int = if let Some(hex) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        i64::from_str_radix(oct, 8).ok()
    } else if let Some(bin) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        i64::from_str_radix(bin, 2).ok()
    } else {
        body.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return Some(Arg::Int(if neg { -i } else { i }, n.to_string()));
    }
    let lower = body.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    body.parse::<f64>()
        .ok()
        .map(|f| Arg::Float(if neg { -f } else { f }, n.to_string()))
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::RightDelim => "\"}}\"".into(),
        Tok::Space => "space".into(),
        Tok::Ident(s) => format!("{s:?}"),
        Tok::Field(s) => format!("\".{s}\""),
        Tok::Dot => "\".\"".into(),
        Tok::Variable(s) => format!("{s:?}"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Number(s) => format!("{s:?}"),
        Tok::Char(c) => format!("{c:?}"),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
    }
}
