//! The one sink. Every source of change sends typed updates here: manifest files and
//! API watches send [`Update`]s, the prober its transitions. The sink alone owns the
//! [`State`]: it applies each update, tells the prober which checks changed and the
//! status writer what may read differently. Sources know neither; readers never meet
//! the sink, they read the view it publishes.
//!
//! Transitions go first: a failover never waits behind a large listing.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::health::{Listed, PeerView, Scope};
use crate::model::delegation::Delegation;
use crate::model::objects::{ObjectChange, ObjectKind};
use crate::model::{Applied, Change, Kind, Model, ObjectRef};
use crate::prober::{HealthUpdate, Prober};
use crate::state::State;
use crate::status::{ShownStatus, StatusNews};
use crate::view::{ObjectKey, SourceError};

/// Updates waiting for the sink before a source is held back.
const QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("the sink has stopped")]
    Stopped,
    #[error("the prober's transitions stopped arriving")]
    ProberGone,
}

/// Whether a batch is all-or-nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Applied whatever it does.
    All,
    /// Refused whole when it would reject an object that is valid now (a file whose
    /// edit breaks something keeps its last good version).
    RefuseNewErrors,
}

/// What became of a batch of changes.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchResult {
    Applied {
        changed: bool,
    },
    /// Nothing was applied; these are the problems it would have introduced.
    Refused {
        introduced: Vec<String>,
    },
}

/// One object event of an API watch.
// Nearly every event is a `Put`: boxing it would allocate once more per object.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Watched {
    /// The object as it is now: applied unless the model holds this generation.
    Put {
        change: Change,
        generation: Option<i64>,
        shown: ShownStatus,
    },
    Delete {
        kind: Kind,
        id: ObjectRef,
    },
    /// A (re-)listing of `kind` in `scope` (None: every namespace) ended, having shown
    /// `seen`: anything else of that kind in that scope was deleted meanwhile.
    Relisted {
        kind: Kind,
        scope: Option<String>,
        seen: FxHashSet<ObjectRef>,
    },
}

/// This replica's own verdicts that may have changed: the reason when it sees the check
/// unhealthy, None when healthy (or no longer probed).
pub type OwnVerdicts = Vec<(ObjectRef, Option<Listed>)>;

/// What the other checkers report, for the sink (checker quorum).
#[derive(Debug)]
pub enum CheckerNews {
    /// A checker's report (the first one makes it live): its views that changed.
    Report { checker: Arc<str>, scope: Scope, views: Vec<(ObjectRef, Option<PeerView>)> },
    /// Its report expired or was deleted.
    Gone { checker: Arc<str> },
}

/// A change from a source.
#[derive(Debug)]
pub enum Update {
    /// Changes as they are (a file source diffs its own documents).
    Changes {
        changes: Vec<Change>,
        admission: Admission,
        reply: Option<oneshot::Sender<BatchResult>>,
    },
    /// Watch events, in order.
    Watched(Vec<Watched>),
    /// What the source could not read; `complete` once it has delivered a whole
    /// configuration (until then, cluster mode answers SERVFAIL).
    SourceState { errors: Option<Vec<SourceError>>, complete: bool },
    /// What the other checkers report (checker quorum).
    Checkers(Vec<CheckerNews>),
    /// A NameDelegation as it is now (None: deleted, or invalid).
    Delegation { name: String, delegation: Option<Delegation> },
    /// A namespace's labels (None: the namespace is gone).
    NamespaceLabels { namespace: String, labels: Option<BTreeMap<String, String>> },
    /// Services, EndpointSlices, Ingresses and Gateways as they are now.
    Objects(Vec<ObjectChange>),
    /// A (re-)listing of `kind` in `namespace` (None: all) ended, having shown `seen`.
    ObjectsRelisted { kind: ObjectKind, namespace: Option<String>, seen: FxHashSet<ObjectRef> },
    /// Whether the API server serves the Gateway API's Gateway kind.
    GatewayApi { installed: bool },
}

/// A source's way into the sink; cheap to clone.
#[derive(Clone, Debug)]
pub struct SinkHandle {
    updates: mpsc::Sender<Update>,
}

impl SinkHandle {
    pub async fn send(&self, update: Update) -> Result<(), SinkError> {
        self.updates.send(update).await.map_err(|_| SinkError::Stopped)
    }

    /// Applies changes and waits for what became of them.
    pub async fn apply(
        &self,
        changes: Vec<Change>,
        admission: Admission,
    ) -> Result<BatchResult, SinkError> {
        let (reply, answer) = oneshot::channel();
        self.send(Update::Changes { changes, admission, reply: Some(reply) }).await?;
        answer.await.map_err(|_| SinkError::Stopped)
    }
}

/// The sink before it runs: sources get handles from it.
pub struct Sink {
    state: State,
    updates: mpsc::Receiver<Update>,
    handle: SinkHandle,
    status: Option<mpsc::UnboundedSender<StatusNews>>,
    own_verdicts: Option<mpsc::UnboundedSender<OwnVerdicts>>,
    /// How many sources must say their configuration is complete before serving.
    sources: usize,
}

impl Sink {
    pub fn new(state: State) -> Self {
        let (tx, updates) = mpsc::channel(QUEUE);
        let handle = SinkHandle { updates: tx };
        Self { state, updates, handle, status: None, own_verdicts: None, sources: 1 }
    }

    pub fn handle(&self) -> SinkHandle {
        self.handle.clone()
    }

    /// From now on, tells a status writer what may read differently (cluster mode).
    pub fn status_news(&mut self) -> mpsc::UnboundedReceiver<StatusNews> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.state.track_status();
        self.status = Some(tx);
        rx
    }

    /// One more source must deliver a whole configuration before answers are served.
    pub fn add_source(&mut self) {
        self.sources += 1;
    }

    /// From now on, tells this replica's report writer how its own verdicts change
    /// (checker quorum); `me` is its name among the checkers.
    pub fn own_verdicts(&mut self, me: Arc<str>) -> mpsc::UnboundedReceiver<OwnVerdicts> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.state.set_identity(me);
        self.own_verdicts = Some(tx);
        rx
    }

    /// Applies updates until `shutdown`. Ends with an error only when the prober's
    /// transitions stop arriving: a stale server must not look healthy.
    pub async fn run(
        self,
        prober: Prober,
        mut transitions: mpsc::UnboundedReceiver<HealthUpdate>,
        shutdown: CancellationToken,
    ) -> Result<(), SinkError> {
        let Sink { mut state, mut updates, handle, status, own_verdicts, sources } = self;
        // Sources hold their own handles: this one must not keep the channel open.
        drop(handle);
        let mut fan_out =
            FanOut { prober, status, own_verdicts, own_started: false, incomplete: sources };
        // What was loaded before the sink ran (the manifests at start) is news too.
        let mut transitioned = Vec::new();
        fan_out.after(&mut state, &mut transitioned);
        let mut sources_open = true;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                first = transitions.recv() => {
                    let Some(first) = first else { return Err(SinkError::ProberGone) };
                    let mut batch = vec![(first.id, first.health)];
                    while let Ok(more) = transitions.try_recv() {
                        batch.push((more.id, more.health));
                    }
                    if fan_out.own_verdicts.is_some() {
                        transitioned.extend(batch.iter().map(|(id, _)| id.clone()));
                    }
                    state.set_health(batch);
                }
                update = updates.recv(), if sources_open => match update {
                    Some(update) => apply(&mut state, update, &mut fan_out),
                    // Every source ended (the supervisor has noticed): transitions go on.
                    None => sources_open = false,
                },
            }
            fan_out.after(&mut state, &mut transitioned);
        }
    }
}

/// Where the consequences of an update go.
struct FanOut {
    prober: Prober,
    status: Option<mpsc::UnboundedSender<StatusNews>>,
    own_verdicts: Option<mpsc::UnboundedSender<OwnVerdicts>>,
    /// The report writer has had this replica's whole listing.
    own_started: bool,
    /// Sources that have not delivered a whole configuration yet.
    incomplete: usize,
}

impl FanOut {
    fn tell_status(&self, news: StatusNews) {
        if let Some(status) = &self.status {
            // A writer that stopped is the supervisor's business, not the sink's.
            let _ = status.send(news);
        }
    }

    /// The prober learns of changed checks, the status writer of what may read
    /// differently in the view just published.
    fn after(&mut self, state: &mut State, transitioned: &mut Vec<ObjectRef>) {
        let changed = state.take_changed_checks();
        if !changed.is_empty() {
            self.prober.update_checks(changed.iter().map(|id| (id, state.probe_check(id))));
        }
        if let Some(own) = &self.own_verdicts {
            // The first report waits for a whole configuration and lists all of it (a
            // check it did not list would count as seen healthy by this replica).
            let first = !self.own_started && state.loaded();
            let ids: Vec<ObjectRef> = if first {
                state.model().checks.keys().cloned().collect()
            } else if self.own_started {
                // An endpoint probe reaches the report through its check.
                let ids = changed.into_iter().chain(transitioned.iter().cloned());
                ids.filter(|id| !crate::endpoint_probes::is_probe_id(id)).collect()
            } else {
                Vec::new()
            };
            transitioned.clear();
            let verdicts: OwnVerdicts = ids
                .into_iter()
                .map(|id| {
                    let verdict = state.own_listing(&id);
                    (id, verdict)
                })
                .collect();
            if first || !verdicts.is_empty() {
                // A writer that stopped is the supervisor's business, not the sink's.
                let _ = own.send(verdicts);
            }
            self.own_started |= first;
        }
        let dirty = state.take_status_dirty();
        if !dirty.is_empty() {
            self.tell_status(StatusNews::Dirty(dirty.into_keys().collect()));
        }
    }
}

fn apply(state: &mut State, update: Update, fan_out: &mut FanOut) {
    match update {
        Update::Changes { changes, admission, reply } => {
            let result = apply_changes(state, changes, admission);
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
        Update::Watched(events) => {
            let changes =
                watched_changes(state.model(), events, &mut |news| fan_out.tell_status(news));
            if !changes.is_empty() {
                state.apply(changes);
            }
        }
        Update::Checkers(news) => {
            for news in news {
                match news {
                    CheckerNews::Report { checker, scope, views } => {
                        state.checker_report(&checker, scope, views)
                    }
                    CheckerNews::Gone { checker } => state.forget_checker(&checker),
                }
            }
        }
        Update::Delegation { name, delegation } => state.set_delegation(&name, delegation),
        Update::Objects(changes) => state.set_objects(changes),
        Update::ObjectsRelisted { kind, namespace, seen } => {
            state.objects_relisted(kind, namespace.as_deref(), &seen)
        }
        Update::GatewayApi { installed } => state.set_gateway_api(installed),
        Update::NamespaceLabels { namespace, labels } => {
            state.set_namespace_labels(&namespace, labels)
        }
        Update::SourceState { errors, complete } => {
            if let Some(errors) = errors {
                state.set_source_errors(errors);
            }
            if complete && !state.loaded() {
                fan_out.incomplete = fan_out.incomplete.saturating_sub(1);
                if fan_out.incomplete == 0 {
                    state.set_ready(true);
                    tracing::info!("first complete configuration loaded; serving");
                }
            }
        }
    }
}

pub(crate) fn apply_changes(
    state: &mut State,
    changes: Vec<Change>,
    admission: Admission,
) -> BatchResult {
    let changed = |applied: &Applied| BatchResult::Applied { changed: !applied.is_empty() };
    match admission {
        Admission::All => changed(&state.apply(changes)),
        Admission::RefuseNewErrors => {
            let mut introduced: Vec<String> = Vec::new();
            let accepted = state.apply_if(changes, |applied| {
                introduced = applied
                    .new_errors()
                    .map(|p| format!("{} {}: {}", p.object, p.field, p.message))
                    .collect();
                introduced.is_empty()
            });
            match accepted {
                Some(applied) => changed(&applied),
                None => BatchResult::Refused { introduced },
            }
        }
    }
}

/// Turns watch events into model changes. `model` is the state before them; an object
/// with a change already queued here is out of date in it. A metadata-only update (or
/// an unchanged object in a re-list) keeps its generation and costs nothing.
pub fn watched_changes(
    model: &Model,
    events: Vec<Watched>,
    status: &mut dyn FnMut(StatusNews),
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut queued: FxHashSet<ObjectKey> = FxHashSet::default();
    for event in events {
        match event {
            Watched::Put { change, generation, shown } => {
                let key = change.key();
                status(StatusNews::Seen(key.clone(), shown));
                let same = generation.is_some()
                    && !queued.contains(&key)
                    && model.generation(key.0, &key.1) == generation;
                if !same {
                    changes.push(change);
                    queued.insert(key);
                }
            }
            Watched::Delete { kind, id } => {
                let key = (kind, id);
                status(StatusNews::Gone(key.clone()));
                if queued.contains(&key) || model.contains(kind, &key.1) {
                    changes.push(Change::removal(kind, key.1.clone()));
                    queued.insert(key);
                }
            }
            Watched::Relisted { kind, scope, seen } => {
                let in_scope =
                    |id: &ObjectRef| scope.as_ref().is_none_or(|ns| **ns == *id.namespace);
                let known: Vec<&ObjectRef> = match kind {
                    Kind::HealthCheck => model.check_ids().collect(),
                    Kind::FailoverRecord => model.record_ids().collect(),
                };
                let queued_here = queued.iter().filter(|(k, _)| *k == kind).map(|(_, id)| id);
                let gone: FxHashSet<ObjectRef> = known
                    .into_iter()
                    .chain(queued_here)
                    .filter(|id| in_scope(id) && !seen.contains(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    status(StatusNews::Gone((kind, id.clone())));
                    changes.push(Change::removal(kind, id.clone()));
                    queued.insert((kind, id));
                }
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Fqdn, Input};
    use crate::resources::FailoverRecordSpec;

    fn put(ns: &str, name: &str, generation: i64) -> Watched {
        let id = ObjectRef::new(ns, name);
        let input = Input {
            id,
            seq: 0,
            file: None,
            generation: Some(generation),
            spec: FailoverRecordSpec::default(),
        };
        Watched::Put {
            change: Change::Record(input),
            generation: Some(generation),
            shown: ShownStatus::default(),
        }
    }

    fn delete(ns: &str, name: &str) -> Watched {
        Watched::Delete { kind: Kind::FailoverRecord, id: ObjectRef::new(ns, name) }
    }

    fn relisted(scope: Option<&str>, seen: &[(&str, &str)]) -> Watched {
        let seen = seen.iter().map(|(ns, n)| ObjectRef::new(ns, n)).collect();
        Watched::Relisted { kind: Kind::FailoverRecord, scope: scope.map(str::to_string), seen }
    }

    /// Turns one batch of events into changes and applies them.
    fn batch(model: &mut Model, events: Vec<Watched>) -> Vec<String> {
        let changes = watched_changes(model, events, &mut |_| {});
        let mut out: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Record(i) => format!("put {}", i.id),
                Change::RemoveRecord(id) => format!("remove {id}"),
                _ => unreachable!(),
            })
            .collect();
        out.sort();
        model.apply(changes);
        out
    }

    fn model() -> Model {
        Model::new(&[Fqdn::parse("example.test").unwrap()])
    }

    #[test]
    fn a_relist_removes_what_vanished_and_skips_what_is_unchanged() {
        let mut model = model();
        let first =
            vec![put("x", "a", 1), put("x", "b", 1), relisted(None, &[("x", "a"), ("x", "b")])];
        assert_eq!(batch(&mut model, first), ["put x/a", "put x/b"]);

        // Disconnected meanwhile: b was deleted, a edited, c created.
        let relist =
            vec![put("x", "a", 2), put("x", "c", 1), relisted(None, &[("x", "a"), ("x", "c")])];
        assert_eq!(batch(&mut model, relist), ["put x/a", "put x/c", "remove x/b"]);

        // Unchanged generation (a label, a status write): nothing to apply.
        assert!(batch(&mut model, vec![put("x", "a", 2)]).is_empty());
        assert_eq!(batch(&mut model, vec![delete("x", "c")]), ["remove x/c"]);
        assert!(batch(&mut model, vec![delete("x", "c")]).is_empty());
    }

    #[test]
    fn events_in_one_batch_follow_each_other() {
        let mut model = model();
        batch(&mut model, vec![put("x", "a", 1), relisted(None, &[("x", "a")])]);
        // Deleted and re-created (generation 1 again) within one batch: served again.
        assert_eq!(
            batch(&mut model, vec![delete("x", "a"), put("x", "a", 1)]),
            ["put x/a", "remove x/a"]
        );
        assert!(model.contains(Kind::FailoverRecord, &ObjectRef::new("x", "a")));
        // Created, then gone from a re-list in the same batch: removed.
        let events = vec![put("x", "n", 1), put("x", "a", 1), relisted(None, &[("x", "a")])];
        assert_eq!(batch(&mut model, events), ["put x/n", "remove x/n"]);
        assert!(!model.contains(Kind::FailoverRecord, &ObjectRef::new("x", "n")));
    }

    #[test]
    fn a_namespaced_relist_leaves_other_namespaces_alone() {
        let mut model = model();
        batch(&mut model, vec![put("a", "r", 1), put("b", "r", 1)]);
        assert_eq!(batch(&mut model, vec![relisted(Some("a"), &[])]), ["remove a/r"]);
        assert!(model.contains(Kind::FailoverRecord, &ObjectRef::new("b", "r")));
    }

    #[test]
    fn the_status_writer_hears_of_every_object_the_watches_show_or_drop() {
        let mut model = model();
        let mut news = Vec::new();
        let events =
            vec![put("x", "a", 1), put("x", "b", 1), relisted(None, &[("x", "a"), ("x", "b")])];
        model.apply(watched_changes(&model, events, &mut |n| news.push(n)));
        let events = vec![delete("x", "a"), relisted(None, &[])];
        watched_changes(&model, events, &mut |n| news.push(n));
        let mut summary: Vec<String> = news
            .iter()
            .map(|n| match n {
                StatusNews::Seen(k, _) => format!("seen {}", k.1),
                StatusNews::Gone(k) => format!("gone {}", k.1),
                StatusNews::Dirty(_) => "dirty".into(),
            })
            .collect();
        summary.sort();
        assert_eq!(summary, ["gone x/a", "gone x/a", "gone x/b", "seen x/a", "seen x/b"]);
    }
}
