//! The health map: the seam between whatever decides health (the prober) and the
//! routing engine. Pure data and logic; no I/O.
//!
//! Leaf checks (HTTP, HTTPS, TCP) carry the state their probes established.
//! Calculated checks are derived here from their children every time the map is
//! read, so a child's transition reaches its parents in the same snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imbl::OrdMap;

use serde::Serialize;

use crate::model::objects::{NO_ENDPOINTS, Objects};
use crate::model::{Check, Model, ObjectRef, Probe};

/// What the probes of one leaf check have established so far.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeafHealth {
    /// The check's state after `inverted` and the failure threshold were applied.
    pub healthy: bool,
    /// A probe result has backed `healthy` (a pass while healthy, or the failures that
    /// turned it unhealthy): until then a checker's verdict is only its starting point
    /// and the checker quorum does not count it.
    pub established: bool,
    /// Machine-readable reason of the last probe result (`ConnectionRefused`, `StatusCode503`, ...).
    pub reason: String,
    pub message: String,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub last_probe_time: Option<SystemTime>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub last_transition_time: Option<SystemTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// A Service's endpoints as the target: how many are ready and how many pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointTally>,
}

impl LeafHealth {
    /// An Endpoints check's state from its Service's ready endpoints now; the
    /// transition time moves only when the state does.
    pub fn from_endpoints(
        check: &Check,
        objects: &Objects,
        previous: Option<&LeafHealth>,
        now: SystemTime,
    ) -> Option<Self> {
        let Probe::Endpoints { service, min } = &check.probe else { return None };
        let id = check.id.sibling(&**service);
        let ready = objects.ready_endpoints(&id);
        let passes = ready >= *min;
        let healthy = passes != check.inverted;
        let (reason, message) = match objects.has_service(&id) {
            _ if passes => (
                "EndpointsReady",
                format!("{ready} ready endpoints of Service {service} (at least {min} needed)"),
            ),
            false if ready == 0 => (NO_ENDPOINTS, format!("Service {service} not found")),
            _ => (
                NO_ENDPOINTS,
                format!("{ready} ready endpoints of Service {service}; at least {min} needed"),
            ),
        };
        let changed = previous.is_none_or(|p| p.healthy != healthy || !p.established);
        Some(Self {
            healthy,
            established: true,
            reason: reason.into(),
            message,
            consecutive_successes: 0,
            consecutive_failures: 0,
            last_probe_time: None,
            last_transition_time: if changed {
                Some(now)
            } else {
                previous.and_then(|p| p.last_transition_time)
            },
            latency: None,
            endpoints: Some(EndpointTally { ready, healthy: ready }),
        })
    }
}

/// How many of a Service's endpoints are ready, and how many of them pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointTally {
    pub ready: u32,
    pub healthy: u32,
}

/// Timing of the last probe, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub total_ms: f64,
}

impl LeafHealth {
    /// The state of a check that has not been probed yet.
    pub fn initial(check: &Check) -> Self {
        let healthy = check.initial_healthy();
        let (reason, message) = if check.disabled {
            ("Disabled", "health checking is disabled; the check counts as healthy")
        } else if check.inverted {
            ("Pending", "no verdict yet; an inverted check starts unhealthy")
        } else {
            ("Pending", "no verdict yet; a new check starts healthy")
        };
        Self {
            healthy,
            established: false,
            reason: reason.into(),
            message: message.into(),
            consecutive_successes: 0,
            consecutive_failures: 0,
            last_probe_time: None,
            last_transition_time: None,
            latency: None,
            endpoints: None,
        }
    }
}

/// The state of every leaf check, as the prober reports it, and what the other
/// checkers (replicas) report of it when the checker quorum is on.
#[derive(Clone, Debug, Default)]
pub struct HealthMap {
    leaves: HashMap<ObjectRef, LeafHealth>,
    checkers: Checkers,
}

/// The checker quorum's inputs: who else checks, and what each of them sees. Persistent
/// maps: the readers' view shares them, and a report copies the paths it touched.
#[derive(Clone, Debug, Default)]
pub struct Checkers {
    /// This replica's name among the checkers (None when the quorum is off).
    pub me: Option<Arc<str>>,
    /// `--checker-quorum`: a check is healthy while more than this percentage of the
    /// live checkers see it healthy; 0 turns the rule off (this replica decides alone).
    pub percent: u8,
    /// The other checkers with a live report, and the namespaces each watches.
    pub live: OrdMap<Arc<str>, Scope>,
    /// Per check, what the live checkers reported of it: every check a checker sees
    /// unhealthy, and the recoveries seen since it joined. A live checker without an
    /// entry sees the check healthy. Kept for checks this replica does not know yet.
    pub views: OrdMap<ObjectRef, OrdMap<Arc<str>, PeerView>>,
}

/// What a checker's report says of a check it lists (a check it does not list, it
/// sees healthy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listed {
    Unhealthy(Arc<str>),
    /// No probe result has backed its verdict yet.
    Pending,
}

/// The reason of a checker's healthy view when its report gave none.
pub const HEALTHY: &str = "Healthy";

/// The namespaces a checker watches (empty: all of them): it is a checker of the
/// checks in them only.
pub type Scope = Arc<[Arc<str>]>;

fn covers(scope: &Scope, namespace: &str) -> bool {
    scope.is_empty() || scope.iter().any(|ns| **ns == *namespace)
}

/// One other checker's view of one check, as its report said it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerView {
    /// None: the checker has no established verdict yet (it does not count).
    pub healthy: Option<bool>,
    pub reason: Arc<str>,
    /// When this replica saw the view change (reports carry no times per check).
    pub since: SystemTime,
}

/// Route 53's checker rule: healthy while more than `percent` % of the `checkers` see it
/// healthy; one checker alone decides by its own verdict.
pub fn quorum_healthy(healthy: usize, checkers: usize, percent: u8) -> bool {
    if checkers <= 1 {
        return healthy >= 1 && checkers == 1;
    }
    healthy * 100 > usize::from(percent) * checkers
}

impl Checkers {
    pub fn on(&self) -> bool {
        self.percent > 0
    }

    /// How many live checkers see the check healthy, of how many, this replica (whose
    /// own verdict is `own`, established or not) included. Checkers without an
    /// established verdict do not count; when nobody has one, this replica's starting
    /// point decides (a new check starts healthy, as in Route 53).
    pub fn counts(&self, id: &ObjectRef, own: bool, own_established: bool) -> (usize, usize) {
        if !self.on() {
            return (usize::from(own), 1);
        }
        let (mut unhealthy, mut pending) = (0, 0);
        for (_, view) in self.peer_views(id) {
            match view.map(|v| v.healthy) {
                Some(Some(false)) => unhealthy += 1,
                Some(None) => pending += 1,
                Some(Some(true)) | None => {}
            }
        }
        let peers = self.peers_of(&id.namespace) - pending;
        let (mut up, mut of) = (peers - unhealthy, peers);
        if own_established || peers == 0 {
            (up, of) = (up + usize::from(own), of + 1);
        }
        (up, of)
    }

    /// How many other live checkers watch this namespace.
    fn peers_of(&self, namespace: &str) -> usize {
        self.live.values().filter(|scope| covers(scope, namespace)).count()
    }

    /// The combined verdict of a leaf check.
    pub fn verdict(&self, id: &ObjectRef, own: bool, own_established: bool) -> bool {
        let (healthy, checkers) = self.counts(id, own, own_established);
        quorum_healthy(healthy, checkers, self.percent)
    }

    /// Every live checker's view of the check (the checkers that watch its namespace):
    /// its reported view, or healthy (since unknown) when it reported nothing of it.
    pub fn peer_views<'a>(
        &'a self,
        id: &'a ObjectRef,
    ) -> impl Iterator<Item = (&'a Arc<str>, Option<&'a PeerView>)> + 'a {
        let views = self.views.get(id);
        self.live
            .iter()
            .filter(|(_, scope)| covers(scope, &id.namespace))
            .map(move |(name, _)| (name, views.and_then(|v| v.get(name))))
    }
}

/// What a change of the checkers touched.
#[derive(Debug, PartialEq, Eq)]
pub enum CheckersChanged {
    /// The set of live checkers changed: every check counts differently.
    Membership,
    /// These checks' views changed.
    Checks(Vec<ObjectRef>),
}

impl HealthMap {
    /// Turns the checker quorum on (`percent` > 0) or off.
    pub fn set_quorum(&mut self, percent: u8) {
        self.checkers.percent = percent.min(100);
    }

    /// This replica's name among the checkers.
    pub fn set_identity(&mut self, me: Arc<str>) {
        self.checkers.me = Some(me);
    }

    pub fn checkers(&self) -> &Checkers {
        &self.checkers
    }

    /// Part of another checker's report: the namespaces it watches and its views of
    /// these checks (None: it sees the check healthy and nothing is worth keeping). The
    /// checker is live from now on.
    pub fn checker_report(
        &mut self,
        checker: &Arc<str>,
        scope: Scope,
        views: impl IntoIterator<Item = (ObjectRef, Option<PeerView>)>,
    ) -> CheckersChanged {
        let joined = self.checkers.live.insert(checker.clone(), scope.clone()) != Some(scope);
        let mut changed = Vec::new();
        for (id, view) in views {
            match view {
                Some(view) => {
                    self.checkers
                        .views
                        .entry(id.clone())
                        .or_default()
                        .insert(checker.clone(), view);
                }
                None => {
                    let Some(views) = self.checkers.views.get_mut(&id) else { continue };
                    views.remove(checker);
                    if views.is_empty() {
                        self.checkers.views.remove(&id);
                    }
                }
            }
            changed.push(id);
        }
        if joined { CheckersChanged::Membership } else { CheckersChanged::Checks(changed) }
    }

    /// A checker's report expired or was deleted: every view it gave is forgotten.
    pub fn forget_checker(&mut self, checker: &str) -> CheckersChanged {
        if self.checkers.live.remove(checker).is_none() {
            return CheckersChanged::Checks(Vec::new());
        }
        let touched: Vec<ObjectRef> = self
            .checkers
            .views
            .iter()
            .filter(|(_, views)| views.contains_key(checker))
            .map(|(id, _)| id.clone())
            .collect();
        for id in touched {
            if let Some(views) = self.checkers.views.get_mut(&id) {
                views.remove(checker);
                if views.is_empty() {
                    self.checkers.views.remove(&id);
                }
            }
        }
        CheckersChanged::Membership
    }

    /// How many live checkers see the check healthy, of how many (this one included).
    pub fn checker_counts(&self, check: &Check) -> (usize, usize) {
        self.checkers.counts(&check.id, self.own_verdict(check), self.own_established(check))
    }

    /// Whether a probe result backs this replica's own verdict.
    pub fn own_established(&self, check: &Check) -> bool {
        self.leaves.get(&check.id).is_some_and(|l| l.established)
    }

    /// This replica's own verdict of a leaf check (healthy until its first verdict,
    /// unhealthy when inverted).
    pub fn own_verdict(&self, check: &Check) -> bool {
        self.leaves.get(&check.id).map_or_else(|| check.initial_healthy(), |l| l.healthy)
    }

    pub fn set(&mut self, id: ObjectRef, health: LeafHealth) {
        self.leaves.insert(id, health);
    }

    pub fn get(&self, id: &ObjectRef) -> Option<&LeafHealth> {
        self.leaves.get(id)
    }

    /// Forgets a check that no longer exists.
    pub fn remove(&mut self, id: &ObjectRef) {
        self.leaves.remove(id);
    }

    /// Drops the state of checks that no longer exist.
    pub fn retain_checks(&mut self, model: &Model) {
        self.leaves.retain(|id, _| model.checks.contains_key(id));
    }

    /// The effective health of one check of the model (None when no such valid check
    /// exists). Disabled checks are healthy; calculated checks count their healthy
    /// children (a missing child counts unhealthy).
    pub fn verdict(&self, model: &Model, id: &ObjectRef) -> Option<bool> {
        // Calculated checks combine their children's combined verdicts.
        let leaf = |check: &Check| -> bool {
            if check.disabled {
                return true;
            }
            let (own, established) = (self.own_verdict(check), self.own_established(check));
            self.checkers.verdict(&check.id, own, established)
        };
        let check = model.checks.get(id)?;
        Some(match &check.probe {
            Probe::Calculated { .. } if check.disabled => true,
            Probe::Calculated { children, health_threshold } => {
                let healthy_children = children
                    .iter()
                    .filter(|c| model.checks.get(&id.sibling(c)).is_some_and(|child| leaf(child)))
                    .count();
                (healthy_children as u32 >= *health_threshold) != check.inverted
            }
            // Every replica reads the same API server: no quorum to take.
            Probe::Endpoints { .. } => check.disabled || self.own_verdict(check),
            _ => leaf(check),
        })
    }

    /// The effective health of every check of the model, from scratch.
    pub fn resolve(&self, model: &Model) -> Verdicts {
        Verdicts(
            model
                .checks
                .keys()
                .filter_map(|id| Some((id.clone(), self.verdict(model, id)?)))
                .collect(),
        )
    }
}

/// Effective health of every existing check. A persistent map: the readers' view
/// shares it with the writer, and a transition copies one path, not the map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdicts(pub imbl::OrdMap<ObjectRef, bool>);

impl Verdicts {
    /// None when no such check exists.
    pub fn get(&self, id: &ObjectRef) -> Option<bool> {
        self.0.get(id).copied()
    }

    /// Sets or clears one verdict; true when it changed.
    pub fn set(&mut self, id: &ObjectRef, verdict: Option<bool>) -> bool {
        let old = match verdict {
            Some(v) => self.0.insert(id.clone(), v),
            None => self.0.remove(id),
        };
        old != verdict
    }
}

/// A check whose combined verdict changes more than this many times within
/// [`FLAP_WINDOW`] flaps (spec §10).
pub const FLAP_THRESHOLD: usize = 10;
/// See [`FLAP_THRESHOLD`].
pub const FLAP_WINDOW: Duration = Duration::from_secs(600);
/// Enough changes to tell whether a check flaps, and until when.
const RING: usize = FLAP_THRESHOLD + 1;
/// Minutes counted: those of [`FLAP_WINDOW`] and the current one.
const MINUTES: usize = 11;

/// When one check's combined verdict changed lately, as every replica counts it where
/// the verdict changes: the last [`FLAP_THRESHOLD`] + 1 times (whether it flaps, and
/// until when) and how many changes each of the last minutes saw (the count the
/// `Flapping` condition tells). Fixed size (about 140 bytes), and only checks whose
/// verdict changed within about [`FLAP_WINDOW`] have one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerdictChanges {
    /// Milliseconds since the epoch, a ring: `next` is where the next one goes.
    ring: [u64; RING],
    len: u8,
    next: u8,
    /// Changes in minute `m` (since the epoch) in slot `m % MINUTES`, for the minutes
    /// up to `minute`, the latest change's.
    per_minute: [u32; MINUTES],
    minute: u64,
}

impl VerdictChanges {
    /// One more change, at `at` (never before the previous one: clocks step back).
    pub fn record(&mut self, at: SystemTime) {
        let first = self.len == 0;
        let ms = millis(at).max(self.nth_latest_ms(0).unwrap_or(0));
        self.ring[usize::from(self.next)] = ms;
        self.next = ((usize::from(self.next) + 1) % RING) as u8;
        self.len = (self.len + 1).min(RING as u8);
        let minute = ms / 60_000;
        if first {
            self.per_minute = [0; MINUTES];
        } else {
            let gap = (minute - self.minute).min(MINUTES as u64);
            for k in 1..=gap {
                self.per_minute[((self.minute + k) % MINUTES as u64) as usize] = 0;
            }
        }
        self.minute = minute;
        let slot = &mut self.per_minute[(minute % MINUTES as u64) as usize];
        *slot = slot.saturating_add(1);
    }

    fn nth_latest_ms(&self, n: usize) -> Option<u64> {
        (n < usize::from(self.len))
            .then(|| self.ring[(usize::from(self.next) + RING - 1 - n) % RING])
    }

    /// The `n`-th latest change (0: the latest), for `n` up to [`FLAP_THRESHOLD`].
    pub fn nth_latest(&self, n: usize) -> Option<SystemTime> {
        self.nth_latest_ms(n).map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// The changes within [`FLAP_WINDOW`] before `now`; counted by the minute, so it
    /// may take in some of the minute before the window too.
    pub fn count(&self, now: SystemTime) -> u32 {
        let now_ms = millis(now);
        let since = now_ms.saturating_sub(FLAP_WINDOW.as_millis() as u64);
        let in_ring = (0..usize::from(self.len))
            .filter_map(|n| self.nth_latest_ms(n))
            .filter(|&t| t > since && t <= now_ms)
            .count() as u32;
        let span = (MINUTES - 1) as u64;
        let now_minute = now_ms / 60_000;
        let low = now_minute.saturating_sub(span).max(self.minute.saturating_sub(span));
        let high = now_minute.min(self.minute);
        let by_minute: u32 =
            (low..=high).map(|m| self.per_minute[(m % MINUTES as u64) as usize]).sum();
        by_minute.max(in_ring)
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

mod opt_time {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{Change, Fqdn, Input};
    use crate::resources::{HealthCheckSpec, HealthCheckType};

    fn check_change(name: &str, spec: HealthCheckSpec) -> Change {
        Change::Check(Input {
            id: ObjectRef::new("ns", name),
            seq: 0,
            file: None,
            generation: None,
            spec,
        })
    }

    fn model() -> Model {
        let mut model = Model::new(&[Fqdn::parse("example.test").unwrap()]);
        let tcp = |name: &str, inverted: bool, disabled: bool| {
            let spec = HealthCheckSpec {
                type_: HealthCheckType::Tcp,
                ip_address: Some("127.0.0.1".into()),
                port: Some(9),
                inverted: Some(inverted),
                disabled: Some(disabled),
                ..HealthCheckSpec::default()
            };
            check_change(name, spec)
        };
        let calculated = HealthCheckSpec {
            type_: HealthCheckType::Calculated,
            child_health_checks: Some(vec!["a".into(), "b".into()]),
            health_threshold: Some(2),
            ..HealthCheckSpec::default()
        };
        let parent = Input {
            id: ObjectRef::new("ns", "both"),
            seq: 0,
            file: None,
            generation: None,
            spec: calculated,
        };
        model.apply([
            tcp("a", false, false),
            tcp("b", false, false),
            tcp("off", false, true),
            Change::Check(parent),
        ]);
        model
    }

    fn leaf(healthy: bool) -> LeafHealth {
        let check = Check {
            id: ObjectRef::new("ns", "x"),
            probe: Probe::Tcp {
                endpoint: crate::model::Endpoint::Ip([127, 0, 0, 1].into()),
                port: 9,
            },
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            failure_threshold: 1,
            healthy_threshold: 1,
            inverted: false,
            disabled: false,
        };
        LeafHealth { healthy, established: true, ..LeafHealth::initial(&check) }
    }

    #[test]
    fn more_than_the_quorum_of_live_checkers_must_see_it_healthy() {
        // Route 53's 18 %: one healthy of three is enough, none is not.
        assert!(quorum_healthy(1, 3, 18));
        assert!(!quorum_healthy(0, 3, 18));
        // "More than": 1 of 2 is exactly 50 %, not more.
        assert!(!quorum_healthy(1, 2, 50));
        assert!(quorum_healthy(2, 3, 50));
        // One live checker decides alone, whatever the percentage.
        assert!(quorum_healthy(1, 1, 99));
        assert!(!quorum_healthy(0, 1, 0));
        assert!(!quorum_healthy(0, 0, 18));
    }

    fn all() -> Scope {
        Arc::from([])
    }

    fn peer(healthy: bool) -> Option<PeerView> {
        let reason = if healthy { "Healthy" } else { "ConnectionRefused" };
        Some(PeerView {
            healthy: Some(healthy),
            reason: reason.into(),
            since: SystemTime::UNIX_EPOCH,
        })
    }

    #[test]
    fn peers_count_only_with_the_quorum_on_and_only_while_they_report() {
        let model = model();
        let a = ObjectRef::new("ns", "a");
        let (b, c): (Arc<str>, Arc<str>) = (Arc::from("replica-b"), Arc::from("replica-c"));
        let mut map = HealthMap::default();
        map.set(a.clone(), leaf(false));
        assert_eq!(map.checker_report(&b, all(), []), CheckersChanged::Membership, "b joins");
        assert_eq!(
            map.checker_report(&c, all(), [(a.clone(), peer(true))]),
            CheckersChanged::Membership
        );
        assert_eq!(map.verdict(&model, &a), Some(false), "quorum off: this replica decides alone");
        map.set_quorum(18);
        assert_eq!(map.verdict(&model, &a), Some(true), "2 of 3 checkers see it healthy");
        assert_eq!(map.checker_counts(&model.checks[&a]), (2, 3));
        map.set_quorum(50);
        assert_eq!(map.verdict(&model, &a), Some(true));
        assert_eq!(
            map.checker_report(&b, all(), [(a.clone(), peer(false))]),
            CheckersChanged::Checks(vec![a.clone()])
        );
        assert_eq!(map.verdict(&model, &a), Some(false), "1 of 3 is not more than 50 %");
        assert_eq!(map.forget_checker("replica-c"), CheckersChanged::Membership);
        assert_eq!(map.checker_counts(&model.checks[&a]), (0, 2));
        assert_eq!(map.forget_checker("replica-b"), CheckersChanged::Membership);
        assert_eq!(map.checker_counts(&model.checks[&a]), (0, 1), "alone again");
        assert!(map.checkers().views.is_empty(), "nothing kept of checkers that are gone");
        assert_eq!(map.forget_checker("replica-c"), CheckersChanged::Checks(vec![]));
    }

    /// A serviceRef check's endpoints are probed by each replica, so the checkers'
    /// quorum decides it; an Endpoints check reads the API server, the same for all.
    #[test]
    fn service_ref_checks_take_the_quorum_and_endpoints_checks_do_not() {
        let mut model = Model::new(&[Fqdn::parse("example.test").unwrap()]);
        model.set_cluster_objects(true);
        let check = |name: &str, type_| {
            let service_ref = crate::resources::ServiceRef { name: "web".into(), port: None };
            let spec =
                HealthCheckSpec { type_, service_ref: Some(service_ref), ..Default::default() };
            check_change(name, spec)
        };
        model.apply([
            check("probed", HealthCheckType::Tcp),
            check("ready", HealthCheckType::Endpoints),
        ]);
        let (probed, ready) = (ObjectRef::new("ns", "probed"), ObjectRef::new("ns", "ready"));
        assert!(model.checks[&probed].is_checked_by_each_replica());
        assert!(!model.checks[&ready].is_checked_by_each_replica());
        let mut map = HealthMap::default();
        map.set(probed.clone(), leaf(false));
        map.set(ready.clone(), leaf(false));
        for peer_name in ["replica-b", "replica-c"] {
            let views = [(probed.clone(), peer(true)), (ready.clone(), peer(true))];
            map.checker_report(&Arc::from(peer_name), all(), views);
        }
        map.set_quorum(18);
        assert_eq!(map.verdict(&model, &probed), Some(true), "2 of 3 checkers see it pass");
        assert_eq!(map.verdict(&model, &ready), Some(false), "its own reading of the slices");
    }

    #[test]
    fn views_of_checks_not_known_yet_count_once_they_are() {
        let model = model();
        let a = ObjectRef::new("ns", "a");
        let b: Arc<str> = Arc::from("replica-b");
        let mut map = HealthMap::default();
        map.set_quorum(50);
        map.retain_checks(&Model::new(&[]));
        map.checker_report(&b, all(), [(a.clone(), peer(false))]);
        map.set(a.clone(), leaf(true));
        assert_eq!(map.checker_counts(&model.checks[&a]), (1, 2));
        assert_eq!(map.verdict(&model, &a), Some(false), "1 of 2 is not more than 50 %");
        map.checker_report(&b, all(), [(a.clone(), None)]);
        assert_eq!(map.verdict(&model, &a), Some(true), "b sees it healthy again");
    }

    #[test]
    fn checkers_without_an_established_verdict_do_not_count() {
        let model = model();
        let a = ObjectRef::new("ns", "a");
        let (b, c): (Arc<str>, Arc<str>) = (Arc::from("replica-b"), Arc::from("replica-c"));
        let pending = Some(PeerView {
            healthy: None,
            reason: Arc::from("Pending"),
            since: SystemTime::UNIX_EPOCH,
        });
        let mut map = HealthMap::default();
        map.set_quorum(18);
        map.set(a.clone(), leaf(false));
        // A replica that just started says nothing yet: the target stays failed.
        map.checker_report(&b, all(), [(a.clone(), pending.clone())]);
        assert_eq!(map.checker_counts(&model.checks[&a]), (0, 1));
        assert_eq!(map.verdict(&model, &a), Some(false));
        map.checker_report(&b, all(), [(a.clone(), peer(true))]);
        assert_eq!(map.verdict(&model, &a), Some(true), "once established, it counts");
        // This replica not established either: nobody is, its starting point decides.
        let fresh = LeafHealth { established: false, ..leaf(true) };
        map.set(a.clone(), fresh);
        map.checker_report(&b, all(), [(a.clone(), pending.clone())]);
        map.checker_report(&c, all(), [(a.clone(), pending)]);
        assert_eq!(map.checker_counts(&model.checks[&a]), (1, 1));
        map.checker_report(&c, all(), [(a.clone(), peer(false))]);
        assert_eq!(map.checker_counts(&model.checks[&a]), (0, 1), "c alone has a verdict");
        assert_eq!(map.verdict(&model, &a), Some(false));
    }

    #[test]
    fn a_checker_counts_only_for_the_namespaces_it_watches() {
        let model = model();
        let a = ObjectRef::new("ns", "a");
        let mut map = HealthMap::default();
        map.set_quorum(18);
        map.set(a.clone(), leaf(false));
        let elsewhere: Scope = Arc::from([Arc::from("team-b")]);
        let b: Arc<str> = Arc::from("replica-b");
        map.checker_report(&b, elsewhere, []);
        assert_eq!(map.checker_counts(&model.checks[&a]), (0, 1), "b does not check ns/a");
        assert_eq!(map.verdict(&model, &a), Some(false));
        let both: Scope = Arc::from([Arc::from("ns"), Arc::from("team-b")]);
        assert_eq!(map.checker_report(&b, both, []), CheckersChanged::Membership);
        assert_eq!(map.checker_counts(&model.checks[&a]), (1, 2));
    }

    #[test]
    fn calculated_checks_combine_combined_verdicts_and_disabled_stays_healthy() {
        let model = model();
        let (a, b, both, off) = (
            ObjectRef::new("ns", "a"),
            ObjectRef::new("ns", "b"),
            ObjectRef::new("ns", "both"),
            ObjectRef::new("ns", "off"),
        );
        let replica_b: Arc<str> = Arc::from("replica-b");
        let mut map = HealthMap::default();
        map.set_quorum(18);
        map.set(a.clone(), leaf(false));
        map.set(b.clone(), leaf(true));
        assert_eq!(
            map.verdict(&model, &both),
            Some(false),
            "a is down here and nobody else says otherwise"
        );
        map.checker_report(&replica_b, all(), []);
        assert_eq!(map.verdict(&model, &both), Some(true), "a's combined verdict is healthy");
        map.checker_report(&replica_b, all(), [(off.clone(), peer(false))]);
        assert_eq!(map.verdict(&model, &off), Some(true), "a disabled check counts healthy");
    }
}
