//! The file as written: serde structs where every key is optional and
//! unknown keys are rejected. Sections and list items are wrapped in
//! [`Checked`], which turns a deserialisation error into data instead of
//! aborting, so that one bad probe does not hide problems elsewhere.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<Checked<String>>,
    pub demo: Option<Checked<bool>>,
    pub probes: Option<Checked<Vec<Checked<RawProbe>>>>,
    pub business: Option<Checked<RawBusiness>>,
}

#[derive(Debug, Deserialize)]
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
#[serde(deny_unknown_fields)]
pub struct RawBusiness {
    pub token_file: Option<String>,
    pub max_label_sets: Option<Checked<i64>>,
    pub counters: Option<Checked<Vec<Checked<RawMetric>>>>,
    pub gauges: Option<Checked<Vec<Checked<RawMetric>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    pub name: Option<String>,
    pub help: Option<String>,
    pub labels: Option<Vec<String>>,
}

/// A value that either deserialised, or the error it produced: the path
/// inside the value where it failed (`timeout`, `headers.Accept`) and
/// serde's message.
#[derive(Debug)]
pub enum Checked<T> {
    Ok(T),
    Invalid { path: String, message: String },
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        Ok(check::<T>(value, PhantomData))
    }
}

fn check<T: DeserializeOwned>(value: serde_yaml::Value, _: PhantomData<T>) -> Checked<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(parsed) => Checked::Ok(parsed),
        Err(error) => {
            let path = error
                .path()
                .iter()
                .map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
                    other => format!(".{other}"),
                })
                .collect::<String>();
            Checked::Invalid {
                path,
                message: error.into_inner().to_string(),
            }
        }
    }
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
