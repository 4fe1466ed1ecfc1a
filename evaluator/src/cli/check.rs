//! (skeleton) `check` subcommand.

/// Runs the subcommand; `Ok(true)` means success.
pub fn run(_files: &[std::path::PathBuf]) -> anyhow::Result<bool> {
    anyhow::bail!("check is not implemented yet")
}
