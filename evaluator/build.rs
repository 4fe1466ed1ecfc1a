//! Rebuilds the crate when a migration is added or changed: the migrations
//! are embedded by `sqlx::migrate!`, which Cargo does not know to track.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
