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
use kube::{Client, Resource, ResourceExt};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::model::{Change, Input, Kind, ObjectRef};
use crate::prober::Prober;
use crate::resources::{FailoverRecord, HealthCheck};
use crate::state::State;

/// Events that are ready together are applied under one lock (a listing of many
/// objects then publishes a few snapshots, not one per object).
const BATCH: usize = 1024;

/// One object as the model needs it.
struct Slim {
    id: ObjectRef,
    generation: Option<i64>,
    change: Change,
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

impl Watched for HealthCheck {
    fn slim(self) -> Slim {
        let (id, seq, generation) = (id_of(&self), seq_of(&self), self.metadata.generation);
        let change = Change::Check(Input { id: id.clone(), seq, file: None, generation, spec: self.spec });
        Slim { id, generation, change }
    }
}

impl Watched for FailoverRecord {
    fn slim(self) -> Slim {
        let (id, seq, generation) = (id_of(&self), seq_of(&self), self.metadata.generation);
        let change = Change::Record(Input { id: id.clone(), seq, file: None, generation, spec: self.spec });
        Slim { id, generation, change }
    }
}

fn removal(kind: Kind, id: ObjectRef) -> Change {
    match kind {
        Kind::HealthCheck => Change::RemoveCheck(id),
        Kind::FailoverRecord => Change::RemoveRecord(id),
    }
}

type Events = Pin<Box<dyn Stream<Item = (usize, Result<Event<Slim>, watcher::Error>)> + Send>>;

/// One watch (a kind in one namespace, or in all of them) and what it has applied.
struct Watch {
    kind: Kind,
    scope: String,
    /// Objects applied from this watch, with the generation applied.
    known: FxHashMap<ObjectRef, Option<i64>>,
    /// During a (re-)list: the objects it has shown so far.
    listing: Option<FxHashSet<ObjectRef>>,
    listed: bool,
}

impl Watch {
    fn on_event(&mut self, event: Event<Slim>, changes: &mut Vec<Change>) {
        match event {
            Event::Init => self.listing = Some(FxHashSet::default()),
            Event::InitApply(object) | Event::Apply(object) => {
                if let Some(listing) = self.listing.as_mut() {
                    listing.insert(object.id.clone());
                }
                // A metadata-only update (or an unchanged object in a re-list) leaves
                // the generation alone: nothing to do.
                let same = object.generation.is_some() && self.known.get(&object.id) == Some(&object.generation);
                if !same {
                    self.known.insert(object.id, object.generation);
                    changes.push(object.change);
                }
            }
            Event::Delete(object) => {
                if self.known.remove(&object.id).is_some() {
                    changes.push(removal(self.kind, object.id));
                }
            }
            Event::InitDone => {
                let seen = self.listing.take().unwrap_or_default();
                let gone: Vec<ObjectRef> = self.known.keys().filter(|id| !seen.contains(*id)).cloned().collect();
                for id in gone {
                    self.known.remove(&id);
                    changes.push(removal(self.kind, id));
                }
                if !self.listed {
                    tracing::info!(kind = ?self.kind, scope = %self.scope, objects = self.known.len(), "first listing loaded");
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
    // Errors still come through (to be logged); the backoff spaces the retries.
    let events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .map(move |event| (index, event.map(slim::<K>)));
    Box::pin(events)
}

/// Watches both kinds until `shutdown`, applying every event to `state` and handing
/// the prober the checks that changed.
pub async fn run(
    client: Client,
    namespaces: Vec<String>,
    state: Arc<Mutex<State>>,
    prober: Prober,
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
    for scope in &scopes {
        for kind in [Kind::HealthCheck, Kind::FailoverRecord] {
            let index = watches.len();
            streams.push(match kind {
                Kind::HealthCheck => watch::<HealthCheck>(&client, scope.as_deref(), index),
                Kind::FailoverRecord => watch::<FailoverRecord>(&client, scope.as_deref(), index),
            });
            let scope = scope.clone().unwrap_or_else(|| "all namespaces".into());
            watches.push(Watch { kind, scope, known: FxHashMap::default(), listing: None, listed: false });
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
        let mut changes = Vec::new();
        for (index, event) in batch {
            match event {
                Ok(event) => watches[index].on_event(event, &mut changes),
                Err(error) => {
                    let w = &watches[index];
                    tracing::warn!(kind = ?w.kind, scope = %w.scope, %error, "watch failed; retrying with backoff");
                }
            }
        }
        let now_ready = !ready && watches.iter().all(|w| w.listed);
        if changes.is_empty() && !now_ready {
            continue;
        }
        let mut state = state.lock().await;
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
    use crate::resources::FailoverRecordSpec;

    fn record(name: &str, generation: i64) -> Slim {
        let id = ObjectRef::new("default", name);
        let input = Input { id: id.clone(), seq: 0, file: None, generation: Some(generation), spec: FailoverRecordSpec::default() };
        Slim { id, generation: Some(generation), change: Change::Record(input) }
    }

    fn summary(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Record(i) => format!("put {}", i.id.name),
                Change::RemoveRecord(id) => format!("remove {}", id.name),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn a_relist_removes_what_vanished_and_skips_what_is_unchanged() {
        let mut w = Watch { kind: Kind::FailoverRecord, scope: "all".into(), known: FxHashMap::default(), listing: None, listed: false };
        let mut changes = Vec::new();
        for e in [Event::Init, Event::InitApply(record("a", 1)), Event::InitApply(record("b", 1)), Event::InitDone] {
            w.on_event(e, &mut changes);
        }
        assert!(w.listed);
        assert_eq!(summary(&changes), ["put a", "put b"]);

        // Disconnected meanwhile: b was deleted, a edited, c created.
        changes.clear();
        for e in [Event::Init, Event::InitApply(record("a", 2)), Event::InitApply(record("c", 1)), Event::InitDone] {
            w.on_event(e, &mut changes);
        }
        assert_eq!(summary(&changes), ["put a", "put c", "remove b"]);

        // Unchanged generation (a label, a status write): nothing to apply.
        changes.clear();
        w.on_event(Event::Apply(record("a", 2)), &mut changes);
        w.on_event(Event::Delete(record("c", 1)), &mut changes);
        w.on_event(Event::Delete(record("c", 1)), &mut changes);
        assert_eq!(summary(&changes), ["remove c"]);
    }
}
