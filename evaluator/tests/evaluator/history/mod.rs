//! History: the SQL store on SQLite and Postgres, the invariant that it
//! matches the evaluator's alerts, and running behind PgBouncer.

mod invariant;
mod pgbouncer;
mod sharding;
mod store;
