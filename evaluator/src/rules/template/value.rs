//! The dynamic values a template works on: the Go types Prometheus hands to
//! `text/template` (float64 `$value`, `map[string]string` labels, query
//! samples), with Go's truthiness and printing rules.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::gofmt;

/// A query result element as templates see it (`.Labels`, `.Value`).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The root data (`.`) of an alert template, as in Prometheus.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateData {
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
}

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go's invalid `reflect.Value`: a missing map key; prints `<no value>`.
    NoValue,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Map(Rc<BTreeMap<String, String>>),
    Sample(Rc<TemplateSample>),
    Vector(Rc<Vec<TemplateSample>>),
    Data(Rc<TemplateData>),
}

impl Value {
    /// Go's truth: false, 0, nil, and empty strings/maps/slices are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::NoValue | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Vector(v) => !v.is_empty(),
            Value::Sample(_) | Value::Data(_) => true,
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
            Value::Str(s) => s.clone(),
            Value::Map(m) => go_map(m),
            Value::Sample(s) => format!(
                "{{{} {}}}",
                go_map(&s.labels),
                gofmt::format_float_v(s.value)
            ),
            Value::Vector(v) => {
                let items: Vec<String> = v
                    .iter()
                    .map(|s| {
                        format!(
                            "{{{} {}}}",
                            go_map(&s.labels),
                            gofmt::format_float_v(s.value)
                        )
                    })
                    .collect();
                format!("[{}]", items.join(" "))
            }
            Value::Data(d) => format!(
                "{{{} {} {} {}}}",
                go_map(&d.labels),
                go_map(&d.external_labels),
                d.external_url,
                gofmt::format_float_v(d.value)
            ),
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
            Value::Map(_) => "map[string]string",
            Value::Sample(_) => "*template.sample",
            Value::Vector(_) => "template.queryResult",
            Value::Data(_) => "struct",
        }
    }
}

fn go_map(m: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", items.join(" "))
}
