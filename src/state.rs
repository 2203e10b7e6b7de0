//! The served state, and the one place where a change becomes a snapshot.
//!
//! A change (objects from a source, or verdicts from the prober) costs what it
//! touches: the model settles only the names it can affect, the verdicts of the
//! changed checks and their Calculated parents are recomputed, only the name + types
//! that depend on them are decided again (and, when a routing really changed, the
//! aliases that point at them), and the new snapshot copies only the shards of the
//! names whose answers changed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::codec::wire_name;
use crate::endpoint_probes::EndpointProbes;
use crate::engine::{self, Routing};
use crate::health::{
    CheckersChanged, FLAP_WINDOW, HealthMap, LeafHealth, Listed, PeerView, Scope, VerdictChanges,
    Verdicts,
};
use crate::model::delegation::Delegation;
use crate::model::objects::{ObjectChange, ObjectKind};
use crate::model::{Applied, Change, Fqdn, Input, Key, Kind, Model, ObjectRef};
use crate::model::{Check, Probe};
use crate::resources::{FailoverRecordSpec, HealthCheckSpec};
use crate::snapshot::{self, Node, Snapshot, ZoneSettings};
pub use crate::view::SourceError;
use crate::view::{ObjectKey, View};
use arc_swap::ArcSwap;
use rustc_hash::{FxHashMap, FxHashSet};

pub struct State {
    settings: ZoneSettings,
    model: Model,
    health: HealthMap,
    verdicts: Verdicts,
    serial: u32,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// What readers see; `draft` is the next one, kept up to date change by change.
    pub view: Arc<ArcSwap<View>>,
    draft: View,
    /// How many names with records lie below each empty non-terminal.
    below: FxHashMap<Box<[u8]>, u32>,
    /// Checks whose definition changed since the prober last heard of it.
    changed_checks: BTreeSet<ObjectRef>,
    /// Objects whose status may read differently now; None when nobody writes status.
    status_dirty: Option<StatusDirty>,
    /// Checks on which the live checkers disagree.
    disagreeing: FxHashSet<ObjectRef>,
    /// Names + types answered other than by their first choice (degraded, failing
    /// open or closed, a fallback): few, so kept, and counted for `/metrics`.
    not_preferred: FxHashMap<Key, engine::Outcome>,
    /// The probes of each endpoint of checks with a serviceRef.
    endpoint_probes: EndpointProbes,
    /// The view's `verdict_changes` is pruned of checks steady for [`FLAP_WINDOW`]
    /// when it grows past this (twice what was left last time: amortised).
    prune_changes_at: usize,
}

/// The fewest entries `verdict_changes` is pruned at.
const PRUNE_AT_LEAST: usize = 64;

/// The objects whose written status may be out of date: changed, re-settled, or
/// whose health or share of the answers may have moved.
#[derive(Debug, Default)]
pub struct StatusDirty {
    pub checks: FxHashSet<ObjectRef>,
    pub records: FxHashSet<ObjectRef>,
}

impl StatusDirty {
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.records.is_empty()
    }

    fn mark(&mut self, kind: Kind, id: &ObjectRef) {
        match kind {
            Kind::HealthCheck => self.checks.insert(id.clone()),
            Kind::FailoverRecord => self.records.insert(id.clone()),
        };
    }

    /// Every object, as a list of keys.
    pub fn into_keys(self) -> impl Iterator<Item = ObjectKey> {
        let checks = self.checks.into_iter().map(|id| (Kind::HealthCheck, id));
        checks.chain(self.records.into_iter().map(|id| (Kind::FailoverRecord, id)))
    }
}

impl State {
    pub fn new(settings: ZoneSettings) -> Self {
        let model = Model::new(&settings.zones);
        let serial = next_serial(0);
        let snapshot = Arc::new(Snapshot::empty(&settings, serial));
        let draft = View::new(snapshot.clone(), &model.zones);
        Self {
            settings,
            model,
            health: HealthMap::default(),
            verdicts: Verdicts::default(),
            serial,
            snapshot: Arc::new(ArcSwap::new(snapshot)),
            view: Arc::new(ArcSwap::from_pointee(draft.clone())),
            draft,
            below: FxHashMap::default(),
            changed_checks: BTreeSet::new(),
            status_dirty: None,
            disagreeing: FxHashSet::default(),
            not_preferred: FxHashMap::default(),
            endpoint_probes: EndpointProbes::default(),
            prune_changes_at: PRUNE_AT_LEAST,
        }
    }

    pub fn zones(&self) -> &[Fqdn] {
        &self.settings.zones
    }

    pub fn settings(&self) -> &ZoneSettings {
        &self.settings
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn verdicts(&self) -> &Verdicts {
        &self.verdicts
    }

    pub fn health(&self) -> &HealthMap {
        &self.health
    }

    /// True once a source delivered its first configuration.
    pub fn loaded(&self) -> bool {
        self.draft.loaded
    }

    /// From now on, remembers which objects' status may have changed and keeps every
    /// object's facts in the view (cluster mode).
    pub fn track_status(&mut self) {
        if self.status_dirty.is_none() {
            self.status_dirty = Some(StatusDirty::default());
            let kinds = self.model.check_ids().map(|id| (Kind::HealthCheck, id.clone()));
            let all: Vec<ObjectKey> = kinds
                .chain(self.model.record_ids().map(|id| (Kind::FailoverRecord, id.clone())))
                .collect();
            for (kind, id) in all {
                self.draft.refresh_facts(&self.model, kind, &id);
            }
            self.publish_view();
        }
    }

    /// The objects whose status may have changed since the last call.
    pub fn take_status_dirty(&mut self) -> StatusDirty {
        self.status_dirty.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Applies a source's changes and serves the result at once.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = Change>) -> Applied {
        let (applied, touched) = self.apply_to_model(changes);
        self.publish(&applied, touched);
        applied
    }

    /// Applies a source's changes only if `accept` takes what they did to the model
    /// (a file source refuses an edit that rejects records); refused, they are undone
    /// before anything is served.
    pub fn apply_if(
        &mut self,
        changes: impl IntoIterator<Item = Change>,
        accept: impl FnOnce(&Applied) -> bool,
    ) -> Option<Applied> {
        let (applied, touched) = self.apply_to_model(changes);
        if accept(&applied) {
            self.publish(&applied, touched);
            Some(applied)
        } else {
            self.model.rollback(applied);
            None
        }
    }

    /// Applies to the model; with status tracked, also says which objects changed.
    fn apply_to_model(
        &mut self,
        changes: impl IntoIterator<Item = Change>,
    ) -> (Applied, Vec<ObjectKey>) {
        if self.status_dirty.is_none() {
            return (self.model.apply(changes), Vec::new());
        }
        let changes: Vec<Change> = changes.into_iter().collect();
        let touched = changes.iter().map(Change::key).collect();
        (self.model.apply(changes), touched)
    }

    /// Replaces the configuration with a source's complete set of objects.
    pub fn set_inputs(
        &mut self,
        checks: &[Input<HealthCheckSpec>],
        records: &[Input<FailoverRecordSpec>],
        source_errors: Vec<SourceError>,
    ) {
        let keep_checks: FxHashSet<&ObjectRef> = checks.iter().map(|c| &c.id).collect();
        let keep_records: FxHashSet<&ObjectRef> = records.iter().map(|r| &r.id).collect();
        let mut changes: Vec<Change> = Vec::new();
        changes.extend(
            self.model
                .check_ids()
                .filter(|id| !keep_checks.contains(id))
                .cloned()
                .map(Change::RemoveCheck),
        );
        changes.extend(
            self.model
                .record_ids()
                .filter(|id| !keep_records.contains(id))
                .cloned()
                .map(Change::RemoveRecord),
        );
        changes.extend(checks.iter().cloned().map(Change::Check));
        changes.extend(records.iter().cloned().map(Change::Record));
        self.draft.source_errors = source_errors.into();
        self.draft.loaded = true;
        self.apply(changes);
    }

    /// Sets or removes one NameDelegation; decides again the names it covers.
    pub fn set_delegation(&mut self, name: &str, delegation: Option<Delegation>) {
        let applied = self.model.set_delegation(name, delegation);
        self.publish(&applied, Vec::new());
    }

    /// Cluster mode: records and checks may read Services, EndpointSlices, Ingresses
    /// and Gateways. Before any object arrives.
    pub fn set_cluster_objects(&mut self) {
        self.model.set_cluster_objects(true);
    }

    /// `--require-delegation`.
    pub fn set_require_delegation(&mut self, required: bool) {
        let applied = self.model.set_require_delegation(required);
        self.publish(&applied, Vec::new());
    }

    /// A namespace's labels (None: it is gone), for delegations that select by label.
    pub fn set_namespace_labels(
        &mut self,
        namespace: &str,
        labels: Option<BTreeMap<String, String>>,
    ) {
        let applied = self.model.set_namespace_labels(namespace, labels);
        self.publish(&applied, Vec::new());
    }

    /// What a source could not read or parse (replaces what it said before).
    pub fn set_source_errors(&mut self, errors: Vec<SourceError>) {
        if *self.draft.source_errors != *errors {
            self.draft.source_errors = errors.into();
            self.publish_view();
        }
    }

    /// The source delivered its first complete configuration (`/readyz`).
    pub fn mark_loaded(&mut self) {
        if !self.draft.loaded {
            self.draft.loaded = true;
            self.publish_view();
        }
    }

    /// Holds answers back (SERVFAIL) or serves them; `/readyz` follows.
    pub fn set_ready(&mut self, ready: bool) {
        self.draft.loaded = ready;
        let next = self.snapshot.load().with_ready(ready);
        self.snapshot.store(Arc::new(next));
        self.publish_view();
    }

    /// The checks whose definition changed since the last call (for the prober).
    pub fn take_changed_checks(&mut self) -> BTreeSet<ObjectRef> {
        std::mem::take(&mut self.changed_checks)
    }

    /// Health checks changed state (transitions reported by the prober); one update
    /// for the whole batch.
    pub fn set_health(&mut self, updates: impl IntoIterator<Item = (ObjectRef, LeafHealth)>) {
        let mut changed = Vec::new();
        let mut probed_services = BTreeSet::new();
        for (id, health) in updates {
            if self.model.checks.contains_key(&id) {
                self.health.set(id.clone(), health);
                changed.push(id);
            } else if let Some(check) = self.endpoint_probes.report(&id, health) {
                probed_services.insert(check);
            }
        }
        let now = SystemTime::now();
        for id in probed_services {
            let Some(check) = self.model.checks.get(&id) else { continue };
            let leaf = self.endpoint_probes.leaf(check, self.health.get(&id), now);
            self.put_endpoint_leaf(&id, leaf);
            changed.push(id);
        }
        self.health_changed(changed);
    }

    /// What Kubernetes objects say now (cluster mode): the records and Endpoints checks
    /// that read them are decided again, nothing else.
    pub fn set_objects(&mut self, changes: Vec<ObjectChange>) {
        let (applied, checks) = self.model.set_objects(changes);
        if !applied.is_empty() || !checks.is_empty() {
            // One snapshot for both: a record and the check that reads the same Service
            // change together.
            self.publish_with_health(&applied, Vec::new(), checks);
        }
    }

    /// A re-listing of `kind` in `namespace` (None: all) ended: what it did not show is
    /// gone.
    pub fn objects_relisted(
        &mut self,
        kind: ObjectKind,
        namespace: Option<&str>,
        seen: &FxHashSet<ObjectRef>,
    ) {
        let gone = self.model.objects().missing(kind, namespace, seen);
        if !gone.is_empty() {
            let changes = gone.into_iter().map(|id| ObjectChange { kind, id, facts: None });
            self.set_objects(changes.collect());
        }
    }

    /// Whether the Gateway API is installed (cluster mode).
    pub fn set_gateway_api(&mut self, installed: bool) {
        let applied = self.model.set_gateway_api(installed);
        self.publish(&applied, Vec::new());
    }

    /// Endpoints checks' state from their Services' ready endpoints now.
    /// Checks probing a Service start and stop their endpoints' probes (the prober
    /// hears of them with the changed checks).
    fn refresh_endpoint_leaves(&mut self, checks: &[ObjectRef]) {
        let now = SystemTime::now();
        for id in checks {
            let Some(check) = self.model.checks.get(id).cloned() else { continue };
            let objects = self.model.objects();
            let changed = self.endpoint_probes.sync(&check, objects);
            self.changed_checks.extend(changed);
            let leaf = match &check.probe {
                Probe::Service { .. } => {
                    Some(self.endpoint_probes.leaf(&check, self.health.get(id), now))
                }
                _ => LeafHealth::from_endpoints(&check, objects, self.health.get(id), now),
            };
            if let Some(leaf) = leaf {
                self.put_endpoint_leaf(id, leaf);
            }
        }
    }

    /// An Endpoints or serviceRef check's state, for the verdict and for readers.
    /// Its own verdict may have changed: listed among the changed checks, so this
    /// replica's report tells the other checkers.
    fn put_endpoint_leaf(&mut self, id: &ObjectRef, leaf: LeafHealth) {
        self.changed_checks.insert(id.clone());
        self.draft.endpoint_leaves.insert(id.clone(), Arc::new(leaf.clone()));
        self.health.set(id.clone(), leaf);
    }

    /// A check's or an endpoint probe's definition, for the prober.
    pub fn probe_check(&self, id: &ObjectRef) -> Option<&Arc<Check>> {
        self.model.checks.get(id).or_else(|| self.endpoint_probes.probe(id))
    }

    /// Turns the checker quorum on (`percent` > 0) or off; decides every check again.
    pub fn set_quorum(&mut self, percent: u8) {
        self.health.set_quorum(percent);
        let all: Vec<ObjectRef> = self.model.checks.keys().cloned().collect();
        self.health_changed(all);
    }

    /// This replica's name among the checkers.
    pub fn set_identity(&mut self, me: Arc<str>) {
        self.health.set_identity(me);
        self.publish_view();
    }

    /// Part of another checker's report (see [`HealthMap::checker_report`]).
    pub fn checker_report(
        &mut self,
        checker: &Arc<str>,
        scope: Scope,
        views: impl IntoIterator<Item = (ObjectRef, Option<PeerView>)>,
    ) {
        let changed = self.health.checker_report(checker, scope, views);
        self.checkers_changed(changed);
    }

    /// A checker is gone (its report expired or was deleted): its views no longer count.
    pub fn forget_checker(&mut self, checker: &str) {
        let changed = self.health.forget_checker(checker);
        self.checkers_changed(changed);
    }

    fn checkers_changed(&mut self, changed: CheckersChanged) {
        let checks: Vec<ObjectRef> = match changed {
            CheckersChanged::Membership => self.model.checks.keys().cloned().collect(),
            CheckersChanged::Checks(ids) => {
                ids.into_iter().filter(|id| self.model.checks.contains_key(id)).collect()
            }
        };
        self.health_changed(checks);
    }

    /// What this replica's own report says of a check: unhealthy (with the reason), or
    /// pending while no probe result backs its verdict; None when it sees the check
    /// healthy or does not probe it (gone, Calculated, disabled).
    pub fn own_listing(&self, id: &ObjectRef) -> Option<Listed> {
        let check =
            self.model.checks.get(id).filter(|c| c.is_checked_by_each_replica() && !c.disabled)?;
        if !self.health.own_established(check) {
            return Some(Listed::Pending);
        }
        if self.health.own_verdict(check) {
            return None;
        }
        let reason = self.health.get(id).map_or_else(|| "Unhealthy".into(), |l| l.reason.clone());
        Some(Listed::Unhealthy(Arc::from(reason)))
    }

    /// Decides again what depends on these checks' health, and publishes.
    fn health_changed(&mut self, checks: Vec<ObjectRef>) {
        if let Some(dirty) = self.status_dirty.as_mut() {
            dirty.checks.extend(checks.iter().cloned());
        }
        let mut keys = FxHashSet::default();
        self.update_verdicts(checks, &mut keys);
        self.replan(keys);
        self.publish_view();
    }

    fn publish(&mut self, applied: &Applied, touched: Vec<ObjectKey>) {
        self.publish_with_health(applied, touched, Vec::new());
    }

    /// [`Self::publish`], and the Endpoints and serviceRef checks in `endpoints` decided
    /// again from their Service's endpoints now.
    fn publish_with_health(
        &mut self,
        applied: &Applied,
        touched: Vec<ObjectKey>,
        endpoints: Vec<ObjectRef>,
    ) {
        self.refresh_endpoint_leaves(&endpoints);
        if let Some(dirty) = self.status_dirty.as_mut() {
            dirty.checks.extend(endpoints.iter().cloned());
        }
        for problem in &applied.added {
            tracing::warn!(
                kind = ?problem.kind,
                object = %problem.object,
                file = problem.file.as_deref().unwrap_or(""),
                field = %problem.field,
                severity = ?problem.severity,
                message = %problem.message,
                "configuration problem"
            );
        }
        for problem in &applied.removed {
            tracing::debug!(object = %problem.object, field = %problem.field, "configuration problem resolved");
        }
        for problem in &applied.removed {
            self.draft.put_problem(problem, false);
        }
        for problem in &applied.added {
            self.draft.put_problem(problem, true);
        }
        let endpoint_checks: Vec<ObjectRef> = applied
            .checks
            .iter()
            .filter(|id| {
                self.model.checks.get(*id).is_some_and(|c| c.endpoints_service().is_some())
            })
            .cloned()
            .collect();
        self.refresh_endpoint_leaves(&endpoint_checks);
        for id in &applied.checks {
            let check = self.model.checks.get(id);
            if check.is_none_or(|c| c.endpoints_service().is_none()) {
                self.draft.endpoint_leaves.remove(id);
                let stopped = self.endpoint_probes.forget(id);
                self.changed_checks.extend(stopped);
            }
            if check.is_none() {
                self.health.remove(id);
                self.draft.verdict_changes.remove(id);
            }
            self.draft.put_check(id, check);
            self.changed_checks.insert(id.clone());
        }
        for key in &applied.keys {
            self.draft.put_sets(key, self.model.sets.get(key).map(|s| &s[..]));
        }
        if let Some(dirty) = self.status_dirty.as_mut() {
            let problems =
                applied.added.iter().chain(&applied.removed).map(|p| (p.kind, p.object.clone()));
            let accepted = applied
                .keys
                .iter()
                .filter_map(|key| self.model.sets.get(key))
                .flat_map(|sets| sets.iter().map(|s| (Kind::FailoverRecord, s.id.clone())));
            let mut objects: FxHashSet<ObjectKey> = touched.into_iter().collect();
            objects.extend(problems.chain(accepted));
            for (kind, id) in objects {
                dirty.mark(kind, &id);
                self.draft.refresh_facts(&self.model, kind, &id);
            }
        }
        let mut more: FxHashSet<Key> = FxHashSet::default();
        let checks = applied.checks.iter().cloned().chain(endpoints).collect();
        self.update_verdicts(checks, &mut more);
        more.retain(|k| !applied.keys.contains(k));
        self.replan(applied.keys.iter().cloned().chain(more));
        self.publish_view();
    }

    fn count_outcome(&mut self, key: &Key, outcome: engine::Outcome) {
        let index = |o| engine::Outcome::ALL.iter().position(|x| *x == o).expect("listed");
        let old = if outcome == engine::Outcome::Preferred {
            self.not_preferred.remove(key)
        } else {
            self.not_preferred.insert(key.clone(), outcome)
        };
        let counts = &mut self.draft.outcomes.0;
        if let Some(old) = old.filter(|o| *o != engine::Outcome::Preferred) {
            counts[index(old)] -= 1;
        }
        if outcome != engine::Outcome::Preferred {
            counts[index(outcome)] += 1;
        }
    }

    /// Publishes the draft: a few reference counts, whatever the size.
    fn publish_view(&mut self) {
        self.draft.snapshot = self.snapshot.load_full();
        self.draft.verdicts = self.verdicts.clone();
        self.draft.checkers = self.health.checkers().clone();
        self.draft.disagreeing = self.disagreeing.len();
        self.view.store(Arc::new(self.draft.clone()));
    }

    /// Recomputes the verdicts of `checks` and of the Calculated checks above them;
    /// every name + type that uses a check whose verdict changed goes into `keys`.
    fn update_verdicts(&mut self, checks: Vec<ObjectRef>, keys: &mut FxHashSet<Key>) {
        let mut queue = checks;
        while let Some(id) = queue.pop() {
            self.recount_disagreement(&id);
            let verdict = self.health.verdict(&self.model, &id);
            let before = self.verdicts.get(&id);
            if self.verdicts.set(&id, verdict) {
                if let Some(dirty) = self.status_dirty.as_mut() {
                    dirty.checks.insert(id.clone());
                    // A verdict that flipped (not one that came or went with its check).
                    if before.is_some() && verdict.is_some() {
                        self.count_verdict_change(&id);
                    }
                }
                keys.extend(self.model.keys_using_check(&id));
                queue.extend(self.model.calculated_parents(&id).into_iter().cloned());
            }
        }
    }

    /// One more change of a check's combined verdict, in the view (cluster mode): what
    /// the status writer's `Flapping` condition counts. Costs what it touches: the
    /// check's own entry, and now and then a prune of the checks steady for
    /// [`FLAP_WINDOW`], amortised over the entries added since the last one.
    fn count_verdict_change(&mut self, id: &ObjectRef) {
        let now = SystemTime::now();
        let changes = &mut self.draft.verdict_changes;
        match changes.get_mut(id) {
            Some(entry) => Arc::make_mut(entry).record(now),
            None => {
                let mut entry = VerdictChanges::default();
                entry.record(now);
                changes.insert(id.clone(), Arc::new(entry));
            }
        }
        if changes.len() > self.prune_changes_at {
            let steady: Vec<ObjectRef> = changes
                .iter()
                .filter(|(_, c)| c.nth_latest(0).is_none_or(|t| t + FLAP_WINDOW < now))
                .map(|(id, _)| id.clone())
                .collect();
            for id in steady {
                changes.remove(&id);
            }
            self.prune_changes_at = (2 * changes.len()).max(PRUNE_AT_LEAST);
        }
    }

    /// Whether the live checkers disagree on this check (some see it healthy, some not).
    fn recount_disagreement(&mut self, id: &ObjectRef) {
        let check =
            self.model.checks.get(id).filter(|c| c.is_checked_by_each_replica() && !c.disabled);
        let (up, of) = check.map_or((0, 0), |c| self.health.checker_counts(c));
        if up > 0 && up < of {
            self.disagreeing.insert(id.clone());
        } else {
            self.disagreeing.remove(id);
        }
    }

    /// Decides `keys` again, then every alias whose target's routing changed, and
    /// publishes a snapshot that differs from the current one only there.
    fn replan(&mut self, keys: impl IntoIterator<Item = Key>) {
        let current = self.snapshot.load_full();
        // Aliases waiting to be decided again (the seeds must be distinct).
        let mut queued: FxHashSet<Key> = FxHashSet::default();
        let mut queue: VecDeque<Key> = keys.into_iter().collect();
        // Each key's wire name is made once, and kept for the snapshot's edits.
        let mut decided: FxHashMap<Key, (Box<[u8]>, Option<Routing>)> =
            FxHashMap::with_capacity_and_hasher(queue.len(), Default::default());
        while let Some(key) = queue.pop_front() {
            if !queued.is_empty() {
                queued.remove(&key);
            }
            // Every record set decided again may have changed health or share, even
            // when the answer did not (a SECONDARY failing behind a healthy PRIMARY).
            if let (Some(dirty), Some(sets)) =
                (self.status_dirty.as_mut(), self.model.sets.get(&key))
            {
                dirty.records.extend(sets.iter().map(|s| s.id.clone()));
            }
            let lookup = |k: &Key| match decided.get(k) {
                Some((_, o)) => o.clone(),
                None => current.node(&wire_name(&k.0)).and_then(|n| n.routing(k.1)).cloned(),
            };
            let new = self.model.sets.get(&key).and_then(|sets| {
                engine::decide(&key, sets, &self.verdicts, &mut |k| lookup(k), false)
                    .map(|d| d.routing())
            });
            let (wire, old) = match decided.get(&key) {
                Some((wire, o)) => (wire.clone(), o.clone()),
                None => {
                    let wire = wire_name(&key.0);
                    let old = current.node(&wire).and_then(|n| n.routing(key.1)).cloned();
                    (wire, old)
                }
            };
            let changed = match (old, &new) {
                (Some(old), Some(new)) => !old.same(new),
                (None, None) => false,
                _ => true,
            };
            if changed {
                let outcome = new.as_ref().map_or(engine::Outcome::Preferred, |r| r.outcome);
                self.count_outcome(&key, outcome);
                decided.insert(key.clone(), (wire, new));
                for dependent in self.model.alias_dependents(&key) {
                    if queued.insert(dependent.clone()) {
                        queue.push_back(dependent);
                    }
                }
            }
        }
        if decided.is_empty() {
            return;
        }
        let edits = self.node_edits(&current, decided);
        self.serial = next_serial(self.serial);
        let zones = snapshot::zones(&self.settings, self.serial);
        let started = std::time::Instant::now();
        let next = current.update(self.serial, zones, edits);
        tracing::debug!(
            serial = self.serial,
            names = next.name_count(),
            update_us = started.elapsed().as_secs_f64() * 1e6,
            "serving new snapshot"
        );
        self.snapshot.store(Arc::new(next));
    }

    /// The nodes to replace: the names whose routing changed, and the empty
    /// non-terminals above names that gained their first or lost their last records.
    fn node_edits(
        &mut self,
        current: &Snapshot,
        decided: FxHashMap<Key, (Box<[u8]>, Option<Routing>)>,
    ) -> Vec<(Box<[u8]>, Option<Node>)> {
        let mut nodes: FxHashMap<Box<[u8]>, (Fqdn, Node)> =
            FxHashMap::with_capacity_and_hasher(decided.len(), Default::default());
        for ((name, rtype), (wire, routing)) in decided {
            let (_, node) = nodes.entry(wire).or_insert_with_key(|wire| {
                (name, current.node(wire).cloned().unwrap_or_else(|| Node::new(wire.clone())))
            });
            node.set_routing(rtype, routing);
        }
        let mut edits: Vec<(Box<[u8]>, Option<Node>)> = Vec::with_capacity(nodes.len());
        let mut touched_ancestors: Vec<Box<[u8]>> = Vec::new();
        for (wire, (name, node)) in nodes {
            let had = current.node(&wire).is_some_and(|n| !n.is_empty());
            let has = !node.is_empty();
            if had != has {
                let zone = self.model.zone_of(&name).expect("served names lie in a zone").clone();
                for ancestor in name.ancestors_below(&zone) {
                    let ancestor = wire_name(&ancestor);
                    let count = self.below.entry(ancestor.clone()).or_insert(0);
                    if has {
                        *count += 1;
                    } else {
                        *count -= 1;
                        if *count == 0 {
                            self.below.remove(&ancestor);
                        }
                    }
                    touched_ancestors.push(ancestor);
                }
            }
            let keep =
                has || current.is_apex(&wire) || self.below.get(&wire).is_some_and(|n| *n > 0);
            edits.push((wire, keep.then_some(node)));
        }
        if touched_ancestors.is_empty() {
            return edits;
        }
        // Where each name's edit is, to settle the ancestors against this batch.
        let mut at: FxHashMap<Box<[u8]>, usize> =
            edits.iter().enumerate().map(|(i, (w, _))| (w.clone(), i)).collect();
        for wire in touched_ancestors {
            let below = self.below.get(&wire).copied().unwrap_or(0);
            if let Some(&i) = at.get(&wire) {
                // Decided in this batch: existence follows from the counts just updated.
                let empty = edits[i].1.as_ref().is_none_or(Node::is_empty);
                if empty && !current.is_apex(&wire) {
                    let node = edits[i].1.take().unwrap_or_else(|| Node::new(wire.clone()));
                    edits[i].1 = (below > 0).then_some(node);
                }
                continue;
            }
            let exists = current.node(&wire);
            let edit = match (exists, below > 0) {
                (None, true) => Some(Node::new(wire.clone())),
                (Some(node), false) if node.is_empty() && !current.is_apex(&wire) => None,
                _ => continue,
            };
            at.insert(wire.clone(), edits.len());
            edits.push((wire, edit));
        }
        edits
    }
}

/// SOA serials follow the clock (seconds) but always increase.
fn next_serial(previous: u32) -> u32 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as u32;
    now.max(previous.wrapping_add(1))
}
