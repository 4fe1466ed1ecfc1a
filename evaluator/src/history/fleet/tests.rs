#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use super::*;
use crate::clock::SimClock;
use crate::history::leader::ManualTicks;
use crate::history::Database;

struct Replica {
    fleet: Fleet,
    step: ManualTicks,
    clock: Arc<SimClock>,
    stop: CancellationToken,
}

impl Replica {
    fn start(leases: &Leases, groups: &GroupKeys) -> Replica {
        Replica::start_joining(leases, groups, None)
    }

    /// A replica that joins once `joinable` says so (`None`: at once).
    fn start_joining(
        leases: &Leases,
        groups: &GroupKeys,
        joinable: Option<watch::Receiver<bool>>,
    ) -> Replica {
        let (ticks, step) = Ticks::manual();
        let clock = Arc::new(SimClock::new(chrono::DateTime::UNIX_EPOCH));
        let stop = CancellationToken::new();
        let metrics = FleetMetrics::register(&Registry::new()).unwrap();
        let fleet = Fleet::start(
            leases.clone(),
            FleetConfig::new(DEFAULT_LEASE_DURATION, DEFAULT_HEARTBEAT),
            groups.clone(),
            FleetAround {
                writer: None,
                metrics,
                joinable,
            },
            ticks,
            clock.clone(),
            stop.clone(),
        );
        Replica {
            fleet,
            step,
            clock,
            stop,
        }
    }

    fn owned(&self) -> Vec<String> {
        let view = self.fleet.view();
        view.owned
            .iter()
            .filter(|(_, t)| t.is_valid())
            .map(|(k, _)| k.clone())
            .collect()
    }
}

async fn leases() -> (tempfile::TempDir, Leases) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    (dir, Leases::new(Database::connect(&url).await.unwrap()))
}

type GroupsTx = watch::Sender<Arc<Vec<String>>>;

fn groups(n: usize) -> (GroupsTx, GroupKeys) {
    let names = (0..n)
        .map(|i| group_key(Path::new("rules/r.yaml"), &format!("g{i}")))
        .collect();
    watch::channel(Arc::new(names))
}

/// Steps every replica once, `times` times, the monotonic clocks moving a
/// second per step.
async fn rounds(replicas: &[&Replica], times: usize) {
    for _ in 0..times {
        for r in replicas {
            r.clock.advance(DEFAULT_HEARTBEAT);
            r.step.step().await;
        }
    }
}

/// Every group held by exactly one of `replicas`.
fn assert_partition(replicas: &[&Replica], n: usize) {
    let mut all: Vec<String> = replicas.iter().flat_map(|r| r.owned()).collect();
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!((count, all.len()), (n, n), "each of {n} groups held once");
}

async fn db_time_passes(leases: &Leases, by: Duration) {
    sqlx::query("UPDATE leases SET expires_at = expires_at - $1")
        .bind(i64::try_from(by.as_millis()).unwrap())
        .execute(leases.database().pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn three_members_split_the_groups_and_each_group_has_one_owner() {
    let (_dir, leases) = leases().await;
    let (_tx, g) = groups(30);
    let (a, b, c) = (
        Replica::start(&leases, &g),
        Replica::start(&leases, &g),
        Replica::start(&leases, &g),
    );
    // Round 1: a alone sees itself and takes everything; the others then
    // find those leases live and wait until a gives back their share.
    rounds(&[&a, &b, &c], 3).await;
    assert_partition(&[&a, &b, &c], 30);
    for r in [&a, &b, &c] {
        assert!(!r.owned().is_empty(), "every member got a share");
        assert_eq!(r.fleet.view().members.len(), 3);
        assert_eq!(r.fleet.view().owners.len(), 30);
    }
    for r in [a, b, c] {
        r.stop.cancel();
    }
}

#[tokio::test]
async fn a_member_that_shuts_down_hands_its_groups_over_at_the_next_round() {
    let (_dir, leases) = leases().await;
    let (_tx, g) = groups(20);
    let (a, b) = (Replica::start(&leases, &g), Replica::start(&leases, &g));
    rounds(&[&a, &b], 3).await;
    let a_terms: Vec<Term> = a.fleet.view().owned.values().cloned().collect();
    assert!(!a_terms.is_empty());
    a.stop.cancel();
    a.fleet.join().await;
    assert!(a_terms.iter().all(|t| !t.is_valid()), "revoked at shutdown");
    rounds(&[&b], 1).await;
    assert_partition(&[&b], 20);
    b.stop.cancel();
}

#[tokio::test]
async fn a_dead_members_groups_move_once_its_leases_expire_and_it_stopped_before() {
    let (_dir, leases) = leases().await;
    let (_tx, g) = groups(20);
    let (a, b) = (Replica::start(&leases, &g), Replica::start(&leases, &g));
    rounds(&[&a, &b], 3).await;
    let a_terms: Vec<Term> = a.fleet.view().owned.values().cloned().collect();
    // a freezes: b runs on, a's leases are still live on the database.
    rounds(&[&b], 2).await;
    assert_eq!(b.owned().len(), 20 - a_terms.len(), "nothing taken early");
    // a's clock passes its terms before the database's passes its expiry.
    a.clock.advance(DEFAULT_LEASE_DURATION);
    assert!(a_terms.iter().all(|t| !t.is_valid()), "a stopped first");
    db_time_passes(&leases, DEFAULT_LEASE_DURATION).await;
    rounds(&[&b], 1).await;
    // b's own leases were pushed into the past too; it renewed them first.
    rounds(&[&b], 1).await;
    assert_partition(&[&b], 20);
    // a wakes up: its renewals are refused and it holds nothing.
    rounds(&[&a], 1).await;
    assert!(
        a.owned().is_empty(),
        "b holds them all until it sees a again"
    );
    assert_partition(&[&a, &b], 20);
    a.stop.cancel();
    b.stop.cancel();
}

#[tokio::test]
async fn a_new_member_takes_its_share_within_two_rounds() {
    let (_dir, leases) = leases().await;
    let (_tx, g) = groups(40);
    let a = Replica::start(&leases, &g);
    rounds(&[&a], 1).await;
    assert_eq!(a.owned().len(), 40);
    let b = Replica::start(&leases, &g);
    rounds(&[&b, &a], 2).await;
    assert_partition(&[&a, &b], 40);
    assert!(!b.owned().is_empty());
    a.stop.cancel();
    b.stop.cancel();
}

#[tokio::test]
async fn a_group_removed_by_a_reload_is_given_back() {
    let (_dir, leases) = leases().await;
    let (tx, g) = groups(5);
    let a = Replica::start(&leases, &g);
    rounds(&[&a], 1).await;
    assert_eq!(a.owned().len(), 5);
    tx.send_replace(Arc::new(vec![group_key(Path::new("rules/r.yaml"), "g0")]));
    rounds(&[&a], 1).await;
    assert_eq!(a.owned(), ["rules/r.yaml/g0"]);
    a.stop.cancel();
}

#[tokio::test]
async fn a_replica_joins_only_once_it_may() {
    let (_dir, leases) = leases().await;
    let (_tx, keys) = groups(3);
    let (may_join, joinable) = watch::channel(false);
    let r = Replica::start_joining(&leases, &keys, Some(joinable));
    let round = tokio::time::timeout(Duration::from_millis(200), r.step.step()).await;
    assert!(round.is_err(), "no round runs before it may join");
    assert!(
        leases.live(MEMBER_PREFIX).await.unwrap().is_empty(),
        "not a member before its first scrapes"
    );
    may_join.send_replace(true);
    rounds(&[&r], 1).await;
    assert_eq!(leases.live(MEMBER_PREFIX).await.unwrap().len(), 1);
    assert_eq!(r.owned().len(), 3, "holds every group, alone");
    r.stop.cancel();
    r.fleet.join().await;
}
