//! Cluster source: HealthChecks and FailoverRecords watched on the API server, in
//! every namespace or in the ones given. Every watch event becomes one change to the
//! state (events that arrive together are applied together), never a reload of
//! everything.
//!
//! * Only what the model needs is kept: the spec, the generation and the creation
//!   time (age order: the older object wins conflicts). The rest of the object
//!   (managedFields, status, annotations) is dropped as soon as it is decoded.
//! * A re-list after a disconnection reconciles: the objects it no longer shows were
//!   deleted meanwhile and are removed; the ones whose generation is unchanged cost
//!   nothing.
//! * Until the first complete listing of both kinds has been applied, DNS answers
//!   SERVFAIL and `/readyz` is not ready; afterwards both stay ready, API server
//!   outages included, and DNS answers from the last known objects.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::api::ObjectMeta;
use kube::{Client, Resource, ResourceExt};
use rustc_hash::FxHashSet;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::model::{Change, Input, Kind, Model, ObjectRef};
use crate::prober::Prober;
use crate::resources::{FailoverRecord, FailoverRecordSpec, FailoverRecordStatus, HealthCheck, HealthCheckSpec, HealthCheckStatus};
use crate::state::State;
use crate::status::{Book, Shown};

/// Events that are ready together are applied under one lock (a listing of many
/// objects then publishes a few snapshots, not one per object).
const BATCH: usize = 1024;

/// One object as the model needs it.
struct Slim {
    id: ObjectRef,
    generation: Option<i64>,
    change: Change,
    /// What its status shows, for the status writer.
    shown: Shown,
}

/// What the two kinds have in common for watching.
trait Watched:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static {
    fn slim(self) -> Slim;
}

fn id_of<K: Resource>(object: &K) -> ObjectRef {
    ObjectRef::new(object.namespace().unwrap_or_else(|| "default".into()), object.name_any())
}

/// Age order from the creation time (seconds); equal ages fall back to the model's
/// id order.
fn seq_of<K: Resource>(object: &K) -> u64 {
    object.meta().creation_timestamp.as_ref().map_or(u64::MAX, |t| t.0.as_second().max(0) as u64)
}

/// An object as the watch decodes it: the spec, the status, and of the metadata only
/// what is used (names, uid, generation, creation time, resource version). The rest —
/// managedFields above all, often larger than the spec — is skipped while decoding,
/// never built.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(bound(deserialize = "S: DeserializeOwned, St: DeserializeOwned"))]
struct Lean<K, S, St> {
    #[serde(deserialize_with = "lean_meta")]
    metadata: ObjectMeta,
    spec: S,
    #[serde(default)]
    status: Option<St>,
    #[serde(skip)]
    kind: std::marker::PhantomData<fn() -> K>,
}

type LeanCheck = Lean<HealthCheck, HealthCheckSpec, HealthCheckStatus>;
type LeanRecord = Lean<FailoverRecord, FailoverRecordSpec, FailoverRecordStatus>;

fn lean_meta<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Used {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        generation: Option<i64>,
        creation_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
        resource_version: Option<String>,
    }
    let u = <Used as serde::Deserialize>::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: u.name,
        namespace: u.namespace,
        uid: u.uid,
        generation: u.generation,
        creation_timestamp: u.creation_timestamp,
        resource_version: u.resource_version,
        ..ObjectMeta::default()
    })
}

impl<K, S, St> Resource for Lean<K, S, St>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Watched for LeanCheck {
    fn slim(self) -> Slim {
        let (id, seq, generation) = (id_of(&self), seq_of(&self), self.metadata.generation);
        let shown = Shown::of_check(self.metadata.uid.as_deref(), self.status.as_ref());
        let change = Change::Check(Input { id: id.clone(), seq, file: None, generation, spec: self.spec });
        Slim { id, generation, change, shown }
    }
}

impl Watched for LeanRecord {
    fn slim(self) -> Slim {
        let (id, seq, generation) = (id_of(&self), seq_of(&self), self.metadata.generation);
        let shown = Shown::of_record(self.metadata.uid.as_deref(), self.status.as_ref());
        let change = Change::Record(Input { id: id.clone(), seq, file: None, generation, spec: self.spec });
        Slim { id, generation, change, shown }
    }
}

fn removal(kind: Kind, id: ObjectRef) -> Change {
    match kind {
        Kind::HealthCheck => Change::RemoveCheck(id),
        Kind::FailoverRecord => Change::RemoveRecord(id),
    }
}

type Events = Pin<Box<dyn Stream<Item = (usize, Result<Event<Slim>, watcher::Error>)> + Send>>;

/// One watch: a kind, in one namespace or in all of them. What it has applied lives
/// in the model only (ids and generations), so nothing is kept twice.
struct Watch {
    kind: Kind,
    namespace: Option<String>,
    /// During a (re-)list: the objects it has shown so far.
    listing: Option<FxHashSet<ObjectRef>>,
    listed: bool,
}

impl Watch {
    fn scope(&self) -> &str {
        self.namespace.as_deref().unwrap_or("all namespaces")
    }

    fn in_scope(&self, id: &ObjectRef) -> bool {
        self.namespace.as_ref().is_none_or(|ns| **ns == *id.namespace)
    }

    /// Turns one event into changes. `model` is the state before this batch, and
    /// `queued` the objects with a change already queued in it (for those the model
    /// is out of date). `book` learns what each object's status shows.
    fn on_event(
        &mut self,
        event: Event<Slim>,
        model: &Model,
        queued: &mut FxHashSet<(Kind, ObjectRef)>,
        changes: &mut Vec<Change>,
        book: &mut Book,
    ) {
        let kind = self.kind;
        match event {
            Event::Init => self.listing = Some(FxHashSet::default()),
            Event::InitApply(object) | Event::Apply(object) => {
                if let Some(listing) = self.listing.as_mut() {
                    listing.insert(object.id.clone());
                }
                book.observe((kind, object.id.clone()), object.shown);
                // A metadata-only update (or an unchanged object in a re-list) leaves
                // the generation alone: nothing to do.
                let key = (kind, object.id);
                let same = object.generation.is_some()
                    && !queued.contains(&key)
                    && model.generation(kind, &key.1) == object.generation;
                if !same {
                    changes.push(object.change);
                    queued.insert(key);
                }
            }
            Event::Delete(object) => {
                book.forget(&(kind, object.id.clone()));
                let key = (kind, object.id);
                if queued.contains(&key) || model.contains(kind, &key.1) {
                    changes.push(removal(kind, key.1.clone()));
                    queued.insert(key);
                }
            }
            Event::InitDone => {
                // What the listing no longer shows was deleted while disconnected.
                let seen = self.listing.take().unwrap_or_default();
                let known: Vec<&ObjectRef> = match kind {
                    Kind::HealthCheck => model.check_ids().collect(),
                    Kind::FailoverRecord => model.record_ids().collect(),
                };
                let queued_here = queued.iter().filter(|(k, _)| *k == kind).map(|(_, id)| id);
                let gone: FxHashSet<ObjectRef> = known
                    .into_iter()
                    .chain(queued_here)
                    .filter(|id| self.in_scope(id) && !seen.contains(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    book.forget(&(kind, id.clone()));
                    changes.push(removal(kind, id.clone()));
                    queued.insert((kind, id));
                }
                if !self.listed {
                    tracing::info!(kind = ?kind, scope = %self.scope(), objects = seen.len(), "first listing loaded");
                }
                self.listed = true;
            }
        }
    }
}

fn slim<K: Watched>(event: Event<K>) -> Event<Slim> {
    match event {
        Event::Apply(k) => Event::Apply(k.slim()),
        Event::Delete(k) => Event::Delete(k.slim()),
        Event::Init => Event::Init,
        Event::InitApply(k) => Event::InitApply(k.slim()),
        Event::InitDone => Event::InitDone,
    }
}

fn watch<K: Watched>(client: &Client, namespace: Option<&str>, index: usize) -> Events {
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Listings come from the API server's watch cache, in large pages: at 100k objects
    // a consistent paginated read from etcd took 30 s, the cache 6 s. The watch that
    // follows brings anything newer.
    let config = watcher::Config::default().any_semantic().page_size(10_000);
    // Errors still come through (to be logged); the backoff spaces the retries.
    let events = watcher::watcher(api, config)
        .default_backoff()
        .map(move |event| (index, event.map(slim::<K>)));
    Box::pin(events)
}

/// Watches both kinds until `shutdown`, applying every event to `state`, handing
/// the prober the checks that changed and `book` what each object's status shows.
pub async fn run(
    client: Client,
    namespaces: Vec<String>,
    state: Arc<Mutex<State>>,
    prober: Prober,
    book: Arc<std::sync::Mutex<Book>>,
    shutdown: CancellationToken,
) {
    let mut scopes: Vec<Option<String>> = namespaces.into_iter().map(Some).collect();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        scopes.push(None);
    }
    let mut watches = Vec::new();
    let mut streams = Vec::new();
    for namespace in scopes {
        for kind in [Kind::HealthCheck, Kind::FailoverRecord] {
            let index = watches.len();
            streams.push(match kind {
                Kind::HealthCheck => watch::<LeanCheck>(&client, namespace.as_deref(), index),
                Kind::FailoverRecord => watch::<LeanRecord>(&client, namespace.as_deref(), index),
            });
            watches.push(Watch { kind, namespace: namespace.clone(), listing: None, listed: false });
        }
    }
    let mut events = futures::stream::select_all(streams).ready_chunks(BATCH);
    let mut ready = false;
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return,
            batch = events.next() => match batch {
                Some(batch) => batch,
                None => return,
            },
        };
        let mut state = state.lock().await;
        let mut changes = Vec::new();
        let mut queued = FxHashSet::default();
        // The book first: the writer must know an object before it meets it in the model.
        let mut book = book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (index, event) in batch {
            let w = &mut watches[index];
            match event {
                Ok(event) => w.on_event(event, state.model(), &mut queued, &mut changes, &mut book),
                Err(error) => {
                    tracing::warn!(kind = ?w.kind, scope = %w.scope(), %error, "watch failed; retrying with backoff");
                }
            }
        }
        drop(book);
        let now_ready = !ready && watches.iter().all(|w| w.listed);
        if changes.is_empty() && !now_ready {
            continue;
        }
        state.apply(changes);
        if now_ready {
            ready = true;
            state.set_ready(true);
            tracing::info!("first complete listing loaded; serving");
        }
        let changed = state.take_changed_checks();
        let checks = &state.model().checks;
        prober.update_checks(changed.iter().map(|id| (id, checks.get(id))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fqdn;
    use crate::resources::FailoverRecordSpec;

    fn record(ns: &str, name: &str, generation: i64) -> Slim {
        let id = ObjectRef::new(ns, name);
        let spec = FailoverRecordSpec::default();
        let input = Input { id: id.clone(), seq: 0, file: None, generation: Some(generation), spec };
        Slim { id, generation: Some(generation), change: Change::Record(input), shown: Shown::default() }
    }

    fn summary(changes: &[Change]) -> Vec<String> {
        let mut v: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Record(i) => format!("put {}", i.id),
                Change::RemoveRecord(id) => format!("remove {id}"),
                _ => unreachable!(),
            })
            .collect();
        v.sort();
        v
    }

    /// Feeds one batch of events and applies what it produced.
    fn batch(w: &mut Watch, model: &mut Model, events: Vec<Event<Slim>>) -> Vec<String> {
        let (mut changes, mut queued) = (Vec::new(), FxHashSet::default());
        let mut book = Book::default();
        for e in events {
            w.on_event(e, model, &mut queued, &mut changes, &mut book);
        }
        let out = summary(&changes);
        model.apply(changes);
        out
    }

    fn watch(namespace: Option<&str>) -> Watch {
        Watch { kind: Kind::FailoverRecord, namespace: namespace.map(str::to_string), listing: None, listed: false }
    }

    #[test]
    fn a_relist_removes_what_vanished_and_skips_what_is_unchanged() {
        let mut model = Model::new(&[Fqdn::parse("example.test").unwrap()]);
        let mut w = watch(None);
        let first = vec![Event::Init, Event::InitApply(record("x", "a", 1)), Event::InitApply(record("x", "b", 1)), Event::InitDone];
        assert_eq!(batch(&mut w, &mut model, first), ["put x/a", "put x/b"]);
        assert!(w.listed);

        // Disconnected meanwhile: b was deleted, a edited, c created.
        let relist = vec![Event::Init, Event::InitApply(record("x", "a", 2)), Event::InitApply(record("x", "c", 1)), Event::InitDone];
        assert_eq!(batch(&mut w, &mut model, relist), ["put x/a", "put x/c", "remove x/b"]);

        // Unchanged generation (a label, a status write): nothing to apply.
        assert!(batch(&mut w, &mut model, vec![Event::Apply(record("x", "a", 2))]).is_empty());
        assert_eq!(batch(&mut w, &mut model, vec![Event::Delete(record("x", "c", 1))]), ["remove x/c"]);
        assert!(batch(&mut w, &mut model, vec![Event::Delete(record("x", "c", 1))]).is_empty());
    }

    #[test]
    fn events_in_one_batch_follow_each_other() {
        let mut model = Model::new(&[Fqdn::parse("example.test").unwrap()]);
        let mut w = watch(None);
        batch(&mut w, &mut model, vec![Event::Init, Event::InitApply(record("x", "a", 1)), Event::InitDone]);
        // Deleted and re-created (generation 1 again) within one batch: served again.
        let events = vec![Event::Delete(record("x", "a", 1)), Event::Apply(record("x", "a", 1))];
        assert_eq!(batch(&mut w, &mut model, events), ["put x/a", "remove x/a"]);
        assert!(model.contains(Kind::FailoverRecord, &ObjectRef::new("x", "a")));
        // Created, then gone from a re-list in the same batch: removed.
        let events = vec![Event::Apply(record("x", "n", 1)), Event::Init, Event::InitApply(record("x", "a", 1)), Event::InitDone];
        assert_eq!(batch(&mut w, &mut model, events), ["put x/n", "remove x/n"]);
        assert!(!model.contains(Kind::FailoverRecord, &ObjectRef::new("x", "n")));
    }

    #[test]
    fn a_namespaced_relist_leaves_other_namespaces_alone() {
        let mut model = Model::new(&[Fqdn::parse("example.test").unwrap()]);
        let (mut a, mut b) = (watch(Some("a")), watch(Some("b")));
        batch(&mut a, &mut model, vec![Event::Init, Event::InitApply(record("a", "r", 1)), Event::InitDone]);
        batch(&mut b, &mut model, vec![Event::Init, Event::InitApply(record("b", "r", 1)), Event::InitDone]);
        assert_eq!(batch(&mut a, &mut model, vec![Event::Init, Event::InitDone]), ["remove a/r"]);
        assert!(model.contains(Kind::FailoverRecord, &ObjectRef::new("b", "r")));
    }
}
