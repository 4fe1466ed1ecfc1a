//! The shutdown grace of the delivery task: `Running::shutdown(grace)`
//! sets a [`ShutdownGrace`] the delivery task was started with, and the
//! task reads it when its input closes, so the grace given at shutdown
//! (not the one at start) bounds how long a delivery in flight may still
//! take. The receiver here accepts the connection and never answers; the
//! delivery task runs on a simulated clock, so its grace passes only when
//! the test moves that clock.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support as common;
use crate::support::wait;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::sync::{mpsc, watch};
use vigil_evaluator::clock::{Clock, ShutdownGrace, SimClock, SystemClock};
use vigil_evaluator::history::notification_log::Outbox;
use vigil_evaluator::notify::alert::AlertStatus;
use vigil_evaluator::notify::deliver::{DeliveryStage, Retrier, RetryPolicy};
use vigil_evaluator::notify::delivery::run_delivery;
use vigil_evaluator::server::metrics::ServerMetrics;

/// A grace no other sleep of the delivery task asks for.
const SET_AT_SHUTDOWN: Duration = Duration::from_millis(4321);

/// A TCP listener that accepts every connection and never answers;
/// returns its port and how many connections it took.
async fn silent_receiver() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_waits_for_the_grace_set_at_shutdown_not_the_one_it_started_with() {
    let (port, accepted) = silent_receiver().await;
    let integrations = common::webhook_team_a(&format!("http://127.0.0.1:{port}/hook"));
    let (_receivers, receivers_rx) = watch::channel(Arc::new(integrations));
    let clock = Arc::new(SimClock::new(SystemClock.now()));
    let grace = ShutdownGrace::new(Duration::from_secs(3600));
    let (notifications, rx) = mpsc::unbounded_channel();
    let task_clock: Arc<dyn Clock> = clock.clone();
    let task = tokio::spawn(run_delivery(
        rx,
        receivers_rx,
        DeliveryStage::new(Arc::new(Retrier::new(
            RetryPolicy::default(),
            Arc::new(SystemClock),
        ))),
        ServerMetrics::register(&Registry::new()).unwrap(),
        grace.clone(),
        None::<Outbox>,
        task_clock,
    ));

    notifications
        .send(common::notification(vec![common::alert(
            "p1",
            "page",
            AlertStatus::Firing,
        )]))
        .unwrap();
    let sending = wait::until(Duration::from_secs(20), Duration::from_millis(20), || {
        let n = accepted.load(Ordering::SeqCst);
        async move { n > 0 }
    })
    .await;
    assert!(sending, "the delivery never reached the receiver");

    // The shutdown sets its grace, then the input closes.
    grace.set(SET_AT_SHUTDOWN);
    drop(notifications);
    let waiting = wait::until(Duration::from_secs(20), Duration::from_millis(20), || {
        let asked = clock.sleeps().contains(&SET_AT_SHUTDOWN);
        async move { asked }
    })
    .await;
    assert!(
        waiting,
        "the delivery task did not wait the grace set at shutdown; it slept {:?}",
        clock.sleeps()
    );
    assert!(
        !clock.sleeps().contains(&Duration::from_secs(3600)),
        "the grace given at start was used: {:?}",
        clock.sleeps()
    );
    assert!(!task.is_finished(), "the delivery in flight got no grace");

    // Once the grace has passed the delivery is abandoned and the task ends.
    clock.advance(SET_AT_SHUTDOWN);
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the delivery task did not end once its grace had passed")
        .unwrap();
}

#[test]
fn clones_of_a_grace_share_one_value() {
    let grace = ShutdownGrace::new(Duration::from_secs(10));
    let handed_to_a_task = grace.clone();
    grace.set(Duration::from_millis(1500));
    assert_eq!(handed_to_a_task.get(), Duration::from_millis(1500));
    assert_eq!(
        ShutdownGrace::from(Duration::MAX).get(),
        Duration::from_millis(u64::MAX),
        "an absurd grace saturates instead of wrapping"
    );
}
