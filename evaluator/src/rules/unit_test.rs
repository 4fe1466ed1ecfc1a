//! The `promtool test rules` file format (types and parser, the expanding
//! series notation `0+10x30`, series selectors), shared by the future
//! `vigil-evaluator test rules` runner and by tests that inspect the
//! shipped rule tests. Running the tests needs the PromQL engine and lives
//! with the runner.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::file::Scalar;
use crate::labels::{Labels, METRIC_NAME};

/// A rule unit-test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(default)]
    pub rule_files: Vec<String>,
    pub evaluation_interval: Option<String>,
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    #[serde(default)]
    pub tests: Vec<TestGroup>,
}

/// One entry of `tests:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    pub name: Option<String>,
    pub interval: Option<String>,
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTestCase>,
    #[serde(default)]
    pub promql_expr_test: Vec<PromqlTestCase>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, Scalar>,
    pub external_url: Option<String>,
}

/// A series and its expanding notation (`0+10x30`, `1 1 _ stale`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    pub series: String,
    pub values: Scalar,
}

/// The firing alerts of one alert name at one time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTestCase {
    pub eval_time: String,
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, Scalar>,
}

/// An expression's result at one time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromqlTestCase {
    pub expr: String,
    pub eval_time: String,
    #[serde(default)]
    pub exp_samples: Vec<ExpectedSample>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSample {
    pub labels: String,
    pub value: f64,
}

/// Why a test file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    #[error("cannot read rule test file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source} (expected the promtool rule unit-test format)")]
    Parse {
        path: String,
        source: serde_yaml::Error,
    },
}

/// Reads a test file.
pub fn load_test_file(path: &Path) -> Result<TestFile, TestFileError> {
    let display = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|source| TestFileError::Read {
        path: display.clone(),
        source,
    })?;
    serde_yaml::from_str(&src).map_err(|source| TestFileError::Parse {
        path: display,
        source,
    })
}

/// One point of an input series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeriesPoint {
    Value(f64),
    /// `_`: no sample at this step.
    Missing,
    /// `stale`: a staleness marker.
    Stale,
}

/// Why a `values:` string or a series selector was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error("invalid series value {item:?} in {values:?} (expected e.g. 1, _, stale, 0+10x30, 5-1x4, 1x3, _x2)")]
    BadValue { item: String, values: String },
    #[error("invalid series {series:?}: {reason} (expected e.g. metric{{label=\"value\"}})")]
    BadSeries { series: String, reason: String },
}

fn parse_number(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Expands promtool's series notation: `a`, `_`, `stale`, `a+bxn` / `a-bxn`
/// (n+1 points from a in steps of b), `axn` (n+1 copies) and `_xn` (n gaps).
pub fn expand_series_values(values: &str) -> Result<Vec<SeriesPoint>, SeriesError> {
    let mut out = Vec::new();
    for item in values.split_whitespace() {
        let bad = || SeriesError::BadValue {
            item: item.to_string(),
            values: values.to_string(),
        };
        match item {
            "_" => out.push(SeriesPoint::Missing),
            "stale" => out.push(SeriesPoint::Stale),
            _ => match item.rsplit_once('x') {
                Some((head, times))
                    if !times.is_empty() && times.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let n: usize = times.parse().map_err(|_| bad())?;
                    if head == "_" {
                        out.extend(std::iter::repeat_n(SeriesPoint::Missing, n));
                        continue;
                    }
                    // Split `a+b` / `a-b` at the operator after the first
                    // character (which may be a sign) and not inside an
                    // exponent (`1e-3`).
                    let bytes = head.as_bytes();
                    let op = (1..bytes.len()).find(|&i| {
                        matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E')
                    });
                    let (start, step) = match op {
                        Some(i) => {
                            let step = parse_number(&head[i + 1..]).ok_or_else(bad)?;
                            let start = parse_number(&head[..i]).ok_or_else(bad)?;
                            (start, if bytes[i] == b'-' { -step } else { step })
                        }
                        None => (parse_number(head).ok_or_else(bad)?, 0.0),
                    };
                    out.extend((0..=n).map(|k| SeriesPoint::Value(start + step * k as f64)));
                }
                _ => out.push(SeriesPoint::Value(parse_number(item).ok_or_else(bad)?)),
            },
        }
    }
    Ok(out)
}

/// Parses a series selector with equality matchers only
/// (`http_requests_total{route="/a"}`) into its label set.
pub fn parse_series(series: &str) -> Result<Labels, SeriesError> {
    use promql_parser::label::MatchOp;
    use promql_parser::parser::Expr;
    let bad = |reason: String| SeriesError::BadSeries {
        series: series.to_string(),
        reason,
    };
    let expr = promql_parser::parser::parse(series).map_err(bad)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(bad("not a plain series selector".into()));
    };
    if vs.offset.is_some() || vs.at.is_some() || !vs.matchers.or_matchers.is_empty() {
        return Err(bad("offset, @ and `or` are not allowed".into()));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(name) = vs.name {
        pairs.push((METRIC_NAME.to_string(), name));
    }
    for m in vs.matchers.matchers {
        if !matches!(m.op, MatchOp::Equal) {
            return Err(bad(format!("label {} must use =", m.name)));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeriesPoint::{Missing, Stale, Value as V};

    #[test]
    fn expands_promtool_series_notation() {
        assert_eq!(
            expand_series_values("0+10x3").as_deref(),
            Ok(&[V(0.0), V(10.0), V(20.0), V(30.0)][..])
        );
        assert_eq!(
            expand_series_values("5-2x2").as_deref(),
            Ok(&[V(5.0), V(3.0), V(1.0)][..])
        );
        assert_eq!(
            expand_series_values("-1+1x1").as_deref(),
            Ok(&[V(-1.0), V(0.0)][..])
        );
        assert_eq!(
            expand_series_values("7x2 _x2 stale 1e-3").as_deref(),
            Ok(&[V(7.0), V(7.0), V(7.0), Missing, Missing, Stale, V(0.001)][..])
        );
        assert_eq!(
            expand_series_values("1e3+1e2x1").as_deref(),
            Ok(&[V(1000.0), V(1100.0)][..])
        );
    }

    #[test]
    fn rejects_malformed_series_values() {
        for bad in ["abc", "1+x3", "1x", "1+2x-1"] {
            assert!(expand_series_values(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_series_selectors_into_labels() {
        let labels =
            parse_series(r#"http_requests_total{route="/a", status="500"}"#).expect("valid");
        assert_eq!(
            labels,
            Labels::from_pairs([
                ("__name__", "http_requests_total"),
                ("route", "/a"),
                ("status", "500")
            ])
        );
        assert!(parse_series(r#"up{job=~"a.*"}"#).is_err());
        assert!(parse_series("sum(up)").is_err());
    }

    #[test]
    fn shipped_rule_tests_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/tests");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("rules/tests exists") {
            let path = entry.expect("dir entry").path();
            let file = load_test_file(&path).unwrap_or_else(|e| panic!("{e}"));
            for series in file.tests.iter().flat_map(|t| &t.input_series) {
                parse_series(&series.series).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                expand_series_values(&series.values.0)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            seen += 1;
        }
        assert!(seen >= 4);
    }
}
