//! The template functions: Go's builtins (`len`, `index`, `printf`, `eq`...)
//! and Prometheus' additions (`humanize*`, `query`, `first`, `label`,
//! `reReplaceAll`...), with the same results and error texts where users see
//! them.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::gofmt;
use super::humanize;
use super::value::{TemplateSample, Value};
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

fn want_args(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
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

fn sample_arg(name: &str, v: &Value) -> Result<Rc<TemplateSample>, String> {
    match v {
        Value::Sample(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected *template.sample; got {} (calling {name})",
            other.type_name()
        )),
    }
}

fn vector_arg(name: &str, v: &Value) -> Result<Rc<Vec<TemplateSample>>, String> {
    match v {
        Value::Vector(s) => Ok(s.clone()),
        Value::Nil => Ok(Rc::new(Vec::new())),
        other => Err(format!(
            "wrong type for value; expected template.queryResult; got {} (calling {name})",
            other.type_name()
        )),
    }
}

/// Go's `basicKind` classes for comparisons.
#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

fn kind(v: &Value) -> Result<Kind, String> {
    match v {
        Value::Bool(_) => Ok(Kind::Bool),
        Value::Int(_) => Ok(Kind::Int),
        Value::Float(_) => Ok(Kind::Float),
        Value::Str(_) => Ok(Kind::Str),
        Value::NoValue | Value::Nil => Err("invalid type for comparison".into()),
        _ => Err("non-comparable type".into()),
    }
}

fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, String> {
    let (ka, kb) = (kind(a)?, kind(b)?);
    if ka != kb {
        return Err("incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        _ => None,
    })
}

fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(compare(a, b)? == Some(Ordering::Equal))
}

/// Go derives `le`, `gt` and `ge` from `lt` and `eq` (`gt` is `!le`), so
/// with NaN `gt` and `ge` are true; `ok` gets (lt, eq).
fn ordered(name: &str, args: &[Value], ok: fn(bool, bool) -> bool) -> Result<Value, String> {
    want_args(name, args, 2)?;
    if kind(&args[0])? == Kind::Bool {
        return Err("invalid type for comparison".into());
    }
    let ord = compare(&args[0], &args[1])?;
    Ok(Value::Bool(ok(
        ord == Some(Ordering::Less),
        ord == Some(Ordering::Equal),
    )))
}

/// `fmt.Sprint`: a space between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.to_go_string());
    }
    out
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

fn html_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
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
    match name {
        "not" => {
            want_args(name, args, 1)?;
            Ok(Value::Bool(!args[0].truthy()))
        }
        "len" => {
            want_args(name, args, 1)?;
            match &args[0] {
                Value::Str(x) => Ok(Value::Int(x.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                Value::Vector(v) => Ok(Value::Int(v.len() as i64)),
                other => Err(format!(
                    "error calling len: len of type {}",
                    other.type_name()
                )),
            }
        }
        "index" => {
            if args.is_empty() {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut item = args[0].clone();
            for key in &args[1..] {
                item = match (&item, key) {
                    (Value::Map(m), Value::Str(k)) => {
                        Value::Str(m.get(k).cloned().unwrap_or_default())
                    }
                    (Value::Vector(v), Value::Int(i)) => {
                        match usize::try_from(*i).ok().and_then(|i| v.get(i)) {
                            Some(s) => Value::Sample(Rc::new(s.clone())),
                            None => {
                                return Err(format!("error calling index: index out of range: {i}"))
                            }
                        }
                    }
                    (Value::Str(st), Value::Int(i)) => {
                        match usize::try_from(*i).ok().and_then(|i| st.as_bytes().get(i)) {
                            Some(b) => Value::Int(*b as i64),
                            None => {
                                return Err(format!("error calling index: index out of range: {i}"))
                            }
                        }
                    }
                    (Value::NoValue | Value::Nil, _) => {
                        return Err("error calling index: index of untyped nil".into())
                    }
                    (container, key) => {
                        return Err(format!(
                            "error calling index: cannot index {} with {}",
                            container.type_name(),
                            key.type_name()
                        ))
                    }
                };
            }
            Ok(item)
        }
        "print" => s(sprint(args)),
        "println" => {
            let parts: Vec<String> = args.iter().map(Value::to_go_string).collect();
            s(parts.join(" ") + "\n")
        }
        "printf" => {
            let Some(Value::Str(format)) = args.first() else {
                return Err("wrong type for value; expected string (calling printf)".into());
            };
            s(gofmt::sprintf(format, &args[1..]))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("error calling eq: missing argument for comparison".into());
            }
            for other in &args[1..] {
                if equal(&args[0], other).map_err(|e| format!("error calling eq: {e}"))? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" => {
            want_args(name, args, 2)?;
            Ok(Value::Bool(
                !equal(&args[0], &args[1]).map_err(|e| format!("error calling ne: {e}"))?,
            ))
        }
        "lt" => ordered(name, args, |lt, _| lt).map_err(|e| format!("error calling lt: {e}")),
        "le" => {
            ordered(name, args, |lt, eq| lt || eq).map_err(|e| format!("error calling le: {e}"))
        }
        "gt" => {
            ordered(name, args, |lt, eq| !(lt || eq)).map_err(|e| format!("error calling gt: {e}"))
        }
        "ge" => ordered(name, args, |lt, _| !lt).map_err(|e| format!("error calling ge: {e}")),
        "html" => s(html_escape(&sprint(args))),
        "js" => s(js_escape(&sprint(args))),
        "urlquery" => s(query_escape(&sprint(args))),
        "query" => {
            want_args(name, args, 1)?;
            let q = string_arg(name, &args[0])?;
            let result = (env.query)(&q).map_err(|e| format!("error calling query: {e}"))?;
            Ok(Value::Vector(Rc::new(result)))
        }
        "first" => {
            want_args(name, args, 1)?;
            let v = vector_arg(name, &args[0])?;
            match v.first() {
                Some(s) => Ok(Value::Sample(Rc::new(s.clone()))),
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
            let mut v = (*vector_arg(name, &args[1])?).clone();
            v.sort_by(|a, b| a.labels.get(&l).cmp(&b.labels.get(&l)));
            Ok(Value::Vector(Rc::new(v)))
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
