//! `promtool test rules`: the unit-test file format and its runner. A test
//! file names rule files and lists test groups; each group loads input
//! series (in the expanding notation of
//! [`crate::promql::series_notation`]), steps every rule group from time 0
//! to the latest `eval_time`, and compares firing alerts and PromQL results
//! with the expectations exactly as promtool 2.42 does, so a rule repository
//! can switch between the two tools without its tests changing verdict.

mod report;
mod run;

pub use run::{run_test_file, FileReport};

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::file::Scalar;

/// A rule unit-test file. Every field may be left out, as in promtool
/// (which reads missing fields as zero values).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files, relative to the test file's directory; globs allowed.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// How often the rule groups are evaluated (default 1m).
    pub evaluation_interval: Option<Scalar>,
    /// Names of rule groups in the order to evaluate them.
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    #[serde(default)]
    pub tests: Vec<TestGroup>,
}

/// One entry of `tests:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    pub name: Option<String>,
    /// Spacing of the input series' values. promtool 2.42 does not default
    /// it: left out, every value lands at time 0 (and the first one wins).
    pub interval: Option<Scalar>,
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    #[serde(default)]
    pub series: String,
    #[serde(default)]
    pub values: Scalar,
}

/// The firing alerts of one alert name at one time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTestCase {
    #[serde(default)]
    pub eval_time: Scalar,
    #[serde(default)]
    pub alertname: String,
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

/// One expected firing alert: its labels (without `alertname`, which is
/// implied) and its annotations after templating.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, Scalar>,
}

/// An expression's result at one time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromqlTestCase {
    #[serde(default)]
    pub expr: String,
    #[serde(default)]
    pub eval_time: Scalar,
    #[serde(default)]
    pub exp_samples: Vec<ExpectedSample>,
}

/// One expected sample: a series in PromQL notation and its value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSample {
    #[serde(default)]
    pub labels: String,
    #[serde(default)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::series_notation::{expand_values, parse_descriptor};

    #[test]
    fn shipped_rule_tests_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/tests");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("rules/tests exists") {
            let path = entry.expect("dir entry").path();
            let file = load_test_file(&path).unwrap_or_else(|e| panic!("{e}"));
            for series in file.tests.iter().flat_map(|t| &t.input_series) {
                parse_descriptor(&series.series)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                expand_values(&series.values.0)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            seen += 1;
        }
        assert!(seen >= 4);
    }
}
