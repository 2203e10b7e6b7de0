//! Settling: after a change, bringing everything it can affect back in line with the
//! objects, and nothing else.
//!
//! [`super::index`] notes what a change touched in an [`Unsettled`]; [`Model::settle`]
//! then judges the Calculated checks that list a changed check, warns about records
//! whose health check came or went, and settles the record sets of each touched name
//! (with its alias cycle, by age: [`super::conflicts`]). When the record types accepted
//! at a name change, the names whose aliases point there are settled in turn.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::conflicts::{self, NOT_DELEGATED_PREFIX, Rejection};
use super::index::{CheckEntry, add_problem, remove_problem, type_bit};
use super::{
    Applied, Check, Fqdn, Key, Kind, Model, ObjectProblems, ObjectRef, Probe, Problem, RecordSet,
    RecordType, Sets,
};

/// What is left to settle within one [`Model::apply`] (or rollback), and what it has
/// changed so far.
#[derive(Default)]
pub(super) struct Unsettled {
    /// Names whose record sets must be settled again.
    pub(super) names: FxHashSet<Fqdn>,
    /// Checks whose Calculated children must be judged again.
    pub(super) checks: BTreeSet<ObjectRef>,
    /// Records whose named health check may have appeared or vanished.
    pub(super) users: BTreeSet<ObjectRef>,
    /// The apply's result, built up as it goes.
    pub(super) applied: Applied,
}

impl Model {
    /// Settles what `unsettled` lists; returns what the apply changed.
    pub(super) fn settle(&mut self, mut unsettled: Unsettled) -> Applied {
        self.settle_checks(&mut unsettled);
        self.settle_users(&mut unsettled);
        self.settle_names(&mut unsettled);
        let mut applied = unsettled.applied;
        // A problem removed and added again within one apply did not change.
        let added: FxHashSet<&Problem> = applied.added.iter().collect();
        let removed: FxHashSet<&Problem> = applied.removed.iter().collect();
        let net_added: Vec<Problem> =
            applied.added.iter().filter(|p| !removed.contains(p)).cloned().collect();
        let net_removed: Vec<Problem> =
            applied.removed.iter().filter(|p| !added.contains(p)).cloned().collect();
        applied.added = net_added;
        applied.removed = net_removed;
        applied
    }

    fn settle_checks(&mut self, unsettled: &mut Unsettled) {
        for id in std::mem::take(&mut unsettled.checks) {
            let (relational, valid) = match self.check_entries.get(&id) {
                Some(CheckEntry { local: Some(check), file, .. }) => {
                    let (problems, ok) = self.children_problems(check, file.as_deref());
                    (problems, ok.then(|| check.clone()))
                }
                _ => (Vec::new(), None),
            };
            if let Some(entry) = self.check_entries.get_mut(&id) {
                let old = std::mem::replace(&mut entry.relational, relational.clone());
                for p in &old {
                    remove_problem(&mut self.problems, p, &mut unsettled.applied);
                }
                for p in &relational {
                    add_problem(&mut self.problems, p, &mut unsettled.applied);
                }
            }
            let before = self.checks.get(&id).cloned();
            let changed = match (&before, &valid) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (None, None) => false,
                _ => true,
            };
            if changed {
                match valid {
                    Some(check) => self.checks.insert(id.clone(), check),
                    None => self.checks.remove(&id),
                };
                if let Some(users) = self.check_users.get(&id) {
                    unsettled.users.extend(users.iter().cloned());
                }
                unsettled.applied.checks.insert(id);
            }
        }
    }

    /// Calculated children must exist and must not be Calculated themselves.
    fn children_problems(&self, check: &Check, file: Option<&str>) -> (Vec<Problem>, bool) {
        let mut problems = Vec::new();
        let mut ok = true;
        if let Probe::Calculated { children, .. } = &check.probe {
            let mut p = ObjectProblems::new(&mut problems, Kind::HealthCheck, &check.id, file);
            for (i, child) in children.iter().enumerate() {
                let id = check.id.sibling(child);
                match self.check_entries.get(&id).and_then(|e| e.local.as_ref()) {
                    Some(c) if c.is_calculated() => {
                        p.error(
                            &format!("spec.childHealthChecks[{i}]"),
                            format!("{id} is Calculated; children may not be"),
                        );
                        ok = false;
                    }
                    Some(_) => {}
                    None => p.warning(
                        &format!("spec.childHealthChecks[{i}]"),
                        format!("HealthCheck {id} does not exist (or is invalid); it counts as unhealthy"),
                    ),
                }
            }
        }
        (problems, ok)
    }

    fn settle_users(&mut self, unsettled: &mut Unsettled) {
        for id in std::mem::take(&mut unsettled.users) {
            let Some(entry) = self.record_entries.get(&id) else { continue };
            let missing = entry.local.as_ref().and_then(|set| {
                let check = set.health_check().filter(|c| !self.checks.contains_key(*c))?;
                let mut out = Vec::new();
                ObjectProblems::new(&mut out, Kind::FailoverRecord, &id, entry.file.as_deref()).warning(
                    "spec.healthCheckName",
                    format!("HealthCheck {check} does not exist (or is invalid); the record counts as unhealthy"),
                );
                out.pop().map(Box::new)
            });
            if entry.missing_check != missing {
                let entry = self.record_entries.get_mut(&id).expect("looked up above");
                let old = std::mem::replace(&mut entry.missing_check, missing.clone());
                if let Some(p) = &old {
                    remove_problem(&mut self.problems, p, &mut unsettled.applied);
                }
                if let Some(p) = &missing {
                    add_problem(&mut self.problems, p, &mut unsettled.applied);
                }
            }
        }
    }

    fn settle_names(&mut self, unsettled: &mut Unsettled) {
        let mut pending = std::mem::take(&mut unsettled.names);
        let mut queue: Vec<Fqdn> = pending.iter().cloned().collect();
        unsettled.applied.keys.reserve(pending.len());
        while let Some(name) = queue.pop() {
            if !pending.remove(&name) {
                continue; // settled with its alias cycle already
            }
            if !self.settle_plain(&name, unsettled) {
                self.settle_group(&name, &mut pending, &mut queue, unsettled);
            }
        }
    }

    /// The common case, without any relation to settle: one record set at a name,
    /// neither an alias nor a SECONDARY, whose accepted types did not change. Returns
    /// false (having changed nothing) for anything else.
    fn settle_plain(&mut self, name: &Fqdn, unsettled: &mut Unsettled) -> bool {
        let Some(entry) = self.candidates.get(name) else { return false };
        let [set] = &entry.sets[..] else { return false };
        if !self.delegations.allows(name, &set.id.namespace) {
            return false;
        }
        if set.alias().is_some()
            || set.policy == super::Policy::Failover(super::FailoverRole::Secondary)
        {
            return false;
        }
        // Aliases elsewhere depend on which types exist here: a change of types takes
        // the general path, which settles them again.
        if entry.accepted != type_bit(set.rtype) && entry.accepted != 0 {
            return false;
        }
        let set = set.clone();
        let newly = entry.accepted == 0;
        if newly && self.aliased_from.contains_key(name) {
            return false;
        }
        self.set_rejection(&set.id, None, &mut unsettled.applied);
        let key = (name.clone(), set.rtype);
        match self.sets.get_mut(&key) {
            Some(old) if old.len() == 1 && Arc::ptr_eq(&old[0], &set) => {}
            Some(old) => {
                *old = smallvec::smallvec![set];
                unsettled.applied.keys.insert(key);
            }
            None => {
                self.sets.insert(key.clone(), smallvec::smallvec![set]);
                unsettled.applied.keys.insert(key);
            }
        }
        if newly {
            let bit = type_bit(self.candidates[name].sets[0].rtype);
            self.candidates.get_mut(name).expect("looked up above").accepted = bit;
        }
        true
    }

    /// Settles a name with its alias cycle, and queues the names whose aliases point
    /// at names whose types changed.
    fn settle_group(
        &mut self,
        name: &Fqdn,
        pending: &mut FxHashSet<Fqdn>,
        queue: &mut Vec<Fqdn>,
        unsettled: &mut Unsettled,
    ) {
        let group = self.component(name);
        for n in &group {
            pending.remove(n);
        }
        let in_group: FxHashSet<&Fqdn> = group.iter().collect();
        let mut candidates: Vec<Arc<RecordSet>> = group
            .iter()
            .flat_map(|n| {
                self.candidates.get(n).into_iter().flat_map(|entry| entry.sets.iter()).cloned()
            })
            .collect();
        if group.len() > 1 {
            candidates.sort_by(|a, b| (a.seq, &a.id).cmp(&(b.seq, &b.id)));
        }
        // Record sets no delegation lets serve their name never compete for it.
        let (allowed, refused): (Vec<Arc<RecordSet>>, Vec<Arc<RecordSet>>) = candidates
            .iter()
            .cloned()
            .partition(|s| self.delegations.allows(&s.name, &s.id.namespace));
        let mut settled = settle_fast(&allowed).unwrap_or_else(|| {
            let shared = |name: &Fqdn, a: &str, b: &str| self.delegations.shared(name, a, b);
            conflicts::settle(&in_group, &allowed, |k| self.sets.contains_key(k), shared)
        });
        for set in refused {
            let message =
                format!("{NOT_DELEGATED_PREFIX} {} for namespace {}", set.name, set.id.namespace);
            settled.rejected.insert(set.id.clone(), ("spec.name", message));
        }
        for set in &candidates {
            let rejection =
                settled.rejected.get(&set.id).map(|r| Box::new(self.rejection(&set.id, r)));
            self.set_rejection(&set.id, rejection, &mut unsettled.applied);
        }
        let mut accepted = settled.accepted;
        for n in &group {
            let range = (n.clone(), RecordType::A)..=(n.clone(), RecordType::Srv);
            let before = self.candidates.get(n).map_or(0, |entry| entry.accepted);
            let after: Vec<Key> = accepted.range(range).map(|(k, _)| k.clone()).collect();
            let after_bits = after.iter().fold(0, |bits, k| bits | type_bit(k.1));
            for rtype in RecordType::ALL {
                if before & type_bit(rtype) != 0 && after_bits & type_bit(rtype) == 0 {
                    let key = (n.clone(), rtype);
                    self.sets.swap_remove(&key);
                    unsettled.applied.keys.insert(key);
                }
            }
            for key in &after {
                let sets = accepted.remove(key).expect("listed above");
                let same = self.sets.get(key).is_some_and(|old| {
                    old.len() == sets.len() && old.iter().zip(&sets).all(|(a, b)| Arc::ptr_eq(a, b))
                });
                if !same {
                    self.sets.insert(key.clone(), Sets::from_vec(sets));
                    unsettled.applied.keys.insert(key.clone());
                }
            }
            if let Some(entry) = self.candidates.get_mut(n) {
                entry.accepted = after_bits;
                if entry.sets.is_empty() && after_bits == 0 {
                    self.candidates.swap_remove(n);
                }
            }
            // Aliases elsewhere depend on which types exist here.
            if before != after_bits
                && let Some(ids) = self.aliased_from.get(n)
            {
                for id in ids {
                    if let Some(set) = self.record_entries.get(id).and_then(|e| e.local.as_ref())
                        && !in_group.contains(&set.name)
                        && pending.insert(set.name.clone())
                    {
                        queue.push(set.name.clone());
                    }
                }
            }
        }
    }

    fn rejection(&self, id: &ObjectRef, (field, message): &Rejection) -> Problem {
        let file = self.record_entries.get(id).and_then(|e| e.file.as_deref());
        let mut out = Vec::new();
        ObjectProblems::new(&mut out, Kind::FailoverRecord, id, file).error(field, message.clone());
        out.pop().expect("one problem")
    }

    fn set_rejection(
        &mut self,
        id: &ObjectRef,
        rejection: Option<Box<Problem>>,
        applied: &mut Applied,
    ) {
        let Some(entry) = self.record_entries.get_mut(id) else { return };
        if entry.rejection == rejection {
            return;
        }
        let old = std::mem::replace(&mut entry.rejection, rejection.clone());
        if let Some(p) = &old {
            remove_problem(&mut self.problems, p, applied);
        }
        if let Some(p) = &rejection {
            add_problem(&mut self.problems, p, applied);
        }
    }

    /// The names settled together with `name`: itself, plus every name on an alias
    /// cycle through it (candidate aliases, whatever their outcome).
    pub(super) fn component(&self, name: &Fqdn) -> Vec<Fqdn> {
        let targets = |n: &Fqdn| -> Vec<&Fqdn> {
            self.candidates
                .get(n)
                .into_iter()
                .flat_map(|entry| &entry.sets)
                .filter_map(|s| s.alias().map(|(t, _)| t))
                .collect()
        };
        if targets(name).is_empty() {
            return vec![name.clone()];
        }
        // Names reachable from `name` along aliases ...
        let mut reachable: Vec<&Fqdn> = vec![name];
        let mut seen: FxHashSet<&Fqdn> = FxHashSet::from_iter([name]);
        let mut edges: Vec<(&Fqdn, &Fqdn)> = Vec::new();
        let mut i = 0;
        while i < reachable.len() {
            let from = reachable[i];
            for to in targets(from) {
                edges.push((from, to));
                if seen.insert(to) {
                    reachable.push(to);
                }
            }
            i += 1;
        }
        if edges.is_empty() {
            return vec![name.clone()];
        }
        // ... that lead back to it.
        let mut back: FxHashSet<&Fqdn> = FxHashSet::default();
        let mut stack = vec![name];
        while let Some(n) = stack.pop() {
            for (from, _) in edges.iter().filter(|(_, to)| *to == n) {
                if back.insert(from) {
                    stack.push(from);
                }
            }
        }
        back.insert(name);
        let mut out: Vec<Fqdn> = back.into_iter().cloned().collect();
        out.sort();
        out
    }
}

/// The common case without any relation to settle: one record set that is neither an
/// alias nor a SECONDARY.
fn settle_fast(candidates: &[Arc<RecordSet>]) -> Option<conflicts::Settled> {
    let [set] = candidates else { return None };
    if set.alias().is_some()
        || set.policy == super::Policy::Failover(super::FailoverRole::Secondary)
    {
        return None;
    }
    let accepted = BTreeMap::from([((set.name.clone(), set.rtype), vec![set.clone()])]);
    Some(conflicts::Settled { accepted, rejected: FxHashMap::default() })
}
