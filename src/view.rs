//! What readers see besides the DNS snapshot: the valid checks and their verdicts,
//! the accepted record sets, every object's facts and the problems, published with
//! each snapshot as one immutable value.
//!
//! `/readyz`, `/status`, `/explain` and the status writer read a [`View`] and never
//! wait for the sink. The sink keeps the view's maps persistent (`imbl`): a change
//! copies the paths to what it touched and shares the rest, so publishing a view
//! costs what changed, and a reader holding an old view holds little beyond it.

use std::ops::Bound;
use std::sync::Arc;

use arc_swap::ArcSwap;
use imbl::{OrdMap, OrdSet};
use serde::Serialize;

use crate::engine::{Outcome, RecordSets};

/// Names + types per [`Outcome`], indexed as [`Outcome::ALL`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts(pub [usize; Outcome::ALL.len()]);
use crate::health::{Checkers, Verdicts};
use crate::model::{Check, Fqdn, Key, Kind, Model, ObjectRef, Problem, RecordSet, Sets};
use crate::snapshot::Snapshot;

/// A kind and an object: how status and Events name what they are about.
pub type ObjectKey = (Kind, ObjectRef);

/// A source-level problem that kept a whole file (or object) out, e.g. a YAML error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceError {
    pub file: String,
    pub message: String,
}

/// One object as the status writer needs it (tracked in cluster mode only).
#[derive(Clone, Debug)]
pub struct Facts {
    pub generation: Option<i64>,
    /// Errors first (own fields, then relations), then warnings.
    pub problems: Arc<[Problem]>,
    /// A record's accepted record set, while it is served.
    pub accepted: Option<Arc<RecordSet>>,
    /// A record valid on its own but not served (a conflict, a missing alias target,
    /// a cycle), as opposed to one invalid in itself.
    pub rejected_by_relation: bool,
}

impl Facts {
    fn of(model: &Model, kind: Kind, id: &ObjectRef) -> Option<Self> {
        let problems = model.problems_of(kind, id)?.into_iter().cloned().collect();
        let (accepted, rejected_by_relation) = match kind {
            Kind::HealthCheck => (None, false),
            Kind::FailoverRecord => {
                (model.accepted_record(id).cloned(), model.record_rejection(id).is_some())
            }
        };
        Some(Facts {
            generation: model.generation(kind, id),
            problems,
            accepted,
            rejected_by_relation,
        })
    }
}

/// The published state, immutable once published.
#[derive(Clone)]
pub struct View {
    /// The DNS snapshot published with this view.
    pub snapshot: Arc<Snapshot>,
    /// False until a source delivered its first complete configuration.
    pub loaded: bool,
    pub zones: Arc<[Fqdn]>,
    /// Valid checks.
    pub checks: OrdMap<ObjectRef, Arc<Check>>,
    pub verdicts: Verdicts,
    /// The other checkers and their views (checker quorum).
    pub checkers: Checkers,
    /// How many checks the live checkers disagree on.
    pub disagreeing: usize,
    /// How many names + types are answered each way now, by [`Outcome`] (the
    /// `preferred` count is not kept: it is every other one).
    pub outcomes: OutcomeCounts,
    /// When the combined verdict of each check that changed lately changed: none for a
    /// steady check (the status writer's `Flapping` condition; see
    /// [`VerdictChanges`](crate::health::VerdictChanges)).
    pub verdict_changes: OrdMap<ObjectRef, Arc<crate::health::VerdictChanges>>,
    /// The state of each Endpoints check (the prober holds the probed ones').
    pub endpoint_leaves: OrdMap<ObjectRef, Arc<crate::health::LeafHealth>>,
    /// Accepted record sets of each name + type, oldest first, in name order.
    pub sets: OrdMap<Key, Sets>,
    /// Every known object (valid or not); empty unless status is tracked.
    pub objects: OrdMap<ObjectKey, Facts>,
    pub problems: OrdSet<Problem>,
    pub source_errors: Arc<[SourceError]>,
}

impl View {
    pub fn new(snapshot: Arc<Snapshot>, zones: &[Fqdn]) -> Self {
        Self {
            snapshot,
            loaded: false,
            zones: zones.into(),
            checks: OrdMap::new(),
            verdicts: Verdicts::default(),
            checkers: Checkers::default(),
            disagreeing: 0,
            outcomes: OutcomeCounts::default(),
            verdict_changes: OrdMap::new(),
            endpoint_leaves: OrdMap::new(),
            sets: OrdMap::new(),
            objects: OrdMap::new(),
            problems: OrdSet::new(),
            source_errors: Arc::from([]),
        }
    }

    /// An Endpoints check's state (None for any other check).
    pub fn endpoint_leaf(&self, id: &ObjectRef) -> Option<crate::health::LeafHealth> {
        self.endpoint_leaves.get(id).map(|l| (**l).clone())
    }

    pub fn serial(&self) -> u32 {
        self.snapshot.serial
    }

    /// Answers are served (not SERVFAIL) and the first configuration is in.
    pub fn ready(&self) -> bool {
        self.loaded && self.snapshot.ready
    }

    pub fn facts(&self, kind: Kind, id: &ObjectRef) -> Option<&Facts> {
        self.objects.get(&(kind, id.clone()))
    }

    /// The name + types after `after` (all of them when None), in name order.
    pub fn keys_after<'v>(&'v self, after: Option<&Key>) -> impl Iterator<Item = &'v Key> + 'v {
        let lower = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.clone()));
        self.sets.range((lower, Bound::Unbounded)).map(|(k, _)| k)
    }

    /// The checks after `after` (all of them when None), in name order.
    pub fn checks_after<'v>(
        &'v self,
        after: Option<&ObjectRef>,
    ) -> impl Iterator<Item = &'v Arc<Check>> + 'v {
        let lower = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.clone()));
        self.checks.range((lower, Bound::Unbounded)).map(|(_, c)| c)
    }

    // The writer's side: each takes what one change touched.

    pub(crate) fn put_check(&mut self, id: &ObjectRef, check: Option<&Arc<Check>>) {
        match check {
            Some(c) => drop(self.checks.insert(id.clone(), c.clone())),
            None => drop(self.checks.remove(id)),
        }
    }

    pub(crate) fn put_sets(&mut self, key: &Key, sets: Option<&[Arc<RecordSet>]>) {
        match sets {
            Some(s) => drop(self.sets.insert(key.clone(), s.iter().cloned().collect())),
            None => drop(self.sets.remove(key)),
        }
    }

    pub(crate) fn put_problem(&mut self, problem: &Problem, present: bool) {
        if present {
            self.problems.insert(problem.clone());
        } else {
            self.problems.remove(problem);
        }
    }

    pub(crate) fn refresh_facts(&mut self, model: &Model, kind: Kind, id: &ObjectRef) {
        let key = (kind, id.clone());
        match Facts::of(model, kind, id) {
            Some(facts) => drop(self.objects.insert(key, facts)),
            None => drop(self.objects.remove(&key)),
        }
    }
}

impl RecordSets for View {
    fn sets_of(&self, key: &Key) -> Option<&[Arc<RecordSet>]> {
        self.sets.get(key).map(|s| &s[..])
    }

    fn keys(&self) -> Box<dyn Iterator<Item = &Key> + '_> {
        Box::new(self.sets.keys())
    }
}

/// `failoverdns_answer_outcomes{outcome}`: how many names + types are answered other
/// than by their first choice, read from the published view at each scrape.
pub struct OutcomeGauges(pub Arc<ArcSwap<View>>);

impl OutcomeGauges {
    pub fn register(
        registry: &mut prometheus_client::registry::Registry,
        view: Arc<ArcSwap<View>>,
    ) {
        registry.register_collector(Box::new(OutcomeGauges(view)));
    }
}

impl std::fmt::Debug for OutcomeGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutcomeGauges")
    }
}

impl prometheus_client::collector::Collector for OutcomeGauges {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        let view = self.0.load();
        let mut family = encoder.encode_descriptor(
            "answer_outcomes",
            "Names + types answered other than by their first choice: degraded (a SECONDARY, zero-weight standbys), fail_open, fail_closed, fallback",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (i, outcome) in Outcome::ALL.iter().enumerate().skip(1) {
            let gauge =
                prometheus_client::metrics::gauge::ConstGauge::new(view.outcomes.0[i] as i64);
            gauge.encode(family.encode_family(&[("outcome", outcome.name())])?)?;
        }
        Ok(())
    }
}
