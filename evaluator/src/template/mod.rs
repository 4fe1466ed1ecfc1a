//! Vigil's Go `text/template` engine, shared by Prometheus rule templates
//! ([`crate::rules::template`]: Prometheus' data and functions) and
//! Alertmanager notification templates ([`crate::notify::templates`]:
//! Alertmanager's data and functions).
//!
//! A [`TemplateSet`] holds named templates (`{{define}}`, `{{block}}`,
//! parsed from many files into one set) that texts call with
//! `{{template "name" .}}`; values are Go's basic types, string maps,
//! slices, times and application structs ([`Value`], [`Object`]); the
//! function map is the caller's ([`Functions`], with Go's builtins in
//! [`builtins`]). Output can be escaped as `html/template` escapes it.

pub mod ast;
pub mod builtins;
mod exec;
pub mod gofmt;
pub mod gotime;
pub mod html;
pub mod humanize;
mod lexer;
mod parser;
pub mod tzif;
pub mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use exec::{Defined, Functions, Location};
pub use gotime::GoTime;
pub use parser::Parsed;
pub use value::{Object, Value};

use ast::{Node, TemplateCall};

/// A template that failed to parse or to execute. Displays like Go's
/// errors: `template: NAME:LINE:COL: ...`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("template: {name}:{line}:{col}: {msg}")]
    Parse {
        name: String,
        line: usize,
        col: usize,
        msg: String,
    },
    /// Exactly Prometheus' text for rule templates (it shows up in
    /// annotations): Go's 0-based column, counted after the variable
    /// definitions Prometheus prepends.
    #[error("error executing template {name}: template: {name}:{line}:{col}: executing \"{name}\" at <{at}>: {msg}")]
    Exec {
        name: String,
        line: usize,
        col: usize,
        at: String,
        msg: String,
    },
    /// Go's execution error: the file and position, the template being
    /// executed, the failing node and what went wrong.
    #[error("template: {file}:{line}:{col}: executing \"{name}\" at <{at}>: {msg}")]
    Execute {
        file: String,
        name: String,
        line: usize,
        col: usize,
        at: String,
        msg: String,
    },
}

/// Parses `src` as one template: `named` allows `define`/`template`/
/// `block`; `predeclared` variables are in scope besides `$`.
pub fn parse(
    name: &str,
    src: &str,
    predeclared: &[&str],
    is_func: &dyn Fn(&str) -> bool,
    named: bool,
) -> Result<Parsed, TemplateError> {
    parser::parse(src, name, predeclared, is_func, named)
}

/// Runs `nodes` (parsed from `loc.src`) with dot `dot` and variables
/// `vars` (`$` first); `named` are the templates `{{template}}` may call.
pub fn execute(
    loc: Location,
    nodes: &[Node],
    dot: &Value,
    vars: Vec<(String, Value)>,
    funcs: &dyn Functions,
    named: &HashMap<String, Defined>,
    html: bool,
) -> Result<String, TemplateError> {
    let mut exec = exec::Exec::new(loc, funcs, named, vars, html);
    exec.run(dot, nodes)?;
    Ok(exec.out)
}

/// Named templates parsed from many sources into one set, as Go's
/// `Template.ParseGlob` builds it: a later definition of a name replaces
/// the earlier one unless its body is empty.
#[derive(Clone)]
pub struct TemplateSet {
    named: HashMap<String, Defined>,
    is_func: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.named.keys().collect();
        names.sort();
        f.debug_struct("TemplateSet")
            .field("names", &names)
            .finish()
    }
}

impl TemplateSet {
    /// An empty set whose templates may call the functions `is_func`
    /// accepts.
    pub fn new(is_func: Arc<dyn Fn(&str) -> bool + Send + Sync>) -> TemplateSet {
        TemplateSet {
            named: HashMap::new(),
            is_func,
        }
    }

    /// Parses a template file into the set: its `{{define}}`s, and its
    /// top-level text under `name` (as Go names a file's template after
    /// the file's base name). `file` names it in errors.
    pub fn add_file(&mut self, file: &str, name: &str, src: &str) -> Result<(), TemplateError> {
        let parsed = parse(file, src, &[], self.is_func.as_ref(), true)?;
        let src: Arc<str> = Arc::from(src);
        let file: Arc<str> = Arc::from(file);
        self.add_parsed(&file, &src, parsed, name);
        Ok(())
    }

    fn add_parsed(&mut self, file: &Arc<str>, src: &Arc<str>, parsed: Parsed, top_name: &str) {
        let all = parsed
            .defines
            .into_iter()
            .chain(std::iter::once((top_name.to_string(), parsed.nodes)));
        for (name, nodes) in all {
            if ast::is_empty_tree(&nodes) && self.named.contains_key(&name) {
                continue;
            }
            self.named.insert(
                name,
                Defined {
                    file: file.clone(),
                    src: src.clone(),
                    nodes: Arc::new(nodes),
                },
            );
        }
    }

    /// Whether `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.named.contains_key(name)
    }

    /// The `{{template "x"}}` calls of every template in the set whose
    /// `x` is not defined: a parse-style error at the first one.
    pub fn check_calls(&self) -> Result<(), TemplateError> {
        let mut names: Vec<&String> = self.named.keys().collect();
        names.sort();
        for name in names {
            let d = &self.named[name];
            self.check_nodes(&d.file, &d.src, &d.nodes, &HashMap::new())?;
        }
        Ok(())
    }

    fn check_nodes(
        &self,
        file: &str,
        src: &str,
        nodes: &[Node],
        local: &HashMap<String, Defined>,
    ) -> Result<(), TemplateError> {
        let mut calls = Vec::new();
        collect_calls(nodes, &mut calls);
        for call in calls {
            if !self.named.contains_key(&call.name) && !local.contains_key(&call.name) {
                let (line, col) = lexer::line_col(src, call.pos);
                return Err(TemplateError::Parse {
                    name: file.to_string(),
                    line,
                    col,
                    msg: format!("no such template {:?}", call.name),
                });
            }
        }
        Ok(())
    }

    /// Parses `text` (a receiver field) against the set: its own
    /// `{{define}}`s join a copy of the set. `name` names it in errors.
    /// Calls of undefined templates are found by [`Self::check_text`].
    pub fn parse_text(&self, name: &str, text: &str) -> Result<Text, TemplateError> {
        let parsed = parse(name, text, &[], self.is_func.as_ref(), true)?;
        let src: Arc<str> = Arc::from(text);
        let file: Arc<str> = Arc::from(name);
        let mut local = HashMap::new();
        for (n, nodes) in &parsed.defines {
            local.insert(
                n.clone(),
                Defined {
                    file: file.clone(),
                    src: src.clone(),
                    nodes: Arc::new(nodes.clone()),
                },
            );
        }
        Ok(Text {
            name: name.to_string(),
            src,
            nodes: Arc::new(parsed.nodes),
            local,
        })
    }

    /// A parse-style error at the first `{{template "x"}}` of a parsed
    /// text (or of its own `{{define}}`s) whose `x` is not defined.
    pub fn check_text(&self, text: &Text) -> Result<(), TemplateError> {
        self.check_nodes(&text.name, &text.src, &text.nodes, &text.local)?;
        for d in text.local.values() {
            self.check_nodes(&text.name, &text.src, &d.nodes, &text.local)?;
        }
        Ok(())
    }

    /// Runs a parsed text with dot `data`; `html` escapes as
    /// `html/template` does.
    pub fn execute(
        &self,
        text: &Text,
        data: &Value,
        funcs: &dyn Functions,
        html: bool,
    ) -> Result<String, TemplateError> {
        let named;
        let named_ref = if text.local.is_empty() {
            &self.named
        } else {
            let mut all = self.named.clone();
            all.extend(text.local.clone());
            named = all;
            &named
        };
        let loc = Location {
            file: Arc::from(text.name.as_str()),
            name: text.name.clone(),
            src: text.src.clone(),
            first_line_offset: 0,
        };
        execute(
            loc,
            &text.nodes,
            data,
            vec![("$".into(), data.clone())],
            funcs,
            named_ref,
            html,
        )
    }
}

/// A text parsed against a [`TemplateSet`], ready to run many times.
#[derive(Debug, Clone)]
pub struct Text {
    name: String,
    src: Arc<str>,
    nodes: Arc<Vec<Node>>,
    local: HashMap<String, Defined>,
}

fn collect_calls<'a>(nodes: &'a [Node], out: &mut Vec<&'a TemplateCall>) {
    for node in nodes {
        match node {
            Node::Template(call) => out.push(call),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                collect_calls(&b.list, out);
                if let Some(e) = &b.else_list {
                    collect_calls(e, out);
                }
            }
            Node::Text(_) | Node::Action(_) | Node::Break | Node::Continue => {}
        }
    }
}
