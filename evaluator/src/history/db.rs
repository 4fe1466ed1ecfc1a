//! Connecting to the history database and migrating it. SQLite and Postgres
//! are both reached through sqlx's `Any` driver, so there is one migration
//! set and one code path; the schema sticks to types `Any` carries on both
//! (text, 64-bit integers, doubles).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;

use super::HistoryError;

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Recognises `sqlite:` and `postgres:`/`postgresql:` URLs.
    pub fn of(url: &str) -> Result<Backend, HistoryError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(HistoryError::UnsupportedUrl { url: redact(url) })
        }
    }
}

/// A pool to the history database plus whether its schema is known to be
/// current. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    url: String,
    migrated: Arc<AtomicBool>,
    migrating: Arc<tokio::sync::Mutex<()>>,
}

/// The migrations in `evaluator/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Database {
    /// Connects and migrates: the normal start.
    pub async fn connect(url: &str) -> Result<Database, HistoryError> {
        let db = Database::connect_lazy(url)?;
        db.ensure_schema().await?;
        Ok(db)
    }

    /// A pool that connects on first use, so the evaluator can start (and
    /// buffer history) while the database is still unreachable; the schema is
    /// migrated by the first [`Database::ensure_schema`] that succeeds.
    pub fn connect_lazy(url: &str) -> Result<Database, HistoryError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let (connect_url, max_connections) = match backend {
            // The file is created on first start; one writer at a time is
            // all SQLite allows anyway.
            Backend::Sqlite if url.contains("mode=") => (url.to_string(), 4),
            Backend::Sqlite if url.contains('?') => (format!("{url}&mode=rwc"), 4),
            Backend::Sqlite => (format!("{url}?mode=rwc"), 4),
            Backend::Postgres => (url.to_string(), 8),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy(&connect_url)
            .map_err(|source| HistoryError::Connect {
                url: redact(url),
                source,
            })?;
        Ok(Database {
            pool,
            backend,
            url: redact(url),
            migrated: Arc::new(AtomicBool::new(false)),
            migrating: Arc::default(),
        })
    }

    /// A new pool to the same database with the same settings, sharing
    /// what is known of the schema: for a user of its own pool (the leader
    /// election) whose connection attempts were cancelled.
    pub fn reconnected(&self) -> Database {
        let pool = AnyPoolOptions::new()
            .max_connections(self.pool.options().get_max_connections())
            .acquire_timeout(self.pool.options().get_acquire_timeout())
            .connect_lazy_with((*self.pool.connect_options()).clone());
        Database {
            pool,
            ..self.clone()
        }
    }

    /// Runs the migrations unless a previous call succeeded. Calls are
    /// serialised: two migrations running at once on SQLite (which has no
    /// migration lock) would both insert the same applied-migration row.
    pub async fn ensure_schema(&self) -> Result<(), HistoryError> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_at_a_time = self.migrating.lock().await;
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        self.migrate().await?;
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// Applies every migration not applied yet.
    pub async fn migrate(&self) -> Result<(), HistoryError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|source| match source {
                // No connection at all: say so, not "cannot migrate".
                sqlx::migrate::MigrateError::Execute(
                    e @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_)),
                ) => HistoryError::Connect {
                    url: self.url.clone(),
                    source: e,
                },
                source => HistoryError::Migrate {
                    url: self.url.clone(),
                    source,
                },
            })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes every connection (tests, shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `url` with the password (if any) replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

/// Reads a column, naming the table and row in the error.
pub(crate) fn column<'r, T>(
    row: &'r AnyRow,
    name: &str,
    table: &'static str,
) -> Result<T, HistoryError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name).map_err(|err| HistoryError::Corrupt {
        table,
        id: String::new(),
        reason: format!("column {name}: {err}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://vigil:s3cret@db:5432/vigil"),
            "postgres://vigil:***@db:5432/vigil"
        );
        assert_eq!(redact("postgres://vigil@db/x"), "postgres://vigil@db/x");
        assert_eq!(redact("sqlite://vigil.db"), "sqlite://vigil.db");
    }

    #[test]
    fn backend_follows_the_url_scheme() {
        assert_eq!(Backend::of("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::of("mysql://h/db"),
            Err(HistoryError::UnsupportedUrl { .. })
        ));
    }
}
