//! The version both binaries print for `--version`: the workspace version
//! and the git commit they were built from (embedded by `build.rs`).

/// The git commit (short hash) of the source, or "unknown".
pub const GIT_COMMIT: &str = env!("VIGIL_GIT_COMMIT");

/// `0.1.0 (commit abc1234)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VIGIL_GIT_COMMIT"),
    ")"
);
