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

/// The glibc malloc settings the server runs with unless
/// `MALLOC_ARENA_MAX` is set (each one only where the environment does not
/// set it already). glibc reads them only at start.
///
/// - One arena: glibc gives threads that allocate at the same time arenas
///   of their own (up to eight per core) and keeps the memory each one
///   freed for its next allocations, so a server whose worker, database and
///   HTTP threads all allocate holds megabytes more than it uses. Small
///   allocations are served from glibc's per-thread cache without taking
///   the arena's lock, and the server has few threads (one runtime worker
///   per core, a few SQLite connections), so one arena costs no measurable
///   CPU.
/// - Allocations of 64 KiB and more (response bodies, query results,
///   encoded API answers) are mapped on their own and given back to the
///   system when freed, instead of glibc raising its threshold after the
///   first large free and keeping such buffers in the heap.
/// - The top of the heap is given back once 64 KiB of it is free, and no
///   extra padding is asked for when the heap grows.
///
/// Figures in BENCHMARKS.md, "Fleet".
const MALLOC_SETTINGS: [(&str, &str); 4] = [
    ("MALLOC_ARENA_MAX", "1"),
    ("MALLOC_MMAP_THRESHOLD_", "65536"),
    ("MALLOC_TRIM_THRESHOLD_", "65536"),
    ("MALLOC_TOP_PAD_", "0"),
];

/// Starts this program again, in place (same process id), with the
/// [`MALLOC_SETTINGS`] that are not set already; does nothing when
/// `MALLOC_ARENA_MAX` is set (to whatever value: the operator's choice, and
/// what tells the started-again process not to start again) or where the C
/// library is not glibc. Call before any thread starts.
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
        let mut command = std::process::Command::new(program);
        command.args(std::env::args_os().skip(1));
        for (name, value) in MALLOC_SETTINGS {
            if std::env::var_os(name).is_none() {
                command.env(name, value);
            }
        }
        let error = command.exec();
        eprintln!(
            "vigil-evaluator: cannot start again with glibc malloc settings ({error}); running with glibc's defaults"
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
