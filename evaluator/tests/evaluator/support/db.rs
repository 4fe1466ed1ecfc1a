//! A database per test: SQLite in a temporary directory, or a fresh
//! Postgres database created from `DATABASE_URL` and dropped with the
//! guard, so tests run in parallel without seeing each other's rows.
//! Without `DATABASE_URL` a Postgres test skips (SKIPPED on stderr), unless
//! `VIGIL_REQUIRE_EXTERNAL_TOOLS=1` makes that a failure. `on_both!` runs a
//! test function on each.

#![allow(dead_code, unused_macros)]

use sqlx::{Connection, Executor};

/// A database for one test, removed when dropped.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// Postgres: the admin URL (`DATABASE_URL`) and this database's name.
    pub postgres: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
        TestDb {
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A fresh Postgres database; `None` when `DATABASE_URL` is not a
    /// Postgres URL (and external tools are not required).
    pub async fn postgres() -> Option<TestDb> {
        let db = TestDb::postgres_unborn()?;
        db.create().await;
        Some(db)
    }

    /// A name and URL for a fresh Postgres database, not created yet.
    pub fn postgres_unborn() -> Option<TestDb> {
        let admin = admin_url()?;
        let name = format!(
            "vigil_test_{}",
            vigil_evaluator::history::new_id(chrono::Utc::now())
        );
        Some(TestDb {
            url: with_database(&admin, &name),
            _dir: None,
            postgres: Some((admin, name)),
        })
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
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = conn.execute(sql.as_str()).await;
                }
            });
        })
        .join();
    }
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
                let db = crate::support::db::TestDb::sqlite();
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
