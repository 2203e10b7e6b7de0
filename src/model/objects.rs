//! What the cluster's Services, EndpointSlices, Ingresses and Gateways say, kept only
//! as far as records and checks read it (addresses and ready endpoints), and how a
//! record's `valuesFrom` and an `Endpoints` check read it. Pure: the cluster source
//! turns watched objects into [`Facts`]; one object's change reaches only the records
//! and checks that name it (spec section 7).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::RData;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use smallvec::SmallVec;

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

#[derive(Clone, Debug, PartialEq, Eq)]
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

/// The facts of every watched object of these kinds, and the slices of each Service.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    services: FxHashMap<ObjectRef, ServiceFacts>,
    slices: FxHashMap<ObjectRef, SliceFacts>,
    /// Slice names per Service (same namespace).
    slices_of: FxHashMap<ObjectRef, SmallVec<[Arc<str>; 1]>>,
    ingresses: FxHashMap<ObjectRef, Box<[LoadBalancerAddress]>>,
    gateways: FxHashMap<ObjectRef, Box<[LoadBalancerAddress]>>,
    /// Whether the Gateway API's Gateway kind is served by the API server.
    pub gateway_api: bool,
    /// Every namespace seen, shared by the keys (not one copy per object).
    namespaces: FxHashSet<Arc<str>>,
}

impl Objects {
    /// Stores one object's facts; returns the object whose readers must look again
    /// (a slice's Service), or None when nothing changed.
    pub fn put(&mut self, change: ObjectChange) -> Option<(ObjectKind, ObjectRef)> {
        let ObjectChange { kind, id, facts } = change;
        let id = self.interned(id);
        let changed = match (kind, facts) {
            (ObjectKind::EndpointSlice, facts) => return self.put_slice(id, facts),
            (ObjectKind::Service, Some(Facts::Service(f))) => {
                replace(&mut self.services, &id, Some(f))
            }
            (ObjectKind::Service, _) => replace(&mut self.services, &id, None),
            (ObjectKind::Ingress, Some(Facts::Ingress(a))) => {
                replace(&mut self.ingresses, &id, Some(a))
            }
            (ObjectKind::Ingress, _) => replace(&mut self.ingresses, &id, None),
            (ObjectKind::Gateway, Some(Facts::Gateway(a))) => {
                replace(&mut self.gateways, &id, Some(a))
            }
            (ObjectKind::Gateway, _) => replace(&mut self.gateways, &id, None),
        };
        changed.then_some((kind, id))
    }

    fn interned(&mut self, id: ObjectRef) -> ObjectRef {
        let namespace = match self.namespaces.get(&id.namespace) {
            Some(shared) => shared.clone(),
            None => {
                self.namespaces.insert(id.namespace.clone());
                id.namespace
            }
        };
        ObjectRef { namespace, name: id.name }
    }

    /// A slice's readers are its Service's, before and after (its label may move).
    fn put_slice(
        &mut self,
        id: ObjectRef,
        facts: Option<Facts>,
    ) -> Option<(ObjectKind, ObjectRef)> {
        let new = match facts {
            Some(Facts::EndpointSlice(f)) => Some(f),
            _ => None,
        };
        let old = match &new {
            Some(f) => self.slices.insert(id.clone(), f.clone()),
            None => self.slices.remove(&id),
        };
        if old == new {
            return None;
        }
        let mut touched = None;
        if let Some(old) = &old {
            let service = id.sibling(&*old.service);
            if let Some(names) = self.slices_of.get_mut(&service) {
                names.retain(|n| **n != *id.name);
                if names.is_empty() {
                    self.slices_of.remove(&service);
                }
            }
            touched = Some(service);
        }
        if let Some(new) = &new {
            // The key shares the slice's own copy of the Service's name.
            let service = ObjectRef { namespace: id.namespace.clone(), name: new.service.clone() };
            self.slices_of.entry(service.clone()).or_default().push(id.name.clone());
            // A slice moving from one Service to another touches both; it does not happen
            // (the label is set by the EndpointSlice controller), so the new one wins.
            touched = Some(service);
        }
        touched.map(|s| (ObjectKind::Service, s))
    }

    /// The objects of `kind` in `namespace` (None: every one) not in `seen`: what a
    /// re-listing no longer showed.
    pub fn missing(
        &self,
        kind: ObjectKind,
        namespace: Option<&str>,
        seen: &FxHashSet<ObjectRef>,
    ) -> Vec<ObjectRef> {
        let keep = |id: &&ObjectRef| {
            namespace.is_none_or(|ns| *id.namespace == *ns) && !seen.contains(*id)
        };
        match kind {
            ObjectKind::Service => self.services.keys().filter(keep).cloned().collect(),
            ObjectKind::EndpointSlice => self.slices.keys().filter(keep).cloned().collect(),
            ObjectKind::Ingress => self.ingresses.keys().filter(keep).cloned().collect(),
            ObjectKind::Gateway => self.gateways.keys().filter(keep).cloned().collect(),
        }
    }

    pub fn service(&self, id: &ObjectRef) -> Option<&ServiceFacts> {
        self.services.get(id)
    }

    /// The slices of a Service.
    pub fn slices(&self, service: &ObjectRef) -> impl Iterator<Item = &SliceFacts> {
        let names = self.slices_of.get(service).map(|n| &n[..]).unwrap_or_default();
        names.iter().filter_map(|n| self.slices.get(&service.sibling(&**n)))
    }

    /// Ready endpoints of a Service, over its slices; none while the Service does not
    /// exist (its slices outlive it until they are collected).
    pub fn ready_endpoints(&self, service: &ObjectRef) -> u32 {
        if !self.services.contains_key(service) {
            return 0;
        }
        self.slices(service).map(|s| s.ready_endpoints).sum()
    }

    /// The ready endpoints of a Service to probe, each with its port (by name or
    /// number; left out, the slice's only port), in address order; none while the
    /// Service does not exist. Err names a port no slice can resolve.
    pub fn endpoint_targets(
        &self,
        service: &ObjectRef,
        port: Option<&PortRef>,
    ) -> Result<Vec<(IpAddr, u16)>, String> {
        if !self.services.contains_key(service) {
            return Ok(Vec::new());
        }
        let mut targets = Vec::new();
        for slice in self.slices(service).filter(|s| !s.ready_addresses.is_empty()) {
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
        [
            (ObjectKind::Service, self.services.len()),
            (ObjectKind::EndpointSlice, self.slices.len()),
            (ObjectKind::Ingress, self.ingresses.len()),
            (ObjectKind::Gateway, self.gateways.len()),
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
        let (data, mut message) = match source.kind {
            ObjectKind::Service => self.service_values(&id, source.address, rtype),
            ObjectKind::Ingress => match self.ingresses.get(&id) {
                Some(addresses) => load_balancer_values(addresses, rtype, "Ingress", &id),
                None => (Vec::new(), format!("Ingress {} not found", id.name)),
            },
            ObjectKind::Gateway if !self.gateway_api => (
                Vec::new(),
                "the Gateway API (gateways.gateway.networking.k8s.io) is not installed".into(),
            ),
            ObjectKind::Gateway => match self.gateways.get(&id) {
                Some(addresses) => load_balancer_values(addresses, rtype, "Gateway", &id),
                None => (Vec::new(), format!("Gateway {} not found", id.name)),
            },
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
        let Some(service) = self.services.get(id) else {
            return (Vec::new(), format!("Service {} not found", id.name));
        };
        if rtype == RecordType::Cname
            && let Some(name) = &service.external_name
        {
            return match cname(name) {
                Some(d) => (vec![d], format!("ExternalName Service {}", id.name)),
                None => (
                    Vec::new(),
                    format!("Service {}: externalName {name:?} is not a DNS name", id.name),
                ),
            };
        }
        let address = address.unwrap_or(if service.service_type == ServiceType::LoadBalancer {
            ServiceAddress::LoadBalancer
        } else {
            ServiceAddress::ClusterIP
        });
        match address {
            ServiceAddress::LoadBalancer => {
                load_balancer_values(&service.load_balancer, rtype, "Service", id)
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
                let all = self.slices(id).flat_map(|s| s.ready_addresses.iter().copied());
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

/// Puts (Some) or removes one object's facts; whether they changed.
fn replace<V: PartialEq>(
    map: &mut FxHashMap<ObjectRef, V>,
    id: &ObjectRef,
    new: Option<V>,
) -> bool {
    match new {
        Some(new) if map.get(id) == Some(&new) => false,
        Some(new) => {
            map.insert(id.clone(), new);
            true
        }
        None => map.remove(id).is_some(),
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
