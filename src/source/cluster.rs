//! Cluster source: HealthChecks and FailoverRecords watched on the API server, in
//! every namespace or in the ones given. Every watch event goes to the sink as one
//! [`Watched`] (events that arrive together go together), never a reload of
//! everything.
//!
//! * Only what the model needs is kept: the spec, the generation and the creation
//!   time (age order: the older object wins conflicts). The rest of the object
//!   (managedFields, status, annotations) is dropped as soon as it is decoded.
//! * A re-list after a disconnection reconciles: the sink removes the objects it no
//!   longer shows (deleted meanwhile); the ones whose generation is unchanged cost
//!   nothing.
//! * Until the first complete listing of both kinds has been applied, DNS answers
//!   SERVFAIL and `/readyz` is not ready; afterwards both stay ready, API server
//!   outages included, and DNS answers from the last known objects.
//! * Retries, re-listing and how stale the data may be: [`super::api_watch`], as for
//!   every watch of the process.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::api::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::model::{Change, Input, Kind, ObjectRef};
use crate::resources::{
    FailoverRecord, FailoverRecordSpec, FailoverRecordStatus, HealthCheck, HealthCheckSpec,
    HealthCheckStatus,
};
use crate::sink::{SinkError, SinkHandle, Update, Watched};
use crate::source::api_watch::{self, Listing, Staleness};
use crate::status::ShownStatus;

/// Events that are ready together go to the sink together (a listing of many objects
/// then publishes a few snapshots, not one per object).
const BATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClusterSourceError {
    #[error("the API watches ended")]
    WatchesEnded,
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// One decoded object, as the model and the status writer need it.
struct WatchedObject {
    id: ObjectRef,
    generation: Option<i64>,
    change: Change,
    /// What its status shows, for the status writer.
    shown: ShownStatus,
}

/// What the two kinds have in common for watching.
trait WatchedKind:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    fn decoded(self) -> WatchedObject;
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
struct PartialObject<K, S, St> {
    #[serde(deserialize_with = "used_metadata")]
    metadata: ObjectMeta,
    spec: S,
    #[serde(default)]
    status: Option<St>,
    #[serde(skip)]
    kind: std::marker::PhantomData<fn() -> K>,
}

type PartialCheck = PartialObject<HealthCheck, HealthCheckSpec, HealthCheckStatus>;
type PartialRecord = PartialObject<FailoverRecord, FailoverRecordSpec, FailoverRecordStatus>;

fn used_metadata<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<ObjectMeta, D::Error> {
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

impl<K, S, St> Resource for PartialObject<K, S, St>
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

impl WatchedKind for PartialCheck {
    fn decoded(self) -> WatchedObject {
        let (id, seq, generation) = (id_of(&self), seq_of(&self), self.metadata.generation);
        let shown = ShownStatus::of_check(self.metadata.uid.as_deref(), self.status.as_ref());
        let change =
            Change::Check(Input { id: id.clone(), seq, file: None, generation, spec: self.spec });
        WatchedObject { id, generation, change, shown }
    }
}

impl WatchedKind for PartialRecord {
    fn decoded(self) -> WatchedObject {
        let (id, seq, generation) = (id_of(&self), seq_of(&self), self.metadata.generation);
        let shown = ShownStatus::of_record(self.metadata.uid.as_deref(), self.status.as_ref());
        let change =
            Change::Record(Input { id: id.clone(), seq, file: None, generation, spec: self.spec });
        WatchedObject { id, generation, change, shown }
    }
}

type Events = Pin<Box<dyn Stream<Item = (usize, Event<WatchedObject>)> + Send>>;

/// One watch: a kind, in one namespace or in all of them. What it has applied lives
/// in the model only (ids and generations), so nothing is kept twice; during a
/// (re-)listing it remembers the ids shown so far.
struct Watch {
    kind: Kind,
    namespace: Option<String>,
    listing: Listing,
}

impl Watch {
    /// The sink's share of one event.
    fn on_event(&mut self, event: Event<WatchedObject>) -> Option<Watched> {
        match event {
            Event::Init => {
                self.listing.start();
                None
            }
            Event::InitApply(object) | Event::Apply(object) => {
                self.listing.show(object.id);
                Some(Watched::Put {
                    change: object.change,
                    generation: object.generation,
                    shown: object.shown,
                })
            }
            Event::Delete(object) => Some(Watched::Delete { kind: self.kind, id: object.id }),
            Event::InitDone => {
                let seen = self.listing.end(self.kind, self.namespace.as_deref());
                Some(Watched::Relisted { kind: self.kind, scope: self.namespace.clone(), seen })
            }
        }
    }
}

fn decoded<K: WatchedKind>(event: Event<K>) -> Event<WatchedObject> {
    match event {
        Event::Apply(k) => Event::Apply(k.decoded()),
        Event::Delete(k) => Event::Delete(k.decoded()),
        Event::Init => Event::Init,
        Event::InitApply(k) => Event::InitApply(k.decoded()),
        Event::InitDone => Event::InitDone,
    }
}

fn watch<K: WatchedKind>(
    client: &Client,
    kind: Kind,
    namespace: Option<&str>,
    index: usize,
    staleness: &Staleness,
) -> Events {
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Listings come from the API server's watch cache, in large pages: at 100k objects
    // a consistent paginated read from etcd took 30 s, the cache 6 s. The watch that
    // follows brings anything newer.
    let config = watcher::Config::default().any_semantic().page_size(10_000);
    let tracker = staleness.track(kind.name(), namespace.unwrap_or("all namespaces"));
    let events =
        api_watch::watch(api, config, tracker).map(move |event| (index, decoded::<K>(event)));
    Box::pin(events)
}

/// Watches both kinds until `shutdown`, sending every event to the sink; `staleness`
/// follows each watch. Ends with an error when the watches end or the sink stops.
pub async fn run(
    client: Client,
    namespaces: Vec<String>,
    sink: SinkHandle,
    staleness: Arc<Staleness>,
    shutdown: CancellationToken,
) -> Result<(), ClusterSourceError> {
    let scopes = api_watch::scopes(namespaces);
    let mut watches = Vec::new();
    let mut streams = Vec::new();
    for namespace in scopes {
        for kind in [Kind::HealthCheck, Kind::FailoverRecord] {
            let index = watches.len();
            let ns = namespace.as_deref();
            streams.push(match kind {
                Kind::HealthCheck => watch::<PartialCheck>(&client, kind, ns, index, &staleness),
                Kind::FailoverRecord => {
                    watch::<PartialRecord>(&client, kind, ns, index, &staleness)
                }
            });
            watches.push(Watch { kind, namespace: namespace.clone(), listing: Listing::default() });
        }
    }
    let mut events = futures::stream::select_all(streams).ready_chunks(BATCH);
    let mut complete = false;
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            batch = events.next() => batch.ok_or(ClusterSourceError::WatchesEnded)?,
        };
        let mut watched = Vec::with_capacity(batch.len());
        for (index, event) in batch {
            watched.extend(watches[index].on_event(event));
        }
        if !watched.is_empty() {
            sink.send(Update::Watched(watched)).await?;
        }
        if !complete && watches.iter().all(|w| w.listing.listed()) {
            complete = true;
            sink.send(Update::SourceState { errors: None, complete: true }).await?;
        }
    }
}
