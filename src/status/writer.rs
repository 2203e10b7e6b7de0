//! Cluster mode's one writer. Replicas elect a leader with a `coordination.k8s.io`
//! Lease; every replica probes and serves, only the leader writes status and Events.
//!
//! The sink tells the writer what the watches show of each object's status and
//! which objects may read differently. The leader decides their status purely from
//! the published view (and, once a second, every HealthCheck's: a reason can change
//! without a transition) and writes only where the object shows something else —
//! server-side apply on the status subresource, at most `--status-qps` writes a
//! second, a later decision replacing a queued one, each write bounded by
//! [`WRITE_TIMEOUT`]. Objects deleted or out of scope are never written: [`LastSeen`]
//! only holds what the watches show.
//!
//! The budget is shared fairly. One object's status is written at most once per
//! `--status-min-interval`: an object that needs a write sooner waits, as a key with
//! a time, and is decided again when its turn comes (the latest state wins, and a
//! flap and back writes nothing). Waiting objects hold no place in the queue, which
//! holds each object at most once, in order, so a few flapping objects cannot take
//! the budget of the others; objects that never showed a status (a bulk creation)
//! are written before updates and refreshes of the others. Events likewise: at most
//! one per object and interval, the changes in between told by the next one. While a
//! flapping check holds an object (see [`status`]), its transition Events wait until
//! it is steady and its verdict alone is written only every
//! [`HELD_SLOWDOWN`] × `--status-min-interval`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::election;
use arc_swap::ArcSwap;
use futures::stream::FuturesUnordered;
use futures::{Future, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::model::{Kind, ObjectRef};
use crate::prober::Prober;
use crate::resources::{FailoverRecord, HealthCheck};
use crate::status::{
    self, DesiredStatus, LastSeen, ObjectKey, PendingEvent, SeenObject, ShownStatus, Status,
    StatusNews, Tell,
};
use crate::view::View;

/// The field manager of every status write, whichever replica leads.
const MANAGER: &str = "failover-dns";
/// Objects decided in one go (a new leader decides them all).
const CHUNK: usize = 1000;
/// The longest one status patch or Event write may take before it counts as failed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Writes in flight at once.
const IN_FLIGHT: usize = 8;
/// Events waiting beyond this are dropped (counted): statuses matter more.
const MAX_QUEUED_EVENTS: usize = 10_000;
/// While a flapping check holds an object, its status is rewritten for a verdict change
/// alone at most every this many `--status-min-interval`s (30 s by default: a check
/// and the two records of a failover pair, 6 writes a minute).
pub const HELD_SLOWDOWN: u32 = 6;

#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub lease_name: String,
    pub lease_namespace: String,
    pub lease_duration: Duration,
    pub identity: String,
    pub refresh: Duration,
    pub qps: u32,
    pub burst: u32,
    /// `--status-min-interval`: one object's status and Events at most this often.
    pub min_interval: Duration,
}

/// How often an object may, or must, be written.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// `--status-refresh`: probe times and the like.
    refresh: Duration,
    /// `--status-min-interval`.
    min_interval: Duration,
    /// The verdict of an object held by a flapping check.
    held_refresh: Duration,
}

impl Timing {
    fn of(config: &WriterConfig) -> Self {
        let min_interval = config.min_interval;
        Timing {
            refresh: config.refresh,
            min_interval,
            held_refresh: (min_interval * HELD_SLOWDOWN).min(config.refresh.max(min_interval)),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    reason: &'static str,
    result: &'static str,
}

/// What the writer reports on `/metrics`.
#[derive(Clone, Default)]
pub struct WriterMetrics {
    leader: Gauge,
    election_errors: Counter,
    queued: Gauge,
    writes: Family<WriteLabels, Counter>,
    events: Family<EventLabels, Counter>,
}

impl WriterMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "leader",
            "1 while this replica holds the Lease and writes status",
            m.leader.clone(),
        );
        registry.register(
            "leader_election_errors",
            "Failed reads and writes of the Lease (a missing namespace, no permission, no answer)",
            m.election_errors.clone(),
        );
        registry.register(
            "status_queued",
            "Status writes waiting for the rate limit",
            m.queued.clone(),
        );
        registry.register("status_writes", "Status writes by kind and result", m.writes.clone());
        registry.register("events", "Events by reason and result", m.events.clone());
        m
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the sink stopped telling the status writer what changed")]
    SinkGone,
}

/// Campaigns for the Lease until `shutdown`, writing status and Events while it
/// holds it; releases the Lease on the way out so another replica takes over at once.
/// Keeps up with what the sink says all along, leading or not.
pub async fn run(
    client: Client,
    config: WriterConfig,
    view: Arc<ArcSwap<View>>,
    prober: Prober,
    news: UnboundedReceiver<StatusNews>,
    metrics: WriterMetrics,
    shutdown: CancellationToken,
) -> Result<(), WriterError> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: MANAGER.into(), instance: Some(config.identity.clone()) },
    );
    let mut writer =
        Writer::new(client.clone(), recorder, &config, view, prober, news, metrics.clone());
    let (mut leading, campaign) =
        election::campaign(&client, &config, metrics.election_errors.clone());
    let mut result = Ok(());
    'terms: loop {
        while !*leading.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => break 'terms,
                changed = leading.changed() => if changed.is_err() { break 'terms },
                news = writer.news.recv() => if let Err(e) = writer.hear(news, false) { result = Err(e); break 'terms },
            }
        }
        tracing::info!(identity = %config.identity, lease = %config.lease_name, "holding the Lease: writing status and Events");
        metrics.leader.set(1);
        tokio::select! {
            _ = shutdown.cancelled() => break 'terms,
            ended = writer.lead() => if let Err(e) = ended { result = Err(e); break 'terms },
            _ = leading.wait_for(|leads| !*leads) => {
                tracing::warn!(identity = %config.identity, "lost the Lease: no longer writing");
            }
        }
        metrics.leader.set(0);
        metrics.queued.set(0);
    }
    metrics.leader.set(0);
    // Closing the channel releases the Lease.
    drop(leading);
    if tokio::time::timeout(Duration::from_secs(1), campaign).await.is_err() {
        tracing::warn!(
            "could not release the Lease in time; another replica takes over when it expires"
        );
    }
    result
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("no answer within {WRITE_TIMEOUT:?}")]
    TimedOut,
}

/// What one finished write reports.
enum Written {
    Status(ObjectKey, Result<ShownStatus, WriteError>),
    Event(&'static str, Result<(), WriteError>),
}

/// A write bounded by [`WRITE_TIMEOUT`].
async fn bounded<T>(write: impl Future<Output = Result<T, kube::Error>>) -> Result<T, WriteError> {
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(result) => result.map_err(WriteError::Api),
        Err(_) => Err(WriteError::TimedOut),
    }
}

type Write = Pin<Box<dyn Future<Output = Written> + Send>>;

/// The writer, across terms as leader.
struct Writer {
    client: Client,
    recorder: Recorder,
    view: Arc<ArcSwap<View>>,
    prober: Prober,
    news: UnboundedReceiver<StatusNews>,
    seen: LastSeen,
    metrics: WriterMetrics,
    timing: Timing,
    limiter: DefaultDirectRateLimiter,
    /// Objects to decide again.
    todo: VecDeque<ObjectKey>,
    todo_set: FxHashSet<ObjectKey>,
    /// Objects whose status to write, oldest first: those that never showed one
    /// (`fresh`) before the others. Only keys wait: the status is decided again when
    /// its turn comes, so a queue of 100k costs little and a later change is what gets
    /// written. An object is in one of them at most once (`queued`).
    fresh: VecDeque<ObjectKey>,
    queue: VecDeque<ObjectKey>,
    queued: FxHashSet<ObjectKey>,
    /// Objects to decide again at a time: a write or an Event not allowed yet, a
    /// transition held by a flapping check. `wake_at` is each one's earliest; heap
    /// entries that differ from it are stale.
    wakes: BinaryHeap<Reverse<(Instant, ObjectKey)>>,
    wake_at: FxHashMap<ObjectKey, Instant>,
    events: VecDeque<PendingEvent>,
    /// Failed writes, decided again after a pause.
    failed: Vec<ObjectKey>,
    pause_until: Option<tokio::time::Instant>,
    next_is_event: bool,
}

impl Writer {
    fn new(
        client: Client,
        recorder: Recorder,
        config: &WriterConfig,
        view: Arc<ArcSwap<View>>,
        prober: Prober,
        news: UnboundedReceiver<StatusNews>,
        metrics: WriterMetrics,
    ) -> Self {
        let qps = NonZeroU32::new(config.qps).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            client,
            recorder,
            view,
            prober,
            news,
            seen: LastSeen::default(),
            metrics,
            timing: Timing::of(config),
            limiter: RateLimiter::direct(Quota::per_second(qps).allow_burst(burst)),
            todo: VecDeque::new(),
            todo_set: FxHashSet::default(),
            fresh: VecDeque::new(),
            queue: VecDeque::new(),
            queued: FxHashSet::default(),
            wakes: BinaryHeap::new(),
            wake_at: FxHashMap::default(),
            events: VecDeque::new(),
            failed: Vec::new(),
            pause_until: None,
            next_is_event: false,
        }
    }

    fn push(&mut self, key: ObjectKey) {
        if self.todo_set.insert(key.clone()) {
            self.todo.push_back(key);
        }
    }

    /// Decides the object again at `at` (or earlier, if so asked already).
    fn wake(&mut self, key: ObjectKey, at: Instant) {
        if self.wake_at.get(&key).is_some_and(|t| *t <= at) {
            return;
        }
        self.wake_at.insert(key.clone(), at);
        self.wakes.push(Reverse((at, key)));
    }

    /// The objects whose time has come, to decide again.
    fn wake_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.wakes.peek()
            && *at <= now
        {
            let Some(Reverse((at, key))) = self.wakes.pop() else { break };
            if self.wake_at.get(&key) == Some(&at) {
                self.wake_at.remove(&key);
                self.push(key);
            }
        }
    }

    /// Takes what the sink says; dirty objects are decided again while leading.
    fn hear(&mut self, news: Option<StatusNews>, leading: bool) -> Result<(), WriterError> {
        match news.ok_or(WriterError::SinkGone)? {
            StatusNews::Seen(key, shown) => self.seen.observe(key, shown),
            StatusNews::Gone(key) => self.seen.forget(&key),
            StatusNews::Dirty(keys) if leading => keys.into_iter().for_each(|k| self.push(k)),
            StatusNews::Dirty(_) => {}
        }
        Ok(())
    }

    /// One term as leader, until the sink stops.
    async fn lead(&mut self) -> Result<(), WriterError> {
        // A new term: whatever changed while another replica led, or none did.
        self.todo.clear();
        self.todo_set.clear();
        self.fresh.clear();
        self.queue.clear();
        self.queued.clear();
        self.wakes.clear();
        self.wake_at.clear();
        self.events.clear();
        self.failed.clear();
        self.seen.reset_announcements();
        let view = self.view.load_full();
        view.objects.keys().for_each(|k| self.push(k.clone()));
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut in_flight: FuturesUnordered<Write> = FuturesUnordered::new();
        loop {
            let paused = self.pause_until.is_some_and(|t| t > tokio::time::Instant::now());
            let can_write = !paused
                && in_flight.len() < IN_FLIGHT
                && (!self.fresh.is_empty() || !self.queue.is_empty() || !self.events.is_empty());
            let next_wake = self.wakes.peek().map(|Reverse((at, _))| *at);
            let wake = tokio::time::Instant::from_std(next_wake.unwrap_or_else(Instant::now));
            tokio::select! {
                news = self.news.recv() => self.hear(news, true)?,
                _ = sweep.tick() => self.sweep(),
                () = tokio::time::sleep_until(wake), if next_wake.is_some() => self.wake_due(),
                () = std::future::ready(()), if !self.todo.is_empty() => self.decide_some(),
                _ = self.limiter.until_ready(), if can_write => {
                    if let Some(write) = self.next_write() {
                        in_flight.push(write);
                    }
                }
                Some(done) = in_flight.next(), if !in_flight.is_empty() => self.finished(done),
            }
            self.metrics.queued.set((self.fresh.len() + self.queue.len()) as i64);
        }
    }

    /// Every check again: a reason can change without a transition, and probe times
    /// are refreshed every `--status-refresh`. Failed writes are retried here too.
    fn sweep(&mut self) {
        let view = self.view.load_full();
        let first_check = (Kind::HealthCheck, ObjectRef::new("", ""));
        view.objects.range(first_check..).for_each(|(k, _)| self.push(k.clone()));
        std::mem::take(&mut self.failed).into_iter().for_each(|k| self.push(k));
    }

    /// Decides up to [`CHUNK`] objects and queues the writes and Events they need.
    fn decide_some(&mut self) {
        let now = SystemTime::now();
        let mut decided: Vec<(ObjectKey, Option<DesiredStatus>, bool)> =
            Vec::with_capacity(CHUNK.min(self.todo.len()));
        {
            let view = self.view.load_full();
            let mut engine = Engine::new(&*view, &view.verdicts);
            while decided.len() < CHUNK {
                let Some(key) = self.todo.pop_front() else { break };
                self.todo_set.remove(&key);
                // What a check nobody announced yet counts as (records ignore it).
                let initial = key.0 != Kind::HealthCheck
                    || view.checks.get(&key.1).is_none_or(|c| c.initial_healthy());
                let desired = decide(&view, &self.prober, &mut engine, &key, now);
                decided.push((key, desired, initial));
            }
        }
        let now = Instant::now();
        let timing = self.timing;
        for (key, desired, initial) in decided {
            let (Some(desired), Some(entry)) = (desired, self.seen.get_mut(&key)) else {
                // Gone from the model or out of the watches' sight: never written.
                self.queued.remove(&key);
                continue;
            };
            entry.decided(&key, &desired);
            // When to decide it again, if something has to wait.
            let mut wake: Option<Instant> = None;
            let mut note = None;
            match status::transition(&key, entry, &desired, initial) {
                Tell::Nothing => entry.announce(&key, &desired, None),
                Tell::Held => wake = desired.held_until.map(|t| instant_of(t, now)),
                // A rejection is told at once: a change of the object, not a flap.
                Tell::Event(event)
                    if event.reason == status::REJECTED
                        || entry.may_tell(timing.min_interval, now) =>
                {
                    entry.announce(&key, &desired, Some(&event));
                    entry.told = Some(now);
                    note = Some(event);
                }
                Tell::Event(_) => wake = entry.told.map(|t| t + timing.min_interval),
            }
            entry.refreshed.get_or_insert(now);
            if needs_write(entry, &desired, &timing, now) {
                if !self.queued.contains(&key) {
                    if entry.is_new() {
                        self.fresh.push_back(key.clone());
                        self.queued.insert(key.clone());
                    } else if entry.may_write(timing.min_interval, now) {
                        self.queue.push_back(key.clone());
                        self.queued.insert(key.clone());
                    } else {
                        let due = entry.written.map(|t| t + timing.min_interval);
                        wake = earliest(wake, due);
                    }
                }
            } else {
                // What the object shows is right again (another write, or a flap back),
                // or it waits for its next refresh while a flapping check holds it.
                self.queued.remove(&key);
                if desired.held_until.is_some() && behind(entry, &desired) {
                    let due = entry.refreshed.map(|t| t + timing.held_refresh);
                    wake = earliest(wake, due);
                }
            }
            if let Some(at) = wake {
                self.wake(key, at);
            }
            if let Some(note) = note {
                if self.events.len() >= MAX_QUEUED_EVENTS {
                    self.events.pop_front();
                    self.metrics
                        .events
                        .get_or_create(&EventLabels { reason: note.reason, result: "dropped" })
                        .inc();
                }
                self.events.push_back(note);
            }
        }
    }

    /// The next write, statuses and Events taking turns.
    fn next_write(&mut self) -> Option<Write> {
        let event_turn = self.next_is_event || (self.fresh.is_empty() && self.queue.is_empty());
        self.next_is_event = !self.next_is_event;
        if event_turn && let Some(note) = self.events.pop_front() {
            return self.event_write(note);
        }
        while let Some(key) = self.fresh.pop_front().or_else(|| self.queue.pop_front()) {
            if !self.queued.remove(&key) {
                continue;
            }
            // Decided again now: what changed since it was queued is written too.
            let desired = {
                let view = self.view.load_full();
                let mut engine = Engine::new(&*view, &view.verdicts);
                decide(&view, &self.prober, &mut engine, &key, SystemTime::now())
            };
            let Some(desired) = desired else { continue };
            if let Some(write) = self.status_write(key, desired) {
                return Some(write);
            }
        }
        self.events.pop_front().and_then(|note| self.event_write(note))
    }

    fn status_write(&mut self, key: ObjectKey, desired: DesiredStatus) -> Option<Write> {
        let now = Instant::now();
        let shown = {
            let entry = self.seen.get_mut(&key)?;
            if !needs_write(entry, &desired, &self.timing, now) {
                return None;
            }
            entry.written = Some(now);
            entry.shown
        };
        let mut status = desired.status;
        status::keep_transition_time(&mut status, &shown);
        let client = self.client.clone();
        let params = PatchParams::apply(MANAGER).force();
        Some(Box::pin(async move {
            let (ns, name) = (&*key.1.namespace, &*key.1.name);
            let result = match &status {
                Status::Check(s) => {
                    let body = json!({ "apiVersion": api_version::<HealthCheck>(), "kind": "HealthCheck", "status": s });
                    let api = Api::<HealthCheck>::namespaced(client, ns);
                    bounded(api.patch_status(name, &params, &Patch::Apply(&body))).await.map(|o| {
                        ShownStatus::of_check(o.metadata.uid.as_deref(), o.status.as_ref())
                    })
                }
                Status::Record(s) => {
                    let body = json!({ "apiVersion": api_version::<FailoverRecord>(), "kind": "FailoverRecord", "status": s });
                    let api = Api::<FailoverRecord>::namespaced(client, ns);
                    bounded(api.patch_status(name, &params, &Patch::Apply(&body))).await.map(|o| {
                        ShownStatus::of_record(o.metadata.uid.as_deref(), o.status.as_ref())
                    })
                }
            };
            Written::Status(key, result)
        }))
    }

    fn event_write(&self, note: PendingEvent) -> Option<Write> {
        let uid = self.seen.get(&note.key)?.shown.uid;
        let api_version = match note.key.0 {
            Kind::HealthCheck => api_version::<HealthCheck>(),
            Kind::FailoverRecord => api_version::<FailoverRecord>(),
        };
        let reference = ObjectReference {
            api_version: Some(api_version),
            kind: Some(note.key.0.name().into()),
            name: Some(note.key.1.name.to_string()),
            namespace: Some(note.key.1.namespace.to_string()),
            uid: status::format_uid(uid),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: if note.warning { EventType::Warning } else { EventType::Normal },
            reason: note.reason.into(),
            note: Some(truncate(note.message, 1000)),
            action: if note.key.0 == Kind::HealthCheck { "Probe" } else { "Route" }.into(),
            secondary: None,
        };
        let recorder = self.recorder.clone();
        let reason = note.reason;
        Some(Box::pin(async move {
            Written::Event(reason, bounded(recorder.publish(&event, &reference)).await)
        }))
    }

    fn finished(&mut self, done: Written) {
        match done {
            Written::Status(key, Ok(shown)) => {
                self.metrics
                    .writes
                    .get_or_create(&WriteLabels { kind: key.0.name(), result: "ok" })
                    .inc();
                if let Some(entry) = self.seen.get_mut(&key) {
                    entry.shown = shown;
                    entry.refreshed = Some(Instant::now());
                }
            }
            Written::Status(key, Err(WriteError::Api(kube::Error::Api(s)))) if s.is_not_found() => {
                // Deleted meanwhile: its watch event is on the way.
                self.metrics
                    .writes
                    .get_or_create(&WriteLabels { kind: key.0.name(), result: "gone" })
                    .inc();
            }
            Written::Status(key, Err(error)) => {
                self.metrics
                    .writes
                    .get_or_create(&WriteLabels { kind: key.0.name(), result: "error" })
                    .inc();
                tracing::warn!(object = %key.1, kind = ?key.0, %error, "status write failed; retrying");
                self.failed.push(key);
                self.pause();
            }
            Written::Event(reason, Ok(())) => {
                self.metrics.events.get_or_create(&EventLabels { reason, result: "ok" }).inc();
            }
            Written::Event(reason, Err(error)) => {
                self.metrics.events.get_or_create(&EventLabels { reason, result: "error" }).inc();
                tracing::warn!(reason, %error, "event not published");
            }
        }
    }

    /// The API server refused or is unreachable: writes stop for a second.
    fn pause(&mut self) {
        self.pause_until = Some(tokio::time::Instant::now() + Duration::from_secs(1));
    }
}

/// The status one object should show now (None: no such object).
fn decide(
    view: &View,
    prober: &Prober,
    engine: &mut Engine<'_>,
    key: &ObjectKey,
    now: SystemTime,
) -> Option<DesiredStatus> {
    match key.0 {
        Kind::HealthCheck => {
            let leaf = status::leaf(prober, view, &key.1);
            status::desired_check(view, &key.1, leaf.as_ref(), now)
        }
        Kind::FailoverRecord => status::desired_record(view, engine, &key.1, now),
    }
}

/// The object shows other significant fields, or only its probe times are older
/// than `--status-refresh`. Held by a flapping check, only its core is written at
/// once; its verdict, like its probe times, waits for a refresh, every
/// [`HELD_SLOWDOWN`] × `--status-min-interval`.
fn needs_write(entry: &SeenObject, desired: &DesiredStatus, timing: &Timing, now: Instant) -> bool {
    let refreshed_before =
        |every: Duration| entry.refreshed.is_none_or(|r| now.duration_since(r) >= every);
    if desired.held_until.is_some() {
        entry.shown.core != Some(desired.core)
            || (behind(entry, desired) && refreshed_before(timing.held_refresh))
    } else {
        let differs = entry.shown.fingerprint != Some(desired.fingerprint);
        let stale = entry.shown.detail != Some(desired.detail) && refreshed_before(timing.refresh);
        differs || stale
    }
}

/// The object shows anything else than what it should.
fn behind(entry: &SeenObject, desired: &DesiredStatus) -> bool {
    entry.shown.fingerprint != Some(desired.fingerprint)
        || entry.shown.detail != Some(desired.detail)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A wall-clock time as an instant (`now` if it has passed).
fn instant_of(t: SystemTime, now: Instant) -> Instant {
    now + t.duration_since(SystemTime::now()).unwrap_or_default()
}

fn api_version<K: Resource<DynamicType = ()>>() -> String {
    K::api_version(&()).into_owned()
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::FailoverRecordStatus;

    fn timing() -> Timing {
        Timing::of(&config())
    }

    fn desired(fingerprint: u64, core: u64, held: bool) -> DesiredStatus {
        DesiredStatus {
            status: Status::Record(FailoverRecordStatus::default()),
            fingerprint,
            detail: fingerprint,
            core,
            healthy: None,
            serving: Some(true),
            why: String::new(),
            flapping: None,
            held_until: held.then(SystemTime::now),
        }
    }

    fn showing(fingerprint: u64, core: u64, refreshed: Instant) -> SeenObject {
        let shown = ShownStatus {
            fingerprint: Some(fingerprint),
            detail: Some(fingerprint),
            core: Some(core),
            ..ShownStatus::default()
        };
        SeenObject { shown, refreshed: Some(refreshed), ..SeenObject::default() }
    }

    #[test]
    fn a_held_object_is_written_at_once_for_its_core_only() {
        let t = timing();
        assert_eq!(t.held_refresh, Duration::from_secs(30), "6 × 5 s");
        let t0 = Instant::now();
        let entry = showing(1, 10, t0);
        // Not held: a verdict change is written (once the interval allows).
        assert!(needs_write(&entry, &desired(2, 10, false), &t, t0));
        assert!(!needs_write(&entry, &desired(1, 10, false), &t, t0));
        // Held: the same change waits for the held refresh...
        assert!(!needs_write(&entry, &desired(2, 10, true), &t, t0 + Duration::from_secs(29)));
        assert!(needs_write(&entry, &desired(2, 10, true), &t, t0 + Duration::from_secs(30)));
        // ...but a new generation, acceptance or Flapping condition does not.
        assert!(needs_write(&entry, &desired(2, 11, true), &t, t0));
        assert!(!needs_write(&entry, &desired(1, 10, true), &t, t0 + Duration::from_secs(60)));
        // A short --status-refresh shortens the held refresh too, never below the interval.
        let short = Timing::of(&WriterConfig { refresh: Duration::from_secs(1), ..config() });
        assert_eq!(short.held_refresh, Duration::from_secs(5));
    }

    fn config() -> WriterConfig {
        WriterConfig {
            lease_name: String::new(),
            lease_namespace: String::new(),
            lease_duration: Duration::from_secs(15),
            identity: String::new(),
            refresh: Duration::from_secs(300),
            qps: 50,
            burst: 100,
            min_interval: Duration::from_secs(5),
        }
    }

    #[test]
    fn earliest_of_two_wakes() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(earliest(Some(t1), Some(t0)), Some(t0));
        assert_eq!(earliest(None, Some(t1)), Some(t1));
        assert_eq!(earliest(None, None), None);
        let now = Instant::now();
        assert_eq!(instant_of(SystemTime::now() - Duration::from_secs(5), now), now, "passed");
        assert!(instant_of(SystemTime::now() + Duration::from_secs(60), now) > now);
    }
}
