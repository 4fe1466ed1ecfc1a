//! Rebuilds the crate when a migration is added or changed (the migrations
//! are embedded by `sqlx::migrate!`, which Cargo does not know to track),
//! and shapes how the binaries are linked so that less of them stays
//! resident:
//!
//! - relative relocations packed (DT_RELR) where the native glibc
//!   toolchain can;
//! - for a release build on x86_64 Linux with glibc, where rustc links with
//!   lld (its default since Rust 1.90), `symbol-order.txt` handed to the
//!   linker: the functions a running server executes, laid out together so
//!   that fewer pages of code are resident (see `scripts/symbol-order.sh`).
//!   `VIGIL_NO_SYMBOL_ORDER=1` leaves it out, e.g. for a linker other than
//!   lld.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    pack_relative_relocations();
    order_functions();
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Links the binaries with `-z pack-relative-relocs` (DT_RELR): a
/// position-independent executable's table of relative relocations shrinks
/// from hundreds of kilobytes, which the dynamic loader reads and which
/// then stay resident, to a few. Only for a native glibc build whose
/// linker accepts the flag (GNU ld 2.38, lld 15, mold); GNU ld emits
/// DT_RELR only against a C library that supports it (glibc 2.36), so the
/// probe passes only where the binary runs on the C library it was linked
/// with.
fn pack_relative_relocations() {
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if env("CARGO_CFG_TARGET_OS") != "linux"
        || env("CARGO_CFG_TARGET_ENV") != "gnu"
        || env("TARGET") != env("HOST")
    {
        return;
    }
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_string());
    let out = env("OUT_DIR");
    let source = Path::new(&out).join("relr_probe.c");
    if std::fs::write(&source, "int main(void) { return 0; }\n").is_err() {
        return;
    }
    let linked = Command::new(&linker)
        .arg("-Wl,-z,pack-relative-relocs")
        .arg("-o")
        .arg(Path::new(&out).join("relr_probe"))
        .arg(&source)
        .output()
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty());
    if linked {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Hands lld the layout of the functions a running server executes.
fn order_functions() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    println!("cargo:rerun-if-env-changed=VIGIL_NO_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let wanted = env("PROFILE") == "release"
        && env("TARGET") == "x86_64-unknown-linux-gnu"
        && env("VIGIL_NO_SYMBOL_ORDER").is_empty()
        && env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
        && !env("CARGO_ENCODED_RUSTFLAGS").contains("link")
        && rustc_links_with_lld();
    let order = Path::new(&env("CARGO_MANIFEST_DIR")).join("symbol-order.txt");
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
