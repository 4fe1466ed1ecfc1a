//! Scraping: the scrape loop against real HTTP targets. `limits.rs` (hostile
//! targets against the evaluator process) is here too but runs in the
//! `alone` test binary (`tests/alone/main.rs`), which says why.

mod loops;
