//! What cluster mode writes on the objects, decided purely from a published
//! [`View`]: the status each HealthCheck and FailoverRecord should show, a
//! fingerprint of what matters in it (a status is written only when it differs from
//! what the object already shows), and the Events that tell of transitions. The
//! [`writer`] does the I/O; [`LastSeen`] is what the watches last showed of every
//! object.
//!
//! A check whose combined verdict changed more than [`FLAP_THRESHOLD`] times within
//! [`FLAP_WINDOW`] flaps (counted where the verdict changes, in the view's
//! `verdict_changes`): its status gets a `Flapping` condition, one Warning Event
//! `Flapping` tells of it, and while it lasts the check and the records of every name
//! and type that uses it are *held*: their Healthy / Unhealthy / Serving / NotServing
//! Events wait until it is steady again, and a verdict change alone no longer calls for
//! a write at once (the writer refreshes them now and then instead).

mod election;
pub mod writer;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use rustc_hash::FxHashMap;

use crate::engine::{Engine, Selection};
use crate::health::{Checkers, HEALTHY, LeafHealth, Verdicts};
pub use crate::health::{FLAP_THRESHOLD, FLAP_WINDOW, VerdictChanges};
use crate::model::{
    Check, Kind, NOT_DELEGATED_PREFIX, OWNED_ELSEWHERE_FIELD, ObjectRef, Probe, Problem,
    RecordData, RecordSet, Severity,
};
use crate::prober::Prober;
use crate::resources::{CheckerView, EndpointCounts, FailoverRecordStatus, HealthCheckStatus};
pub use crate::view::ObjectKey;
use crate::view::{Facts, View};

/// What the status writer learns from the sink.
#[derive(Debug)]
pub enum StatusNews {
    /// What an object's status shows now, as its watch delivered it.
    Seen(ObjectKey, ShownStatus),
    /// The object is gone from the watches.
    Gone(ObjectKey),
    /// Objects whose status may read differently in the view published just before.
    Dirty(Vec<ObjectKey>),
}

/// What an object's status shows (as far as the writer compares it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ShownStatus {
    /// The object's uid, for Events (0 when unknown).
    pub uid: u128,
    /// Of the significant fields; None when the object shows no status yet.
    pub fingerprint: Option<u64>,
    /// Of everything else (probe times, counts, latency): refreshed, not chased.
    pub detail: Option<u64>,
    /// Of what is written at once even while the object is held by a flapping check
    /// (the generation, acceptance, the `Flapping` condition itself).
    pub core: Option<u64>,
    pub healthy: Option<bool>,
    pub serving: Option<bool>,
    /// The main condition (`Healthy` on checks, `Accepted` on records): its status and
    /// since when (seconds since the epoch).
    pub condition: Option<(bool, i64)>,
    /// The `Ready` condition: its status and since when.
    pub ready: Option<(bool, i64)>,
    /// Since when a check shows `Flapping` (seconds since the epoch); None: it does not.
    pub flapping: Option<i64>,
}

impl ShownStatus {
    pub fn of_check(uid: Option<&str>, status: Option<&HealthCheckStatus>) -> Self {
        let Some(status) = status else {
            return ShownStatus { uid: parse_uid(uid), ..ShownStatus::default() };
        };
        ShownStatus {
            uid: parse_uid(uid),
            fingerprint: Some(check_fingerprint(status)),
            detail: Some(check_detail(status)),
            core: Some(check_core(status)),
            healthy: status.healthy,
            serving: None,
            condition: main_condition(&status.conditions, "Healthy"),
            ready: main_condition(&status.conditions, READY),
            flapping: main_condition(&status.conditions, FLAPPING)
                .and_then(|(on, since)| on.then_some(since)),
        }
    }

    pub fn of_record(uid: Option<&str>, status: Option<&FailoverRecordStatus>) -> Self {
        let Some(status) = status else {
            return ShownStatus { uid: parse_uid(uid), ..ShownStatus::default() };
        };
        let fingerprint = Some(record_fingerprint(status));
        ShownStatus {
            uid: parse_uid(uid),
            fingerprint,
            detail: fingerprint,
            core: Some(record_core(status)),
            healthy: status.healthy,
            serving: status.serving,
            condition: main_condition(&status.conditions, "Accepted"),
            ready: main_condition(&status.conditions, READY),
            flapping: None,
        }
    }
}

fn main_condition(conditions: &[Condition], type_: &str) -> Option<(bool, i64)> {
    let c = conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status == "True", c.last_transition_time.0.as_second()))
}

/// A uid is a UUID: kept as 16 bytes, not as a 36-byte string per object.
fn parse_uid(uid: Option<&str>) -> u128 {
    uid.and_then(|u| u128::from_str_radix(&u.replace('-', ""), 16).ok()).unwrap_or(0)
}

pub fn format_uid(uid: u128) -> Option<String> {
    (uid != 0).then(|| {
        let h = format!("{uid:032x}");
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    })
}

/// One object in [`LastSeen`].
#[derive(Clone, Debug, Default)]
pub struct SeenObject {
    pub shown: ShownStatus,
    /// The health / serving state last told in an Event (or found on the object).
    pub announced_healthy: Option<bool>,
    pub announced_serving: Option<bool>,
    /// A check's `Flapping` told in an Event (or found on the object).
    pub announced_flapping: bool,
    /// When this writer last wrote (or first compared) the status.
    pub refreshed: Option<Instant>,
    /// When this writer last started writing the status (`--status-min-interval`).
    pub written: Option<Instant>,
    /// When this writer last published an Event on the object.
    pub told: Option<Instant>,
    /// The health (checks) or serving (records) last decided, and how many times it
    /// changed since the last Event: what the next one covers.
    pub decided: Option<bool>,
    pub changes: u32,
}

impl SeenObject {
    /// What the object's Events are about, as decided now.
    fn state_of(key: &ObjectKey, desired: &DesiredStatus) -> Option<bool> {
        match key.0 {
            Kind::HealthCheck => desired.healthy,
            Kind::FailoverRecord => desired.serving,
        }
    }

    /// Takes a decision in: counts a change of what the Events are about.
    pub fn decided(&mut self, key: &ObjectKey, desired: &DesiredStatus) {
        let now = Self::state_of(key, desired);
        if self.decided.is_some() && now.is_some() && self.decided != now {
            self.changes = self.changes.saturating_add(1);
        }
        self.decided = now.or(self.decided);
    }

    /// Whether an Event may be published now: at most one per `interval`.
    pub fn may_tell(&self, interval: Duration, now: Instant) -> bool {
        self.told.is_none_or(|t| now.duration_since(t) >= interval)
    }

    /// An Event about the object is published (or held back, `note` None, with nothing
    /// left to tell): what it announced is what the next one compares with.
    pub fn announce(
        &mut self,
        key: &ObjectKey,
        desired: &DesiredStatus,
        note: Option<&PendingEvent>,
    ) {
        match key.0 {
            // Told it flaps: its verdict is told once it is steady, with the changes
            // it covers.
            Kind::HealthCheck if note.is_some_and(|n| n.reason == FLAPPING) => {
                self.announced_flapping = true;
                return;
            }
            Kind::HealthCheck => {
                self.announced_flapping &= desired.flapping.is_some();
                self.announced_healthy = desired.healthy;
            }
            Kind::FailoverRecord => self.announced_serving = desired.serving,
        }
        if note.is_some() {
            self.changes = 0;
        }
    }

    /// Whether the status may be written now: at most once per `interval`.
    pub fn may_write(&self, interval: Duration, now: Instant) -> bool {
        self.written.is_none_or(|t| now.duration_since(t) >= interval)
    }

    /// The object never showed a status and none is being written: a new object,
    /// written before refreshes and updates of the others.
    pub fn is_new(&self) -> bool {
        self.shown.fingerprint.is_none() && self.written.is_none()
    }
}

/// What the watches last showed of every object in scope: the writer writes only
/// where the object shows something else, and never for objects no longer here.
#[derive(Debug, Default)]
pub struct LastSeen {
    entries: FxHashMap<ObjectKey, SeenObject>,
}

impl LastSeen {
    /// The watch delivered the object (created, changed, or its status written).
    pub fn observe(&mut self, key: ObjectKey, shown: ShownStatus) {
        let entry = self.entries.entry(key).or_insert_with(|| SeenObject {
            announced_healthy: shown.healthy,
            announced_serving: shown.serving,
            announced_flapping: shown.flapping.is_some(),
            ..SeenObject::default()
        });
        entry.shown = shown;
    }

    pub fn forget(&mut self, key: &ObjectKey) {
        self.entries.remove(key);
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&SeenObject> {
        self.entries.get(key)
    }

    pub fn get_mut(&mut self, key: &ObjectKey) -> Option<&mut SeenObject> {
        self.entries.get_mut(key)
    }

    /// A new leader re-reads what events were told from the objects themselves.
    pub fn reset_announcements(&mut self) {
        for entry in self.entries.values_mut() {
            entry.announced_healthy = entry.shown.healthy;
            entry.announced_serving = entry.shown.serving;
            entry.announced_flapping = entry.shown.flapping.is_some();
            entry.refreshed = None;
            entry.written = None;
            entry.told = None;
            entry.decided = None;
            entry.changes = 0;
        }
    }
}

/// A status to write.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Check(HealthCheckStatus),
    Record(FailoverRecordStatus),
}

/// The status an object should show, with what the comparison and Events need.
#[derive(Clone, Debug)]
pub struct DesiredStatus {
    pub status: Status,
    pub fingerprint: u64,
    pub detail: u64,
    /// What is written at once even while held (see [`ShownStatus::core`]).
    pub core: u64,
    pub healthy: Option<bool>,
    pub serving: Option<bool>,
    /// Why, in words (the Event message).
    pub why: String,
    /// A check that flaps itself.
    pub flapping: Option<Flapping>,
    /// Held by a flapping check (itself, or one a record set of the record's name and
    /// type uses) until at least this time: no transition Events, verdict changes
    /// written only on refresh.
    pub held_until: Option<SystemTime>,
}

/// A check flapping: more than [`FLAP_THRESHOLD`] verdict changes within
/// [`FLAP_WINDOW`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flapping {
    /// Verdict changes in the last [`FLAP_WINDOW`].
    pub changes: u32,
    /// When it stops flapping unless the verdict changes again.
    pub until: SystemTime,
}

/// The condition, Event reason and condition reason of a flapping check.
pub const FLAPPING: &str = "Flapping";

/// Whether a check with these verdict changes flaps at `now`: it does while its
/// [`FLAP_THRESHOLD`] + 1 latest changes all lie within the last [`FLAP_WINDOW`], so
/// it stops once it has been below the threshold that long (10 quiet minutes after
/// a burst).
pub fn flapping(changes: &VerdictChanges, now: SystemTime) -> Option<Flapping> {
    let until = changes.nth_latest(FLAP_THRESHOLD)? + FLAP_WINDOW;
    (now < until).then(|| Flapping { changes: changes.count(now), until })
}

/// A check's own flapping, from the view.
fn check_flapping(view: &View, id: &ObjectRef, now: SystemTime) -> Option<Flapping> {
    flapping(view.verdict_changes.get(id)?, now)
}

/// Until when a record set is held by a flapping check: the latest end among the
/// checks of the record sets of its name and type (their health decides its share).
fn held_by_flapping(view: &View, set: &RecordSet, now: SystemTime) -> Option<SystemTime> {
    if view.verdict_changes.is_empty() {
        return None;
    }
    let sets = view.sets.get(&(set.name.clone(), set.rtype))?;
    let checks = sets.iter().filter_map(|s| s.health_check());
    checks.filter_map(|c| check_flapping(view, c, now)).map(|f| f.until).max()
}

fn flapping_condition(flapping: &Flapping, now: SystemTime) -> Condition {
    condition(
        FLAPPING,
        true,
        FLAPPING,
        format!(
            "the verdict changed {} times in the last {} minutes (more than {FLAP_THRESHOLD}): \
             status updates slowed and Healthy/Unhealthy Events held back until it is steady",
            flapping.changes,
            FLAP_WINDOW.as_secs() / 60
        ),
        now,
    )
}

/// The `status` of a HealthCheck: what cluster mode writes to the object and what
/// `/status` serves in standalone mode. `healthy` is the effective verdict; `leaf` is
/// what the probes established (none for calculated checks); `now` stands in for
/// transition times not known yet.
pub fn check_status(
    check: &Check,
    verdicts: &Verdicts,
    checkers: &Checkers,
    leaf: Option<&LeafHealth>,
    now: SystemTime,
) -> HealthCheckStatus {
    let healthy = verdicts.get(&check.id).unwrap_or_else(|| check.initial_healthy());
    let (mut reason, mut message) = match (&check.probe, leaf) {
        _ if check.disabled => (
            "Disabled".to_owned(),
            "health checking is disabled; the check counts as healthy".to_owned(),
        ),
        (Probe::Calculated { children, health_threshold }, _) => {
            let up = children
                .iter()
                .filter(|c| verdicts.get(&check.id.sibling(c)) == Some(true))
                .count();
            let reason = if up as u32 >= *health_threshold {
                "HealthThresholdMet"
            } else {
                "HealthThresholdNotMet"
            };
            let inverted = if check.inverted { " (inverted)" } else { "" };
            (
                reason.to_owned(),
                format!(
                    "{up} of {} children healthy, healthThreshold {health_threshold}{inverted}",
                    children.len()
                ),
            )
        }
        (_, Some(leaf)) => (leaf.reason.clone(), leaf.message.clone()),
        (_, None) => {
            let initial = LeafHealth::initial(check);
            (initial.reason, initial.message)
        }
    };
    let mut views = Vec::new();
    if checkers.on() && !check.disabled && check.is_checked_by_each_replica() {
        views = checker_views(check, checkers, leaf);
        let own_name = checkers.me.as_deref().unwrap_or(THIS_REPLICA);
        let own = leaf.map_or((check.initial_healthy(), false), |l| (l.healthy, l.established));
        let counts = checkers.counts(&check.id, own.0, own.1);
        (reason, message) = quorum_condition(&views, counts, own_name, healthy, reason, message);
    }
    let transition = leaf.and_then(|l| l.last_transition_time).unwrap_or(now);
    HealthCheckStatus {
        healthy: Some(healthy),
        conditions: vec![Condition {
            type_: "Healthy".into(),
            status: if healthy { "True" } else { "False" }.into(),
            reason,
            message,
            last_transition_time: Time(
                k8s_openapi::jiff::Timestamp::try_from(transition).unwrap_or_default(),
            ),
            observed_generation: None,
        }],
        last_probe_time: leaf.and_then(|l| l.last_probe_time).map(rfc3339),
        last_transition_time: leaf.and_then(|l| l.last_transition_time).map(rfc3339),
        consecutive_successes: leaf.map(|l| l.consecutive_successes.into()),
        consecutive_failures: leaf.map(|l| l.consecutive_failures.into()),
        last_latency_ms: leaf.and_then(|l| l.latency).map(|l| l.total_ms),
        checkers: views,
        endpoints: leaf
            .and_then(|l| l.endpoints)
            .map(|e| EndpointCounts { ready: e.ready.into(), healthy: e.healthy.into() }),
        observed_generation: None,
    }
}

/// What a check's own probing has established: the prober's live state of a probed
/// check, the published one of a check whose endpoints decide (Endpoints, serviceRef).
pub fn leaf(prober: &Prober, view: &View, id: &ObjectRef) -> Option<LeafHealth> {
    prober.state(id).or_else(|| view.endpoint_leaf(id))
}

/// Every live checker's view of a leaf check, by checker name, this replica's included.
pub fn checker_views(
    check: &Check,
    checkers: &Checkers,
    leaf: Option<&LeafHealth>,
) -> Vec<CheckerView> {
    // Before its first probe result, this replica's view is the check's starting point.
    let initial;
    let leaf = match leaf {
        Some(leaf) => leaf,
        None => {
            initial = LeafHealth::initial(check);
            &initial
        }
    };
    let own = CheckerView {
        name: checkers.me.as_deref().unwrap_or(THIS_REPLICA).to_owned(),
        healthy: leaf.established.then_some(leaf.healthy),
        reason: leaf.reason.clone(),
        last_transition_time: leaf.last_transition_time.map(rfc3339),
    };
    let peers = checkers.peer_views(&check.id).map(|(name, view)| CheckerView {
        name: name.to_string(),
        healthy: view.map_or(Some(true), |v| v.healthy),
        reason: view.map_or(HEALTHY, |v| &*v.reason).to_owned(),
        last_transition_time: view.map(|v| rfc3339(v.since)),
    });
    let mut views: Vec<CheckerView> = std::iter::once(own).chain(peers).collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    views
}

/// What a check's own name is among the checkers before it has one.
const THIS_REPLICA: &str = "this-replica";
/// How many checkers that see it otherwise the message names.
const NAMED_DISSENTERS: usize = 3;

/// The `Healthy` condition under the quorum: how many of the counted checkers see the
/// check healthy (`counts`) and who sees it otherwise; the reason is this replica's when
/// it agrees with the verdict, else that of the first checker that does.
// Owned in, owned out: the caller's own reason and message become the condition's.
fn quorum_condition(
    views: &[CheckerView],
    counts: (usize, usize),
    own_name: &str,
    healthy: bool,
    own_reason: String,
    own_message: String,
) -> (String, String) {
    let mut message = format!("{} of {} checkers report healthy", counts.0, counts.1);
    let dissenters: Vec<String> = views
        .iter()
        .filter(|v| v.healthy == Some(!healthy))
        .map(|v| format!("{}: {}", v.name, v.reason))
        .collect();
    if !dissenters.is_empty() {
        let shown = dissenters.len().min(NAMED_DISSENTERS);
        let more = dissenters.len() - shown;
        let more = if more > 0 { format!(", {more} more") } else { String::new() };
        message.push_str(&format!(" ({}{more})", dissenters[..shown].join(", ")));
    }
    let pending = views.iter().filter(|v| v.healthy.is_none()).count();
    if pending > 0 {
        message.push_str(&format!("; {pending} without a verdict yet"));
    }
    let own = views.iter().find(|v| v.name == own_name);
    let reason = if own.is_none_or(|own| own.healthy != Some(!healthy)) {
        message.push_str(&format!("; {own_name}: {own_message}"));
        own_reason
    } else {
        let agreeing = views.iter().find(|v| v.healthy == Some(healthy));
        agreeing.map_or(own_reason, |v| v.reason.clone())
    };
    (reason, message)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The status a HealthCheck should show; None when no such object exists.
pub fn desired_check(
    view: &View,
    id: &ObjectRef,
    leaf: Option<&LeafHealth>,
    now: SystemTime,
) -> Option<DesiredStatus> {
    let facts = view.facts(Kind::HealthCheck, id)?;
    let mut status = match view.checks.get(id) {
        Some(check) => check_status(check, &view.verdicts, &view.checkers, leaf, now),
        None => {
            let message =
                facts.problems.first().map_or_else(|| "the check is invalid".to_owned(), describe);
            HealthCheckStatus {
                healthy: Some(false),
                conditions: vec![condition("Healthy", false, "Invalid", message, now)],
                ..HealthCheckStatus::default()
            }
        }
    };
    status.conditions.insert(1, check_ready(&status.conditions[0], now));
    let flapping = view.checks.get(id).and_then(|_| check_flapping(view, id, now));
    if let Some(flapping) = &flapping {
        status.conditions.push(flapping_condition(flapping, now));
    }
    let generation = facts.generation;
    status.observed_generation = generation;
    for c in &mut status.conditions {
        c.observed_generation = generation;
    }
    let why = status
        .conditions
        .first()
        .map_or_else(String::new, |c| format!("{}: {}", c.reason, c.message));
    Some(DesiredStatus {
        fingerprint: check_fingerprint(&status),
        detail: check_detail(&status),
        core: check_core(&status),
        healthy: status.healthy,
        serving: None,
        why,
        held_until: flapping.map(|f| f.until),
        flapping,
        status: Status::Check(status),
    })
}

/// The status a FailoverRecord should show; None when no such object exists.
pub fn desired_record(
    view: &View,
    engine: &mut Engine<'_>,
    id: &ObjectRef,
    now: SystemTime,
) -> Option<DesiredStatus> {
    let facts = view.facts(Kind::FailoverRecord, id)?;
    let problems = &facts.problems;
    let generation = facts.generation;
    let error = problems.iter().find(|p| p.severity == Severity::Error);
    let warnings: Vec<String> =
        problems.iter().filter(|p| p.severity == Severity::Warning).map(describe).collect();
    let held_until = facts.accepted.as_ref().and_then(|set| held_by_flapping(view, set, now));
    let (mut accepted, healthy, serving, why) = match (error, &facts.accepted) {
        (Some(p), _) => (
            condition("Accepted", false, rejection_reason(facts, p), describe(p), now),
            None,
            false,
            format!("rejected: {}", describe(p)),
        ),
        (None, None) => {
            // Valid on its own and not rejected, yet not accepted: cannot happen; say so.
            let c = condition(
                "Accepted",
                false,
                "NotServed",
                "the record is not part of the served data".into(),
                now,
            );
            (c, None, false, "not part of the served data".into())
        }
        (None, Some(set)) => {
            let message = if warnings.is_empty() {
                "the record is valid and served".to_owned()
            } else {
                warnings.join("; ")
            };
            let key = (set.name.clone(), set.rtype);
            let position =
                view.sets.get(&key).and_then(|sets| sets.iter().position(|s| s.id == *id));
            let decision = engine.decide(&key);
            let candidate = position.zip(decision.as_ref()).and_then(|(i, d)| d.candidates.get(i));
            let (healthy, serving, why) = match (candidate, &decision) {
                (Some(c), Some(d)) => {
                    let serving = matches!(c.selection, Selection::Chosen | Selection::Eligible)
                        && c.probability > 0.0;
                    (Some(c.healthy), serving, format!("{}; {}", c.health, d.rule))
                }
                _ => (None, false, "no decision for its name and type".to_owned()),
            };
            (condition("Accepted", true, "Accepted", message, now), healthy, serving, why)
        }
    };
    accepted.observed_generation = generation;
    // Accepted and up to date with the generation (written together): Ready.
    let mut ready = accepted.clone();
    ready.type_ = READY.into();
    let mut conditions = vec![accepted, ready];
    if let Some(mut c) = facts.accepted.as_ref().and_then(|set| object_condition(set, now)) {
        c.observed_generation = generation;
        conditions.push(c);
    }
    let status = FailoverRecordStatus {
        serving: Some(serving),
        healthy,
        conditions,
        observed_generation: generation,
    };
    let fingerprint = record_fingerprint(&status);
    Some(DesiredStatus {
        fingerprint,
        // A record's status has no times: nothing to refresh apart from a change.
        detail: fingerprint,
        core: record_core(&status),
        healthy: status.healthy,
        serving: Some(serving),
        why,
        flapping: None,
        held_until,
        status: Status::Record(status),
    })
}

/// A record whose data comes from an object (`valuesFrom`): whether that object gives
/// it usable addresses now (`Resolved`, reason `NoAddresses` or `NoEndpoints`).
fn object_condition(set: &RecordSet, now: SystemTime) -> Option<Condition> {
    let RecordData::Object(from) = &set.data else { return None };
    let reason = if from.healthy { "AddressesFound" } else { from.reason };
    Some(condition("Resolved", from.healthy, reason, from.message.to_string(), now))
}

/// Conflicts name the older object they lost to; an alias target that is missing or
/// closes a cycle is its own reason; anything else is wrong in the object itself.
/// The `Accepted` reason of a record turned away from a name another namespace owns.
pub const NAME_OWNED_ELSEWHERE: &str = "NameOwnedElsewhere";
/// The `Accepted` reason of a record no NameDelegation lets serve its name.
pub const NOT_DELEGATED: &str = "NotDelegated";

fn rejection_reason(facts: &Facts, problem: &Problem) -> &'static str {
    if !facts.rejected_by_relation {
        "Invalid"
    } else if problem.field == OWNED_ELSEWHERE_FIELD {
        NAME_OWNED_ELSEWHERE
    } else if problem.field == "spec.name" && problem.message.starts_with(NOT_DELEGATED_PREFIX) {
        NOT_DELEGATED
    } else if problem.field == "spec.aliasTarget.name" {
        "InvalidAliasTarget"
    } else if problem.field == "spec.failover" && problem.message.contains("no PRIMARY") {
        "MissingPrimary"
    } else {
        "Conflict"
    }
}

/// `field: message`, so the status names the field.
fn describe(problem: &Problem) -> String {
    format!("{}: {}", problem.field, problem.message)
}

/// The condition GitOps tools and `kubectl wait --for=condition=Ready` read (kstatus):
/// a record is Ready when accepted, a check once it has a verdict (its first probe
/// result, or at once when nothing is probed); both only for the generation the status
/// was written for (`observedGeneration`).
pub const READY: &str = "Ready";

fn check_ready(healthy: &Condition, now: SystemTime) -> Condition {
    let (ok, reason, message) = match healthy.reason.as_str() {
        "Invalid" => (false, "Invalid", format!("the check is not used: {}", healthy.message)),
        "Pending" => (false, "Pending", "waiting for the first probe result".to_owned()),
        _ => (true, "Checked", "the check has a verdict".to_owned()),
    };
    condition(READY, ok, reason, message, now)
}

fn condition(
    type_: &str,
    ok: bool,
    reason: impl Into<String>,
    message: String,
    now: SystemTime,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::try_from(now).unwrap_or_default()),
        observed_generation: None,
    }
}

/// Keeps the main condition's transition time when its status did not change (a
/// rewrite for another field must not pretend a transition).
pub fn keep_transition_time(status: &mut Status, shown: &ShownStatus) {
    let Some((was, since)) = shown.condition else { return };
    let conditions = match status {
        Status::Check(s) => &mut s.conditions,
        Status::Record(s) => &mut s.conditions,
    };
    if let Some(c) = conditions.first_mut()
        && (c.status == "True") == was
        && let Ok(t) = k8s_openapi::jiff::Timestamp::from_second(since)
    {
        c.last_transition_time = Time(t);
    }
    if let Some((was, since)) = shown.ready
        && let Some(c) = conditions.iter_mut().find(|c| c.type_ == READY)
        && (c.status == "True") == was
        && let Ok(t) = k8s_openapi::jiff::Timestamp::from_second(since)
    {
        c.last_transition_time = Time(t);
    }
    // Flapping since it started, not since the latest write.
    if let Some(since) = shown.flapping
        && let Some(c) = conditions.iter_mut().find(|c| c.type_ == FLAPPING)
        && let Ok(t) = k8s_openapi::jiff::Timestamp::from_second(since)
    {
        c.last_transition_time = Time(t);
    }
}

/// What a HealthCheck status change is written for: the verdict, the reason and the
/// generation; probe times, counts and latency alone only on refresh.
pub fn check_fingerprint(status: &HealthCheckStatus) -> u64 {
    let mut h = DefaultHasher::new();
    status.healthy.hash(&mut h);
    status.observed_generation.hash(&mut h);
    for c in status.conditions.iter().filter(|c| c.type_ == "Healthy" || c.type_ == READY) {
        (&c.status, &c.reason).hash(&mut h);
    }
    flapping_shown(status).hash(&mut h);
    status.endpoints.as_ref().map(|e| (e.ready, e.healthy)).hash(&mut h);
    // Who sees it unhealthy and who has no verdict yet. A healthy checker that comes or
    // goes (a rolling restart replaces them all) only changes the counts: detail,
    // refreshed, so it does not rewrite every check's status at once.
    let not_healthy = status.checkers.iter().filter(|c| c.healthy != Some(true));
    not_healthy.for_each(|c| (&c.name, c.healthy).hash(&mut h));
    h.finish()
}

/// Whether a check status shows `Flapping`.
fn flapping_shown(status: &HealthCheckStatus) -> bool {
    status.conditions.iter().any(|c| c.type_ == FLAPPING && c.status == "True")
}

/// What a held HealthCheck status is written for at once: the generation and whether
/// it flaps (its verdict, reason and checkers are refreshed).
pub fn check_core(status: &HealthCheckStatus) -> u64 {
    let mut h = DefaultHasher::new();
    (status.observed_generation, flapping_shown(status)).hash(&mut h);
    h.finish()
}

/// What a held FailoverRecord status is written for at once: the generation and the
/// `Accepted` condition (`healthy` and `serving` are refreshed).
pub fn record_core(status: &FailoverRecordStatus) -> u64 {
    let mut h = DefaultHasher::new();
    status.observed_generation.hash(&mut h);
    if let Some(c) = status.conditions.iter().find(|c| c.type_ == "Accepted") {
        (&c.status, &c.reason, &c.message).hash(&mut h);
    }
    h.finish()
}

/// The rest of a HealthCheck status: what a refresh brings up to date.
pub fn check_detail(status: &HealthCheckStatus) -> u64 {
    let mut h = DefaultHasher::new();
    (
        &status.last_probe_time,
        &status.last_transition_time,
        status.consecutive_successes,
        status.consecutive_failures,
    )
        .hash(&mut h);
    status.last_latency_ms.map(f64::to_bits).hash(&mut h);
    status.conditions.iter().for_each(|c| c.message.hash(&mut h));
    status.checkers.iter().for_each(|c| (&c.name, &c.reason, &c.last_transition_time).hash(&mut h));
    h.finish()
}

/// Everything a FailoverRecord status says (it has no times of its own).
pub fn record_fingerprint(status: &FailoverRecordStatus) -> u64 {
    let mut h = DefaultHasher::new();
    (status.healthy, status.serving, status.observed_generation).hash(&mut h);
    let significant = ["Accepted", READY, "Resolved"];
    for c in status.conditions.iter().filter(|c| significant.contains(&c.type_.as_str())) {
        (&c.status, &c.reason, &c.message).hash(&mut h);
    }
    h.finish()
}

/// An Event to publish on an object.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingEvent {
    pub key: ObjectKey,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What a decision means for an object's Events.
#[derive(Clone, Debug, PartialEq)]
pub enum Tell {
    /// Nothing to tell: what was told (or the object shows) is still true.
    Nothing,
    /// A change to tell, held back while a flapping check holds the object.
    Held,
    /// An Event to publish.
    Event(PendingEvent),
}

/// The Event a new desired status calls for, given what was told last (the writer
/// then publishes at most one per object and `--status-min-interval`). A check
/// nobody told about yet starts from its initial health (healthy, or unhealthy when
/// inverted); a record that never showed a status does not announce that it serves. A
/// check that starts flapping is told once (Warning `Flapping`); while a flapping
/// check holds an object, its transitions are held back, and told (if still true)
/// once it is steady.
pub fn transition(
    key: &ObjectKey,
    entry: &SeenObject,
    desired: &DesiredStatus,
    initial_healthy: bool,
) -> Tell {
    let covers = |message: String| match entry.changes {
        0 | 1 => message,
        n => format!("{message} ({n} changes since the last Event)"),
    };
    match key.0 {
        Kind::HealthCheck => {
            if let Some(flapping) = &desired.flapping
                && !entry.announced_flapping
            {
                return Tell::Event(PendingEvent {
                    key: key.clone(),
                    warning: true,
                    reason: FLAPPING,
                    message: format!(
                        "the verdict changed {} times in the last {} minutes (more than \
                         {FLAP_THRESHOLD}); no Healthy/Unhealthy Events for it, nor \
                         Serving/NotServing for its records, until it is steady",
                        flapping.changes,
                        FLAP_WINDOW.as_secs() / 60
                    ),
                });
            }
            let before = entry.announced_healthy.unwrap_or(initial_healthy);
            let Some(now) = desired.healthy else { return Tell::Nothing };
            told(before, now, desired, || PendingEvent {
                key: key.clone(),
                warning: !now,
                reason: if now { "Healthy" } else { "Unhealthy" },
                message: covers(desired.why.clone()),
            })
        }
        Kind::FailoverRecord => {
            // Turned away from a name another namespace owns, or no delegation lets it
            // serve: told once, as a warning.
            if let Status::Record(status) = &desired.status
                && let Some(c) = status.conditions.iter().find(|c| c.type_ == "Accepted")
                && (c.reason == NAME_OWNED_ELSEWHERE || c.reason == NOT_DELEGATED)
                && entry.shown.condition.is_none_or(|(accepted, _)| accepted)
            {
                return Tell::Event(PendingEvent {
                    key: key.clone(),
                    warning: true,
                    reason: REJECTED,
                    message: c.message.clone(),
                });
            }
            let (Some(before), Some(now)) = (entry.announced_serving, desired.serving) else {
                return Tell::Nothing;
            };
            told(before, now, desired, || PendingEvent {
                key: key.clone(),
                warning: false,
                reason: if now { "Serving" } else { "NotServing" },
                message: covers(format!(
                    "{}: {}",
                    if now { "serving" } else { "not serving" },
                    desired.why
                )),
            })
        }
    }
}

/// What a change from `before` to `now` calls for: nothing when there is none, held
/// while a flapping check holds the object, else the Event.
fn told(
    before: bool,
    now: bool,
    desired: &DesiredStatus,
    event: impl FnOnce() -> PendingEvent,
) -> Tell {
    if before == now {
        Tell::Nothing
    } else if desired.held_until.is_some() {
        Tell::Held
    } else {
        Tell::Event(event())
    }
}

/// The Event reason of a record turned away from a name (told at once: it is no
/// transition that could flap).
pub const REJECTED: &str = "Rejected";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Change, Fqdn, Input};
    use crate::resources::{
        FailoverRecordSpec, FailoverRole, HealthCheckSpec, HealthCheckType, RecordType,
        RoutingPolicy,
    };
    use crate::snapshot::ZoneSettings;
    use crate::state::State;

    /// A state that tracks status, with `changes` applied and `unhealthy` checks failing.
    fn view(changes: Vec<Change>, unhealthy: &[&str]) -> Arc<View> {
        let zones = vec![Fqdn::parse("example.test").unwrap()];
        let mut state =
            State::new(ZoneSettings { zones, nameservers: vec![], soa_ttl: 60, negative_ttl: 60 });
        state.track_status();
        state.apply(changes);
        let failing = unhealthy.iter().map(|n| {
            let id = ObjectRef::new("ns", n);
            let mut leaf = LeafHealth::initial(&state.model().checks[&id]);
            leaf.healthy = false;
            (id, leaf)
        });
        let failing: Vec<_> = failing.collect();
        state.set_health(failing);
        state.view.load_full()
    }

    fn check(name: &str) -> Change {
        let spec = HealthCheckSpec {
            type_: HealthCheckType::Tcp,
            ip_address: Some("127.0.0.1".into()),
            port: Some(9),
            ..HealthCheckSpec::default()
        };
        Change::Check(Input {
            id: ObjectRef::new("ns", name),
            seq: 0,
            file: None,
            generation: Some(3),
            spec,
        })
    }

    fn failover(name: &str, role: FailoverRole, check: &str, ip: &str, seq: u64) -> Change {
        let spec = FailoverRecordSpec {
            name: "www.example.test".into(),
            type_: RecordType::A,
            routing_policy: Some(RoutingPolicy::Failover),
            set_identifier: Some(name.into()),
            failover: Some(role),
            health_check_name: Some(check.into()),
            values: Some(vec![ip.into()]),
            ..FailoverRecordSpec::default()
        };
        Change::Record(Input {
            id: ObjectRef::new("ns", name),
            seq,
            file: None,
            generation: Some(2),
            spec,
        })
    }

    fn record_of(d: &DesiredStatus) -> &FailoverRecordStatus {
        match &d.status {
            Status::Record(s) => s,
            Status::Check(_) => panic!("a check status"),
        }
    }

    #[test]
    fn a_failover_pair_serves_the_live_member_and_says_why() {
        let changes = || {
            vec![
                check("hc"),
                failover("primary", FailoverRole::Primary, "hc", "192.0.2.1", 1),
                failover("secondary", FailoverRole::Secondary, "hc2", "192.0.2.2", 2),
            ]
        };
        let v = view(changes(), &[]);
        let now = SystemTime::now();
        let mut engine = Engine::new(&*v, &v.verdicts);
        let primary =
            desired_record(&v, &mut engine, &ObjectRef::new("ns", "primary"), now).unwrap();
        let secondary =
            desired_record(&v, &mut engine, &ObjectRef::new("ns", "secondary"), now).unwrap();
        assert_eq!((primary.healthy, primary.serving), (Some(true), Some(true)));
        // hc2 does not exist: accepted with a warning, unhealthy, standing by.
        assert_eq!((secondary.healthy, secondary.serving), (Some(false), Some(false)));
        let s = record_of(&secondary);
        assert_eq!(s.conditions[0].status, "True");
        assert!(
            s.conditions[0].message.contains("spec.healthCheckName"),
            "{}",
            s.conditions[0].message
        );
        assert_eq!(s.observed_generation, Some(2));

        // The primary's check fails: nothing is healthy, so the PRIMARY still answers.
        let v = view(changes(), &["hc"]);
        let mut engine = Engine::new(&*v, &v.verdicts);
        let after = desired_record(&v, &mut engine, &ObjectRef::new("ns", "primary"), now).unwrap();
        assert_eq!((after.healthy, after.serving), (Some(false), Some(true)));
        assert_ne!(after.fingerprint, primary.fingerprint);
        assert!(after.why.contains("health check hc is unhealthy"), "{}", after.why);
    }

    /// Two PRIMARY record sets of one name: the younger (`b`) conflicts.
    fn two_primaries() -> Arc<View> {
        view(
            vec![
                check("hc"),
                failover("a", FailoverRole::Primary, "hc", "192.0.2.1", 1),
                failover("b", FailoverRole::Primary, "hc", "192.0.2.2", 2),
            ],
            &[],
        )
    }

    #[test]
    fn a_conflict_is_not_accepted_and_names_the_older_object() {
        let v = two_primaries();
        let mut engine = Engine::new(&*v, &v.verdicts);
        let b =
            desired_record(&v, &mut engine, &ObjectRef::new("ns", "b"), SystemTime::now()).unwrap();
        let s = record_of(&b);
        assert_eq!(
            (s.conditions[0].status.as_str(), s.conditions[0].reason.as_str()),
            ("False", "Conflict")
        );
        assert!(s.conditions[0].message.contains("ns/a"), "{}", s.conditions[0].message);
        assert!(
            s.conditions[0].message.starts_with("spec.failover"),
            "{}",
            s.conditions[0].message
        );
        assert_eq!((s.serving, s.healthy), (Some(false), None));
        assert!(
            desired_record(&v, &mut engine, &ObjectRef::new("ns", "gone"), SystemTime::now())
                .is_none()
        );
    }

    fn ready(conditions: &[Condition]) -> (&str, &str, Option<i64>) {
        let c = conditions.iter().find(|c| c.type_ == READY).expect("a Ready condition");
        (c.status.as_str(), c.reason.as_str(), c.observed_generation)
    }

    #[test]
    fn ready_follows_acceptance_and_a_first_verdict_and_keeps_its_transition_time() {
        let v = two_primaries();
        let now = SystemTime::now();
        let mut engine = Engine::new(&*v, &v.verdicts);
        let a = desired_record(&v, &mut engine, &ObjectRef::new("ns", "a"), now).unwrap();
        assert_eq!(ready(&record_of(&a).conditions), ("True", "Accepted", Some(2)));
        let b = desired_record(&v, &mut engine, &ObjectRef::new("ns", "b"), now).unwrap();
        assert_eq!(ready(&record_of(&b).conditions), ("False", "Conflict", Some(2)));

        let id = ObjectRef::new("ns", "hc");
        let pending = desired_check(&v, &id, None, now).unwrap();
        let Status::Check(status) = &pending.status else { panic!() };
        assert_eq!(status.conditions[0].type_, "Healthy", "the main condition stays first");
        assert_eq!(ready(&status.conditions), ("False", "Pending", Some(3)));
        let mut leaf = LeafHealth::initial(&v.checks[&id]);
        (leaf.reason, leaf.established) = ("Healthy".into(), true);
        let checked = desired_check(&v, &id, Some(&leaf), now).unwrap();
        assert_ne!(checked.fingerprint, pending.fingerprint, "a first verdict is written");
        let Status::Check(status) = &checked.status else { panic!() };
        assert_eq!(ready(&status.conditions), ("True", "Checked", Some(3)));

        // A later rewrite keeps the time Ready became True.
        let shown = ShownStatus::of_check(None, Some(status));
        let later = now + std::time::Duration::from_secs(600);
        let mut rewrite = desired_check(&v, &id, Some(&leaf), later).unwrap().status;
        keep_transition_time(&mut rewrite, &shown);
        let Status::Check(rewritten) = &rewrite else { panic!() };
        let time = |s: &HealthCheckStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == READY)
                .unwrap()
                .last_transition_time
                .0
                .as_second()
        };
        assert_eq!(time(rewritten), time(status));
    }

    #[test]
    fn a_check_status_is_rewritten_for_verdict_reason_or_generation_only() {
        let v = view(vec![check("hc")], &["hc"]);
        let id = ObjectRef::new("ns", "hc");
        let mut leaf = LeafHealth::initial(&v.checks[&id]);
        leaf.healthy = false;
        leaf.reason = "ConnectionRefused".into();
        leaf.consecutive_failures = 3;
        let t0 = SystemTime::now();
        let d = desired_check(&v, &id, Some(&leaf), t0).unwrap();
        // Only counts and times moved: the same fingerprint.
        leaf.consecutive_failures = 9;
        leaf.last_probe_time = Some(t0);
        let later =
            desired_check(&v, &id, Some(&leaf), t0 + std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(d.fingerprint, later.fingerprint);
        leaf.reason = "Timeout".into();
        assert_ne!(desired_check(&v, &id, Some(&leaf), t0).unwrap().fingerprint, d.fingerprint);
        // What the object shows compares equal to what was computed.
        let Status::Check(status) = &d.status else { panic!() };
        assert_eq!(ShownStatus::of_check(None, Some(status)).fingerprint, Some(d.fingerprint));
        assert_eq!(status.observed_generation, Some(3));
    }

    #[test]
    fn under_the_quorum_the_status_is_the_combined_verdict_and_names_every_checker() {
        let zones = vec![Fqdn::parse("example.test").unwrap()];
        let mut state =
            State::new(ZoneSettings { zones, nameservers: vec![], soa_ttl: 60, negative_ttl: 60 });
        state.track_status();
        state.set_quorum(18);
        state.set_identity(Arc::from("replica-b"));
        state.apply([check("hc")]);
        let id = ObjectRef::new("ns", "hc");
        let mut leaf = LeafHealth::initial(&state.model().checks[&id]);
        (leaf.healthy, leaf.established, leaf.reason, leaf.message) =
            (false, true, "TargetDenied".into(), "denied by --probe-deny".into());
        state.set_health([(id.clone(), leaf.clone())]);
        for peer in ["replica-a", "replica-c"] {
            state.checker_report(&Arc::from(peer), Arc::from([]), []);
        }
        let desired = |state: &State| {
            let view = state.view.load_full();
            desired_check(&view, &id, Some(&leaf), SystemTime::now()).unwrap()
        };
        let d = desired(&state);
        let Status::Check(status) = &d.status else { panic!() };
        assert_eq!(status.healthy, Some(true), "2 of 3 see it healthy: more than 18 %");
        let c = &status.conditions[0];
        assert_eq!(c.message, "2 of 3 checkers report healthy (replica-b: TargetDenied)");
        assert_eq!(c.reason, "Healthy", "the reason of a checker that agrees");
        let names: Vec<(&str, Option<bool>)> =
            status.checkers.iter().map(|c| (c.name.as_str(), c.healthy)).collect();
        let (up, down) = (Some(true), Some(false));
        assert_eq!(names, [("replica-a", up), ("replica-b", down), ("replica-c", up)]);

        // A healthy checker replaced by another (a rolling restart): no rewrite.
        state.forget_checker("replica-c");
        state.checker_report(&Arc::from("replica-d"), Arc::from([]), []);
        assert_eq!(desired(&state).fingerprint, d.fingerprint);
        assert_ne!(desired(&state).detail, d.detail, "the list catches up on refresh");
        // Another checker sees it unhealthy: a rewrite.
        let view = crate::health::PeerView {
            healthy: Some(false),
            reason: Arc::from("Timeout"),
            since: SystemTime::now(),
        };
        let before = desired(&state).fingerprint;
        state.checker_report(&Arc::from("replica-a"), Arc::from([]), [(id.clone(), Some(view))]);
        let d = desired(&state);
        assert_ne!(d.fingerprint, before);
        let Status::Check(status) = &d.status else { panic!() };
        assert_eq!(status.healthy, Some(true), "1 of 3 is still more than 18 %");
        assert!(status.conditions[0].message.starts_with("1 of 3 checkers report healthy"));
    }

    fn check_desired(healthy: bool) -> DesiredStatus {
        DesiredStatus {
            status: Status::Check(HealthCheckStatus::default()),
            fingerprint: 0,
            detail: 0,
            core: 0,
            healthy: Some(healthy),
            serving: None,
            why: "ConnectionRefused: x".into(),
            flapping: None,
            held_until: None,
        }
    }

    fn record_desired(serving: bool) -> DesiredStatus {
        DesiredStatus {
            status: Status::Record(FailoverRecordStatus::default()),
            fingerprint: 0,
            detail: 0,
            core: 0,
            healthy: None,
            serving: Some(serving),
            why: "because".into(),
            flapping: None,
            held_until: None,
        }
    }

    fn event(tell: Tell) -> PendingEvent {
        match tell {
            Tell::Event(e) => e,
            other => panic!("no Event: {other:?}"),
        }
    }

    #[test]
    fn transitions_announce_changes_only() {
        let key = (Kind::HealthCheck, ObjectRef::new("ns", "hc"));
        let desired = check_desired;
        let fresh = SeenObject::default();
        assert_eq!(
            transition(&key, &fresh, &desired(true), true),
            Tell::Nothing,
            "a new check starts healthy"
        );
        let note = event(transition(&key, &fresh, &desired(false), true));
        assert_eq!((note.reason, note.warning), ("Unhealthy", true));
        let told = SeenObject { announced_healthy: Some(false), ..SeenObject::default() };
        assert_eq!(event(transition(&key, &told, &desired(true), true)).reason, "Healthy");

        let rkey = (Kind::FailoverRecord, ObjectRef::new("ns", "r"));
        let serving = record_desired;
        assert_eq!(
            transition(&rkey, &fresh, &serving(true), true),
            Tell::Nothing,
            "a new record does not announce itself"
        );
        let told = SeenObject { announced_serving: Some(true), ..SeenObject::default() };
        assert_eq!(event(transition(&rkey, &told, &serving(false), true)).reason, "NotServing");
    }

    #[test]
    fn events_collapse_the_changes_in_between_and_a_flap_and_back_tells_nothing() {
        let key = (Kind::FailoverRecord, ObjectRef::new("ns", "r"));
        let mut entry = SeenObject::default();
        let t0 = Instant::now();
        let interval = Duration::from_secs(5);
        // Serving from the start: decided silently.
        entry.decided(&key, &record_desired(true));
        assert_eq!(transition(&key, &entry, &record_desired(true), true), Tell::Nothing);
        entry.announce(&key, &record_desired(true), None);
        entry.decided(&key, &record_desired(true));
        assert!(entry.may_tell(interval, t0), "nothing told yet");

        // A change, told at once.
        entry.decided(&key, &record_desired(false));
        let note = event(transition(&key, &entry, &record_desired(false), true));
        assert_eq!(note.message, "not serving: because", "one change: no count");
        entry.announce(&key, &record_desired(false), Some(&note));
        entry.told = Some(t0);

        // Within the interval: nothing may be told; a flap and back leaves nothing to tell.
        let soon = t0 + Duration::from_secs(2);
        assert!(!entry.may_tell(interval, soon));
        entry.decided(&key, &record_desired(true));
        entry.decided(&key, &record_desired(false));
        assert_eq!(transition(&key, &entry, &record_desired(false), true), Tell::Nothing);
        // Three more changes: the next Event covers all of them.
        entry.decided(&key, &record_desired(true));
        assert!(entry.may_tell(interval, t0 + interval));
        let note = event(transition(&key, &entry, &record_desired(true), true));
        assert_eq!(note.reason, "Serving");
        assert!(note.message.ends_with("(3 changes since the last Event)"), "{}", note.message);
        entry.announce(&key, &record_desired(true), Some(&note));
        assert_eq!(entry.changes, 0);
    }

    #[test]
    fn writes_wait_for_the_interval_and_new_objects_come_first() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(5);
        let mut entry = SeenObject::default();
        assert!(entry.is_new() && entry.may_write(interval, t0));
        entry.written = Some(t0);
        assert!(!entry.is_new(), "being written");
        assert!(!entry.may_write(interval, t0 + Duration::from_secs(4)));
        assert!(entry.may_write(interval, t0 + interval));
        let shown = ShownStatus { fingerprint: Some(1), ..ShownStatus::default() };
        let mut lead = SeenObject { shown, ..SeenObject::default() };
        assert!(!lead.is_new(), "shows a status already");
        lead.told = Some(t0);
        lead.written = Some(t0);
        lead.changes = 3;
        let mut seen = LastSeen::default();
        seen.entries.insert((Kind::HealthCheck, ObjectRef::new("ns", "hc")), lead);
        seen.reset_announcements();
        let e = seen.get(&(Kind::HealthCheck, ObjectRef::new("ns", "hc"))).unwrap();
        assert!(e.written.is_none() && e.told.is_none() && e.changes == 0, "a new leader's term");
    }

    /// Changes `at` these offsets from `t0`.
    fn changes(t0: SystemTime, offsets: impl IntoIterator<Item = Duration>) -> VerdictChanges {
        let mut c = VerdictChanges::default();
        offsets.into_iter().for_each(|d| c.record(t0 + d));
        c
    }

    #[test]
    fn a_check_flaps_above_ten_changes_in_ten_minutes_until_ten_quiet_minutes() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let every = |n: u32, step: Duration| (0..n).map(move |i| step * i);
        let ms200 = Duration::from_millis(200);
        // Ten changes: not yet.
        let ten = changes(t0, every(10, ms200));
        assert_eq!(flapping(&ten, t0 + Duration::from_secs(2)), None);
        assert_eq!(ten.count(t0 + Duration::from_secs(2)), 10);
        // The eleventh: it flaps, until ten minutes after the oldest of the last eleven.
        let eleven = changes(t0, every(11, ms200));
        let f = flapping(&eleven, t0 + Duration::from_secs(3)).unwrap();
        assert_eq!((f.changes, f.until), (11, t0 + FLAP_WINDOW));
        assert!(flapping(&eleven, t0 + FLAP_WINDOW - Duration::from_millis(1)).is_some());
        assert_eq!(flapping(&eleven, t0 + FLAP_WINDOW), None, "below the threshold again");
        // Eleven changes spread over more than ten minutes never flap.
        let slow = changes(t0, every(11, Duration::from_secs(61)));
        assert_eq!(flapping(&slow, t0 + Duration::from_secs(610)), None);

        // 300 changes a minute for two minutes: the count says so, and it flaps until ten
        // quiet minutes after the burst.
        let burst = changes(t0, every(600, ms200));
        let last = t0 + ms200 * 599;
        let f = flapping(&burst, last).unwrap();
        assert!((600..=600 + 300).contains(&f.changes), "{}", f.changes);
        assert_eq!(f.until, last - ms200 * 10 + FLAP_WINDOW);
        assert_eq!(flapping(&burst, last + FLAP_WINDOW), None);
        assert_eq!(burst.count(last + Duration::from_secs(3600)), 0, "long past");
        // A clock that steps back counts the change at the latest time seen.
        let mut back = changes(t0, every(11, ms200));
        back.record(t0 - Duration::from_secs(60));
        assert_eq!(back.nth_latest(0), back.nth_latest(1));
    }

    /// A check and a failover pair using it, the check's verdict flipped `flips` times.
    fn flipped(flips: usize) -> (State, ObjectRef) {
        let zones = vec![Fqdn::parse("example.test").unwrap()];
        let mut state =
            State::new(ZoneSettings { zones, nameservers: vec![], soa_ttl: 60, negative_ttl: 60 });
        state.track_status();
        state.apply(vec![
            check("hc"),
            failover("primary", FailoverRole::Primary, "hc", "192.0.2.1", 1),
            failover("secondary", FailoverRole::Secondary, "other", "192.0.2.2", 2),
        ]);
        let id = ObjectRef::new("ns", "hc");
        let mut leaf = LeafHealth::initial(&state.model().checks[&id]);
        for _ in 0..flips {
            leaf.healthy = !leaf.healthy;
            state.set_health([(id.clone(), leaf.clone())]);
        }
        (state, id)
    }

    #[test]
    fn verdict_changes_are_counted_where_they_happen_and_only_for_checks_that_changed() {
        let (state, id) = flipped(0);
        assert!(state.view.load().verdict_changes.is_empty(), "nothing for a steady check");
        let (mut state, id2) = flipped(4);
        assert_eq!(id, id2);
        let view = state.view.load_full();
        let counted = view.verdict_changes.get(&id).expect("the check that changed");
        assert_eq!(counted.count(SystemTime::now()), 4);
        // The same leaf again (a probe that changes nothing) counts nothing.
        let leaf = state.health().get(&id).cloned().unwrap();
        state.set_health([(id.clone(), leaf)]);
        assert_eq!(state.view.load().verdict_changes[&id].count(SystemTime::now()), 4);
        // A deleted check takes its count along.
        state.apply([Change::RemoveCheck(id.clone())]);
        assert!(state.view.load().verdict_changes.get(&id).is_none());
    }

    #[test]
    fn a_flapping_check_gets_the_condition_and_holds_itself_and_its_records() {
        let now = SystemTime::now();
        // Ten changes: steady enough.
        let (state, id) = flipped(10);
        let view = state.view.load_full();
        let d = desired_check(&view, &id, state.health().get(&id), now).unwrap();
        let Status::Check(status) = &d.status else { panic!() };
        assert!(status.conditions.iter().all(|c| c.type_ != FLAPPING));
        assert_eq!((d.flapping, d.held_until), (None, None));

        // The eleventh.
        let (mut state, id) = flipped(11);
        let view = state.view.load_full();
        let d = desired_check(&view, &id, state.health().get(&id), now).unwrap();
        let Status::Check(status) = &d.status else { panic!() };
        let c = status.conditions.iter().find(|c| c.type_ == FLAPPING).expect("Flapping");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", FLAPPING));
        assert!(c.message.starts_with("the verdict changed 11 times"), "{}", c.message);
        assert_eq!(status.conditions[0].type_, "Healthy", "the main condition stays first");
        assert_eq!(d.flapping.map(|f| f.changes), Some(11));
        assert!(d.held_until.is_some_and(|t| t > now + FLAP_WINDOW - Duration::from_secs(60)));
        // What the object shows once written compares equal, and knows it flaps.
        let shown = ShownStatus::of_check(None, Some(status));
        assert_eq!((shown.fingerprint, shown.core), (Some(d.fingerprint), Some(d.core)));
        assert!(shown.flapping.is_some());
        // Both records of the name are held (the SECONDARY's share follows the check).
        let mut engine = Engine::new(&*view, &view.verdicts);
        for name in ["primary", "secondary"] {
            let r = desired_record(&view, &mut engine, &ObjectRef::new("ns", name), now).unwrap();
            assert_eq!(r.held_until, d.held_until, "{name}");
        }
        let mut engine = Engine::new(&*view, &view.verdicts);
        let before = desired_record(&view, &mut engine, &ObjectRef::new("ns", "primary"), now);

        // Another flip: the verdict and the primary's health change, their cores do not.
        let mut leaf = state.health().get(&id).cloned().unwrap();
        leaf.healthy = !leaf.healthy;
        state.set_health([(id.clone(), leaf.clone())]);
        let view = state.view.load_full();
        let again = desired_check(&view, &id, Some(&leaf), now).unwrap();
        assert_ne!(again.fingerprint, d.fingerprint);
        assert_eq!(again.core, d.core);
        let mut engine = Engine::new(&*view, &view.verdicts);
        let after = desired_record(&view, &mut engine, &ObjectRef::new("ns", "primary"), now);
        let (before, after) = (before.unwrap(), after.unwrap());
        assert_ne!(before.fingerprint, after.fingerprint);
        assert_eq!(before.core, after.core);

        // Ten quiet minutes later: no condition, nothing held, the core changes back.
        let later = now + FLAP_WINDOW + Duration::from_secs(1);
        let steady = desired_check(&view, &id, Some(&leaf), later).unwrap();
        assert_eq!((steady.flapping, steady.held_until), (None, None));
        assert_ne!(steady.core, d.core);
        let mut engine = Engine::new(&*view, &view.verdicts);
        let r = desired_record(&view, &mut engine, &ObjectRef::new("ns", "primary"), later);
        assert_eq!(r.unwrap().held_until, None);
    }

    #[test]
    fn a_flapping_check_is_told_once_and_holds_the_transitions() {
        let key = (Kind::HealthCheck, ObjectRef::new("ns", "hc"));
        let until = SystemTime::now() + FLAP_WINDOW;
        let flapping = |healthy| DesiredStatus {
            flapping: Some(Flapping { changes: 12, until }),
            held_until: Some(until),
            ..check_desired(healthy)
        };
        let mut entry = SeenObject { announced_healthy: Some(true), ..SeenObject::default() };
        let note = event(transition(&key, &entry, &flapping(false), true));
        assert_eq!((note.reason, note.warning), (FLAPPING, true));
        assert!(note.message.contains("changed 12 times"), "{}", note.message);
        entry.announce(&key, &flapping(false), Some(&note));
        assert!(entry.announced_flapping);
        assert_eq!(entry.announced_healthy, Some(true), "the verdict is still to tell");
        // From then on: held while the verdict differs from the one told, else nothing.
        assert_eq!(transition(&key, &entry, &flapping(false), true), Tell::Held);
        assert_eq!(transition(&key, &entry, &flapping(true), true), Tell::Nothing);
        entry.announce(&key, &flapping(true), None);
        assert!(entry.announced_flapping, "still flapping");
        // A new leader finds the condition on the object: not told again.
        let shown = ShownStatus { flapping: Some(1), ..ShownStatus::default() };
        let mut seen = LastSeen::default();
        seen.observe(key.clone(), shown);
        seen.reset_announcements();
        let told = seen.get(&key).unwrap();
        assert!(told.announced_flapping);
        assert_eq!(transition(&key, told, &flapping(true), true), Tell::Nothing);
        // Steady again: the verdict is told if it differs, covering the changes.
        entry.changes = 40;
        let note = event(transition(&key, &entry, &check_desired(false), true));
        assert_eq!(note.reason, "Unhealthy");
        assert!(note.message.ends_with("(40 changes since the last Event)"), "{}", note.message);
        entry.announce(&key, &check_desired(false), Some(&note));
        assert!(!entry.announced_flapping, "a new bout is told again");

        // A record held by it: its serving changes are held back.
        let rkey = (Kind::FailoverRecord, ObjectRef::new("ns", "r"));
        let told = SeenObject { announced_serving: Some(true), ..SeenObject::default() };
        let held = DesiredStatus { held_until: Some(until), ..record_desired(false) };
        assert_eq!(transition(&rkey, &told, &held, true), Tell::Held);
        let held = DesiredStatus { held_until: Some(until), ..record_desired(true) };
        assert_eq!(transition(&rkey, &told, &held, true), Tell::Nothing);
    }

    #[test]
    fn uids_round_trip() {
        let uid = "0b5c1e2a-3f4d-4e6f-8a9b-0c1d2e3f4a5b";
        assert_eq!(format_uid(parse_uid(Some(uid))).as_deref(), Some(uid));
        assert_eq!(format_uid(parse_uid(None)), None);
    }
}
