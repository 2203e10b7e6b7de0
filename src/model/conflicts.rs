//! Settling the record sets of one name by age: conflicts (policy mix, duplicate set
//! identifiers, two PRIMARY, a CNAME beside other types) and structural rules (a
//! SECONDARY needs its PRIMARY, an alias needs its target, aliases may not form a
//! cycle). Names are settled one at a time, or together when aliases tie them into a
//! cycle; targets outside the group count as they are currently settled.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use super::{FailoverRole, RecordType, RoutingPolicy};
use super::{Fqdn, Key, ObjectRef, Policy, RecordSet};

pub(super) type Rejection = (&'static str, String);

/// The field a rejection for a name owned by another namespace names.
pub const OWNED_ELSEWHERE_FIELD: &str = "metadata.namespace";

/// How the message of a record set no delegation covers begins (field `spec.name`).
pub const NOT_DELEGATED_PREFIX: &str = "no NameDelegation covers";

/// How a group of names settles: the accepted record sets per key (oldest first)
/// and why every other candidate was rejected.
pub(super) struct Settled {
    pub accepted: BTreeMap<Key, Vec<Arc<RecordSet>>>,
    pub rejected: FxHashMap<ObjectRef, Rejection>,
}

/// Settles `candidates` (every locally valid record set at the names of `group`,
/// sorted oldest first). `present_outside` tells whether a key outside the group has
/// record sets. A structural rejection can free a name + type that a younger record
/// set was turned away from, so conflicts are settled again until nothing more is
/// rejected.
pub(super) fn settle(
    group: &FxHashSet<&Fqdn>,
    candidates: &[Arc<RecordSet>],
    present_outside: impl Fn(&Key) -> bool,
    shared: impl Fn(&Fqdn, &str, &str) -> bool,
) -> Settled {
    let mut structural: FxHashMap<ObjectRef, Rejection> = FxHashMap::default();
    loop {
        let mut by_name: FxHashMap<&Fqdn, Vec<&RecordSet>> = FxHashMap::default();
        let mut accepted: Vec<&RecordSet> = Vec::new();
        let mut conflicts: FxHashMap<ObjectRef, Rejection> = FxHashMap::default();
        for set in candidates.iter().filter(|s| !structural.contains_key(&s.id)) {
            let same_name = by_name.entry(&set.name).or_default();
            match conflict_with(set, same_name.iter().copied(), &shared) {
                Some(conflict) => {
                    conflicts.insert(set.id.clone(), conflict);
                }
                None => {
                    same_name.push(set);
                    accepted.push(set);
                }
            }
        }
        let present = |key: &Key| {
            if group.contains(&key.0) {
                by_name.get(&key.0).is_some_and(|sets| sets.iter().any(|s| s.rtype == key.1))
            } else {
                present_outside(key)
            }
        };
        let found = structural_problems(&accepted, group, present);
        if found.is_empty() {
            let mut out: BTreeMap<Key, Vec<Arc<RecordSet>>> = BTreeMap::new();
            let accepted_ids: FxHashSet<&ObjectRef> = accepted.iter().map(|s| &s.id).collect();
            for set in candidates.iter().filter(|s| accepted_ids.contains(&s.id)) {
                out.entry((set.name.clone(), set.rtype)).or_default().push(set.clone());
            }
            structural.extend(conflicts);
            return Settled { accepted: out, rejected: structural };
        }
        structural.extend(found);
    }
}

/// The first conflict of `set` with already accepted (older) record sets of its name.
/// The oldest of them owns the name for its namespace: a record set from another
/// namespace may not join it, whatever its type or policy.
fn conflict_with<'a>(
    set: &RecordSet,
    accepted: impl Iterator<Item = &'a RecordSet>,
    shared: &impl Fn(&Fqdn, &str, &str) -> bool,
) -> Option<(&'static str, String)> {
    let mut accepted = accepted.filter(|o| o.name == set.name).peekable();
    if let Some(owner) = accepted.peek()
        && owner.id.namespace != set.id.namespace
        && !shared(&set.name, &owner.id.namespace, &set.id.namespace)
    {
        return Some((
            OWNED_ELSEWHERE_FIELD,
            format!(
                "{} belongs to namespace {} (its oldest record set, {}); namespace {} cannot serve it",
                set.name, owner.id.namespace, owner.id, set.id.namespace
            ),
        ));
    }
    for other in accepted {
        let who = &other.id;
        if other.rtype == RecordType::Cname && set.rtype != RecordType::Cname {
            return Some((
                "spec.type",
                format!("{} already has a CNAME ({who}); a CNAME cannot share its name", set.name),
            ));
        }
        if set.rtype == RecordType::Cname && other.rtype != RecordType::Cname {
            return Some((
                "spec.type",
                format!(
                    "{} already has {:?} records ({who}); a CNAME cannot share its name",
                    set.name, other.rtype
                ),
            ));
        }
        if other.rtype != set.rtype {
            continue;
        }
        let (mine, theirs) = (set.policy.routing_policy(), other.policy.routing_policy());
        if mine != theirs {
            return Some((
                "spec.routingPolicy",
                format!(
                    "{mine:?} conflicts with {theirs:?} record set {who} for {} {:?}",
                    set.name, set.rtype
                ),
            ));
        }
        if mine == RoutingPolicy::Simple {
            return Some((
                "spec.name",
                format!("{} {:?} already has a Simple record set ({who})", set.name, set.rtype),
            ));
        }
        if set.set_identifier == other.set_identifier {
            return Some((
                "spec.setIdentifier",
                format!(
                    "{:?} is already used by {who} for {} {:?}",
                    set.set_identifier.as_deref().unwrap_or(""),
                    set.name,
                    set.rtype
                ),
            ));
        }
        if let (Policy::Failover(a), Policy::Failover(b)) = (set.policy, other.policy)
            && a == b
        {
            return Some((
                "spec.failover",
                format!("{} {:?} already has a {a:?} record set ({who})", set.name, set.rtype),
            ));
        }
        let all_unhealthy = |s: &RecordSet| s.answers()?.when_all_unhealthy.clone();
        if let (Some(mine), Some(theirs)) = (all_unhealthy(set), all_unhealthy(other))
            && mine != theirs
        {
            let (field, what) = if mine.name() == theirs.name() {
                ("spec.fallbackValues", "other fallbackValues than")
            } else {
                ("spec.whenAllUnhealthy", "another whenAllUnhealthy than")
            };
            return Some((
                field,
                format!(
                    "{} {:?}: {} sets {what} {who} ({}); every member must agree or leave it out",
                    set.name,
                    set.rtype,
                    mine.name(),
                    theirs.name()
                ),
            ));
        }
    }
    None
}

/// Record sets that cannot be served even though nothing older conflicts with them:
/// a SECONDARY without its PRIMARY, an alias whose target has no record set of its
/// type, and an alias that would close a cycle (the younger alias is the one at fault).
/// Cycles can only run through names of the group.
fn structural_problems(
    accepted: &[&RecordSet],
    group: &FxHashSet<&Fqdn>,
    present: impl Fn(&Key) -> bool,
) -> Vec<(ObjectRef, Rejection)> {
    let mut out = Vec::new();
    let has_primary: BTreeSet<(&Fqdn, RecordType)> = accepted
        .iter()
        .filter(|s| s.policy == Policy::Failover(FailoverRole::Primary))
        .map(|s| (&s.name, s.rtype))
        .collect();
    let mut edges: BTreeMap<Key, BTreeSet<Key>> = BTreeMap::new();
    for set in accepted {
        if set.policy == Policy::Failover(FailoverRole::Secondary)
            && !has_primary.contains(&(&set.name, set.rtype))
        {
            let message =
                format!("{} {:?} has a SECONDARY but no PRIMARY record set", set.name, set.rtype);
            out.push((set.id.clone(), ("spec.failover", message)));
            continue;
        }
        let Some((target, _)) = set.alias() else { continue };
        let to = (target.clone(), set.rtype);
        if !present(&to) {
            let message = format!("no {:?} record set exists at {target}", set.rtype);
            out.push((set.id.clone(), ("spec.aliasTarget.name", message)));
            continue;
        }
        if !group.contains(target) {
            continue;
        }
        let from = (set.name.clone(), set.rtype);
        if reaches(&edges, &to, &from) {
            let message = format!("{target} leads back to {} through aliases: a cycle", set.name);
            out.push((set.id.clone(), ("spec.aliasTarget.name", message)));
            continue;
        }
        edges.entry(from).or_default().insert(to);
    }
    out
}

/// True when `to` can be reached from `from` along alias edges (or is `from`).
fn reaches(edges: &BTreeMap<Key, BTreeSet<Key>>, from: &Key, to: &Key) -> bool {
    let mut stack = vec![from];
    let mut seen = BTreeSet::new();
    while let Some(k) = stack.pop() {
        if k == to {
            return true;
        }
        if seen.insert(k) {
            stack.extend(edges.get(k).into_iter().flatten());
        }
    }
    false
}
