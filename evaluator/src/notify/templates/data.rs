//! Alertmanager's notification template data (`template.Data`) built from a
//! Vigil [`Notification`]: `.Receiver`, `.Status`, `.Alerts` (with
//! `.Firing`/`.Resolved`), `.GroupLabels`, `.CommonLabels`,
//! `.CommonAnnotations`, `.ExternalURL`, and per alert `.Status`,
//! `.Labels`, `.Annotations`, `.StartsAt`, `.EndsAt`, `.GeneratorURL`,
//! `.Fingerprint`.

use std::any::Any;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::labels::Labels;
use crate::notify::alert::{AlertStatus, Notification, NotifiedAlert};
use crate::template::{GoTime, Object, Value};

/// `template.Data`.
#[derive(Debug, Clone)]
pub struct Data {
    pub receiver: String,
    pub status: AlertStatus,
    pub alerts: Alerts,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    pub external_url: String,
}

/// `template.Alert`.
#[derive(Debug, Clone)]
pub struct Alert {
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: GoTime,
    pub ends_at: GoTime,
    pub generator_url: String,
    pub fingerprint: String,
}

/// `template.Alerts`, with the methods `Firing` and `Resolved`; or, as
/// those methods return it, a plain `[]template.Alert` (no methods).
#[derive(Debug, Clone)]
pub struct Alerts {
    pub alerts: Vec<Alert>,
    /// `template.Alerts` (with `Firing` and `Resolved`), not `[]template.Alert`.
    pub with_methods: bool,
}

fn label_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

/// Go's `regexp.QuoteMeta`, which Alertmanager applies to `.Receiver`.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Alert {
    fn of(a: &NotifiedAlert) -> Alert {
        Alert {
            status: a.status,
            labels: label_map(&a.alert.labels),
            annotations: a.alert.annotations.clone(),
            starts_at: GoTime::utc(a.alert.starts_at),
            ends_at: a.alert.ends_at.map_or_else(GoTime::zero, GoTime::utc),
            generator_url: a.alert.generator_url.clone(),
            fingerprint: a.fingerprint.to_string(),
        }
    }
}

impl Data {
    /// The data Alertmanager builds for `n`.
    pub fn of(n: &Notification) -> Data {
        Data {
            receiver: quote_meta(&n.receiver),
            status: n.status,
            alerts: Alerts {
                alerts: n.alerts.iter().map(Alert::of).collect(),
                with_methods: true,
            },
            group_labels: label_map(&n.group_labels),
            common_labels: label_map(&n.common_labels),
            common_annotations: n.common_annotations.clone(),
            external_url: n.external_url.clone(),
        }
    }

    /// The data as a template value (dot).
    pub fn value(&self) -> Value {
        Value::Object(Rc::new(self.clone()))
    }
}

fn kv(m: &BTreeMap<String, String>) -> Value {
    Value::Kv(Rc::new(m.clone()))
}

fn struct_string(fields: &[String]) -> String {
    format!("{{{}}}", fields.join(" "))
}

impl Object for Data {
    fn type_name(&self) -> &'static str {
        "*template.Data"
    }
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Receiver" => Value::Str(self.receiver.clone()),
            "Status" => Value::Str(self.status.as_str().into()),
            "Alerts" => Value::Object(Rc::new(self.alerts.clone())),
            "GroupLabels" => kv(&self.group_labels),
            "CommonLabels" => kv(&self.common_labels),
            "CommonAnnotations" => kv(&self.common_annotations),
            "ExternalURL" => Value::Str(self.external_url.clone()),
            _ => return None,
        })
    }
    fn go_string(&self) -> String {
        let fields: Vec<String> = [
            "Receiver",
            "Status",
            "Alerts",
            "GroupLabels",
            "CommonLabels",
            "CommonAnnotations",
            "ExternalURL",
        ]
        .iter()
        .filter_map(|f| self.field(f).map(|v| v.to_go_string()))
        .collect();
        format!("&{}", struct_string(&fields))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Object for Alert {
    fn type_name(&self) -> &'static str {
        "template.Alert"
    }
    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Status" => Value::Str(self.status.as_str().into()),
            "Labels" => kv(&self.labels),
            "Annotations" => kv(&self.annotations),
            "StartsAt" => Value::Time(self.starts_at.clone()),
            "EndsAt" => Value::Time(self.ends_at.clone()),
            "GeneratorURL" => Value::Str(self.generator_url.clone()),
            "Fingerprint" => Value::Str(self.fingerprint.clone()),
            _ => return None,
        })
    }
    fn go_string(&self) -> String {
        let fields: Vec<String> = [
            "Status",
            "Labels",
            "Annotations",
            "StartsAt",
            "EndsAt",
            "GeneratorURL",
            "Fingerprint",
        ]
        .iter()
        .filter_map(|f| self.field(f).map(|v| v.to_go_string()))
        .collect();
        struct_string(&fields)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Alerts {
    fn with_status(&self, status: AlertStatus) -> Value {
        let alerts = self
            .alerts
            .iter()
            .filter(|a| a.status == status)
            .cloned()
            .collect();
        Value::Object(Rc::new(Alerts {
            alerts,
            with_methods: false,
        }))
    }
}

impl Object for Alerts {
    fn type_name(&self) -> &'static str {
        if self.with_methods {
            "template.Alerts"
        } else {
            "[]template.Alert"
        }
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Firing" if self.with_methods => Some(self.with_status(AlertStatus::Firing)),
            "Resolved" if self.with_methods => Some(self.with_status(AlertStatus::Resolved)),
            _ => None,
        }
    }
    fn items(&self) -> Option<Vec<Value>> {
        Some(
            self.alerts
                .iter()
                .map(|a| Value::Object(Rc::new(a.clone())))
                .collect(),
        )
    }
    fn go_string(&self) -> String {
        alert_list_string(&self.alerts)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn alert_list_string(alerts: &[Alert]) -> String {
    let items: Vec<String> = alerts.iter().map(Object::go_string).collect();
    format!("[{}]", items.join(" "))
}
