//! The tests' one poll-until-deadline loop: a test waits for something
//! another task or process does (a notification, a row, a lease) by
//! polling it against a real deadline, so a broken build fails with a
//! message instead of hanging. Each caller says how long, how often, and
//! what to print when time is up.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Polls `probe` every `every` until it returns `Some`; `None` once `limit`
/// has passed without it.
pub async fn poll<T, F, Fut>(limit: Duration, every: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `done` every `every` until it holds; whether it did within `limit`.
pub async fn until<F, Fut>(limit: Duration, every: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(limit, every, || {
        let done = done();
        async move { done.await.then_some(()) }
    })
    .await
    .is_some()
}

/// [`until`] for a condition that needs no waiting to check.
pub async fn until_sync(limit: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    until(limit, every, || std::future::ready(done())).await
}
