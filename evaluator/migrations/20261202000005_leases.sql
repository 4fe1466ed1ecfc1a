-- Named leases with fencing epochs (history/lease.rs): who holds a lease,
-- under which epoch, and until when on the database's clock (unix ms).
-- A take-over after expiry bumps the epoch; rows are never deleted, so an
-- epoch never repeats.
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    renewed_at BIGINT NOT NULL
);

-- The epoch of the leader that last claimed an outbox entry for sending
-- (NULL: never claimed), and when.
ALTER TABLE notifications ADD COLUMN epoch BIGINT;
ALTER TABLE notifications ADD COLUMN claimed_at BIGINT;
