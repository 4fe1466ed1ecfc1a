//! Counter cells that a request updates without locked instructions: every
//! thread that records owns a slot, adds to its own cells with a plain load
//! and store, and a scrape sums the cells of all slots.
//!
//! Atomic read-modify-write instructions (`lock xadd`, `lock cmpxchg`) cost
//! tens of cycles each even when no other core touches the line; a request
//! through the layer used to pay about a dozen of them (histogram shard,
//! bucket, sum, count, status counter, lock, gauge). With one writer per
//! cell, a relaxed load followed by a relaxed store is enough, and a reader
//! (the scrape) still sees every cell's value as it was at some recent
//! moment, never a torn one.
//!
//! Slots are handed out per thread from a process-wide pool of [`SLOTS`];
//! a thread gives its slot back when it exits, and the next thread to take it
//! continues from the values the last owner left. A thread that finds the
//! pool empty (more than [`SLOTS`] recording threads alive at once) or whose
//! slot is already gone (recording from another thread-local's destructor)
//! uses the one shared slot, where every update is a real atomic
//! read-modify-write: slower, never wrong.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Slots owned by one thread each. Tokio runs one worker per core, so this
/// covers the worker threads of machines up to this many cores.
pub(crate) const SLOTS: usize = 32;

/// Index of the slot every thread without its own slot shares.
const SHARED: usize = SLOTS;

/// A thread's place in every [`Sharded`] table: either its own slot (plain
/// updates) or the shared one (atomic updates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(usize);

impl Slot {
    /// The calling thread's slot, taken from the pool on first use.
    pub(crate) fn current() -> Self {
        OWNED.try_with(OwnedSlot::index).map_or(Self(SHARED), Self)
    }

    fn exclusive(self) -> bool {
        self.0 < SLOTS
    }

    #[cfg(test)]
    pub(crate) fn shared() -> Self {
        Self(SHARED)
    }
}

/// The slots not held by a live thread.
struct Pool {
    /// Indexes given back by threads that exited.
    free: Vec<usize>,
    /// Indexes from here to [`SLOTS`] were never handed out.
    next: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    next: 0,
});
/// False from the moment the pool is found empty until a slot is given back,
/// so that threads on the shared slot do not take the pool's lock on every
/// request. Only written under the lock; a stale read costs one lock or one
/// more update through the shared slot, never a wrong count.
static POOL_HAS_SLOTS: AtomicBool = AtomicBool::new(true);

thread_local! {
    static OWNED: OwnedSlot = const { OwnedSlot { index: Cell::new(None) } };
}

/// The slot a thread holds, given back to the pool when the thread exits.
struct OwnedSlot {
    index: Cell<Option<usize>>,
}

impl OwnedSlot {
    fn index(&self) -> usize {
        if let Some(index) = self.index.get() {
            return index;
        }
        let index = take_slot();
        // The shared slot is not remembered: a later call may find a free one.
        if index != SHARED {
            self.index.set(Some(index));
        }
        index
    }
}

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        if let Some(index) = self.index.get() {
            // The mutex orders this thread's last plain stores before the
            // next owner's first loads of the same cells.
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            pool.free.push(index);
            POOL_HAS_SLOTS.store(true, Relaxed);
        }
    }
}

fn take_slot() -> usize {
    if !POOL_HAS_SLOTS.load(Relaxed) {
        return SHARED;
    }
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(index) = pool.free.pop() {
        return index;
    }
    if pool.next < SLOTS {
        pool.next += 1;
        return pool.next - 1;
    }
    POOL_HAS_SLOTS.store(false, Relaxed);
    SHARED
}

/// One value per slot of type `T`, each made when its slot first records,
/// plus the shared slot. `T` is small (a pointer to its cells), so that
/// finding a thread's cells is one indexed load.
pub(crate) struct Sharded<T> {
    slots: [OnceLock<T>; SLOTS + 1],
}

impl<T> Default for Sharded<T> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl<T> Sharded<T> {
    /// The value of `slot`, made by `make` on first use.
    pub(crate) fn get(&self, slot: Slot, make: impl FnOnce() -> T) -> &T {
        self.slots[slot.0].get_or_init(make)
    }

    /// The values of every slot that has recorded.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(OnceLock::get)
    }
}

/// Sixteen 8-byte cells on 128 bytes of their own (a cache line pair, as
/// adjacent lines are prefetched together), so that two threads' slots never
/// share a line.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Line([AtomicU64; 16]);

/// A fixed number of `u64` cells (counts, or `f64` bit patterns for sums),
/// written through a [`Slot`].
pub(crate) struct Cells {
    lines: Box<[Line]>,
}

impl Cells {
    pub(crate) fn new(len: usize) -> Self {
        let lines = len.div_ceil(16);
        Self {
            lines: (0..lines).map(|_| Line::default()).collect(),
        }
    }

    fn cell(&self, index: usize) -> &AtomicU64 {
        &self.lines[index / 16].0[index % 16]
    }

    /// Adds `n` to the count in cell `index`.
    pub(crate) fn add(&self, slot: Slot, index: usize, n: u64) {
        let cell = self.cell(index);
        if slot.exclusive() {
            cell.store(cell.load(Relaxed).wrapping_add(n), Relaxed);
        } else {
            cell.fetch_add(n, Relaxed);
        }
    }

    /// Adds `v` to the `f64` sum kept in cell `index`.
    pub(crate) fn add_f64(&self, slot: Slot, index: usize, v: f64) {
        let cell = self.cell(index);
        let plus = |bits: u64| (f64::from_bits(bits) + v).to_bits();
        if slot.exclusive() {
            cell.store(plus(cell.load(Relaxed)), Relaxed);
        } else {
            // The closure always returns Some, so this cannot fail.
            let _ = cell.fetch_update(Relaxed, Relaxed, |bits| Some(plus(bits)));
        }
    }

    /// The count in cell `index`.
    pub(crate) fn get(&self, index: usize) -> u64 {
        self.cell(index).load(Relaxed)
    }

    /// The `f64` sum in cell `index`.
    pub(crate) fn get_f64(&self, index: usize) -> f64 {
        f64::from_bits(self.cell(index).load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_slot() {
        assert_eq!(Slot::current(), Slot::current());
    }

    #[test]
    fn live_threads_hold_different_slots() {
        let barrier = std::sync::Barrier::new(2);
        let (first, second) = std::thread::scope(|scope| {
            let take = || {
                let slot = Slot::current();
                // Both threads are alive when each takes its slot.
                barrier.wait();
                slot
            };
            let first = scope.spawn(take);
            let second = scope.spawn(take);
            (first.join(), second.join())
        });
        match (first, second) {
            (Ok(a), Ok(b)) => assert!(a != b || a == Slot::shared(), "{a:?} {b:?}"),
            _ => panic!("a slot-taking thread panicked"),
        }
    }

    #[test]
    fn every_update_from_many_threads_is_counted() {
        // More threads than slots: some share the atomic slot, and slots of
        // exited threads are reused; the totals must still be exact.
        let cells = Sharded::<Cells>::default();
        std::thread::scope(|scope| {
            for _ in 0..3 * SLOTS {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        let slot = Slot::current();
                        let mine = cells.get(slot, || Cells::new(2));
                        mine.add(slot, 0, 1);
                        mine.add_f64(slot, 1, 0.5);
                    }
                });
            }
        });
        let count: u64 = cells.iter().map(|c| c.get(0)).sum();
        let sum: f64 = cells.iter().map(|c| c.get_f64(1)).sum();
        assert_eq!(count, 3 * SLOTS as u64 * 1_000);
        assert!((sum - 0.5 * count as f64).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn the_shared_slot_adds_atomically() {
        let cells = Cells::new(20);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        cells.add(Slot::shared(), 17, 1);
                        cells.add_f64(Slot::shared(), 18, 1.0);
                    }
                });
            }
        });
        assert_eq!(cells.get(17), 40_000);
        assert_eq!(cells.get_f64(18), 40_000.0);
    }
}
