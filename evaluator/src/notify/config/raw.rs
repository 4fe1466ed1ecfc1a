//! The notification config as written: one serde struct per section, with
//! `deny_unknown_fields`, that the [`validate`](super::validate) pass turns
//! into the validated types.
//!
//! Every field is an `Option<Value>`, so deserialising a raw section cannot
//! fail on a value: a wrong type, a bad duration or matcher is the
//! validation pass's to report, in Vigil's words, next to every other
//! problem of the file. A nested section (`route.routes[1]`, a receiver)
//! stays a `Value` until the validation pass reaches it and reads it into
//! its own raw struct, so one bad section does not hide the others.
//!
//! serde stops at the first error, so unknown keys are
//! found before it runs: the validation pass compares a section's keys with
//! the fields its raw struct declares ([`fields`], read from the struct's
//! own `Deserialize` impl, so the list cannot drift from the struct),
//! reports each unknown one with the expected keys, and deserialises what is
//! left; `deny_unknown_fields` then guards that the two agree. (The
//! exporter instead retries serde after each unknown-key error, parsing its
//! message; here the first pass keeps the notification config's own
//! wording, "unknown field `x`; expected one of: a, b", and costs one
//! deserialisation per section.)
//!
//! A receiver's integration sections (`slack_configs`, ...) are not fields:
//! their keys come from the receivers registry, so adding a receiver touches
//! only its folder and its registration line.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_yaml::Value;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDocument {
    pub global: Option<Value>,
    /// `route:` with nothing under it is a route without a receiver, not a
    /// missing route.
    #[serde(default, deserialize_with = "written")]
    pub route: Option<Value>,
    pub inhibit_rules: Option<Value>,
    pub receivers: Option<Value>,
    /// Globs of notification template files (`templates.rs`).
    pub templates: Option<Value>,
    /// Not supported: reported unless empty.
    pub mute_time_intervals: Option<Value>,
    /// Not supported: reported unless empty.
    pub time_intervals: Option<Value>,
}

/// `global:`; the settings of receiver kinds Vigil does not have are
/// accepted beside these, with a warning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGlobal {
    pub resolve_timeout: Option<Value>,
    /// Handed to the receivers as written, `null` included.
    #[serde(default, deserialize_with = "written")]
    pub http_config: Option<Value>,
    pub slack_api_url: Option<Value>,
    pub slack_api_url_file: Option<Value>,
    pub pagerduty_url: Option<Value>,
    pub telegram_api_url: Option<Value>,
    pub webex_api_url: Option<Value>,
    pub victorops_api_url: Option<Value>,
    pub victorops_api_key: Option<Value>,
    pub victorops_api_key_file: Option<Value>,
    pub opsgenie_api_url: Option<Value>,
    pub opsgenie_api_key: Option<Value>,
    pub opsgenie_api_key_file: Option<Value>,
    pub wechat_api_url: Option<Value>,
    pub wechat_api_secret: Option<Value>,
    pub wechat_api_corp_id: Option<Value>,
    pub smtp_from: Option<Value>,
    pub smtp_hello: Option<Value>,
    pub smtp_smarthost: Option<Value>,
    pub smtp_auth_username: Option<Value>,
    pub smtp_auth_password: Option<Value>,
    pub smtp_auth_password_file: Option<Value>,
    pub smtp_auth_identity: Option<Value>,
    pub smtp_auth_secret: Option<Value>,
    pub smtp_auth_secret_file: Option<Value>,
    pub smtp_require_tls: Option<Value>,
    /// Handed to the e-mail receiver as written, `null` included.
    #[serde(default, deserialize_with = "written")]
    pub smtp_tls_config: Option<Value>,
}

/// One node of `route:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub receiver: Option<Value>,
    pub group_by: Option<Value>,
    #[serde(rename = "match")]
    pub match_equal: Option<Value>,
    pub match_re: Option<Value>,
    pub matchers: Option<Value>,
    #[serde(rename = "continue")]
    pub continue_matching: Option<Value>,
    pub routes: Option<Value>,
    pub group_wait: Option<Value>,
    pub group_interval: Option<Value>,
    pub repeat_interval: Option<Value>,
    /// Not supported: reported unless empty.
    pub mute_time_intervals: Option<Value>,
    /// Not supported: reported unless empty.
    pub active_time_intervals: Option<Value>,
}

/// One entry of `inhibit_rules:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInhibitRule {
    pub name: Option<Value>,
    pub source_match: Option<Value>,
    pub source_match_re: Option<Value>,
    pub source_matchers: Option<Value>,
    pub target_match: Option<Value>,
    pub target_match_re: Option<Value>,
    pub target_matchers: Option<Value>,
    pub equal: Option<Value>,
}

/// One entry of `receivers:`; its `*_configs` sections are accepted beside
/// `name` by the receivers registry's list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReceiver {
    pub name: Option<Value>,
}

/// A field that is `Some` whenever its key is written, even as `null`
/// (an `Option` field alone reads `null` as absent).
fn written<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The keys a raw struct accepts, in declaration order: the field list its
/// derived `Deserialize` hands to `deserialize_struct`, caught by a
/// deserializer that only records it.
pub(super) fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut recorder = FieldRecorder(&[]);
    // The recorder always fails once it has the list; the error is its stop.
    let _ = T::deserialize(&mut recorder);
    recorder.0
}

struct FieldRecorder(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut FieldRecorder {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_the_keys_the_struct_accepts_in_declaration_order() {
        assert_eq!(fields::<RawReceiver>(), ["name"]);
        assert_eq!(fields::<RawRoute>()[2..4], ["match", "match_re"]);
        assert_eq!(fields::<RawRoute>()[5], "continue");
    }
}
