//! The URL prober: requests configured URLs on a schedule and exports
//! blackbox-exporter-style metrics, so "is the site up, fast, and is its
//! certificate about to expire" is answered from the same `/metrics`.
//!
//! # Configuration (`probes:` in `exporter.yaml`)
//!
//! ```yaml
//! probes:
//!   - name: shop                        # required; the `target` label
//!     url: https://shop.example/healthz # required; http or https; the `url` label
//!     method: GET                       # default GET
//!     headers: {Accept: application/json}   # default none
//!     body: ""                          # default: no body
//!     interval: 30s                     # default 30s, time between probe starts
//!     timeout: 5s                       # default 5s, limit for the whole probe
//!     follow_redirects: true            # default true, at most 10 redirects
//!     tls_verify: true                  # default true
//!     expect: 'status == 200 && latency_ms < 800'   # default: status >= 200 && status < 400
//! ```
//!
//! The pair (`name`, `url`) must be unique. Each probe opens a fresh
//! connection (no keep-alive between probes) and ignores `HTTP_PROXY`-style
//! environment variables, so it measures what a new visitor experiences.
//! A target is first probed as soon as the exporter starts, then every
//! `interval`. A probe that runs longer than `interval` is never overlapped
//! by the next one of the same target: the next starts right after it ends.
//! At most `max_concurrency` probes (default 64; `probe_concurrency` in
//! `exporter.yaml`) run at once.
//!
//! # Expectations (`expect`)
//!
//! An [evalexpr](https://docs.rs/evalexpr/11.3.1) expression that must be
//! `true` for the probe to succeed. Variables:
//!
//! | variable | type | value |
//! | --- | --- | --- |
//! | `status` | int | status code of the final response |
//! | `latency_ms` | float | milliseconds from the start of the probe until the body was read |
//! | `body` | string | the body as UTF-8 (invalid bytes replaced), first 1 MiB |
//! | `headers` | tuple of strings | one `"name: value"` per header, name lower-case, e.g. `contains(headers, "cache-control: no-store")` |
//! | `cert_days_left` | float | days until the earliest certificate expiry (negative once expired); `+inf` for plain http, so `cert_days_left > 14` holds for http targets (test for it with `math::is_finite(cert_days_left)`) |
//!
//! Functions, besides the evalexpr built-ins (`len`, `contains`,
//! `str::regex_matches`, `str::to_lowercase`, `min`, `max`, `if`, `math::*`, ...):
//!
//! - `header("Content-Type")`: the header's value, name case-insensitive;
//!   repeated headers joined with `", "`; `""` when absent.
//! - `contains_str(haystack, needle)`: substring test, e.g.
//!   `contains_str(body, "\"status\":\"ok\"")`.
//!
//! Integer and float compare as numbers with `<`, `>`, `<=`, `>=`; `==`
//! compares types too, so write `latency_ms < 800`, not `latency_ms == 800`.
//! An expression with a syntax error, an incomplete expression (an operator
//! without its operand as in `status ==` or a trailing `&&`, a doubled
//! operator, two values without an operator, an unclosed bracket or string),
//! an unknown variable or function, an assignment, or a result that is not
//! boolean on a sample response is rejected when the config is loaded, by
//! `vigil-exporter check` and at start-up, with the file, line and column of
//! the offending token and the probe's name.
//!
//! # Metrics
//!
//! Every series has the labels `target` (the probe `name`) and `url`.
//!
//! | metric | type | meaning |
//! | --- | --- | --- |
//! | `probe_success` | gauge | 1 if the last probe met its expectation, else 0 |
//! | `probe_duration_seconds` | gauge | duration of the last probe, until success or failure |
//! | `probe_http_status_code` | gauge | status of the last final response; 0 when none arrived |
//! | `probe_ssl_earliest_cert_expiry` | gauge | unix seconds of the earliest `notAfter` among the certificates the server presented (leaf and intermediates, as sent); https only, absent after a probe that saw no certificate |
//! | `probe_failures_total` | counter | failed probes, extra label `reason`; every reason starts at 0 |
//!
//! # Failure reasons
//!
//! | reason | when |
//! | --- | --- |
//! | `timeout` | the whole probe (DNS, connect, TLS, request, body) took longer than `timeout` |
//! | `connect` | no usable connection: DNS failure, connection refused or reset, or the connection broke while reading the response |
//! | `tls` | TLS handshake failed or the certificate was rejected (untrusted, expired, wrong host name) |
//! | `status` | the target has no `expect` and the status was outside 200-399; or more than 10 redirects |
//! | `expectation` | the target's own `expect` was false, not boolean, or failed to evaluate (e.g. type error); a failure is reported here even when the expression only looks at `status` |

mod client;
mod expect;
mod expect_syntax;
mod metrics;
mod outcome;
mod runner;
mod target;
mod tls;

pub use client::{probe_once, ClientError, ProbeClients, MAX_BODY_BYTES, MAX_REDIRECTS};
pub use expect::{ExpectError, Expectation, ResponseFacts, FUNCTIONS, VARIABLES};
pub use metrics::{MetricsError, ProbeMetrics};
pub use outcome::{FailureReason, ProbeFailure, ProbeOutcome};
pub use runner::{
    HttpExecutor, ProbeExecutor, Prober, ProberError, ProberOptions, DEFAULT_MAX_CONCURRENCY,
};
pub use target::{validate_targets, ProbeTarget, TargetError, DEFAULT_INTERVAL, DEFAULT_TIMEOUT};
pub use tls::{days_left, earliest_expiry, CertificateError, TlsSetupError};
