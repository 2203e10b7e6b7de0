//! The routing engine: pure Route 53 decision logic, no I/O, no tokio, no kube.
//!
//! Given the validated model and the health verdicts, the engine folds every
//! health-dependent decision into a [`Plan`] per name + type. What is left for query
//! time is only the random part (a weighted pick, a multivalue sample), so a query
//! never evaluates health and a rebuild never blocks a query.

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;
use rand::seq::index::sample;
use serde::Serialize;

use crate::health::Verdicts;
pub use crate::model::Rr;
use crate::model::{AllUnhealthy, FailoverRole, RecordType, RoutingPolicy};
use crate::model::{Fqdn, Key, Model, Policy, RecordData, RecordSet};

/// At most this many records in one MultiValue answer.
pub const MULTIVALUE_MAX: usize = 8;

/// What is left to decide per query for one name + type.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Always these records.
    Fixed(Arc<[Rr]>),
    /// One of the choices with probability proportional to its weight.
    Weighted { total: u64, choices: Box<[(u64, Arc<Plan>)]> },
    /// Up to [`MULTIVALUE_MAX`] record sets of the pool, chosen at random.
    Multi(Box<[Arc<[Rr]>]>),
}

impl Plan {
    /// Appends this query's answer records to `out`.
    pub fn sample<'p, R: Rng + ?Sized, S: RecordBuffer<'p>>(&'p self, rng: &mut R, out: &mut S) {
        match self {
            Plan::Fixed(rrs) => rrs.iter().for_each(|r| out.push(r)),
            Plan::Weighted { total, choices } => {
                let ticket = rng.random_range(0..*total);
                // choices hold cumulative upper bounds, so the first bound above the ticket wins.
                let i = choices.partition_point(|(bound, _)| *bound <= ticket);
                choices[i].1.sample(rng, out);
            }
            Plan::Multi(pool) => {
                let start = out.len();
                if pool.len() <= MULTIVALUE_MAX {
                    for set in pool.iter() {
                        push_unique(out, start, set.iter());
                    }
                    // Spread clients over the answers even when every record fits.
                    let picked = &mut out.picked()[start..];
                    for i in (1..picked.len()).rev() {
                        picked.swap(i, rng.random_range(0..=i));
                    }
                } else {
                    for i in sample(rng, pool.len(), MULTIVALUE_MAX) {
                        push_unique(out, start, pool[i].iter());
                    }
                }
                // Record sets with several values must not push an answer past the limit.
                out.truncate(start + MULTIVALUE_MAX);
            }
        }
    }

    /// Every record this plan can answer with.
    pub fn possible(&self) -> Vec<&Rr> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'p>(&'p self, out: &mut Vec<&'p Rr>) {
        match self {
            Plan::Fixed(rrs) => push_unique(out, 0, rrs.iter()),
            Plan::Weighted { choices, .. } => choices.iter().for_each(|(_, p)| p.collect(out)),
            Plan::Multi(pool) => push_unique(out, 0, pool.iter().flat_map(|s| s.iter())),
        }
    }
}

fn push_unique<'p, S: RecordBuffer<'p>>(
    out: &mut S,
    from: usize,
    rrs: impl IntoIterator<Item = &'p Rr>,
) {
    for rr in rrs {
        if !out.picked()[from..].iter().any(|o| o.wire == rr.wire && o.rtype == rr.rtype) {
            out.push(rr);
        }
    }
}

/// Where sampled records go: a `Vec`, or a `SmallVec` on the query path (no allocation).
pub trait RecordBuffer<'p> {
    fn push(&mut self, rr: &'p Rr);
    fn picked(&mut self) -> &mut [&'p Rr];
    fn len(&self) -> usize;
    fn truncate(&mut self, len: usize);
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'p> RecordBuffer<'p> for Vec<&'p Rr> {
    fn push(&mut self, rr: &'p Rr) {
        Vec::push(self, rr)
    }
    fn picked(&mut self) -> &mut [&'p Rr] {
        self
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len)
    }
}

impl<'p, const N: usize> RecordBuffer<'p> for smallvec::SmallVec<[&'p Rr; N]> {
    fn push(&mut self, rr: &'p Rr) {
        smallvec::SmallVec::push(self, rr)
    }
    fn picked(&mut self) -> &mut [&'p Rr] {
        self
    }
    fn len(&self) -> usize {
        smallvec::SmallVec::len(self)
    }
    fn truncate(&mut self, len: usize) {
        smallvec::SmallVec::truncate(self, len)
    }
}

/// How one record set fared in a decision (for `/explain` and `/status`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub record: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverRole>,
    pub healthy: bool,
    /// Why the record counts as healthy or not.
    pub health: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias_target: Option<Fqdn>,
    /// `chosen`, `eligible` (picked at random per query), `standby` or `not-eligible`.
    pub selection: Selection,
    /// Chance of answering with this record set.
    pub probability: f64,
    /// The TTL its answers carry now: `degradedTTL` while it is served but not the
    /// first choice (none for an alias: its target's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// What this record set answers with.
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    Chosen,
    Eligible,
    Standby,
    NotEligible,
}

/// How a name + type is served now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Its first choice: a healthy PRIMARY, healthy weighted or multivalue members.
    #[default]
    Preferred,
    /// Served by a second choice: a SECONDARY, zero-weight standbys.
    Degraded,
    /// No member is healthy, so all answer (Route 53; `whenAllUnhealthy: FailOpen`).
    FailOpen,
    /// No member is healthy and none answers (`whenAllUnhealthy: FailClosed`).
    FailClosed,
    /// No member is healthy and the fallback values answer (`whenAllUnhealthy: Fallback`).
    Fallback,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Preferred,
        Outcome::Degraded,
        Outcome::FailOpen,
        Outcome::FailClosed,
        Outcome::Fallback,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Preferred => "preferred",
            Outcome::Degraded => "degraded",
            Outcome::FailOpen => "fail_open",
            Outcome::FailClosed => "fail_closed",
            Outcome::Fallback => "fallback",
        }
    }
}

/// The decision for one name + type.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub name: Fqdn,
    #[serde(rename = "type")]
    pub rtype: RecordType,
    pub policy: RoutingPolicy,
    /// The rule that applied, in words.
    pub rule: &'static str,
    /// True when at least one record set is healthy (what evaluate-target-health sees).
    pub healthy: bool,
    pub outcome: Outcome,
    pub candidates: Vec<Candidate>,
    #[serde(skip)]
    pub plan: Arc<Plan>,
}

/// What queries need of one name + type's decision, and what an alias sees of its
/// target.
#[derive(Clone, Debug)]
pub struct Routing {
    pub plan: Arc<Plan>,
    /// At least one record set is healthy (what evaluate-target-health sees).
    pub healthy: bool,
    pub policy: RoutingPolicy,
    pub outcome: Outcome,
}

impl Routing {
    /// Equal in everything a query or an alias can observe.
    pub fn same(&self, other: &Routing) -> bool {
        self.healthy == other.healthy
            && self.policy == other.policy
            && self.outcome == other.outcome
            && (Arc::ptr_eq(&self.plan, &other.plan) || *self.plan == *other.plan)
    }
}

impl Decision {
    pub fn routing(&self) -> Routing {
        Routing {
            plan: self.plan.clone(),
            healthy: self.healthy,
            policy: self.policy,
            outcome: self.outcome,
        }
    }
}

/// Decides one name + type from its record sets (oldest first), the verdicts of their
/// checks and the routing of each alias target (None when a target has none, which
/// validation prevents). With `explain`, the decision says why for every candidate.
pub fn decide(
    key: &Key,
    sets: &[Arc<RecordSet>],
    verdicts: &Verdicts,
    target: &mut dyn FnMut(&Key) -> Option<Routing>,
    explain: bool,
) -> Option<Decision> {
    if sets.is_empty() {
        return None;
    }
    // Most names have one or two record sets: no allocation per decision for them.
    let mut members: smallvec::SmallVec<[Member<'_>; 2]> =
        smallvec::SmallVec::with_capacity(sets.len());
    for set in sets {
        members.push(member(set, verdicts, target, explain)?);
    }
    Some(choose(key, &members, explain))
}

/// Where the engine finds the accepted record sets of each name + type: the model
/// (the writer's side) or a published view (the readers' side).
pub trait RecordSets {
    fn sets_of(&self, key: &Key) -> Option<&[Arc<RecordSet>]>;
    fn keys(&self) -> Box<dyn Iterator<Item = &Key> + '_>;
}

impl RecordSets for Model {
    fn sets_of(&self, key: &Key) -> Option<&[Arc<RecordSet>]> {
        self.sets.get(key).map(|s| &s[..])
    }

    fn keys(&self) -> Box<dyn Iterator<Item = &Key> + '_> {
        Box::new(self.sets.keys())
    }
}

/// Decides the name + types of a model under one set of verdicts, each once, with
/// explanations: the from-scratch path (tests, `/explain`, `/status`, the full snapshot).
pub struct Engine<'m> {
    model: &'m dyn RecordSets,
    verdicts: &'m Verdicts,
    decisions: HashMap<Key, Arc<Decision>>,
}

impl<'m> Engine<'m> {
    pub fn new(model: &'m dyn RecordSets, verdicts: &'m Verdicts) -> Self {
        Self { model, verdicts, decisions: HashMap::new() }
    }

    /// The decision for one name + type (None when no record set exists there).
    /// Aliases are decided bottom-up through their targets; validation guarantees
    /// that alias chains end.
    pub fn decide(&mut self, key: &Key) -> Option<Arc<Decision>> {
        if let Some(d) = self.decisions.get(key) {
            return Some(d.clone());
        }
        let sets = self.model.sets_of(key)?;
        let verdicts = self.verdicts;
        let decision = Arc::new(decide(
            key,
            sets,
            verdicts,
            &mut |k| self.decide(k).map(|d| d.routing()),
            true,
        )?);
        self.decisions.insert(key.clone(), decision.clone());
        Some(decision)
    }

    /// Decides every name + type of the model.
    pub fn decide_all(mut self) -> HashMap<Key, Arc<Decision>> {
        let model = self.model;
        for key in model.keys() {
            self.decide(key);
        }
        self.decisions
    }
}

fn member<'s>(
    set: &'s RecordSet,
    verdicts: &Verdicts,
    target: &mut dyn FnMut(&Key) -> Option<Routing>,
    explain: bool,
) -> Option<Member<'s>> {
    let mut reasons = Vec::new();
    let mut healthy = true;
    if let Some(check) = set.health_check() {
        let verdict = verdicts.get(check);
        healthy &= verdict == Some(true);
        if explain {
            reasons.push(match verdict {
                Some(ok) => format!(
                    "health check {} is {}",
                    check.name,
                    if ok { "healthy" } else { "unhealthy" }
                ),
                None => format!("health check {} does not exist", check.name),
            });
        }
    }
    let plan = match &set.data {
        RecordData::Values(rrs) => Arc::new(Plan::Fixed(rrs.clone())),
        RecordData::Object(from) => {
            // No usable address is unhealthy, so failover and weighted choice move on;
            // failing open it adds nothing to the answer.
            healthy &= from.healthy;
            if explain {
                let what = if from.healthy { "answers from" } else { from.reason };
                reasons.push(format!("{what}: {}", from.message));
            }
            Arc::new(Plan::Fixed(from.values.clone()))
        }
        RecordData::Alias { target: name, evaluate_target_health } => {
            let routing = target(&(name.clone(), set.rtype))?;
            if *evaluate_target_health {
                healthy &= routing.healthy;
                if explain {
                    let path = if routing.healthy { "a healthy path" } else { "no healthy path" };
                    reasons.push(format!("alias target {name} has {path}"));
                }
            }
            routing.plan
        }
    };
    let (why, values) = if explain {
        if reasons.is_empty() {
            reasons.push("no health check; always healthy".into());
        }
        (reasons.join("; "), plan.possible().iter().map(|r| r.rdata().to_string()).collect())
    } else {
        (String::new(), Vec::new())
    };
    Some(Member { set, plan, health: Health { healthy, why }, values })
}

/// Health of one record set, with the reason.
#[derive(Clone, Debug)]
struct Health {
    healthy: bool,
    why: String,
}

struct Member<'a> {
    set: &'a RecordSet,
    plan: Arc<Plan>,
    health: Health,
    values: Vec<String>,
}

/// Route 53's choice among the record sets of one name + type (contract section 2),
/// then the group's `whenAllUnhealthy` when no member is healthy (section 8).
fn choose(key: &Key, members: &[Member<'_>], explain: bool) -> Decision {
    let policy = members[0].set.policy.routing_policy();
    let mut selection: Selections =
        smallvec::smallvec![(Selection::NotEligible, 0.0, false); members.len()];
    let healthy = members.iter().any(|m| m.health.healthy);
    let closing = if healthy { None } else { all_unhealthy_policy(members) };
    let (plan, rule, outcome) = match closing {
        Some(AllUnhealthy::FailClosed) => {
            (Arc::new(Plan::Fixed(Arc::new([]))), fail_closed_rule(policy), Outcome::FailClosed)
        }
        Some(AllUnhealthy::Fallback(rrs)) => {
            (Arc::new(Plan::Fixed(rrs.clone())), fallback_rule(policy), Outcome::Fallback)
        }
        Some(AllUnhealthy::FailOpen) | None => {
            let (plan, rule) = match policy {
                RoutingPolicy::Simple => {
                    // An unhealthy Simple record answers all the same: it fails open.
                    selection[0] = (Selection::Chosen, 1.0, !members[0].health.healthy);
                    (
                        served(&members[0], !members[0].health.healthy),
                        "Simple: the record set's values",
                    )
                }
                RoutingPolicy::Failover => choose_failover(members, &mut selection),
                RoutingPolicy::Weighted => choose_weighted(members, &mut selection),
                RoutingPolicy::MultiValue => choose_multivalue(members, &mut selection),
            };
            let outcome = if !healthy {
                Outcome::FailOpen
            } else if selection.iter().any(|s| s.2) {
                Outcome::Degraded
            } else {
                Outcome::Preferred
            };
            (plan, rule, outcome)
        }
    };
    let candidates = if explain { candidates(members, selection) } else { Vec::new() };
    Decision { name: key.0.clone(), rtype: key.1, policy, rule, healthy, outcome, candidates, plan }
}

/// The group's `whenAllUnhealthy`: the oldest member that sets it (conflicts keep
/// every member that sets it in agreement).
fn all_unhealthy_policy<'a>(members: &'a [Member<'_>]) -> Option<&'a AllUnhealthy> {
    members.iter().find_map(|m| m.set.answers()?.when_all_unhealthy.as_ref())
}

fn fail_closed_rule(policy: RoutingPolicy) -> &'static str {
    match policy {
        RoutingPolicy::Simple => {
            "Simple: the record is unhealthy and whenAllUnhealthy is FailClosed, so no records answer (NODATA)"
        }
        RoutingPolicy::Failover => {
            "Failover: every record is unhealthy and whenAllUnhealthy is FailClosed, so no records answer (NODATA)"
        }
        RoutingPolicy::Weighted => {
            "Weighted: no record is healthy and whenAllUnhealthy is FailClosed, so no records answer (NODATA)"
        }
        RoutingPolicy::MultiValue => {
            "MultiValue: no record is healthy and whenAllUnhealthy is FailClosed, so no records answer (NODATA)"
        }
    }
}

fn fallback_rule(policy: RoutingPolicy) -> &'static str {
    match policy {
        RoutingPolicy::Simple => {
            "Simple: the record is unhealthy, so the fallbackValues answer (whenAllUnhealthy: Fallback)"
        }
        RoutingPolicy::Failover => {
            "Failover: every record is unhealthy, so the fallbackValues answer (whenAllUnhealthy: Fallback)"
        }
        RoutingPolicy::Weighted => {
            "Weighted: no record is healthy, so the fallbackValues answer (whenAllUnhealthy: Fallback)"
        }
        RoutingPolicy::MultiValue => {
            "MultiValue: no record is healthy, so the fallbackValues answer (whenAllUnhealthy: Fallback)"
        }
    }
}

/// What a member answers with: its data, with its `degradedTTL` while it is served
/// but is not the first choice.
fn served(member: &Member<'_>, degraded: bool) -> Arc<Plan> {
    let ttl = member.set.answers().and_then(|a| a.degraded_ttl);
    match (&*member.plan, ttl) {
        (Plan::Fixed(rrs), Some(ttl)) if degraded => {
            Arc::new(Plan::Fixed(rrs.iter().map(|rr| Rr { ttl, ..rr.clone() }).collect()))
        }
        _ => member.plan.clone(),
    }
}

/// How each member fared, its chance of answering, and whether it is served as a
/// second choice (its answers then carry its `degradedTTL`).
type Selections = smallvec::SmallVec<[(Selection, f64, bool); 2]>;

/// The PRIMARY while it is healthy, else a healthy SECONDARY, else the PRIMARY.
fn choose_failover(
    members: &[Member<'_>],
    selection: &mut Selections,
) -> (Arc<Plan>, &'static str) {
    let role = |r| members.iter().position(|m| m.set.policy == Policy::Failover(r));
    // Validation guarantees a PRIMARY; never take the server down if it is missing.
    let primary = role(FailoverRole::Primary).unwrap_or(0);
    let secondary = role(FailoverRole::Secondary);
    let (chosen, rule) = if members[primary].health.healthy {
        (primary, "Failover: the PRIMARY is healthy")
    } else if let Some(s) = secondary.filter(|&s| members[s].health.healthy) {
        (s, "Failover: the PRIMARY is unhealthy and the SECONDARY is healthy")
    } else if secondary.is_some() {
        (primary, "Failover: both PRIMARY and SECONDARY are unhealthy, so the PRIMARY answers")
    } else {
        (
            primary,
            "Failover: the PRIMARY is unhealthy and there is no SECONDARY, so the PRIMARY answers",
        )
    };
    // Anything but a healthy PRIMARY is a second choice.
    let degraded = chosen != primary || !members[primary].health.healthy;
    for (i, s) in selection.iter_mut().enumerate() {
        *s = if i == chosen {
            (Selection::Chosen, 1.0, degraded)
        } else {
            (Selection::Standby, 0.0, false)
        };
    }
    (served(&members[chosen], degraded), rule)
}

fn weight(member: &Member<'_>) -> u64 {
    match member.set.policy {
        Policy::Weighted(w) => u64::from(w),
        _ => 0,
    }
}

/// The members a weighted pick draws from, whether uniformly, whether they are a
/// second choice, and the rule that chose them: healthy nonzero weights; else healthy
/// zero weights; else all (fail open).
fn weighted_pool(members: &[Member<'_>]) -> (Vec<usize>, bool, bool, &'static str) {
    let healthy = |i: &usize| members[*i].health.healthy;
    let nonzero = |i: &usize| weight(&members[*i]) > 0;
    let healthy_nonzero: Vec<usize> =
        (0..members.len()).filter(|i| healthy(i) && nonzero(i)).collect();
    if !healthy_nonzero.is_empty() {
        let rule = "Weighted: healthy records with nonzero weight, chosen by weight";
        return (healthy_nonzero, false, false, rule);
    }
    let healthy_zero: Vec<usize> =
        (0..members.len()).filter(|i| healthy(i) && !nonzero(i)).collect();
    if !healthy_zero.is_empty() {
        let rule = "Weighted: every nonzero-weight record is unhealthy, so the healthy zero-weight records answer, chosen uniformly";
        return (healthy_zero, true, true, rule);
    }
    let weighted: Vec<usize> = (0..members.len()).filter(nonzero).collect();
    if !weighted.is_empty() {
        let rule =
            "Weighted: no record is healthy, so all count as healthy (fail open), chosen by weight";
        return (weighted, false, true, rule);
    }
    let rule = "Weighted: no record is healthy and every weight is 0, so all are chosen uniformly (fail open)";
    ((0..members.len()).collect(), true, true, rule)
}

/// One member per query, with probability weight / total over the pool.
fn choose_weighted(
    members: &[Member<'_>],
    selection: &mut Selections,
) -> (Arc<Plan>, &'static str) {
    let (pool, uniform, degraded, rule) = weighted_pool(members);
    let w = |i: usize| if uniform { 1 } else { weight(&members[i]) };
    let total: u64 = pool.iter().map(|&i| w(i)).sum();
    let mut bound = 0;
    let mut choices = Vec::with_capacity(pool.len());
    for &i in &pool {
        bound += w(i);
        choices.push((bound, served(&members[i], degraded)));
        selection[i] = (Selection::Eligible, w(i) as f64 / total as f64, degraded);
    }
    for (i, m) in members.iter().enumerate() {
        if selection[i].0 == Selection::NotEligible && m.health.healthy {
            selection[i].0 = Selection::Standby;
        }
    }
    let plan = if choices.len() == 1 {
        choices.pop().expect("one choice").1
    } else {
        Arc::new(Plan::Weighted { total, choices: choices.into_boxed_slice() })
    };
    (plan, rule)
}

/// Up to [`MULTIVALUE_MAX`] healthy members per query (of all of them when none is).
fn choose_multivalue(
    members: &[Member<'_>],
    selection: &mut Selections,
) -> (Arc<Plan>, &'static str) {
    let healthy: Vec<usize> = (0..members.len()).filter(|&i| members[i].health.healthy).collect();
    let degraded = healthy.is_empty();
    let (pool, rule) = if healthy.is_empty() {
        let rule = "MultiValue: no record is healthy, so up to 8 of all records answer";
        ((0..members.len()).collect::<Vec<_>>(), rule)
    } else {
        (healthy, "MultiValue: up to 8 healthy records, chosen at random per query")
    };
    let p = (MULTIVALUE_MAX as f64 / pool.len() as f64).min(1.0);
    for &i in &pool {
        selection[i] = (Selection::Eligible, p, degraded);
    }
    let sets: Vec<Arc<[Rr]>> = pool
        .iter()
        .map(|&i| match &*served(&members[i], degraded) {
            Plan::Fixed(rrs) => rrs.clone(),
            _ => unreachable!("MultiValue records are never aliases"),
        })
        .collect();
    (Arc::new(Plan::Multi(sets.into_boxed_slice())), rule)
}

/// Every member as `/explain` and `/status` show it.
fn candidates(members: &[Member<'_>], selection: Selections) -> Vec<Candidate> {
    members
        .iter()
        .zip(selection)
        .map(|(m, (selection, probability, degraded))| Candidate {
            record: m.set.id.to_string(),
            set_identifier: m.set.set_identifier.as_deref().map(String::from),
            weight: match m.set.policy {
                Policy::Weighted(w) => Some(w),
                _ => None,
            },
            failover: match m.set.policy {
                Policy::Failover(r) => Some(r),
                _ => None,
            },
            healthy: m.health.healthy,
            health: m.health.why.clone(),
            alias_target: m.set.alias().map(|(t, _)| t.clone()),
            selection,
            probability,
            ttl: m.set.alias().is_none().then(|| {
                let degraded_ttl = m.set.answers().and_then(|a| a.degraded_ttl);
                degraded_ttl.filter(|_| degraded).unwrap_or(m.set.ttl)
            }),
            values: m.values.clone(),
        })
        .collect()
}
