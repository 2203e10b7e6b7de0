//! The scheduler: when every probed check is probed, and what its watch connection
//! triggers.
//!
//! Kept small on purpose (10,000 checks must fit): a check is one entry of a
//! table ([`super::table`]), not a task. One scheduler task sleeps until the next
//! probe falls due, takes one of the global permits for it and spawns it as a task of
//! its own ([`super::probe_task`]), so probes run concurrently and their buffers exist
//! only while they run. Probes due
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
//!   *confirmation burst* starts: real probes back to back, [`confirm_gap`](super::table::confirm_gap) apart
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::HealthUpdate;
use super::guard::ProbeGuard;
use super::metrics::Metrics;
use super::probe_task::probe;
use super::table::{Burst, Entry, Table, lock};
use super::watch::{Watch, WatchEnd, Watcher};
use crate::model::ObjectRef;

/// What the scheduler, every probe and the prober handle share.
pub(super) struct Ctx {
    pub tls: super::tls::TlsClients,
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
    /// Also send an update when a check's verdict becomes established (checker quorum).
    pub announce_established: bool,
    /// Cancelled at shutdown and when the last prober handle is dropped.
    pub stop: CancellationToken,
    pub table: Mutex<Table>,
    /// Rung when a queue item falls due before the scheduler means to wake.
    pub wake: Notify,
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
                    for entry in table.entries_mut() {
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
    for entry in table.entries_mut() {
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
pub(super) fn look_at_watch(entry: &mut Entry) -> bool {
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
            "health_check_healthy",
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
