//! A fresh Postgres database per test, created from `DATABASE_URL` and
//! dropped when the guard goes, so tests run in parallel without seeing
//! each other's rows. Without `DATABASE_URL` the caller skips (SKIPPED on
//! stderr), unless `VIGIL_REQUIRE_EXTERNAL_TOOLS=1` makes that a failure.

#![allow(dead_code)]

use sqlx::{Connection, Executor};

/// A database that is dropped with this value.
pub struct FreshDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl FreshDatabase {
    /// Creates the database; `None` when `DATABASE_URL` is not a Postgres
    /// URL (and external tools are not required).
    pub async fn create() -> Option<FreshDatabase> {
        let admin = match std::env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => url,
            _ => {
                if std::env::var(vigil_testkit::REQUIRE_TOOLS_ENV).is_ok_and(|v| v == "1") {
                    panic!(
                        "DATABASE_URL (a Postgres URL) is required ({}=1) but is not set",
                        vigil_testkit::REQUIRE_TOOLS_ENV
                    );
                }
                eprintln!("SKIPPED: DATABASE_URL is not set to a Postgres URL");
                return None;
            }
        };
        let name = format!(
            "vigil_test_{}",
            vigil_evaluator::history::new_id(chrono::Utc::now())
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        Some(FreshDatabase {
            url: with_database(&admin, &name),
            admin,
            name,
        })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
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
