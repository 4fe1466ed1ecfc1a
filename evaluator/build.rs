//! Rebuilds the crate when a migration is added or changed (the migrations
//! are embedded by `sqlx::migrate!`, which Cargo does not know to track),
//! and packs the binaries' relative relocations where the toolchain can.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    pack_relative_relocations();
}

/// Links the binaries with `-z pack-relative-relocs` (DT_RELR): a
/// position-independent executable's table of relative relocations shrinks
/// from hundreds of kilobytes, which the dynamic loader reads and which
/// then stay resident, to a few. Only for a native glibc build whose
/// linker accepts the flag (GNU ld 2.38, lld 15, mold); the linker itself
/// emits DT_RELR only against a C library that supports it (glibc 2.36),
/// so a binary never needs more than the C library it was linked with.
fn pack_relative_relocations() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("TARGET") != var("HOST")
    {
        return;
    }
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_string());
    let out = std::env::var("OUT_DIR").unwrap_or_default();
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
