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

/// Where [`free_port`] looks: below Linux's ephemeral range (32768 and
/// up), from which the kernel also takes the local port of every outgoing
/// connection — a port picked there can be taken by some test's HTTP
/// client before the server meant for it binds it.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback TCP port that was free a moment ago, never the same twice in
/// one test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    // Each test process starts at its own place in the range, so two test
    // binaries (or a leftover server) rarely meet.
    let seed = std::process::id().wrapping_mul(7_919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let _ = NEXT.compare_exchange(u32::MAX, seed % span, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = TEST_PORTS.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port between {} and {}",
        TEST_PORTS.start, TEST_PORTS.end
    )
}

/// Whether process `pid` itself holds a listening TCP socket on `port`
/// (Linux: `/proc/net/tcp*` and the process's descriptors); false where
/// `/proc` cannot tell. Tells a server that started from another one that
/// took its port first and answers in its place.
pub fn process_listens_on(pid: u32, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    let listening = u16::from_str_radix(local_port, 16).ok()? == port
                        && *fields.get(3)? == LISTEN;
                    let inode = fields.get(9)?;
                    listening.then(|| format!("socket:[{inode}]"))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
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
