//! Receivers: their configuration as users write it, and each kind against
//! a real peer (HTTP server, SMTP server, Alertmanager).

mod alertmanager;
mod config;
pub(crate) mod email;
mod http;
mod http_config;
mod test_send;
mod vendors;
