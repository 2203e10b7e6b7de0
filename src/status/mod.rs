//! What cluster mode writes on the objects, decided purely from a published
//! [`View`]: the status each HealthCheck and FailoverRecord should show, a
//! fingerprint of what matters in it (a status is written only when it differs from
//! what the object already shows), and the Events that tell of transitions. The
//! [`writer`] does the I/O; [`LastSeen`] is what the watches last showed of every
//! object.

mod election;
pub mod writer;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Instant, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use rustc_hash::FxHashMap;

use crate::engine::{Engine, Selection};
use crate::health::{Checkers, HEALTHY, LeafHealth, Verdicts};
use crate::model::{
    Check, Kind, NOT_DELEGATED_PREFIX, OWNED_ELSEWHERE_FIELD, ObjectRef, Probe, Problem, Severity,
};
use crate::resources::{CheckerView, FailoverRecordStatus, HealthCheckStatus};
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
    pub healthy: Option<bool>,
    pub serving: Option<bool>,
    /// The main condition (`Healthy` on checks, `Accepted` on records): its status and
    /// since when (seconds since the epoch).
    pub condition: Option<(bool, i64)>,
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
            healthy: status.healthy,
            serving: None,
            condition: main_condition(&status.conditions, "Healthy"),
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
            healthy: status.healthy,
            serving: status.serving,
            condition: main_condition(&status.conditions, "Accepted"),
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
    /// When this writer last wrote (or first compared) the status.
    pub refreshed: Option<Instant>,
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
            entry.refreshed = None;
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
    pub healthy: Option<bool>,
    pub serving: Option<bool>,
    /// Why, in words (the Event message).
    pub why: String,
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
    if checkers.on() && !check.disabled && !check.is_calculated() {
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
        observed_generation: None,
    }
}

/// Every live checker's view of a leaf check, by checker name, this replica's included.
pub fn checker_views(
    check: &Check,
    checkers: &Checkers,
    leaf: Option<&LeafHealth>,
) -> Vec<CheckerView> {
    let own = match leaf {
        Some(leaf) => CheckerView {
            name: checkers.me.as_deref().unwrap_or(THIS_REPLICA).to_owned(),
            healthy: leaf.established.then_some(leaf.healthy),
            reason: leaf.reason.clone(),
            last_transition_time: leaf.last_transition_time.map(rfc3339),
        },
        None => {
            let initial = LeafHealth::initial(check);
            CheckerView {
                name: checkers.me.as_deref().unwrap_or(THIS_REPLICA).to_owned(),
                healthy: None,
                reason: initial.reason,
                last_transition_time: None,
            }
        }
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
        healthy: status.healthy,
        serving: None,
        why,
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
    let status = FailoverRecordStatus {
        serving: Some(serving),
        healthy,
        conditions: vec![accepted],
        observed_generation: generation,
    };
    let fingerprint = record_fingerprint(&status);
    Some(DesiredStatus {
        fingerprint,
        // A record's status has no times: nothing to refresh apart from a change.
        detail: fingerprint,
        healthy: status.healthy,
        serving: Some(serving),
        why,
        status: Status::Record(status),
    })
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
}

/// What a HealthCheck status change is written for: the verdict, the reason and the
/// generation; probe times, counts and latency alone only on refresh.
pub fn check_fingerprint(status: &HealthCheckStatus) -> u64 {
    let mut h = DefaultHasher::new();
    status.healthy.hash(&mut h);
    status.observed_generation.hash(&mut h);
    if let Some(c) = status.conditions.iter().find(|c| c.type_ == "Healthy") {
        (&c.status, &c.reason).hash(&mut h);
    }
    // Who sees it unhealthy and who has no verdict yet. A healthy checker that comes or
    // goes (a rolling restart replaces them all) only changes the counts: detail,
    // refreshed, so it does not rewrite every check's status at once.
    let not_healthy = status.checkers.iter().filter(|c| c.healthy != Some(true));
    not_healthy.for_each(|c| (&c.name, c.healthy).hash(&mut h));
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
    if let Some(c) = status.conditions.iter().find(|c| c.type_ == "Accepted") {
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

/// The Event a new desired status calls for, given what was told last. A check
/// nobody told about yet starts from its initial health (healthy, or unhealthy when
/// inverted); a record that never showed a status does not announce that it serves.
pub fn transition(
    key: &ObjectKey,
    entry: &SeenObject,
    desired: &DesiredStatus,
    initial_healthy: bool,
) -> Option<PendingEvent> {
    match key.0 {
        Kind::HealthCheck => {
            let before = entry.announced_healthy.unwrap_or(initial_healthy);
            let now = desired.healthy?;
            (before != now).then(|| PendingEvent {
                key: key.clone(),
                warning: !now,
                reason: if now { "Healthy" } else { "Unhealthy" },
                message: desired.why.clone(),
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
                return Some(PendingEvent {
                    key: key.clone(),
                    warning: true,
                    reason: "Rejected",
                    message: c.message.clone(),
                });
            }
            let before = entry.announced_serving?;
            let now = desired.serving?;
            (before != now).then(|| PendingEvent {
                key: key.clone(),
                warning: false,
                reason: if now { "Serving" } else { "NotServing" },
                message: format!(
                    "{}: {}",
                    if now { "serving" } else { "not serving" },
                    desired.why
                ),
            })
        }
    }
}

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

    #[test]
    fn a_conflict_is_not_accepted_and_names_the_older_object() {
        let v = view(
            vec![
                check("hc"),
                failover("a", FailoverRole::Primary, "hc", "192.0.2.1", 1),
                failover("b", FailoverRole::Primary, "hc", "192.0.2.2", 2),
            ],
            &[],
        );
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

    #[test]
    fn transitions_announce_changes_only() {
        let key = (Kind::HealthCheck, ObjectRef::new("ns", "hc"));
        let desired = |healthy| DesiredStatus {
            status: Status::Check(HealthCheckStatus::default()),
            fingerprint: 0,
            detail: 0,
            healthy: Some(healthy),
            serving: None,
            why: "ConnectionRefused: x".into(),
        };
        let fresh = SeenObject::default();
        assert_eq!(
            transition(&key, &fresh, &desired(true), true),
            None,
            "a new check starts healthy"
        );
        let note = transition(&key, &fresh, &desired(false), true).unwrap();
        assert_eq!((note.reason, note.warning), ("Unhealthy", true));
        let told = SeenObject { announced_healthy: Some(false), ..SeenObject::default() };
        assert_eq!(transition(&key, &told, &desired(true), true).unwrap().reason, "Healthy");

        let rkey = (Kind::FailoverRecord, ObjectRef::new("ns", "r"));
        let serving = |s| DesiredStatus {
            status: Status::Record(FailoverRecordStatus::default()),
            fingerprint: 0,
            detail: 0,
            healthy: None,
            serving: Some(s),
            why: "because".into(),
        };
        assert_eq!(
            transition(&rkey, &fresh, &serving(true), true),
            None,
            "a new record does not announce itself"
        );
        let told = SeenObject { announced_serving: Some(true), ..SeenObject::default() };
        assert_eq!(transition(&rkey, &told, &serving(false), true).unwrap().reason, "NotServing");
    }

    #[test]
    fn uids_round_trip() {
        let uid = "0b5c1e2a-3f4d-4e6f-8a9b-0c1d2e3f4a5b";
        assert_eq!(format_uid(parse_uid(Some(uid))).as_deref(), Some(uid));
        assert_eq!(format_uid(parse_uid(None)), None);
    }
}
