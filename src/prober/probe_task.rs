//! The task of one probe: runs it ([`super::probe`]), takes the result into the
//! check's state (announcing a transition when `healthy` flips), opens the watch
//! connection after a passing regular probe, carries a confirmation burst on or ends
//! it, and queues the check's next probe. The rules it follows are in
//! [`super::scheduler`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::{Instrument, debug, debug_span, info};

use super::HealthUpdate;
use super::metrics::{ResultLabels, TransitionLabels, TypeLabels, probe_type};
use super::probe::{self, ProbeResult};
use super::scheduler::{Ctx, look_at_watch};
use super::state::Verdict;
use super::table::{Burst, Entry, confirm_gap, jitter, key, lock, next_slot, rescheduled};
use super::watch::Watch;
use crate::model::Check;

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
pub(super) async fn probe(
    ctx: Arc<Ctx>,
    permit: OwnedSemaphorePermit,
    check: Arc<Check>,
    slot: u32,
    generation: u32,
    early: bool,
) {
    let Some(want_watch) = start(&ctx, &check, slot, generation, early) else { return };
    let Some(mut result) = run_counted(&ctx, &check, early).await else { return };
    let confirming = {
        let mut table = lock(&ctx.table);
        let Some(entry) = table.live(slot, generation) else { return };
        let healthy = record(&ctx, entry, &result);
        // A failure that has not yet changed the state: a burst goes on.
        !result.passed && healthy != entry.check.inverted
    };
    let watch = if result.passed && want_watch {
        open_watch(&ctx, &check, &mut result, key(slot, generation)).await
    } else {
        None
    };
    finish(&ctx, &check, slot, generation, confirming, result.passed, watch);
    drop(permit);
}

/// Moves the schedule on as the probe starts: a regular probe sets the next one, an
/// early one is counted. Returns whether a pass may open a watch connection; None
/// when the entry is gone.
fn start(ctx: &Ctx, check: &Check, slot: u32, generation: u32, early: bool) -> Option<bool> {
    let started = Instant::now();
    let mut table = lock(&ctx.table);
    let entry = table.live(slot, generation)?;
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
    Some(!early && run.watch.is_none() && !run.chatty)
}

/// Runs the probe itself, counted in flight and in the duration and result metrics.
/// None when the prober stops first.
async fn run_counted(ctx: &Ctx, check: &Check, early: bool) -> Option<ProbeResult> {
    let kind = probe_type(&check.probe);
    ctx.metrics.in_flight.inc();
    let in_flight = InFlight(ctx);
    let span = debug_span!("probe", check = %check.id, r#type = kind, early);
    let result = tokio::select! {
        biased;
        () = ctx.stop.cancelled() => return None,
        result = probe::run(&check.probe, check.timeout, &ctx.tls, &ctx.guard).instrument(span) => result,
    };
    drop(in_flight);
    ctx.metrics
        .duration
        .get_or_create(&TypeLabels { r#type: kind })
        .observe(result.latency.total_ms / 1000.0);
    ctx.metrics
        .results
        .get_or_create(&ResultLabels { r#type: kind, reason: result.reason.clone() })
        .inc();
    Some(result)
}

/// Ends the probe on the entry: applies a changed interval, carries the burst on
/// (`confirming`) or ends it, keeps or closes the watch connection, looks at news the
/// watch had meanwhile, and queues the next probe.
fn finish(
    ctx: &Ctx,
    check: &Check,
    slot: u32,
    generation: u32,
    confirming: bool,
    passed: bool,
    watch: Option<Watch>,
) {
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
    if !passed {
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
}

/// Applies a probe result to the entry; sends and logs a transition. Returns
/// `healthy` after this result.
fn record(ctx: &Ctx, entry: &mut Entry, result: &ProbeResult) -> bool {
    let now = SystemTime::now();
    let check = &entry.check;
    let mut verdict = Verdict::of(&entry.health);
    let flipped = verdict.record(
        result.passed,
        check.inverted,
        check.failure_threshold,
        check.healthy_threshold,
    );
    let health = &mut entry.health;
    verdict.write_to(health);
    // Written in place: a fresh string per probe would scatter long-lived bytes
    // among the probes' freed buffers and keep those pages resident.
    health.reason.clone_from(&result.reason);
    health.message.clone_from(&result.message);
    if check.inverted {
        let counts = if result.passed { "failure" } else { "success" };
        let _ = write!(health.message, " (inverted: counts as a {counts})");
    }
    health.last_probe_time = Some(now);
    health.latency = Some(result.latency);
    // This result backs the state (it agrees with it, or flipped it).
    let establishes = !health.established && verdict.healthy == (result.passed != check.inverted);
    health.established |= establishes;
    if flipped {
        health.last_transition_time = Some(now);
        let update = HealthUpdate { id: check.id.clone(), health: health.clone() };
        entry.reported = Some(verdict.healthy);
        announce(ctx, update);
    } else if establishes && ctx.announce_established {
        // No transition: the checker quorum learns that this verdict now counts.
        let _ = ctx.updates.send(HealthUpdate { id: check.id.clone(), health: health.clone() });
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
async fn open_watch(ctx: &Ctx, check: &Check, result: &mut ProbeResult, key: u64) -> Option<Watch> {
    let addr: SocketAddr = result.addr?;
    let registry = ctx.watch_registry.as_ref().filter(|_| ctx.watching.load(Ordering::Relaxed))?;
    // The probe that passed was checked already; this keeps the rule local.
    ctx.guard.check(addr.ip()).ok()?;
    // Without a free descriptor slot the check simply runs on its schedule alone.
    let slot = ctx.watch_slots.clone().try_acquire_owned().ok()?;
    let stream = match result.stream.take() {
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
