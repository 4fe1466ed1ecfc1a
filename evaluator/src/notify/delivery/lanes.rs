//! Delivery lanes: deliveries of one (receiver, integration, group) go out
//! one at a time, in the order the notifier produced them, so a receiver
//! never sees an alert's resolution before its firing notification, even
//! while a receiver that is down is retried.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

/// (receiver, integration, group key): deliveries that must keep their order.
pub(super) type LaneKey = (String, String, String);

#[derive(Debug, Default)]
struct Lane {
    next_ticket: u64,
    serving: u64,
}

/// First-come, first-served turns per lane: a ticket is taken in the
/// delivery loop (so in production order), and a delivery waits until its
/// ticket is served.
#[derive(Debug, Default)]
pub(super) struct Lanes {
    lanes: Mutex<HashMap<LaneKey, Lane>>,
    changed: Notify,
}

impl Lanes {
    pub(super) fn ticket(&self, key: &LaneKey) -> u64 {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let lane = lanes.entry(key.clone()).or_default();
        lane.next_ticket += 1;
        lane.next_ticket - 1
    }

    pub(super) async fn wait_turn(&self, key: &LaneKey, ticket: u64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let serving = {
                let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
                lanes.get(key).map_or(ticket, |l| l.serving)
            };
            if serving >= ticket {
                return;
            }
            changed.await;
        }
    }

    /// Waits for `ticket`'s turn on lane `key`; the turn ends when the
    /// returned guard is dropped.
    pub(super) async fn turn(&self, key: LaneKey, ticket: u64) -> Turn<'_> {
        self.wait_turn(&key, ticket).await;
        Turn { lanes: self, key }
    }

    pub(super) fn done(&self, key: &LaneKey) {
        {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(lane) = lanes.get_mut(key) {
                lane.serving += 1;
                if lane.serving >= lane.next_ticket {
                    lanes.remove(key);
                }
            }
        }
        self.changed.notify_waiters();
    }
}

/// Releases a lane turn when dropped, so an aborted delivery (shutdown)
/// does not block its lane.
pub(super) struct Turn<'a> {
    lanes: &'a Lanes,
    key: LaneKey,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.lanes.done(&self.key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_lane_serves_its_tickets_in_order_whatever_order_they_wait_in() {
        let lanes = Arc::new(Lanes::default());
        let key: LaneKey = ("r".into(), "webhook[0]".into(), "g".into());
        let tickets: Vec<u64> = (0..4).map(|_| lanes.ticket(&key)).collect();
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Started last ticket first.
        for ticket in tickets.into_iter().rev() {
            let (lanes, key, served) = (Arc::clone(&lanes), key.clone(), Arc::clone(&served));
            tasks.push(tokio::spawn(async move {
                lanes.wait_turn(&key, ticket).await;
                served.lock().unwrap().push(ticket);
                tokio::task::yield_now().await;
                lanes.done(&key);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*served.lock().unwrap(), vec![0, 1, 2, 3]);
        assert!(
            lanes.lanes.lock().unwrap().is_empty(),
            "a finished lane is forgotten"
        );
        let other: LaneKey = ("r".into(), "webhook[0]".into(), "other".into());
        let first = lanes.ticket(&other);
        tokio::time::timeout(Duration::from_secs(1), lanes.wait_turn(&other, first))
            .await
            .unwrap();
    }
}
