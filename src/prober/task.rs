//! The task of one probed check: its schedule, its probes, its watch connection.
//!
//! Kept small on purpose (one per check, 10,000 checks must fit): the probe
//! future is boxed so its buffers exist only while a probe runs, and between
//! probes the task holds a few instants, its `Arc`s and at most one idle socket.
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
//! * Burst probes are counted by `failoverdns_probe_early_total`.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::gauge::Gauge;
use rand::Rng;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, info};

use super::HealthUpdate;
use super::guard::ProbeGuard;
use super::metrics::{CheckLabels, Metrics, ResultLabels, TransitionLabels, TypeLabels, probe_type};
use super::probe::{self, Outcome};
use super::state::Verdict;
use crate::health::LeafHealth;
use crate::model::Check;

/// What every check task shares.
pub(super) struct Ctx {
    pub tls: Arc<ClientConfig>,
    pub guard: ProbeGuard,
    /// The global cap on probes in flight.
    pub permits: Semaphore,
    /// File descriptors the watch connections may use (see `watch_budget`).
    pub watch_slots: Arc<Semaphore>,
    pub metrics: Metrics,
    pub updates: mpsc::UnboundedSender<HealthUpdate>,
    pub shutdown: CancellationToken,
}

/// The live state of one check, shared between its task and the prober handle.
pub(super) struct Slot {
    /// The current definition: interval, timeout and threshold may change under a running task.
    pub check: Arc<Check>,
    pub health: LeafHealth,
    /// The last `healthy` sent on the update channel, if any was ever sent.
    pub reported: Option<bool>,
    /// Set (under the lock) when the task must end: a late result is dropped.
    pub stopped: bool,
}

/// A slot plus the bell the prober rings after changing it (a new definition, or
/// `stopped`). Cheaper per check than a watch channel and a child token.
pub(super) struct Shared {
    pub slot: Mutex<Slot>,
    pub changed: Notify,
}

impl Shared {
    pub fn new(slot: Slot) -> Self {
        Self { slot: Mutex::new(slot), changed: Notify::new() }
    }

    /// The current definition, or None once stopped.
    fn current(&self) -> Option<Arc<Check>> {
        let slot = lock(&self.slot);
        (!slot.stopped).then(|| slot.check.clone())
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

/// An idle connection to the target, held to notice it going away.
struct Watch {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    gauge: Gauge,
    /// Unsolicited bytes received so far.
    chatter: usize,
}

/// Unsolicited bytes a watch connection may bring before it is given up: a target
/// that streams to every connection would otherwise be read for as long as it lives.
const WATCH_CHATTER: usize = 4096;

/// How a watch connection ended.
enum WatchEnd {
    /// Closed or reset by the target (or its host): a real probe should confirm.
    Lost(io::Result<()>),
    /// The target keeps sending: dropped, nothing learned about its health.
    Chatty,
}

impl Watch {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, gauge: &Gauge) -> Self {
        gauge.inc();
        Self { stream, _slot: slot, gauge: gauge.clone(), chatter: 0 }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Resolves when the watch connection ends (EOF, error, or too much unsolicited
/// data); never without one.
async fn watch_lost(watch: &mut Option<Watch>) -> WatchEnd {
    let Some(watch) = watch else { return std::future::pending().await };
    loop {
        if let Err(e) = watch.stream.readable().await {
            return WatchEnd::Lost(Err(e));
        }
        // Unsolicited bytes (a banner, a 408 before closing) are read and dropped.
        let mut scratch = [0u8; 256];
        match watch.stream.try_read(&mut scratch) {
            Ok(0) => return WatchEnd::Lost(Ok(())),
            Ok(n) => {
                watch.chatter += n;
                if watch.chatter > WATCH_CHATTER {
                    return WatchEnd::Chatty;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return WatchEnd::Lost(Err(e)),
        }
    }
}

pub(super) struct CheckTask {
    pub ctx: Arc<Ctx>,
    pub shared: Arc<Shared>,
}

/// A confirmation burst in progress (see the module docs).
#[derive(Clone, Copy)]
struct Burst {
    /// When its next probe is due.
    next: Instant,
    /// Probes it has run so far.
    probes: u32,
}

impl CheckTask {
    /// Probes on schedule until stopped or shut down; a lost watch connection
    /// starts a confirmation burst (rules in the module docs).
    pub async fn run(self, first_probe_in: Duration) {
        let CheckTask { ctx, shared } = self;
        let Some(mut check) = shared.current() else { return };
        let kind = probe_type(&check.probe);
        let mut base = Instant::now() + first_probe_in;
        let mut next_regular = base;
        let mut last_regular: Option<Instant> = None;
        let mut burst: Option<Burst> = None;
        let mut last_burst: Option<Instant> = None;
        let mut watch: Option<Watch> = None;
        // Set once a target proved to stream to idle connections: not watched again.
        let mut chatty = false;
        loop {
            let wake = burst.map_or(next_regular, |b| b.next.min(next_regular));
            let early = tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => return,
                () = shared.changed.notified() => {
                    let Some(new) = shared.current() else { return };
                    if new.interval != check.interval {
                        base = rescheduled(new.interval, last_regular);
                        next_regular = base;
                    }
                    check = new;
                    continue;
                }
                () = tokio::time::sleep_until(wake) => burst.is_some_and(|b| b.next < next_regular),
                end = watch_lost(&mut watch) => {
                    watch = None;
                    let WatchEnd::Lost(lost) = end else {
                        debug!(check = %check.id, "watch connection dropped: the target keeps sending unsolicited data");
                        chatty = true;
                        continue;
                    };
                    let now = Instant::now();
                    let allowed = last_burst.map_or(now, |at| (at + check.interval / 2).max(now));
                    debug!(check = %check.id, error = lost.err().map(tracing::field::display), early_probe = allowed < next_regular, "watch connection lost");
                    // When the next regular probe is due first, it opens the burst.
                    burst.get_or_insert(Burst { next: allowed, probes: 0 });
                    continue;
                }
            };

            let permit = tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => return,
                permit = ctx.permits.acquire() => permit.expect("the probe semaphore is never closed"),
            };
            let started = Instant::now();
            if early {
                ctx.metrics.early_probes.inc();
            } else {
                last_regular = Some(started);
                base = next_slot(base, check.interval, started);
                next_regular = base + jitter(check.interval);
            }
            // A regular probe due during a burst counts as one of its probes.
            if let Some(b) = &mut burst {
                if b.probes == 0 {
                    last_burst = Some(started);
                }
                b.probes += 1;
            }
            // Boxed: a probe's large future (buffers, TLS state) exists only while it runs.
            let want_watch = !early && watch.is_none() && !chatty;
            let Some(done) = Box::pin(probe_and_record(&ctx, &shared, &check, kind, early, want_watch)).await else {
                return;
            };
            if done.check.interval != check.interval {
                base = rescheduled(done.check.interval, last_regular);
                next_regular = base;
            }
            check = done.check;
            burst = burst.filter(|b| done.confirming && b.probes < check.failure_threshold.max(1)).map(|b| Burst {
                next: Instant::now() + confirm_gap(check.interval),
                probes: b.probes,
            });
            if !done.passed {
                watch = None;
            } else if done.watch.is_some() {
                watch = done.watch;
            }
            drop(permit);
        }
    }
}

struct Probed {
    /// The definition as of now (interval, timeout, threshold may have changed).
    check: Arc<Check>,
    passed: bool,
    /// The probe failed and the state has not yet changed to what failures lead
    /// to (unhealthy, or healthy for an inverted check): a burst goes on.
    confirming: bool,
    /// A newly opened watch connection.
    watch: Option<Watch>,
}

/// Runs one probe, records its result and, after a pass, opens a watch connection
/// when `want_watch`. None when the task must end.
async fn probe_and_record(
    ctx: &Ctx,
    shared: &Shared,
    check: &Check,
    kind: &'static str,
    early: bool,
    want_watch: bool,
) -> Option<Probed> {
    ctx.metrics.in_flight.inc();
    let span = debug_span!("probe", check = %check.id, r#type = kind, early);
    let probe = probe::run(&check.probe, check.timeout, &ctx.tls, &ctx.guard).instrument(span);
    let mut probe = std::pin::pin!(probe);
    let outcome = loop {
        tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => break None,
            // A stop ends the probe at once; a new definition is read by `record`.
            () = shared.changed.notified() => if lock(&shared.slot).stopped { break None },
            outcome = &mut probe => break Some(outcome),
        }
    };
    ctx.metrics.in_flight.dec();
    let mut outcome = outcome?;
    ctx.metrics.duration.get_or_create(&TypeLabels { r#type: kind }).observe(outcome.latency.total_ms / 1000.0);
    ctx.metrics.results.get_or_create(&ResultLabels { r#type: kind, reason: outcome.reason.clone() }).inc();
    let (check, healthy) = record(ctx, &shared.slot, &outcome)?;
    let confirming = !outcome.passed && healthy != check.inverted;
    let watch = if outcome.passed && want_watch { open_watch(ctx, &check, &mut outcome).await } else { None };
    Some(Probed { check, passed: outcome.passed, confirming, watch })
}

/// Applies a probe result to the shared state; sends and logs a transition.
/// Returns the current definition and `healthy` after this result, or None when
/// the task was stopped meanwhile (the result is dropped).
fn record(ctx: &Ctx, slot: &Mutex<Slot>, outcome: &Outcome) -> Option<(Arc<Check>, bool)> {
    let now = SystemTime::now();
    let mut slot = lock(slot);
    if slot.stopped {
        return None;
    }
    let check = slot.check.clone();
    let mut verdict = Verdict::of(&slot.health);
    let flipped = verdict.record(outcome.passed, check.inverted, check.failure_threshold);
    let health = &mut slot.health;
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
        slot.reported = Some(verdict.healthy);
        announce(ctx, update);
    }
    Some((check, verdict.healthy))
}

/// Sends a transition on the channel, counts it and logs it once.
pub(super) fn announce(ctx: &Ctx, update: HealthUpdate) {
    let h = &update.health;
    ctx.metrics.healthy.get_or_create(&CheckLabels::from(&update.id)).set(i64::from(h.healthy));
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
async fn open_watch(ctx: &Ctx, check: &Check, outcome: &mut Outcome) -> Option<Watch> {
    let addr: SocketAddr = outcome.addr?;
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
    Some(Watch::new(stream, slot, &ctx.metrics.watch_connections))
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
}
