//! `vigil-evaluator promql-test FILE...`: runs promqltest scripts against the
//! engine and prints per-file and total pass/fail/skip counts. Failing cases
//! are listed when `-v` is given or `VIGIL_PROMQL_TEST_VERBOSE` is set.

use anyhow::Context;

use crate::promql::promqltest::{parse_script, run_script, CaseOutcome};

/// Runs the subcommand; `Ok(true)` means no case failed.
pub fn run(files: &[std::path::PathBuf]) -> anyhow::Result<bool> {
    let verbose_env = std::env::var_os("VIGIL_PROMQL_TEST_VERBOSE").is_some();
    let verbose = verbose_env || files.iter().any(|f| f.as_os_str() == "-v");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for path in files.iter().filter(|f| f.as_os_str() != "-v") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading promqltest script {}", path.display()))?;
        let commands = parse_script(&text)
            .with_context(|| format!("parsing promqltest script {}", path.display()))?;
        let report = run_script(&commands);
        println!(
            "{}: {} passed, {} failed, {} skipped",
            path.display(),
            report.passed(),
            report.failed(),
            report.skipped()
        );
        if verbose {
            for (line, query, outcome) in &report.cases {
                match outcome {
                    CaseOutcome::Failed(why) => {
                        println!("  FAIL {}:{line}: {query}\n       {why}", path.display())
                    }
                    CaseOutcome::Skipped(why) => {
                        println!("  SKIP {}:{line}: {query} ({why})", path.display())
                    }
                    CaseOutcome::Passed => {}
                }
            }
        }
        passed += report.passed();
        failed += report.failed();
        skipped += report.skipped();
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    Ok(failed == 0)
}
