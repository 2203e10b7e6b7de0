//! Who may serve which names, from the API server: every `NameDelegation` (cluster-
//! scoped) and the labels of every namespace (for delegations that select namespaces
//! by label; only metadata is watched). Answers wait for both first listings: until
//! the delegations are known, a record set must not be served for a name it may not
//! have.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::model::delegation::Delegation;
use crate::resources::NameDelegation;
use crate::sink::{SinkError, SinkHandle, Update};

#[derive(Debug, thiserror::Error)]
pub enum DelegationSourceError {
    #[error("the watches of NameDelegations and namespaces ended")]
    WatchesEnded,
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// What one watch has shown, for re-lists: anything not shown again is gone.
#[derive(Default)]
struct Listed {
    known: BTreeSet<String>,
    listing: Option<BTreeSet<String>>,
    complete: bool,
}

impl Listed {
    /// The updates for one event: `put` turns a shown object into its update, `gone`
    /// a name into the update that removes it.
    fn on_event<K: ResourceExt>(
        &mut self,
        event: Event<K>,
        put: impl Fn(K) -> Update,
        gone: impl Fn(String) -> Update,
        out: &mut Vec<Update>,
    ) {
        match event {
            Event::Init => self.listing = Some(BTreeSet::new()),
            Event::InitApply(object) | Event::Apply(object) => {
                let name = object.name_any();
                if let Some(listing) = self.listing.as_mut() {
                    listing.insert(name.clone());
                }
                self.known.insert(name);
                out.push(put(object));
            }
            Event::Delete(object) => {
                let name = object.name_any();
                self.known.remove(&name);
                out.push(gone(name));
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                for name in self.known.difference(&listed).cloned().collect::<Vec<_>>() {
                    self.known.remove(&name);
                    out.push(gone(name));
                }
                self.complete = true;
            }
        }
    }
}

fn delegation_update(object: NameDelegation) -> Update {
    let name = object.name_any();
    let delegation = match Delegation::parse(&name, &object.spec) {
        Ok(d) => Some(d),
        Err(error) => {
            // The CRD's schema and rules refuse most of this; what is left is logged.
            tracing::warn!(delegation = %name, %error, "NameDelegation ignored");
            None
        }
    };
    Update::Delegation { name, delegation }
}

fn labels_update(object: PartialObjectMeta<Namespace>) -> Update {
    let labels: BTreeMap<String, String> = object.labels().clone();
    Update::NamespaceLabels { namespace: object.name_any(), labels: Some(labels) }
}

/// Watches NameDelegations and namespaces until `shutdown`, feeding the sink.
pub async fn run(
    client: Client,
    sink: SinkHandle,
    shutdown: CancellationToken,
) -> Result<(), DelegationSourceError> {
    let config = || watcher::Config::default().any_semantic();
    let delegations = watcher::watcher(Api::<NameDelegation>::all(client.clone()), config())
        .default_backoff()
        .map(Either::Delegation);
    let namespaces = watcher::watcher(Api::<PartialObjectMeta<Namespace>>::all(client), config())
        .default_backoff()
        .map(Either::Namespace);
    let mut events = futures::stream::select(delegations.boxed(), namespaces.boxed());
    let (mut listed_delegations, mut listed_namespaces) = (Listed::default(), Listed::default());
    let mut complete = false;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            event = events.next() => event.ok_or(DelegationSourceError::WatchesEnded)?,
        };
        let mut updates = Vec::new();
        match event {
            Either::Delegation(Ok(event)) => listed_delegations.on_event(
                event,
                delegation_update,
                |name| Update::Delegation { name, delegation: None },
                &mut updates,
            ),
            Either::Namespace(Ok(event)) => listed_namespaces.on_event(
                event,
                labels_update,
                |namespace| Update::NamespaceLabels { namespace, labels: None },
                &mut updates,
            ),
            Either::Delegation(Err(error)) | Either::Namespace(Err(error)) => {
                tracing::warn!(%error, "watch of NameDelegations or namespaces failed; retrying with backoff");
            }
        }
        for update in updates {
            sink.send(update).await?;
        }
        if !complete && listed_delegations.complete && listed_namespaces.complete {
            complete = true;
            sink.send(Update::SourceState { errors: None, complete: true }).await?;
        }
    }
}

enum Either {
    Delegation(Result<Event<NameDelegation>, watcher::Error>),
    Namespace(Result<Event<PartialObjectMeta<Namespace>>, watcher::Error>),
}
