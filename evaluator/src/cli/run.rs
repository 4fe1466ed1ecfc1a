//! `vigil-evaluator [run] [--config vigil.yaml]`: sets up logging
//! (`--log-format text|json`, level from `RUST_LOG`, default `info`) and
//! runs the evaluator server until SIGTERM or ctrl-c.

use std::path::PathBuf;

use tracing_subscriber::EnvFilter;

use crate::server::{self, app::DEFAULT_SHUTDOWN_GRACE, ServerError};

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The number of malloc arenas the server runs with unless
/// `MALLOC_ARENA_MAX` is set: glibc gives threads that allocate at the
/// same time arenas of their own (up to eight per core) and keeps the
/// memory each one freed for its next allocations, so a server whose
/// worker, database and HTTP threads all allocate holds several megabytes
/// more than it uses. Two arenas cost no measurable CPU here
/// (BENCHMARKS.md, "Fleet mode").
const MALLOC_ARENA_MAX: &str = "2";

/// Starts this program again, in place (same process id), with
/// `MALLOC_ARENA_MAX` set, which glibc reads only at start; does nothing
/// when it is set already (to whatever value: the operator's choice) or
/// where the C library is not glibc. Call before any thread starts.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let Ok(program) = std::env::current_exe() else {
            return;
        };
        let error = std::process::Command::new(program)
            .args(std::env::args_os().skip(1))
            .env("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX)
            .exec();
        eprintln!(
            "vigil-evaluator: cannot start again with MALLOC_ARENA_MAX={MALLOC_ARENA_MAX} ({error}); running with glibc's default malloc arenas"
        );
    }
}

/// Runs the server; `Ok(false)` when the configuration was rejected (the
/// problems are printed), `Ok(true)` after a clean shutdown.
pub fn run(config_file: PathBuf, log_format: LogFormat) -> anyhow::Result<bool> {
    init_logging(log_format);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        anyhow::anyhow!("cannot start the async runtime: {e}; the process may be out of threads or file descriptors (check ulimit -u / -n)")
    })?;
    let result = runtime.block_on(server::run(server::Options {
        config_file,
        shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
    }));
    match result {
        Ok(()) => Ok(true),
        Err(ServerError::Config(errors)) => {
            eprintln!("{errors}");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
