//! The immutable snapshot the DNS handlers read: every name of every zone with the
//! engine's plan per type, indexed by the lowercase wire-format name so a query is
//! answered with one hash lookup. A new snapshot is built on every change and
//! swapped in atomically; queries never wait for a rebuild.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData};
use rand::Rng;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::engine::{Decision, Engine, Plan, Rr};
use crate::health::Verdicts;
use crate::model::{Fqdn, Model};
use crate::resources::{RecordType, RoutingPolicy};

/// DNS type codes the snapshot answers for.
pub mod qtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const ANY: u16 = 255;
}

pub fn type_code(rtype: RecordType) -> u16 {
    match rtype {
        RecordType::A => qtype::A,
        RecordType::Aaaa => qtype::AAAA,
        RecordType::Cname => qtype::CNAME,
        RecordType::Txt => qtype::TXT,
        RecordType::Mx => qtype::MX,
        RecordType::Srv => qtype::SRV,
    }
}

pub fn record_type(code: u16) -> Option<RecordType> {
    Some(match code {
        qtype::A => RecordType::A,
        qtype::AAAA => RecordType::Aaaa,
        qtype::CNAME => RecordType::Cname,
        qtype::TXT => RecordType::Txt,
        qtype::MX => RecordType::Mx,
        qtype::SRV => RecordType::Srv,
        _ => return None,
    })
}

/// How the zones are presented: SOA and NS data that is synthesized at each apex.
#[derive(Clone, Debug)]
pub struct ZoneSettings {
    pub zones: Vec<Fqdn>,
    /// Name servers announced at every apex; empty means `ns1.<zone>`.
    pub nameservers: Vec<Fqdn>,
    /// SOA TTL and negative-caching TTL (SOA minimum).
    pub soa_ttl: u32,
    pub negative_ttl: u32,
}

pub struct Zone {
    pub name: Fqdn,
    pub wire: Box<[u8]>,
    pub soa: Rr,
    pub ns: Box<[Rr]>,
    /// TTL of the SOA in negative answers: min(SOA TTL, minimum).
    pub negative_ttl: u32,
}

/// One name that exists in a zone (possibly an empty non-terminal).
pub struct Node {
    pub zone: usize,
    pub name: Name,
    pub wire: Box<[u8]>,
    pub cname: Option<(Arc<Plan>, RoutingPolicy)>,
    pub types: Vec<(u16, Arc<Plan>, RoutingPolicy)>,
    /// For types whose plan is fixed: the whole answer section, pre-encoded with the
    /// owner as a pointer to the question (offset 12), and its record count.
    pub fixed: Vec<FixedAnswer>,
}

pub struct FixedAnswer {
    pub code: u16,
    pub count: u16,
    pub policy: RoutingPolicy,
    pub wire: Box<[u8]>,
}

impl Node {
    fn new(zone: usize, name: &Fqdn, wire: Box<[u8]>) -> Self {
        Self { zone, name: name.to_name(), wire, cname: None, types: Vec::new(), fixed: Vec::new() }
    }

    fn plan(&self, code: u16) -> Option<(&Plan, RoutingPolicy)> {
        let found = self.types.iter().find(|(c, ..)| *c == code).map(|(_, p, r)| (&**p, *r));
        found.or_else(|| self.cname.as_ref().filter(|_| code == qtype::CNAME).map(|(p, r)| (&**p, *r)))
    }
}

pub struct Snapshot {
    pub serial: u32,
    pub zones: Vec<Zone>,
    nodes: HashMap<Box<[u8]>, Node, FxBuildHasher>,
    /// Every decision, for `/status` and `/explain`.
    pub decisions: HashMap<(Fqdn, RecordType), Arc<Decision>>,
    pub model: Arc<Model>,
    pub verdicts: Verdicts,
}

/// Where a record of an answer is owned.
#[derive(Clone, Copy)]
pub enum Owner<'s> {
    /// The name in the question (also for alias answers).
    Query,
    /// A name further down a CNAME chain.
    Node(&'s Node),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    NxDomain,
    Refused,
}

pub struct Answer<'s> {
    pub rcode: Rcode,
    pub records: SmallVec<[(Owner<'s>, u16, &'s Rr); 8]>,
    /// The zone whose SOA goes into the authority section of a negative answer.
    pub soa: Option<&'s Zone>,
    /// Routing policy of the first record set that answered (None for synthesized data).
    pub policy: Option<RoutingPolicy>,
}

/// The longest CNAME chain followed inside the zones.
const MAX_CHAIN: usize = 8;

impl Snapshot {
    pub fn build(settings: &ZoneSettings, model: Arc<Model>, verdicts: Verdicts, serial: u32) -> Self {
        let decisions = Engine::new(&model, &verdicts).decide_all();
        let mut zones: Vec<Zone> = model
            .zones
            .iter()
            .map(|z| zone(z, settings, serial))
            .collect();
        zones.sort_by_key(|z| std::cmp::Reverse(z.wire.len()));
        let mut nodes: HashMap<Box<[u8]>, Node, FxBuildHasher> = HashMap::default();
        let mut names: Vec<NameDecision<'_>> =
            model.zones.iter().map(|z| (z, None)).collect();
        names.extend(decisions.iter().map(|((name, rtype), d)| (name, Some((rtype, d)))));
        for (name, decision) in names {
            let zone = zones.iter().position(|z| name.is_within(&z.name)).expect("validated names lie in a zone");
            for ancestor in name.ancestors_below(&zones[zone].name) {
                let wire = wire_name(&ancestor);
                nodes.entry(wire.clone()).or_insert_with(|| Node::new(zone, &ancestor, wire));
            }
            let wire = wire_name(name);
            let node = nodes.entry(wire.clone()).or_insert_with(|| Node::new(zone, name, wire));
            match decision {
                Some((RecordType::Cname, d)) => node.cname = Some((d.plan.clone(), d.policy)),
                Some((rtype, d)) => {
                    let code = type_code(*rtype);
                    if let Plan::Fixed(rrs) = &*d.plan {
                        let mut wire = Vec::new();
                        for rr in rrs.iter() {
                            wire.extend_from_slice(&[0xC0, 12]);
                            encode_rr_body(&mut wire, code, rr.ttl, &rr.wire);
                        }
                        let fixed = FixedAnswer { code, count: rrs.len() as u16, policy: d.policy, wire: wire.into() };
                        node.fixed.push(fixed);
                    }
                    node.types.push((code, d.plan.clone(), d.policy));
                }
                None => {}
            }
        }
        Snapshot { serial, zones, nodes, decisions, model, verdicts }
    }

    /// The zone that encloses a lowercase wire-format name.
    pub fn zone_of(&self, wire: &[u8]) -> Option<usize> {
        self.zones.iter().position(|z| wire_within(wire, &z.wire))
    }

    pub fn node(&self, wire: &[u8]) -> Option<&Node> {
        self.nodes.get(wire)
    }

    pub fn name_count(&self) -> usize {
        self.nodes.len()
    }

    /// The pre-encoded answer when `qname` has a fixed plan for `qtype` (the common
    /// case of a name served as it is), so the fast path skips [`Snapshot::resolve`].
    #[inline]
    pub fn fixed_answer(&self, qname: &[u8], qtype: u16) -> Option<&FixedAnswer> {
        self.nodes.get(qname)?.fixed.iter().find(|f| f.code == qtype)
    }

    /// Answers one question. `qname` must be lowercase wire format.
    pub fn resolve<R: Rng + ?Sized>(&self, qname: &[u8], qtype: u16, rng: &mut R) -> Answer<'_> {
        let mut answer = Answer { rcode: Rcode::NoError, records: SmallVec::new(), soa: None, policy: None };
        let Some(zone_index) = self.zone_of(qname) else {
            answer.rcode = Rcode::Refused;
            return answer;
        };
        let mut owner = Owner::Query;
        let mut zone = &self.zones[zone_index];
        let mut name = qname;
        for _ in 0..MAX_CHAIN {
            let Some(node) = self.nodes.get(name) else {
                answer.rcode = Rcode::NxDomain;
                answer.soa = Some(zone);
                return answer;
            };
            let apex = node.wire.len() == zone.wire.len();
            let before = answer.records.len();
            if apex && (qtype == qtype::SOA || qtype == qtype::ANY) {
                answer.records.push((owner, qtype::SOA, &zone.soa));
            }
            if apex && (qtype == qtype::NS || qtype == qtype::ANY) {
                answer.records.extend(zone.ns.iter().map(|r| (owner, qtype::NS, r)));
            }
            let mut picked: SmallVec<[&Rr; 8]> = SmallVec::new();
            if qtype == qtype::ANY {
                let cname = node.cname.iter().map(|(p, _)| (qtype::CNAME, p));
                for (code, plan) in cname.chain(node.types.iter().map(|(c, p, _)| (*c, p))) {
                    picked.clear();
                    plan.sample(rng, &mut picked);
                    answer.records.extend(picked.iter().map(|r| (owner, code, *r)));
                }
            } else if let Some((plan, policy)) = node.plan(qtype) {
                answer.policy.get_or_insert(policy);
                plan.sample(rng, &mut picked);
                answer.records.extend(picked.iter().map(|r| (owner, qtype, *r)));
            } else if let Some((cname, policy)) = &node.cname {
                answer.policy.get_or_insert(*policy);
                cname.sample(rng, &mut picked);
                let Some(&target) = picked.first() else { return answer };
                answer.records.push((owner, qtype::CNAME, target));
                let RData::CNAME(target_name) = &target.rdata else { return answer };
                let target_wire = wire_name_of(&target_name.0);
                // A chain leaving the served zones ends here; the resolver follows it.
                let Some(next_zone) = self.zone_of(&target_wire) else { return answer };
                zone = &self.zones[next_zone];
                let Some((key, next)) = self.nodes.get_key_value(&target_wire[..]) else {
                    answer.rcode = Rcode::NxDomain;
                    answer.soa = Some(zone);
                    return answer;
                };
                owner = Owner::Node(next);
                name = key;
                continue;
            }
            if answer.records.len() == before {
                answer.soa = Some(zone);
            }
            return answer;
        }
        answer
    }
}

fn zone(name: &Fqdn, settings: &ZoneSettings, serial: u32) -> Zone {
    let apex = name.to_name();
    let label = |prefix: &str| Name::from_ascii(format!("{prefix}.{}", name.as_str())).unwrap_or_else(|_| apex.clone());
    let nameservers: Vec<Name> = if settings.nameservers.is_empty() {
        vec![label("ns1")]
    } else {
        settings.nameservers.iter().map(Fqdn::to_name).collect()
    };
    let soa = SOA::new(
        nameservers[0].clone(),
        label("hostmaster"),
        serial,
        3600,
        600,
        1_209_600,
        settings.negative_ttl,
    );
    Zone {
        name: name.clone(),
        wire: wire_name(name),
        soa: Rr::new(settings.soa_ttl, RData::SOA(soa)),
        ns: nameservers.into_iter().map(|n| Rr::new(settings.soa_ttl, RData::NS(NS(n)))).collect(),
        negative_ttl: settings.negative_ttl.min(settings.soa_ttl),
    }
}

/// A served name with its decision for one type (none for a bare zone apex).
type NameDecision<'a> = (&'a Fqdn, Option<(&'a RecordType, &'a Arc<Decision>)>);

pub const CLASS_IN: u16 = 1;

/// TYPE, CLASS IN, TTL, RDLENGTH and RDATA of one record (the owner is written first).
pub fn encode_rr_body(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// Lowercase wire format of a name.
pub fn wire_name(name: &Fqdn) -> Box<[u8]> {
    wire_name_of(&name.to_name())
}

fn wire_name_of(name: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.into_boxed_slice()
}

/// True when the wire name `name` equals `zone` or lies below it (both lowercase).
pub fn wire_within(name: &[u8], zone: &[u8]) -> bool {
    if zone.len() > name.len() {
        return false;
    }
    if zone.len() == 1 {
        return true;
    }
    // Walk label boundaries of `name` until the remaining suffix is as long as the zone.
    let mut at = 0;
    while at < name.len() && name.len() - at > zone.len() {
        at += 1 + name[at] as usize;
    }
    at <= name.len() && name.len() - at == zone.len() && &name[at..] == zone
}

