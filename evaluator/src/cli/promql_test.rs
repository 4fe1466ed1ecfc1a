//! (skeleton) `promql_test` subcommand.

/// Runs the subcommand; `Ok(true)` means success.
pub fn run(_files: &[std::path::PathBuf]) -> anyhow::Result<bool> {
    anyhow::bail!("promql_test is not implemented yet")
}
