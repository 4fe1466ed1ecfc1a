//! Datasources: rule groups evaluated against an existing
//! Prometheus-compatible TSDB's query API instead of the local window
//! ([`config`] for `datasource:` and `rule_file_datasources:`, [`client`]
//! for the queries, [`prefetch`] for how a group's evaluation uses them).
//! A failed query makes the rule unhealthy with the error and counts in
//! `vigil_datasource_errors_total`; the rule's alerts keep their state, so
//! an outage never resolves a firing alert or resets a pending one.

pub mod client;
pub mod config;
pub mod prefetch;

pub use client::DatasourceClient;
pub use config::{DatasourceChoice, DatasourceSettings};
pub use prefetch::Prefetched;

/// The counter of failed datasource queries, by datasource URL.
pub fn errors_counter() -> prometheus::IntCounterVec {
    prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "vigil_datasource_errors_total",
            "Rule queries that failed on their datasource (after retries); the rule keeps its alerts and reports the error.",
        ),
        &["datasource"],
    )
    .unwrap_or_else(|e| unreachable!("constant metric definition is valid: {e}"))
}

/// Makes the clients of the configured datasources, one per distinct
/// datasource, counting their failures per URL.
pub struct DatasourceClients {
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    errors: prometheus::IntCounterVec,
    made: std::sync::Mutex<Vec<std::sync::Arc<DatasourceClient>>>,
}

impl DatasourceClients {
    pub fn new(
        clock: std::sync::Arc<dyn crate::clock::Clock>,
        errors: prometheus::IntCounterVec,
    ) -> DatasourceClients {
        DatasourceClients {
            clock,
            errors,
            made: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The client of `settings` (the same one for equal settings).
    pub fn client(
        &self,
        settings: &DatasourceSettings,
    ) -> Result<std::sync::Arc<DatasourceClient>, reqwest::Error> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = made.iter().find(|c| c.settings() == settings) {
            return Ok(std::sync::Arc::clone(c));
        }
        let client = std::sync::Arc::new(DatasourceClient::new(
            settings.clone(),
            std::sync::Arc::clone(&self.clock),
            self.errors.with_label_values(&[&settings.url]),
        )?);
        made.push(std::sync::Arc::clone(&client));
        Ok(client)
    }
}
