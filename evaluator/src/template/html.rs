//! Contextual escaping of action output in HTML templates, as Go's
//! `html/template` does for the contexts notification e-mails use: element
//! text (and `<title>`), quoted attribute values, and URL attributes
//! (filtered for a safe scheme at the start, normalised in the path,
//! query-escaped after `?`), each then HTML-escaped. The context is read
//! from the output written so far.

use super::value::Value;

/// Attributes whose value is a URL.
const URL_ATTRS: &[&str] = &[
    "action",
    "archive",
    "background",
    "cite",
    "classid",
    "codebase",
    "data",
    "formaction",
    "href",
    "icon",
    "longdesc",
    "manifest",
    "poster",
    "profile",
    "src",
    "usemap",
    "xmlns",
];

/// Where an action's output lands.
#[derive(Debug, PartialEq)]
enum Context {
    Text,
    /// Inside a quoted attribute value that is not a URL.
    Attr,
    /// Inside a URL attribute; the value so far.
    Url(String),
}

/// `v` escaped for where it lands after `out`; `piped` is the last
/// function of the action's pipeline (an `html`/`urlquery` there already
/// did the matching escaping, as `html/template` accepts).
pub fn escape(out: &str, v: &Value, piped: Option<&str>) -> String {
    let text = v.to_go_string();
    match context(out) {
        Context::Text => match (v, piped) {
            (Value::SafeHtml(_), _) | (_, Some("html")) => text,
            _ => html_escape(&text),
        },
        Context::Attr => html_escape(&text),
        Context::Url(so_far) => {
            let url = if so_far.contains(['?', '#']) {
                if piped == Some("urlquery") {
                    text
                } else {
                    url_process(&text, false)
                }
            } else if so_far.is_empty() {
                url_process(&url_filter(&text), true)
            } else {
                url_process(&text, true)
            };
            html_escape(&url)
        }
    }
}

/// The context at the end of `out`.
fn context(out: &str) -> Context {
    let Some(open) = out.rfind('<') else {
        return Context::Text;
    };
    if out[open..].contains('>') {
        return Context::Text;
    }
    let tag = &out[open + 1..];
    // Walk the attributes: name [= value]; track an open quoted value.
    let bytes = tag.as_bytes();
    let mut i = bytes
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'/')
        {
            i += 1;
        }
        let name = tag[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            if i >= bytes.len() {
                return Context::Text;
            }
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let Some(&quote) = bytes.get(i) else {
            return Context::Attr;
        };
        if quote == b'"' || quote == b'\'' {
            let value_start = i + 1;
            match tag[value_start..].find(quote as char) {
                Some(end) => i = value_start + end + 1,
                None => {
                    let so_far = &tag[value_start..];
                    return if URL_ATTRS.contains(&name.as_str()) {
                        Context::Url(so_far.to_string())
                    } else {
                        Context::Attr
                    };
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= bytes.len() {
                return Context::Attr;
            }
        }
    }
}

/// Go's `htmlEscaper` replacement table.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{fffd}'),
            '"' => out.push_str("&#34;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '+' => out.push_str("&#43;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `#ZgotmplZ` for a URL whose scheme is not http, https or mailto.
fn url_filter(s: &str) -> String {
    if let Some(colon) = s.find(':') {
        if !s[..colon].contains('/') {
            let scheme = s[..colon].to_ascii_lowercase();
            if !matches!(scheme.as_str(), "http" | "https" | "mailto") {
                return "#ZgotmplZ".into();
            }
        }
    }
    s.to_string()
}

/// Go's `urlProcessor`: percent-encodes bytes outside the unreserved set;
/// `normalize` keeps reserved characters and existing escapes.
fn url_process(s: &str, normalize: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (normalize
                && matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'&'
                        | b'*'
                        | b'+'
                        | b','
                        | b'/'
                        | b':'
                        | b';'
                        | b'='
                        | b'?'
                        | b'@'
                        | b'['
                        | b']'
                        | b'%'
                ));
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn text_and_attributes_are_html_escaped() {
        assert_eq!(
            escape("<p>", &s("a<b & 'c'+1"), None),
            "a&lt;b &amp; &#39;c&#39;&#43;1"
        );
        assert_eq!(escape("<p title=\"x", &s("\"q\""), None), "&#34;q&#34;");
        assert_eq!(escape("<p>", &Value::SafeHtml("<b>".into()), None), "<b>");
        assert_eq!(escape("<title>", &Value::Int(3), None), "3");
    }

    #[test]
    fn urls_are_filtered_normalised_and_query_escaped() {
        assert_eq!(
            escape("<a href=\"", &s("http://x/a b?q=1&r=2"), None),
            "http://x/a%20b?q=1&amp;r=2"
        );
        assert_eq!(
            escape("<a href=\"", &s("javascript:alert(1)"), None),
            "#ZgotmplZ"
        );
        assert_eq!(
            escape("<a href=\"http://x/?r=", &s("a b&c"), None),
            "a%20b%26c"
        );
        assert_eq!(
            escape("<a href=\"http://x/?r=", &s("a+b"), Some("urlquery")),
            "a&#43;b"
        );
        assert_eq!(escape("<a class=\"c\" href='/p/", &s("é"), None), "%C3%A9");
    }
}
