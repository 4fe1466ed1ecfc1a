//! The HTTP APIs as clients see them: Prometheus' `/api/v1`, Alertmanager's
//! `/api/v2` (and amtool against it), Vigil's own API, the OpenAPI contract
//! and the dashboard in a real browser.

mod alertmanager;
mod alertmanager_compat;
mod dashboard;
mod oracle;
mod prometheus;
mod rules;
mod schemathesis;
mod vigil;
