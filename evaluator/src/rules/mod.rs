//! Rules: the rule-file format and its validation, the Go-template subset
//! used in labels and annotations, recording rules, and rule-group
//! evaluation against any [`engine::QueryEngine`].

pub mod engine;
pub mod fake;
pub mod file;
pub mod group;
pub mod recording;
pub mod scheduler;
pub mod send_alerts;
pub mod store_engine;
pub mod template;
pub mod text_map;
pub mod unit_test;
