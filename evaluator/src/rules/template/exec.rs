//! Executes a parsed template against data, with Go `text/template`
//! semantics: pipelines pass their value as the last argument, `and`/`or`
//! short-circuit, `range`/`with`/`if` scope their variables, and a missing
//! map key is the empty string (Prometheus' `missingkey=zero`).

use std::rc::Rc;

use super::funcs::{self, FuncEnv};
use super::lexer::line_col;
use super::parser::{Arg, Cmd, Node, Pipe};
use super::value::Value;
use super::TemplateError;

/// Upper bound on executed nodes, so `{{ range 1000000000 }}` cannot stall
/// a rule evaluation.
const MAX_STEPS: usize = 1_000_000;

enum Flow {
    Normal,
    Break,
    Continue,
}

pub struct Exec<'a> {
    pub name: &'a str,
    pub src: &'a str,
    pub env: FuncEnv<'a>,
    pub vars: Vec<(String, Value)>,
    pub out: String,
    steps: usize,
}

impl<'a> Exec<'a> {
    pub fn new(name: &'a str, src: &'a str, env: FuncEnv<'a>, vars: Vec<(String, Value)>) -> Self {
        Exec {
            name,
            src,
            env,
            vars,
            out: String::new(),
            steps: 0,
        }
    }

    pub fn run(&mut self, dot: &Value, nodes: &[Node]) -> Result<(), TemplateError> {
        self.walk(dot, nodes).map(|_| ())
    }

    fn err(&self, pos: usize, at: &str, msg: impl Into<String>) -> TemplateError {
        let (line, col) = line_col(self.src, pos);
        // Go counts columns from 0, and Prometheus' prepended variable
        // definitions shift everything on the first line.
        let col = col - 1
            + if line == 1 {
                super::PROMETHEUS_DEFS_LEN
            } else {
                0
            };
        TemplateError::Exec {
            name: self.name.to_string(),
            line,
            col,
            at: at.to_string(),
            msg: msg.into(),
        }
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
                        self.out.push_str(&v.to_go_string());
                    }
                }
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
                        Value::Vector(samples) => samples
                            .iter()
                            .enumerate()
                            .map(|(i, s)| (Value::Int(i as i64), Value::Sample(Rc::new(s.clone()))))
                            .collect(),
                        Value::Map(m) => m
                            .iter()
                            .map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone())))
                            .collect(),
                        Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                        Value::NoValue | Value::Nil => Vec::new(),
                        other => {
                            return Err(self.err(
                                b.pipe.pos,
                                "range",
                                format!("range can't iterate over {}", other.to_go_string()),
                            ))
                        }
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
            return Err(self.err(
                cmd.pos,
                &first.to_string(),
                "can't give argument to non-function",
            ));
        }
        self.arg(dot, cmd.pos, first)
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
        funcs::call(name, &values, &self.env).map_err(|msg| self.err(pos, at, msg))
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
                // Prometheus expands with `missingkey=zero`: a missing
                // label is the empty string.
                Value::Map(m) => Value::Str(m.get(name).cloned().unwrap_or_default()),
                Value::Sample(s) => match name.as_str() {
                    "Labels" => Value::Map(Rc::new(s.labels.clone())),
                    "Value" => Value::Float(s.value),
                    _ => {
                        return Err(self.err(
                            pos,
                            &arg.to_string(),
                            format!("can't evaluate field {name} in type *template.sample"),
                        ))
                    }
                },
                Value::Data(d) => match name.as_str() {
                    "Labels" => Value::Map(Rc::new(d.labels.clone())),
                    "ExternalLabels" => Value::Map(Rc::new(d.external_labels.clone())),
                    "ExternalURL" => Value::Str(d.external_url.clone()),
                    "Value" => Value::Float(d.value),
                    _ => {
                        return Err(self.err(
                            pos,
                            &arg.to_string(),
                            format!("can't evaluate field {name} in type rules.tmplData"),
                        ))
                    }
                },
                Value::NoValue => Value::NoValue,
                Value::Nil => {
                    return Err(self.err(
                        pos,
                        &arg.to_string(),
                        format!("nil pointer evaluating interface {{}}.{name}"),
                    ))
                }
                other => {
                    return Err(self.err(
                        pos,
                        &arg.to_string(),
                        format!("can't evaluate field {name} in type {}", other.type_name()),
                    ))
                }
            };
        }
        Ok(v)
    }
}
