//! Named leases with fencing epochs, kept in the `leases` table: the shared
//! mechanism by which one replica of several on one database holds a role
//! (today the notification leader, [`super::leader`]; tomorrow rule-group
//! ownership and fleet membership) and by which the database refuses the
//! writes of a replica that no longer holds it.
//!
//! A lease row is (name, holder, epoch, expiry). Expiry is stored and
//! compared on the database's clock only (`now()` in the SQL), never
//! between replicas' clocks: a holder renews by asking the database to
//! push the expiry `ttl` past *its* now, and a candidate takes the lease only
//! when the database finds the expiry in the past. Every acquisition — a
//! take-over of an expired lease, or a holder coming back after its own
//! lease expired — bumps the epoch; a renewal keeps it. Rows are never
//! deleted, so an epoch is never handed out twice.
//!
//! The epoch is the fencing token: a write that may only be done by the
//! holder carries a [`Fence`] (lease name and epoch) and is made
//! conditional on the lease row still having that epoch, in the same
//! statement ([`fence_condition`]); on Postgres the row is read `FOR SHARE`,
//! so a take-over cannot commit between the check and the write. A write
//! with a stale epoch changes nothing, and the caller logs that it was
//! refused.
//!
//! Everything is a single statement on a pooled connection: no session
//! state (no advisory locks, temporary tables or session settings), so any
//! connection of any pool will do — behind a pooler in transaction mode
//! too, where each statement is unnamed and runs in a transaction of its
//! own ([`super::db::DbConn`]) — and fleet membership can be built as one
//! lease per member ([`Leases::live`]).

use std::time::Duration;

use sqlx::any::AnyRow;

use super::db::{column, Backend};
use super::{Database, HistoryError};
use crate::notify::delivery::Term;

/// A fencing token: the lease a write depends on and the epoch under which
/// the writer holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    pub lease: String,
    pub epoch: i64,
}

impl Fence {
    /// The fencing token a leader's writes under `term` carry; `None` for
    /// an unfenced term.
    pub fn of(term: &Term) -> Option<Fence> {
        term.epoch().map(|epoch| Fence {
            lease: term.lease().to_string(),
            epoch,
        })
    }
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lease {:?} epoch {}", self.lease, self.epoch)
    }
}

/// A lease row as the database sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
    /// Time left before expiry on the database's clock (zero once expired).
    pub remaining: Duration,
}

impl LeaseState {
    pub fn is_live(&self) -> bool {
        !self.remaining.is_zero()
    }
}

/// The database's "now" in unix milliseconds, as SQL.
fn now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    }
}

/// The SQL condition "lease `$name` still has epoch `$epoch`", with the
/// lease name and epoch bound as parameters number `name` and `epoch`. On
/// Postgres the lease row is locked `FOR SHARE` until the statement's
/// transaction ends, so a take-over waits for the fenced write to commit
/// and a write that waited behind a take-over sees the new epoch. (SQLite
/// serialises writers, so the check and the write cannot interleave with a
/// take-over there.)
pub fn fence_condition(backend: Backend, name: usize, epoch: usize) -> String {
    let lock = match backend {
        Backend::Postgres => " FOR SHARE",
        Backend::Sqlite => "",
    };
    format!("EXISTS (SELECT 1 FROM leases WHERE name = ${name} AND epoch = ${epoch}{lock})")
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The named leases of one database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Leases {
    db: Database,
}

impl Leases {
    /// The same leases over a fresh connection pool (see
    /// [`Database::reconnected`]).
    pub fn reconnected(&self) -> Leases {
        Leases {
            db: self.db.reconnected(),
        }
    }

    pub fn new(db: Database) -> Leases {
        Leases { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Takes lease `name` for `holder` for `ttl` when nobody holds it or
    /// its expiry has passed on the database's clock — or, with `force`,
    /// whatever its state (a sole replica that always holds it). Returns
    /// the new epoch (the previous one plus one; 1 for a new lease), or
    /// `None` while another holder's lease is live.
    pub async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        force: bool,
    ) -> Result<Option<i64>, HistoryError> {
        let now = now_ms(self.db.backend());
        let only_if_expired = if force {
            ""
        } else {
            "WHERE leases.expires_at <= excluded.renewed_at"
        };
        let sql = format!(
            "INSERT INTO leases (name, holder, epoch, expires_at, renewed_at) \
             VALUES ($1, $2, 1, {now} + $3, {now}) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               epoch = leases.epoch + 1, expires_at = excluded.expires_at, \
               renewed_at = excluded.renewed_at \
             {only_if_expired} RETURNING epoch"
        );
        let row = sqlx::query(&sql)
            .bind(name)
            .bind(holder)
            .bind(millis(ttl))
            .fetch_optional(&mut self.db.conn().await?)
            .await
            .map_err(HistoryError::db("acquiring a lease"))?;
        row.map(|r| column::<i64>(&r, "epoch", "leases"))
            .transpose()
    }

    /// Pushes the expiry of `holder`'s lease `name` of `epoch` to `ttl`
    /// past the database's now. False when that lease has expired (even if
    /// nobody took it yet: the holder must acquire it again, under a new
    /// epoch) or passed to another holder.
    pub async fn renew(
        &self,
        name: &str,
        holder: &str,
        epoch: i64,
        ttl: Duration,
    ) -> Result<bool, HistoryError> {
        let now = now_ms(self.db.backend());
        let sql = format!(
            "UPDATE leases SET expires_at = {now} + $1, renewed_at = {now} \
             WHERE name = $2 AND holder = $3 AND epoch = $4 AND expires_at > {now}"
        );
        let done = sqlx::query(&sql)
            .bind(millis(ttl))
            .bind(name)
            .bind(holder)
            .bind(epoch)
            .execute(&mut self.db.conn().await?)
            .await
            .map_err(HistoryError::db("renewing a lease"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives the lease back (it expires now), so a candidate takes it at its
    /// next attempt instead of after the expiry. False when `holder` did not
    /// hold it under `epoch` any more.
    pub async fn release(
        &self,
        name: &str,
        holder: &str,
        epoch: i64,
    ) -> Result<bool, HistoryError> {
        let now = now_ms(self.db.backend());
        let sql = format!(
            "UPDATE leases SET expires_at = {now} \
             WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > {now}"
        );
        let done = sqlx::query(&sql)
            .bind(name)
            .bind(holder)
            .bind(epoch)
            .execute(&mut self.db.conn().await?)
            .await
            .map_err(HistoryError::db("releasing a lease"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Claims evaluation slot `slot_ms` under `fence` (a rule-group lease
    /// and its epoch): records it as the lease's progress, when the lease
    /// still has that epoch, has not expired on the database's clock and
    /// no later or equal slot was claimed. True when claimed: the slot is
    /// this holder's to evaluate, and no other replica's.
    pub async fn claim_slot(&self, fence: &Fence, slot_ms: i64) -> Result<bool, HistoryError> {
        let now = now_ms(self.db.backend());
        let sql = format!(
            "UPDATE leases SET progress = $1 \
             WHERE name = $2 AND epoch = $3 AND expires_at > {now} \
             AND (progress IS NULL OR progress < $4)"
        );
        let done = sqlx::query(&sql)
            .bind(slot_ms)
            .bind(&fence.lease)
            .bind(fence.epoch)
            .bind(slot_ms)
            .execute(&mut self.db.conn().await?)
            .await
            .map_err(HistoryError::db("claiming an evaluation slot"))?;
        Ok(done.rows_affected() > 0)
    }

    /// The last slot claimed under lease `name` ([`Leases::claim_slot`]),
    /// by whichever holder; `None` when none was.
    pub async fn progress(&self, name: &str) -> Result<Option<i64>, HistoryError> {
        let row = sqlx::query("SELECT progress FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut self.db.conn().await?)
            .await
            .map_err(HistoryError::db("reading a lease's progress"))?;
        match row {
            Some(row) => column::<Option<i64>>(&row, "progress", "leases"),
            None => Ok(None),
        }
    }

    /// Lease `name` as the database sees it now, if it was ever taken.
    pub async fn get(&self, name: &str) -> Result<Option<LeaseState>, HistoryError> {
        Ok(self.list("name = $1", name).await?.into_iter().next())
    }

    /// The leases whose name starts with `prefix` and that are live now
    /// (membership: each member holds `prefix` + its own id), by name.
    pub async fn live(&self, prefix: &str) -> Result<Vec<LeaseState>, HistoryError> {
        let all = self
            .list("name LIKE $1 ESCAPE '\\'", &like_prefix(prefix))
            .await?;
        Ok(all.into_iter().filter(LeaseState::is_live).collect())
    }

    async fn list(&self, condition: &str, param: &str) -> Result<Vec<LeaseState>, HistoryError> {
        let now = now_ms(self.db.backend());
        let sql = format!(
            "SELECT name, holder, epoch, expires_at - {now} AS remaining_ms FROM leases \
             WHERE {condition} ORDER BY name"
        );
        let rows = sqlx::query(&sql)
            .bind(param)
            .fetch_all(&mut self.db.conn().await?)
            .await
            .map_err(HistoryError::db("reading leases"))?;
        rows.iter().map(lease_from_row).collect()
    }

    /// The current epoch of lease `name` (`None`: never taken), to say why
    /// a fenced write was refused.
    pub async fn epoch(&self, name: &str) -> Result<Option<i64>, HistoryError> {
        Ok(self.get(name).await?.map(|l| l.epoch))
    }
}

/// The LIKE pattern of the names starting with `prefix` (`%` and `_` in it
/// taken literally).
fn like_prefix(prefix: &str) -> String {
    format!(
        "{}%",
        prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

fn lease_from_row(row: &AnyRow) -> Result<LeaseState, HistoryError> {
    let remaining: i64 = column(row, "remaining_ms", "leases")?;
    Ok(LeaseState {
        name: column(row, "name", "leases")?,
        holder: column(row, "holder", "leases")?,
        epoch: column(row, "epoch", "leases")?,
        remaining: Duration::from_millis(u64::try_from(remaining).unwrap_or(0)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    async fn sqlite() -> (tempfile::TempDir, Leases) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("l.db").display());
        let db = Database::connect(&url).await.unwrap();
        (dir, Leases::new(db))
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_live_lease_is_not_taken_and_an_expired_one_is_taken_with_a_new_epoch() {
        let (_dir, leases) = sqlite().await;
        assert_eq!(leases.acquire("l", "a", TTL, false).await.unwrap(), Some(1));
        assert_eq!(leases.acquire("l", "b", TTL, false).await.unwrap(), None);
        assert!(leases.renew("l", "a", 1, TTL).await.unwrap());
        assert!(!leases.renew("l", "b", 1, TTL).await.unwrap(), "not b's");
        // The database's clock passes the expiry.
        sqlx::query("UPDATE leases SET expires_at = expires_at - 120000")
            .execute(leases.database().pool())
            .await
            .unwrap();
        assert!(
            !leases.renew("l", "a", 1, TTL).await.unwrap(),
            "an expired lease is not renewed, even by its holder"
        );
        assert_eq!(leases.acquire("l", "b", TTL, false).await.unwrap(), Some(2));
        let state = leases.get("l").await.unwrap().unwrap();
        assert_eq!((state.holder.as_str(), state.epoch), ("b", 2));
        assert!(state.is_live() && state.remaining <= TTL);
    }

    #[tokio::test]
    async fn a_released_lease_is_taken_at_once_and_force_takes_a_live_one() {
        let (_dir, leases) = sqlite().await;
        assert_eq!(leases.acquire("l", "a", TTL, false).await.unwrap(), Some(1));
        assert!(
            !leases.release("l", "b", 1).await.unwrap(),
            "not b's to give"
        );
        assert!(leases.release("l", "a", 1).await.unwrap());
        assert_eq!(leases.acquire("l", "b", TTL, false).await.unwrap(), Some(2));
        assert_eq!(leases.acquire("l", "a", TTL, true).await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn live_lists_the_unexpired_leases_of_a_prefix_only() {
        let (_dir, leases) = sqlite().await;
        leases.acquire("member_a", "a", TTL, false).await.unwrap();
        leases.acquire("member_b", "b", TTL, false).await.unwrap();
        leases.acquire("memberXc", "c", TTL, false).await.unwrap();
        leases.acquire("member_d", "d", TTL, false).await.unwrap();
        leases.release("member_d", "d", 1).await.unwrap();
        let live: Vec<String> = leases
            .live("member_")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(live, ["member_a", "member_b"], "`_` is not a wildcard");
    }

    #[test]
    fn the_fence_locks_the_lease_row_on_postgres_only() {
        assert_eq!(
            fence_condition(Backend::Postgres, 3, 4),
            "EXISTS (SELECT 1 FROM leases WHERE name = $3 AND epoch = $4 FOR SHARE)"
        );
        assert!(!fence_condition(Backend::Sqlite, 1, 2).contains("FOR SHARE"));
    }
}
