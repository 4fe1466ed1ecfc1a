//! Rules: the alert state machine, rule groups, rule-file checks and
//! `test rules`, with real Prometheus and promtool as oracles.

mod agreement;
mod alerts;
mod check_oracle;
mod datasource;
mod group;
mod shipped;
mod state_oracle;
mod template_oracle;
mod unit;
mod unit_oracle;
