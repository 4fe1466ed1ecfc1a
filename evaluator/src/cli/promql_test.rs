//! `vigil-evaluator promql-test FILE...`: runs promqltest scripts against the
//! engine and prints per-file and total pass/fail/skip counts. Failing and
//! skipped cases are listed when `VIGIL_PROMQL_TEST_VERBOSE` is set (or
//! `-v` is passed after `--`). `VIGIL_PROMQL_DELAYED_NAME_REMOVAL=1` runs
//! the engine with Prometheus' delayed metric-name removal.

use std::io::Write;

use anyhow::Context;

use crate::promql::promqltest::{parse_script, run_script_with, CaseOutcome};
use crate::promql::EngineOptions;

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn emit(out: &mut impl Write, text: &str) -> anyhow::Result<()> {
    match writeln!(out, "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the promql-test report to stdout")
        }
        _ => Ok(()),
    }
}

/// Runs the subcommand; `Ok(true)` means no case failed.
pub fn run(files: &[std::path::PathBuf]) -> anyhow::Result<bool> {
    let verbose = std::env::var_os("VIGIL_PROMQL_TEST_VERBOSE").is_some()
        || files.iter().any(|f| f.as_os_str() == "-v");
    let options = EngineOptions {
        delayed_name_removal: std::env::var_os("VIGIL_PROMQL_DELAYED_NAME_REMOVAL").is_some(),
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for path in files.iter().filter(|f| f.as_os_str() != "-v") {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading promqltest script {}", path.display()))?;
        let commands = parse_script(&text)
            .with_context(|| format!("parsing promqltest script {}", path.display()))?;
        let report = run_script_with(&commands, options.clone());
        emit(
            &mut out,
            &format!(
                "{}: {} passed, {} failed, {} skipped",
                path.display(),
                report.passed(),
                report.failed(),
                report.skipped()
            ),
        )?;
        if verbose {
            for (line, query, outcome) in &report.cases {
                let shown = match outcome {
                    CaseOutcome::Failed(why) => {
                        format!("  FAIL {}:{line}: {query}\n       {why}", path.display())
                    }
                    CaseOutcome::Skipped(why) => {
                        format!("  SKIP {}:{line}: {query} ({why})", path.display())
                    }
                    CaseOutcome::Passed => continue,
                };
                emit(&mut out, &shown)?;
            }
        }
        passed += report.passed();
        failed += report.failed();
        skipped += report.skipped();
    }
    emit(
        &mut out,
        &format!("{passed} passed, {failed} failed, {skipped} skipped"),
    )?;
    Ok(failed == 0)
}
