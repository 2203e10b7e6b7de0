//! The model, kept up to date one change at a time.
//!
//! Each object is validated on its own when it changes ([`super::check`],
//! [`super::record`]). Relations are settled from indexes: the record sets at each
//! name, the aliases that point at each name, the records that use each check and the
//! Calculated checks that list each child. A change re-settles only its own names
//! (and the alias cycle they sit in); when the record types present at a name change,
//! the names whose aliases point there are re-settled in turn. The outcome depends
//! only on the objects, never on the order of changes: [`super::validate`] (all
//! objects at once) is the oracle the incremental path is property-tested against.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use std::sync::Arc;

use super::RecordType;
use super::check::validate_check;
use super::conflicts::{self, Rejection};
use super::record::validate_record;
use super::{Check, Fqdn, Input, Key, Kind, ObjectRef, Probe, Problem, RecordSet, Scope, Severity};
use crate::resources::{FailoverRecordSpec, HealthCheckSpec};

/// One object added or changed (the whole object), or removed.
#[derive(Clone, Debug)]
pub enum Change {
    Check(Input<HealthCheckSpec>),
    Record(Input<FailoverRecordSpec>),
    RemoveCheck(ObjectRef),
    RemoveRecord(ObjectRef),
}

/// What one [`Model::apply`] changed, for the layers downstream.
#[derive(Debug, Default)]
pub struct Applied {
    /// Name + type whose accepted record sets changed (appeared, vanished or differ).
    pub keys: FxHashSet<Key>,
    /// Checks whose validated definition appeared, vanished or changed.
    pub checks: FxHashSet<ObjectRef>,
    /// Problems that were not there before, and problems that went away.
    pub added: Vec<Problem>,
    pub removed: Vec<Problem>,
    undo: Vec<Undo>,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.checks.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
    }

    /// Errors this change introduced.
    pub fn new_errors(&self) -> impl Iterator<Item = &Problem> {
        self.added.iter().filter(|p| p.severity == Severity::Error)
    }
}

#[derive(Debug)]
enum Undo {
    Check(ObjectRef, Option<CheckEntry>),
    Record(ObjectRef, Option<RecordEntry>),
}

#[derive(Clone, Debug)]
struct CheckEntry {
    generation: Option<i64>,
    /// Valid on its own.
    local: Option<Arc<Check>>,
    problems: Vec<Problem>,
    /// Problems with its children (Calculated).
    relational: Vec<Problem>,
    file: Option<Arc<str>>,
}

#[derive(Clone, Debug)]
struct RecordEntry {
    generation: Option<i64>,
    /// Valid on its own: a candidate at its name.
    local: Option<Arc<RecordSet>>,
    problems: Vec<Problem>,
    /// Its healthCheckName names no valid check.
    missing_check: Option<Box<Problem>>,
    /// Why it is not served although valid on its own (conflict, structure).
    rejection: Option<Box<Problem>>,
    file: Option<Arc<str>>,
}

/// Everything that is valid, ready for the routing engine, and the indexes that keep
/// it so.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Served zones, longest first so the first match is the closest enclosing zone.
    pub zones: Vec<Fqdn>,
    /// Valid checks, shared with the prober, so each check exists once however many
    /// layers hold it.
    pub checks: BTreeMap<ObjectRef, Arc<Check>>,
    /// Accepted record sets of one name and type, oldest first. Hashed, not ordered:
    /// at a million names an ordered map pays a cache miss per comparison.
    pub sets: FxIndexMap<Key, Sets>,
    /// Errors (rejected objects) and warnings.
    pub problems: BTreeSet<Problem>,
    check_entries: FxHashMap<ObjectRef, CheckEntry>,
    record_entries: FxIndexMap<ObjectRef, RecordEntry>,
    /// Record sets valid on their own, per name, oldest first, and the types accepted
    /// there.
    candidates: FxIndexMap<Fqdn, AtName>,
    /// Alias candidates per target name.
    aliased_from: FxHashMap<Fqdn, FxHashSet<ObjectRef>>,
    /// Record candidates per health check they name.
    check_users: FxHashMap<ObjectRef, FxHashSet<ObjectRef>>,
    /// Calculated checks (valid on their own) per child they list.
    calculated_parents: FxHashMap<ObjectRef, FxHashSet<ObjectRef>>,
}

/// A hash map whose entries sit in one vector beside a table of their indices: N
/// entries cost N entries and up to 2N small indices, where a hash map holding large
/// values in its table pays for up to 2N of them (past a power of two, half of the
/// table is empty).
pub type FxIndexMap<K, V> = indexmap::IndexMap<K, V, rustc_hash::FxBuildHasher>;

/// The accepted record sets of one name and type, oldest first: nearly always one,
/// kept inline.
pub type Sets = SmallVec<[Arc<RecordSet>; 1]>;

/// What one name holds: most names hold one record set, kept inline.
#[derive(Clone, Debug, Default)]
struct AtName {
    /// Valid on their own, oldest first.
    sets: SmallVec<[Arc<RecordSet>; 1]>,
    /// The types with accepted record sets in `Model::sets` (a bit per type), so
    /// settling a name does not look up every type there.
    accepted: u8,
}

fn type_bit(rtype: RecordType) -> u8 {
    1 << rtype as u8
}

/// What is left to settle within one `apply`.
#[derive(Default)]
struct Work {
    names: FxHashSet<Fqdn>,
    checks: BTreeSet<ObjectRef>,
    users: BTreeSet<ObjectRef>,
    applied: Applied,
}

impl Model {
    pub fn new(zones: &[Fqdn]) -> Self {
        let mut zones = zones.to_vec();
        zones.sort_by(|a, b| b.as_str().len().cmp(&a.as_str().len()).then_with(|| a.cmp(b)));
        zones.dedup();
        Self { zones, ..Self::default() }
    }

    pub fn zone_of(&self, name: &Fqdn) -> Option<&Fqdn> {
        super::zone_of(&self.zones, name)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.severity == Severity::Error)
    }

    /// Applies changes and settles everything they can affect, nothing else.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = Change>) -> Applied {
        let mut work = Work::default();
        let changes = changes.into_iter();
        // A source's first listing is one large batch: grow every table once.
        let expected = changes.size_hint().0;
        if expected > 1 {
            // Objects already known take no new room.
            let new = expected.saturating_sub(self.record_entries.len());
            self.record_entries.reserve_exact(new);
            self.candidates.reserve_exact(new);
            self.sets.reserve_exact(new);
            work.names.reserve(expected);
            work.applied.undo.reserve(expected);
        }
        for change in changes {
            match change {
                Change::Check(input) => {
                    let id = input.id.clone();
                    let entry = self.check_entry(input);
                    let old = self.put_check(&id, Some(entry), &mut work);
                    work.applied.undo.push(Undo::Check(id, old));
                }
                Change::RemoveCheck(id) => {
                    let old = self.put_check(&id, None, &mut work);
                    work.applied.undo.push(Undo::Check(id, old));
                }
                Change::Record(input) => {
                    let id = input.id.clone();
                    let entry = self.record_entry(input);
                    let old = self.put_record(&id, Some(entry), &mut work);
                    work.applied.undo.push(Undo::Record(id, old));
                }
                Change::RemoveRecord(id) => {
                    let old = self.put_record(&id, None, &mut work);
                    work.applied.undo.push(Undo::Record(id, old));
                }
            }
        }
        self.settle(work)
    }

    /// Undoes an [`Model::apply`] (the last one, or several in reverse order): the
    /// previous objects come back without being validated again.
    pub fn rollback(&mut self, applied: Applied) -> Applied {
        let mut work = Work::default();
        for undo in applied.undo.into_iter().rev() {
            match undo {
                Undo::Check(id, old) => drop(self.put_check(&id, old, &mut work)),
                Undo::Record(id, old) => drop(self.put_record(&id, old, &mut work)),
            }
        }
        self.settle(work)
    }

    pub fn check_ids(&self) -> impl Iterator<Item = &ObjectRef> {
        self.check_entries.keys()
    }

    pub fn record_ids(&self) -> impl Iterator<Item = &ObjectRef> {
        self.record_entries.keys()
    }

    /// Whether the object is known (valid or not).
    pub fn contains(&self, kind: Kind, id: &ObjectRef) -> bool {
        match kind {
            Kind::HealthCheck => self.check_entries.contains_key(id),
            Kind::FailoverRecord => self.record_entries.contains_key(id),
        }
    }

    /// The generation of an object as its source handed it over.
    pub fn generation(&self, kind: Kind, id: &ObjectRef) -> Option<i64> {
        match kind {
            Kind::HealthCheck => self.check_entries.get(id)?.generation,
            Kind::FailoverRecord => self.record_entries.get(id)?.generation,
        }
    }

    /// The record set of an accepted record.
    pub fn accepted_record(&self, id: &ObjectRef) -> Option<&Arc<RecordSet>> {
        let entry = self.record_entries.get(id)?;
        entry.local.as_ref().filter(|_| entry.rejection.is_none())
    }

    /// An object's problems, errors first (own fields, then relations); None when the
    /// object is unknown.
    pub fn problems_of(&self, kind: Kind, id: &ObjectRef) -> Option<Vec<&Problem>> {
        let mut out: Vec<&Problem> = match kind {
            Kind::HealthCheck => {
                let e = self.check_entries.get(id)?;
                e.problems.iter().chain(&e.relational).collect()
            }
            Kind::FailoverRecord => {
                let e = self.record_entries.get(id)?;
                e.problems
                    .iter()
                    .chain(e.rejection.as_deref())
                    .chain(e.missing_check.as_deref())
                    .collect()
            }
        };
        out.sort_by_key(|p| p.severity != Severity::Error);
        Some(out)
    }

    /// Why a record valid on its own is not served (a conflict, a missing alias
    /// target, a cycle), if it is not.
    pub fn record_rejection(&self, id: &ObjectRef) -> Option<&Problem> {
        self.record_entries.get(id)?.rejection.as_deref()
    }

    /// Keys with an accepted alias to `key` (same type).
    pub fn alias_dependents(&self, key: &Key) -> Vec<Key> {
        let Some(ids) = self.aliased_from.get(&key.0) else { return Vec::new() };
        let mut out: Vec<Key> = ids
            .iter()
            .filter_map(|id| self.accepted_record(id))
            .filter(|set| set.rtype == key.1)
            .map(|set| (set.name.clone(), set.rtype))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Keys with an accepted record set that names `check`.
    pub fn keys_using_check(&self, check: &ObjectRef) -> Vec<Key> {
        let Some(ids) = self.check_users.get(check) else { return Vec::new() };
        let mut out: Vec<Key> = ids
            .iter()
            .filter_map(|id| self.accepted_record(id))
            .map(|set| (set.name.clone(), set.rtype))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Valid Calculated checks that list `child`.
    pub fn calculated_parents(&self, child: &ObjectRef) -> Vec<&ObjectRef> {
        let Some(parents) = self.calculated_parents.get(child) else { return Vec::new() };
        parents.iter().filter(|p| self.checks.contains_key(*p)).collect()
    }

    // ------------------------------------------------------------ entries

    fn check_entry(&self, input: Input<HealthCheckSpec>) -> CheckEntry {
        let mut problems = Vec::new();
        let local = validate_check(
            &input,
            &mut Scope::new(&mut problems, Kind::HealthCheck, &input.id, input.file.as_deref()),
        );
        problems.sort();
        problems.dedup();
        CheckEntry {
            generation: input.generation,
            local: local.map(Arc::new),
            problems,
            relational: Vec::new(),
            file: input.file,
        }
    }

    fn record_entry(&self, input: Input<FailoverRecordSpec>) -> RecordEntry {
        let mut problems = Vec::new();
        let mut scope =
            Scope::new(&mut problems, Kind::FailoverRecord, &input.id, input.file.as_deref());
        let local = validate_record(&self.zones, &input, &mut scope);
        problems.sort();
        problems.dedup();
        RecordEntry {
            generation: input.generation,
            local: local.map(Arc::new),
            problems,
            missing_check: None,
            rejection: None,
            file: input.file,
        }
    }

    fn put_check(
        &mut self,
        id: &ObjectRef,
        new: Option<CheckEntry>,
        work: &mut Work,
    ) -> Option<CheckEntry> {
        let old = self.check_entries.remove(id);
        if let Some(old) = &old {
            for p in old.problems.iter().chain(&old.relational) {
                remove_problem(&mut self.problems, p, &mut work.applied);
            }
            for child in calculated_children(old) {
                remove_from(&mut self.calculated_parents, &id.sibling(child), id);
            }
        }
        if let Some(mut entry) = new {
            entry.relational.clear();
            for p in &entry.problems {
                add_problem(&mut self.problems, p, &mut work.applied);
            }
            for child in calculated_children(&entry) {
                let child = id.sibling(child);
                self.calculated_parents.entry(child).or_default().insert(id.clone());
            }
            self.check_entries.insert(id.clone(), entry);
        }
        work.checks.insert(id.clone());
        // Parents judge their children by whether they are valid and Calculated.
        if let Some(parents) = self.calculated_parents.get(id) {
            work.checks.extend(parents.iter().cloned());
        }
        old
    }

    fn put_record(
        &mut self,
        id: &ObjectRef,
        mut new: Option<RecordEntry>,
        work: &mut Work,
    ) -> Option<RecordEntry> {
        // One lookup in the table of every record: what the new entry needs is taken
        // out before it goes in.
        let (added, problems) = match new.as_mut() {
            Some(entry) => {
                entry.missing_check = None;
                entry.rejection = None;
                (entry.local.clone(), entry.problems.clone())
            }
            None => (None, Vec::new()),
        };
        let old = match new {
            Some(entry) => self.record_entries.insert(id.clone(), entry),
            None => self.record_entries.swap_remove(id),
        };
        if let Some(old) = &old {
            if let Some(set) = &old.local {
                // Settled together with its alias cycle: the whole cycle settles again.
                work.names.extend(self.component(&set.name));
                self.unindex(set);
            }
            for p in old
                .problems
                .iter()
                .chain(old.missing_check.as_deref())
                .chain(old.rejection.as_deref())
            {
                remove_problem(&mut self.problems, p, &mut work.applied);
            }
        }
        for p in &problems {
            add_problem(&mut self.problems, p, &mut work.applied);
        }
        if let Some(set) = added {
            work.names.insert(set.name.clone());
            if set.health_check.is_some() {
                work.users.insert(id.clone());
            }
            self.index(&set);
        }
        old
    }

    fn index(&mut self, set: &Arc<RecordSet>) {
        let at = &mut self.candidates.entry(set.name.clone()).or_default().sets;
        let pos = at.partition_point(|o| (o.seq, &o.id) < (set.seq, &set.id));
        at.insert(pos, set.clone());
        if let Some((target, _)) = set.alias() {
            self.aliased_from.entry(target.clone()).or_default().insert(set.id.clone());
        }
        if let Some(check) = &set.health_check {
            self.check_users.entry((**check).clone()).or_default().insert(set.id.clone());
        }
    }

    fn unindex(&mut self, set: &Arc<RecordSet>) {
        if let Some(at) = self.candidates.get_mut(&set.name) {
            at.sets.retain(|o| o.id != set.id);
            // Kept while it has accepted types: settling needs to know them.
            if at.sets.is_empty() && at.accepted == 0 {
                self.candidates.swap_remove(&set.name);
            }
        }
        if let Some((target, _)) = set.alias() {
            remove_from(&mut self.aliased_from, target, &set.id);
        }
        if let Some(check) = &set.health_check {
            remove_from(&mut self.check_users, check, &set.id);
        }
    }

    // ------------------------------------------------------------ settling

    fn settle(&mut self, mut work: Work) -> Applied {
        self.settle_checks(&mut work);
        self.settle_users(&mut work);
        self.settle_names(&mut work);
        let mut applied = work.applied;
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

    fn settle_checks(&mut self, work: &mut Work) {
        for id in std::mem::take(&mut work.checks) {
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
                    remove_problem(&mut self.problems, p, &mut work.applied);
                }
                for p in &relational {
                    add_problem(&mut self.problems, p, &mut work.applied);
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
                    work.users.extend(users.iter().cloned());
                }
                work.applied.checks.insert(id);
            }
        }
    }

    /// Calculated children must exist and must not be Calculated themselves.
    fn children_problems(&self, check: &Check, file: Option<&str>) -> (Vec<Problem>, bool) {
        let mut problems = Vec::new();
        let mut ok = true;
        if let Probe::Calculated { children, .. } = &check.probe {
            let mut p = Scope::new(&mut problems, Kind::HealthCheck, &check.id, file);
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

    fn settle_users(&mut self, work: &mut Work) {
        for id in std::mem::take(&mut work.users) {
            let Some(entry) = self.record_entries.get(&id) else { continue };
            let missing = entry.local.as_ref().and_then(|set| {
                let check = set.health_check.as_ref().filter(|c| !self.checks.contains_key(*c))?;
                let mut out = Vec::new();
                Scope::new(&mut out, Kind::FailoverRecord, &id, entry.file.as_deref()).warning(
                    "spec.healthCheckName",
                    format!("HealthCheck {check} does not exist (or is invalid); the record counts as unhealthy"),
                );
                out.pop().map(Box::new)
            });
            if entry.missing_check != missing {
                let entry = self.record_entries.get_mut(&id).expect("looked up above");
                let old = std::mem::replace(&mut entry.missing_check, missing.clone());
                if let Some(p) = &old {
                    remove_problem(&mut self.problems, p, &mut work.applied);
                }
                if let Some(p) = &missing {
                    add_problem(&mut self.problems, p, &mut work.applied);
                }
            }
        }
    }

    fn settle_names(&mut self, work: &mut Work) {
        let mut pending = std::mem::take(&mut work.names);
        let mut queue: Vec<Fqdn> = pending.iter().cloned().collect();
        work.applied.keys.reserve(pending.len());
        while let Some(name) = queue.pop() {
            if !pending.remove(&name) {
                continue; // settled with its alias cycle already
            }
            if !self.settle_plain(&name, work) {
                self.settle_group(&name, &mut pending, &mut queue, work);
            }
        }
    }

    /// The common case, without any relation to settle: one record set at a name,
    /// neither an alias nor a SECONDARY, whose accepted types did not change. Returns
    /// false (having changed nothing) for anything else.
    fn settle_plain(&mut self, name: &Fqdn, work: &mut Work) -> bool {
        let Some(at) = self.candidates.get(name) else { return false };
        let [set] = &at.sets[..] else { return false };
        if set.alias().is_some()
            || set.policy == super::Policy::Failover(super::FailoverRole::Secondary)
        {
            return false;
        }
        // Aliases elsewhere depend on which types exist here: a change of types takes
        // the general path, which settles them again.
        if at.accepted != type_bit(set.rtype) && at.accepted != 0 {
            return false;
        }
        let set = set.clone();
        let newly = at.accepted == 0;
        if newly && self.aliased_from.contains_key(name) {
            return false;
        }
        self.set_rejection(&set.id, None, &mut work.applied);
        let key = (name.clone(), set.rtype);
        match self.sets.get_mut(&key) {
            Some(old) if old.len() == 1 && Arc::ptr_eq(&old[0], &set) => {}
            Some(old) => {
                *old = smallvec::smallvec![set];
                work.applied.keys.insert(key);
            }
            None => {
                self.sets.insert(key.clone(), smallvec::smallvec![set]);
                work.applied.keys.insert(key);
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
        work: &mut Work,
    ) {
        let group = self.component(name);
        for n in &group {
            pending.remove(n);
        }
        let in_group: FxHashSet<&Fqdn> = group.iter().collect();
        let mut candidates: Vec<Arc<RecordSet>> = group
            .iter()
            .flat_map(|n| self.candidates.get(n).into_iter().flat_map(|at| at.sets.iter()).cloned())
            .collect();
        if group.len() > 1 {
            candidates.sort_by(|a, b| (a.seq, &a.id).cmp(&(b.seq, &b.id)));
        }
        let settled = settle_fast(&candidates).unwrap_or_else(|| {
            conflicts::settle(&in_group, &candidates, |k| self.sets.contains_key(k))
        });
        for set in &candidates {
            let rejection =
                settled.rejected.get(&set.id).map(|r| Box::new(self.rejection(&set.id, r)));
            self.set_rejection(&set.id, rejection, &mut work.applied);
        }
        let mut accepted = settled.accepted;
        for n in &group {
            let range = (n.clone(), RecordType::A)..=(n.clone(), RecordType::Srv);
            let before = self.candidates.get(n).map_or(0, |at| at.accepted);
            let after: Vec<Key> = accepted.range(range).map(|(k, _)| k.clone()).collect();
            let after_bits = after.iter().fold(0, |bits, k| bits | type_bit(k.1));
            for rtype in RecordType::ALL {
                if before & type_bit(rtype) != 0 && after_bits & type_bit(rtype) == 0 {
                    let key = (n.clone(), rtype);
                    self.sets.swap_remove(&key);
                    work.applied.keys.insert(key);
                }
            }
            for key in &after {
                let sets = accepted.remove(key).expect("listed above");
                let same = self.sets.get(key).is_some_and(|old| {
                    old.len() == sets.len() && old.iter().zip(&sets).all(|(a, b)| Arc::ptr_eq(a, b))
                });
                if !same {
                    self.sets.insert(key.clone(), Sets::from_vec(sets));
                    work.applied.keys.insert(key.clone());
                }
            }
            if let Some(at) = self.candidates.get_mut(n) {
                at.accepted = after_bits;
                if at.sets.is_empty() && after_bits == 0 {
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
        Scope::new(&mut out, Kind::FailoverRecord, id, file).error(field, message.clone());
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
    fn component(&self, name: &Fqdn) -> Vec<Fqdn> {
        let targets = |n: &Fqdn| -> Vec<&Fqdn> {
            self.candidates
                .get(n)
                .into_iter()
                .flat_map(|at| &at.sets)
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

fn calculated_children(entry: &CheckEntry) -> &[String] {
    match entry.local.as_deref() {
        Some(Check { probe: Probe::Calculated { children, .. }, .. }) => children,
        _ => &[],
    }
}

fn add_problem(all: &mut BTreeSet<Problem>, p: &Problem, applied: &mut Applied) {
    if all.insert(p.clone()) {
        applied.added.push(p.clone());
    }
}

fn remove_problem(all: &mut BTreeSet<Problem>, p: &Problem, applied: &mut Applied) {
    if all.remove(p) {
        applied.removed.push(p.clone());
    }
}

fn remove_from<K: std::hash::Hash + Eq + Clone, V: std::hash::Hash + Eq>(
    index: &mut FxHashMap<K, FxHashSet<V>>,
    key: &K,
    value: &V,
) {
    if let Some(values) = index.get_mut(key) {
        values.remove(value);
        if values.is_empty() {
            index.remove(key);
        }
    }
}
