//! The template functions: Go's builtins (`len`, `index`, `printf`, `eq`...)
//! and Prometheus' additions (`humanize*`, `query`, `first`, `label`,
//! `reReplaceAll`...), with the same results and error texts where users see
//! them.

use std::collections::BTreeMap;

use super::value::{QueryResult, TemplateSample, Value};
pub use crate::template::builtins::query_escape;
use crate::template::builtins::{self, want_args};
use crate::template::{gofmt, humanize, Functions};
use vigil_common::duration::parse_duration;

/// Everything a function may need besides its arguments.
pub struct FuncEnv<'a> {
    pub query: &'a dyn Fn(&str) -> Result<Vec<TemplateSample>, String>,
    pub external_url: &'a str,
}

/// Every function name a template may call.
pub const FUNCTIONS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toUpper",
    "toLower",
    "title",
    "reReplaceAll",
    "match",
    "safeHtml",
    "stripPort",
    "stripDomain",
    "parseDuration",
    "pathPrefix",
    "externalURL",
    "graphLink",
    "tableLink",
];

pub fn is_function(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

impl Functions for FuncEnv<'_> {
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        call(name, args, self)
    }
}

fn string_arg(name: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {} (calling {name})",
            other.type_name()
        )),
    }
}

/// Prometheus' `convertToFloat`: numbers and numeric strings.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s).ok_or_else(|| {
            format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                gofmt::go_quote(s)
            )
        }),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    let lower = t.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" || lower == "nan" {
        return s
            .parse::<f64>()
            .ok()
            .or(match (s.starts_with('-'), lower.as_str()) {
                (_, "nan") => Some(f64::NAN),
                (true, _) => Some(f64::NEG_INFINITY),
                (false, _) => Some(f64::INFINITY),
            });
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

fn sample_arg(name: &str, v: &Value) -> Result<TemplateSample, String> {
    TemplateSample::of(v).ok_or_else(|| {
        format!(
            "wrong type for value; expected *template.sample; got {} (calling {name})",
            v.type_name()
        )
    })
}

fn vector_arg(name: &str, v: &Value) -> Result<Vec<TemplateSample>, String> {
    QueryResult::of(v).ok_or_else(|| {
        format!(
            "wrong type for value; expected template.queryResult; got {} (calling {name})",
            v.type_name()
        )
    })
}

/// Go's `strings.Title`: upper-cases the first letter of every word.
fn title(s: &str) -> String {
    let mut out = String::new();
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        };
    }
    out
}

fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

fn strip_domain(s: &str) -> String {
    let (host, port) = match split_host_port(s) {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return s.to_string();
    }
    let short = host.split('.').next().unwrap_or(host);
    match port {
        Some(p) => format!("{short}:{p}"),
        None => short.to_string(),
    }
}

fn regex(name: &str, pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern)
        .map_err(|e| format!("error calling {name}: invalid regexp {pattern:?}: {e}"))
}

/// Calls function `name` (never `and`/`or`, which the executor evaluates
/// lazily) on evaluated arguments.
pub fn call(name: &str, args: &[Value], env: &FuncEnv<'_>) -> Result<Value, String> {
    let s = |v: String| Ok(Value::Str(v));
    if let Some(result) = builtins::call(name, args) {
        return result;
    }
    match name {
        "query" => {
            want_args(name, args, 1)?;
            let q = string_arg(name, &args[0])?;
            let result = (env.query)(&q).map_err(|e| format!("error calling query: {e}"))?;
            Ok(QueryResult::value(result))
        }
        "first" => {
            want_args(name, args, 1)?;
            let v = vector_arg(name, &args[0])?;
            match v.into_iter().next() {
                Some(s) => Ok(s.value()),
                None => {
                    Err("error calling first: first() called on vector with no elements".into())
                }
            }
        }
        "label" => {
            want_args(name, args, 2)?;
            let l = string_arg(name, &args[0])?;
            let smp = sample_arg(name, &args[1])?;
            s(smp.labels.get(&l).cloned().unwrap_or_default())
        }
        "value" => {
            want_args(name, args, 1)?;
            Ok(Value::Float(sample_arg(name, &args[0])?.value))
        }
        "strvalue" => {
            want_args(name, args, 1)?;
            s(sample_arg(name, &args[0])?
                .labels
                .get("__value__")
                .cloned()
                .unwrap_or_default())
        }
        "sortByLabel" => {
            want_args(name, args, 2)?;
            let l = string_arg(name, &args[0])?;
            let mut v = vector_arg(name, &args[1])?;
            v.sort_by(|a, b| a.labels.get(&l).cmp(&b.labels.get(&l)));
            Ok(QueryResult::value(v))
        }
        "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage"
        | "humanizeTimestamp" => {
            want_args(name, args, 1)?;
            let v = to_float(&args[0]).map_err(|e| format!("error calling {name}: {e}"))?;
            match name {
                "humanize" => s(humanize::humanize(v)),
                "humanize1024" => s(humanize::humanize_1024(v)),
                "humanizeDuration" => s(humanize::humanize_duration(v)),
                "humanizePercentage" => s(humanize::humanize_percentage(v)),
                _ => humanize::humanize_timestamp(v)
                    .map(Value::Str)
                    .map_err(|e| format!("error calling {name}: {e}")),
            }
        }
        "toUpper" => {
            want_args(name, args, 1)?;
            s(string_arg(name, &args[0])?.to_uppercase())
        }
        "toLower" => {
            want_args(name, args, 1)?;
            s(string_arg(name, &args[0])?.to_lowercase())
        }
        "title" => {
            want_args(name, args, 1)?;
            s(title(&string_arg(name, &args[0])?))
        }
        "safeHtml" => {
            want_args(name, args, 1)?;
            s(string_arg(name, &args[0])?)
        }
        "reReplaceAll" => {
            want_args(name, args, 3)?;
            let (pattern, repl, text) = (
                string_arg(name, &args[0])?,
                string_arg(name, &args[1])?,
                string_arg(name, &args[2])?,
            );
            s(regex(name, &pattern)?
                .replace_all(&text, repl.as_str())
                .into_owned())
        }
        "match" => {
            want_args(name, args, 2)?;
            let (pattern, text) = (string_arg(name, &args[0])?, string_arg(name, &args[1])?);
            Ok(Value::Bool(regex(name, &pattern)?.is_match(&text)))
        }
        "stripPort" => {
            want_args(name, args, 1)?;
            let hp = string_arg(name, &args[0])?;
            s(split_host_port(&hp).map_or(hp.clone(), |(h, _)| h.to_string()))
        }
        "stripDomain" => {
            want_args(name, args, 1)?;
            s(strip_domain(&string_arg(name, &args[0])?))
        }
        "parseDuration" => {
            want_args(name, args, 1)?;
            let d = parse_duration(&string_arg(name, &args[0])?)
                .map_err(|e| format!("error calling parseDuration: {e}"))?;
            Ok(Value::Float(d.as_secs_f64()))
        }
        "externalURL" => s(env.external_url.to_string()),
        "pathPrefix" => s(path_prefix(env.external_url)),
        "graphLink" | "tableLink" => {
            want_args(name, args, 1)?;
            let expr = string_arg(name, &args[0])?;
            let tab = if name == "graphLink" { 0 } else { 1 };
            s(format!(
                "{}/graph?g0.expr={}&g0.tab={tab}",
                path_prefix(env.external_url),
                query_escape(&expr)
            ))
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

fn path_prefix(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    after_scheme.find('/').map_or(String::new(), |i| {
        after_scheme[i..].trim_end_matches('/').to_string()
    })
}

/// Labels as a template map.
pub fn label_map<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_and_strip_functions_follow_go() {
        assert_eq!(title("hello wORLD-foo_bar"), "Hello WORLD-Foo_bar");
        assert_eq!(strip_domain("foo.example.com:9100"), "foo:9100");
        assert_eq!(strip_domain("10.0.0.1:9100"), "10.0.0.1:9100");
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", "80")));
    }

    #[test]
    fn comparisons_reject_int_against_float_like_go() {
        let env_query = |_: &str| Ok(Vec::new());
        let env = FuncEnv {
            query: &env_query,
            external_url: "",
        };
        let err = call("gt", &[Value::Float(1.0), Value::Int(0)], &env).expect_err("must fail");
        assert!(err.contains("incompatible types for comparison"), "{err}");
        assert_eq!(
            call("gt", &[Value::Float(1.0), Value::Float(0.5)], &env),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            call(
                "eq",
                &[
                    Value::Str("b".into()),
                    Value::Str("a".into()),
                    Value::Str("b".into())
                ],
                &env
            ),
            Ok(Value::Bool(true))
        );
    }
}
