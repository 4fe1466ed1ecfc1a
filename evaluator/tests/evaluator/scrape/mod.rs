//! Scraping: the scrape loop against real HTTP targets, and hostile targets
//! against the evaluator process.

mod limits;
mod loops;
