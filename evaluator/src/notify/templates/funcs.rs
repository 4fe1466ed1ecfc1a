//! Alertmanager's template function map (`toUpper`, `toLower`, `title`,
//! `trimSpace`, `join`, `match`, `safeHtml`, `reReplaceAll`, `stringSlice`,
//! `date`, `tz`, `since`, `humanizeDuration`, `list`, `append`) on top of
//! Go's builtins. `since` measures from the `now` the caller supplies.

use std::rc::Rc;

use chrono::{DateTime, Utc};

use crate::template::builtins::{self, want_args};
use crate::template::value::string_list;
use crate::template::{gotime, humanize, Functions, GoTime, Value};

/// Every function name a notification template may call.
pub const FUNCTIONS: &[&str] = &[
    "toUpper",
    "toLower",
    "title",
    "trimSpace",
    "join",
    "match",
    "safeHtml",
    "reReplaceAll",
    "stringSlice",
    "date",
    "tz",
    "since",
    "humanizeDuration",
    "list",
    "append",
];

pub fn is_function(name: &str) -> bool {
    FUNCTIONS.contains(&name) || builtins::is_builtin(name)
}

/// The functions, with the time `since` counts to.
pub struct AlertmanagerFuncs {
    pub now: DateTime<Utc>,
}

fn string(name: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) | Value::SafeHtml(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {} (calling {name})",
            other.type_name()
        )),
    }
}

fn time(name: &str, v: &Value) -> Result<GoTime, String> {
    match v {
        Value::Time(t) => Ok(t.clone()),
        other => Err(format!(
            "wrong type for value; expected time.Time; got {} (calling {name})",
            other.type_name()
        )),
    }
}

fn regex(name: &str, pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern)
        .map_err(|e| format!("error calling {name}: invalid regexp {pattern:?}: {e}"))
}

/// `cases.Title` (American English): each word's first letter upper case,
/// the rest lower case.
pub fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if in_word {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        in_word = c.is_alphanumeric() || c == '\'' || c == '_';
    }
    out
}

/// Seconds of a number, numeric string or duration (Prometheus'
/// `convertToFloat`).
fn seconds(name: &str, v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Duration(d) => Ok(*d as f64 / 1e9),
        Value::Str(s) => s.trim().parse::<f64>().map_err(|_| {
            format!("error calling {name}: strconv.ParseFloat: parsing {s:?}: invalid syntax")
        }),
        other => Err(format!(
            "error calling {name}: can't convert {} to float",
            other.type_name()
        )),
    }
}

impl Functions for AlertmanagerFuncs {
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        if let Some(result) = builtins::call(name, args) {
            return result;
        }
        let s = |v: String| Ok(Value::Str(v));
        match name {
            "toUpper" | "toLower" | "title" | "trimSpace" | "safeHtml" => {
                want_args(name, args, 1)?;
                let text = string(name, &args[0])?;
                match name {
                    "toUpper" => s(text.to_uppercase()),
                    "toLower" => s(text.to_lowercase()),
                    "title" => s(title(&text)),
                    "trimSpace" => s(text.trim().to_string()),
                    _ => Ok(Value::SafeHtml(text)),
                }
            }
            "join" => {
                want_args(name, args, 2)?;
                let sep = string(name, &args[0])?;
                let items = string_list(&args[1]).ok_or_else(|| {
                    format!(
                        "wrong type for value; expected []string; got {} (calling join)",
                        args[1].type_name()
                    )
                })?;
                s(items.join(&sep))
            }
            "match" => {
                want_args(name, args, 2)?;
                let (pattern, text) = (string(name, &args[0])?, string(name, &args[1])?);
                Ok(Value::Bool(regex(name, &pattern)?.is_match(&text)))
            }
            "reReplaceAll" => {
                want_args(name, args, 3)?;
                let (pattern, repl, text) = (
                    string(name, &args[0])?,
                    string(name, &args[1])?,
                    string(name, &args[2])?,
                );
                s(regex(name, &pattern)?
                    .replace_all(&text, repl.as_str())
                    .into_owned())
            }
            "stringSlice" => {
                let items = args
                    .iter()
                    .map(|a| string(name, a).map(Value::Str))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::List(Rc::new(items)))
            }
            "list" => Ok(Value::List(Rc::new(args.to_vec()))),
            "append" => {
                let Some((first, rest)) = args.split_first() else {
                    return Err("wrong number of args for append: want at least 1 got 0".into());
                };
                let mut items = first.items().ok_or_else(|| {
                    format!(
                        "wrong type for value; expected []interface {{}}; got {} (calling append)",
                        first.type_name()
                    )
                })?;
                items.extend(rest.iter().cloned());
                Ok(Value::List(Rc::new(items)))
            }
            "date" => {
                want_args(name, args, 2)?;
                let layout = string(name, &args[0])?;
                s(time(name, &args[1])?.format(&layout))
            }
            "tz" => {
                want_args(name, args, 2)?;
                let zone = string(name, &args[0])?;
                let t = time(name, &args[1])?;
                gotime::in_zone(&t, &zone)
                    .map(Value::Time)
                    .map_err(|e| format!("error calling tz: {e}"))
            }
            "since" => {
                want_args(name, args, 1)?;
                let t = time(name, &args[0])?;
                let nanos = (self.now - t.instant).num_nanoseconds().unwrap_or(i64::MAX);
                Ok(Value::Duration(nanos))
            }
            "humanizeDuration" => {
                want_args(name, args, 1)?;
                s(humanize::humanize_duration(seconds(name, &args[0])?))
            }
            other => Err(format!("function {other:?} not defined")),
        }
    }
}
