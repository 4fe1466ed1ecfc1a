//! vigil-evaluator binary: parses the command line and hands over to the
//! library's command modules; prints the error chain and picks the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_common::build_info::VERSION;
use vigil_evaluator::cli;
use vigil_evaluator::cli::run::LogFormat;
use vigil_evaluator::clock::{Clock, SystemClock};

#[derive(Parser)]
#[command(
    name = "vigil-evaluator",
    version = VERSION,
    long_version = VERSION,
    about = "Evaluates Prometheus rules and sends alerts.",
    after_help = "Environment:\n  RUST_LOG          log level and filters (default: info), e.g. RUST_LOG=debug\n  DATABASE_URL      overrides storage.database_url (sqlite://FILE or postgres://...);\n                    taken as given: a relative sqlite FILE is relative to the working directory\n  VIGIL_API_TOKEN   bearer token for POST /-/reload when web.token_file is unset\n  MALLOC_ARENA_MAX  glibc malloc arenas; when unset, `run` starts itself again (same process) with 1\n                    and smaller mmap/trim thresholds (MALLOC_MMAP_THRESHOLD_ etc., each unless set)\n\nSignals: SIGHUP reloads the configuration; SIGTERM or ctrl-c stops cleanly.\nReference: the README's Evaluator section."
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: run the evaluator.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The evaluator configuration file (vigil.yaml); relative paths in it
    /// (rule files, notification config, token and URL files, the file of a
    /// sqlite:// database URL) are relative to its directory.
    #[arg(long, short = 'c', value_name = "FILE", default_value = "vigil.yaml")]
    config: PathBuf,
    /// How log lines are written to stderr (text, or one JSON object per
    /// line); the level comes from RUST_LOG.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the evaluator server (the default without a subcommand).
    Run(RunArgs),
    /// Check configuration or rule files and report every problem.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run promtool-compatible rule unit tests.
    #[command(subcommand)]
    Test(TestCommand),
    /// Test notification routing, like `amtool config routes test`.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Send a test notification through receivers' integrations.
    #[command(subcommand)]
    Receivers(ReceiversCommand),
    /// Replay alerting rules over past data from a Prometheus-compatible
    /// datasource: episodes, firing time, near misses, flaps and
    /// notifications per rule; compare with a baseline or sweep a threshold.
    Backtest(Box<cli::backtest::BacktestArgs>),
    /// Run promqltest scripts and print "N passed, N failed, N skipped".
    PromqlTest {
        /// promqltest script files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Check an evaluator configuration file and every file it names.
    Config {
        /// The configuration file (vigil.yaml).
        file: PathBuf,
    },
    /// Check rule files.
    Rules {
        /// Rule files (Prometheus format).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Print the receivers an alert with these labels is routed to, comma-separated,
    /// then whether each matched route's time intervals mute it.
    Test {
        /// Alertmanager-format notification config.
        #[arg(long = "notify-config")]
        notify_config: PathBuf,
        /// The time the time intervals are evaluated at (RFC 3339, e.g.
        /// 2026-12-05T09:30:00Z); default now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Labels of the alert, as LABEL=VALUE.
        labels: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ReceiversCommand {
    /// Send one test notification through each integration of a receiver
    /// (or of every receiver) and print OK or the error per integration;
    /// exits 1 when any failed.
    Test {
        /// Alertmanager-format notification config.
        #[arg(long = "notify-config")]
        notify_config: PathBuf,
        /// Only this receiver (default: every receiver).
        #[arg(long)]
        receiver: Option<String>,
        /// A label of the test alert, as LABEL=VALUE (repeatable; default
        /// alertname=VigilReceiverTest).
        #[arg(long = "alert", value_name = "LABEL=VALUE")]
        alert: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run rule unit-test files (promtool format).
    Rules {
        /// Unit-test files (promtool `test rules` format).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Run(_)) | None) {
        cli::run::limit_malloc_arenas();
    }
    let result = match cli.command {
        Some(Command::Run(args)) => cli::run::run(args.config, args.log_format),
        Some(Command::Check(CheckCommand::Config { file })) => cli::check::run_config(&file),
        Some(Command::Check(CheckCommand::Rules { files })) => cli::check::run(&files),
        Some(Command::Test(TestCommand::Rules { files })) => cli::rules_test::run(&files),
        Some(Command::Routes(RoutesCommand::Test {
            notify_config,
            labels,
            at,
        })) => cli::routes_test::run(
            &notify_config,
            &labels,
            at.map_or_else(|| SystemClock.now(), |t| t.to_utc()),
        ),
        Some(Command::Receivers(ReceiversCommand::Test {
            notify_config,
            receiver,
            alert,
        })) => cli::receivers_test::run(&notify_config, receiver.as_deref(), &alert),
        Some(Command::Backtest(args)) => cli::backtest::run(&args),
        Some(Command::PromqlTest { files }) => cli::promql_test::run(&files),
        None => cli::run::run(cli.run.config, cli.run.log_format),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("vigil-evaluator: {err:#}");
            ExitCode::from(2)
        }
    }
}
