//! Scrape loop against real HTTP servers on 127.0.0.1: what gets stored,
//! what the target state says, and when series go stale.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use vigil_evaluator::labels::Labels;
use vigil_evaluator::scrape::{
    is_stale_marker, spawn_scrape_loops, AppendError, AppendSample, Clock, Health, SampleAppender,
    ScrapeConfig, ScrapeDefaults, ScrapeLoop, ValidScrapeConfig, ACCEPT_HEADER,
};

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
    batches: Mutex<Vec<Vec<AppendSample>>>,
}

impl SampleAppender for MemoryStore {
    fn commit(&self, batch: &[AppendSample]) -> Result<(), AppendError> {
        self.batches.lock().expect("lock").push(batch.to_vec());
        Ok(())
    }
}

impl MemoryStore {
    fn last_batch(&self) -> Vec<AppendSample> {
        self.batches
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default()
    }

    fn all(&self) -> Vec<AppendSample> {
        self.batches.lock().expect("lock").concat()
    }
}

/// A clock tests move by hand.
struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    fn at(secs: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(Mutex::new(
            UNIX_EPOCH + Duration::from_secs(secs),
        )))
    }
    fn advance(&self, d: Duration) {
        *self.0.lock().expect("lock") += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().expect("lock")
    }
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
    clock: Arc<ManualClock>,
    scrape_loop: ScrapeLoop,
}

async fn harness(body: &str, extra: &str) -> Harness {
    let target = FakeTarget::start(body).await;
    let store = Arc::new(MemoryStore::default());
    let clock = ManualClock::at(T0);
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

fn find<'a>(batch: &'a [AppendSample], name: &str) -> Vec<&'a AppendSample> {
    batch
        .iter()
        .filter(|s| s.labels.metric_name() == Some(name))
        .collect()
}

fn value_of(batch: &[AppendSample], name: &str) -> Option<f64> {
    find(batch, name).first().map(|s| s.value)
}

fn stale_names(batch: &[AppendSample]) -> Vec<String> {
    let mut names: Vec<String> = batch
        .iter()
        .filter(|s| is_stale_marker(s.value))
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
    let stale: Vec<&AppendSample> = batch.iter().filter(|s| is_stale_marker(s.value)).collect();
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
    assert!(error.contains("body size limit of 200 bytes"), "{error}");
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
    let outcome = h.scrape_loop.scrape_once().await;
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
        ScrapeLoop::new(&cfg, &cfg.targets[0], store.clone(), ManualClock::at(T0)).expect("loop");
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
    let clock: Arc<dyn Clock> = ManualClock::at(T0);
    let cancel = CancellationToken::new();
    let (handles, tasks) = spawn_scrape_loops(&[cfg], &appender, &clock, &cancel).expect("spawn");
    assert_eq!(handles.len(), 1);

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
    assert!(last.iter().all(|s| is_stale_marker(s.value)));
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
