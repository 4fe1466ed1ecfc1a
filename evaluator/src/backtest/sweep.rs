//! Threshold sweeps: `--sweep 'ALERTNAME[{label=value,...}]:FROM:TO:STEP'`
//! picks one alerting rule, finds the top-level comparison of its
//! expression with a number on one side (`x > 0.05`, `0.05 < x`,
//! `x > bool 0.05`, `x < 14 * 86400`; parentheses allowed), and replays
//! the rule once per threshold. The other side is queried once; each
//! threshold is applied to its values here, with PromQL's comparison
//! semantics.

use promql_parser::parser::{self, Expr};

use crate::labels::{Labels, METRIC_NAME};
use crate::sample::Sample;

/// Most threshold values one sweep replays.
pub const MAX_SWEEP_VALUES: usize = 200;

/// A parsed `--sweep` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    pub alertname: String,
    /// Static rule labels that pick one of several rules with that name.
    pub labels: Vec<(String, String)>,
    pub values: Vec<f64>,
}

impl SweepSpec {
    /// Whether a rule with this name and these static labels is the one.
    pub fn selects(&self, alertname: &str, labels: &crate::rules::text_map::TextMap) -> bool {
        alertname == self.alertname
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    }
}

/// Parses `ALERTNAME[{label=value,...}]:FROM:TO:STEP`.
pub fn parse_sweep(text: &str) -> Result<SweepSpec, String> {
    let bad = |why: &str| {
        format!("--sweep {text:?}: {why}; write ALERTNAME[{{label=value}}]:FROM:TO:STEP, e.g. 'HTTPErrorRateHigh{{severity=warning}}:0.01:0.2:0.01'")
    };
    let mut parts = text.rsplitn(4, ':');
    let (Some(step), Some(to), Some(from), Some(rule)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("it needs four parts separated by ':'"));
    };
    let number = |name: &str, s: &str| -> Result<f64, String> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(&format!("{name} {s:?} is not a number")))
    };
    let (from, to, step) = (
        number("FROM", from)?,
        number("TO", to)?,
        number("STEP", step)?,
    );
    if step <= 0.0 {
        return Err(bad("STEP must be above 0"));
    }
    if to < from {
        return Err(bad("TO must not be below FROM"));
    }
    let count = ((to - from) / step + 1e-9).floor() as usize + 1;
    if count > MAX_SWEEP_VALUES {
        return Err(bad(&format!(
            "that is {count} values, over the limit of {MAX_SWEEP_VALUES}; use a larger STEP"
        )));
    }
    let values = (0..count)
        .map(|i| {
            let v = from + i as f64 * step;
            // Keep 1e-12 precision so 0.1 + 2 × 0.1 prints as 0.3.
            (v * 1e12).round() / 1e12
        })
        .collect();
    let (alertname, labels) = match rule.split_once('{') {
        None => (rule.trim().to_string(), Vec::new()),
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .ok_or_else(|| bad("the label list must end with '}'"))?;
            let mut labels = Vec::new();
            for pair in inner.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| bad(&format!("{pair:?} is not label=value")))?;
                labels.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
            }
            (name.trim().to_string(), labels)
        }
    };
    if alertname.is_empty() {
        return Err(bad("the alert name is missing"));
    }
    Ok(SweepSpec {
        alertname,
        labels,
        values,
    })
}

/// The top-level comparison of a rule's expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// `==`, `!=`, `>`, `<`, `>=`, `<=`.
    pub op: String,
    /// The number in the rule as written.
    pub constant: f64,
    /// The number is on the left (`0.05 < x`).
    pub constant_on_left: bool,
    /// `bool` modifier: every series is kept with value 1 or 0.
    pub return_bool: bool,
    /// The other side, as PromQL text (queried once for every threshold).
    pub other_side: String,
}

/// The value of a constant expression: a number, possibly negated,
/// parenthesised or computed from numbers (`14 * 86400`).
fn number(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Paren(p) => number(&p.expr),
        Expr::Unary(u) => number(&u.expr).map(|v| -v),
        Expr::Binary(b) if !b.op.is_comparison_operator() => {
            let (l, r) = (number(&b.lhs)?, number(&b.rhs)?);
            match b.op.to_string().as_str() {
                "+" => Some(l + r),
                "-" => Some(l - r),
                "*" => Some(l * r),
                "/" => Some(l / r),
                "%" => Some(l % r),
                "^" => Some(l.powf(r)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn strip_parens(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => strip_parens(&p.expr),
        other => other,
    }
}

/// Finds the comparison a sweep varies; says why not when there is none.
pub fn find_comparison(rule: &str, expr: &str) -> Result<Comparison, String> {
    let parsed = parser::parse(expr)
        .map_err(|e| format!("rule {rule}: its expression does not parse: {e}"))?;
    let refuse = || {
        format!("rule {rule} cannot be swept: its expression `{expr}` has no top-level comparison with a number on one side (such as `x > 0.05`)")
    };
    let Expr::Binary(binary) = strip_parens(&parsed) else {
        return Err(refuse());
    };
    if !binary.op.is_comparison_operator() {
        return Err(refuse());
    }
    let (constant, constant_on_left, other) = match (number(&binary.lhs), number(&binary.rhs)) {
        (None, Some(c)) => (c, false, &binary.lhs),
        (Some(c), None) => (c, true, &binary.rhs),
        _ => return Err(refuse()),
    };
    Ok(Comparison {
        op: binary.op.to_string(),
        constant,
        constant_on_left,
        return_bool: binary.return_bool(),
        other_side: other.to_string(),
    })
}

impl Comparison {
    /// The rule's expression with `threshold` in place of the number.
    pub fn expr_with(&self, threshold: f64) -> String {
        self.expr_with_text(&threshold.to_string())
    }

    /// The rule's expression with `text` in place of the number.
    pub fn expr_with_text(&self, text: &str) -> String {
        let op = if self.return_bool {
            format!("{} bool", self.op)
        } else {
            self.op.clone()
        };
        if self.constant_on_left {
            format!("{text} {op} {}", self.other_side)
        } else {
            format!("{} {op} {text}", self.other_side)
        }
    }

    fn holds(&self, value: f64, threshold: f64) -> bool {
        let (l, r) = if self.constant_on_left {
            (threshold, value)
        } else {
            (value, threshold)
        };
        match self.op.as_str() {
            "==" => l == r,
            "!=" => l != r,
            ">" => l > r,
            "<" => l < r,
            ">=" => l >= r,
            _ => l <= r,
        }
    }

    /// What the whole expression returns, given what the other side
    /// returned: as PromQL, the samples for which the comparison holds
    /// (with the series' own value), or with `bool` every sample as 1 or
    /// 0 without its metric name.
    pub fn apply(&self, other_side: Vec<Sample>, threshold: f64) -> Vec<Sample> {
        if self.return_bool {
            return other_side
                .into_iter()
                .map(|mut s| {
                    s.value = f64::from(u8::from(self.holds(s.value, threshold)));
                    if s.labels.get(METRIC_NAME).is_some() {
                        let mut labels: Labels = s.labels.clone();
                        labels.remove(METRIC_NAME);
                        s.labels = labels;
                    }
                    s
                })
                .collect();
        }
        other_side
            .into_iter()
            .filter(|s| self.holds(s.value, threshold))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn sample(v: f64) -> Sample {
        Sample {
            labels: Labels::from_pairs([("__name__", "x"), ("i", &v.to_string())]),
            t_ms: 0,
            value: v,
        }
    }

    fn values(samples: &[Sample]) -> Vec<f64> {
        samples.iter().map(|s| s.value).collect()
    }

    #[test]
    fn sweep_specs_name_a_rule_and_a_range_of_values() {
        let s = parse_sweep("HTTPErrorRateHigh{severity=\"warning\"}:0.1:0.3:0.1").unwrap();
        assert_eq!(s.alertname, "HTTPErrorRateHigh");
        assert_eq!(s.labels, vec![("severity".into(), "warning".into())]);
        assert_eq!(s.values, vec![0.1, 0.2, 0.3]);
        let s = parse_sweep("Down:-2:2:2").unwrap();
        assert_eq!(s.values, vec![-2.0, 0.0, 2.0]);
        for (bad, why) in [
            ("Down:1:2", "four parts"),
            ("Down:1:x:1", "TO \"x\" is not a number"),
            ("Down:2:1:1", "TO must not be below FROM"),
            ("Down:0:1:0", "STEP must be above 0"),
            ("Down:0:1000:1", "over the limit of 200"),
            ("Down{a:0:1:1", "must end with '}'"),
        ] {
            let err = parse_sweep(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_comparison_is_found_on_either_side_and_through_parentheses() {
        let c = find_comparison("R", "(rate(x[5m]) > 0.05)").unwrap();
        assert_eq!(
            (c.op.as_str(), c.constant, c.constant_on_left),
            (">", 0.05, false)
        );
        assert_eq!(c.other_side, "rate(x[5m])");
        assert_eq!(c.expr_with(0.1), "rate(x[5m]) > 0.1");
        let c = find_comparison("R", "0.05 < sum by (job) (x)").unwrap();
        assert!(c.constant_on_left);
        assert_eq!(c.expr_with(1.0), "1 < sum by (job) (x)");
        let c = find_comparison("R", "x >= bool -(3)").unwrap();
        assert_eq!((c.constant, c.return_bool), (-3.0, true));
        let c = find_comparison("R", "expiry - time() < 14 * 86400").unwrap();
        assert_eq!(
            (c.constant, c.other_side.as_str()),
            (1_209_600.0, "expiry - time()")
        );
    }

    #[test]
    fn rules_without_a_comparison_to_a_number_are_refused() {
        for expr in ["absent(up)", "x > y", "x + 1", "x > 1 and y", "1 > bool 2"] {
            let err = find_comparison("R", expr).unwrap_err();
            assert!(
                err.contains("rule R cannot be swept") && err.contains("no top-level comparison"),
                "{expr}: {err}"
            );
        }
    }

    #[test]
    fn thresholds_filter_like_promql_with_the_sides_swapped_or_bool() {
        let input: Vec<Sample> = [1.0, 2.0, 3.0, f64::NAN].map(sample).to_vec();
        let gt = find_comparison("R", "x > 0").unwrap();
        assert_eq!(values(&gt.apply(input.clone(), 2.0)), vec![3.0]);
        // 2 < x is x > 2; the value kept is the series', not the number.
        let lt_left = find_comparison("R", "0 < x").unwrap();
        assert_eq!(values(&lt_left.apply(input.clone(), 2.0)), vec![3.0]);
        let ne = find_comparison("R", "x != 0").unwrap();
        assert_eq!(ne.apply(input.clone(), 2.0).len(), 3, "NaN != 2 holds");
        let le_bool = find_comparison("R", "x <= bool 0").unwrap();
        let out = le_bool.apply(input, 2.0);
        assert_eq!(values(&out), vec![1.0, 1.0, 0.0, 0.0]);
        assert_eq!(out[0].labels.get("__name__"), None);
        assert_eq!(out[0].labels.get("i"), Some("1"));
    }
}
