//! The config's `time_intervals` and older `mute_time_intervals` (one
//! namespace: a name may be defined once across both), and a route's
//! `mute_time_intervals` / `active_time_intervals`, resolved to the
//! definitions they name. The intervals themselves are read by
//! [`crate::notify::time_interval`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_yaml::Value;
use vigil_common::yaml_positions::{child_index, child_key};

use super::validate::Validator;
use crate::notify::time_interval::{parse_interval, NamedTimeInterval};

/// The defined time intervals by name.
pub(super) type Defined = BTreeMap<String, Arc<NamedTimeInterval>>;

impl Validator<'_> {
    /// Reads both top-level lists (`key` names them in errors).
    pub(super) fn time_intervals(&mut self, lists: [(&str, Option<&Value>); 2]) -> Defined {
        let mut defined = Defined::new();
        for (key, value) in lists {
            let Some(value) = value else { continue };
            for (i, item) in self.sequence(value, key).iter().enumerate() {
                let path = child_index(key, i);
                let Some(map) = item.as_mapping() else {
                    self.error(&path, "expected a mapping with `name` and `time_intervals`");
                    continue;
                };
                let name = map
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if name.is_empty() {
                    self.error(
                        &child_key(&path, "name"),
                        "missing name in time interval; give it a `name` that routes refer to",
                    );
                }
                if let Some(other) = map
                    .keys()
                    .filter_map(Value::as_str)
                    .find(|k| *k != "name" && *k != "time_intervals")
                {
                    self.error(
                        &child_key(&path, other),
                        format!("unknown field `{other}`; expected name and time_intervals"),
                    );
                }
                let list_path = child_key(&path, "time_intervals");
                let mut intervals = Vec::new();
                if let Some(list) = map.get("time_intervals") {
                    for (j, interval) in self.sequence(list, &list_path).iter().enumerate() {
                        let at = child_index(&list_path, j);
                        match parse_interval(interval) {
                            Ok(parsed) => intervals.push(parsed),
                            Err(found) => {
                                for (field, message) in found {
                                    let field = if field.is_empty() {
                                        at.clone()
                                    } else {
                                        format!("{at}.{field}")
                                    };
                                    self.error(&field, message);
                                }
                            }
                        }
                    }
                }
                if name.is_empty() {
                    continue;
                }
                if defined.contains_key(&name) {
                    self.error(&child_key(&path, "name"), format!("time interval {name:?} is not unique; names are shared by time_intervals and mute_time_intervals"));
                    continue;
                }
                defined.insert(
                    name.clone(),
                    Arc::new(NamedTimeInterval { name, intervals }),
                );
            }
        }
        defined
    }

    /// A route's list of time interval names (`key`), resolved.
    pub(super) fn route_time_intervals(
        &mut self,
        value: Option<&Value>,
        route_path: &str,
        key: &str,
        defined: &Defined,
    ) -> Vec<Arc<NamedTimeInterval>> {
        let Some(value) = value else {
            return Vec::new();
        };
        let path = child_key(route_path, key);
        let mut out = Vec::new();
        for (i, item) in self.sequence(value, &path).iter().enumerate() {
            let Some(name) = item.as_str() else {
                self.error(
                    &child_index(&path, i),
                    "expected the name of a time interval",
                );
                continue;
            };
            match defined.get(name) {
                Some(interval) => out.push(Arc::clone(interval)),
                None => self.error(
                    &child_index(&path, i),
                    format!("undefined time interval {name:?} used in route; define it under time_intervals"),
                ),
            }
        }
        if route_path == "route" && !out.is_empty() {
            let what = key.replace('_', " ");
            self.error(
                &path,
                format!("root route must not have any {what}; set them on a child route"),
            );
        }
        out
    }
}
