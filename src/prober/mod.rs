//! The health-check prober: probes HTTP, HTTPS and TCP checks on their schedules
//! and reports every change of a check's state.
//!
//! * One task per probed check. Its first probe happens at a random point within
//!   the interval and every later one gets a small jitter, so checks never probe
//!   in lockstep. A global semaphore caps the probes in flight
//!   ([`ProberConfig::max_in_flight`]); a probe's timeout starts once it runs.
//! * Disabled and Calculated checks are not probed (Calculated health is derived
//!   from the children in [`crate::health`]).
//! * `inverted` and `failureThreshold` are applied by the pure [`state`] machine.
//! * Fast failure detection: after a passing probe an idle connection to the
//!   target is held open; when the target closes or resets it (its process died),
//!   a real probe runs at once, out of schedule. The state still changes only by
//!   probe results and the threshold. See [`task`] for the rate rule.
//!
//! # Reasons
//!
//! `LeafHealth::reason` names what the *last probe* observed, before inversion:
//!
//! | result | reason |
//! |---|---|
//! | HTTP(S) response that decided the verdict (pass or fail) | `StatusCode<code>`: `StatusCode200`, `StatusCode301`, `StatusCode503` |
//! | TCP connection established | `Connected` |
//! | status passed, search string missing | `SearchStringNotFound` |
//! | the address is denied by the probe guard ([`guard`]); nothing is connected | `TargetDenied` |
//! | failures | `DnsResolutionFailed`, `ConnectionRefused`, `ConnectionReset`, `ConnectionClosed`, `Timeout`, `TlsHandshakeFailed`, `InvalidHttpResponse`, `HostUnreachable`, `NetworkUnreachable`, `ConnectionFailed`, `ContentDecodingFailed`, `UnsupportedContentEncoding`, `InvalidRequest` |
//! | not probed yet | `Pending` (from [`LeafHealth::initial`]) |
//!
//! `message` says the same for a person (address, phase, timeout, and whether an
//! inverted check counts the result as a success or a failure).
//!
//! Latency fields are phase durations: `connectMs` the TCP connect, `tlsMs` the
//! TLS handshake, `firstByteMs` from sending the request to the response head,
//! `totalMs` the whole probe including name resolution and the body window.
//!
//! # Updates
//!
//! A [`HealthUpdate`] is sent when a check's `healthy` flips, the moment the probe
//! result that flips it is known. When a changed probe definition restarts a check
//! from its initial state and that initial `healthy` differs from the last one sent,
//! an update carrying the initial state is sent too, so replaying the channel into
//! a [`crate::health::HealthMap`] (plus `retain_checks` on model changes) always
//! yields the current state. [`Prober::states`] is authoritative at any moment.

/// The probe body reader (gzip/deflate decoding into the searchString window).
/// Public only so the fuzz targets (`fuzz/`) and their regression test can drive it.
pub mod body;
pub mod guard;
mod metrics;
mod probe;
pub mod state;
mod task;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use body::SEARCH_WINDOW;
pub use probe::{Phase, ProbeError, USER_AGENT_VALUE};

use crate::health::LeafHealth;
use crate::model::{Check, ObjectRef};
use metrics::{CheckLabels, Metrics};
use task::{CheckTask, Ctx, Shared, Slot, lock};

pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

#[derive(Clone, Debug)]
pub struct ProberConfig {
    /// Probes allowed to run at the same time, over all checks.
    pub max_in_flight: usize,
    /// The addresses probes may connect to.
    pub guard: guard::ProbeGuard,
}

impl Default for ProberConfig {
    fn default() -> Self {
        Self { max_in_flight: DEFAULT_MAX_IN_FLIGHT, guard: guard::ProbeGuard::default() }
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
    runtime: tokio::runtime::Handle,
    entries: Mutex<HashMap<ObjectRef, Entry>>,
}

/// One non-Calculated check.
struct Entry {
    check: Arc<Check>,
    shared: Arc<Shared>,
    /// False while the check is disabled (no task).
    probed: bool,
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
        let ctx = Arc::new(Ctx {
            tls: tls::client_config(),
            guard: config.guard,
            permits: Semaphore::new(max_in_flight),
            watch_slots: Arc::new(Semaphore::new(watch_budget(max_in_flight))),
            metrics: Metrics::register(registry),
            updates,
            shutdown,
        });
        let inner = Inner { ctx, runtime: tokio::runtime::Handle::current(), entries: Mutex::new(HashMap::new()) };
        (Prober { inner: Arc::new(inner) }, receiver)
    }

    /// Reconciles the running schedules with this set of checks (all of them, incl.
    /// Calculated and disabled ones, which it skips).
    ///
    /// A check keeps its state (counts, `healthy`, schedule, watch connection) when
    /// only its interval, timeout or failure threshold changed; any change of what
    /// is probed (endpoint, port, path, Host, SNI, search string, type) or of
    /// `inverted` restarts it from its initial state. Checks that disappear, turn
    /// Calculated or get disabled stop at once, a probe in flight included.
    pub fn set_checks(&self, checks: &BTreeMap<ObjectRef, Arc<Check>>) {
        let stale: Vec<ObjectRef> =
            lock(&self.inner.entries).keys().filter(|id| !checks.contains_key(*id)).cloned().collect();
        let removed = stale.iter().map(|id| (id, None));
        self.update_checks(removed.chain(checks.iter().map(|(id, c)| (id, Some(c)))));
    }

    /// Starts, changes or stops the given checks only (None: the check is gone).
    pub fn update_checks<'a>(&self, changes: impl IntoIterator<Item = (&'a ObjectRef, Option<&'a Arc<Check>>)>) {
        let inner = &*self.inner;
        if inner.ctx.shutdown.is_cancelled() {
            return;
        }
        let mut entries = lock(&inner.entries);
        for (id, check) in changes {
            let Some(check) = check.filter(|c| !c.is_calculated()) else {
                if let Some(mut entry) = entries.remove(id) {
                    inner.stop(id, &mut entry);
                }
                continue;
            };
            let Some(entry) = entries.get_mut(id) else {
                let entry = inner.start(check.clone(), None);
                entries.insert(id.clone(), entry);
                continue;
            };
            if *entry.check == **check {
                continue;
            }
            let check = check.clone();
            let same_probing = entry.check.probe == check.probe && entry.check.inverted == check.inverted;
            if entry.probed && same_probing && !check.disabled {
                // Interval, timeout or threshold only: the running task picks it up.
                lock(&entry.shared.slot).check = check.clone();
                entry.shared.changed.notify_one();
                entry.check = check;
            } else {
                inner.stop(id, entry);
                let reported = lock(&entry.shared.slot).reported;
                *entry = inner.start(check, reported);
            }
        }
    }

    /// Live state of one probed check (None for disabled, Calculated or unknown ones).
    pub fn state(&self, id: &ObjectRef) -> Option<LeafHealth> {
        let entries = lock(&self.inner.entries);
        let entry = entries.get(id).filter(|e| e.probed)?;
        Some(lock(&entry.shared.slot).health.clone())
    }

    /// Live state of every probed check (for /status): consecutive counts, last
    /// reason, latency, times. Disabled and Calculated checks are not included.
    pub fn states(&self) -> HashMap<ObjectRef, LeafHealth> {
        lock(&self.inner.entries)
            .iter()
            .filter(|(_, e)| e.probed)
            .map(|(id, e)| (id.clone(), lock(&e.shared.slot).health.clone()))
            .collect()
    }
}

impl Inner {
    /// A new entry from the initial state. `reported` is what the channel last said
    /// about this id; when the initial state contradicts it, an update is sent.
    fn start(&self, check: Arc<Check>, reported: Option<bool>) -> Entry {
        let health = LeafHealth::initial(&check);
        let mut slot = Slot { check: check.clone(), health, reported, stopped: false };
        // A disabled check counts healthy whatever its leaf says: nothing to send
        // until it is enabled again.
        if check.disabled {
            return Entry { check, shared: Arc::new(Shared::new(slot)), probed: false };
        }
        if reported.is_some_and(|r| r != slot.health.healthy) {
            slot.reported = Some(slot.health.healthy);
            task::announce(&self.ctx, HealthUpdate { id: check.id.clone(), health: slot.health.clone() });
        }
        self.ctx.metrics.healthy.get_or_create(&CheckLabels::from(&check.id)).set(i64::from(slot.health.healthy));
        let shared = Arc::new(Shared::new(slot));
        let run = CheckTask { ctx: self.ctx.clone(), shared: shared.clone() };
        self.runtime.spawn(run.run(task::start_offset(check.interval)));
        Entry { check, shared, probed: true }
    }

    /// Stops the entry's task, a probe in flight included; a result it is about to
    /// record is dropped.
    fn stop(&self, id: &ObjectRef, entry: &mut Entry) {
        lock(&entry.shared.slot).stopped = true;
        entry.shared.changed.notify_one();
        if std::mem::take(&mut entry.probed) {
            self.ctx.metrics.healthy.remove(&CheckLabels::from(id));
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for entry in lock(&self.entries).values() {
            lock(&entry.shared.slot).stopped = true;
            entry.shared.changed.notify_one();
        }
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

    /// 10,000 checks must fit: the future of an idle task is most of a check's cost.
    #[tokio::test]
    async fn an_idle_check_task_stays_small() {
        let mut registry = Registry::default();
        let (prober, _updates) = Prober::spawn(ProberConfig::default(), &mut registry, CancellationToken::new());
        let check = Arc::new(Check {
            id: ObjectRef::new("ns", "name"),
            probe: Probe::Tcp { endpoint: Endpoint::Ip([127, 0, 0, 1].into()), port: 9 },
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failure_threshold: 1,
            inverted: false,
            disabled: false,
        });
        let slot = Slot { check: check.clone(), health: LeafHealth::initial(&check), reported: None, stopped: false };
        let task = CheckTask { ctx: prober.inner.ctx.clone(), shared: Arc::new(Shared::new(slot)) };
        let future = task.run(Duration::ZERO);
        assert!(std::mem::size_of_val(&future) <= 1024, "{} bytes", std::mem::size_of_val(&future));
    }

    #[test]
    fn watch_budget_leaves_room_for_probes() {
        let limit = crate::conn::open_files_limit().unwrap();
        assert_eq!(watch_budget(256), limit.saturating_sub(256 + 1024));
    }
}
