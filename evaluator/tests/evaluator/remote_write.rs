//! Remote write against real receivers: samples Vigil queues arrive in
//! Prometheus (`--web.enable-remote-write-receiver`) and VictoriaMetrics
//! with their values, timestamps and the external labels; and against a
//! receiver that fails on purpose: 503 with `Retry-After` and 500 are
//! retried until accepted, a 400 drops the batch, a full queue drops and
//! counts, and nothing blocks the caller; and the evaluator's own rule
//! output through `remote_write` in `vigil.yaml`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use vigil_evaluator::clock::{Clock, SimClock, SystemClock};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::remote_write::config::validate;
use vigil_evaluator::remote_write::{RemoteWrite, RemoteWriteMetrics};
use vigil_evaluator::sample::Sample;
use vigil_testkit::free_port;

use crate::support::process::{
    log_of, serve, start_evaluator, value_high_rules, webhook_notify, write_config, Target,
};
use crate::support::tsdb::{first_result, outage, Kind, Tsdb};
use crate::support::wait::poll;

fn settings(yaml: &str) -> Vec<vigil_evaluator::remote_write::RemoteWriteSettings> {
    let entries: Vec<serde_yaml::Value> =
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    validate(&entries).unwrap_or_else(|e| panic!("{e:?}"))
}

fn sample(name: &str, extra: &[(&str, &str)], t_ms: i64, value: f64) -> Sample {
    let mut labels = Labels::from_pairs(extra.iter().copied());
    labels.set("__name__", name);
    Sample {
        labels,
        t_ms,
        value,
    }
}

fn start(
    yaml: &str,
    clock: Arc<dyn Clock>,
) -> (
    RemoteWrite,
    RemoteWriteMetrics,
    CancellationToken,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let metrics = RemoteWriteMetrics::register(&Registry::new()).unwrap_or_else(|e| panic!("{e}"));
    let cancel = CancellationToken::new();
    let (remote, shards) = RemoteWrite::start(
        &settings(yaml),
        &Labels::from_pairs([("replica", "a")]),
        &metrics,
        &clock,
        &cancel,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (remote, metrics, cancel, shards)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_arrive_in_prometheus_and_victoriametrics_with_external_labels() {
    let now_ms = SystemClock.now_ms() / 1000 * 1000;
    for kind in [Kind::Prometheus, Kind::VictoriaMetrics] {
        let Some(tsdb) = Tsdb::new(kind, "") else {
            continue;
        };
        let _process = tsdb.start().await;
        let base = tsdb.base.clone();
        let (remote, metrics, cancel, shards) = start(
            &format!(
                "- url: '{}'\n  name: engine\n  queue_config: {{batch_send_deadline: 50ms}}\n",
                tsdb.write_url()
            ),
            Arc::new(SystemClock),
        );
        remote.enqueue(&[
            sample("job:errors:rate5m", &[("job", "api")], now_ms - 2_000, 0.25),
            sample("job:errors:rate5m", &[("job", "api")], now_ms - 1_000, 0.5),
            sample(
                "ALERTS",
                &[("alertname", "Down"), ("alertstate", "firing")],
                now_ms - 1_000,
                1.0,
            ),
        ]);
        let at = Some((now_ms - 1_000) / 1000);
        let rate = first_result(&base, "job:errors:rate5m", at)
            .await
            .unwrap_or_else(|| panic!("{kind:?}: the recording-rule sample never arrived"));
        assert_eq!(rate["metric"]["job"], "api", "{:?}: {rate}", kind);
        assert_eq!(
            rate["metric"]["replica"], "a",
            "{:?}: external label: {rate}",
            kind
        );
        assert_eq!(rate["value"][1], "0.5", "{:?}: {rate}", kind);
        let alert = first_result(&base, "ALERTS", at)
            .await
            .unwrap_or_else(|| panic!("{:?}: ALERTS never arrived", kind));
        assert_eq!(alert["metric"]["alertname"], "Down", "{:?}: {alert}", kind);
        assert_eq!(metrics.samples_sent.with_label_values(&["engine"]).get(), 3);
        cancel.cancel();
        for shard in shards {
            let _ = shard.await;
        }
    }
}

/// An evaluator process that scrapes a target holding 3, fires
/// `ValueHigh` and records `vigil:test_value:doubled` every second, and
/// remote-writes both to `base` with `queue_config`; `global_extra` is
/// added to its `global:` (`, key: value`).
struct RecordingWriter {
    dir: tempfile::TempDir,
    listen: u16,
    _target: Target,
    _evaluator: vigil_testkit::ChildGuard,
}

impl RecordingWriter {
    async fn start(base: &str, queue_config: &str, global_extra: &str) -> RecordingWriter {
        let target = Target::start().await;
        target.set(3.0);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rules = value_high_rules(
            "0s",
            "  - record: vigil:test_value:doubled\n    expr: vigil_test_value * 2\n",
        );
        let listen = free_port();
        let config = write_config(
            dir.path(),
            target.port,
            listen,
            &rules,
            &webhook_notify(free_port(), false),
        );
        let mut text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
        text = text.replace(
            "evaluation_interval: 1s}",
            &format!("evaluation_interval: 1s{global_extra}}}"),
        );
        text.push_str(&format!(
            "remote_write:\n- url: '{base}/api/v1/write'\n  queue_config: {queue_config}\n"
        ));
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
        let evaluator = start_evaluator(&config, dir.path(), "evaluator.log", None);
        RecordingWriter {
            dir,
            listen,
            _target: target,
            _evaluator: evaluator,
        }
    }
}

/// The evaluator as a process: a recording rule's output and `ALERTS` of
/// a firing alert reach Prometheus through `remote_write` in `vigil.yaml`,
/// with the external labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evaluators_rule_output_is_remote_written() {
    let Some(prometheus) = Tsdb::new(Kind::Prometheus, "") else {
        return;
    };
    let _process = prometheus.start().await;
    let base = prometheus.base.clone();
    let writer = RecordingWriter::start(
        &base,
        "{batch_send_deadline: 200ms}",
        ", external_labels: {replica: e2e}",
    )
    .await;
    let dir = &writer.dir;
    let doubled = first_result(&base, "vigil:test_value:doubled", None)
        .await
        .unwrap_or_else(|| {
            panic!(
                "no recording-rule output in Prometheus; log:\n{}",
                log_of(dir.path())
            )
        });
    assert_eq!(doubled["value"][1], "6");
    assert_eq!(doubled["metric"]["replica"], "e2e");
    let alert = first_result(&base, "ALERTS{alertname=\"ValueHigh\"}", None)
        .await
        .unwrap_or_else(|| panic!("no ALERTS in Prometheus; log:\n{}", log_of(dir.path())));
    assert_eq!(alert["metric"]["alertstate"], "firing");
    assert_eq!(alert["metric"]["replica"], "e2e");
    assert!(first_result(&base, "ALERTS_FOR_STATE", None)
        .await
        .is_some());
}

/// The value of the unlabelled metric `name` on the evaluator's
/// `/metrics` (summed over its series).
async fn metric_sum(base: &str, name: &str) -> f64 {
    let text = match reqwest::get(format!("{base}/metrics")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => return f64::NAN,
    };
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_arrives_after_the_receiver_was_down() {
    let Some(prometheus) = Tsdb::new(Kind::Prometheus, "") else {
        return;
    };
    let process = prometheus.start().await;
    let base = prometheus.base.clone();
    let writer =
        RecordingWriter::start(&base, "{batch_send_deadline: 200ms, max_backoff: 2s}", "").await;
    let dir = &writer.dir;
    let evaluator = format!("http://127.0.0.1:{}", writer.listen);
    assert!(
        first_result(&base, "vigil:test_value:doubled", None)
            .await
            .is_some(),
        "no recording-rule output; log:\n{}",
        log_of(dir.path())
    );
    let started = chrono::Utc::now().timestamp();

    // The receiver goes away for the outage; the evaluator keeps
    // evaluating every second and queues what it cannot send.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(process);
    tokio::time::sleep(outage()).await;
    assert!(
        metric_sum(&evaluator, "vigil_remote_write_queue_length").await > 0.0,
        "samples queue while the receiver is down"
    );
    let _process = prometheus.start().await;

    // Everything queued arrives: no second of the run without its sample.
    let ended = chrono::Utc::now().timestamp();
    let complete = crate::support::wait::poll(
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let answer: serde_json::Value = reqwest::Client::new()
                .get(format!("{base}/api/v1/query"))
                .query(&[
                    (
                        "query",
                        format!("vigil:test_value:doubled[{}s]", ended - started + 1),
                    ),
                    ("time", ended.to_string()),
                ])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let times: Vec<f64> = answer["data"]["result"][0]["values"]
                .as_array()?
                .iter()
                .filter_map(|v| v[0].as_f64())
                .collect();
            let largest_gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
            let covered =
                times.first()? - (started as f64) < 1.5 && (ended as f64) - times.last()? < 1.5;
            (covered && largest_gap < 1.5).then_some(times.len())
        },
    )
    .await;
    assert!(
        complete.is_some(),
        "samples of the outage are missing in Prometheus; log:\n{}",
        log_of(dir.path())
    );
    assert_eq!(
        metric_sum(&evaluator, "vigil_remote_write_samples_dropped_total").await,
        0.0
    );
    assert!(metric_sum(&evaluator, "vigil_remote_write_samples_retried_total").await > 0.0);
}

/// A scripted answer: a status and its `Retry-After`.
type Answer = (u16, Option<&'static str>);

/// A receiver that answers with the statuses of `script` in turn (204
/// accepts; after the script, everything is accepted), each with an
/// optional `Retry-After`, and keeps the bodies it accepted.
#[derive(Clone, Default)]
struct Scripted {
    script: Arc<Mutex<Vec<Answer>>>,
    accepted: Arc<Mutex<Vec<Vec<u8>>>>,
    requests: Arc<AtomicUsize>,
}

async fn scripted(
    State(s): State<Scripted>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    s.requests.fetch_add(1, Ordering::SeqCst);
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    let next = {
        let mut script = s.script.lock().unwrap_or_else(|e| e.into_inner());
        (!script.is_empty()).then(|| script.remove(0))
    };
    match next {
        Some((status, retry_after)) if status != 204 => {
            let mut headers = HeaderMap::new();
            if let Some(r) = retry_after {
                headers.insert("retry-after", r.parse().unwrap_or_else(|e| panic!("{e}")));
            }
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
                headers,
            )
                .into_response()
        }
        _ => {
            s.accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(body.to_vec());
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

/// One destination named `scripted` sending to a [`Scripted`] receiver
/// answering `script`, with `queue_config`, on a clock that moves only when
/// the test advances it.
struct ScriptedRun {
    receiver: Scripted,
    clock: Arc<SimClock>,
    start_at: chrono::DateTime<chrono::Utc>,
    remote: RemoteWrite,
    metrics: RemoteWriteMetrics,
    cancel: CancellationToken,
    shards: Vec<tokio::task::JoinHandle<()>>,
}

impl ScriptedRun {
    async fn start(script: Vec<Answer>, queue_config: &str) -> ScriptedRun {
        let receiver = Scripted::default();
        *receiver.script.lock().unwrap_or_else(|e| e.into_inner()) = script;
        let port = serve(
            Router::new()
                .route("/write", post(scripted))
                .with_state(receiver.clone()),
        )
        .await;
        let start_at = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let clock = Arc::new(SimClock::new(start_at));
        let (remote, metrics, cancel, shards) = start(
            &format!("- url: 'http://127.0.0.1:{port}/write'\n  name: scripted\n  queue_config: {queue_config}\n"),
            clock.clone(),
        );
        ScriptedRun {
            receiver,
            clock,
            start_at,
            remote,
            metrics,
            cancel,
            shards,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_refusals_dropped_and_a_full_queue_counted() {
    // Time moves only when the test says: a batch is sent when it is full
    // (2 samples), and each retry waits for the test to advance the clock.
    let ScriptedRun {
        receiver,
        clock,
        remote,
        metrics,
        cancel,
        shards,
        ..
    } = ScriptedRun::start(
        vec![(503, Some("120")), (500, None), (204, None), (400, None)],
        "{max_shards: 1, capacity: 3, max_samples_per_send: 2, batch_send_deadline: 1h}",
    )
    .await;
    let count = |m: &prometheus::IntCounterVec, labels: &[&str]| m.with_label_values(labels).get();
    let requests = |n: usize| {
        let receiver = receiver.clone();
        let clock = clock.clone();
        async move {
            let reached = poll(
                Duration::from_secs(20),
                Duration::from_millis(10),
                || async {
                    (receiver.requests.load(Ordering::SeqCst) >= n && clock.sleepers() > 0)
                        .then_some(())
                },
            )
            .await;
            assert!(reached.is_some(), "request {n} never came");
        }
    };
    // Two samples: 503 with Retry-After 120s, 500, then accepted.
    remote.enqueue(&[sample("a", &[], 1, 1.0), sample("a", &[], 2, 2.0)]);
    requests(1).await;
    assert_eq!(
        clock.sleeps().last(),
        Some(&Duration::from_secs(120)),
        "Retry-After honoured"
    );
    clock.advance(Duration::from_secs(120));
    requests(2).await;
    // The backoff doubles with every attempt, as in Prometheus (30ms,
    // then 60ms); the first wait was the receiver's Retry-After instead.
    assert_eq!(
        clock.sleeps().last(),
        Some(&Duration::from_millis(60)),
        "backoff"
    );
    clock.advance(Duration::from_secs(1));
    let sent = poll(
        Duration::from_secs(20),
        Duration::from_millis(10),
        || async { (count(&metrics.samples_sent, &["scripted"]) == 2).then_some(()) },
    )
    .await;
    assert!(sent.is_some(), "retried samples never arrived");
    assert_eq!(
        count(&metrics.samples_retried, &["scripted"]),
        4,
        "two failed attempts of two samples"
    );
    // The next batch is refused (400): dropped, not retried.
    remote.enqueue(&[sample("b", &[], 3, 1.0), sample("b", &[], 4, 1.0)]);
    let dropped = poll(
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async {
            (count(&metrics.samples_dropped, &["scripted", "rejected"]) == 2).then_some(())
        },
    )
    .await;
    assert!(dropped.is_some(), "a 400 must drop the batch");
    assert_eq!(receiver.requests.load(Ordering::SeqCst), 4);
    // More than the queue holds at once: the rest is dropped and counted,
    // and enqueueing never waits (the queue holds 3; the shard may have
    // taken a batch of 2 out meanwhile).
    let many: Vec<Sample> = (0..50).map(|i| sample("c", &[], 10 + i, 1.0)).collect();
    remote.enqueue(&many);
    let full = count(&metrics.samples_dropped, &["scripted", "queue_full"]);
    assert!(
        full >= 45,
        "a queue of 3 holds at most 3 of 50: {full} dropped"
    );
    cancel.cancel();
    for shard in shards {
        let _ = shard.await;
    }
    let accepted = receiver
        .accepted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    assert!(
        accepted >= 2,
        "the first batch and what was queued at shutdown: {accepted}"
    );
    assert_eq!(
        count(&metrics.samples_sent, &["scripted"])
            + full
            + count(&metrics.samples_dropped, &["scripted", "rejected"])
            + count(&metrics.samples_dropped, &["scripted", "shutdown"]),
        54,
        "every sample is sent or counted as dropped"
    );
}

/// A sharded replica waits for what it queued before it claims a group's
/// next slot: [`RemoteWrite::settled`] is true once those samples were
/// sent, or as soon as the receiver fails (retrying, it must not hold
/// alerting), and false when the deadline comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_waits_for_what_it_queued_until_sent_or_failing() {
    let ScriptedRun {
        clock,
        start_at,
        remote,
        metrics,
        cancel,
        shards,
        ..
    } = ScriptedRun::start(
        vec![(503, None)],
        "{max_shards: 2, max_samples_per_send: 2, batch_send_deadline: 1h}",
    )
    .await;
    let far = start_at + chrono::Duration::hours(24);
    let settled = |mark| {
        let remote = remote.clone();
        let clock = clock.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(20),
                remote.settled(&mark, clock.as_ref(), far),
            )
            .await
            .unwrap_or_else(|_| panic!("settled never answered"))
        }
    };
    assert!(settled(remote.mark()).await, "nothing queued yet");

    // One sample waits in its shard for a batch-mate (or an hour).
    remote.enqueue(&[sample("a", &[], 1, 1.0)]);
    let one = remote.mark();
    assert!(
        !remote.settled(&one, clock.as_ref(), start_at).await,
        "the deadline passed with the sample still queued"
    );
    // Its batch-mate sends both; the receiver answers 503: retrying.
    remote.enqueue(&[sample("a", &[], 2, 2.0)]);
    assert!(
        settled(remote.mark()).await,
        "a failing receiver holds nobody"
    );
    assert_eq!(
        metrics.samples_sent.with_label_values(&["scripted"]).get(),
        0
    );

    // The retry goes through; then two more samples are sent at once.
    clock.advance(Duration::from_secs(1));
    let sent = |n| {
        let metrics = metrics.clone();
        move || {
            let metrics = metrics.clone();
            async move {
                (metrics.samples_sent.with_label_values(&["scripted"]).get() == n).then_some(())
            }
        }
    };
    let retried = poll(Duration::from_secs(20), Duration::from_millis(10), sent(2)).await;
    assert!(retried.is_some(), "the retry never went through");
    remote.enqueue(&[sample("a", &[], 3, 3.0), sample("a", &[], 4, 4.0)]);
    assert!(settled(remote.mark()).await);
    assert_eq!(
        metrics.samples_sent.with_label_values(&["scripted"]).get(),
        4,
        "settled once every queued sample was sent"
    );
    cancel.cancel();
    for shard in shards {
        let _ = shard.await;
    }
}
