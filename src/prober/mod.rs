//! The health-check prober: probes HTTP, HTTPS, TCP and GRPC checks on their
//! schedules and reports every change of a check's state.
//!
//! * One scheduler task for all checks ([`scheduler`]) over a table of them
//!   ([`table`]); each probe runs as a task of its own ([`probe_task`]). A check's
//!   first probe happens at a random point within the interval and every later one
//!   gets a small jitter, so checks never probe in lockstep.
//!   A global semaphore caps the probes in flight
//!   ([`ProberConfig::max_in_flight`]); a probe's timeout starts once it runs.
//! * Disabled and Calculated checks are not probed (Calculated health is derived
//!   from the children in [`crate::health`]).
//! * `inverted`, `failureThreshold` and `healthyThreshold` are applied by the pure
//!   [`state`] machine.
//! * Fast failure detection: after a passing probe an idle connection to the
//!   target is held open; when the target closes or resets it (its process died),
//!   a real probe runs at once, out of schedule. The state still changes only by
//!   probe results and the threshold. See [`scheduler`] for the rate rule.
//!
//! # Reasons
//!
//! `LeafHealth::reason` names what the *last probe* observed, before inversion:
//!
//! | result | reason |
//! |---|---|
//! | HTTP(S) response that decided the verdict (pass or fail) | `StatusCode<code>`: `StatusCode200`, `StatusCode301`, `StatusCode503`; a 2xx or 3xx passes, or one of the check's `expectedStatuses` (the message of a failure names them) |
//! | TCP connection established | `Connected` |
//! | GRPC: the health service answers `SERVING` ([`grpc`]) | `Serving` |
//! | status passed, search string missing | `SearchStringNotFound` |
//! | HTTPS with `minCertificateValidity`: the served (leaf) certificate expires sooner; the message says when (RFC 3339 and how long from now). Checked right after the handshake, before the request; nothing else about the certificate is validated | `CertificateExpiring` |
//! | HTTPS with `minCertificateValidity`: no certificate, or one whose expiry cannot be read | `CertificateUnreadable` |
//! | GRPC: `NOT_SERVING` | `NotServing` |
//! | GRPC: `SERVICE_UNKNOWN`, or the call fails `NOT_FOUND` (the service is not registered) | `ServiceUnknown` |
//! | GRPC: `UNKNOWN` | `ServingStatusUnknown` |
//! | GRPC: the server has no health service (`UNIMPLEMENTED`) | `Unimplemented` |
//! | GRPC: any other gRPC status (`DEADLINE_EXCEEDED` is `Timeout`) | `GrpcStatus<Code>`: `GrpcStatusUnavailable`, `GrpcStatusPermissionDenied` |
//! | the address is denied by the probe guard ([`guard`]); nothing is connected | `TargetDenied` |
//! | failures | `DnsResolutionFailed`, `ConnectionRefused`, `ConnectionReset`, `ConnectionClosed`, `Timeout`, `TlsHandshakeFailed`, `InvalidHttpResponse`, `HostUnreachable`, `NetworkUnreachable`, `ConnectionFailed`, `ContentDecodingFailed`, `UnsupportedContentEncoding`, `InvalidRequest` |
//! | not probed yet | `Pending` (from [`LeafHealth::initial`]) |
//!
//! `message` says the same for a person (address, phase, timeout, and whether an
//! inverted check counts the result as a success or a failure).
//!
//! Latency fields are phase durations: `connectMs` the TCP connect, `tlsMs` the
//! TLS handshake, `firstByteMs` from sending the request to the response head,
//! `totalMs` the whole probe including name resolution and the body window (GRPC:
//! `firstByteMs` from the HTTP/2 handshake to the complete answer).
//!
//! # Updates
//!
//! A [`HealthUpdate`] is sent when a check's `healthy` flips, the moment the probe
//! result that flips it is known (and, with `announce_established`, when the first
//! result that backs its state is known). When a changed probe definition restarts a check
//! from its initial state and that initial `healthy` differs from the last one sent,
//! an update carrying the initial state is sent too, so replaying the channel into
//! a [`crate::health::HealthMap`] (plus `retain_checks` on model changes) always
//! yields the current state. [`Prober::states`] is authoritative at any moment.

/// The probe body reader (gzip/deflate decoding into the searchString window).
/// Public only so the fuzz targets (`fuzz/`) and their regression test can drive it.
pub mod body;
mod grpc;
pub mod guard;
mod metrics;
mod probe;
mod probe_task;
mod scheduler;
pub mod state;
mod table;
mod tls;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use prometheus_client::registry::Registry;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use body::SEARCH_WINDOW;
pub use probe::{Phase, ProbeError, USER_AGENT_VALUE};

use crate::health::LeafHealth;
use crate::model::{Check, ObjectRef};
use metrics::Metrics;
use scheduler::{Ctx, HealthyGauges};
use table::{Entry, Table, lock};

pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

#[derive(Clone, Debug)]
pub struct ProberConfig {
    /// Probes allowed to run at the same time, over all checks.
    pub max_in_flight: usize,
    /// The addresses probes may connect to.
    pub guard: guard::ProbeGuard,
    /// Send an update also when a check's verdict becomes established without a
    /// transition (its first backing probe result): the checker quorum needs it.
    pub announce_established: bool,
}

impl Default for ProberConfig {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            guard: guard::ProbeGuard::default(),
            announce_established: false,
        }
    }
}

/// A change of one check's `healthy` (see the module docs for when it is sent).
#[derive(Clone, Debug, PartialEq)]
pub struct HealthUpdate {
    pub id: ObjectRef,
    pub health: LeafHealth,
}

/// Handle to the running prober; cheap to clone. Dropping the last handle stops
/// every probe, as does cancelling the shutdown token.
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Ctx>,
}

impl Prober {
    /// Starts the prober on the current Tokio runtime and registers its metrics.
    /// Checks are probed once given to [`Prober::set_checks`].
    ///
    /// The open-files limit is read here to size the watch connections (see
    /// `watch_budget`): raise `RLIMIT_NOFILE` before calling this.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn(
        config: ProberConfig,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> (Prober, mpsc::UnboundedReceiver<HealthUpdate>) {
        let (updates, receiver) = mpsc::unbounded_channel();
        let max_in_flight = config.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        let (watcher, watch_registry) = match watch::Watcher::new() {
            Ok((watcher, registry)) => (Some(watcher), Some(registry)),
            Err(error) => {
                tracing::warn!(%error, "no watch connections: checks run on their schedules alone");
                (None, None)
            }
        };
        let ctx = Arc::new(Ctx {
            tls: tls::TlsClients::new(),
            guard: config.guard,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            watch_slots: Arc::new(Semaphore::new(watch_budget(max_in_flight))),
            watching: AtomicBool::new(watch_registry.is_some()),
            watch_registry,
            metrics: Metrics::register(registry),
            updates,
            announce_established: config.announce_established,
            stop: shutdown.child_token(),
            table: std::sync::Mutex::new(Table::default()),
            wake: Notify::new(),
        });
        registry.register_collector(Box::new(HealthyGauges(Arc::downgrade(&ctx))));
        tokio::spawn(scheduler::schedule(ctx.clone(), watcher));
        (Prober { inner: Arc::new(Inner { ctx }) }, receiver)
    }

    /// Reconciles the running schedules with this set of checks (all of them, incl.
    /// Calculated and disabled ones, which it skips).
    ///
    /// A check keeps its state (counts, `healthy`, schedule, watch connection) when
    /// only its interval, timeout or thresholds changed; any change of what
    /// is probed (endpoint, port, path, Host, SNI, search string, type) or of
    /// `inverted` restarts it from its initial state. Checks that disappear, turn
    /// Calculated or get disabled stop at once, a probe in flight included.
    pub fn set_checks(&self, checks: &BTreeMap<ObjectRef, Arc<Check>>) {
        let stale: Vec<ObjectRef> = lock(&self.inner.ctx.table)
            .entries()
            .map(|e| &e.check.id)
            .filter(|id| !checks.contains_key(*id))
            .cloned()
            .collect();
        let removed = stale.iter().map(|id| (id, None));
        self.update_checks(removed.chain(checks.iter().map(|(id, c)| (id, Some(c)))));
    }

    /// Starts, changes or stops the given checks only (None: the check is gone).
    pub fn update_checks<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a ObjectRef, Option<&'a Arc<Check>>)>,
    ) {
        let ctx = &*self.inner.ctx;
        if ctx.stop.is_cancelled() {
            return;
        }
        let mut ring = false;
        let mut table = lock(&ctx.table);
        for (id, check) in changes {
            let slot = table.find(id);
            let Some(check) = check.filter(|c| c.is_probed()) else {
                if let Some(slot) = slot {
                    table.remove(slot).halt();
                }
                continue;
            };
            let Some(slot) = slot else {
                ring |= table.insert(start(ctx, check.clone(), None));
                continue;
            };
            let entry = table.get_mut(slot);
            if *entry.check == **check {
                continue;
            }
            let same_probing =
                entry.check.probe == check.probe && entry.check.inverted == check.inverted;
            if entry.probed && same_probing && !check.disabled {
                // Interval, timeout or threshold only: the schedule picks it up.
                if entry.redefine(check.clone()) {
                    ring |= table.queue_next(slot);
                }
            } else {
                entry.halt();
                let reported = entry.reported;
                ring |= table.replace(slot, start(ctx, check.clone(), reported));
            }
        }
        drop(table);
        if ring {
            ctx.wake.notify_one();
        }
    }

    /// Live state of one probed check (None for disabled, Calculated or unknown ones).
    pub fn state(&self, id: &ObjectRef) -> Option<LeafHealth> {
        let table = lock(&self.inner.ctx.table);
        let entry = table.get(table.find(id)?);
        entry.probed.then(|| entry.health.clone())
    }

    /// Live state of every probed check (for /status): consecutive counts, last
    /// reason, latency, times. Disabled and Calculated checks are not included.
    pub fn states(&self) -> HashMap<ObjectRef, LeafHealth> {
        lock(&self.inner.ctx.table)
            .entries()
            .filter(|e| e.probed)
            .map(|e| (e.check.id.clone(), e.health.clone()))
            .collect()
    }
}

/// A new entry from the initial state. `reported` is what the channel last said
/// about this id; when the initial state contradicts it, an update is sent.
fn start(ctx: &Ctx, check: Arc<Check>, reported: Option<bool>) -> Entry {
    let mut entry = Entry::new(check, reported);
    // A disabled check counts healthy whatever its leaf says: nothing to send
    // until it is enabled again.
    if entry.probed && reported.is_some_and(|r| r != entry.health.healthy) {
        entry.reported = Some(entry.health.healthy);
        probe_task::announce(
            ctx,
            HealthUpdate { id: entry.check.id.clone(), health: entry.health.clone() },
        );
    }
    entry
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ctx.stop.cancel();
    }
}

/// How many watch connections may be open: each holds a file descriptor, and
/// probes must never fail for lack of one. Leaves room for every probe in flight
/// plus 1024 for the rest of the process (DNS sockets, API connections, files).
fn watch_budget(max_in_flight: usize) -> usize {
    let limit = crate::conn::open_files_limit().unwrap_or(1024);
    limit.saturating_sub(max_in_flight.saturating_add(1024)).min(Semaphore::MAX_PERMITS)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{Endpoint, Probe};

    /// 10,000 checks must fit: between probes a check is its table entry (plus a
    /// queue item and the strings of its last result).
    #[test]
    fn a_check_entry_stays_small() {
        let check = Arc::new(Check {
            id: ObjectRef::new("ns", "name"),
            probe: Probe::Tcp { endpoint: Endpoint::Ip([127, 0, 0, 1].into()), port: 9 },
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failure_threshold: 1,
            healthy_threshold: 1,
            inverted: false,
            disabled: false,
        });
        let entry = Entry::new(check, None);
        assert!(std::mem::size_of_val(&entry) <= 384, "{} bytes", std::mem::size_of_val(&entry));
    }

    #[test]
    fn watch_budget_leaves_room_for_probes() {
        let limit = crate::conn::open_files_limit().unwrap();
        assert_eq!(watch_budget(256), limit.saturating_sub(256 + 1024));
    }
}
