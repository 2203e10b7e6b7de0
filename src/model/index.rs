//! The model, kept up to date one change at a time: the [`Model`], what a [`Change`]
//! does to its entries and indexes, and what it answers about them.
//!
//! Each object is validated on its own when it changes ([`super::check`],
//! [`super::record`]). Relations are settled from indexes kept here: the record sets at
//! each name, the aliases that point at each name, the records that use each check and
//! the Calculated checks that list each child. A change only notes what it can affect;
//! [`super::settle`] then re-settles that and nothing else. The outcome depends only on
//! the objects, never on the order of changes: [`super::validate`] (all objects at once)
//! is the oracle the incremental path is property-tested against.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use std::sync::Arc;

use super::RecordType;
use super::check::validate_check;
use super::delegation::{Delegation, Delegations, NamePattern};
use super::objects::{ObjectKind, Objects};
use super::record::validate_record;
use super::settle::Unsettled;
use super::{
    Check, Fqdn, Input, Key, Kind, ObjectProblems, ObjectRef, Probe, Problem, RecordSet, Severity,
};
use crate::resources::{FailoverRecordSpec, HealthCheckSpec};

/// One object added or changed (the whole object), or removed.
#[derive(Clone, Debug)]
pub enum Change {
    Check(Input<HealthCheckSpec>),
    Record(Input<FailoverRecordSpec>),
    RemoveCheck(ObjectRef),
    RemoveRecord(ObjectRef),
}

impl Change {
    /// The kind and id of the object this change is about.
    pub fn key(&self) -> (Kind, ObjectRef) {
        match self {
            Change::Check(input) => (Kind::HealthCheck, input.id.clone()),
            Change::Record(input) => (Kind::FailoverRecord, input.id.clone()),
            Change::RemoveCheck(id) => (Kind::HealthCheck, id.clone()),
            Change::RemoveRecord(id) => (Kind::FailoverRecord, id.clone()),
        }
    }

    /// The removal of an object of `kind`.
    pub fn removal(kind: Kind, id: ObjectRef) -> Self {
        match kind {
            Kind::HealthCheck => Change::RemoveCheck(id),
            Kind::FailoverRecord => Change::RemoveRecord(id),
        }
    }
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

/// The model's entry for one HealthCheck, valid or not.
#[derive(Clone, Debug)]
pub(super) struct CheckEntry {
    generation: Option<i64>,
    /// Valid on its own.
    pub(super) local: Option<Arc<Check>>,
    problems: Vec<Problem>,
    /// Problems with its children (Calculated).
    pub(super) relational: Vec<Problem>,
    pub(super) file: Option<Arc<str>>,
}

/// The model's entry for one FailoverRecord, valid or not.
#[derive(Clone, Debug)]
pub(super) struct RecordEntry {
    generation: Option<i64>,
    /// Valid on its own: a candidate at its name.
    pub(super) local: Option<Arc<RecordSet>>,
    problems: Vec<Problem>,
    /// Its healthCheckName names no valid check.
    pub(super) missing_check: Option<Box<Problem>>,
    /// Why it is not served although valid on its own (conflict, structure).
    pub(super) rejection: Option<Box<Problem>>,
    pub(super) file: Option<Arc<str>>,
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
    pub(super) check_entries: FxHashMap<ObjectRef, CheckEntry>,
    pub(super) record_entries: FxIndexMap<ObjectRef, RecordEntry>,
    /// Record sets valid on their own, per name, oldest first, and the types accepted
    /// there.
    pub(super) candidates: FxIndexMap<Fqdn, NameEntry>,
    /// Alias candidates per target name.
    pub(super) aliased_from: FxHashMap<Fqdn, FxHashSet<ObjectRef>>,
    /// Record candidates per health check they name.
    pub(super) check_users: FxHashMap<ObjectRef, FxHashSet<ObjectRef>>,
    /// Calculated checks (valid on their own) per child they list.
    calculated_parents: FxHashMap<ObjectRef, FxHashSet<ObjectRef>>,
    /// Who may serve which names.
    pub(super) delegations: Delegations,
    /// Kubernetes objects may be targets and values (cluster mode).
    pub(super) cluster_objects: bool,
    /// What the watched Services, EndpointSlices, Ingresses and Gateways say.
    pub(super) objects: Objects,
    /// Record candidates per object their data comes from (a slice counts as its
    /// Service).
    pub(super) object_users: FxHashMap<(ObjectKind, ObjectRef), FxHashSet<ObjectRef>>,
    /// Endpoints checks (valid on their own) per Service they read.
    pub(super) endpoint_checks: FxHashMap<ObjectRef, FxHashSet<ObjectRef>>,
}

/// A hash map whose entries sit in one vector beside a table of their indices: N
/// entries cost N entries and up to 2N small indices, where a hash map holding large
/// values in its table pays for up to 2N of them (past a power of two, half of the
/// table is empty).
pub type FxIndexMap<K, V> = indexmap::IndexMap<K, V, rustc_hash::FxBuildHasher>;

/// The accepted record sets of one name and type, oldest first: nearly always one,
/// kept inline.
pub type Sets = SmallVec<[Arc<RecordSet>; 1]>;

/// The model's entry for one name: its candidate record sets and the types accepted
/// there. Most names hold one record set, kept inline.
#[derive(Clone, Debug, Default)]
pub(super) struct NameEntry {
    /// Valid on their own, oldest first.
    pub(super) sets: SmallVec<[Arc<RecordSet>; 1]>,
    /// The types with accepted record sets in `Model::sets` (a bit per type), so
    /// settling a name does not look up every type there.
    pub(super) accepted: u8,
}

/// The bit of `rtype` in [`NameEntry::accepted`].
pub(super) fn type_bit(rtype: RecordType) -> u8 {
    1 << rtype as u8
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
        let mut unsettled = Unsettled::default();
        let changes = changes.into_iter();
        // A source's first listing is one large batch: grow every table once.
        let expected = changes.size_hint().0;
        if expected > 1 {
            // Objects already known take no new room.
            let new = expected.saturating_sub(self.record_entries.len());
            self.record_entries.reserve_exact(new);
            self.candidates.reserve_exact(new);
            self.sets.reserve_exact(new);
            unsettled.names.reserve(expected);
            unsettled.applied.undo.reserve(expected);
        }
        for change in changes {
            match change {
                Change::Check(input) => {
                    let id = input.id.clone();
                    let entry = self.check_entry(input);
                    let old = self.put_check(&id, Some(entry), &mut unsettled);
                    unsettled.applied.undo.push(Undo::Check(id, old));
                }
                Change::RemoveCheck(id) => {
                    let old = self.put_check(&id, None, &mut unsettled);
                    unsettled.applied.undo.push(Undo::Check(id, old));
                }
                Change::Record(input) => {
                    let id = input.id.clone();
                    let entry = self.record_entry(input);
                    let old = self.put_record(&id, Some(entry), &mut unsettled);
                    unsettled.applied.undo.push(Undo::Record(id, old));
                }
                Change::RemoveRecord(id) => {
                    let old = self.put_record(&id, None, &mut unsettled);
                    unsettled.applied.undo.push(Undo::Record(id, old));
                }
            }
        }
        self.settle(unsettled)
    }

    /// Sets or removes one NameDelegation (valid; an invalid one counts as removed) and
    /// settles the names it covered or covers (every name when delegation turns on or
    /// off).
    pub fn set_delegation(&mut self, name: &str, delegation: Option<Delegation>) -> Applied {
        let was_active = self.delegations.active();
        let new = delegation.clone();
        let old = self.delegations.put(name, delegation);
        let names: Vec<Fqdn> = if was_active != self.delegations.active() {
            self.candidates.keys().cloned().collect()
        } else {
            let patterns =
                old.iter().flat_map(|d| &d.names).chain(new.iter().flat_map(|d| &d.names));
            let (mut names, mut below) = (Vec::new(), Vec::new());
            for pattern in patterns {
                match pattern {
                    // A name costs a lookup; only `*.SUFFIX` looks at every name.
                    NamePattern::Exact(name) if self.candidates.contains_key(name) => {
                        names.push(name.clone())
                    }
                    NamePattern::Exact(_) => {}
                    NamePattern::Below(_) => below.push(pattern),
                }
            }
            if !below.is_empty() {
                let under = |n: &&Fqdn| below.iter().any(|p| p.matches(n));
                names.extend(self.candidates.keys().filter(under).cloned());
            }
            names
        };
        self.settle_names_of(names)
    }

    /// `--require-delegation`.
    pub fn set_require_delegation(&mut self, required: bool) -> Applied {
        let was_active = self.delegations.active();
        self.delegations.required = required;
        let names: Vec<Fqdn> = if was_active == self.delegations.active() {
            Vec::new()
        } else {
            self.candidates.keys().cloned().collect()
        };
        self.settle_names_of(names)
    }

    /// A namespace's labels (None: it is gone); settles its names when a delegation
    /// selects namespaces by label.
    pub fn set_namespace_labels(
        &mut self,
        namespace: &str,
        labels: Option<BTreeMap<String, String>>,
    ) -> Applied {
        if !self.delegations.set_labels(namespace, labels) || !self.delegations.uses_labels() {
            return Applied::default();
        }
        let names: Vec<Fqdn> = self
            .candidates
            .iter()
            .filter(|(_, entry)| entry.sets.iter().any(|s| *s.id.namespace == *namespace))
            .map(|(n, _)| n.clone())
            .collect();
        self.settle_names_of(names)
    }

    pub fn delegations(&self) -> &Delegations {
        &self.delegations
    }

    fn settle_names_of(&mut self, names: Vec<Fqdn>) -> Applied {
        let mut unsettled = Unsettled::default();
        unsettled.names.extend(names);
        self.settle(unsettled)
    }

    /// Undoes an [`Model::apply`] (the last one, or several in reverse order): the
    /// previous objects come back without being validated again.
    pub fn rollback(&mut self, applied: Applied) -> Applied {
        let mut unsettled = Unsettled::default();
        for undo in applied.undo.into_iter().rev() {
            match undo {
                Undo::Check(id, old) => drop(self.put_check(&id, old, &mut unsettled)),
                Undo::Record(id, old) => drop(self.put_record(&id, old, &mut unsettled)),
            }
        }
        self.settle(unsettled)
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
            self.cluster_objects,
            &mut ObjectProblems::new(
                &mut problems,
                Kind::HealthCheck,
                &input.id,
                input.file.as_deref(),
            ),
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
        let mut scope = ObjectProblems::new(
            &mut problems,
            Kind::FailoverRecord,
            &input.id,
            input.file.as_deref(),
        );
        let local = validate_record(&self.zones, &input, self.cluster_objects, &mut scope);
        problems.sort();
        problems.dedup();
        RecordEntry {
            generation: input.generation,
            local: local.map(|set| Arc::new(self.resolved(set))),
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
        unsettled: &mut Unsettled,
    ) -> Option<CheckEntry> {
        let old = self.check_entries.remove(id);
        if let Some(old) = &old {
            for p in old.problems.iter().chain(&old.relational) {
                remove_problem(&mut self.problems, p, &mut unsettled.applied);
            }
            for child in calculated_children(old) {
                remove_from(&mut self.calculated_parents, &id.sibling(child), id);
            }
            if let Some(service) = old.local.as_ref().and_then(|c| c.endpoints_service()) {
                remove_from(&mut self.endpoint_checks, &service, id);
            }
        }
        if let Some(mut entry) = new {
            entry.relational.clear();
            for p in &entry.problems {
                add_problem(&mut self.problems, p, &mut unsettled.applied);
            }
            for child in calculated_children(&entry) {
                let child = id.sibling(child);
                self.calculated_parents.entry(child).or_default().insert(id.clone());
            }
            if let Some(service) = entry.local.as_ref().and_then(|c| c.endpoints_service()) {
                self.endpoint_checks.entry(service).or_default().insert(id.clone());
            }
            self.check_entries.insert(id.clone(), entry);
        }
        unsettled.checks.insert(id.clone());
        // Parents judge their children by whether they are valid and Calculated.
        if let Some(parents) = self.calculated_parents.get(id) {
            unsettled.checks.extend(parents.iter().cloned());
        }
        old
    }

    fn put_record(
        &mut self,
        id: &ObjectRef,
        mut new: Option<RecordEntry>,
        unsettled: &mut Unsettled,
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
                unsettled.names.extend(self.component(&set.name));
                self.unindex(set);
            }
            for p in old
                .problems
                .iter()
                .chain(old.missing_check.as_deref())
                .chain(old.rejection.as_deref())
            {
                remove_problem(&mut self.problems, p, &mut unsettled.applied);
            }
        }
        for p in &problems {
            add_problem(&mut self.problems, p, &mut unsettled.applied);
        }
        if let Some(set) = added {
            unsettled.names.insert(set.name.clone());
            if set.health_check().is_some() {
                unsettled.users.insert(id.clone());
            }
            self.index(&set);
        }
        old
    }

    fn index(&mut self, set: &Arc<RecordSet>) {
        let sets = &mut self.candidates.entry(set.name.clone()).or_default().sets;
        let pos = sets.partition_point(|o| (o.seq, &o.id) < (set.seq, &set.id));
        sets.insert(pos, set.clone());
        if let Some((target, _)) = set.alias() {
            self.aliased_from.entry(target.clone()).or_default().insert(set.id.clone());
        }
        if let Some(check) = set.health_check() {
            self.check_users.entry(check.clone()).or_default().insert(set.id.clone());
        }
        if let Some(object) = source_object(set) {
            self.object_users.entry(object).or_default().insert(set.id.clone());
        }
    }

    fn unindex(&mut self, set: &Arc<RecordSet>) {
        if let Some(entry) = self.candidates.get_mut(&set.name) {
            entry.sets.retain(|o| o.id != set.id);
            // Kept while it has accepted types: settling needs to know them.
            if entry.sets.is_empty() && entry.accepted == 0 {
                self.candidates.swap_remove(&set.name);
            }
        }
        if let Some((target, _)) = set.alias() {
            remove_from(&mut self.aliased_from, target, &set.id);
        }
        if let Some(check) = set.health_check() {
            remove_from(&mut self.check_users, check, &set.id);
        }
        if let Some(object) = source_object(set) {
            remove_from(&mut self.object_users, &object, &set.id);
        }
    }
}

/// The object a record's data comes from.
fn source_object(set: &RecordSet) -> Option<(ObjectKind, ObjectRef)> {
    match &set.data {
        super::RecordData::Object(o) => Some((o.source.kind, set.id.sibling(&*o.source.name))),
        _ => None,
    }
}

fn calculated_children(entry: &CheckEntry) -> &[String] {
    match entry.local.as_deref() {
        Some(Check { probe: Probe::Calculated { children, .. }, .. }) => children,
        _ => &[],
    }
}

pub(super) fn add_problem(all: &mut BTreeSet<Problem>, p: &Problem, applied: &mut Applied) {
    if all.insert(p.clone()) {
        applied.added.push(p.clone());
    }
}

pub(super) fn remove_problem(all: &mut BTreeSet<Problem>, p: &Problem, applied: &mut Applied) {
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
