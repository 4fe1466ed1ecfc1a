//! Fuzzes the bodies of the Alertmanager API's two mutating endpoints,
//! `POST /api/v2/alerts` and `POST /api/v2/silences`, decoded and checked
//! as their handlers do: refusals are fine, a panic is a bug.

#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use vigil_evaluator::api::alertmanager::{decode_posted_alerts, decode_posted_silence};

fuzz_target!(|data: &[u8]| {
    let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let _ = decode_posted_alerts(data, now);
    let _ = decode_posted_silence(data);
});
