//! `receivers test`: sends one test notification through each integration
//! of a receiver (or of every receiver) of a notification config and
//! prints, per integration, `OK` or what went wrong; fails when any
//! integration failed.

use std::path::Path;

use crate::clock::{Clock, SystemClock};
use crate::notify::config::{self, build_receivers};
use crate::notify::receivers::test_send::send_test;

use super::routes_test::parse_labels;

/// Sends the test notifications; `Ok(true)` when every integration took
/// its notification. `alert` holds extra labels of the test alert as
/// `LABEL=VALUE`.
pub fn run(notify_config: &Path, receiver: Option<&str>, alert: &[String]) -> anyhow::Result<bool> {
    let labels = parse_labels(alert)?;
    let config = config::load_file(notify_config)?;
    for warning in &config.warnings {
        eprintln!("{warning}");
    }
    let (receivers, warnings) = build_receivers(&config).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "the receivers of {} cannot be built:\n{}",
            notify_config.display(),
            lines.join("\n")
        )
    })?;
    for warning in &warnings {
        eprintln!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let results = runtime.block_on(send_test(
        &receivers,
        receiver,
        &labels,
        SystemClock.now(),
        "",
    ))?;
    if results.is_empty() {
        println!("no integrations to test: the receiver has no *_configs");
        return Ok(true);
    }
    let mut all_sent = true;
    for r in &results {
        match &r.error {
            None => println!("{}/{}: OK", r.receiver, r.integration),
            Some(error) => {
                all_sent = false;
                println!("{}/{}: FAILED: {error}", r.receiver, r.integration);
            }
        }
    }
    Ok(all_sent)
}
