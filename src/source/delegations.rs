//! Who may serve which names, from the API server: every `NameDelegation` (cluster-
//! scoped) and the labels of every namespace (for delegations that select namespaces
//! by label; only metadata is watched). Answers wait for both first listings: until
//! the delegations are known, a record set must not be served for a name it may not
//! have.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::model::delegation::Delegation;
use crate::resources::NameDelegation;
use crate::sink::{SinkError, SinkHandle, Update};
use crate::source::api_watch::{self, Staleness};

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
    staleness: Arc<Staleness>,
    shutdown: CancellationToken,
) -> Result<(), DelegationSourceError> {
    let config = || watcher::Config::default().any_semantic();
    let tracker = staleness.track("NameDelegation", "cluster");
    let delegations =
        api_watch::watch(Api::<NameDelegation>::all(client.clone()), config(), tracker)
            .map(Either::Delegation);
    let tracker = staleness.track("Namespace", "cluster");
    let namespaces =
        api_watch::watch(Api::<PartialObjectMeta<Namespace>>::all(client), config(), tracker)
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
            Either::Delegation(event) => listed_delegations.on_event(
                event,
                delegation_update,
                |name| Update::Delegation { name, delegation: None },
                &mut updates,
            ),
            Either::Namespace(event) => listed_namespaces.on_event(
                event,
                labels_update,
                |namespace| Update::NamespaceLabels { namespace, labels: None },
                &mut updates,
            ),
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
    Delegation(Event<NameDelegation>),
    Namespace(Event<PartialObjectMeta<Namespace>>),
}
