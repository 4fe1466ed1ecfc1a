//! Connecting to the history database and migrating it. SQLite and Postgres
//! are both reached through sqlx's `Any` driver, so there is one migration
//! set and one code path; the schema sticks to types `Any` carries on both
//! (text, 64-bit integers, doubles).
//!
//! # Transaction pooling
//!
//! Behind a connection pooler in transaction mode (PgBouncer's
//! `pool_mode = transaction`) a client connection gets a server connection
//! for one transaction only, and the next transaction may run on another
//! one that other clients use too. Two things sqlx does by default break
//! there, so [`Pooling::Transaction`] changes them:
//!
//! - Statements: sqlx prepares each statement under a name (`sqlx_s_1`, …)
//!   and keeps it per client connection, so on a shared server connection
//!   a second client's `sqlx_s_1` "already exists" and a statement prepared
//!   on one server connection "does not exist" on the next. Its unnamed
//!   statements are not enough either: sqlx parses (Parse, Describe, Sync)
//!   and then binds and executes (Bind, Execute, Sync), and outside a
//!   transaction the pooler may hand each of the two exchanges to another
//!   server connection. In this mode every statement is unnamed and runs
//!   inside a transaction — the caller's ([`Database::begin`]), or one of
//!   its own around the single statement ([`DbConn`]) — so the server
//!   connection stays the same for the whole exchange; the statement cache
//!   is off (`statement-cache-capacity=0`).
//! - Migrations: sqlx's migrator holds a session-level advisory lock
//!   across several transactions (the unlock can reach another server
//!   connection, and the lock then stays on the first one, blocking every
//!   later migration) and prepares named statements. In this mode the
//!   migrations run instead in one transaction that first takes a
//!   transaction-level advisory lock (the same key sqlx's migrator uses, so
//!   a replica that connects directly waits for it too, and the reverse),
//!   then applies what `_sqlx_migrations` does not list yet and records it
//!   there in the same table and format as sqlx: two replicas that start
//!   at once on a new database apply each migration once, the second
//!   waiting for the first's commit, and a database migrated in either
//!   mode is current for the other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use sqlx::any::{AnyPoolOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Describe, Either, Execute, Executor};

use super::HistoryError;
use crate::clock::{Clock, SystemClock};

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

/// How the connections reach Postgres (`storage.transaction_pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// Straight to the database, or through a pooler that gives a client
    /// the same server connection for the whole session (PgBouncer's
    /// session mode): named statements cached per connection, sqlx's
    /// migrator. SQLite always works this way.
    #[default]
    Session,
    /// Through a pooler in transaction mode (PgBouncer's `pool_mode =
    /// transaction`): no state kept on a server connection between
    /// transactions (see the module docs). Postgres only.
    Transaction,
}

/// A pool to the history database plus whether its schema is known to be
/// current. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    pooling: Pooling,
    url: String,
    migrated: Arc<AtomicBool>,
    migrating: Arc<tokio::sync::Mutex<()>>,
}

/// The migrations in `evaluator/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// SQLite's page cache per connection, in KiB (its default is 2,000): the
/// history's hot pages are few (the latest episodes, the outbox's due
/// entries), and each pooled connection keeps a cache of its own.
const SQLITE_CACHE_KIB: u32 = 512;

/// The pool size for SQLite. SQLite runs one writer at a time whatever the
/// pool size (a writer on a third connection would only wait for the
/// file's lock), and a second connection lets a read (an API query, the
/// outbox's due entries) run beside the history writer's batch. Each
/// SQLite connection is an OS thread of its own with its own page cache,
/// held as long as the pool keeps the connection, so more connections
/// cost memory without adding throughput.
const SQLITE_CONNECTIONS: u32 = 2;

/// The pool settings every pool to a `backend` database shares: on SQLite,
/// a smaller page cache per connection.
fn pool_options(backend: Backend) -> AnyPoolOptions {
    let options = AnyPoolOptions::new();
    if backend != Backend::Sqlite {
        return options;
    }
    options.after_connect(|conn, _| {
        Box::pin(async move {
            sqlx::Executor::execute(
                &mut *conn,
                format!("PRAGMA cache_size = -{SQLITE_CACHE_KIB}").as_str(),
            )
            .await?;
            Ok(())
        })
    })
}

impl Database {
    /// Connects and migrates: the normal start.
    pub async fn connect(url: &str) -> Result<Database, HistoryError> {
        Database::connect_with(url, Pooling::Session).await
    }

    /// [`Database::connect`] with the given [`Pooling`].
    pub async fn connect_with(url: &str, pooling: Pooling) -> Result<Database, HistoryError> {
        let db = Database::connect_lazy_with(url, pooling)?;
        db.ensure_schema().await?;
        Ok(db)
    }

    /// A pool that connects on first use, so the evaluator can start (and
    /// buffer history) while the database is still unreachable; the schema is
    /// migrated by the first [`Database::ensure_schema`] that succeeds.
    pub fn connect_lazy(url: &str) -> Result<Database, HistoryError> {
        Database::connect_lazy_with(url, Pooling::Session)
    }

    /// [`Database::connect_lazy`] with the given [`Pooling`]
    /// ([`Pooling::Transaction`] is refused for SQLite).
    pub fn connect_lazy_with(url: &str, pooling: Pooling) -> Result<Database, HistoryError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        if backend == Backend::Sqlite && pooling == Pooling::Transaction {
            return Err(HistoryError::TransactionPoolingOnSqlite { url: redact(url) });
        }
        let (connect_url, max_connections) = match backend {
            // The file is created on first start.
            Backend::Sqlite if url.contains("mode=") => (url.to_string(), SQLITE_CONNECTIONS),
            Backend::Sqlite if url.contains('?') => (format!("{url}&mode=rwc"), SQLITE_CONNECTIONS),
            Backend::Sqlite => (format!("{url}?mode=rwc"), SQLITE_CONNECTIONS),
            Backend::Postgres => match pooling {
                Pooling::Session => (url.to_string(), 8),
                // Named statements would be prepared on whichever server
                // connection the pooler lent; keep none.
                Pooling::Transaction if url.contains('?') => {
                    (format!("{url}&statement-cache-capacity=0"), 8)
                }
                Pooling::Transaction => (format!("{url}?statement-cache-capacity=0"), 8),
            },
        };
        let pool = pool_options(backend)
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
            pooling,
            url: redact(url),
            migrated: Arc::new(AtomicBool::new(false)),
            migrating: Arc::default(),
        })
    }

    /// A new pool to the same database with the same settings, sharing
    /// what is known of the schema: for a user of its own pool (the leader
    /// election) whose connection attempts were cancelled.
    pub fn reconnected(&self) -> Database {
        let pool = pool_options(self.backend)
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

    /// Applies every migration not applied yet: with sqlx's migrator, or
    /// in transaction pooling with [`migrate_in_one_transaction`].
    pub async fn migrate(&self) -> Result<(), HistoryError> {
        let outcome = match self.pooling {
            Pooling::Session => MIGRATOR.run(&self.pool).await,
            Pooling::Transaction => migrate_in_one_transaction(&self.pool, &MIGRATOR).await,
        };
        outcome.map_err(|source| match source {
            // No connection at all: say so, not "cannot migrate".
            sqlx::migrate::MigrateError::Execute(
                e @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_)),
            ) => HistoryError::Connect {
                url: self.url.clone(),
                source: e,
            },
            source => match migrate_pooler_hint(&source) {
                Some((hint, message)) => HistoryError::Pooler {
                    action: "migrating the schema",
                    message,
                    hint,
                },
                None => HistoryError::Migrate {
                    url: self.url.clone(),
                    source,
                },
            },
        })
    }

    /// A connection of the pool, once the schema is current.
    pub async fn conn(&self) -> Result<DbConn, HistoryError> {
        self.ensure_schema().await?;
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(HistoryError::db("acquiring a connection"))?;
        Ok(DbConn {
            held: Held::Conn(conn),
            backend: self.backend,
            pooling: self.pooling,
        })
    }

    /// A transaction on a connection of the pool, once the schema is
    /// current; [`DbConn::commit`] ends it (dropped, it is rolled back).
    pub async fn begin(&self) -> Result<DbConn, HistoryError> {
        self.ensure_schema().await?;
        let tx = self
            .pool
            .begin()
            .await
            .map_err(HistoryError::db("starting a transaction"))?;
        Ok(DbConn {
            held: Held::Tx(tx),
            backend: self.backend,
            pooling: self.pooling,
        })
    }

    /// The pool itself. History code goes through [`Database::conn`] and
    /// [`Database::begin`], which follow [`Database::pooling`]; a statement
    /// run on the pool directly does not (tests and tools only).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
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

/// A connection of the history pool, plain or inside a transaction, that
/// runs statements as its database's [`Pooling`] needs. With
/// [`Pooling::Session`] it is the connection as sqlx runs it. With
/// [`Pooling::Transaction`] every statement is unnamed, and one run on a
/// plain connection (not in [`Database::begin`]'s transaction) gets a
/// transaction of its own, committed when its results are in (rolled back
/// on an error), so it is one exchange on one server connection of the
/// pooler. Use it as a sqlx executor: `query.execute(&mut *conn)`.
pub struct DbConn {
    held: Held,
    backend: Backend,
    pooling: Pooling,
}

enum Held {
    Conn(PoolConnection<Any>),
    Tx(sqlx::Transaction<'static, Any>),
}

impl std::fmt::Debug for DbConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConn")
            .field("backend", &self.backend)
            .field("pooling", &self.pooling)
            .field("in_transaction", &matches!(self.held, Held::Tx(_)))
            .finish()
    }
}

impl DbConn {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Commits the transaction of [`Database::begin`] (nothing to do for a
    /// plain connection, whose statements are committed as they run).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.held {
            Held::Tx(tx) => tx.commit().await,
            Held::Conn(_) => Ok(()),
        }
    }

    /// Whether each statement needs a transaction of its own.
    fn wraps_statements(&self) -> bool {
        self.pooling == Pooling::Transaction && matches!(self.held, Held::Conn(_))
    }

    fn connection(&mut self) -> &mut AnyConnection {
        match &mut self.held {
            Held::Conn(conn) => conn,
            Held::Tx(tx) => tx,
        }
    }
}

/// A query with its `persistent` flag forced off when the pooling asks for
/// unnamed statements.
struct Statement<E> {
    query: E,
    persistent: bool,
}

impl<'q, E: Execute<'q, Any>> Execute<'q, Any> for Statement<E> {
    fn sql(&self) -> &'q str {
        self.query.sql()
    }

    fn statement(&self) -> Option<&AnyStatement<'q>> {
        self.query.statement()
    }

    fn take_arguments(
        &mut self,
    ) -> Result<Option<sqlx::any::AnyArguments<'q>>, sqlx::error::BoxDynError> {
        self.query.take_arguments()
    }

    fn persistent(&self) -> bool {
        self.persistent && self.query.persistent()
    }
}

type Step = Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>;

/// Runs `statement` in a transaction of its own on `conn`: every result, or
/// the error (a failed commit included).
async fn in_own_transaction<'q, E: Execute<'q, Any> + 'q>(
    conn: &mut AnyConnection,
    statement: Statement<E>,
) -> Vec<Step> {
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(e) => return vec![Err(e)],
    };
    let results: Vec<Step> = (&mut *tx).fetch_many(statement).collect().await;
    if results.iter().any(Result::is_err) {
        // The error is what the caller needs; a failed rollback leaves the
        // connection to sqlx's check when it goes back to the pool.
        let _ = tx.rollback().await;
        return results;
    }
    match tx.commit().await {
        Ok(()) => results,
        Err(e) => vec![Err(e)],
    }
}

impl<'c> Executor<'c> for &'c mut DbConn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Step>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let statement = Statement {
            query,
            persistent: self.pooling == Pooling::Session,
        };
        if self.wraps_statements() {
            let conn = self.connection();
            futures::stream::once(in_own_transaction(conn, statement))
                .flat_map(futures::stream::iter)
                .boxed()
        } else {
            self.connection().fetch_many(statement)
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if self.wraps_statements() {
            // The whole result in the statement's own transaction, then
            // its first row.
            self.fetch_many(query)
                .try_filter_map(|step| async move {
                    Ok(match step {
                        Either::Left(_) => None,
                        Either::Right(row) => Some(row),
                    })
                })
                .try_collect::<Vec<AnyRow>>()
                .map_ok(|rows| rows.into_iter().next())
                .boxed()
        } else {
            let statement = Statement {
                query,
                persistent: self.pooling == Pooling::Session,
            };
            self.connection().fetch_optional(statement)
        }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.connection().prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.connection().describe(sql)
    }
}

/// What to do about `error` when it is a known symptom of a connection
/// pooler between Vigil and Postgres:
/// - a prepared statement name that already exists (42P05) or does not
///   (26000) on the server connection the pooler lent: sqlx's statements
///   behind transaction pooling;
/// - PgBouncer refusing the `extra_float_digits` start-up parameter that
///   sqlx sends.
pub fn pooler_hint(error: &sqlx::Error) -> Option<&'static str> {
    let sqlx::Error::Database(e) = error else {
        return None;
    };
    if matches!(e.code().as_deref(), Some("42P05" | "26000"))
        && e.message().contains("prepared statement")
    {
        return Some(
            "sqlx's prepared statements fail like this behind a connection pooler in transaction mode (PgBouncer's pool_mode = transaction): set storage.transaction_pooling: true in the evaluator config, or run the pooler in session mode",
        );
    }
    if e.message().contains("unsupported startup parameter") {
        return Some(
            "the connection pooler refuses a start-up parameter that Vigil's Postgres driver sends: with PgBouncer, add `ignore_startup_parameters = extra_float_digits` to the [pgbouncer] section of pgbouncer.ini",
        );
    }
    None
}

fn migrate_pooler_hint(error: &sqlx::migrate::MigrateError) -> Option<(&'static str, String)> {
    match error {
        sqlx::migrate::MigrateError::Execute(e)
        | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => {
            pooler_hint(e).map(|hint| (hint, e.to_string()))
        }
        _ => None,
    }
}

/// The key of the advisory lock sqlx's migrator takes for database
/// `name` (its formula: a constant times the CRC-32 of the name), so the
/// two ways of migrating exclude each other.
pub fn migration_lock_key(name: &str) -> i64 {
    0x3d32_ad9e_i64 * i64::from(crc32(name.as_bytes()))
}

/// CRC-32 (IEEE 802.3, reflected, the one zlib and PNG use).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `migrator`'s migrations the way transaction pooling allows: one
/// transaction, serialised by a transaction-level advisory lock, unnamed
/// statements only (see the module docs). The checks are sqlx's: a
/// migration recorded as failed, or applied but no longer known or changed
/// since, stops it.
pub async fn migrate_in_one_transaction(
    pool: &AnyPool,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    use sqlx::migrate::MigrateError;
    let mut tx = pool.begin().await?;
    let database: String = sqlx::query_scalar("SELECT CAST(current_database() AS TEXT)")
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(migration_lock_key(&database))
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    // sqlx's table, so that either way of migrating finds the other's rows.
    (&mut *tx)
        .execute(
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (\
           version BIGINT PRIMARY KEY, \
           description TEXT NOT NULL, \
           installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), \
           success BOOLEAN NOT NULL, \
           checksum BYTEA NOT NULL, \
           execution_time BIGINT NOT NULL)",
        )
        .await?;
    let dirty: Option<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1",
    )
    .persistent(false)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(version) = dirty {
        return Err(MigrateError::Dirty(version));
    }
    let applied: Vec<(i64, String)> = sqlx::query_as(
        "SELECT version, encode(checksum, 'hex') FROM _sqlx_migrations ORDER BY version",
    )
    .persistent(false)
    .fetch_all(&mut *tx)
    .await?;
    let applied: std::collections::BTreeMap<i64, String> = applied.into_iter().collect();
    if !migrator.ignore_missing {
        if let Some(version) = applied
            .keys()
            .find(|v| !migrator.iter().any(|m| m.version == **v))
        {
            return Err(MigrateError::VersionMissing(*version));
        }
    }
    for migration in migrator.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        let checksum = hex(&migration.checksum);
        match applied.get(&migration.version) {
            Some(stored) if *stored == checksum => continue,
            Some(_) => return Err(MigrateError::VersionMismatch(migration.version)),
            None => {}
        }
        if migration.no_tx {
            return Err(MigrateError::Source(
                format!(
                    "migration {} must run outside a transaction, which transaction pooling cannot do: \
                     start once with storage.transaction_pooling off (straight to the database or \
                     through a pooler in session mode) to apply it, then turn it back on",
                    migration.version
                )
                .into(),
            ));
        }
        // sqlx's bookkeeping column: how long the migration took, on the
        // process's monotonic clock.
        let started = SystemClock.monotonic();
        (&mut *tx)
            .execute(&*migration.sql)
            .await
            .map_err(|e| MigrateError::ExecuteMigration(e, migration.version))?;
        let elapsed = SystemClock.monotonic().saturating_sub(started);
        let elapsed = i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, decode($3, 'hex'), $4)",
        )
        .bind(migration.version)
        .bind(&*migration.description)
        .bind(checksum)
        .bind(elapsed)
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
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
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_sqlite_connection_has_the_small_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let db = Database::connect(&url).await.unwrap();
        for pool in [&db, &db.reconnected()] {
            let row = sqlx::query("PRAGMA cache_size")
                .fetch_one(&pool.pool)
                .await
                .unwrap();
            let kib: i64 = sqlx::Row::try_get(&row, 0).unwrap();
            assert_eq!(kib, -i64::from(SQLITE_CACHE_KIB));
        }
    }

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
    fn the_migration_lock_key_follows_sqlx_s_formula() {
        // The CRC-32 check value, and the key for a database named
        // "postgres": 0x3d32ad9e times CRC-32("postgres").
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"postgres"), 0x156a_8775);
        assert_eq!(
            migration_lock_key("postgres"),
            0x3d32_ad9e_i64 * 0x156a_8775_i64
        );
    }

    #[test]
    fn transaction_pooling_is_refused_for_sqlite() {
        let refused = Database::connect_lazy_with("sqlite://x.db", Pooling::Transaction);
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("storage.transaction_pooling") && message.contains("remove it"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn transaction_pooling_turns_the_statement_cache_off() {
        for (url, want) in [
            (
                "postgres://u@h/db",
                "postgres://u@h/db?statement-cache-capacity=0",
            ),
            (
                "postgres://u@h/db?sslmode=disable",
                "postgres://u@h/db?sslmode=disable&statement-cache-capacity=0",
            ),
        ] {
            let db = Database::connect_lazy_with(url, Pooling::Transaction).ok();
            let connect_url = db.map(|db| db.pool().connect_options().database_url.to_string());
            assert_eq!(connect_url.as_deref(), Some(want));
        }
        let db = Database::connect_lazy("postgres://u@h/db").ok();
        let connect_url = db.map(|db| db.pool().connect_options().database_url.to_string());
        assert_eq!(connect_url.as_deref(), Some("postgres://u@h/db"));
    }

    #[test]
    fn every_migration_runs_in_a_transaction() {
        // The transaction-pooling migration cannot apply the others.
        for migration in MIGRATOR.iter() {
            assert!(!migration.no_tx, "migration {}", migration.version);
        }
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
