//! Writes the 76,000-series exposition of `benches/scrape_parse.rs` (text
//! format) to the file named by the first argument, so that
//! `benches/side_by_side.sh` can serve the very bytes the parser bench
//! measures to both Prometheus and Vigil.
//!
//! Usage: `cargo run --release -p vigil-evaluator --example write_exposition -- FILE`

#[path = "../benches/support/exposition.rs"]
mod exposition;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let Some(path) = std::env::args_os().nth(1) else {
        bail!("missing output file; usage: write_exposition FILE");
    };
    let (body, series) = exposition::exposition(false);
    std::fs::write(&path, &body).with_context(|| {
        format!(
            "cannot write the exposition to {}; check the directory exists and is writable",
            path.to_string_lossy()
        )
    })?;
    println!("{series} series, {} bytes", body.len());
    Ok(())
}
