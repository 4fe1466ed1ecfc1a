//! The evaluator's one source of time: wall time, monotonic time and
//! sleeping, behind the [`Clock`] trait that every part takes injected
//! (`Arc<dyn Clock>` or `&dyn Clock`). [`SystemClock`] is the real clock;
//! [`SimClock`] is simulated time for tests, which moves only when told, so
//! rule evaluation, scrape timestamps, notification timers, delivery
//! retries and the leader's lease term are tested by stepping time instead
//! of sleeping.
//!
//! Wall time ([`Clock::now`]) is what gets stored, shown and compared with
//! other processes' times; it can jump (NTP, an operator). Monotonic time
//! ([`Clock::monotonic`]) only goes forward and measures durations on this
//! process: deadlines, back-offs, how long something took, and the
//! validity of the leader's lease term, which must not stretch when the
//! wall clock is set back.
//!
//! Timeouts that only bound a call to the outside world (a database round
//! trip, an HTTP request of a receiver) stay on tokio's timer: they measure
//! how long a real peer takes, not the evaluator's schedule.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A sleep of a [`Clock`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Source of the current time, and of waiting for a later one.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time.
    fn now(&self) -> DateTime<Utc>;

    /// Wall-clock time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Time since an arbitrary origin fixed for this clock, on a clock that
    /// never goes back (and keeps running while the process is stopped).
    fn monotonic(&self) -> Duration;

    /// Completes once `duration` has passed on the monotonic clock.
    fn sleep(&self, duration: Duration) -> Sleep<'_>;

    /// Completes once the wall clock reads `at` or later.
    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep<'_>;
}

/// How long the work in flight may run on after the drain signal: the
/// delivery task's in-flight sends and the history writer's last flush.
/// Handed to them at start with a default, and set by whoever shuts the
/// process down (`Running::shutdown(grace)`) before they drain; they read
/// it when the drain reaches them. Clones share one value.
#[derive(Debug, Clone)]
pub struct ShutdownGrace(std::sync::Arc<AtomicU64>);

impl ShutdownGrace {
    pub fn new(grace: Duration) -> ShutdownGrace {
        ShutdownGrace(std::sync::Arc::new(AtomicU64::new(as_millis(grace))))
    }

    /// The grace from now on, for every clone.
    pub fn set(&self, grace: Duration) {
        self.0.store(as_millis(grace), Ordering::Release);
    }

    pub fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Acquire))
    }
}

impl From<Duration> for ShutdownGrace {
    fn from(grace: Duration) -> ShutdownGrace {
        ShutdownGrace::new(grace)
    }
}

fn as_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `t + d`, saturating instead of overflowing on absurd durations.
pub fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The real clock: the system's wall clock, its monotonic clock, and
/// tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The origin of [`SystemClock::monotonic`], shared by every instance so
/// readings of two instances compare.
fn process_origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn monotonic(&self) -> Duration {
        process_origin().elapsed()
    }

    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep<'_> {
        let wait = (at - self.now()).to_std().unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// What a simulated clock reads.
#[derive(Debug, Clone, Copy)]
struct Reading {
    wall: DateTime<Utc>,
    monotonic: Duration,
}

/// What a sleeper waits for.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    Monotonic(Duration),
    Wall(DateTime<Utc>),
}

impl Deadline {
    fn reached(self, now: Reading) -> bool {
        match self {
            Deadline::Monotonic(at) => now.monotonic >= at,
            Deadline::Wall(at) => now.wall >= at,
        }
    }
}

/// Simulated time for tests: it moves only when told ([`SimClock::advance`],
/// [`SimClock::set`]). A sleep completes once the clock has been moved to
/// (or past) its deadline; with [`SimClock::advancing_on_sleep`] a sleep
/// instead moves the clock itself by its duration and returns at once (for
/// code whose only waiting is its own back-off). Every sleep is recorded
/// ([`SimClock::sleeps`]).
#[derive(Debug)]
pub struct SimClock {
    now: watch::Sender<Reading>,
    advance_on_sleep: bool,
    sleeps: Mutex<Vec<Duration>>,
    /// The sleeps not completed yet, by id, with their deadlines.
    waiting: Mutex<Vec<(u64, Deadline)>>,
    next_id: AtomicU64,
}

impl SimClock {
    /// A clock reading `start` (wall time) and zero (monotonic time).
    pub fn new(start: DateTime<Utc>) -> SimClock {
        SimClock {
            now: watch::Sender::new(Reading {
                wall: start,
                monotonic: Duration::ZERO,
            }),
            advance_on_sleep: false,
            sleeps: Mutex::new(Vec::new()),
            waiting: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// The same clock, where each sleep moves time forward by itself (to
    /// its deadline) and then returns, letting other tasks run first as a
    /// real sleep would.
    pub fn advancing_on_sleep(mut self) -> SimClock {
        self.advance_on_sleep = true;
        self
    }

    /// Moves wall and monotonic time forward by `by`, waking the sleepers
    /// whose deadline has come.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| {
            now.wall = add(now.wall, by);
            now.monotonic = now.monotonic.saturating_add(by);
        });
    }

    /// Sets the wall clock to `to` (backwards too, as a wall clock can be
    /// set); monotonic time does not move.
    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_modify(|now| now.wall = to);
    }

    /// Every sleep so far, in order (a wall-clock sleep as the wait it
    /// asked for when it started).
    pub fn sleeps(&self) -> Vec<Duration> {
        lock(&self.sleeps).clone()
    }

    /// How many sleeps are waiting for a time the clock has not reached:
    /// a task parked on this clock again after an [`SimClock::advance`]
    /// shows up here.
    pub fn sleepers(&self) -> usize {
        let now = *self.now.borrow();
        lock(&self.waiting)
            .iter()
            .filter(|(_, deadline)| !deadline.reached(now))
            .count()
    }

    fn reading(&self) -> Reading {
        *self.now.borrow()
    }

    /// Waits until the clock reaches `deadline`.
    fn wait_for(&self, deadline: Deadline) -> Sleep<'_> {
        let mut rx = self.now.subscribe();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.waiting).push((id, deadline));
        let registered = Registered { clock: self, id };
        Box::pin(async move {
            let _registered = registered;
            // The sender lives as long as the clock, which outlives this
            // future, so `changed` does not fail while it waits.
            while !deadline.reached(*rx.borrow_and_update()) {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

/// Removes a sleep from [`SimClock::sleepers`] when it completes or is
/// dropped.
struct Registered<'a> {
    clock: &'a SimClock,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.clock.waiting).retain(|(id, _)| *id != self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        self.reading().wall
    }

    fn monotonic(&self) -> Duration {
        self.reading().monotonic
    }

    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        if self.advance_on_sleep {
            return Box::pin(async move {
                lock(&self.sleeps).push(duration);
                self.advance(duration);
                tokio::task::yield_now().await;
            });
        }
        lock(&self.sleeps).push(duration);
        self.wait_for(Deadline::Monotonic(
            self.monotonic().saturating_add(duration),
        ))
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep<'_> {
        if self.advance_on_sleep {
            return Box::pin(async move {
                let wait = (at - self.now()).to_std().unwrap_or(Duration::ZERO);
                lock(&self.sleeps).push(wait);
                self.advance(wait);
                tokio::task::yield_now().await;
            });
        }
        let wait = (at - self.now()).to_std().unwrap_or(Duration::ZERO);
        lock(&self.sleeps).push(wait);
        self.wait_for(Deadline::Wall(at))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::sync::Arc;

    use futures::FutureExt;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    #[test]
    fn sim_clock_moves_only_when_advanced() {
        let clock = SimClock::new(t(0));
        assert_eq!(clock.now(), t(0));
        assert_eq!(clock.monotonic(), Duration::ZERO);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), add(t(0), Duration::from_secs(90)));
        assert_eq!(clock.now_ms(), 90_000);
        assert_eq!(clock.monotonic(), Duration::from_secs(90));
    }

    #[test]
    fn setting_the_wall_clock_leaves_monotonic_time_alone() {
        let clock = SimClock::new(t(100));
        clock.advance(Duration::from_secs(5));
        clock.set(t(10));
        assert_eq!(clock.now(), t(10));
        assert_eq!(clock.monotonic(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn sleepers_wake_once_the_clock_passes_their_deadline() {
        let clock = Arc::new(SimClock::new(t(0)));
        let mut short = clock.sleep(Duration::from_secs(10));
        let mut wall = clock.sleep_until(t(30));
        assert!((&mut short).now_or_never().is_none());
        assert!((&mut wall).now_or_never().is_none());
        assert_eq!(clock.sleepers(), 2);

        clock.advance(Duration::from_secs(9));
        assert!((&mut short).now_or_never().is_none());
        clock.advance(Duration::from_secs(1));
        assert!((&mut short).now_or_never().is_some());
        assert_eq!(clock.sleepers(), 1);
        assert!((&mut wall).now_or_never().is_none());

        // Wall-clock sleepers follow the wall clock, set or advanced.
        clock.set(t(30));
        assert!((&mut wall).now_or_never().is_some());
        drop(wall);
        assert_eq!(clock.sleepers(), 0);
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_secs(10), Duration::from_secs(30)]
        );
    }

    #[tokio::test]
    async fn a_sleep_already_due_completes_at_once() {
        let clock = SimClock::new(t(50));
        assert!(clock.sleep(Duration::ZERO).now_or_never().is_some());
        assert!(clock.sleep_until(t(20)).now_or_never().is_some());
    }

    #[tokio::test]
    async fn an_advancing_clock_moves_by_each_sleep_and_records_it() {
        let clock = SimClock::new(t(0)).advancing_on_sleep();
        clock.sleep(Duration::from_secs(3)).await;
        clock.sleep_until(t(10)).await;
        assert_eq!(clock.now(), t(10));
        assert_eq!(clock.monotonic(), Duration::from_secs(10));
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_secs(3), Duration::from_secs(7)]
        );
    }

    #[tokio::test]
    async fn the_system_clock_sleeps_on_tokio_time() {
        let clock = SystemClock;
        let before = clock.monotonic();
        clock.sleep(Duration::from_millis(20)).await;
        assert!(clock.monotonic() - before >= Duration::from_millis(20));
        let at = clock.now() + chrono::Duration::milliseconds(20);
        clock.sleep_until(at).await;
        assert!(clock.now() >= at);
    }
}
