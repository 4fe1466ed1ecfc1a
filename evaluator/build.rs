//! Rebuilds the crate when a migration is added or changed: the migrations
//! are embedded by `sqlx::migrate!`, which Cargo does not know to track.
//!
//! For a release build on x86_64 Linux with glibc, where rustc links with
//! lld (its default since Rust 1.90), also hands the linker
//! `symbol-order.txt`: the functions a running server executes, laid out
//! together so that fewer pages of code are resident (see
//! `scripts/symbol-order.sh`). `VIGIL_NO_SYMBOL_ORDER=1` leaves it out, e.g.
//! for a linker other than lld.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=symbol-order.txt");
    println!("cargo:rerun-if-env-changed=VIGIL_NO_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let wanted = env("PROFILE") == "release"
        && env("TARGET") == "x86_64-unknown-linux-gnu"
        && env("VIGIL_NO_SYMBOL_ORDER").is_empty()
        && env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
        && !env("CARGO_ENCODED_RUSTFLAGS").contains("link")
        && rustc_links_with_lld();
    let order = std::path::Path::new(&env("CARGO_MANIFEST_DIR")).join("symbol-order.txt");
    if wanted && order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // Names the current code no longer has are expected (the file is
        // regenerated now and then, not at every change).
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether rustc is 1.90 or later (lld by default on this target).
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let mut version = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
