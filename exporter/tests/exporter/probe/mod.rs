//! Integration tests of the URL prober: real HTTP and HTTPS servers on
//! 127.0.0.1, the metrics it exports, and its scheduler on simulated time.

mod http;
mod metrics;
mod schedule;
mod tls;
