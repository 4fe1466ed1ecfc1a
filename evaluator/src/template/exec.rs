//! Executes a parsed template against data, with Go `text/template`
//! semantics: pipelines pass their value as the last argument, `and`/`or`
//! short-circuit, `range`/`with`/`if` scope their variables, `{{template}}`
//! runs a named template of the set, methods take arguments, and a missing
//! map key is the empty string (`missingkey=zero`, as Prometheus and
//! Alertmanager run templates). In HTML mode every action's output is
//! escaped for where it lands, as `html/template` does.

use std::collections::HashMap;
use std::sync::Arc;

use super::ast::{Arg, Cmd, Node, Pipe, TemplateCall};
use super::lexer::line_col;
use super::value::Value;
use super::{html, TemplateError};

/// Upper bound on executed nodes, so `{{ range 1000000000 }}` cannot stall
/// a rule evaluation or a notification.
const MAX_STEPS: usize = 1_000_000;

/// Upper bound on `{{template}}` nesting (a template calling itself).
const MAX_DEPTH: usize = 100;

/// The functions a template may call besides `and`/`or` (which the
/// executor evaluates lazily).
pub trait Functions {
    /// Calls `name` on evaluated arguments; the error is the message after
    /// `at <...>: `.
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String>;
}

/// A named template: where it was defined and its body.
#[derive(Debug, Clone)]
pub struct Defined {
    /// The file (or source name) it was parsed from, for error positions.
    pub file: Arc<str>,
    pub src: Arc<str>,
    pub nodes: Arc<Vec<Node>>,
}

/// Where execution is: for error positions.
#[derive(Debug, Clone)]
pub struct Location {
    pub file: Arc<str>,
    /// The template being executed (`executing "NAME"`).
    pub name: String,
    pub src: Arc<str>,
    /// Added to columns on the first line (Prometheus prepends variable
    /// definitions to rule templates).
    pub first_line_offset: usize,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

pub struct Exec<'a> {
    loc: Location,
    funcs: &'a dyn Functions,
    named: &'a HashMap<String, Defined>,
    pub vars: Vec<(String, Value)>,
    pub out: String,
    steps: usize,
    depth: usize,
    html: bool,
}

impl<'a> Exec<'a> {
    /// An executor starting at `loc` with variables `vars` (`$` first);
    /// `html` escapes action output as `html/template` does.
    pub fn new(
        loc: Location,
        funcs: &'a dyn Functions,
        named: &'a HashMap<String, Defined>,
        vars: Vec<(String, Value)>,
        html: bool,
    ) -> Self {
        Exec {
            loc,
            funcs,
            named,
            vars,
            out: String::new(),
            steps: 0,
            depth: 0,
            html,
        }
    }

    pub fn run(&mut self, dot: &Value, nodes: &[Node]) -> Result<(), TemplateError> {
        self.walk(dot, nodes).map(|_| ())
    }

    fn err(&self, pos: usize, at: &str, msg: impl Into<String>) -> TemplateError {
        let (line, col) = line_col(&self.loc.src, pos);
        // Go counts columns from 0.
        let col = col - 1
            + if line == 1 {
                self.loc.first_line_offset
            } else {
                0
            };
        TemplateError::Execute {
            file: self.loc.file.to_string(),
            name: self.loc.name.clone(),
            line,
            col,
            at: at.to_string(),
            msg: msg.into(),
        }
    }

    /// Runs the named template `call.name` with dot set to the call's
    /// pipeline value (nil without one) and only `$` defined.
    fn template(&mut self, dot: &Value, call: &TemplateCall) -> Result<(), TemplateError> {
        let at = call.to_string();
        let Some(defined) = self.named.get(&call.name).cloned() else {
            return Err(self.err(
                call.pos,
                &at,
                format!("template {:?} not defined", call.name),
            ));
        };
        if self.depth >= MAX_DEPTH {
            return Err(self.err(
                call.pos,
                &at,
                format!("exceeded maximum template depth ({MAX_DEPTH})"),
            ));
        }
        let new_dot = match &call.pipe {
            Some(pipe) => self.pipe_value(dot, pipe)?,
            None => Value::Nil,
        };
        let outer_loc = std::mem::replace(
            &mut self.loc,
            Location {
                file: defined.file.clone(),
                name: call.name.clone(),
                src: defined.src.clone(),
                first_line_offset: 0,
            },
        );
        let outer_vars = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
        self.depth += 1;
        let result = self.walk(&new_dot, &defined.nodes);
        self.depth -= 1;
        self.vars = outer_vars;
        self.loc = outer_loc;
        result.map(|_| ())
    }

    fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Result<Flow, TemplateError> {
        for node in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(self.err(
                    0,
                    "",
                    format!("template executed more than {MAX_STEPS} steps"),
                ));
            }
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        if self.html {
                            let piped = pipe.cmds.last().and_then(|c| match &c.args[0] {
                                Arg::Ident(name) => Some(name.as_str()),
                                _ => None,
                            });
                            let escaped = html::escape(&self.out, &v, piped);
                            self.out.push_str(&escaped);
                        } else {
                            self.out.push_str(&v.to_go_string());
                        }
                    }
                }
                Node::Template(call) => self.template(dot, call)?,
                Node::If(b) | Node::With(b) => {
                    let scope = self.vars.len();
                    let v = self.pipeline(dot, &b.pipe)?;
                    let is_with = matches!(node, Node::With(_));
                    let flow = if v.truthy() {
                        let new_dot = if is_with { v } else { dot.clone() };
                        self.walk(&new_dot, &b.list)?
                    } else if let Some(else_list) = &b.else_list {
                        self.walk(dot, else_list)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(scope);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => {
                    let scope = self.vars.len();
                    let v = self.pipe_value(dot, &b.pipe)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::Map(m) | Value::Kv(m) => m
                            .iter()
                            .map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone())))
                            .collect(),
                        Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                        Value::NoValue | Value::Nil => Vec::new(),
                        other => match other.items() {
                            Some(items) => items
                                .into_iter()
                                .enumerate()
                                .map(|(i, item)| (Value::Int(i as i64), item))
                                .collect(),
                            None => {
                                return Err(self.err(
                                    b.pipe.pos,
                                    "range",
                                    format!("range can't iterate over {}", other.to_go_string()),
                                ))
                            }
                        },
                    };
                    if items.is_empty() {
                        if let Some(else_list) = &b.else_list {
                            self.walk(dot, else_list)?;
                        }
                    }
                    for (key, elem) in items {
                        match b.pipe.decl.as_slice() {
                            [] => {}
                            [one] => self.vars.push((one.clone(), elem.clone())),
                            [k, e, ..] => {
                                self.vars.push((k.clone(), key));
                                self.vars.push((e.clone(), elem.clone()));
                            }
                        }
                        let flow = self.walk(&elem, &b.list)?;
                        self.vars.truncate(scope);
                        if matches!(flow, Flow::Break) {
                            break;
                        }
                    }
                    self.vars.truncate(scope);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    /// Evaluates a pipeline and binds (or assigns) its declared variables.
    fn pipeline(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value, TemplateError> {
        let v = self.pipe_value(dot, pipe)?;
        if pipe.is_assign {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == pipe.decl[0]) {
                slot.1 = v.clone();
            }
        } else {
            for name in &pipe.decl {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn pipe_value(&mut self, dot: &Value, pipe: &Pipe) -> Result<Value, TemplateError> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.command(dot, cmd, value)?);
        }
        Ok(value.unwrap_or(Value::NoValue))
    }

    fn command(
        &mut self,
        dot: &Value,
        cmd: &Cmd,
        last: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let first = &cmd.args[0];
        if let Arg::Ident(name) = first {
            return self.call(dot, cmd.pos, &cmd.to_string(), name, &cmd.args[1..], last);
        }
        if cmd.args.len() > 1 || last.is_some() {
            if let Some(v) = self.method_call(dot, cmd, last.clone())? {
                return Ok(v);
            }
            return Err(self.err(
                cmd.pos,
                &first.to_string(),
                "can't give argument to non-function",
            ));
        }
        self.arg(dot, cmd.pos, first)
    }

    /// `.A.Method arg...`: a method of the value before the last name,
    /// called with the arguments (and the piped value). `None` if the
    /// command is not of that form or there is no such method.
    fn method_call(
        &mut self,
        dot: &Value,
        cmd: &Cmd,
        last: Option<Value>,
    ) -> Result<Option<Value>, TemplateError> {
        let first = &cmd.args[0];
        let (receiver, chain) = match first {
            Arg::Field(chain) => (dot.clone(), chain),
            Arg::Variable(name, chain) if !chain.is_empty() => (
                self.arg(dot, cmd.pos, &Arg::Variable(name.clone(), Vec::new()))?,
                chain,
            ),
            Arg::Chain(pipe, chain) if !chain.is_empty() => (self.pipe_value(dot, pipe)?, chain),
            _ => return Ok(None),
        };
        let Some((method, path)) = chain.split_last() else {
            return Ok(None);
        };
        let receiver = self.fields(cmd.pos, receiver, path, first)?;
        let mut values = Vec::with_capacity(cmd.args.len());
        for a in &cmd.args[1..] {
            values.push(self.arg(dot, cmd.pos, a)?);
        }
        values.extend(last);
        match receiver.method(method, &values) {
            Some(result) => result
                .map(Some)
                .map_err(|msg| self.err(cmd.pos, &cmd.to_string(), msg)),
            None => Ok(None),
        }
    }

    fn call(
        &mut self,
        dot: &Value,
        pos: usize,
        at: &str,
        name: &str,
        args: &[Arg],
        last: Option<Value>,
    ) -> Result<Value, TemplateError> {
        if name == "and" || name == "or" {
            if args.is_empty() && last.is_none() {
                return Err(self.err(
                    pos,
                    at,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let want = name == "or";
            let mut result = Value::NoValue;
            for a in args {
                result = self.arg(dot, pos, a)?;
                if result.truthy() == want {
                    return Ok(result);
                }
            }
            if let Some(l) = last {
                result = l;
            }
            return Ok(result);
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for a in args {
            values.push(self.arg(dot, pos, a)?);
        }
        values.extend(last);
        self.funcs
            .call(name, &values)
            .map_err(|msg| self.err(pos, at, msg))
    }

    fn arg(&mut self, dot: &Value, pos: usize, arg: &Arg) -> Result<Value, TemplateError> {
        Ok(match arg {
            Arg::Dot => dot.clone(),
            Arg::Field(chain) => self.fields(pos, dot.clone(), chain, arg)?,
            Arg::Variable(name, chain) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| self.err(pos, name, format!("undefined variable: {name}")))?;
                self.fields(pos, v, chain, arg)?
            }
            Arg::Ident(name) => self.call(dot, pos, name, name, &[], None)?,
            Arg::Chain(pipe, chain) => {
                let v = self.pipe_value(dot, pipe)?;
                self.fields(pos, v, chain, arg)?
            }
            Arg::Str(s) => Value::Str(s.clone()),
            Arg::Int(i, _) => Value::Int(*i),
            Arg::Float(f, _) => Value::Float(*f),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => return Err(self.err(pos, "nil", "nil is not a command")),
        })
    }

    fn fields(
        &self,
        pos: usize,
        mut v: Value,
        chain: &[String],
        arg: &Arg,
    ) -> Result<Value, TemplateError> {
        for name in chain {
            v = match &v {
                Value::NoValue => Value::NoValue,
                Value::Nil => {
                    return Err(self.err(
                        pos,
                        &arg.to_string(),
                        format!("nil pointer evaluating interface {{}}.{name}"),
                    ))
                }
                other => match other.field(name) {
                    Some(field) => field,
                    None => {
                        let type_name = match other {
                            Value::Object(o) => o.go_type(),
                            _ => other.type_name(),
                        };
                        return Err(self.err(
                            pos,
                            &arg.to_string(),
                            format!("can't evaluate field {name} in type {type_name}"),
                        ));
                    }
                },
            };
        }
        Ok(v)
    }
}
