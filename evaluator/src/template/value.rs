//! The dynamic values a template works on: Go's basic types, string maps
//! (plain `map[string]string` and Alertmanager's `KV` with its methods),
//! slices, times, durations and application structs ([`Object`]), with
//! Go's truthiness and printing rules.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use super::gofmt;
use super::gotime::{self, GoTime};

/// A struct (or slice type with methods) that the application hands to a
/// template: its fields and methods, and how Go prints it.
pub trait Object: fmt::Debug {
    /// The type's name in error messages (`len of type ...`).
    fn type_name(&self) -> &'static str;
    /// The Go type as `%T` and field errors print it; the type name unless
    /// overridden.
    fn go_type(&self) -> &'static str {
        self.type_name()
    }
    /// A field or a method without arguments; `None` if there is none.
    fn field(&self, name: &str) -> Option<Value>;
    /// A method called with arguments; `None` if there is no such method.
    fn method(&self, _name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        None
    }
    /// The elements if the type is a slice (`range`, `len`, `index`).
    fn items(&self) -> Option<Vec<Value>> {
        None
    }
    /// What `fmt.Sprint` prints.
    fn go_string(&self) -> String;
    /// For functions that take a specific application type.
    fn as_any(&self) -> &dyn Any;
}

/// A template value.
#[derive(Debug, Clone)]
pub enum Value {
    /// Go's invalid `reflect.Value`: a missing map key; prints `<no value>`.
    NoValue,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `html/template.HTML` (from `safeHtml`): not escaped in HTML output.
    SafeHtml(String),
    /// A Go `map[string]string` (Prometheus labels).
    Map(Rc<BTreeMap<String, String>>),
    /// Alertmanager's `template.KV`: a string map with the methods
    /// `SortedPairs`, `Names`, `Values`, `Remove`, printed as Go prints a map.
    Kv(Rc<BTreeMap<String, String>>),
    /// A slice (`[]string`, `[]interface{}`).
    List(Rc<Vec<Value>>),
    /// A `time.Time`.
    Time(GoTime),
    /// A `time.Duration`, in nanoseconds.
    Duration(i64),
    Object(Rc<dyn Object>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::NoValue, Value::NoValue) | (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) | (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) | (Value::SafeHtml(a), Value::SafeHtml(b)) => a == b,
            (Value::Map(a), Value::Map(b)) | (Value::Kv(a), Value::Kv(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Time(a), Value::Time(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => {
                Rc::ptr_eq(a, b) || a.go_string() == b.go_string()
            }
            _ => false,
        }
    }
}

impl Value {
    /// Go's truth: false, 0, nil, and empty strings/maps/slices are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::NoValue | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Duration(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::SafeHtml(s) => !s.is_empty(),
            Value::Map(m) | Value::Kv(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Time(_) => true,
            Value::Object(o) => o.items().is_none_or(|items| !items.is_empty()),
        }
    }

    /// What `fmt.Sprint` prints for the value.
    pub fn to_go_string(&self) -> String {
        match self {
            Value::NoValue => "<no value>".into(),
            Value::Nil => "<nil>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => gofmt::format_float_v(*f),
            Value::Str(s) | Value::SafeHtml(s) => s.clone(),
            // Alertmanager 0.25's KV has no `String` method: Go's map form.
            Value::Map(m) | Value::Kv(m) => go_map(m),
            Value::List(l) => {
                let items: Vec<String> = l.iter().map(Value::to_go_string).collect();
                format!("[{}]", items.join(" "))
            }
            Value::Time(t) => t.to_string(),
            Value::Duration(d) => gotime::duration_string(*d),
            Value::Object(o) => o.go_string(),
        }
    }

    /// Go's type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::NoValue | Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::SafeHtml(_) => "template.HTML",
            Value::Map(_) => "map[string]string",
            Value::Kv(_) => "template.KV",
            Value::List(_) => "[]string",
            Value::Time(_) => "time.Time",
            Value::Duration(_) => "time.Duration",
            Value::Object(o) => o.type_name(),
        }
    }

    /// The elements of a slice value, `None` for anything else.
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::List(l) => Some(l.as_ref().clone()),
            Value::Object(o) => o.items(),
            _ => None,
        }
    }

    /// A field, or a method without arguments, of the value: `Ok(None)` if
    /// the value has no such field (the caller says so in Go's words).
    pub fn field(&self, name: &str) -> Option<Value> {
        match self {
            Value::Kv(m) => Some(kv_method(m, name, &[]).unwrap_or_else(|_| {
                // Not a method: a key lookup, missing keys are "".
                Value::Str(m.get(name).cloned().unwrap_or_default())
            })),
            Value::Map(m) => Some(Value::Str(m.get(name).cloned().unwrap_or_default())),
            Value::Time(t) => gotime::time_method(t, name, &[]).and_then(Result::ok),
            Value::Object(o) => o.field(name),
            _ => None,
        }
    }

    /// A method called with arguments: `None` if there is no such method.
    pub fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        match self {
            Value::Kv(m) if KV_METHODS.contains(&name) => Some(kv_method(m, name, args)),
            Value::Time(t) => gotime::time_method(t, name, args),
            Value::Object(o) => o.method(name, args),
            _ => None,
        }
    }
}

const KV_METHODS: [&str; 4] = ["SortedPairs", "Names", "Values", "Remove"];

/// Alertmanager's `KV.SortedPairs` order: `alertname` first, then the other
/// names in byte order.
pub fn sorted_pairs(m: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(m.len());
    if let Some(v) = m.get("alertname") {
        pairs.push(("alertname".into(), v.clone()));
    }
    pairs.extend(
        m.iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    pairs
}

fn strings(items: impl Iterator<Item = String>) -> Value {
    Value::List(Rc::new(items.map(Value::Str).collect()))
}

fn kv_method(m: &BTreeMap<String, String>, name: &str, args: &[Value]) -> Result<Value, String> {
    let want = if name == "Remove" { 1 } else { 0 };
    if args.len() != want {
        return Err(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        ));
    }
    match name {
        "SortedPairs" => Ok(Value::Object(Rc::new(Pairs(sorted_pairs(m))))),
        "Names" => Ok(strings(sorted_pairs(m).into_iter().map(|(k, _)| k))),
        "Values" => Ok(strings(sorted_pairs(m).into_iter().map(|(_, v)| v))),
        "Remove" => {
            let keys = string_list(&args[0]).ok_or_else(|| {
                format!(
                    "wrong type for value; expected []string; got {}",
                    args[0].type_name()
                )
            })?;
            let rest = m
                .iter()
                .filter(|(k, _)| !keys.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok(Value::Kv(Rc::new(rest)))
        }
        _ => Err(format!("{name} is not a method of template.KV")),
    }
}

/// The strings of a `[]string` value.
pub fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::List(l) => l
            .iter()
            .map(|x| match x {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        Value::Nil | Value::NoValue => Some(Vec::new()),
        _ => None,
    }
}

/// Alertmanager's `template.Pairs`: sorted `.Name`/`.Value` pairs with the
/// methods `Names` and `Values`.
#[derive(Debug)]
pub struct Pairs(pub Vec<(String, String)>);

/// One `template.Pair`.
#[derive(Debug)]
pub struct Pair(pub String, pub String);

impl Object for Pairs {
    fn type_name(&self) -> &'static str {
        "template.Pairs"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Names" => Some(strings(self.0.iter().map(|(k, _)| k.clone()))),
            "Values" => Some(strings(self.0.iter().map(|(_, v)| v.clone()))),
            _ => None,
        }
    }
    fn items(&self) -> Option<Vec<Value>> {
        Some(
            self.0
                .iter()
                .map(|(k, v)| Value::Object(Rc::new(Pair(k.clone(), v.clone()))))
                .collect(),
        )
    }
    /// Alertmanager 0.25's `Pairs` has no `String` method: Go prints the
    /// slice of structs.
    fn go_string(&self) -> String {
        let items: Vec<String> = self.0.iter().map(|(k, v)| format!("{{{k} {v}}}")).collect();
        format!("[{}]", items.join(" "))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Object for Pair {
    fn type_name(&self) -> &'static str {
        "template.Pair"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::Str(self.0.clone())),
            "Value" => Some(Value::Str(self.1.clone())),
            _ => None,
        }
    }
    fn go_string(&self) -> String {
        format!("{{{} {}}}", self.0, self.1)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Go's `%v` of a `map[string]string`: `map[k:v k:v]`, keys sorted.
pub fn go_map(m: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", items.join(" "))
}
