//! Runs the PromQL conformance corpus (Prometheus' promqltest scripts, kept
//! outside the repository in `shared/promql-conformance`) and fails when a
//! file has more failing cases than its committed baseline, so regressions
//! fail CI while the engine is still being completed.

use std::path::{Path, PathBuf};

use vigil_evaluator::promql::promqltest::{parse_script, run_script_with};
use vigil_evaluator::promql::EngineOptions;

/// Maximum number of failing cases per file; lower these as the engine improves.
const FAILURE_BASELINE: &[(&str, usize)] = &[
    ("aggregators.test", 0),
    ("at_modifier.test", 0),
    ("collision.test", 0),
    ("functions.test", 0),
    ("histograms.test", 0),
    ("literals.test", 0),
    ("operators.test", 0),
    ("range_queries.test", 0),
    ("selectors.test", 0),
    ("staleness.test", 0),
    ("subquery.test", 0),
];

/// `VIGIL_PROMQL_CONFORMANCE_DIR`, else the first `shared/promql-conformance`
/// found walking up from the workspace.
fn conformance_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("VIGIL_PROMQL_CONFORMANCE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mut dir: Option<&Path> = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let candidate = d.join("shared").join("promql-conformance");
        if candidate.is_dir() {
            return Some(candidate);
        }
        dir = d.parent();
    }
    None
}

#[test]
fn conformance_failures_do_not_exceed_the_baseline() {
    check_corpus(EngineOptions::default());
}

#[test]
fn conformance_holds_with_delayed_name_removal_too() {
    check_corpus(EngineOptions {
        delayed_name_removal: true,
        ..Default::default()
    });
}

fn check_corpus(options: EngineOptions) {
    let Some(dir) = conformance_dir() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "shared/promql-conformance not found; set VIGIL_PROMQL_CONFORMANCE_DIR"
        );
        println!("SKIPPED: shared/promql-conformance not found (set VIGIL_PROMQL_CONFORMANCE_DIR)");
        return;
    };
    let mut regressions = Vec::new();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (file, baseline) in FAILURE_BASELINE {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let commands =
            parse_script(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        let report = run_script_with(&commands, options.clone());
        println!(
            "{file}: {} passed, {} failed, {} skipped (baseline: at most {baseline} failed)",
            report.passed(),
            report.failed(),
            report.skipped()
        );
        passed += report.passed();
        failed += report.failed();
        skipped += report.skipped();
        if report.failed() > *baseline {
            regressions.push(format!("{file}: {} failed > {baseline}", report.failed()));
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    assert!(
        regressions.is_empty(),
        "conformance regressions: {regressions:?}"
    );
}
