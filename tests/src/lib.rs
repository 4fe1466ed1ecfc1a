//! Test kit shared by every integration test in the workspace: finds the
//! workspace binaries and external tools (Prometheus, promtool, amtool, ...),
//! picks free loopback ports, waits for servers, and kills child processes
//! when a test ends, whether it passed or panicked.
//!
//! External tools are optional on a developer machine (the test says it was
//! skipped) but mandatory in CI, where `VIGIL_REQUIRE_EXTERNAL_TOOLS=1` turns
//! a missing tool into a failure, so that a green CI run means the real tool
//! was exercised.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Environment variable that makes a missing external tool fail the test
/// instead of skipping it. `.ci/run` sets it.
pub const REQUIRE_TOOLS_ENV: &str = "VIGIL_REQUIRE_EXTERNAL_TOOLS";

/// Finds an external program on `PATH`. Returns `None` (and says so on
/// stderr) when it is missing on a developer machine; panics when it is
/// missing and [`REQUIRE_TOOLS_ENV`] is set.
pub fn external_tool(name: &str) -> Option<PathBuf> {
    if let Some(found) = find_on_path(name) {
        return Some(found);
    }
    if std::env::var(REQUIRE_TOOLS_ENV).is_ok_and(|v| v == "1") {
        panic!("{name} is required ({REQUIRE_TOOLS_ENV}=1) but was not found on PATH; run .ci/run or install it");
    }
    eprintln!(
        "SKIPPED: {name} not found on PATH (set {REQUIRE_TOOLS_ENV}=1 to make this a failure)"
    );
    None
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Root of the Cargo workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Path to a binary of this workspace (`vigil-exporter`, `vigil-evaluator`),
/// built in the same profile as the running test. Builds it when missing, so
/// that `cargo test -p some-crate` alone works too.
///
/// Builds at most once per binary and test process, one build at a time:
/// tests run in parallel threads, and two `cargo build`s replacing the same
/// executable while another test starts it would fail spuriously.
///
/// Builds the way `cargo test --workspace` does (every package, test
/// targets, dev-dependencies' features), so that inside a workspace test
/// run the build finds everything fresh instead of relinking the binary
/// with a different feature set.
pub fn cargo_bin(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, path)) = built.iter().find(|(built_name, _)| built_name == name) {
        return path.clone();
    }
    let target_profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target/debug"));
    let binary = target_profile_dir.join(name);
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args(["build", "--quiet", "--workspace", "--tests"])
        .status()
        .unwrap_or_else(|err| panic!("cannot run cargo to build {name}: {err}"));
    assert!(status.success(), "cargo build --workspace --tests failed");
    assert!(
        binary.is_file(),
        "{} was not produced by cargo build",
        binary.display()
    );
    built.push((name.to_string(), binary.clone()));
    binary
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("cannot bind a loopback port: {err}"))
}

/// Polls `url` until it answers with a success status or `timeout` passes.
pub async fn wait_for_http(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        match client.get(url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(response) => {
                anyhow::bail!("{url} answered {} until the deadline", response.status())
            }
            Err(err) => anyhow::bail!("{url} did not answer within {timeout:?}: {err}"),
        }
    }
}

/// Asserts that `stdout` is what workspace binary `name` prints for
/// `--version`: `{name} {version} (commit {id})`, where `id` is a hex commit
/// hash, or `unknown` when the build had no git checkout.
#[track_caller]
pub fn assert_version_line(name: &str, version: &str, stdout: &str) {
    let is_commit_id = |id: &str| {
        id == "unknown" || (!id.is_empty() && id.chars().all(|ch| ch.is_ascii_hexdigit()))
    };
    let id = stdout
        .trim()
        .strip_prefix(&format!("{name} {version} (commit "))
        .and_then(|rest| rest.strip_suffix(')'));
    assert!(id.is_some_and(is_commit_id), "{stdout:?}");
}

/// A child process that is killed (and reaped) when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `command` and guards the child.
    pub fn spawn(command: &mut Command) -> ChildGuard {
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
        ChildGuard(child)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
