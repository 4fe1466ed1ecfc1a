//! Delivery stage: sends a notification through a [`Receiver`] with retries
//! (exponential backoff with jitter, `Retry-After` honoured, an overall
//! deadline), and paces Slack webhooks to one message per second, merging a
//! backlog into one message instead of dropping anything.
//!
//! Time comes from an injected [`Clock`] (its monotonic time), so tests run
//! on a [`crate::clock::SimClock`] whose sleeps advance it instead of
//! sleeping; randomness comes from a seedable generator for the same reason.
//!
//! Retry policy (Vigil defaults): first wait up to 500 ms, doubling, capped at
//! 1 min, giving up once the next wait would end after 5 min from the first
//! attempt. 5xx, 429, timeouts and connection errors are retried; other 4xx
//! are not. A `Retry-After` longer than the computed wait replaces it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::notify::alert::{AlertStatus, Notification};
use crate::notify::receivers::{DeliveryReport, Receiver, SendError};

/// How the backoff is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly `initial * 2^n`, capped (for tests and debugging).
    None,
    /// Uniform in `[0, min(max, initial * 2^n)]` ("full jitter").
    Full,
    /// Uniform in `[initial, 3 * previous]`, capped ("decorrelated jitter").
    Decorrelated,
}

/// Exponential backoff with jitter and an overall deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// No attempt starts later than this after the first one.
    pub deadline: Duration,
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            deadline: Duration::from_secs(300),
            jitter: Jitter::Full,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `failures` (1-based), given the
    /// previous wait (for decorrelated jitter).
    pub fn backoff(&self, failures: u32, previous: Duration, rng: &mut impl Rng) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        match self.jitter {
            Jitter::None => base,
            Jitter::Full => uniform(rng, Duration::ZERO, base),
            Jitter::Decorrelated => {
                let upper = previous.max(self.initial).saturating_mul(3).min(self.max);
                uniform(rng, self.initial.min(upper), upper)
            }
        }
    }
}

fn uniform(rng: &mut impl Rng, low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let nanos = rng.random_range(low.as_nanos()..=high.as_nanos());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The end of a delivery: the last attempt's result and how many attempts
/// it took.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub result: Result<DeliveryReport, SendError>,
    pub attempts: u32,
    /// Clock time from the first attempt to the end.
    pub elapsed: Duration,
    /// True when the last error was retryable but the deadline left no room
    /// for another attempt.
    pub deadline_exceeded: bool,
}

impl DeliveryOutcome {
    pub fn is_delivered(&self) -> bool {
        self.result.is_ok()
    }

    pub fn last_error(&self) -> Option<&SendError> {
        self.result.as_ref().err()
    }

    /// HTTP status or SMTP code of the last attempt, for the notification log.
    pub fn response_code(&self) -> Option<u16> {
        match &self.result {
            Ok(report) => report.response_code,
            Err(error) => error.response_code(),
        }
    }

    /// Message id of a successful delivery (SMTP Message-ID, Slack ts).
    pub fn message_id(&self) -> Option<&str> {
        self.result.as_ref().ok()?.message_id.as_deref()
    }
}

/// Runs delivery attempts under a [`RetryPolicy`].
pub struct Retrier {
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for Retrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrier")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Retrier {
    pub fn new(policy: RetryPolicy, clock: Arc<dyn Clock>) -> Retrier {
        Retrier {
            policy,
            clock,
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    /// Deterministic jitter, for tests.
    pub fn with_seed(policy: RetryPolicy, clock: Arc<dyn Clock>, seed: u64) -> Retrier {
        Retrier {
            policy,
            clock,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Calls `attempt` until it succeeds, fails for good, or the deadline
    /// leaves no room for another try.
    pub async fn run<F, Fut>(&self, mut attempt: F) -> DeliveryOutcome
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<DeliveryReport, SendError>>,
    {
        let start = self.clock.monotonic();
        let mut attempts = 0u32;
        let mut previous = self.policy.initial;
        loop {
            attempts += 1;
            let error = match attempt().await {
                Ok(report) => {
                    return DeliveryOutcome {
                        result: Ok(report),
                        attempts,
                        elapsed: self.clock.monotonic().saturating_sub(start),
                        deadline_exceeded: false,
                    }
                }
                Err(error) => error,
            };
            let finish = |error: SendError, deadline_exceeded: bool| DeliveryOutcome {
                result: Err(error),
                attempts,
                elapsed: self.clock.monotonic().saturating_sub(start),
                deadline_exceeded,
            };
            if !error.is_retryable() {
                // The caller logs the outcome, naming the receiver.
                tracing::debug!(attempts, error = %error, "delivery failed, not retryable");
                return finish(error, false);
            }
            let mut wait = match self.rng.lock() {
                Ok(mut rng) => self.policy.backoff(attempts, previous, &mut *rng),
                Err(_) => self.policy.initial,
            };
            previous = wait;
            if let Some(retry_after) = error.retry_after(self.clock.now()) {
                wait = wait.max(retry_after);
            }
            let elapsed = self.clock.monotonic().saturating_sub(start);
            if elapsed + wait > self.policy.deadline {
                tracing::debug!(attempts, error = %error, "delivery failed, retry deadline reached");
                return finish(error, true);
            }
            tracing::debug!(attempts, wait_ms = wait.as_millis() as u64, error = %error, "delivery failed, retrying");
            self.clock.sleep(wait).await;
        }
    }

    /// Delivers one notification through one receiver.
    pub async fn deliver(
        &self,
        receiver: &dyn Receiver,
        notification: &Notification,
    ) -> DeliveryOutcome {
        self.run(|| receiver.send(notification)).await
    }
}

/// Applies `send_resolved: false` as Alertmanager does: resolved alerts are
/// left out (the common labels and annotations are those of the firing
/// alerts left, as Alertmanager's template data is computed from the alerts
/// it sends), and a notification with no firing alert left is not sent
/// (`None`).
pub fn filter_for_receiver(
    receiver: &dyn Receiver,
    notification: &Notification,
) -> Option<Notification> {
    if receiver.send_resolved() {
        return Some(notification.clone());
    }
    let mut filtered = notification.clone();
    filtered
        .alerts
        .retain(|alert| alert.status == AlertStatus::Firing);
    if filtered.alerts.is_empty() {
        return None;
    }
    filtered.status = AlertStatus::Firing;
    if filtered.alerts.len() < notification.alerts.len() {
        let common_labels = super::pipeline::common(filtered.alerts.iter().map(|a| {
            a.alert
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect()
        }));
        filtered.common_labels = crate::labels::Labels::from_pairs(common_labels);
        filtered.common_annotations =
            super::pipeline::common(filtered.alerts.iter().map(|a| a.alert.annotations.clone()));
    }
    Some(filtered)
}

/// Minimum time between two requests to one Slack webhook.
pub const SLACK_INTERVAL: Duration = Duration::from_secs(1);

struct Pending {
    receiver: Arc<dyn Receiver>,
    notification: Notification,
    reply: oneshot::Sender<DeliveryOutcome>,
}

#[derive(Default)]
struct Lane {
    queue: VecDeque<Pending>,
    running: bool,
    last_request: Option<Duration>,
}

/// Paces batching receivers (Slack) per endpoint: at most one request per
/// `interval`; notifications queued meanwhile go out together as one message
/// (up to the receiver's batch limit; the rest in the next slot).
pub struct Pacer {
    retrier: Arc<Retrier>,
    interval: Duration,
    lanes: Mutex<HashMap<String, Lane>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// Outcome waiting for a queued notification. Errors when the delivery task
/// ended without answering (it panicked or the runtime shut down).
pub type PendingOutcome = oneshot::Receiver<DeliveryOutcome>;

impl Pacer {
    pub fn new(retrier: Arc<Retrier>, interval: Duration) -> Arc<Pacer> {
        Arc::new(Pacer {
            retrier,
            interval,
            lanes: Mutex::new(HashMap::new()),
        })
    }

    /// Queues a notification for a batching receiver and returns where its
    /// outcome will arrive. The queueing itself is synchronous, so a caller
    /// knows the notification is in line when this returns.
    pub fn submit(
        self: &Arc<Self>,
        receiver: Arc<dyn Receiver>,
        notification: Notification,
    ) -> PendingOutcome {
        let (reply, outcome) = oneshot::channel();
        let Some(key) = receiver.as_batching().map(|b| b.pacing_key()) else {
            // Not paced: deliver on its own.
            let retrier = Arc::clone(&self.retrier);
            tokio::spawn(async move {
                let result = retrier.deliver(receiver.as_ref(), &notification).await;
                let _ = reply.send(result);
            });
            return outcome;
        };
        let start_worker = {
            let Ok(mut lanes) = self.lanes.lock() else {
                return outcome;
            };
            let lane = lanes.entry(key.clone()).or_default();
            lane.queue.push_back(Pending {
                receiver,
                notification,
                reply,
            });
            !std::mem::replace(&mut lane.running, true)
        };
        if start_worker {
            let pacer = Arc::clone(self);
            tokio::spawn(async move { pacer.drain(key).await });
        }
        outcome
    }

    /// Takes the next batch: the head of the queue and every following
    /// notification for the same receiver, up to its batch limit.
    fn next_batch(&self, key: &str) -> Option<Vec<Pending>> {
        let mut lanes = self.lanes.lock().ok()?;
        let lane = lanes.get_mut(key)?;
        let Some(head) = lane.queue.pop_front() else {
            lane.running = false;
            return None;
        };
        let limit = head
            .receiver
            .as_batching()
            .map(|b| b.max_batch())
            .unwrap_or(1)
            .max(1);
        let mut batch = vec![head];
        let mut rest = VecDeque::new();
        while let Some(item) = lane.queue.pop_front() {
            if batch.len() < limit && Arc::ptr_eq(&item.receiver, &batch[0].receiver) {
                batch.push(item);
            } else {
                rest.push_back(item);
            }
        }
        lane.queue = rest;
        Some(batch)
    }

    /// Waits until the lane's next request slot is open.
    async fn wait_for_slot(&self, key: &str) {
        let clock = self.retrier.clock();
        let last = self
            .lanes
            .lock()
            .ok()
            .and_then(|lanes| lanes.get(key).and_then(|l| l.last_request));
        if let Some(last) = last {
            let wait = (last + self.interval).saturating_sub(clock.monotonic());
            if !wait.is_zero() {
                clock.sleep(wait).await;
            }
        }
    }

    /// Waits for the next slot and claims it for one request.
    async fn claim_slot(&self, key: &str) {
        self.wait_for_slot(key).await;
        let now = self.retrier.clock().monotonic();
        if let Ok(mut lanes) = self.lanes.lock() {
            if let Some(lane) = lanes.get_mut(key) {
                lane.last_request = Some(now);
            }
        }
    }

    async fn drain(self: Arc<Self>, key: String) {
        loop {
            // Wait for the slot before taking the batch, so that everything
            // queued while waiting goes out in this message.
            self.wait_for_slot(&key).await;
            let Some(batch) = self.next_batch(&key) else {
                return;
            };
            let receiver = Arc::clone(&batch[0].receiver);
            let notifications: Vec<Notification> =
                batch.iter().map(|p| p.notification.clone()).collect();
            let outcome = match receiver.as_batching() {
                Some(batching) => {
                    if notifications.len() > 1 {
                        tracing::info!(
                            pacing_key = %key,
                            notifications = notifications.len(),
                            "merging queued Slack notifications into one message"
                        );
                    }
                    // Retries are paced too: every request claims a slot.
                    self.retrier
                        .run(|| async {
                            self.claim_slot(&key).await;
                            batching.send_batch(&notifications).await
                        })
                        .await
                }
                None => {
                    self.retrier
                        .deliver(receiver.as_ref(), &notifications[0])
                        .await
                }
            };
            for pending in batch {
                let _ = pending.reply.send(outcome.clone());
            }
        }
    }
}

/// The delivery stage the dispatcher calls: applies `send_resolved`, then
/// paces batching receivers and retries everything.
#[derive(Debug, Clone)]
pub struct DeliveryStage {
    retrier: Arc<Retrier>,
    pacer: Arc<Pacer>,
}

impl DeliveryStage {
    pub fn new(retrier: Arc<Retrier>) -> DeliveryStage {
        DeliveryStage {
            pacer: Pacer::new(Arc::clone(&retrier), SLACK_INTERVAL),
            retrier,
        }
    }

    /// Delivers `notification` to `receiver`; `None` when `send_resolved:
    /// false` leaves nothing to send.
    pub async fn deliver(
        &self,
        receiver: Arc<dyn Receiver>,
        notification: &Notification,
    ) -> Option<DeliveryOutcome> {
        let notification = filter_for_receiver(receiver.as_ref(), notification)?;
        if receiver.as_batching().is_none() {
            return Some(self.retrier.deliver(receiver.as_ref(), &notification).await);
        }
        let pending = self.pacer.submit(receiver, notification);
        Some(pending.await.unwrap_or_else(|_| DeliveryOutcome {
            result: Err(SendError::Build {
                integration: "slack",
                reason: "the delivery task stopped before answering (shutdown?)".into(),
            }),
            attempts: 0,
            elapsed: Duration::ZERO,
            deadline_exceeded: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::clock::SimClock;
    use crate::notify::receivers::{BatchReceiver, RetryAfter};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Simulated time whose sleeps advance it.
    fn sim_clock() -> Arc<SimClock> {
        Arc::new(SimClock::new(chrono::DateTime::UNIX_EPOCH).advancing_on_sleep())
    }

    fn retrier(policy: RetryPolicy) -> (Arc<SimClock>, Retrier) {
        let clock = sim_clock();
        let retrier = Retrier::with_seed(policy, clock.clone(), 7);
        (clock, retrier)
    }

    fn http_error(status: u16, retry_after: Option<Duration>) -> SendError {
        SendError::HttpStatus {
            integration: "webhook",
            status,
            body: String::new(),
            retry_after: retry_after.map(RetryAfter::Delay),
        }
    }

    /// A batching receiver that records each request's batch size and time.
    #[derive(Debug)]
    struct FakeBatching {
        clock: Arc<SimClock>,
        max_batch: usize,
        send_resolved: bool,
        requests: Mutex<Vec<(Duration, Vec<Notification>)>>,
    }

    impl FakeBatching {
        fn new(clock: Arc<SimClock>, max_batch: usize, send_resolved: bool) -> Arc<Self> {
            Arc::new(FakeBatching {
                clock,
                max_batch,
                send_resolved,
                requests: Mutex::new(Vec::new()),
            })
        }

        fn requests(&self) -> Vec<(Duration, Vec<Notification>)> {
            self.requests.lock().map(|r| r.clone()).unwrap_or_default()
        }
    }

    #[async_trait]
    impl Receiver for FakeBatching {
        fn integration(&self) -> &'static str {
            "slack"
        }
        fn send_resolved(&self) -> bool {
            self.send_resolved
        }
        async fn send(&self, n: &Notification) -> Result<DeliveryReport, SendError> {
            self.send_batch(std::slice::from_ref(n)).await
        }
        fn as_batching(&self) -> Option<&dyn BatchReceiver> {
            Some(self)
        }
    }

    #[async_trait]
    impl BatchReceiver for FakeBatching {
        fn pacing_key(&self) -> String {
            "fake".into()
        }
        fn max_batch(&self) -> usize {
            self.max_batch
        }
        async fn send_batch(&self, batch: &[Notification]) -> Result<DeliveryReport, SendError> {
            if let Ok(mut requests) = self.requests.lock() {
                requests.push((self.clock.monotonic(), batch.to_vec()));
            }
            Ok(DeliveryReport::default())
        }
    }

    fn notification_with(statuses: &[AlertStatus]) -> Notification {
        use crate::labels::Labels;
        use crate::notify::alert::{Alert, NotifiedAlert};
        let alerts = statuses
            .iter()
            .enumerate()
            .map(|(i, status)| {
                let labels = Labels::from_pairs([("alertname", "A"), ("i", &*i.to_string())]);
                NotifiedAlert {
                    status: *status,
                    fingerprint: crate::notify::alert::Fingerprint::of(&labels),
                    alert: Alert {
                        labels,
                        annotations: Default::default(),
                        starts_at: chrono::DateTime::UNIX_EPOCH,
                        ends_at: None,
                        generator_url: String::new(),
                        cooldown: None,
                    },
                }
            })
            .collect();
        let mut n = crate::notify::fixtures::notification(alerts);
        n.group_key = "{}:{}".into();
        if !statuses.contains(&AlertStatus::Firing) {
            n.status = AlertStatus::Resolved;
        }
        n
    }

    #[tokio::test]
    async fn backlog_beyond_the_batch_limit_goes_out_in_later_slots_without_loss() {
        let clock = sim_clock();
        let fake = FakeBatching::new(clock.clone(), 3, true);
        let retrier = Arc::new(Retrier::with_seed(RetryPolicy::default(), clock.clone(), 1));
        let pacer = Pacer::new(retrier, SLACK_INTERVAL);

        // Seven notifications queued before the lane's task first runs.
        let receiver: Arc<dyn Receiver> = fake.clone();
        let pending: Vec<_> = (0..7)
            .map(|_| pacer.submit(receiver.clone(), notification_with(&[AlertStatus::Firing])))
            .collect();
        for outcome in pending {
            assert!(outcome.await.is_ok_and(|o| o.is_delivered()));
        }

        let requests = fake.requests();
        let sizes: Vec<usize> = requests.iter().map(|(_, batch)| batch.len()).collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        let times: Vec<u64> = requests.iter().map(|(at, _)| at.as_secs()).collect();
        assert_eq!(times, vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn send_resolved_false_drops_resolved_alerts_and_resolved_only_groups() {
        let clock = sim_clock();
        let fake = FakeBatching::new(clock.clone(), 10, false);
        let stage = DeliveryStage::new(Arc::new(Retrier::with_seed(
            RetryPolicy::default(),
            clock,
            1,
        )));
        let receiver: Arc<dyn Receiver> = fake.clone();

        let mixed = stage
            .deliver(
                receiver.clone(),
                &notification_with(&[AlertStatus::Firing, AlertStatus::Resolved]),
            )
            .await;
        let resolved_only = stage
            .deliver(receiver, &notification_with(&[AlertStatus::Resolved]))
            .await;

        assert!(mixed.is_some_and(|o| o.is_delivered()));
        assert!(resolved_only.is_none());
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let sent = &requests[0].1[0];
        assert_eq!(sent.alerts.len(), 1);
        assert_eq!(sent.alerts[0].status, AlertStatus::Firing);
    }

    #[test]
    fn send_resolved_false_takes_the_common_labels_of_the_firing_alerts_left() {
        struct Quiet;
        #[async_trait]
        impl Receiver for Quiet {
            fn integration(&self) -> &'static str {
                "quiet"
            }
            fn send_resolved(&self) -> bool {
                false
            }
            async fn send(&self, _: &Notification) -> Result<DeliveryReport, SendError> {
                Ok(DeliveryReport::default())
            }
        }
        impl std::fmt::Debug for Quiet {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Quiet")
            }
        }
        let mut n = notification_with(&[AlertStatus::Firing, AlertStatus::Resolved]);
        n.common_labels = crate::labels::Labels::from_pairs([("alertname", "A")]);
        let sent = filter_for_receiver(&Quiet, &n).map(|n| n.common_labels);
        assert_eq!(
            sent,
            Some(crate::labels::Labels::from_pairs([
                ("alertname", "A"),
                ("i", "0")
            ]))
        );
    }

    #[tokio::test]
    async fn backoff_doubles_until_the_cap_without_jitter() {
        let policy = RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5),
            deadline: Duration::from_secs(1000),
            jitter: Jitter::None,
        };
        let (clock, retrier) = retrier(policy);
        let calls = AtomicU32::new(0);
        let outcome = retrier
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 4 {
                    Err(http_error(500, None))
                } else {
                    Ok(DeliveryReport::default())
                }
            })
            .await;
        assert!(outcome.is_delivered());
        assert_eq!(outcome.attempts, 5);
        let secs: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![1, 2, 4, 5]);
    }

    #[tokio::test]
    async fn full_jitter_stays_within_the_exponential_bound() {
        let policy = RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            deadline: Duration::from_secs(10_000),
            jitter: Jitter::Full,
        };
        let mut rng = StdRng::seed_from_u64(1);
        for failures in 1..=10 {
            let bound = Duration::from_secs(1u64 << (failures - 1)).min(policy.max);
            let wait = policy.backoff(failures, Duration::ZERO, &mut rng);
            assert!(wait <= bound, "attempt {failures}: {wait:?} > {bound:?}");
        }
    }

    #[tokio::test]
    async fn decorrelated_jitter_stays_between_initial_and_cap() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            deadline: Duration::from_secs(10_000),
            jitter: Jitter::Decorrelated,
        };
        let mut rng = StdRng::seed_from_u64(3);
        let mut previous = policy.initial;
        for failures in 1..=20 {
            let wait = policy.backoff(failures, previous, &mut rng);
            assert!(wait >= policy.initial && wait <= policy.max, "{wait:?}");
            assert!(wait <= previous * 3, "{wait:?} > 3 × {previous:?}");
            previous = wait;
        }
    }

    #[tokio::test]
    async fn retry_after_longer_than_backoff_wins() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            deadline: Duration::from_secs(100),
            jitter: Jitter::Full,
        };
        let (clock, retrier) = retrier(policy);
        let calls = AtomicU32::new(0);
        let outcome = retrier
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(http_error(429, Some(Duration::from_secs(30))))
                } else {
                    Ok(DeliveryReport::default())
                }
            })
            .await;
        assert!(outcome.is_delivered());
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(30)]);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let (clock, retrier) = retrier(RetryPolicy::default());
        let outcome = retrier.run(|| async { Err(http_error(400, None)) }).await;
        assert_eq!(outcome.attempts, 1);
        assert!(!outcome.deadline_exceeded);
        assert_eq!(
            outcome.last_error().and_then(SendError::response_code),
            Some(400)
        );
        assert!(clock.sleeps().is_empty());
    }

    #[tokio::test]
    async fn retries_stop_at_the_deadline_with_the_last_error() {
        let policy = RetryPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(10),
            deadline: Duration::from_secs(35),
            jitter: Jitter::None,
        };
        let (clock, retrier) = retrier(policy);
        let outcome = retrier.run(|| async { Err(http_error(503, None)) }).await;
        // Attempts at 0, 10, 20, 30 s; a fifth would start at 40 s > 35 s.
        assert_eq!(outcome.attempts, 4);
        assert!(outcome.deadline_exceeded);
        assert_eq!(outcome.elapsed, Duration::from_secs(30));
        assert_eq!(clock.monotonic(), Duration::from_secs(30));
    }
}
