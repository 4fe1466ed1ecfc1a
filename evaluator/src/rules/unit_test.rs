//! The `promtool test rules` file format (types and parser), shared by the
//! future `vigil-evaluator test rules` runner and by tests that inspect the
//! shipped rule tests. Running the tests needs the PromQL engine and lives
//! with the runner.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::file::Scalar;

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
