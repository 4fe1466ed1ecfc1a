//! `vigil-evaluator test rules FILE...`: promtool-compatible rule unit
//! tests. Output and exit status follow `promtool test rules`: per file
//! `Unit Testing:  FILE` then `  SUCCESS`, or `  FAILED:` and the failures
//! on stderr; the command fails when any file fails (including files that
//! cannot be read or parsed, which are reported as that file's failure).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::rules::unit_test::run_test_file;

/// Writes a line; a closed pipe (`| head`) is not an error worth a panic.
fn emit(out: &mut impl Write, text: &str) -> anyhow::Result<()> {
    match writeln!(out, "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the rule unit-test report")
        }
        _ => Ok(()),
    }
}

/// Runs the subcommand; `Ok(true)` means every file passed.
pub fn run(files: &[PathBuf]) -> anyhow::Result<bool> {
    let mut all_passed = true;
    for path in files {
        let mut out = std::io::stdout().lock();
        emit(&mut out, &format!("Unit Testing:  {}", path.display()))?;
        out.flush().ok();
        let report = run_test_file(path);
        let mut err = std::io::stderr().lock();
        for warning in &report.warnings {
            emit(&mut err, &format!("  WARNING: {warning}"))?;
        }
        if report.passed() {
            emit(&mut out, "  SUCCESS")?;
        } else {
            all_passed = false;
            emit(&mut err, "  FAILED:")?;
            for failure in &report.errors {
                emit(&mut err, failure)?;
                err.flush().ok();
                emit(&mut out, "")?;
            }
        }
        emit(&mut out, "")?;
    }
    Ok(all_passed)
}
