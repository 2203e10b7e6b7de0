//! Kubernetes objects as targets and values (spec section 7): Services,
//! EndpointSlices, Ingresses and — once the API server serves the kind — Gateways,
//! watched in the watched namespaces and sent to the sink as [`Facts`]: the addresses
//! and ready endpoints, nothing else of the object is kept.
//!
//! * The Gateway API is optional: its group is looked up at start and every
//!   `--gateway-api-lookup` until it appears; then its watch starts. Until then records
//!   reading a Gateway have no addresses, and say why.
//! * Answers wait for the first listing of every other kind: a record whose Service
//!   is not listed yet would otherwise fail over for nothing.
//! * A re-list removes the objects it no longer shows.
//! * Services, slices and Ingresses are decoded into types of their own holding only
//!   what the facts read ([`WatchedService`], [`WatchedSlice`], [`WatchedIngress`]):
//!   a first listing decodes every object in scope at once, and the garbage of whole
//!   objects (managedFields, ports, selectors, pod references) stayed resident among
//!   the store's long-lived blocks.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::SelectAll;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Service, ServiceStatus};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::core::NamespaceResourceScope;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::model::ObjectRef;
use crate::model::objects::{
    Facts, LoadBalancerAddress, ObjectChange, ObjectKind, ServiceFacts, ServiceType, SliceFacts,
    SlicePort,
};
use crate::sink::{SinkError, SinkHandle, Update};
use crate::source::api_watch::{self, Listing, Staleness};

/// Events ready together go to the sink together.
const BATCH: usize = 1024;
const GATEWAY_GROUP_VERSION: &str = "gateway.networking.k8s.io/v1";
/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, thiserror::Error)]
pub enum ObjectSourceError {
    #[error("the watches of Services, EndpointSlices, Ingresses and Gateways ended")]
    WatchesEnded,
    #[error(transparent)]
    Sink(#[from] SinkError),
}

type Decoded = (ObjectRef, Option<Facts>);
type Events = Pin<Box<dyn Stream<Item = (usize, Event<Decoded>)> + Send>>;

/// One watch: a kind in one namespace (or all), and what its (re-)listing showed.
struct Watch {
    kind: ObjectKind,
    namespace: Option<String>,
    listing: Listing,
}

impl Watch {
    fn new(kind: ObjectKind, namespace: &Option<String>) -> Self {
        Self { kind, namespace: namespace.clone(), listing: Listing::default() }
    }

    fn on_event(&mut self, event: Event<Decoded>, out: &mut Vec<ObjectChange>) -> Option<Update> {
        let kind = self.kind;
        match event {
            Event::Init => self.listing.start(),
            Event::InitApply((id, facts)) | Event::Apply((id, facts)) => {
                self.listing.show(id.clone());
                out.push(ObjectChange { kind, id, facts });
            }
            Event::Delete((id, _)) => out.push(ObjectChange { kind, id, facts: None }),
            Event::InitDone => {
                let seen = self.listing.end(kind, self.namespace.as_deref());
                return Some(Update::ObjectsRelisted {
                    kind,
                    namespace: self.namespace.clone(),
                    seen,
                });
            }
        }
        None
    }
}

fn id_of<K: Resource>(object: &K) -> ObjectRef {
    ObjectRef::new(object.namespace().unwrap_or_else(|| "default".into()), object.name_any())
}

fn watch<K>(
    api: Api<K>,
    kind: ObjectKind,
    namespace: Option<&str>,
    index: usize,
    staleness: &Staleness,
    decode: fn(&K) -> Option<Facts>,
) -> Events
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    // Pages of 500 (kube's default), not the configuration's 10,000: Services and
    // slices are many and each page is held whole while it is applied. What a first
    // listing leaves resident did not move with it (BENCHMARKS section 13).
    let config = watcher::Config::default().any_semantic().page_size(500);
    let tracker = staleness.track(kind_name(kind), namespace.unwrap_or("all namespaces"));
    let events = api_watch::watch(api, config, tracker).map(move |event| {
        let decoded = match event {
            Event::Apply(k) => Event::Apply((id_of(&k), decode(&k))),
            Event::Delete(k) => Event::Delete((id_of(&k), None)),
            Event::Init => Event::Init,
            Event::InitApply(k) => Event::InitApply((id_of(&k), decode(&k))),
            Event::InitDone => Event::InitDone,
        };
        (index, decoded)
    });
    Box::pin(events)
}

fn kind_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Service => "Service",
        ObjectKind::EndpointSlice => "EndpointSlice",
        ObjectKind::Ingress => "Ingress",
        ObjectKind::Gateway => "Gateway",
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn gateway_api(client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway"),
        "gateways",
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Whether the API server serves Gateways (a failed lookup counts as not yet).
async fn gateway_api_installed(client: &Client) -> bool {
    match client.list_api_group_resources(GATEWAY_GROUP_VERSION).await {
        Ok(list) => list.resources.iter().any(|r| r.name == "gateways"),
        Err(_) => false,
    }
}

/// Watches the four kinds in `namespaces` (empty: all) until `shutdown`.
pub async fn run(
    client: Client,
    namespaces: Vec<String>,
    gateway_api_lookup: Duration,
    sink: SinkHandle,
    staleness: Arc<Staleness>,
    shutdown: CancellationToken,
) -> Result<(), ObjectSourceError> {
    let scopes = api_watch::scopes(namespaces);
    let mut watches = Vec::new();
    let mut streams: SelectAll<Events> = SelectAll::new();
    for scope in &scopes {
        let ns = scope.as_deref();
        for kind in [ObjectKind::Service, ObjectKind::EndpointSlice, ObjectKind::Ingress] {
            let index = watches.len();
            streams.push(match kind {
                ObjectKind::Service => watch(
                    api::<WatchedService>(&client, ns),
                    kind,
                    ns,
                    index,
                    &staleness,
                    service_facts,
                ),
                ObjectKind::EndpointSlice => watch(
                    api::<WatchedSlice>(&client, ns),
                    kind,
                    ns,
                    index,
                    &staleness,
                    slice_facts,
                ),
                _ => watch(
                    api::<WatchedIngress>(&client, ns),
                    kind,
                    ns,
                    index,
                    &staleness,
                    ingress_facts,
                ),
            });
            watches.push(Watch::new(kind, scope));
        }
    }
    let mut gateways = false;
    let mut lookup = tokio::time::interval(gateway_api_lookup);
    let mut complete = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = lookup.tick(), if !gateways => {
                if gateway_api_installed(&client).await {
                    gateways = true;
                    tracing::info!("the Gateway API is installed: watching Gateways");
                    for scope in &scopes {
                        let ns = scope.as_deref();
                        let index = watches.len();
                        let api = gateway_api(&client, ns);
                        streams.push(watch(api, ObjectKind::Gateway, ns, index, &staleness, gateway_facts));
                        watches.push(Watch::new(ObjectKind::Gateway, scope));
                    }
                    sink.send(Update::GatewayApi { installed: true }).await?;
                } else if !complete {
                    tracing::info!("the Gateway API (gateway.networking.k8s.io/v1) is not installed: records reading a Gateway have no addresses until it is");
                }
            }
            batch = next_batch(&mut streams) => {
                let batch = batch.ok_or(ObjectSourceError::WatchesEnded)?;
                let mut changes = Vec::new();
                let mut listed = Vec::new();
                for (index, event) in batch {
                    listed.extend(watches[index].on_event(event, &mut changes));
                }
                if !changes.is_empty() {
                    sink.send(Update::Objects(changes)).await?;
                }
                for update in listed {
                    sink.send(update).await?;
                }
                // Gateways are not waited for: the kind may come much later.
                let others = watches.iter().filter(|w| w.kind != ObjectKind::Gateway);
                if !complete && others.clone().all(|w| w.listing.listed()) {
                    complete = true;
                    sink.send(Update::SourceState { errors: None, complete: true }).await?;
                }
            }
        }
    }
}

/// Up to [`BATCH`] events that are ready now (at least one); None when every watch ended.
async fn next_batch(streams: &mut SelectAll<Events>) -> Option<Vec<(usize, Event<Decoded>)>> {
    let first = streams.next().await?;
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match futures::FutureExt::now_or_never(streams.next()) {
            Some(Some(event)) => batch.push(event),
            _ => break,
        }
    }
    Some(batch)
}

// ------------------------------------------------------------ what is decoded

/// A Service as its watch decodes it.
#[derive(Clone, Debug, Deserialize)]
pub struct WatchedService {
    #[serde(deserialize_with = "used_metadata")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<WatchedServiceSpec>,
    #[serde(default)]
    pub status: Option<ServiceStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedServiceSpec {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Option<Vec<String>>,
    pub external_name: Option<String>,
}

/// An EndpointSlice as its watch decodes it.
#[derive(Clone, Debug, Deserialize)]
pub struct WatchedSlice {
    #[serde(deserialize_with = "used_metadata")]
    pub metadata: ObjectMeta,
    /// `null` when there are none (Go's nil slice), as `addresses` may be.
    #[serde(default)]
    pub endpoints: Option<Vec<WatchedEndpoint>>,
    #[serde(default)]
    pub ports: Option<Vec<WatchedPort>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct WatchedEndpoint {
    #[serde(default)]
    pub addresses: Option<Vec<String>>,
    #[serde(default)]
    pub conditions: Option<WatchedConditions>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct WatchedConditions {
    pub ready: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct WatchedPort {
    pub name: Option<String>,
    pub port: Option<i32>,
}

/// An Ingress as its watch decodes it.
#[derive(Clone, Debug, Deserialize)]
pub struct WatchedIngress {
    #[serde(deserialize_with = "used_metadata")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: Option<IngressStatus>,
}

/// Of the metadata, what the watch and the facts use: the name and namespace, the
/// resource version a watch resumes from, the labels (a slice's Service). The rest is
/// skipped while decoding, never built.
fn used_metadata<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Used {
        name: Option<String>,
        namespace: Option<String>,
        resource_version: Option<String>,
        labels: Option<BTreeMap<String, String>>,
    }
    let u = Used::deserialize(deserializer)?;
    Ok(ObjectMeta {
        name: u.name,
        namespace: u.namespace,
        resource_version: u.resource_version,
        labels: u.labels,
        ..ObjectMeta::default()
    })
}

/// The API's kind, group, version and plural are those of the full type.
macro_rules! decoded_as {
    ($watched:ty, $full:ty) => {
        impl Resource for $watched {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(dt: &()) -> Cow<'_, str> {
                <$full>::kind(dt)
            }
            fn group(dt: &()) -> Cow<'_, str> {
                <$full>::group(dt)
            }
            fn version(dt: &()) -> Cow<'_, str> {
                <$full>::version(dt)
            }
            fn plural(dt: &()) -> Cow<'_, str> {
                <$full>::plural(dt)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

decoded_as!(WatchedService, Service);
decoded_as!(WatchedSlice, EndpointSlice);
decoded_as!(WatchedIngress, Ingress);

// ------------------------------------------------------------ facts of each kind

fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse().ok()
}

fn load_balancer_address(ip: Option<&str>, hostname: Option<&str>) -> Option<LoadBalancerAddress> {
    match (ip.and_then(parse_ip), hostname.filter(|h| !h.is_empty())) {
        (Some(ip), _) => Some(LoadBalancerAddress::Ip(ip)),
        (None, Some(h)) => Some(LoadBalancerAddress::Hostname(h.into())),
        (None, None) => None,
    }
}

pub fn service_facts(service: &WatchedService) -> Option<Facts> {
    let no_spec = WatchedServiceSpec::default();
    let spec = service.spec.as_ref().unwrap_or(&no_spec);
    let service_type = match spec.type_.as_deref() {
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        _ => ServiceType::ClusterIp,
    };
    let ips = match &spec.cluster_ips {
        Some(ips) => &ips[..],
        None => spec.cluster_ip.as_slice(),
    };
    let cluster_ips = ips.iter().filter_map(|ip| parse_ip(ip)).collect();
    let load_balancer = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| load_balancer_address(i.ip.as_deref(), i.hostname.as_deref()))
        .collect();
    Some(Facts::Service(ServiceFacts {
        service_type,
        cluster_ips,
        external_name: spec
            .external_name
            .as_deref()
            .filter(|_| service_type == ServiceType::ExternalName)
            .map(Box::from),
        load_balancer,
    }))
}

/// None for a slice without its Service's label (it belongs to no Service).
pub fn slice_facts(slice: &WatchedSlice) -> Option<Facts> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?;
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.port?).ok()?;
            Some(SlicePort { name: p.name.clone().filter(|n| !n.is_empty()).map(Into::into), port })
        })
        .collect();
    let ready: Vec<_> = slice
        .endpoints
        .iter()
        .flatten()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .collect();
    let ready_addresses = ready
        .iter()
        .flat_map(|e| e.addresses.iter().flatten())
        .filter_map(|a| parse_ip(a))
        .collect();
    Some(Facts::EndpointSlice(SliceFacts {
        service: Arc::from(service.as_str()),
        ports,
        ready_endpoints: ready.len() as u32,
        ready_addresses,
    }))
}

pub fn ingress_facts(ingress: &WatchedIngress) -> Option<Facts> {
    let addresses = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| load_balancer_address(i.ip.as_deref(), i.hostname.as_deref()))
        .collect();
    Some(Facts::Ingress(addresses))
}

/// `status.addresses[]`: `type` IPAddress (the default) or Hostname, and `value`.
pub fn gateway_facts(gateway: &DynamicObject) -> Option<Facts> {
    let addresses = gateway.data["status"]["addresses"].as_array().cloned().unwrap_or_default();
    let addresses = addresses
        .iter()
        .filter_map(|a| {
            let value = a["value"].as_str()?;
            match a["type"].as_str().unwrap_or("IPAddress") {
                "IPAddress" => parse_ip(value).map(LoadBalancerAddress::Ip),
                "Hostname" => load_balancer_address(None, Some(value)),
                _ => None,
            }
        })
        .collect();
    Some(Facts::Gateway(addresses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_service_keeps_its_type_cluster_ips_and_load_balancer() {
        let service: WatchedService = from_json(serde_json::json!({
            "metadata": {"name": "web", "namespace": "a"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.1"}, {"hostname": "lb.example.net"}]}}
        }));
        let Some(Facts::Service(f)) = service_facts(&service) else { panic!() };
        assert_eq!(f.service_type, ServiceType::LoadBalancer);
        assert_eq!(f.cluster_ips.len(), 2);
        assert_eq!(f.load_balancer[1], LoadBalancerAddress::Hostname("lb.example.net".into()));
        let headless: WatchedService = from_json(serde_json::json!({
            "metadata": {"name": "h"}, "spec": {"clusterIP": "None"}
        }));
        let Some(Facts::Service(f)) = service_facts(&headless) else { panic!() };
        assert!(f.cluster_ips.is_empty());
    }

    #[test]
    fn a_slice_counts_ready_endpoints_with_ready_unset_as_ready() {
        let slice: WatchedSlice = from_json(serde_json::json!({
            "metadata": {"name": "db-x", "namespace": "a", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432}],
            "endpoints": [
                {"addresses": ["10.1.0.1"], "conditions": {"ready": true}},
                {"addresses": ["10.1.0.2"], "conditions": {"ready": false}},
                {"addresses": ["10.1.0.3"]}
            ]
        }));
        let Some(Facts::EndpointSlice(f)) = slice_facts(&slice) else { panic!() };
        assert_eq!(&*f.service, "db");
        assert_eq!(f.ready_endpoints, 2);
        assert_eq!(f.ready_addresses.len(), 2);
        assert_eq!(f.ports[0].port, 5432);
        let orphan: WatchedSlice = from_json(serde_json::json!({
            "metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": []
        }));
        assert!(slice_facts(&orphan).is_none());
    }

    #[test]
    fn the_watched_types_keep_what_the_watch_and_facts_use_and_name_the_full_kinds() {
        let slice: WatchedSlice = from_json(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "db-x", "namespace": "a", "resourceVersion": "42", "uid": "u",
                         "labels": {"kubernetes.io/service-name": "db"},
                         "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                            "fieldsType": "FieldsV1", "fieldsV1": {"f:endpoints": {}}}]},
            "addressType": "IPv4", "endpoints": null, "ports": null
        }));
        assert_eq!(slice.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(
            (slice.metadata.managed_fields.as_ref(), slice.metadata.uid.as_ref()),
            (None, None)
        );
        let Some(Facts::EndpointSlice(f)) = slice_facts(&slice) else { panic!() };
        assert_eq!((f.ready_endpoints, f.ports.len()), (0, 0));
        let ingress: WatchedIngress = from_json(serde_json::json!({
            "metadata": {"name": "web", "namespace": "a"}, "spec": {"rules": [{"host": "x"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.net"}]}}
        }));
        let Some(Facts::Ingress(a)) = ingress_facts(&ingress) else { panic!() };
        assert_eq!(a.len(), 2);
        let kinds = [
            (WatchedService::group(&()), WatchedService::version(&()), WatchedService::plural(&())),
            (WatchedSlice::group(&()), WatchedSlice::version(&()), WatchedSlice::plural(&())),
            (WatchedIngress::group(&()), WatchedIngress::version(&()), WatchedIngress::plural(&())),
        ];
        assert_eq!(
            kinds.map(|(g, v, p)| format!("{g}/{v}/{p}")),
            [
                "/v1/services",
                "discovery.k8s.io/v1/endpointslices",
                "networking.k8s.io/v1/ingresses"
            ]
        );
    }

    #[test]
    fn a_gateway_reads_ip_and_hostname_addresses() {
        let gateway: DynamicObject = from_json(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw"},
            "status": {"addresses": [{"value": "198.51.100.1"}, {"type": "Hostname", "value": "gw.example.net"}, {"type": "NamedAddress", "value": "x"}]}
        }));
        let Some(Facts::Gateway(a)) = gateway_facts(&gateway) else { panic!() };
        assert_eq!(a.len(), 2);
    }
}
