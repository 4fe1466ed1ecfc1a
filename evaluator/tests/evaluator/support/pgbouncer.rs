//! A private PgBouncer for a test: started on a free loopback port in
//! transaction mode (`pool_mode = transaction`) with a small pool, in front
//! of the Postgres server of `DATABASE_URL`, and killed when dropped.
//! Without `pgbouncer` installed the test prints SKIPPED, unless
//! `VIGIL_REQUIRE_EXTERNAL_TOOLS=1` makes that a failure.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_testkit::{external_tool, free_port, ChildGuard};

pub struct PgBouncer {
    pub port: u16,
    /// Server connections per database and user.
    pub pool_size: u32,
    dir: tempfile::TempDir,
    child: ChildGuard,
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode with `pool_size` server
    /// connections per database and user, in front of the Postgres server
    /// that `server_url` (any database URL of it) points at; `None` after
    /// printing SKIPPED when `pgbouncer` is not installed (a failure with
    /// `VIGIL_REQUIRE_EXTERNAL_TOOLS=1`).
    pub async fn start(server_url: &str, pool_size: u32) -> Option<PgBouncer> {
        PgBouncer::start_with(server_url, pool_size, "extra_float_digits").await
    }

    /// [`PgBouncer::start`] with `ignore_startup_parameters` set to
    /// `ignored` (sqlx's connections need `extra_float_digits` there).
    pub async fn start_with(server_url: &str, pool_size: u32, ignored: &str) -> Option<PgBouncer> {
        // Debian installs it outside a user's PATH.
        let binary = Some(PathBuf::from("/usr/sbin/pgbouncer"))
            .filter(|p| p.is_file())
            .or_else(|| external_tool("pgbouncer"))?;
        let server = reqwest::Url::parse(server_url).unwrap();
        let host = server.host_str().unwrap_or("127.0.0.1").to_string();
        let port = server.port().unwrap_or(5432);
        let user = match server.username() {
            "" => "postgres".to_string(),
            user => user.to_string(),
        };
        let password = server.password().unwrap_or("").to_string();
        let dir = tempfile::tempdir().unwrap();
        let listen = free_port();
        // `trust`: PgBouncer lets the client in if its user is listed, and
        // logs in to the server as that user (with the password given here).
        std::fs::write(
            dir.path().join("users.txt"),
            format!("\"{user}\" \"{password}\"\n"),
        )
        .unwrap();
        // sqlx sends extra_float_digits at start-up, which PgBouncer 1.18
        // refuses unless told to ignore it (README, "Behind PgBouncer").
        std::fs::write(
            dir.path().join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host={host} port={port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {auth}\n\
                 pool_mode = transaction\ndefault_pool_size = {pool_size}\n\
                 min_pool_size = 0\nreserve_pool_size = 0\nmax_client_conn = 500\n\
                 ignore_startup_parameters = {ignored}\n\
                 server_login_retry = 1\nlog_connections = 0\nlog_disconnections = 0\n",
                auth = dir.path().join("users.txt").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("pgbouncer.log")).unwrap();
        let mut command = Command::new(binary);
        // PgBouncer refuses to run as root; as root it is told to switch
        // to an unprivileged user, who must be able to read its files.
        if running_as_root() {
            make_readable_by_all(dir.path());
            command.args(["-u", "nobody"]);
        }
        command
            .arg(dir.path().join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = ChildGuard::spawn(&mut command);
        let mut bouncer = PgBouncer {
            port: listen,
            pool_size,
            dir,
            child,
        };
        bouncer.wait_until_listening().await;
        Some(bouncer)
    }

    /// `url` (a URL of a database on the server) through PgBouncer.
    pub fn url(&self, url: &str) -> String {
        let mut url = reqwest::Url::parse(url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    /// PgBouncer's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.log")
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                panic!(
                    "pgbouncer exited ({status}) at start; its log:\n{}",
                    self.log()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen on port {} within 15 s; its log:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn make_readable_by_all(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}
