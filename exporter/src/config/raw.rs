//! The file as written: serde structs where every key is optional and
//! unknown keys are rejected. Sections and list items are wrapped in
//! [`Checked`], which turns a deserialisation error into data instead of
//! aborting, so that one bad probe does not hide problems elsewhere.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Default, Deserialize)]
#[serde(expecting = "a mapping with keys listen, http, demo, probes, probe_concurrency, business")]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<Checked<String>>,
    pub http: Option<Checked<RawHttp>>,
    pub demo: Option<Checked<bool>>,
    pub probes: Option<Checked<Vec<Checked<RawProbe>>>>,
    pub probe_concurrency: Option<Checked<i64>>,
    pub business: Option<Checked<RawBusiness>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping with keys header_read_timeout, idle_timeout, max_connections")]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    #[serde(default, deserialize_with = "duration_text")]
    pub header_read_timeout: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub idle_timeout: Option<String>,
    pub max_connections: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a probe: a mapping with keys such as name, url, interval")]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub name: Option<String>,
    pub url: Option<String>,
    pub method: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub body: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub interval: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    pub timeout: Option<String>,
    pub follow_redirects: Option<bool>,
    pub tls_verify: Option<bool>,
    pub expect: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a mapping with keys token_file, max_label_sets, counters, gauges")]
#[serde(deny_unknown_fields)]
pub struct RawBusiness {
    pub token_file: Option<String>,
    pub max_label_sets: Option<Checked<i64>>,
    pub counters: Option<Checked<Vec<Checked<RawMetric>>>>,
    pub gauges: Option<Checked<Vec<Checked<RawMetric>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a metric: a mapping with keys name, help, labels")]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    pub name: Option<String>,
    pub help: Option<String>,
    pub labels: Option<Vec<String>>,
}

/// A value as far as it deserialised, with every error it produced: the
/// path inside the value where it failed (`.timeout`, `.headers.Accept`) and
/// serde's message. Unknown keys are reported and then set aside, so that
/// the rest of the value is still deserialised and validated.
#[derive(Debug)]
pub struct Checked<T> {
    pub value: Option<T>,
    pub errors: Vec<SerdeError>,
}

/// One deserialisation error inside a [`Checked`] value.
#[derive(Debug, Clone)]
pub struct SerdeError {
    pub path: String,
    pub message: String,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        Ok(check::<T>(value))
    }
}

/// Deserialises `value` as `T` (whose structs deny unknown fields). Each
/// unknown key is recorded, removed, and deserialisation retried, so one
/// typo does not hide the other problems of the same value.
pub fn check<T: DeserializeOwned>(mut value: serde_yaml::Value) -> Checked<T> {
    let mut errors = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(parsed) => {
                return Checked {
                    value: Some(parsed),
                    errors,
                }
            }
            Err(error) => error,
        };
        let segments: Vec<serde_path_to_error::Segment> = error.path().iter().cloned().collect();
        let path = segments
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
                other => format!(".{other}"),
            })
            .collect::<String>();
        let message = error.into_inner().to_string();
        let removed =
            unknown_field(&message).is_some_and(|key| remove_key(&mut value, &segments, key));
        errors.push(SerdeError { path, message });
        if !removed {
            return Checked {
                value: None,
                errors,
            };
        }
    }
}

/// The key named by serde's "unknown field `x`, expected ..." message.
pub fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
}

/// Removes `key` from the mapping at `segments` (whose last segment may be
/// the key itself, as serde_path_to_error reports it); says whether it did.
fn remove_key(
    value: &mut serde_yaml::Value,
    segments: &[serde_path_to_error::Segment],
    key: &str,
) -> bool {
    use serde_path_to_error::Segment;
    let parents = match segments.last() {
        Some(Segment::Map { key: last }) if last == key => &segments[..segments.len() - 1],
        _ => segments,
    };
    let mut current = value;
    for segment in parents {
        let next = match segment {
            Segment::Seq { index } => current.get_mut(*index),
            Segment::Map { key } => current.get_mut(key.as_str()),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    current
        .as_mapping_mut()
        .and_then(|mapping| mapping.remove(key))
        .is_some()
}

/// A duration as written. A bare YAML number (`timeout: 30`) is kept as text
/// so that validation can say it lacks a unit, rather than serde saying it is
/// not a string.
fn duration_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match serde_yaml::Value::deserialize(deserializer)? {
        serde_yaml::Value::Null => Ok(None),
        serde_yaml::Value::String(text) => Ok(Some(text)),
        serde_yaml::Value::Number(number) => Ok(Some(number.to_string())),
        _ => Err(D::Error::custom(
            "expected a duration such as 30s, 5m or 1h30m",
        )),
    }
}
