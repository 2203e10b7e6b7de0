//! The table of every non-Calculated check and the queue of their due probes.
//!
//! A check is one [`Entry`] of the [`Table`], not a task (10,000 checks must fit): its
//! definition, its last state and, while it is probed, its [`Run`] (schedule, burst,
//! watch connection, probe in flight). The queue holds a [`Due`] item per probed check
//! that is not being probed; items a changed schedule left behind are recognised when
//! they come up. Also here: when an entry's probes fall due (first-probe offset,
//! jitter, the regular grid, the gap of a confirmation burst).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hashbrown::HashTable;
use rand::Rng;
use rustc_hash::FxBuildHasher;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::watch::Watch;
use crate::health::LeafHealth;
use crate::model::{Check, ObjectRef};

/// Locks `m` even when a panic poisoned it: the table stays usable for the rest.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One non-Calculated check, probed or not.
pub(super) struct Entry {
    /// The current definition: interval, timeout and threshold may change under a running schedule.
    pub check: Arc<Check>,
    pub health: LeafHealth,
    /// The last `healthy` sent on the update channel, if any was ever sent.
    pub reported: Option<bool>,
    /// False while the check is disabled: never scheduled.
    pub probed: bool,
    /// Tells this entry from earlier ones of the same slot (queue items, probes, watches).
    generation: u32,
    pub run: Run,
}

/// The schedule and connections of a probed check.
pub(super) struct Run {
    /// The grid regular probes keep to: `base + k * interval`.
    pub base: Instant,
    pub next_regular: Instant,
    pub last_regular: Option<Instant>,
    pub burst: Option<Burst>,
    pub last_burst: Option<Instant>,
    pub watch: Option<Watch>,
    /// Set once a target proved to stream to idle connections: not watched again.
    pub chatty: bool,
    /// The watch connection had news while a probe ran: looked at when it ends.
    pub watch_news: bool,
    /// The probe dispatched and not finished (maybe still waiting for a permit).
    pub probe: Option<AbortHandle>,
}

/// A confirmation burst in progress (see the module docs).
#[derive(Clone, Copy)]
pub(super) struct Burst {
    /// When its next probe is due.
    pub next: Instant,
    /// Probes it has run so far.
    pub probes: u32,
}

impl Run {
    fn new(first_probe_in: Duration) -> Self {
        let base = Instant::now() + first_probe_in;
        Self {
            base,
            next_regular: base,
            last_regular: None,
            burst: None,
            last_burst: None,
            watch: None,
            chatty: false,
            watch_news: false,
            probe: None,
        }
    }

    /// When the next probe of either kind is due.
    pub fn wake(&self) -> Instant {
        self.burst.map_or(self.next_regular, |b| b.next.min(self.next_regular))
    }
}

impl Entry {
    /// A new entry from the initial state; probed unless the check is disabled.
    pub fn new(check: Arc<Check>, reported: Option<bool>) -> Self {
        let health = LeafHealth::initial(&check);
        let probed = !check.disabled;
        let first_probe_in = if probed { start_offset(check.interval) } else { Duration::ZERO };
        Self { check, health, reported, probed, generation: 0, run: Run::new(first_probe_in) }
    }

    /// Ends the schedule, a probe in flight included (a result it is about to
    /// record is dropped: the entry changes generation or goes), and closes the watch.
    pub fn halt(&mut self) {
        if let Some(probe) = self.run.probe.take() {
            probe.abort();
        }
        self.run.watch = None;
        self.probed = false;
    }

    /// The interval, timeout or threshold changed (nothing that is probed): the
    /// schedule keeps its phase. A probe in flight applies it when it ends.
    pub fn redefine(&mut self, check: Arc<Check>) -> bool {
        let moved = check.interval != self.check.interval && self.run.probe.is_none();
        if moved {
            self.run.base = rescheduled(check.interval, self.run.last_regular);
            self.run.next_regular = self.run.base;
        }
        self.check = check;
        moved
    }
}

/// A probe falling due, in the scheduler's queue. Items left behind by a changed
/// schedule are recognised when they come up (their time or generation differs).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Due {
    pub at: Instant,
    pub slot: u32,
    pub generation: u32,
}

/// Every non-Calculated check, and the queue of the probed ones.
#[derive(Default)]
pub(super) struct Table {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Slot numbers, found by their entry's id (no second copy of the id).
    index: HashTable<u32>,
    pub queue: BinaryHeap<Reverse<Due>>,
    /// When the scheduler sleeps until (None: nothing queued).
    pub wake_at: Option<Instant>,
    generations: u32,
}

impl Table {
    fn hash(id: &ObjectRef) -> u64 {
        use std::hash::BuildHasher;
        FxBuildHasher.hash_one(id)
    }

    pub fn find(&self, id: &ObjectRef) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(Self::hash(id), |&s| {
                slots[s as usize].as_ref().is_some_and(|e| e.check.id == *id)
            })
            .copied()
    }

    pub fn get(&self, slot: u32) -> &Entry {
        self.slots[slot as usize].as_ref().expect("an indexed slot holds an entry")
    }

    pub fn get_mut(&mut self, slot: u32) -> &mut Entry {
        self.slots[slot as usize].as_mut().expect("an indexed slot holds an entry")
    }

    /// The entry of `slot` if it is still the one of `generation`.
    pub fn live(&mut self, slot: u32, generation: u32) -> Option<&mut Entry> {
        self.slots.get_mut(slot as usize)?.as_mut().filter(|e| e.generation == generation)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten()
    }

    pub fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.slots.iter_mut().flatten()
    }

    fn next_generation(&mut self) -> u32 {
        self.generations = self.generations.wrapping_add(1);
        self.generations
    }

    /// Adds an entry (its check must not be in the table) and queues its first probe.
    pub fn insert(&mut self, mut entry: Entry) -> bool {
        entry.generation = self.next_generation();
        let hash = Self::hash(&entry.check.id);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 checks")
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, slot, |&s| {
            Self::hash(&slots[s as usize].as_ref().expect("indexed").check.id)
        });
        self.queue_next(slot)
    }

    /// Replaces the entry of `slot` (already halted) and queues its first probe.
    pub fn replace(&mut self, slot: u32, mut entry: Entry) -> bool {
        entry.generation = self.next_generation();
        self.slots[slot as usize] = Some(entry);
        self.queue_next(slot)
    }

    /// Takes the entry of `slot` out of the table.
    pub fn remove(&mut self, slot: u32) -> Entry {
        let hash = Self::hash(&self.get(slot).check.id);
        if let Ok(found) = self.index.find_entry(hash, |&s| s == slot) {
            found.remove();
        }
        self.free.push(slot);
        self.slots[slot as usize].take().expect("an indexed slot holds an entry")
    }

    /// Queues the next probe of `slot` when it is probed and idle. True when it
    /// falls due before the scheduler means to wake (ring [`super::scheduler::Ctx::wake`]).
    pub fn queue_next(&mut self, slot: u32) -> bool {
        let entry = self.get(slot);
        if !entry.probed || entry.run.probe.is_some() {
            return false;
        }
        let at = entry.run.wake();
        self.queue.push(Reverse(Due { at, slot, generation: entry.generation }));
        self.wake_at.is_none_or(|wake| at < wake)
    }
}

// ---------------------------------------------------------------- when probes fall due

/// A uniformly random point within `interval`: spreads the first probes of many checks.
pub(super) fn start_offset(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.0..1.0))
}

/// Up to 5% of the interval (at most 500 ms), so schedules do not drift into lockstep.
pub(super) fn jitter(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.0..0.05)).min(Duration::from_millis(500))
}

/// The spacing of the probes of a confirmation burst: a tenth of the interval,
/// at least 10 ms and at most 50 ms.
pub(super) fn confirm_gap(interval: Duration) -> Duration {
    (interval / 10).clamp(Duration::from_millis(10), Duration::from_millis(50))
}

/// The first slot after `now` on the grid `base + k * interval` (slots missed while
/// waiting for a permit are skipped, not caught up).
pub(super) fn next_slot(base: Instant, interval: Duration, now: Instant) -> Instant {
    let next = base + interval;
    if next > now {
        return next;
    }
    let behind = (now - next).as_nanos() / interval.as_nanos().max(1);
    next + interval * (u32::try_from(behind).unwrap_or(u32::MAX - 1) + 1)
}

/// The next regular probe after the interval changed: the phase the check already
/// has is kept, so schedules stay spread.
pub(super) fn rescheduled(interval: Duration, last_regular: Option<Instant>) -> Instant {
    let now = Instant::now();
    match last_regular {
        Some(at) => (at + interval).max(now),
        None => now + start_offset(interval),
    }
}

/// A watch connection's key in the epoll set: its slot and generation.
pub(super) fn key(slot: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_slot_skips_missed_slots() {
        let t0 = Instant::now();
        let i = Duration::from_secs(1);
        assert_eq!(next_slot(t0, i, t0), t0 + i);
        assert_eq!(next_slot(t0, i, t0 + Duration::from_millis(999)), t0 + i);
        assert_eq!(next_slot(t0, i, t0 + i), t0 + 2 * i);
        assert_eq!(next_slot(t0, i, t0 + Duration::from_millis(3500)), t0 + 4 * i);
    }

    #[test]
    fn offsets_stay_within_bounds() {
        let i = Duration::from_secs(30);
        for _ in 0..1000 {
            assert!(start_offset(i) < i);
            assert!(jitter(i) <= Duration::from_millis(500));
            assert!(jitter(Duration::from_millis(100)) <= Duration::from_millis(5));
        }
    }

    #[test]
    fn confirm_gap_is_a_tenth_of_the_interval_within_10_to_50_ms() {
        let ms = Duration::from_millis;
        assert_eq!(confirm_gap(ms(100)), ms(10));
        assert_eq!(confirm_gap(ms(50)), ms(10));
        assert_eq!(confirm_gap(ms(200)), ms(20));
        assert_eq!(confirm_gap(ms(1000)), ms(50));
        assert_eq!(confirm_gap(Duration::from_secs(30)), ms(50));
    }

    #[test]
    fn keys_carry_slot_and_generation() {
        let k = key(7, u32::MAX);
        assert_eq!((k as u32, (k >> 32) as u32), (7, u32::MAX));
    }
}
