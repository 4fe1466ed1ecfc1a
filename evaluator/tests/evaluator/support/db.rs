//! A database per test: a SQLite file (in the test's directory or a
//! temporary one), or a fresh Postgres database created on `DATABASE_URL`'s
//! server and dropped at the end, so tests run in parallel without seeing
//! each other's rows. Without `DATABASE_URL` a Postgres test skips (SKIPPED
//! on stderr), unless `VIGIL_REQUIRE_EXTERNAL_TOOLS=1` makes that a
//! failure. `on_both!` runs a test function on each.

#![allow(dead_code, unused_macros)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor};

/// The database of one test; a Postgres one is dropped by
/// [`TestDb::finish`], or when the value is dropped.
pub struct TestDb {
    pub url: String,
    /// A lazy one-connection pool on [`TestDb::url`], for the test's own
    /// queries ([`TestDb::count`]).
    pub pool: AnyPool,
    /// Postgres: the server URL it was created from and this database's
    /// name.
    pub postgres: Option<(String, String)>,
    /// The temporary directory holding the SQLite file of
    /// [`TestDb::temp_sqlite`], removed with it.
    pub dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// The SQLite file `history.db` in `dir` (created on first use).
    pub async fn sqlite(dir: &Path) -> TestDb {
        TestDb::sqlite_file(dir)
    }

    /// A SQLite file in a temporary directory of its own.
    pub fn temp_sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut db = TestDb::sqlite_file(dir.path());
        db.dir = Some(dir);
        db
    }

    fn sqlite_file(dir: &Path) -> TestDb {
        let url = format!("sqlite://{}", dir.join("history.db").display());
        TestDb {
            pool: lazy_pool(&format!("{url}?mode=rwc")),
            url,
            postgres: None,
            dir: None,
        }
    }

    /// A fresh Postgres database on `DATABASE_URL`'s server; `None` when
    /// `DATABASE_URL` is not a Postgres URL (and external tools are not
    /// required).
    pub async fn postgres() -> Option<TestDb> {
        Some(TestDb::fresh_on(&admin_url()?).await)
    }

    /// A fresh database on the Postgres server at `server` (any database
    /// URL of it).
    pub async fn fresh_on(server: &str) -> TestDb {
        let db = TestDb::unborn_on(server);
        db.create().await;
        db
    }

    /// A name and URL for a fresh Postgres database on `DATABASE_URL`'s
    /// server, not created yet.
    pub fn postgres_unborn() -> Option<TestDb> {
        Some(TestDb::unborn_on(&admin_url()?))
    }

    fn unborn_on(server: &str) -> TestDb {
        // One process runs every test: the counter keeps two tests that
        // start in the same nanosecond apart.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() % 1_000_000_000);
        let name = format!(
            "vigil_test_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(server, &name);
        TestDb {
            pool: lazy_pool(&url),
            url,
            postgres: Some((server.to_string(), name)),
            dir: None,
        }
    }

    /// Creates the database of [`TestDb::postgres_unborn`].
    pub async fn create(&self) {
        let (admin, name) = self.postgres.as_ref().expect("a Postgres test database");
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    }

    /// A count query's answer, or -1 while the table does not exist yet
    /// (or the database does not answer).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or(-1)
    }

    /// Closes the pool and drops a Postgres database now.
    pub async fn finish(mut self) {
        self.pool.close().await;
        if let Some((admin, name)) = self.postgres.take() {
            drop_database(&admin, &name).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(drop_database(&admin, &name));
        })
        .join();
    }
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let _ = conn.execute(sql.as_str()).await;
    }
}

/// A pool that connects on first use, with one connection.
fn lazy_pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(1)
        .connect_lazy(url)
        .unwrap_or_else(|e| panic!("bad test database URL {url}: {e}"))
}

/// `DATABASE_URL`, or `None` after printing SKIPPED (a failure when
/// external tools are required).
fn admin_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(url),
        _ => {
            if std::env::var(vigil_testkit::REQUIRE_TOOLS_ENV).is_ok_and(|v| v == "1") {
                panic!(
                    "DATABASE_URL (a Postgres URL) is required ({}=1) but is not set",
                    vigil_testkit::REQUIRE_TOOLS_ENV
                );
            }
            eprintln!("SKIPPED: DATABASE_URL is not set to a Postgres URL");
            None
        }
    }
}

/// `url` pointing at database `name` instead.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..host_end])
}

/// Generates `NAME::sqlite` and `NAME::postgres` tests running `NAME(url)`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = crate::support::db::TestDb::temp_sqlite();
                super::$name(db.url.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = crate::support::db::TestDb::postgres().await else { return };
                super::$name(db.url.clone()).await;
            }
        }
    )*};
}
