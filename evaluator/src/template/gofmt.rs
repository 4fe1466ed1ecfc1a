//! Go `fmt` number formatting (`%v`, `%g`, `%e`, `%f` with Go's rounding and
//! exponent rules) and a `Sprintf` subset, so that templates print numbers
//! byte-for-byte like Prometheus (`humanize` is `%.4g`, `{{ $value }}` is `%v`).

use super::value::Value;

/// Decimal digits of a finite, non-negative float: `0.d1d2d3... × 10^dp`,
/// without trailing zeros (Go's `strconv.decimal`).
#[derive(Debug, Clone)]
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

impl Digits {
    /// Shortest digits that round-trip (Go's `-1` precision).
    fn shortest(v: f64) -> Digits {
        Digits::from_exp_notation(&format!("{:e}", v.abs()))
    }

    /// All digits of the exact binary value (an f64 has at most 767
    /// significant decimal digits), so rounding can follow Go exactly.
    fn exact(v: f64) -> Digits {
        Digits::from_exp_notation(&format!("{:.767e}", v.abs()))
    }

    fn from_exp_notation(s: &str) -> Digits {
        let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let mut d: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            return Digits { d, dp: 0 };
        }
        Digits { d, dp: exp + 1 }
    }

    /// Rounds to `nd` digits, half to even on exact ties (strconv's rule).
    fn round(&mut self, nd: i32) {
        if nd < 0 || nd as usize >= self.d.len() {
            return;
        }
        let nd = nd as usize;
        let up = if self.d[nd] == b'5' && nd + 1 == self.d.len() {
            nd > 0 && (self.d[nd - 1] - b'0') % 2 == 1
        } else {
            self.d[nd] >= b'5'
        };
        if up {
            let mut i = nd;
            loop {
                if i == 0 {
                    self.d = vec![b'1'];
                    self.dp += 1;
                    return;
                }
                i -= 1;
                if self.d[i] < b'9' {
                    self.d[i] += 1;
                    self.d.truncate(i + 1);
                    return;
                }
            }
        }
        self.d.truncate(nd);
        while self.d.last() == Some(&b'0') {
            self.d.pop();
        }
        if self.d.is_empty() {
            self.dp = 0;
        }
    }

    fn fmt_e(&self, prec: usize, out: &mut String) {
        out.push(self.d.first().map_or('0', |&c| c as char));
        if prec > 0 {
            out.push('.');
            for i in 1..=prec {
                out.push(self.d.get(i).map_or('0', |&c| c as char));
            }
        }
        out.push('e');
        let exp = if self.d.is_empty() { 0 } else { self.dp - 1 };
        out.push(if exp < 0 { '-' } else { '+' });
        let exp = exp.unsigned_abs();
        if exp < 10 {
            out.push('0');
        }
        out.push_str(&exp.to_string());
    }

    fn fmt_f(&self, prec: usize, out: &mut String) {
        if self.dp > 0 {
            for i in 0..self.dp as usize {
                out.push(self.d.get(i).map_or('0', |&c| c as char));
            }
        } else {
            out.push('0');
        }
        if prec > 0 {
            out.push('.');
            for i in 1..=prec as i32 {
                let j = self.dp + i - 1;
                let c = if j >= 0 {
                    self.d.get(j as usize).copied()
                } else {
                    None
                };
                out.push(c.map_or('0', |c| c as char));
            }
        }
    }
}

/// Formats like Go's `strconv.FormatFloat(v, fmt, prec, 64)` for `fmt` in
/// `e`, `f`, `g` (`prec` None = shortest).
pub fn format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    let mut digs = match prec {
        None => Digits::shortest(v),
        Some(_) => Digits::exact(v),
    };
    match (verb, prec) {
        ('e', None) => {
            let p = digs.d.len().saturating_sub(1);
            digs.fmt_e(p, &mut out);
        }
        ('e', Some(p)) => {
            digs.round(p as i32 + 1);
            digs.fmt_e(p, &mut out);
        }
        ('f', None) => {
            let p = (digs.d.len() as i32 - digs.dp).max(0) as usize;
            digs.fmt_f(p, &mut out);
        }
        ('f', Some(p)) => {
            digs.round(digs.dp + p as i32);
            digs.fmt_f(p, &mut out);
        }
        (_, prec) => {
            let shortest = prec.is_none();
            let mut p = match prec {
                Some(0) => 1,
                Some(p) => p as i32,
                None => digs.d.len() as i32,
            };
            if !shortest {
                digs.round(p);
            }
            let nd = digs.d.len() as i32;
            let mut eprec = p;
            if eprec > nd && nd >= digs.dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = digs.dp - 1;
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                digs.fmt_e((p - 1).max(0) as usize, &mut out);
            } else {
                if p > digs.dp {
                    p = nd;
                }
                digs.fmt_f((p - digs.dp).max(0) as usize, &mut out);
            }
        }
    }
    out
}

/// `%v` of a float64 (and `fmt.Sprint`).
pub fn format_float_v(v: f64) -> String {
    format_float(v, 'g', None)
}

/// Go's type name for `%!verb(type=value)` diagnostics (as `%T` prints
/// it: `<nil>` for nil, the data type's full name).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::NoValue | Value::Nil => "<nil>",
        Value::Object(o) => o.go_type(),
        other => other.type_name(),
    }
}

/// Go's `strconv.Quote` for the printable-ASCII-and-common-escape cases.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(width) = spec.width else { return s };
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let fill = width - len;
    if spec.minus {
        return s + &" ".repeat(fill);
    }
    if spec.zero && numeric {
        let (sign, rest) = match s.strip_prefix(['-', '+']) {
            Some(rest) => (&s[..1], rest),
            None => ("", s.as_str()),
        };
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    " ".repeat(fill) + &s
}

fn sign(s: String, spec: &Spec) -> String {
    if s.starts_with('-') {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::NoValue | Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", go_type(arg), arg.to_go_string()),
    }
}

/// A float under `%v %g %G %e %E %f %F`, with Go's sign rules: infinities
/// always carry their sign and are never zero-padded or upper-cased; NaN
/// gets a sign only when `+` or space asks for one.
fn float_verb(verb: char, spec: &Spec, f: f64) -> String {
    if f.is_nan() || f.is_infinite() {
        let mut s = if f.is_nan() {
            "+NaN".to_string()
        } else {
            format_float(f, 'g', None)
        };
        if spec.space && !spec.plus && s.starts_with('+') {
            s.replace_range(..1, " ");
        }
        if f.is_nan() && !spec.space && !spec.plus {
            s.remove(0);
        }
        let no_zero = Spec {
            zero: false,
            ..*spec
        };
        return pad(s, &no_zero, false);
    }
    let s = match verb {
        'v' | 'g' | 'G' => format_float(f, 'g', spec.prec),
        'e' | 'E' => format_float(f, 'e', Some(spec.prec.unwrap_or(6))),
        _ => format_float(f, 'f', Some(spec.prec.unwrap_or(6))),
    };
    let s = if verb.is_ascii_uppercase() {
        s.to_uppercase()
    } else {
        s
    };
    pad(sign(s, spec), spec, true)
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> String {
    match (verb, arg) {
        ('v' | 'g' | 'G' | 'e' | 'E' | 'f' | 'F', Value::Float(f)) => float_verb(verb, spec, *f),
        ('v', Value::Int(i)) | ('d', Value::Int(i)) => pad(sign(i.to_string(), spec), spec, true),
        ('x', Value::Int(i)) => pad(
            sign(
                if *i < 0 {
                    format!("-{:x}", i.unsigned_abs())
                } else {
                    format!("{:x}", i)
                },
                spec,
            ),
            spec,
            true,
        ),
        ('X', Value::Int(i)) => pad(
            sign(
                if *i < 0 {
                    format!("-{:X}", i.unsigned_abs())
                } else {
                    format!("{:X}", i)
                },
                spec,
            ),
            spec,
            true,
        ),
        ('o', Value::Int(i)) => pad(sign(format!("{:o}", i), spec), spec, true),
        ('b', Value::Int(i)) => pad(sign(format!("{:b}", i), spec), spec, true),
        ('c', Value::Int(i)) => pad(
            char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(),
            spec,
            false,
        ),
        ('q', Value::Int(i)) => pad(
            format!("'{}'", char::from_u32(*i as u32).unwrap_or('\u{fffd}')),
            spec,
            false,
        ),
        ('s', Value::Str(s)) | ('v', Value::Str(s)) => {
            let s = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            };
            pad(s, spec, false)
        }
        ('q', Value::Str(s)) => pad(go_quote(s), spec, false),
        ('x', Value::Str(s)) => pad(s.bytes().map(|b| format!("{b:02x}")).collect(), spec, false),
        ('X', Value::Str(s)) => pad(s.bytes().map(|b| format!("{b:02X}")).collect(), spec, false),
        ('t', Value::Bool(b)) | ('v', Value::Bool(b)) => pad(b.to_string(), spec, false),
        ('v', other) => pad(other.to_go_string(), spec, false),
        ('s', Value::SafeHtml(s)) => pad(s.clone(), spec, false),
        (
            's',
            Value::Map(_)
            | Value::Kv(_)
            | Value::List(_)
            | Value::Time(_)
            | Value::Duration(_)
            | Value::Object(_),
        ) => pad(arg.to_go_string(), spec, false),
        _ => bad_verb(verb, arg),
    }
}

/// Go's `fmt.Sprintf` for the verbs rule authors use: `%s %d %f %e %g %v %q
/// %x %X %o %b %c %t %%`, with flags `- + space 0 #`, width and precision.
/// Wrong types, missing and extra arguments print Go's `%!` diagnostics.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        spec.width = width.parse().ok();
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut prec = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                prec.push(d);
                chars.next();
            }
            spec.prec = Some(prec.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next_arg) {
            Some(arg) => out.push_str(&format_one(verb, &spec, arg)),
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        next_arg += 1;
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|a| format!("{}={}", go_type(a), a.to_go_string()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_g_with_precision_matches_go() {
        let cases = [
            (1234567.0, "1.235e+06"),
            (0.0, "0"),
            (1.5, "1.5"),
            (100.0, "100"),
            (1000.0, "1000"),
            (12345.0, "1.234e+04"),
            (12355.0, "1.236e+04"),
            (0.0001234, "0.0001234"),
            (0.00001234, "1.234e-05"),
            (999.95, "1000"),
            (-2.5, "-2.5"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float(v, 'g', Some(4)), want, "%.4g of {v}");
        }
    }

    #[test]
    fn percent_v_uses_shortest_digits_and_exponent_from_1e6() {
        assert_eq!(format_float_v(0.05), "0.05");
        assert_eq!(format_float_v(100000.0), "100000");
        assert_eq!(format_float_v(1000000.0), "1e+06");
        assert_eq!(format_float_v(1234567.0), "1.234567e+06");
        assert_eq!(format_float_v(0.00001), "1e-05");
        assert_eq!(format_float_v(3.0), "3");
        assert_eq!(format_float_v(f64::NAN), "NaN");
        assert_eq!(format_float_v(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn percent_f_rounds_half_to_even_on_exact_ties() {
        assert_eq!(format_float(0.125, 'f', Some(2)), "0.12");
        assert_eq!(format_float(0.375, 'f', Some(2)), "0.38");
        assert_eq!(format_float(2.5, 'f', Some(0)), "2");
        assert_eq!(format_float(1.005, 'f', Some(2)), "1.00");
        assert_eq!(format_float(99.999, 'f', Some(2)), "100.00");
        assert_eq!(format_float(0.0, 'f', Some(3)), "0.000");
    }

    #[test]
    fn percent_e_has_two_digit_exponent() {
        assert_eq!(format_float(1234.5678, 'e', Some(2)), "1.23e+03");
        assert_eq!(format_float(0.0, 'e', Some(6)), "0.000000e+00");
    }

    #[test]
    fn sprintf_supports_common_verbs() {
        let args = [
            Value::Str("api".into()),
            Value::Float(0.123456),
            Value::Int(42),
        ];
        assert_eq!(
            sprintf(
                "%s: %.2f%% (%d) %q",
                &[
                    args[0].clone(),
                    args[1].clone(),
                    args[2].clone(),
                    args[0].clone()
                ]
            ),
            "api: 0.12% (42) \"api\""
        );
        assert_eq!(sprintf("%v|%5.1f|%-4d|", &args), "api|  0.1|42  |");
        assert_eq!(sprintf("%05d", &[Value::Int(-42)]), "-0042");
    }

    #[test]
    fn sprintf_reports_wrong_types_missing_and_extra_arguments_like_go() {
        assert_eq!(sprintf("%d", &[Value::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(
            sprintf("%s %s", &[Value::Str("a".into())]),
            "a %!s(MISSING)"
        );
        assert_eq!(sprintf("x", &[Value::Int(1)]), "x%!(EXTRA int=1)");
    }
}
