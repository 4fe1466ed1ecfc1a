//! (skeleton) `routes test` subcommand.

use std::path::Path;

/// Prints the receivers the labels route to; `Ok(true)` means success.
pub fn run(_notify_config: &Path, _labels: &[String]) -> anyhow::Result<bool> {
    anyhow::bail!("routes test is not implemented yet")
}
