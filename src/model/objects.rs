//! What the cluster's Services, EndpointSlices, Ingresses and Gateways say, kept only
//! as far as records and checks read it (addresses and ready endpoints), and how a
//! record's `valuesFrom` and an `Endpoints` check read it. Pure: the cluster source
//! turns watched objects into [`Facts`]; one object's change reaches only the records
//! and checks that name it (spec section 7).

use std::borrow::Borrow;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::RData;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use triomphe::ThinArc;

use super::{ObjectRef, PortRef, RecordType, Rr};
use crate::resources::ServiceAddress;

/// The kinds a record or a check can point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ObjectKind {
    Service,
    EndpointSlice,
    Ingress,
    Gateway,
}

/// A load balancer's (or a Gateway's) address: an IP, or a name answered as a CNAME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadBalancerAddress {
    Ip(IpAddr),
    Hostname(Box<str>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceFacts {
    pub service_type: ServiceType,
    /// `spec.clusterIPs` (none for a headless Service).
    pub cluster_ips: Box<[IpAddr]>,
    pub external_name: Option<Box<str>>,
    /// `status.loadBalancer.ingress`.
    pub load_balancer: Box<[LoadBalancerAddress]>,
}

/// One EndpointSlice: its Service, its ports and its ready endpoints' addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceFacts {
    /// The `kubernetes.io/service-name` label.
    pub service: Arc<str>,
    pub ports: Box<[SlicePort]>,
    /// Ready endpoints (`conditions.ready` unset counts as ready).
    pub ready_endpoints: u32,
    /// Their addresses.
    pub ready_addresses: Box<[IpAddr]>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlicePort {
    pub name: Option<Box<str>>,
    pub port: u16,
}

/// What one object says, as far as anything here reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Facts {
    Service(ServiceFacts),
    EndpointSlice(SliceFacts),
    /// An Ingress's `status.loadBalancer.ingress`.
    Ingress(Box<[LoadBalancerAddress]>),
    /// A Gateway's `status.addresses`.
    Gateway(Box<[LoadBalancerAddress]>),
}

impl Facts {
    pub fn kind(&self) -> ObjectKind {
        match self {
            Facts::Service(_) => ObjectKind::Service,
            Facts::EndpointSlice(_) => ObjectKind::EndpointSlice,
            Facts::Ingress(_) => ObjectKind::Ingress,
            Facts::Gateway(_) => ObjectKind::Gateway,
        }
    }
}

/// One object as it is now (None: deleted).
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectChange {
    pub kind: ObjectKind,
    pub id: ObjectRef,
    pub facts: Option<Facts>,
}

/// Where a record's data comes from (`spec.valuesFrom`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValuesSource {
    pub kind: ObjectKind,
    pub name: Arc<str>,
    /// Services only: which addresses (None: LoadBalancer for that type, else ClusterIP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<ServiceAddress>,
    pub evaluate_target_health: bool,
}

/// A record's data as its object gives it now.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectValues {
    pub source: ValuesSource,
    pub values: Arc<[Rr]>,
    /// Has values, and (with evaluateTargetHealth) its Service a ready endpoint.
    pub healthy: bool,
    /// Why not healthy (`NoAddresses`, `NoEndpoints`), with the message; or what it
    /// answers from.
    pub reason: &'static str,
    pub message: Box<str>,
}

impl ObjectValues {
    /// Before the model looked the object up.
    pub fn unresolved(source: ValuesSource) -> Self {
        Self {
            source,
            values: Arc::new([]),
            healthy: false,
            reason: NO_ADDRESSES,
            message: "not resolved yet".into(),
        }
    }
}

/// Reason of a record whose object is missing or has no usable address.
pub const NO_ADDRESSES: &str = "NoAddresses";
/// Reason of a check (or an evaluateTargetHealth record) whose Service has too few
/// ready endpoints.
pub const NO_ENDPOINTS: &str = "NoEndpoints";

/// The facts of every watched object of these kinds, per namespace.
///
/// Most watched objects are read by nothing (10,000 Services, 100 referenced), so the
/// store is laid out for bytes per object: at that size the tables' entries and their
/// free slots (hashbrown keeps 1.1–2 slots per entry) are most of it. Entries are
/// keyed by name within their namespace behind a thin pointer (8 B), a Service's
/// slices are listed in its own entry (no index of their own), the fields most
/// Services leave empty are boxed together, and equal port lists are one shared list.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    namespaces: FxHashMap<Arc<str>, Namespace>,
    /// Every slice's port list, once per distinct list (most slices of a cluster
    /// have one of a few).
    port_lists: FxHashSet<PortList>,
    /// Whether the Gateway API's Gateway kind is served by the API server.
    pub gateway_api: bool,
}

#[derive(Clone, Debug, Default)]
struct Namespace {
    services: FxHashMap<Name, ServiceEntry>,
    slices: FxHashMap<Name, StoredSlice>,
    ingresses: FxHashMap<Name, Box<[LoadBalancerAddress]>>,
    gateways: FxHashMap<Name, Box<[LoadBalancerAddress]>>,
}

/// A Service, and the slices labelled with its name: they can arrive before it and
/// outlive it, so an entry may hold slices and no Service.
#[derive(Clone, Debug)]
struct ServiceEntry {
    facts: Option<StoredService>,
    slices: SliceNames,
}

/// The slices of one Service: most have one, and an entry has room for one name.
#[derive(Clone, Debug, Default)]
enum SliceNames {
    #[default]
    None,
    One(Name),
    #[expect(clippy::box_collection, reason = "a thin pointer keeps every entry 8 B smaller")]
    Many(Box<Vec<Name>>),
}

impl SliceNames {
    fn as_slice(&self) -> &[Name] {
        match self {
            SliceNames::None => &[],
            SliceNames::One(name) => std::slice::from_ref(name),
            SliceNames::Many(names) => names,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, SliceNames::None)
    }

    fn push(&mut self, name: Name) {
        *self = match std::mem::take(self) {
            SliceNames::None => SliceNames::One(name),
            SliceNames::One(first) => SliceNames::Many(Box::new(vec![first, name])),
            SliceNames::Many(mut names) => {
                names.push(name);
                SliceNames::Many(names)
            }
        }
    }

    fn remove(&mut self, name: &str) {
        *self = match std::mem::take(self) {
            SliceNames::One(only) if only.as_str() == name => SliceNames::None,
            SliceNames::Many(mut names) => {
                names.retain(|n| n.as_str() != name);
                match names.len() {
                    0 => SliceNames::None,
                    1 => SliceNames::One(names.pop().expect("one left")),
                    _ => SliceNames::Many(names),
                }
            }
            unchanged => unchanged,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct StoredService {
    cluster_ips: Box<[IpAddr]>,
    /// None for a ClusterIP Service without them (most Services).
    rare: Option<Box<RareServiceFacts>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct RareServiceFacts {
    service_type: ServiceType,
    external_name: Option<Box<str>>,
    load_balancer: Box<[LoadBalancerAddress]>,
}

impl From<ServiceFacts> for StoredService {
    fn from(f: ServiceFacts) -> Self {
        let common = f.service_type == ServiceType::ClusterIp
            && f.external_name.is_none()
            && f.load_balancer.is_empty();
        let rare = (!common).then(|| {
            Box::new(RareServiceFacts {
                service_type: f.service_type,
                external_name: f.external_name,
                load_balancer: f.load_balancer,
            })
        });
        // A block of the store's own: the decoded one sits among a listing's garbage,
        // and one long-lived block keeps its whole allocator page resident.
        Self { cluster_ips: Box::from(&*f.cluster_ips), rare }
    }
}

impl StoredService {
    fn service_type(&self) -> ServiceType {
        self.rare.as_ref().map_or(ServiceType::ClusterIp, |r| r.service_type)
    }

    fn external_name(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|r| r.external_name.as_deref())
    }

    fn load_balancer(&self) -> &[LoadBalancerAddress] {
        self.rare.as_ref().map(|r| &r.load_balancer[..]).unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
struct StoredSlice {
    /// The Service's name, shared with its entry's key.
    service: Name,
    ports: PortList,
    ready_endpoints: u32,
    ready_addresses: Box<[IpAddr]>,
}

impl StoredSlice {
    fn says(&self, f: &SliceFacts) -> bool {
        self.service.as_str() == &*f.service
            && *self.ports == *f.ports
            && self.ready_endpoints == f.ready_endpoints
            && self.ready_addresses == f.ready_addresses
    }
}

/// An object's name as the store keeps it: one immutable block behind a thin
/// pointer, shared by a Service's key and its slices' `service`.
#[derive(Clone)]
struct Name(ThinArc<(), u8>);

impl Name {
    fn new(name: &str) -> Self {
        Self(ThinArc::from_header_and_slice((), name.as_bytes()))
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0.slice).expect("made from a str")
    }
}

// A name hashes and compares as its text, so the tables are searched with a `&str`.
impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.0.slice == other.0.slice
    }
}

impl Eq for Name {}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// A slice's ports, one immutable list shared by every slice with the same ones,
/// behind a thin pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PortList(ThinArc<(), SlicePort>);

// Hashes as its slice, so the set is searched with a `&[SlicePort]`.
impl std::hash::Hash for PortList {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self[..].hash(state);
    }
}

impl std::ops::Deref for PortList {
    type Target = [SlicePort];

    fn deref(&self) -> &[SlicePort] {
        &self.0.slice
    }
}

impl Borrow<[SlicePort]> for PortList {
    fn borrow(&self) -> &[SlicePort] {
        self
    }
}

impl Namespace {
    fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.slices.is_empty()
            && self.ingresses.is_empty()
            && self.gateways.is_empty()
    }

    fn service(&self, name: &str) -> Option<&StoredService> {
        self.services.get(name)?.facts.as_ref()
    }

    /// The slices of a Service (whether or not it exists).
    fn slices_of<'a>(&'a self, service: &str) -> impl Iterator<Item = &'a StoredSlice> {
        let names = self.services.get(service).map(|e| e.slices.as_slice()).unwrap_or_default();
        names.iter().filter_map(|n| self.slices.get(n.as_str()))
    }

    /// Lists a slice under its Service; the Service's shared name.
    fn list(&mut self, service: &str, slice: &Name) -> Name {
        match self.services.get_key_value(service) {
            Some((key, _)) => {
                let key = key.clone();
                self.services.get_mut(service).expect("just found").slices.push(slice.clone());
                key
            }
            None => {
                let key = Name::new(service);
                let entry = ServiceEntry { facts: None, slices: SliceNames::One(slice.clone()) };
                self.services.insert(key.clone(), entry);
                key
            }
        }
    }

    fn unlist(&mut self, service: &str, slice: &str) {
        if let Some(entry) = self.services.get_mut(service) {
            entry.slices.remove(slice);
            if entry.facts.is_none() && entry.slices.is_empty() {
                self.services.remove(service);
            }
        }
    }
}

impl Objects {
    /// Stores one object's facts; returns the object whose readers must look again
    /// (a slice's Service), or None when nothing changed.
    pub fn put(&mut self, change: ObjectChange) -> Option<(ObjectKind, ObjectRef)> {
        let ObjectChange { kind, id, facts } = change;
        let namespace = match self.namespaces.get_key_value(&*id.namespace) {
            Some((shared, _)) => shared.clone(),
            None => id.namespace.clone(),
        };
        let ns = self.namespaces.entry(namespace).or_default();
        let touched = match (kind, facts) {
            (ObjectKind::EndpointSlice, facts) => {
                let new = match facts {
                    Some(Facts::EndpointSlice(f)) => Some(f),
                    _ => None,
                };
                put_slice(ns, &mut self.port_lists, &id, new).map(|s| (ObjectKind::Service, s))
            }
            (ObjectKind::Service, facts) => {
                let new = match facts {
                    Some(Facts::Service(f)) => Some(StoredService::from(f)),
                    _ => None,
                };
                put_service(ns, &id.name, new).then(|| (kind, id.name.clone()))
            }
            (ObjectKind::Ingress, Some(Facts::Ingress(a))) => {
                replace(&mut ns.ingresses, &id.name, Some(a)).then(|| (kind, id.name.clone()))
            }
            (ObjectKind::Ingress, _) => {
                replace(&mut ns.ingresses, &id.name, None).then(|| (kind, id.name.clone()))
            }
            (ObjectKind::Gateway, Some(Facts::Gateway(a))) => {
                replace(&mut ns.gateways, &id.name, Some(a)).then(|| (kind, id.name.clone()))
            }
            (ObjectKind::Gateway, _) => {
                replace(&mut ns.gateways, &id.name, None).then(|| (kind, id.name.clone()))
            }
        };
        if ns.is_empty() {
            self.namespaces.remove(&*id.namespace);
        }
        touched.map(|(kind, name)| (kind, ObjectRef { namespace: id.namespace, name }))
    }

    /// The objects of `kind` in `namespace` (None: every one) not in `seen`: what a
    /// re-listing no longer showed.
    pub fn missing(
        &self,
        kind: ObjectKind,
        namespace: Option<&str>,
        seen: &FxHashSet<ObjectRef>,
    ) -> Vec<ObjectRef> {
        let mut gone = Vec::new();
        for (ns_name, ns) in &self.namespaces {
            if namespace.is_some_and(|wanted| wanted != &**ns_name) {
                continue;
            }
            let names: Box<dyn Iterator<Item = &Name>> = match kind {
                ObjectKind::Service => {
                    Box::new(ns.services.iter().filter(|(_, e)| e.facts.is_some()).map(|(n, _)| n))
                }
                ObjectKind::EndpointSlice => Box::new(ns.slices.keys()),
                ObjectKind::Ingress => Box::new(ns.ingresses.keys()),
                ObjectKind::Gateway => Box::new(ns.gateways.keys()),
            };
            for name in names {
                let id = ObjectRef { namespace: ns_name.clone(), name: name.as_str().into() };
                if !seen.contains(&id) {
                    gone.push(id);
                }
            }
        }
        gone
    }

    fn namespace(&self, id: &ObjectRef) -> Option<&Namespace> {
        self.namespaces.get(&*id.namespace)
    }

    fn stored_service(&self, id: &ObjectRef) -> Option<&StoredService> {
        self.namespace(id)?.service(&id.name)
    }

    /// Whether the Service exists.
    pub fn has_service(&self, id: &ObjectRef) -> bool {
        self.stored_service(id).is_some()
    }

    /// Ready endpoints of a Service, over its slices; none while the Service does not
    /// exist (its slices outlive it until they are collected).
    pub fn ready_endpoints(&self, service: &ObjectRef) -> u32 {
        let Some(ns) = self.namespace(service) else { return 0 };
        if ns.service(&service.name).is_none() {
            return 0;
        }
        ns.slices_of(&service.name).map(|s| s.ready_endpoints).sum()
    }

    /// The ready endpoints of a Service to probe, each with its port (by name or
    /// number; left out, the slice's only port), in address order; none while the
    /// Service does not exist. Err names a port no slice can resolve.
    pub fn endpoint_targets(
        &self,
        service: &ObjectRef,
        port: Option<&PortRef>,
    ) -> Result<Vec<(IpAddr, u16)>, String> {
        let Some(ns) = self.namespace(service).filter(|ns| ns.service(&service.name).is_some())
        else {
            return Ok(Vec::new());
        };
        let mut targets = Vec::new();
        for slice in ns.slices_of(&service.name).filter(|s| !s.ready_addresses.is_empty()) {
            let resolved = match port {
                Some(PortRef::Number(n)) => slice.ports.iter().any(|p| p.port == *n).then_some(*n),
                Some(PortRef::Name(name)) => {
                    slice.ports.iter().find(|p| p.name.as_deref() == Some(&**name)).map(|p| p.port)
                }
                None if slice.ports.len() == 1 => Some(slice.ports[0].port),
                None => None,
            };
            let Some(number) = resolved else {
                return Err(match port {
                    Some(PortRef::Number(n)) => {
                        format!("Service {} has no endpoint port {n}", service.name)
                    }
                    Some(PortRef::Name(n)) => {
                        format!("Service {} has no endpoint port named {n}", service.name)
                    }
                    None => format!(
                        "Service {} has {} endpoint ports: serviceRef.port must name one",
                        service.name,
                        slice.ports.len()
                    ),
                });
            };
            targets.extend(slice.ready_addresses.iter().map(|ip| (*ip, number)));
        }
        targets.sort();
        targets.dedup();
        Ok(targets)
    }

    /// How many objects are held, per kind (for `/status` and the memory benchmark).
    pub fn counts(&self) -> [(ObjectKind, usize); 4] {
        let mut counts = [0; 4];
        for ns in self.namespaces.values() {
            counts[0] += ns.services.values().filter(|e| e.facts.is_some()).count();
            counts[1] += ns.slices.len();
            counts[2] += ns.ingresses.len();
            counts[3] += ns.gateways.len();
        }
        [
            (ObjectKind::Service, counts[0]),
            (ObjectKind::EndpointSlice, counts[1]),
            (ObjectKind::Ingress, counts[2]),
            (ObjectKind::Gateway, counts[3]),
        ]
    }

    /// A record's data from its object, now. `namespace` is the record's.
    pub fn resolve(
        &self,
        namespace: &ObjectRef,
        source: &ValuesSource,
        rtype: RecordType,
        ttl: u32,
    ) -> ObjectValues {
        let id = namespace.sibling(&*source.name);
        let ns = self.namespace(&id);
        let load_balancer = |addresses: Option<&Box<[LoadBalancerAddress]>>, kind| match addresses {
            Some(addresses) => load_balancer_values(addresses, rtype, kind, &id),
            None => (Vec::new(), format!("{kind} {} not found", id.name)),
        };
        let (data, mut message) = match source.kind {
            ObjectKind::Service => self.service_values(&id, source.address, rtype),
            ObjectKind::Ingress => {
                load_balancer(ns.and_then(|ns| ns.ingresses.get(&*id.name)), "Ingress")
            }
            ObjectKind::Gateway if !self.gateway_api => (
                Vec::new(),
                "the Gateway API (gateways.gateway.networking.k8s.io) is not installed".into(),
            ),
            ObjectKind::Gateway => {
                load_balancer(ns.and_then(|ns| ns.gateways.get(&*id.name)), "Gateway")
            }
            ObjectKind::EndpointSlice => (Vec::new(), "not a source of values".into()),
        };
        let mut reason = if data.is_empty() { NO_ADDRESSES } else { "" };
        let mut healthy = !data.is_empty();
        if healthy && source.evaluate_target_health && source.kind == ObjectKind::Service {
            let ready = self.ready_endpoints(&id);
            if ready == 0 {
                healthy = false;
                reason = NO_ENDPOINTS;
                message = format!("Service {} has no ready endpoint", id.name);
            } else {
                message.push_str(&format!("; {ready} ready endpoints"));
            }
        }
        let values: Arc<[Rr]> = data.into_iter().map(|d| Rr::new(ttl, d)).collect();
        ObjectValues { source: source.clone(), values, healthy, reason, message: message.into() }
    }

    fn service_values(
        &self,
        id: &ObjectRef,
        address: Option<ServiceAddress>,
        rtype: RecordType,
    ) -> (Vec<RData>, String) {
        let Some(service) = self.stored_service(id) else {
            return (Vec::new(), format!("Service {} not found", id.name));
        };
        if rtype == RecordType::Cname
            && let Some(name) = service.external_name()
        {
            return match cname(name) {
                Some(d) => (vec![d], format!("ExternalName Service {}", id.name)),
                None => (
                    Vec::new(),
                    format!("Service {}: externalName {name:?} is not a DNS name", id.name),
                ),
            };
        }
        let address = address.unwrap_or(if service.service_type() == ServiceType::LoadBalancer {
            ServiceAddress::LoadBalancer
        } else {
            ServiceAddress::ClusterIP
        });
        match address {
            ServiceAddress::LoadBalancer => {
                load_balancer_values(service.load_balancer(), rtype, "Service", id)
            }
            ServiceAddress::ClusterIP => {
                let data = ips(service.cluster_ips.iter().copied(), rtype);
                let message = if data.is_empty() {
                    format!("Service {} has no cluster IP for {}", id.name, rtype.name())
                } else {
                    format!("Service {} cluster IPs", id.name)
                };
                (data, message)
            }
            ServiceAddress::Endpoints => {
                let slices = self.namespace(id).into_iter().flat_map(|ns| ns.slices_of(&id.name));
                let all = slices.flat_map(|s| s.ready_addresses.iter().copied());
                let mut seen = FxHashSet::default();
                let data = ips(all.filter(|ip| seen.insert(*ip)), rtype);
                let message = if data.is_empty() {
                    format!(
                        "Service {} has no ready endpoint address for {}",
                        id.name,
                        rtype.name()
                    )
                } else {
                    format!("Service {} ready endpoints", id.name)
                };
                (data, message)
            }
        }
    }
}

/// Puts (Some) or removes a Service; whether it changed.
fn put_service(ns: &mut Namespace, name: &str, new: Option<StoredService>) -> bool {
    match ns.services.get_mut(name) {
        Some(entry) if entry.facts == new => false,
        Some(entry) => {
            entry.facts = new;
            if entry.facts.is_none() && entry.slices.is_empty() {
                ns.services.remove(name);
            }
            true
        }
        None => {
            let Some(new) = new else { return false };
            let entry = ServiceEntry { facts: Some(new), slices: SliceNames::None };
            ns.services.insert(Name::new(name), entry);
            true
        }
    }
}

/// Puts (Some) or removes a slice; the Service whose readers must look again. A
/// slice's readers are its Service's, before and after (its label may move).
fn put_slice(
    ns: &mut Namespace,
    port_lists: &mut FxHashSet<PortList>,
    id: &ObjectRef,
    new: Option<SliceFacts>,
) -> Option<Arc<str>> {
    if let Some(new) = &new
        && ns.slices.get(&*id.name).is_some_and(|old| old.says(new))
    {
        return None;
    }
    let (key, old) = match ns.slices.remove_entry(&*id.name) {
        Some((key, old)) => (key, Some(old)),
        None if new.is_none() => return None,
        None => (Name::new(&id.name), None),
    };
    let Some(new) = new else {
        let old = old.expect("a slice to remove");
        ns.unlist(old.service.as_str(), &id.name);
        release(port_lists, old.ports);
        return Some(Arc::from(old.service.as_str()));
    };
    // The slice stays listed under its Service and keeps its ports when they are the
    // same. A slice moving from one Service to another touches both; it does not
    // happen (the label is set by the EndpointSlice controller), so the new one wins.
    let (service, ports) = match old {
        Some(old) => {
            let service = if old.service.as_str() == &*new.service {
                old.service
            } else {
                ns.unlist(old.service.as_str(), &id.name);
                ns.list(&new.service, &key)
            };
            let ports = if *old.ports == *new.ports {
                old.ports
            } else {
                release(port_lists, old.ports);
                shared_ports(port_lists, new.ports)
            };
            (service, ports)
        }
        None => (ns.list(&new.service, &key), shared_ports(port_lists, new.ports)),
    };
    let stored = StoredSlice {
        service,
        ports,
        ready_endpoints: new.ready_endpoints,
        // Copied for the reason a Service's cluster IPs are.
        ready_addresses: Box::from(&*new.ready_addresses),
    };
    ns.slices.insert(key, stored);
    Some(new.service)
}

/// The shared copy of a port list, made when it is the first.
fn shared_ports(port_lists: &mut FxHashSet<PortList>, ports: Box<[SlicePort]>) -> PortList {
    match port_lists.get(&*ports) {
        Some(shared) => shared.clone(),
        None => {
            let ports = PortList(ThinArc::from_header_and_iter((), ports.into_iter()));
            port_lists.insert(ports.clone());
            ports
        }
    }
}

/// Forgets a port list no slice holds any more.
fn release(port_lists: &mut FxHashSet<PortList>, ports: PortList) {
    if ThinArc::strong_count(&ports.0) == 2 {
        port_lists.remove(&*ports);
    }
}

/// Puts (Some) or removes one object's facts; whether they changed.
fn replace<V: PartialEq>(map: &mut FxHashMap<Name, V>, name: &str, new: Option<V>) -> bool {
    match new {
        Some(new) if map.get(name) == Some(&new) => false,
        Some(new) => {
            map.insert(Name::new(name), new);
            true
        }
        None => map.remove(name).is_some(),
    }
}

/// Addresses of the record's family (none for other types).
fn ips(all: impl Iterator<Item = IpAddr>, rtype: RecordType) -> Vec<RData> {
    all.filter_map(|ip| match (ip, rtype) {
        (IpAddr::V4(v4), RecordType::A) => Some(RData::A(v4.into())),
        (IpAddr::V6(v6), RecordType::Aaaa) => Some(RData::AAAA(v6.into())),
        _ => None,
    })
    .collect()
}

fn cname(name: &str) -> Option<RData> {
    super::parse_rdata(RecordType::Cname, name).ok()
}

/// A load balancer's IPs for A/AAAA, its (first) hostname for CNAME.
fn load_balancer_values(
    addresses: &[LoadBalancerAddress],
    rtype: RecordType,
    kind: &str,
    id: &ObjectRef,
) -> (Vec<RData>, String) {
    let data: Vec<RData> = if rtype == RecordType::Cname {
        addresses
            .iter()
            .find_map(|a| match a {
                LoadBalancerAddress::Hostname(h) => cname(h),
                LoadBalancerAddress::Ip(_) => None,
            })
            .into_iter()
            .collect()
    } else {
        let all = addresses.iter().filter_map(|a| match a {
            LoadBalancerAddress::Ip(ip) => Some(*ip),
            LoadBalancerAddress::Hostname(_) => None,
        });
        ips(all, rtype)
    };
    let message = if data.is_empty() {
        let what = if rtype == RecordType::Cname { "hostname" } else { "address for this type" };
        format!("{kind} {} has no load balancer {what}", id.name)
    } else {
        format!("{kind} {} load balancer", id.name)
    };
    (data, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(t: ServiceType, ips: &[&str], lb: &[&str]) -> Facts {
        Facts::Service(ServiceFacts {
            service_type: t,
            cluster_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            external_name: None,
            load_balancer: lb
                .iter()
                .map(|a| match a.parse() {
                    Ok(ip) => LoadBalancerAddress::Ip(ip),
                    Err(_) => LoadBalancerAddress::Hostname((*a).into()),
                })
                .collect(),
        })
    }

    fn slice(service: &str, ready: &[&str]) -> Facts {
        Facts::EndpointSlice(SliceFacts {
            service: service.into(),
            ports: Box::new([SlicePort { name: Some("http".into()), port: 8080 }]),
            ready_endpoints: ready.len() as u32,
            ready_addresses: ready.iter().map(|i| i.parse().unwrap()).collect(),
        })
    }

    fn put(objects: &mut Objects, kind: ObjectKind, name: &str, facts: Option<Facts>) -> bool {
        objects.put(ObjectChange { kind, id: ObjectRef::new("ns", name), facts }).is_some()
    }

    fn source(
        kind: ObjectKind,
        name: &str,
        address: Option<ServiceAddress>,
        eth: bool,
    ) -> ValuesSource {
        ValuesSource { kind, name: name.into(), address, evaluate_target_health: eth }
    }

    fn answer(
        objects: &Objects,
        source: &ValuesSource,
        rtype: RecordType,
    ) -> (Vec<String>, bool, &'static str) {
        let v = objects.resolve(&ObjectRef::new("ns", "record"), source, rtype, 30);
        (v.values.iter().map(|r| r.rdata().to_string()).collect(), v.healthy, v.reason)
    }

    #[test]
    fn a_service_answers_with_its_cluster_ips_of_the_family() {
        let mut o = Objects::default();
        put(
            &mut o,
            ObjectKind::Service,
            "db",
            Some(svc(ServiceType::ClusterIp, &["10.0.0.7", "fd00::7"], &[])),
        );
        let s = source(ObjectKind::Service, "db", None, false);
        assert_eq!(answer(&o, &s, RecordType::A), (vec!["10.0.0.7".into()], true, ""));
        assert_eq!(answer(&o, &s, RecordType::Aaaa), (vec!["fd00::7".into()], true, ""));
        assert_eq!(answer(&o, &s, RecordType::Cname).2, NO_ADDRESSES);
        let missing = source(ObjectKind::Service, "gone", None, false);
        assert_eq!(answer(&o, &missing, RecordType::A), (vec![], false, NO_ADDRESSES));
    }

    #[test]
    fn a_load_balancer_service_answers_with_its_ingress_and_a_hostname_as_cname() {
        let mut o = Objects::default();
        put(
            &mut o,
            ObjectKind::Service,
            "web",
            Some(svc(ServiceType::LoadBalancer, &["10.0.0.1"], &["203.0.113.5", "lb.example.net"])),
        );
        let s = source(ObjectKind::Service, "web", None, false);
        assert_eq!(answer(&o, &s, RecordType::A).0, ["203.0.113.5"]);
        assert_eq!(answer(&o, &s, RecordType::Cname).0, ["lb.example.net."]);
        let cluster = source(ObjectKind::Service, "web", Some(ServiceAddress::ClusterIP), false);
        assert_eq!(answer(&o, &cluster, RecordType::A).0, ["10.0.0.1"]);
    }

    #[test]
    fn endpoints_and_evaluate_target_health_follow_the_ready_endpoints_of_every_slice() {
        let mut o = Objects::default();
        put(
            &mut o,
            ObjectKind::Service,
            "db",
            Some(svc(ServiceType::ClusterIp, &["10.0.0.7"], &[])),
        );
        let eth = source(ObjectKind::Service, "db", None, true);
        assert_eq!(answer(&o, &eth, RecordType::A), (vec!["10.0.0.7".into()], false, NO_ENDPOINTS));
        assert!(put(&mut o, ObjectKind::EndpointSlice, "db-a", Some(slice("db", &["10.1.0.1"]))));
        assert!(put(
            &mut o,
            ObjectKind::EndpointSlice,
            "db-b",
            Some(slice("db", &["10.1.0.2", "10.1.0.1"]))
        ));
        assert!(
            !put(
                &mut o,
                ObjectKind::EndpointSlice,
                "db-b",
                Some(slice("db", &["10.1.0.2", "10.1.0.1"]))
            ),
            "no change"
        );
        assert_eq!(o.ready_endpoints(&ObjectRef::new("ns", "db")), 3);
        assert!(answer(&o, &eth, RecordType::A).1);
        let endpoints = source(ObjectKind::Service, "db", Some(ServiceAddress::Endpoints), false);
        assert_eq!(
            answer(&o, &endpoints, RecordType::A).0,
            ["10.1.0.1", "10.1.0.2"],
            "each address once"
        );
        assert!(put(&mut o, ObjectKind::Service, "db", None));
        assert_eq!(o.ready_endpoints(&ObjectRef::new("ns", "db")), 0, "no Service, no endpoints");
        put(
            &mut o,
            ObjectKind::Service,
            "db",
            Some(svc(ServiceType::ClusterIp, &["10.0.0.7"], &[])),
        );
        assert!(put(&mut o, ObjectKind::EndpointSlice, "db-a", None));
        assert!(put(&mut o, ObjectKind::EndpointSlice, "db-b", None));
        assert_eq!(o.ready_endpoints(&ObjectRef::new("ns", "db")), 0);
        assert_eq!(answer(&o, &eth, RecordType::A).2, NO_ENDPOINTS);
        assert_eq!(answer(&o, &endpoints, RecordType::A).2, NO_ADDRESSES);
    }

    /// One step of the property test: a Service or a slice of few names, put or deleted.
    #[derive(Clone, Debug)]
    enum Step {
        Service { ns: usize, name: usize, ips: Option<Vec<u8>> },
        Slice { ns: usize, name: usize, facts: Option<(usize, usize, Vec<u8>)> },
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let ips = proptest::collection::vec(0u8..4, 0..3);
        prop_oneof![
            (0..2usize, 0..3usize, proptest::option::of(ips.clone()))
                .prop_map(|(ns, name, ips)| Step::Service { ns, name, ips }),
            (0..2usize, 0..4usize, proptest::option::of((0..3usize, 0..3usize, ips)))
                .prop_map(|(ns, name, facts)| Step::Slice { ns, name, facts }),
        ]
    }

    fn port_list(variant: usize) -> Box<[SlicePort]> {
        let http = SlicePort { name: Some("http".into()), port: 8080 };
        match variant {
            0 => Box::new([http]),
            1 => Box::new([SlicePort { name: None, port: 5432 }]),
            _ => Box::new([http, SlicePort { name: Some("metrics".into()), port: 9090 }]),
        }
    }

    fn ip(last: &u8) -> IpAddr {
        IpAddr::from([10, 0, 0, *last])
    }

    proptest::proptest! {
        /// The compact store answers as a plain map of every object would, reports a
        /// change exactly when the facts changed, and holds nothing once every object
        /// is gone (no Service entry kept for its slices, no namespace, no port list).
        #[test]
        fn the_store_answers_as_plain_maps_and_forgets_what_is_deleted(
            steps in proptest::collection::vec(step(), 1..60)
        ) {
            use std::collections::BTreeMap;
            let mut o = Objects::default();
            let mut services: BTreeMap<(usize, usize), ServiceFacts> = BTreeMap::new();
            let mut slices: BTreeMap<(usize, usize), SliceFacts> = BTreeMap::new();
            let id = |ns: usize, name: String| ObjectRef::new(format!("ns{ns}"), name);
            let svc_name = |i: usize| format!("svc{i}");
            for s in steps.iter().cloned().chain(
                (0..2).flat_map(|ns| (0..3).map(move |name| Step::Service { ns, name, ips: None })),
            ).chain(
                (0..2).flat_map(|ns| (0..4).map(move |name| Step::Slice { ns, name, facts: None })),
            ) {
                let (kind, object, facts, changed) = match s {
                    Step::Service { ns, name, ips } => {
                        let facts = ips.map(|ips| ServiceFacts {
                            service_type: ServiceType::ClusterIp,
                            cluster_ips: ips.iter().map(ip).collect(),
                            external_name: None,
                            load_balancer: Box::new([]),
                        });
                        let changed = match &facts {
                            Some(f) => services.insert((ns, name), f.clone()).as_ref() != Some(f),
                            None => services.remove(&(ns, name)).is_some(),
                        };
                        (ObjectKind::Service, id(ns, svc_name(name)), facts.map(Facts::Service), changed)
                    }
                    Step::Slice { ns, name, facts } => {
                        let facts = facts.map(|(service, ports, ready)| SliceFacts {
                            service: svc_name(service).into(),
                            ports: port_list(ports),
                            ready_endpoints: ready.len() as u32,
                            ready_addresses: ready.iter().map(ip).collect(),
                        });
                        let changed = match &facts {
                            Some(f) => slices.insert((ns, name), f.clone()).as_ref() != Some(f),
                            None => slices.remove(&(ns, name)).is_some(),
                        };
                        let facts = facts.map(Facts::EndpointSlice);
                        (ObjectKind::EndpointSlice, id(ns, format!("slice{name}")), facts, changed)
                    }
                };
                let touched = o.put(ObjectChange { kind, id: object, facts });
                proptest::prop_assert_eq!(touched.is_some(), changed);
                for ns in 0..2 {
                    for name in 0..3 {
                        let service = id(ns, svc_name(name));
                        let exists = services.contains_key(&(ns, name));
                        let of_it: Vec<&SliceFacts> = slices
                            .iter()
                            .filter(|((n, _), f)| *n == ns && *f.service == *svc_name(name))
                            .map(|(_, f)| f)
                            .collect();
                        let ready = if exists { of_it.iter().map(|f| f.ready_endpoints).sum() } else { 0 };
                        proptest::prop_assert_eq!(o.has_service(&service), exists);
                        proptest::prop_assert_eq!(o.ready_endpoints(&service), ready);
                        let mut targets: Vec<(IpAddr, u16)> = of_it
                            .iter()
                            .flat_map(|f| f.ready_addresses.iter().map(|a| (*a, f.ports[0].port)))
                            .collect();
                        targets.sort();
                        targets.dedup();
                        if !exists {
                            targets.clear();
                        }
                        let by_number = |p: u16| o.endpoint_targets(&service, Some(&PortRef::Number(p)));
                        if of_it.iter().all(|f| f.ports[0].port == 8080) {
                            proptest::prop_assert_eq!(by_number(8080), Ok(targets));
                        }
                    }
                }
                let counts = o.counts();
                proptest::prop_assert_eq!(counts[0].1, services.len());
                proptest::prop_assert_eq!(counts[1].1, slices.len());
                let mut held = o.missing(ObjectKind::EndpointSlice, None, &FxHashSet::default());
                held.sort();
                let expected: Vec<ObjectRef> =
                    slices.keys().map(|(ns, name)| id(*ns, format!("slice{name}"))).collect();
                proptest::prop_assert_eq!(held, expected);
            }
            proptest::prop_assert!(o.namespaces.is_empty(), "{:?}", o.namespaces);
            proptest::prop_assert!(o.port_lists.is_empty(), "{:?}", o.port_lists);
        }
    }

    #[test]
    fn slices_with_the_same_ports_share_one_list() {
        let mut o = Objects::default();
        for name in ["a", "b", "c"] {
            put(&mut o, ObjectKind::EndpointSlice, name, Some(slice("db", &["10.1.0.1"])));
        }
        assert_eq!(o.port_lists.len(), 1);
        put(&mut o, ObjectKind::EndpointSlice, "a", None);
        put(&mut o, ObjectKind::EndpointSlice, "b", None);
        assert_eq!(o.port_lists.len(), 1, "still held by c");
        put(&mut o, ObjectKind::EndpointSlice, "c", None);
        assert!(o.port_lists.is_empty() && o.namespaces.is_empty());
    }

    #[test]
    fn an_external_name_service_answers_cname_and_gateways_need_their_api() {
        let mut o = Objects::default();
        let mut ext = match svc(ServiceType::ExternalName, &[], &[]) {
            Facts::Service(f) => f,
            _ => unreachable!(),
        };
        ext.external_name = Some("db.example.org".into());
        put(&mut o, ObjectKind::Service, "ext", Some(Facts::Service(ext)));
        let s = source(ObjectKind::Service, "ext", None, false);
        assert_eq!(answer(&o, &s, RecordType::Cname).0, ["db.example.org."]);
        assert_eq!(answer(&o, &s, RecordType::A).2, NO_ADDRESSES);
        let addresses: Box<[LoadBalancerAddress]> =
            Box::new([LoadBalancerAddress::Ip("198.51.100.9".parse().unwrap())]);
        put(&mut o, ObjectKind::Gateway, "gw", Some(Facts::Gateway(addresses)));
        let g = source(ObjectKind::Gateway, "gw", None, false);
        let missing_api = o.resolve(&ObjectRef::new("ns", "r"), &g, RecordType::A, 30);
        assert!(missing_api.message.contains("not installed"), "{}", missing_api.message);
        o.gateway_api = true;
        assert_eq!(answer(&o, &g, RecordType::A), (vec!["198.51.100.9".into()], true, ""));
    }
}
