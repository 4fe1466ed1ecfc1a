//! Go's `text/template` builtin functions (`len`, `index`, `print`,
//! `printf`, `println`, `eq`/`ne`/`lt`/`le`/`gt`/`ge`, `not`, `html`, `js`,
//! `urlquery`), with Go's results and error texts; `and`/`or` are
//! evaluated lazily by the executor.

use std::cmp::Ordering;

use super::gofmt;
use super::value::Value;

/// The builtin names (the executor handles `and` and `or`).
pub const BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "print", "printf", "println", "eq", "ne", "lt", "le", "gt",
    "ge", "html", "js", "urlquery",
];

pub fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name)
}

pub fn want_args(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
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
        Value::Int(_) | Value::Duration(_) => Ok(Kind::Int),
        Value::Float(_) => Ok(Kind::Float),
        Value::Str(_) | Value::SafeHtml(_) => Ok(Kind::Str),
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
        (Value::Int(x) | Value::Duration(x), Value::Int(y) | Value::Duration(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Str(x) | Value::SafeHtml(x), Value::Str(y) | Value::SafeHtml(y)) => Some(x.cmp(y)),
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
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.to_go_string());
    }
    out
}

pub fn html_escape(s: &str) -> String {
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

/// Calls builtin `name`; `None` if `name` is not a builtin.
pub fn call(name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    if !is_builtin(name) || name == "and" || name == "or" {
        return None;
    }
    Some(builtin(name, args))
}

fn builtin(name: &str, args: &[Value]) -> Result<Value, String> {
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
                Value::SafeHtml(x) => Ok(Value::Int(x.len() as i64)),
                Value::Map(m) | Value::Kv(m) => Ok(Value::Int(m.len() as i64)),
                other => match other.items() {
                    Some(items) => Ok(Value::Int(items.len() as i64)),
                    None => Err(format!(
                        "error calling len: len of type {}",
                        other.type_name()
                    )),
                },
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
                    (Value::Map(m) | Value::Kv(m), Value::Str(k)) => {
                        Value::Str(m.get(k).cloned().unwrap_or_default())
                    }
                    (Value::List(_) | Value::Object(_), Value::Int(i)) => {
                        let items = item.items().unwrap_or_default();
                        match usize::try_from(*i).ok().and_then(|i| items.get(i)) {
                            Some(v) => v.clone(),
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
        other => Err(format!("function {other:?} not defined")),
    }
}
