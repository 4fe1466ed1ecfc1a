//! Scrape loop against real HTTP servers on 127.0.0.1: what gets stored,
//! what the target state says, and when series go stale.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::RwLock;
use tokio_util::sync::CancellationToken;

use prometheus::{IntCounterVec, Opts};
use vigil_evaluator::clock::{Clock, SimClock};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::scrape::{
    spawn_scrape_loops, AppendError, Health, Sample, SampleAppender, ScrapeConfig, ScrapeDefaults,
    ScrapeLoop, ValidScrapeConfig, ACCEPT_HEADER,
};
use vigil_evaluator::server::query_adapter::SharedStore;
use vigil_evaluator::store::shared::ScrapeToStore;
use vigil_evaluator::store::Store;

/// What the fake target answers, and what it saw.
#[derive(Clone)]
struct Exposition {
    status: StatusCode,
    content_type: &'static str,
    body: String,
    gzip: bool,
    delay: Duration,
}

#[derive(Default)]
struct Seen {
    authorization: Vec<String>,
    accept: Vec<String>,
}

/// The fake target's handler state.
type Shared = (Arc<Mutex<Exposition>>, Arc<Mutex<Seen>>);

#[derive(Clone)]
struct FakeTarget {
    exposition: Arc<Mutex<Exposition>>,
    seen: Arc<Mutex<Seen>>,
    address: String,
}

impl FakeTarget {
    async fn start(body: &str) -> FakeTarget {
        let exposition = Arc::new(Mutex::new(Exposition {
            status: StatusCode::OK,
            content_type: "text/plain; version=0.0.4",
            body: body.to_string(),
            gzip: false,
            delay: Duration::ZERO,
        }));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/metrics", get(serve))
            .with_state((exposition.clone(), seen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local addr").to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTarget {
            exposition,
            seen,
            address,
        }
    }

    fn set(&self, f: impl FnOnce(&mut Exposition)) {
        f(&mut self.exposition.lock().expect("lock"));
    }
}

async fn serve(State((exposition, seen)): State<Shared>, headers: HeaderMap) -> Response {
    {
        let mut seen = seen.lock().expect("lock");
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        seen.authorization.push(header("authorization"));
        seen.accept.push(header("accept"));
    }
    let e = exposition.lock().expect("lock").clone();
    if !e.delay.is_zero() {
        tokio::time::sleep(e.delay).await;
    }
    let mut response = if e.gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(e.body.as_bytes()).expect("gzip");
        let mut r = (e.status, encoder.finish().expect("gzip")).into_response();
        r.headers_mut()
            .insert("content-encoding", HeaderValue::from_static("gzip"));
        r
    } else {
        (e.status, e.body).into_response()
    };
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(e.content_type));
    response
}

/// The store stand-in: keeps every committed batch.
#[derive(Default)]
struct MemoryStore {
    batches: Mutex<Vec<Vec<Sample>>>,
}

impl SampleAppender for MemoryStore {
    fn commit(&self, batch: &[Sample]) -> Result<(), AppendError> {
        self.batches.lock().expect("lock").push(batch.to_vec());
        Ok(())
    }
}

impl MemoryStore {
    fn last_batch(&self) -> Vec<Sample> {
        self.batches
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default()
    }

    fn all(&self) -> Vec<Sample> {
        self.batches.lock().expect("lock").concat()
    }
}

/// A clock tests move by hand, at `secs` after the epoch.
fn clock_at(secs: u64) -> Arc<SimClock> {
    Arc::new(SimClock::new(
        (UNIX_EPOCH + Duration::from_secs(secs)).into(),
    ))
}

const T0: u64 = 1_700_000_000;
const T0_MS: i64 = 1_700_000_000_000;

fn config(address: &str, extra: &str) -> ValidScrapeConfig {
    let yaml = format!("job_name: test\nstatic_configs: [{{targets: ['{address}']}}]\n{extra}");
    let parsed: ScrapeConfig = serde_yaml::from_str(&yaml).expect("test config parses");
    parsed
        .validate(&ScrapeDefaults::default(), "scrape_configs[0]")
        .expect("test config is valid")
}

struct Harness {
    target: FakeTarget,
    store: Arc<MemoryStore>,
    clock: Arc<SimClock>,
    scrape_loop: ScrapeLoop,
}

async fn harness(body: &str, extra: &str) -> Harness {
    let target = FakeTarget::start(body).await;
    let store = Arc::new(MemoryStore::default());
    let clock = clock_at(T0);
    let cfg = config(&target.address, extra);
    let scrape_loop =
        ScrapeLoop::new(&cfg, &cfg.targets[0], store.clone(), clock.clone()).expect("loop");
    Harness {
        target,
        store,
        clock,
        scrape_loop,
    }
}

fn find<'a>(batch: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    batch
        .iter()
        .filter(|s| s.labels.metric_name() == Some(name))
        .collect()
}

fn value_of(batch: &[Sample], name: &str) -> Option<f64> {
    find(batch, name).first().map(|s| s.value)
}

fn stale_names(batch: &[Sample]) -> Vec<String> {
    let mut names: Vec<String> = batch
        .iter()
        .filter(|s| vigil_evaluator::stale::is_stale(s.value))
        .map(|s| s.labels.to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn good_scrape_stores_samples_with_target_labels_and_synthetic_series() {
    let mut h = harness(
        "# TYPE http_requests_total counter\nhttp_requests_total{path=\"/x\"} 3\nqueue_depth 7\n",
        "",
    )
    .await;
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(outcome.up, "{outcome:?}");

    let batch = h.store.last_batch();
    let requests = find(&batch, "http_requests_total");
    assert_eq!(requests.len(), 1);
    let expected = Labels::from_pairs([
        ("__name__", "http_requests_total"),
        ("instance", h.target.address.as_str()),
        ("job", "test"),
        ("path", "/x"),
    ]);
    assert_eq!(requests[0].labels, expected);
    assert_eq!(requests[0].value, 3.0);
    assert_eq!(requests[0].t_ms, T0_MS);
    assert_eq!(value_of(&batch, "up"), Some(1.0));
    assert_eq!(value_of(&batch, "scrape_samples_scraped"), Some(2.0));
    assert_eq!(
        value_of(&batch, "scrape_samples_post_metric_relabeling"),
        Some(2.0)
    );
    assert_eq!(value_of(&batch, "scrape_series_added"), Some(2.0));
    assert!(value_of(&batch, "scrape_duration_seconds").is_some());

    let state = h.scrape_loop.handle().snapshot();
    assert_eq!(state.health, Health::Up);
    assert_eq!(state.last_error, None);
    assert_eq!(
        state.last_scrape,
        Some(UNIX_EPOCH + Duration::from_secs(T0))
    );
    assert_eq!(state.labels.get("job"), Some("test"));
}

#[tokio::test]
async fn second_scrape_adds_no_series() {
    let mut h = harness("a 1\nb 2\n", "").await;
    h.scrape_loop.scrape_once().await;
    h.clock.advance(Duration::from_secs(15));
    h.scrape_loop.scrape_once().await;
    let batch = h.store.last_batch();
    assert_eq!(value_of(&batch, "scrape_series_added"), Some(0.0));
    assert_eq!(find(&batch, "a")[0].t_ms, T0_MS + 15_000);
}

#[tokio::test]
async fn prometheus_style_accept_header_is_sent() {
    let mut h = harness("a 1\n", "").await;
    h.scrape_loop.scrape_once().await;
    let seen = h.target.seen.lock().expect("lock");
    assert_eq!(seen.accept, [ACCEPT_HEADER]);
}

#[tokio::test]
async fn openmetrics_body_is_parsed_when_the_content_type_says_so() {
    let mut h = harness("", "").await;
    h.target.set(|e| {
        e.content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        e.body = "# TYPE jobs counter\njobs_total 4 1699999990.5 # {trace_id=\"x\"} 1\njobs_created 1699990000\n# EOF\n".into();
    });
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(outcome.up, "{outcome:?}");
    let batch = h.store.last_batch();
    let jobs = find(&batch, "jobs_total");
    assert_eq!(
        jobs[0].t_ms, 1_699_999_990_500,
        "explicit OpenMetrics timestamp kept"
    );
    assert_eq!(value_of(&batch, "jobs_created"), Some(1_699_990_000.0));
}

#[tokio::test]
async fn malformed_body_marks_target_down_with_the_line_in_the_error() {
    let mut h = harness("ok 1\nbroken{le=\"1\" 2\n", "").await;
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(!outcome.up);
    let batch = h.store.last_batch();
    assert_eq!(value_of(&batch, "up"), Some(0.0));
    assert!(
        find(&batch, "ok").is_empty(),
        "a failed scrape stores no samples"
    );
    let state = h.scrape_loop.handle().snapshot();
    assert_eq!(state.health, Health::Down);
    let error = state.last_error.unwrap_or_default();
    assert!(error.contains("line 2"), "{error}");
}

#[tokio::test]
async fn disappearing_series_gets_a_staleness_marker() {
    let mut h = harness("a 1\nb 2\n", "").await;
    h.scrape_loop.scrape_once().await;
    h.target.set(|e| e.body = "a 1\n".into());
    h.clock.advance(Duration::from_secs(15));
    let outcome = h.scrape_loop.scrape_once().await;
    assert_eq!(outcome.stale_markers, 1);
    let batch = h.store.last_batch();
    let stale: Vec<&Sample> = batch
        .iter()
        .filter(|s| vigil_evaluator::stale::is_stale(s.value))
        .collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].labels.metric_name(), Some("b"));
    assert_eq!(stale[0].t_ms, T0_MS + 15_000);
    assert_eq!(value_of(&batch, "a"), Some(1.0));
}

#[tokio::test]
async fn down_target_stales_all_its_series() {
    let mut h = harness("a 1\nb 2\n", "").await;
    h.scrape_loop.scrape_once().await;
    h.target
        .set(|e| e.status = StatusCode::INTERNAL_SERVER_ERROR);
    h.clock.advance(Duration::from_secs(15));
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(!outcome.up);
    let batch = h.store.last_batch();
    assert_eq!(stale_names(&batch).len(), 2);
    assert_eq!(value_of(&batch, "up"), Some(0.0));
    let error = h
        .scrape_loop
        .handle()
        .snapshot()
        .last_error
        .unwrap_or_default();
    assert!(error.contains("500"), "{error}");

    // Recovery writes the series again; like Prometheus' series cache, they
    // are not counted as added (they were only staled, not forgotten).
    h.target.set(|e| e.status = StatusCode::OK);
    h.clock.advance(Duration::from_secs(15));
    h.scrape_loop.scrape_once().await;
    let batch = h.store.last_batch();
    assert_eq!(value_of(&batch, "a"), Some(1.0));
    assert_eq!(value_of(&batch, "scrape_series_added"), Some(0.0));
    assert!(stale_names(&batch).is_empty());
}

#[tokio::test]
async fn samples_with_explicit_timestamps_are_not_staled() {
    let mut h = harness("a 1\nexplicit 5 1600000000000\n", "").await;
    h.scrape_loop.scrape_once().await;
    assert_eq!(
        find(&h.store.last_batch(), "explicit")[0].t_ms,
        1_600_000_000_000
    );
    h.target.set(|e| e.body = "a 1\n".into());
    h.clock.advance(Duration::from_secs(15));
    h.scrape_loop.scrape_once().await;
    assert!(stale_names(&h.store.last_batch()).is_empty());
}

#[tokio::test]
async fn metric_relabel_configs_keep_drop_replace_and_labeldrop() {
    let body = "http_requests_total{code=\"200\",pod=\"web-1\"} 5\n\
                http_requests_total{code=\"500\",pod=\"web-1\"} 1\n\
                go_goroutines 12\n\
                process_open_fds 9\n";
    let rules = "metric_relabel_configs:\n\
        - {action: drop, source_labels: [__name__], regex: 'go_.*'}\n\
        - {action: keep, source_labels: [__name__, code], regex: 'http_requests_total;2..|process_.*;'}\n\
        - {source_labels: [pod], regex: '(.*)-(\\d+)', target_label: replica, replacement: '$2'}\n\
        - {action: labeldrop, regex: pod}\n";
    let mut h = harness(body, rules).await;
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(outcome.up, "{outcome:?}");
    assert_eq!(outcome.samples_scraped, 4);
    assert_eq!(outcome.samples_post_relabel, 2);
    let batch = h.store.last_batch();
    let requests = find(&batch, "http_requests_total");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].labels.get("code"), Some("200"));
    assert_eq!(requests[0].labels.get("replica"), Some("1"));
    assert_eq!(requests[0].labels.get("pod"), None);
    assert!(find(&batch, "go_goroutines").is_empty());
    assert_eq!(find(&batch, "process_open_fds").len(), 1);
    assert_eq!(
        value_of(&batch, "scrape_samples_post_metric_relabeling"),
        Some(2.0)
    );
}

#[tokio::test]
async fn exceeding_sample_limit_fails_the_whole_scrape() {
    let mut h = harness("a 1\nb 2\nc 3\n", "sample_limit: 2").await;
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(!outcome.up);
    let batch = h.store.last_batch();
    assert!(find(&batch, "a").is_empty());
    assert_eq!(value_of(&batch, "up"), Some(0.0));
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("sample_limit of 2"), "{error}");
}

#[tokio::test]
async fn sample_limit_counts_samples_after_relabelling() {
    let rules = "sample_limit: 2\nmetric_relabel_configs: [{action: drop, source_labels: [__name__], regex: c}]";
    let mut h = harness("a 1\nb 2\nc 3\n", rules).await;
    assert!(h.scrape_loop.scrape_once().await.up);
}

#[tokio::test]
async fn body_over_the_size_limit_fails_the_scrape() {
    let body: String = (0..100).map(|i| format!("series_{i} {i}\n")).collect();
    let mut h = harness(&body, "body_size_limit: 200").await;
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(!outcome.up);
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("body_size_limit of 200 bytes"), "{error}");
    assert_eq!(outcome.limit, Some("body_size_limit"));
}

#[tokio::test]
async fn gzip_bodies_are_decompressed_and_the_limit_applies_to_the_decompressed_size() {
    let body: String = (0..100).map(|i| format!("series_{i} {i}\n")).collect();
    let mut h = harness(&body, "").await;
    h.target.set(|e| e.gzip = true);
    let outcome = h.scrape_loop.scrape_once().await;
    assert_eq!(outcome.samples_scraped, 100, "{outcome:?}");

    let mut limited = harness(&body, "body_size_limit: 500").await;
    limited.target.set(|e| e.gzip = true);
    assert!(!limited.scrape_loop.scrape_once().await.up);
}

#[tokio::test]
async fn without_honor_labels_clashing_labels_are_exported() {
    let mut h = harness("m{job=\"app\",instance=\"pod-1\"} 1\n", "").await;
    h.scrape_loop.scrape_once().await;
    let batch = h.store.last_batch();
    let m = find(&batch, "m")[0];
    assert_eq!(m.labels.get("job"), Some("test"));
    assert_eq!(m.labels.get("exported_job"), Some("app"));
    assert_eq!(m.labels.get("exported_instance"), Some("pod-1"));
}

#[tokio::test]
async fn with_honor_labels_exposed_labels_win() {
    let mut h = harness("m{job=\"app\"} 1\n", "honor_labels: true").await;
    h.scrape_loop.scrape_once().await;
    let batch = h.store.last_batch();
    let m = find(&batch, "m")[0];
    assert_eq!(m.labels.get("job"), Some("app"));
    assert_eq!(m.labels.get("exported_job"), None);
    assert_eq!(m.labels.get("instance"), Some(h.target.address.as_str()));
}

#[tokio::test]
async fn bearer_token_from_file_is_sent_both_ways_of_configuring_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("write token");
    for extra in [
        format!("bearer_token_file: {}", token.display()),
        format!("authorization: {{credentials_file: {}}}", token.display()),
    ] {
        let mut h = harness("a 1\n", &extra).await;
        assert!(h.scrape_loop.scrape_once().await.up);
        let seen = h.target.seen.lock().expect("lock");
        assert_eq!(seen.authorization, ["Bearer s3cret"], "{extra}");
    }
}

#[tokio::test]
async fn missing_credentials_file_fails_the_scrape_with_its_path() {
    let mut h = harness("a 1\n", "bearer_token_file: /nonexistent/vigil-token").await;
    let outcome = h.scrape_loop.scrape_once().await;
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("/nonexistent/vigil-token"), "{error}");
}

#[tokio::test]
async fn slow_target_times_out() {
    let mut h = harness("a 1\n", "scrape_interval: 1s\nscrape_timeout: 200ms").await;
    h.target.set(|e| e.delay = Duration::from_secs(3));
    // The target holds its answer for 3 s of real time; the scrape's
    // 200 ms pass on the simulated clock once the request is in.
    let (clock, seen) = (Arc::clone(&h.clock), Arc::clone(&h.target.seen));
    let timer = async move {
        while seen.lock().expect("lock").accept.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        clock.advance(Duration::from_millis(200));
    };
    let (outcome, ()) = tokio::join!(h.scrape_loop.scrape_once(), timer);
    assert!(!outcome.up);
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("timed out after 200ms"), "{error}");
}

#[tokio::test]
async fn unreachable_target_is_down_with_the_url_in_the_error() {
    let port = vigil_testkit::free_port();
    let store = Arc::new(MemoryStore::default());
    let cfg = config(&format!("127.0.0.1:{port}"), "");
    let mut scrape_loop =
        ScrapeLoop::new(&cfg, &cfg.targets[0], store.clone(), clock_at(T0)).expect("loop");
    let outcome = scrape_loop.scrape_once().await;
    assert!(!outcome.up);
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.contains(&format!("127.0.0.1:{port}/metrics")),
        "{error}"
    );
    assert_eq!(value_of(&store.last_batch(), "up"), Some(0.0));
}

#[tokio::test]
async fn stopping_a_target_stales_its_series_and_synthetic_series() {
    let target = FakeTarget::start("a 1\nb 2\n").await;
    let store = Arc::new(MemoryStore::default());
    let cfg = config(&target.address, "scrape_interval: 50ms");
    let appender: Arc<dyn SampleAppender> = store.clone();
    let sim_clock = clock_at(T0);
    let clock: Arc<dyn Clock> = sim_clock.clone();
    let cancel = CancellationToken::new();
    let (handles, tasks) =
        spawn_scrape_loops(&[cfg], &appender, &clock, &cancel, None).expect("spawn");
    assert_eq!(handles.len(), 1);

    // The loop waits on the simulated clock for its first tick, at most one
    // interval away: once it sleeps, move the clock one interval on.
    for _ in 0..200 {
        if sim_clock.sleepers() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim_clock.advance(Duration::from_millis(50));

    // Wait (bounded) for the first scrape to land; the test asserts what
    // was written, not when.
    for _ in 0..200 {
        if handles[0].snapshot().health != Health::Unknown {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(handles[0].snapshot().health, Health::Up);
    cancel.cancel();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("loop stops after cancel")
            .expect("loop task");
    }
    let last = store.last_batch();
    let stale = stale_names(&last);
    let names: Vec<&str> = last.iter().filter_map(|s| s.labels.metric_name()).collect();
    assert_eq!(
        stale.len(),
        7,
        "a, b and the five synthetic series: {names:?}"
    );
    assert!(last
        .iter()
        .all(|s| vigil_evaluator::stale::is_stale(s.value)));
    assert!(store.all().len() > last.len());
}

#[tokio::test]
async fn duplicate_series_in_one_exposition_keep_the_first_sample() {
    let mut h = harness("a{x=\"1\"} 1\na{x=\"1\"} 2\n", "").await;
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(outcome.up);
    let batch = h.store.last_batch();
    let a = find(&batch, "a");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].value, 1.0);
}

#[tokio::test]
async fn start_offset_lies_within_the_interval_and_is_stable_per_target() {
    let h = harness("a 1\n", "scrape_interval: 15s").await;
    let first = h.scrape_loop.initial_offset();
    assert!(first < Duration::from_secs(15));
    // One second later the same phase is one second closer.
    h.clock.advance(Duration::from_secs(1));
    let second = h.scrape_loop.initial_offset();
    let expected = (first + Duration::from_secs(14)).as_millis() % 15_000;
    assert_eq!(second.as_millis(), expected);
}

#[tokio::test]
async fn a_large_body_arriving_in_many_chunks_is_parsed_whole() {
    // About 2 MB: the response reaches the scrape in many chunks, and lines
    // are cut between chunks.
    let lines = 60_000;
    let body: String = (0..lines)
        .map(|i| {
            format!(
                "big_metric{{series=\"s{i}\",padding=\"{}\"}} {i}\n",
                "p".repeat(i % 7)
            )
        })
        .collect();
    let mut h = harness(&body, "").await;
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(outcome.up, "{outcome:?}");
    assert_eq!(outcome.samples_scraped, lines);
    let batch = h.store.last_batch();
    let big = find(&batch, "big_metric");
    assert_eq!(big.len(), lines);
    for (i, sample) in big.iter().enumerate() {
        assert_eq!(sample.value, i as f64);
        assert_eq!(sample.labels.get("series"), Some(format!("s{i}").as_str()));
    }
}

/// A line exposing `n` labels besides the metric name.
fn wide_series(name: &str, n: usize) -> String {
    let labels: Vec<String> = (0..n).map(|i| format!("l{i}=\"v\"")).collect();
    format!("{name}{{{}}} 1\n", labels.join(","))
}

#[tokio::test]
async fn label_limits_fail_the_whole_scrape_with_the_limit_as_the_reason() {
    let counter =
        IntCounterVec::new(Opts::new("exceeded", "test"), &["job", "limit"]).expect("counter");
    let cases = [
        ("label_limit: 4", wide_series("m", 4), "label_limit"),
        (
            "label_name_length_limit: 10",
            "m{a_rather_long_name=\"v\"} 1\n".to_string(),
            "label_name_length_limit",
        ),
        (
            // The instance label (127.0.0.1:<port>) holds at most 15 bytes.
            "label_value_length_limit: 16",
            "m{a=\"12345678901234567\"} 1\n".to_string(),
            "label_value_length_limit",
        ),
    ];
    for (extra, bad, limit) in cases {
        // A good scrape first, so the limit's failure has series to stale.
        let mut h = harness("ok 1\n", extra).await;
        h.scrape_loop.count_limits_in(counter.clone());
        assert!(h.scrape_loop.scrape_once().await.up, "{extra}");
        h.target.set(|e| e.body = format!("ok 2\n{bad}"));
        h.clock.advance(Duration::from_secs(15));
        let outcome = h.scrape_loop.scrape_once().await;
        assert!(!outcome.up, "{extra}");
        assert_eq!(outcome.limit, Some(limit), "{extra}");
        let error = outcome.error.unwrap_or_default();
        assert!(error.contains(&format!("{limit} exceeded")), "{error}");
        assert!(error.contains("raise"), "{error}");
        let batch = h.store.last_batch();
        assert_eq!(
            find(&batch, "m").len(),
            0,
            "nothing of the scrape is stored"
        );
        let stale = stale_names(&batch);
        assert!(
            stale.len() == 1 && stale[0].starts_with("ok{"),
            "{extra}: {stale:?}"
        );
        assert_eq!(value_of(&batch, "up"), Some(0.0));
        assert_eq!(
            h.scrape_loop.handle().snapshot().last_error.as_deref(),
            Some(error.as_str())
        );
        assert_eq!(counter.with_label_values(&["test", limit]).get(), 1);
    }
}

#[tokio::test]
async fn a_series_with_20000_labels_fails_on_the_default_label_limit() {
    let mut h = harness(&wide_series("wide", 20_000), "").await;
    let outcome = h.scrape_loop.scrape_once().await;
    assert!(!outcome.up);
    assert_eq!(outcome.limit, Some("label_limit"));
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("line 1: more than 128 labels"), "{error}");
}

#[tokio::test]
async fn label_limit_counts_the_final_labels_with_the_metric_name() {
    // Three exposed labels plus __name__, job and instance: six.
    let mut h = harness(&wide_series("m", 3), "label_limit: 6").await;
    assert!(h.scrape_loop.scrape_once().await.up);
    let mut h = harness(&wide_series("m", 3), "label_limit: 5").await;
    assert_eq!(h.scrape_loop.scrape_once().await.limit, Some("label_limit"));
    // Labels dropped by relabelling do not count.
    let mut h = harness(
        &wide_series("m", 3),
        "label_limit: 5\nmetric_relabel_configs: [{action: labeldrop, regex: l0}]",
    )
    .await;
    assert!(h.scrape_loop.scrape_once().await.up);
}

#[tokio::test]
async fn stopping_ends_a_scrape_that_is_still_waiting_for_its_target() {
    let target = FakeTarget::start("a 1\n").await;
    target.set(|e| e.delay = Duration::from_secs(600));
    let store = Arc::new(MemoryStore::default());
    let clock = clock_at(T0);
    let cfg = config(&target.address, "scrape_interval: 10m\nscrape_timeout: 10m");
    let scrape_loop =
        ScrapeLoop::new(&cfg, &cfg.targets[0], store.clone(), clock.clone()).expect("loop");
    // Start at this target's phase, so the first scrape begins at once.
    clock.advance(scrape_loop.initial_offset());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scrape_loop.run(cancel.clone()));
    for _ in 0..400 {
        if !target.seen.lock().expect("lock").accept.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        !target.seen.lock().expect("lock").accept.is_empty(),
        "scrape started"
    );
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the loop stops while its scrape waits (the target answers in 10 minutes)")
        .expect("loop task");
    // Nothing was scraped, so only the synthetic series are marked stale.
    let last = store.last_batch();
    assert_eq!(last.len(), 5);
    assert!(last
        .iter()
        .all(|s| vigil_evaluator::stale::is_stale(s.value)));
}

fn shared_store(limit: usize) -> (SharedStore, Arc<dyn SampleAppender>) {
    let store: SharedStore = Arc::new(RwLock::new(Store::new(limit)));
    let appender: Arc<dyn SampleAppender> = Arc::new(ScrapeToStore::new(Arc::clone(&store)));
    (store, appender)
}

fn numbered(name: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{name}{{i=\"{i}\"}} {i}\n"))
        .collect()
}

#[tokio::test]
async fn a_target_over_its_share_of_the_series_limit_fails_whole_and_others_keep_adding() {
    // 40 series for two targets: a share of 20 each, synthetic series
    // included.
    let (store, appender) = shared_store(40);
    let big_target = FakeTarget::start(&numbered("big", 10)).await;
    let small_target = FakeTarget::start(&numbered("small", 1)).await;
    let clock = clock_at(T0);
    let big_cfg = config(&big_target.address, "");
    let small_cfg = config(&small_target.address, "");
    let mut big = ScrapeLoop::new(
        &big_cfg,
        &big_cfg.targets[0],
        Arc::clone(&appender),
        clock.clone(),
    )
    .expect("loop");
    let mut small = ScrapeLoop::new(
        &small_cfg,
        &small_cfg.targets[0],
        Arc::clone(&appender),
        clock.clone(),
    )
    .expect("loop");
    assert!(big.scrape_once().await.up, "10 + 5 synthetic fit");
    assert!(small.scrape_once().await.up);

    // The big target grows past anything it may hold.
    big_target.set(|e| e.body = numbered("big", 1000));
    clock.advance(Duration::from_secs(15));
    let outcome = big.scrape_once().await;
    assert!(!outcome.up);
    assert_eq!(outcome.limit, Some("series_limit"));
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("series_limit exceeded"), "{error}");
    assert!(
        error.contains("would make the target hold 1005 series"),
        "{error}"
    );
    assert_eq!(big.handle().snapshot().last_error, Some(error));
    {
        let store = store.read().expect("lock");
        // Its earlier 10 series went stale; only its synthetic series
        // (up = 0) stay active, next to the small target's 1 + 5.
        assert_eq!(store.active_series_count(), 5 + 6);
    }

    // Meanwhile the small target keeps adding new series, scrape after
    // scrape, up to its share.
    for n in [2, 8, 15] {
        small_target.set(|e| e.body = numbered("small", n));
        clock.advance(Duration::from_secs(15));
        let outcome = small.scrape_once().await;
        assert!(outcome.up, "{n} series: {:?}", outcome.error);
        assert_eq!(store.read().expect("lock").active_series_count(), 5 + n + 5);
    }
    // The big target fails every time, whatever it had before.
    clock.advance(Duration::from_secs(15));
    assert_eq!(big.scrape_once().await.limit, Some("series_limit"));
}

#[tokio::test]
async fn a_stopped_target_gives_its_share_back() {
    let (store, appender) = shared_store(40);
    let one = FakeTarget::start(&numbered("one", 30)).await;
    let two = FakeTarget::start(&numbered("two", 1)).await;
    let clock = clock_at(T0);
    let one_cfg = config(&one.address, "");
    let two_cfg = config(&two.address, "");
    let mut first = ScrapeLoop::new(
        &one_cfg,
        &one_cfg.targets[0],
        Arc::clone(&appender),
        clock.clone(),
    )
    .expect("loop");
    let mut second = ScrapeLoop::new(
        &two_cfg,
        &two_cfg.targets[0],
        Arc::clone(&appender),
        clock.clone(),
    )
    .expect("loop");
    assert_eq!(first.scrape_once().await.limit, Some("series_limit"));
    assert!(second.scrape_once().await.up);
    clock.advance(Duration::from_secs(15));
    second.write_end_of_run_staleness().expect("stale");
    drop(second);
    assert_eq!(store.read().expect("lock").active_series_count(), 5);
    assert!(
        first.scrape_once().await.up,
        "alone, the target may use the whole limit"
    );
}
