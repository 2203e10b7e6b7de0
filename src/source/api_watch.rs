//! Every watch of the API server — HealthChecks and FailoverRecords ([`super::cluster`]),
//! CheckerReports ([`crate::quorum::watch`]) — goes through [`watch`]: kube-runtime's
//! watcher, made to come back within seconds of the API server's return however long
//! it was away, and to say how stale what it last showed may be.
//!
//! * Retries are about a second apart at most ([`Retry`]: from 100 ms, doubling, capped
//!   at 1 s, each plus up to half of it at random so replicas do not knock in step), and
//!   the backoff starts over at the next event. kube-runtime's default grows to 30 s and
//!   starts over only after two minutes without an error, so an edit made after a
//!   2-minute outage reached DNS 75 s later. One attempt a second per watch costs a
//!   refused connection while the server is away, a cheap rejection while it is
//!   overloaded.
//! * An expired resource version (410 Gone: the version fell out of the API server's
//!   window, as after a long outage or a compaction) re-lists at once, with no backoff:
//!   the server is back. (A server restarted within the window resumes the watch.)
//! * [`Staleness`] is `failoverdns_source_stale_seconds{kind}`: 0 while every watch of
//!   the kind is connected and has listed; otherwise the seconds since the stalest one
//!   was last known current (its first error, or its start before the first listing),
//!   computed at scrape time. A listing or an event shows a watch current again; a
//!   watch resumed from its resource version says nothing when it succeeds, so one
//!   silent for [`SETTLE`] after its last error (its attempt neither failed nor brought
//!   news) is current once the API server answers a probe: a list of at most one
//!   object's metadata, one per outage and watch. A server that does not answer keeps
//!   it stale, an unreachable one included (its attempts hang rather than fail). So a
//!   silent resume reads stale for up to [`SETTLE`] longer than it was; a watch still
//!   waiting on a server that answers lists past [`SETTLE`] reads current early.
//!
//! Errors are logged here, the first of an outage at once and then at most one line
//! every 10 s with the number held back, so the callers see events only.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};
use kube::Resource;
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use serde::de::DeserializeOwned;
use tokio::time::{Instant, sleep_until};

use crate::conn::LogThrottle;
use crate::model::ObjectRef;
use rustc_hash::FxHashSet;

/// The first retry's delay.
pub const MIN_DELAY: Duration = Duration::from_millis(100);
/// The longest delay before jitter (with it, at most 1.5 s between attempts).
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// How long a watch stays silent after an error before it counts as resumed (if the
/// API server answers a probe): past the longest retry delay and a failing attempt,
/// and past the seconds a restarted API server keeps a watch waiting while its watch
/// cache fills (a list is answered meanwhile, so an earlier probe would call a waiting
/// watch current; measured 4–7 s on a 2-core machine, and the wait mostly ends in a
/// 410 that re-lists anyway).
pub const SETTLE: Duration = Duration::from_secs(10);

/// The watches' retry delays: [`MIN_DELAY`], doubling up to [`MAX_DELAY`], each plus up
/// to half of it at random; kube-runtime's `StreamBackoff` starts it over at every event.
#[derive(Clone, Debug)]
pub struct Retry {
    next: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self { next: MIN_DELAY }
    }
}

impl Iterator for Retry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(MAX_DELAY);
        Some(delay + delay.mul_f64(rand::random::<f64>() / 2.0))
    }
}

impl Backoff for Retry {
    fn reset(&mut self) {
        self.next = MIN_DELAY;
    }
}

/// One watch's freshness: `None` while current, else since when it may be stale.
type Since = Arc<Mutex<Option<Instant>>>;

/// `failoverdns_source_stale_seconds{kind}`, over every watch made with [`Staleness::track`].
#[derive(Debug, Default)]
pub struct Staleness {
    watches: Mutex<Vec<(&'static str, Since)>>,
}

impl Staleness {
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let staleness = Arc::new(Self::default());
        registry.register_collector(Box::new(staleness.clone()));
        staleness
    }

    /// One more watch of `kind` (its label), in `scope` (for the logs): stale from now
    /// until its first listing.
    pub fn track(&self, kind: &'static str, scope: impl Into<String>) -> Tracker {
        let since: Since = Arc::new(Mutex::new(Some(Instant::now())));
        self.watches.lock().unwrap_or_else(PoisonError::into_inner).push((kind, since.clone()));
        Tracker {
            kind,
            scope: scope.into(),
            since,
            listing: false,
            failures: 0,
            log: LogThrottle::default(),
        }
    }

    /// Per kind (sorted), the seconds the stalest of its watches may be stale.
    pub fn seconds(&self) -> Vec<(&'static str, f64)> {
        let now = Instant::now();
        let mut by_kind: Vec<(&'static str, f64)> = Vec::new();
        for (kind, since) in self.watches.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let stale = since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .map_or(0.0, |since| now.duration_since(since).as_secs_f64());
            match by_kind.iter_mut().find(|(k, _)| k == kind) {
                Some((_, seconds)) => *seconds = seconds.max(stale),
                None => by_kind.push((kind, stale)),
            }
        }
        by_kind.sort_by_key(|(kind, _)| *kind);
        by_kind
    }
}

impl Collector for Staleness {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut family = encoder.encode_descriptor(
            "source_stale",
            "0 while the API watches of the kind are connected and have listed; otherwise seconds since the data was last known current",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (kind, seconds) in self.seconds() {
            ConstGauge::new(seconds).encode(family.encode_family(&[("kind", kind)])?)?;
        }
        Ok(())
    }
}

/// One watch's side of [`Staleness`], and its log lines.
#[derive(Debug)]
pub struct Tracker {
    kind: &'static str,
    scope: String,
    since: Since,
    /// Between `Init` and `InitDone`.
    listing: bool,
    /// Errors since it was last current.
    failures: u64,
    log: LogThrottle,
}

impl Tracker {
    fn event<K>(&mut self, event: &Event<K>) {
        match event {
            Event::Init => self.listing = true,
            Event::InitApply(_) => {}
            Event::InitDone => {
                self.listing = false;
                self.current();
            }
            // Outside a listing, an event proves a resumed watch connected.
            Event::Apply(_) | Event::Delete(_) if !self.listing => self.current(),
            Event::Apply(_) | Event::Delete(_) => {}
        }
    }

    fn current(&mut self) {
        let since = self.since.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(since) = since
            && self.failures > 0
        {
            let stale_for = format!("{:.1}s", since.elapsed().as_secs_f64());
            tracing::info!(kind = self.kind, scope = %self.scope, %stale_for, "watch current again");
        }
        self.failures = 0;
    }

    fn failed(&mut self, error: &watcher::Error, gone: bool) {
        self.listing = false;
        self.failures += 1;
        self.since.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(Instant::now);
        let (kind, scope) = (self.kind, &self.scope);
        if gone {
            tracing::info!(kind, %scope, %error, "watch resource version expired; re-listing at once");
        } else if let Some(held_back) = self.log.ready() {
            tracing::warn!(kind, %scope, %error, held_back, "watch failed; retrying about every second");
        }
    }

    /// Silent since its last error, long enough that its attempt did not fail, and
    /// the API server answers: the watch resumed from its resource version.
    fn resumed(&mut self) {
        if !self.listing {
            self.current();
        }
    }
}

/// 410 Gone, as a watch event or as the answer to the watch request: the resource
/// version is too old and only a new listing helps (kube-runtime re-lists after the
/// first, but would resume the same version for ever after the second).
fn gone(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// The events of `api` under `config`, for ever: errors are logged and retried as
/// the module says, and `tracker` follows the watch's freshness.
/// What to watch in: each namespace given once, or every namespace (None) when none is.
pub fn scopes(namespaces: Vec<String>) -> Vec<Option<String>> {
    let mut scopes: Vec<Option<String>> = namespaces.into_iter().map(Some).collect();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        scopes.push(None);
    }
    scopes
}

/// One watch's (re-)listings: the objects a listing shows, so that whatever it no
/// longer shows can be removed when it ends.
#[derive(Debug, Default)]
pub struct Listing {
    shown: Option<FxHashSet<ObjectRef>>,
    listed: bool,
}

impl Listing {
    /// A (re-)listing starts (`Event::Init`).
    pub fn start(&mut self) {
        self.shown = Some(FxHashSet::default());
    }

    /// An object shown: remembered while a listing is under way.
    pub fn show(&mut self, id: ObjectRef) {
        if let Some(shown) = self.shown.as_mut() {
            shown.insert(id);
        }
    }

    /// The listing ended (`Event::InitDone`): what it showed. The first one is logged.
    pub fn end(&mut self, kind: impl Debug, scope: Option<&str>) -> FxHashSet<ObjectRef> {
        let seen = self.shown.take().unwrap_or_default();
        if !self.listed {
            let scope = scope.unwrap_or("all namespaces");
            tracing::info!(?kind, scope, objects = seen.len(), "first listing loaded");
        }
        self.listed = true;
        seen
    }

    /// Whether a listing has ended since the watch started.
    pub fn listed(&self) -> bool {
        self.listed
    }
}

pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    tracker: Tracker,
) -> impl Stream<Item = Event<K>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let probed = api.clone();
    let probe = move || {
        let api = probed.clone();
        // At most one object's metadata: does the API server answer?
        async move { api.list_metadata(&ListParams::default().limit(1)).await.is_ok() }.boxed()
    };
    let fresh =
        move || watcher::watcher(api.clone(), config.clone()).backoff(Retry::default()).boxed();
    recovering(fresh, probe, tracker, SETTLE)
}

type Watcher<K> = BoxStream<'static, Result<Event<K>, watcher::Error>>;

/// [`watch`] over any watcher `fresh` makes (a new one starts with a listing), with
/// `probe` telling whether the API server answers.
fn recovering<K, F, P>(
    fresh: F,
    probe: P,
    tracker: Tracker,
    settle: Duration,
) -> impl Stream<Item = Event<K>>
where
    K: Send + 'static,
    F: FnMut() -> Watcher<K> + Send + 'static,
    P: Fn() -> BoxFuture<'static, bool> + Send + 'static,
{
    struct Watching<K, F, P> {
        inner: Watcher<K>,
        fresh: F,
        probe: P,
        tracker: Tracker,
        /// After an error: when silence means the watch resumed, if the server answers.
        settle_at: Option<Instant>,
        probing: Option<BoxFuture<'static, bool>>,
    }
    let mut fresh = fresh;
    let inner = fresh();
    let state = Watching { inner, fresh, probe, tracker, settle_at: None, probing: None };
    futures::stream::unfold(state, move |mut w| async move {
        loop {
            let Watching { inner, settle_at, probing, .. } = &mut w;
            let settle_at = *settle_at;
            let item = tokio::select! {
                item = inner.next() => item,
                () = async { sleep_until(settle_at.expect("guarded")).await },
                    if settle_at.is_some() && probing.is_none() =>
                {
                    w.probing = Some((w.probe)());
                    continue;
                }
                answered = async { probing.as_mut().expect("guarded").await }, if probing.is_some() => {
                    w.probing = None;
                    if answered {
                        w.settle_at = None;
                        w.tracker.resumed();
                    } else {
                        w.settle_at = Some(Instant::now() + settle);
                    }
                    continue;
                }
            };
            (w.settle_at, w.probing) = (None, None);
            match item {
                Some(Ok(event)) => {
                    w.tracker.event(&event);
                    return Some((event, w));
                }
                Some(Err(error)) if gone(&error) => {
                    w.tracker.failed(&error, true);
                    w.inner = (w.fresh)();
                }
                Some(Err(error)) => {
                    w.tracker.failed(&error, false);
                    w.settle_at = Some(Instant::now() + settle);
                }
                // Only a backoff that gives up ends a watcher, and `Retry` never does.
                None => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use futures::channel::mpsc;
    use kube::core::Status;

    use super::*;

    #[test]
    fn retries_double_to_a_second_with_half_of_it_at_random_and_start_over() {
        let mut retry = Retry::default();
        let delays: Vec<Duration> = (0..8).map(|_| retry.next().unwrap()).collect();
        let bases = [100, 200, 400, 800, 1000, 1000, 1000, 1000].map(Duration::from_millis);
        for (delay, base) in delays.iter().zip(bases) {
            assert!(*delay >= base && *delay <= base * 3 / 2, "{delay:?} for {base:?}");
        }
        retry.reset();
        assert!(retry.next().unwrap() < Duration::from_millis(151));
    }

    fn status(code: u16) -> Box<Status> {
        Status::failure("too old resource version", "Expired").with_code(code).boxed()
    }

    #[test]
    fn only_410_re_lists_at_once() {
        assert!(gone(&watcher::Error::WatchError(status(410))));
        assert!(gone(&watcher::Error::WatchStartFailed(kube::Error::Api(status(410)))));
        assert!(!gone(&watcher::Error::WatchError(status(500))));
        assert!(!gone(&watcher::Error::WatchStartFailed(kube::Error::Api(status(503)))));
    }

    type Sender = mpsc::UnboundedSender<Result<Event<u32>, watcher::Error>>;

    struct Fake {
        events: Pin<Box<dyn Stream<Item = Event<u32>> + Send>>,
        /// One sender per watcher made.
        made: Arc<Mutex<Vec<Sender>>>,
        /// Whether the API server answers probes, and the probes made.
        answers: Arc<AtomicBool>,
        probes: Arc<AtomicUsize>,
        staleness: Arc<Staleness>,
    }

    fn fake(settle: Duration) -> Fake {
        let made: Arc<Mutex<Vec<Sender>>> = Arc::default();
        let senders = made.clone();
        let fresh = move || {
            let (tx, rx) = mpsc::unbounded();
            senders.lock().unwrap().push(tx);
            rx.boxed()
        };
        let (answers, probes) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (a, p) = (answers.clone(), probes.clone());
        let probe = move || {
            p.fetch_add(1, Ordering::Relaxed);
            futures::future::ready(a.load(Ordering::Relaxed)).boxed()
        };
        let staleness = Arc::new(Staleness::default());
        let tracker = staleness.track("Thing", "test");
        let events = Box::pin(recovering(fresh, probe, tracker, settle));
        Fake { events, made, answers, probes, staleness }
    }

    impl Fake {
        fn send(&self, item: Result<Event<u32>, watcher::Error>) {
            self.made.lock().unwrap().last().unwrap().unbounded_send(item).unwrap();
        }

        fn watchers(&self) -> usize {
            self.made.lock().unwrap().len()
        }

        fn stale(&self) -> f64 {
            self.staleness.seconds()[0].1
        }

        /// Polls the stream for `time` (nothing is sent meanwhile).
        async fn run_for(&mut self, time: Duration) {
            assert!(tokio::time::timeout(time, self.events.next()).await.is_err(), "an event");
        }
    }

    #[tokio::test]
    async fn stale_until_listed_current_on_events_and_a_410_re_lists_at_once() {
        let mut f = fake(Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(f.stale() > 0.0, "stale before the first listing");
        for event in [Event::Init, Event::InitApply(1), Event::InitDone] {
            f.send(Ok(event));
        }
        for _ in 0..3 {
            f.events.next().await.unwrap();
        }
        assert_eq!(f.stale(), 0.0, "listed");

        // A dropped connection, then the resumed watch delivers a change.
        f.send(Err(watcher::Error::WatchError(status(500))));
        f.send(Ok(Event::Apply(2)));
        assert!(matches!(f.events.next().await, Some(Event::Apply(2))));
        assert_eq!(f.stale(), 0.0, "an event shows the resumed watch current");

        // 410: the old watcher is dropped and a new one lists, without waiting.
        f.send(Err(watcher::Error::WatchError(status(410))));
        f.run_for(Duration::from_millis(20)).await;
        assert_eq!(f.watchers(), 2, "a new watcher");
        assert!(f.stale() > 0.0, "stale until it has listed");
        f.send(Ok(Event::Init));
        assert!(matches!(f.events.next().await, Some(Event::Init)));
        assert!(f.stale() > 0.0, "stale while re-listing");
        f.send(Ok(Event::InitDone));
        f.events.next().await.unwrap();
        assert_eq!(f.stale(), 0.0);
        assert_eq!(f.probes.load(Ordering::Relaxed), 0, "events tell without probes");
    }

    #[tokio::test]
    async fn a_watch_silent_after_an_error_is_current_once_the_server_answers() {
        let mut f = fake(Duration::from_millis(100));
        f.send(Ok(Event::Init));
        f.send(Ok(Event::InitDone));
        f.events.next().await.unwrap();
        f.events.next().await.unwrap();
        f.send(Err(watcher::Error::NoResourceVersion));
        f.run_for(Duration::from_millis(50)).await;
        assert_eq!(f.probes.load(Ordering::Relaxed), 0, "not before it settles");
        assert!(f.stale() > 0.0);
        f.run_for(Duration::from_millis(120)).await;
        assert_eq!(f.probes.load(Ordering::Relaxed), 1, "settled: probed");
        assert!(f.stale() > 0.0, "the server did not answer");
        f.answers.store(true, Ordering::Relaxed);
        f.run_for(Duration::from_millis(150)).await;
        assert_eq!(f.probes.load(Ordering::Relaxed), 2, "probed again");
        assert_eq!(f.stale(), 0.0, "the server answers: resumed");
        assert_eq!(f.watchers(), 1, "the same watcher throughout");
        f.run_for(Duration::from_millis(250)).await;
        assert_eq!(f.probes.load(Ordering::Relaxed), 2, "no probes while current");
    }

    #[tokio::test]
    async fn errors_keep_it_stale_and_put_the_probe_off() {
        let mut f = fake(Duration::from_millis(100));
        f.answers.store(true, Ordering::Relaxed);
        f.send(Ok(Event::Init));
        f.send(Ok(Event::InitDone));
        f.events.next().await.unwrap();
        f.events.next().await.unwrap();
        for _ in 0..5 {
            f.send(Err(watcher::Error::NoResourceVersion));
            f.run_for(Duration::from_millis(50)).await;
        }
        assert_eq!(f.probes.load(Ordering::Relaxed), 0, "an attempt failing every 50 ms");
        assert!(f.stale() >= 0.25, "stale since the first error: {}", f.stale());
    }
}
