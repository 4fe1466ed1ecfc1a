//! The parsed form of a template: text, actions, control structures and
//! `{{template}}` calls, printed back the way Go's `parse` package prints
//! nodes (execution errors quote them).

use std::fmt;

use super::gofmt::go_quote;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Break,
    Continue,
    /// `{{template "name" pipeline}}` (the pipeline is optional; dot is
    /// nil without it).
    Template(TemplateCall),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateCall {
    /// Byte offset of the action, for error positions.
    pub pos: usize,
    pub name: String,
    pub pipe: Option<Pipe>,
}

impl fmt::Display for TemplateCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pipe {
            Some(p) => write!(f, "{{{{template {} {p}}}}}", go_quote(&self.name)),
            None => write!(f, "{{{{template {}}}}}", go_quote(&self.name)),
        }
    }
}

/// Whether a parsed body is empty in Go's sense (`parse.IsEmptyTree`):
/// only whitespace text. An empty `{{define}}` does not replace an
/// existing template of the same name.
pub fn is_empty_tree(nodes: &[Node]) -> bool {
    nodes.iter().all(|n| match n {
        Node::Text(t) => t.trim().is_empty(),
        _ => false,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Dot,
    /// `.A.B` relative to dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Variable(String, Vec<String>),
    /// A function name.
    Ident(String),
    /// `(pipeline).A.B`.
    Chain(Box<Pipe>, Vec<String>),
    Str(String),
    /// A number and its source text (errors quote it as written).
    Int(i64, String),
    Float(f64, String),
    Bool(bool),
    Nil,
}

/// Go's `parse.Node.String()` forms, used in `at <...>` of execution errors.
impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chain =
            |f: &mut fmt::Formatter<'_>, c: &[String]| c.iter().try_for_each(|x| write!(f, ".{x}"));
        match self {
            Arg::Dot => f.write_str("."),
            Arg::Field(c) => chain(f, c),
            Arg::Variable(v, c) => {
                f.write_str(v)?;
                chain(f, c)
            }
            Arg::Ident(n) => f.write_str(n),
            Arg::Chain(p, c) => {
                write!(f, "({p})")?;
                chain(f, c)
            }
            Arg::Str(s) => f.write_str(&go_quote(s)),
            Arg::Int(_, text) | Arg::Float(_, text) => f.write_str(text),
            Arg::Bool(b) => write!(f, "{b}"),
            Arg::Nil => f.write_str("nil"),
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            write!(
                f,
                "{} {} ",
                self.decl.join(", "),
                if self.is_assign { "=" } else { ":=" }
            )?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}
