//! vigil-evaluator binary: parses the command line and hands over to the
//! library's command modules; prints the error chain and picks the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_evaluator::cli;

#[derive(Parser)]
#[command(
    name = "vigil-evaluator",
    version,
    about = "Evaluates Prometheus rules and sends alerts."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check configuration or rule files and report every problem.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run promtool-compatible rule unit tests.
    #[command(subcommand)]
    Test(TestCommand),
    /// Run promqltest scripts and print "N passed, N failed, N skipped".
    PromqlTest {
        /// promqltest script files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Check rule files.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TestCommand {
    /// Run rule unit-test files (promtool format).
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Check(CheckCommand::Rules { files })) => cli::check::run(&files),
        Some(Command::Test(TestCommand::Rules { files })) => cli::rules_test::run(&files),
        Some(Command::PromqlTest { files }) => cli::promql_test::run(&files),
        None => Err(anyhow::anyhow!("the evaluator server is not built yet")),
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
