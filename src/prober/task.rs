//! The schedule of every probed check, its probes and its watch connection.
//!
//! Kept small on purpose (10,000 checks must fit): a check is one entry of a
//! table, not a task. One scheduler task sleeps until the next probe falls due,
//! takes one of the global permits for it and spawns it as a task of its own, so
//! probes run concurrently and their buffers exist only while they run. Probes due
//! while every permit is taken wait in the queue, in the order they fell due, as
//! nothing more than their queue item. Between probes a check holds its entry, a
//! queue item and at most one idle socket, and that socket waits in an epoll set
//! of its own ([`super::watch`]).
//!
//! # Watch connection and confirmation bursts
//!
//! * After a passing *regular* probe an idle TCP connection to the probed address
//!   is held open (a TCP check keeps its probe's own connection). Only a regular
//!   passing probe opens it; no other probe ever does.
//! * When the target closes or resets it (EOF or an error: its process died), a
//!   *confirmation burst* starts: real probes back to back, [`confirm_gap`] apart
//!   (a tenth of the interval, clamped to 10–50 ms), for as long as each result is
//!   a failure that has not yet changed the state, and at most `failureThreshold`
//!   probes. So a dead target is declared unhealthy within about
//!   `(failureThreshold - 1) × gap` plus the probes' own time, whatever the
//!   interval. The burst ends at the first passing result, at the result that flips
//!   the state, or after `failureThreshold` probes; the regular schedule then goes
//!   on as before (it never moved: a regular probe that falls due during a burst
//!   runs as usual and counts as one of the burst's probes).
//! * The state changes only through probe results and the threshold, exactly as
//!   for regular probes: the lost connection alone never changes anything.
//! * Anti-hammering: a burst may start at most once per half interval (its first
//!   probe waits until half an interval after the previous burst started; when the
//!   next regular probe is due sooner, that probe opens the burst instead). As the
//!   watch is reopened only by a regular passing probe, a target that closes idle
//!   connections (even right after accepting them) costs at most one extra probe
//!   per interval: its burst's first probe passes and ends the burst.
//! * News on the watch connection while a probe of the check runs is looked at
//!   when that probe ends (a failed probe closes the watch anyway).
//! * Burst probes are counted by `failoverdns_probe_early_total`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use hashbrown::HashTable;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use rand::Rng;
use rustc_hash::FxBuildHasher;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, info, warn};

use super::HealthUpdate;
use super::guard::ProbeGuard;
use super::metrics::{Metrics, ResultLabels, TransitionLabels, TypeLabels, probe_type};
use super::probe::{self, Outcome};
use super::state::Verdict;
use super::watch::{Watch, WatchEnd, Watcher};
use crate::health::LeafHealth;
use crate::model::{Check, ObjectRef};

/// What the scheduler, every probe and the prober handle share.
pub(super) struct Ctx {
    pub tls: Arc<ClientConfig>,
    pub guard: ProbeGuard,
    /// The global cap on probes in flight.
    pub permits: Arc<Semaphore>,
    /// File descriptors the watch connections may use (see `watch_budget`).
    pub watch_slots: Arc<Semaphore>,
    /// Adds watch connections to the scheduler's epoll set; None without one.
    pub watch_registry: Option<mio::Registry>,
    /// Cleared when the scheduler can no longer wait on the set: no new watches.
    pub watching: AtomicBool,
    pub metrics: Metrics,
    pub updates: mpsc::UnboundedSender<HealthUpdate>,
    /// Cancelled at shutdown and when the last prober handle is dropped.
    pub stop: CancellationToken,
    pub table: Mutex<Table>,
    /// Rung when a queue item falls due before the scheduler means to wake.
    pub wake: Notify,
}

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
    run: Run,
}

/// The schedule and connections of a probed check.
struct Run {
    /// The grid regular probes keep to: `base + k * interval`.
    base: Instant,
    next_regular: Instant,
    last_regular: Option<Instant>,
    burst: Option<Burst>,
    last_burst: Option<Instant>,
    watch: Option<Watch>,
    /// Set once a target proved to stream to idle connections: not watched again.
    chatty: bool,
    /// The watch connection had news while a probe ran: looked at when it ends.
    watch_news: bool,
    /// The probe dispatched and not finished (maybe still waiting for a permit).
    probe: Option<AbortHandle>,
}

/// A confirmation burst in progress (see the module docs).
#[derive(Clone, Copy)]
struct Burst {
    /// When its next probe is due.
    next: Instant,
    /// Probes it has run so far.
    probes: u32,
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
    fn wake(&self) -> Instant {
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
struct Due {
    at: Instant,
    slot: u32,
    generation: u32,
}

/// Every non-Calculated check, and the queue of the probed ones.
#[derive(Default)]
pub(super) struct Table {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Slot numbers, found by their entry's id (no second copy of the id).
    index: HashTable<u32>,
    queue: BinaryHeap<Reverse<Due>>,
    /// When the scheduler sleeps until (None: nothing queued).
    wake_at: Option<Instant>,
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
    fn live(&mut self, slot: u32, generation: u32) -> Option<&mut Entry> {
        self.slots.get_mut(slot as usize)?.as_mut().filter(|e| e.generation == generation)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten()
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
    /// falls due before the scheduler means to wake (ring [`Ctx::wake`]).
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

/// A uniformly random point within `interval`: spreads the first probes of many checks.
pub(super) fn start_offset(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.0..1.0))
}

/// Up to 5% of the interval (at most 500 ms), so schedules do not drift into lockstep.
fn jitter(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.0..0.05)).min(Duration::from_millis(500))
}

/// The spacing of the probes of a confirmation burst: a tenth of the interval,
/// at least 10 ms and at most 50 ms.
fn confirm_gap(interval: Duration) -> Duration {
    (interval / 10).clamp(Duration::from_millis(10), Duration::from_millis(50))
}

/// The first slot after `now` on the grid `base + k * interval` (slots missed while
/// waiting for a permit are skipped, not caught up).
fn next_slot(base: Instant, interval: Duration, now: Instant) -> Instant {
    let next = base + interval;
    if next > now {
        return next;
    }
    let behind = (now - next).as_nanos() / interval.as_nanos().max(1);
    next + interval * (u32::try_from(behind).unwrap_or(u32::MAX - 1) + 1)
}

/// The next regular probe after the interval changed: the phase the check already
/// has is kept, so schedules stay spread.
fn rescheduled(interval: Duration, last_regular: Option<Instant>) -> Instant {
    let now = Instant::now();
    match last_regular {
        Some(at) => (at + interval).max(now),
        None => now + start_offset(interval),
    }
}

/// A watch connection's key in the epoll set: its slot and generation.
fn key(slot: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(slot)
}

/// Sleeps until the next probe falls due and spawns it; looks at watch
/// connections with news. Ends when the prober stops, closing every watch.
pub(super) async fn schedule(ctx: Arc<Ctx>, mut watcher: Option<Watcher>) {
    let mut news = Vec::new();
    // A permit awaited while every one was taken, for the next probe due.
    let mut spare = None;
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    loop {
        let (wake_at, starved) = {
            let mut table = lock(&ctx.table);
            let starved = dispatch(&ctx, &mut table, &mut spare);
            for key in news.drain(..) {
                watch_news(&mut table, key);
            }
            // Starved, the scheduler wakes for a permit, not for the clock.
            table.wake_at = if starved {
                Some(Instant::now())
            } else {
                table.queue.peek().map(|Reverse(due)| due.at)
            };
            (table.wake_at, starved)
        };
        if let Some(at) = wake_at {
            sleep.as_mut().reset(at);
        }
        // The watch set comes before the clock: at thousands of probes a second the
        // next one is often due already, and news of a dead target must not wait
        // behind them (every turn dispatches what is due anyway).
        tokio::select! {
            biased;
            () = ctx.stop.cancelled() => break,
            ready = watch_ready(&mut watcher, &mut news) => {
                if let Err(error) = ready {
                    warn!(%error, "cannot wait on the watch connections any more; checks run on their schedules alone");
                    ctx.watching.store(false, Ordering::Relaxed);
                    watcher = None;
                    let mut table = lock(&ctx.table);
                    for entry in table.slots.iter_mut().flatten() {
                        entry.run.watch = None;
                    }
                }
            }
            permit = ctx.permits.clone().acquire_owned(), if starved => {
                spare = Some(permit.expect("the probe semaphore is never closed"));
            }
            () = ctx.wake.notified() => {}
            () = &mut sleep, if wake_at.is_some() && !starved => {}
        }
    }
    let mut table = lock(&ctx.table);
    for entry in table.slots.iter_mut().flatten() {
        if let Some(probe) = entry.run.probe.take() {
            probe.abort();
        }
        entry.run.watch = None;
    }
}

async fn watch_ready(watcher: &mut Option<Watcher>, news: &mut Vec<u64>) -> std::io::Result<()> {
    match watcher {
        Some(watcher) => watcher.ready(news).await,
        None => std::future::pending().await,
    }
}

/// Spawns every probe due by now, each with a permit. True when one is left
/// waiting because every permit is taken.
fn dispatch(ctx: &Arc<Ctx>, table: &mut Table, spare: &mut Option<OwnedSemaphorePermit>) -> bool {
    let now = Instant::now();
    while let Some(&Reverse(due)) = table.queue.peek() {
        if due.at > now {
            break;
        }
        let Some(entry) = table.live(due.slot, due.generation) else {
            table.queue.pop();
            continue;
        };
        let run = &mut entry.run;
        if !entry.probed || run.probe.is_some() || run.wake() != due.at {
            table.queue.pop();
            continue;
        }
        let Some(permit) = spare.take().or_else(|| ctx.permits.clone().try_acquire_owned().ok())
        else {
            return true;
        };
        let early = run.burst.is_some_and(|b| b.next < run.next_regular);
        let check = entry.check.clone();
        let probe =
            tokio::spawn(probe(ctx.clone(), permit, check, due.slot, due.generation, early));
        run.probe = Some(probe.abort_handle());
        table.queue.pop();
    }
    // Not kept idle while nothing is due.
    *spare = None;
    false
}

/// The watch connection of `key` had news: looked at now, or when the probe running ends.
fn watch_news(table: &mut Table, key: u64) {
    let (slot, generation) = (key as u32, (key >> 32) as u32);
    let Some(entry) = table.live(slot, generation) else { return };
    if entry.run.probe.is_some() {
        entry.run.watch_news = true;
    } else if look_at_watch(entry) {
        table.queue_next(slot);
    }
}

/// Reads the watch connection; when it is gone, a burst starts (module docs).
/// True when the schedule changed.
fn look_at_watch(entry: &mut Entry) -> bool {
    let (check, run) = (&entry.check, &mut entry.run);
    let Some(end) = run.watch.as_mut().and_then(Watch::ended) else { return false };
    run.watch = None;
    let WatchEnd::Lost(lost) = end else {
        debug!(check = %check.id, "watch connection dropped: the target keeps sending unsolicited data");
        run.chatty = true;
        return false;
    };
    let now = Instant::now();
    let allowed = run.last_burst.map_or(now, |at| (at + check.interval / 2).max(now));
    debug!(check = %check.id, error = lost.err().map(tracing::field::display), early_probe = allowed < run.next_regular, "watch connection lost");
    // When the next regular probe is due first, it opens the burst.
    run.burst.get_or_insert(Burst { next: allowed, probes: 0 });
    true
}

/// Counts a probe in flight for as long as it lives (an aborted one included).
struct InFlight<'a>(&'a Ctx);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}

/// One probe of the check in `slot` (`check`: its definition when the probe fell
/// due): probes, records the result, opens a watch connection after a regular
/// pass, and queues the next probe. `permit` is held until then.
async fn probe(
    ctx: Arc<Ctx>,
    permit: OwnedSemaphorePermit,
    check: Arc<Check>,
    slot: u32,
    generation: u32,
    early: bool,
) {
    let started = Instant::now();
    let want_watch = {
        let mut table = lock(&ctx.table);
        let Some(entry) = table.live(slot, generation) else { return };
        let run = &mut entry.run;
        if early {
            ctx.metrics.early_probes.inc();
        } else {
            run.last_regular = Some(started);
            run.base = next_slot(run.base, check.interval, started);
            run.next_regular = run.base + jitter(check.interval);
        }
        // A regular probe due during a burst counts as one of its probes.
        if let Some(b) = &mut run.burst {
            if b.probes == 0 {
                run.last_burst = Some(started);
            }
            b.probes += 1;
        }
        !early && run.watch.is_none() && !run.chatty
    };

    let kind = probe_type(&check.probe);
    ctx.metrics.in_flight.inc();
    let in_flight = InFlight(&ctx);
    let span = debug_span!("probe", check = %check.id, r#type = kind, early);
    let outcome = tokio::select! {
        biased;
        () = ctx.stop.cancelled() => return,
        outcome = probe::run(&check.probe, check.timeout, &ctx.tls, &ctx.guard).instrument(span) => outcome,
    };
    drop(in_flight);
    let mut outcome = outcome;
    ctx.metrics
        .duration
        .get_or_create(&TypeLabels { r#type: kind })
        .observe(outcome.latency.total_ms / 1000.0);
    ctx.metrics
        .results
        .get_or_create(&ResultLabels { r#type: kind, reason: outcome.reason.clone() })
        .inc();
    let confirming = {
        let mut table = lock(&ctx.table);
        let Some(entry) = table.live(slot, generation) else { return };
        let healthy = record(&ctx, entry, &outcome);
        // A failure that has not yet changed the state: a burst goes on.
        !outcome.passed && healthy != entry.check.inverted
    };
    let watch = if outcome.passed && want_watch {
        open_watch(&ctx, &check, &mut outcome, key(slot, generation)).await
    } else {
        None
    };

    let mut table = lock(&ctx.table);
    let Some(entry) = table.live(slot, generation) else { return };
    let (current, run) = (&entry.check, &mut entry.run);
    if current.interval != check.interval {
        run.base = rescheduled(current.interval, run.last_regular);
        run.next_regular = run.base;
    }
    let now = Instant::now();
    run.burst = run
        .burst
        .filter(|b| confirming && b.probes < current.failure_threshold.max(1))
        .map(|b| Burst { next: now + confirm_gap(current.interval), probes: b.probes });
    if !outcome.passed {
        run.watch = None;
    } else if watch.is_some() {
        run.watch = watch;
    }
    run.probe = None;
    if std::mem::take(&mut run.watch_news) {
        look_at_watch(entry);
    }
    if table.queue_next(slot) {
        ctx.wake.notify_one();
    }
    drop(table);
    drop(permit);
}

/// Applies a probe result to the entry; sends and logs a transition. Returns
/// `healthy` after this result.
fn record(ctx: &Ctx, entry: &mut Entry, outcome: &Outcome) -> bool {
    let now = SystemTime::now();
    let check = &entry.check;
    let mut verdict = Verdict::of(&entry.health);
    let flipped = verdict.record(outcome.passed, check.inverted, check.failure_threshold);
    let health = &mut entry.health;
    verdict.write_to(health);
    // Written in place: a fresh string per probe would scatter long-lived bytes
    // among the probes' freed buffers and keep those pages resident.
    health.reason.clone_from(&outcome.reason);
    health.message.clone_from(&outcome.message);
    if check.inverted {
        let counts = if outcome.passed { "failure" } else { "success" };
        let _ = write!(health.message, " (inverted: counts as a {counts})");
    }
    health.last_probe_time = Some(now);
    health.latency = Some(outcome.latency);
    if flipped {
        health.last_transition_time = Some(now);
        let update = HealthUpdate { id: check.id.clone(), health: health.clone() };
        entry.reported = Some(verdict.healthy);
        announce(ctx, update);
    }
    verdict.healthy
}

/// Sends a transition on the channel, counts it and logs it once.
pub(super) fn announce(ctx: &Ctx, update: HealthUpdate) {
    let h = &update.health;
    ctx.metrics
        .transitions
        .get_or_create(&TransitionLabels { healthy: if h.healthy { "true" } else { "false" } })
        .inc();
    info!(
        check = %update.id,
        healthy = h.healthy,
        reason = %h.reason,
        message = %h.message,
        consecutive_successes = h.consecutive_successes,
        consecutive_failures = h.consecutive_failures,
        latency_ms = h.latency.map(|l| l.total_ms),
        "health check changed state"
    );
    // A closed receiver means the consumer is gone (shutting down): nothing to do.
    let _ = ctx.updates.send(update);
}

/// Opens (or, for TCP checks, adopts) the watch connection after a passing probe.
async fn open_watch(ctx: &Ctx, check: &Check, outcome: &mut Outcome, key: u64) -> Option<Watch> {
    let addr: SocketAddr = outcome.addr?;
    let registry = ctx.watch_registry.as_ref().filter(|_| ctx.watching.load(Ordering::Relaxed))?;
    // The probe that passed was checked already; this keeps the rule local.
    ctx.guard.check(addr.ip()).ok()?;
    // Without a free descriptor slot the check simply runs on its schedule alone.
    let slot = ctx.watch_slots.clone().try_acquire_owned().ok()?;
    let stream = match outcome.stream.take() {
        Some(stream) => stream,
        None => match tokio::time::timeout(check.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                debug!(check = %check.id, %addr, error = %e, "cannot open the watch connection");
                return None;
            }
            Err(_) => return None,
        },
    };
    Watch::new(stream, registry, key, slot, &ctx.metrics.watch_connections)
        .inspect_err(
            |e| debug!(check = %check.id, %addr, error = %e, "cannot watch the connection"),
        )
        .ok()
}

/// `failoverdns_health_check_healthy`, read from the table at scrape time: no
/// label set or gauge is kept per check.
#[derive(Debug)]
pub(super) struct HealthyGauges(pub Weak<Ctx>);

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

impl Collector for HealthyGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        // Copied out first: encoding 10,000 label sets must not hold up the probes.
        let states: Vec<(ObjectRef, bool)> = self.0.upgrade().map_or_else(Vec::new, |ctx| {
            lock(&ctx.table)
                .entries()
                .filter(|e| e.probed)
                .map(|e| (e.check.id.clone(), e.health.healthy))
                .collect()
        });
        let mut family = encoder.encode_descriptor(
            "failoverdns_health_check_healthy",
            "State of each probed health check (1 healthy, 0 unhealthy)",
            None,
            MetricType::Gauge,
        )?;
        for (id, healthy) in &states {
            let labels = [("namespace", &*id.namespace), ("name", &*id.name)];
            ConstGauge::new(i64::from(*healthy)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
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
