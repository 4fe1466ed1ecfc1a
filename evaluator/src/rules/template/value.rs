//! The Go types Prometheus hands to rule templates, as template objects:
//! the alert data (`.Labels`, `.ExternalLabels`, `.ExternalURL`, `.Value`),
//! query samples (`.Labels`, `.Value`) and query results, printed as Go
//! prints them.

use std::any::Any;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::template::gofmt;
use crate::template::value::go_map;
pub use crate::template::{Object, Value};

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

/// The result of the `query` function (Prometheus' `queryResult`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult(pub Vec<TemplateSample>);

impl QueryResult {
    /// The samples of a query result value (nil is empty); `None` for any
    /// other value.
    pub fn of(v: &Value) -> Option<Vec<TemplateSample>> {
        match v {
            Value::Object(o) => o
                .as_any()
                .downcast_ref::<QueryResult>()
                .map(|q| q.0.clone()),
            Value::Nil => Some(Vec::new()),
            _ => None,
        }
    }

    pub fn value(samples: Vec<TemplateSample>) -> Value {
        Value::Object(Rc::new(QueryResult(samples)))
    }
}

impl TemplateSample {
    /// The sample of a sample value.
    pub fn of(v: &Value) -> Option<TemplateSample> {
        match v {
            Value::Object(o) => o.as_any().downcast_ref::<TemplateSample>().cloned(),
            _ => None,
        }
    }

    pub fn value(self) -> Value {
        Value::Object(Rc::new(self))
    }
}

fn sample_string(s: &TemplateSample) -> String {
    format!(
        "{{{} {}}}",
        go_map(&s.labels),
        gofmt::format_float_v(s.value)
    )
}

impl Object for TemplateSample {
    fn type_name(&self) -> &'static str {
        "*template.sample"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Labels" => Some(Value::Map(Rc::new(self.labels.clone()))),
            "Value" => Some(Value::Float(self.value)),
            _ => None,
        }
    }
    fn go_string(&self) -> String {
        sample_string(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Object for QueryResult {
    fn type_name(&self) -> &'static str {
        "template.queryResult"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn items(&self) -> Option<Vec<Value>> {
        Some(self.0.iter().map(|s| s.clone().value()).collect())
    }
    fn go_string(&self) -> String {
        let items: Vec<String> = self.0.iter().map(sample_string).collect();
        format!("[{}]", items.join(" "))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Object for TemplateData {
    fn type_name(&self) -> &'static str {
        "struct"
    }
    fn go_type(&self) -> &'static str {
        "rules.tmplData"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Labels" => Some(Value::Map(Rc::new(self.labels.clone()))),
            "ExternalLabels" => Some(Value::Map(Rc::new(self.external_labels.clone()))),
            "ExternalURL" => Some(Value::Str(self.external_url.clone())),
            "Value" => Some(Value::Float(self.value)),
            _ => None,
        }
    }
    fn go_string(&self) -> String {
        format!(
            "{{{} {} {} {}}}",
            go_map(&self.labels),
            go_map(&self.external_labels),
            self.external_url,
            gofmt::format_float_v(self.value)
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
