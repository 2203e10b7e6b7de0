//! The immutable snapshot the DNS handlers read: every name of every zone with the
//! engine's plan per type, indexed by the lowercase wire-format name so a query is
//! answered with one hash lookup (in the shard of that name, `crate::names`). A change publishes a
//! new snapshot that copies only the shards of the names it touched and shares the
//! rest; it is swapped in atomically, so queries never wait for an update.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData};
use rand::Rng;
use smallvec::SmallVec;

use crate::codec::{encode_rr_body, name_of_wire};
pub use crate::codec::{qtype, record_type, type_code, wire_name, wire_name_of, wire_within};
use crate::engine::{Engine, Plan, Routing, Rr};
use crate::health::Verdicts;
use crate::model::{Fqdn, Model};
use crate::model::{RecordType, RoutingPolicy};
use crate::names::{NameTable, Named};

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

/// One name that exists in a zone: with records, a zone apex, or an empty
/// non-terminal (a name with records below it). What the UDP fast path reads (the
/// owner name and the answer sections of the fixed types) lies inside the node for
/// most names, so a query reads one allocation after the name table's slot.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Node {
    /// The owner name in lowercase wire format, then for each type whose plan is
    /// fixed its whole answer section, pre-encoded with the owner as a pointer to the
    /// question (offset 12). Inline up to [`NODE_INLINE`] bytes: a 20-byte name with
    /// one AAAA record.
    bytes: SmallVec<[u8; NODE_INLINE]>,
    fixed: SmallVec<[FixedSpan; 1]>,
    name_len: u8,
    pub cname: Option<Routing>,
    pub types: SmallVec<[(u16, Routing); 1]>,
}

/// Bytes of name and answers kept inside a node; the node with its reference counts
/// then fills the allocator's 160-byte class (see the test of its size).
pub const NODE_INLINE: usize = 48;

/// Where a fixed type's answer section lies in a node's bytes.
#[derive(Clone, Copy, Debug)]
struct FixedSpan {
    code: u16,
    count: u16,
    policy: RoutingPolicy,
    start: u32,
    end: u32,
}

/// The pre-encoded answer section of one type and its record count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedAnswer<'n> {
    pub code: u16,
    pub count: u16,
    pub policy: RoutingPolicy,
    pub wire: &'n [u8],
}

impl Node {
    pub fn new(wire: Box<[u8]>) -> Self {
        let name_len = u8::try_from(wire.len()).expect("wire names are at most 255 bytes");
        Self {
            bytes: SmallVec::from_slice(&wire),
            fixed: SmallVec::new(),
            name_len,
            cname: None,
            types: SmallVec::new(),
        }
    }

    /// The owner name in lowercase wire format.
    #[inline]
    pub fn wire(&self) -> &[u8] {
        &self.bytes[..usize::from(self.name_len)]
    }

    /// The owner name, for the paths that need hickory's type.
    pub fn name(&self) -> Name {
        name_of_wire(self.wire())
    }

    /// No records of any type (an apex or an empty non-terminal).
    pub fn is_empty(&self) -> bool {
        self.cname.is_none() && self.types.is_empty()
    }

    pub fn routing(&self, rtype: RecordType) -> Option<&Routing> {
        if rtype == RecordType::Cname {
            return self.cname.as_ref();
        }
        let code = type_code(rtype);
        self.types.iter().find(|(c, _)| *c == code).map(|(_, o)| o)
    }

    /// The pre-encoded answer when the plan of `code` is fixed.
    #[inline]
    pub fn fixed(&self, code: u16) -> Option<FixedAnswer<'_>> {
        let span = self.fixed.iter().find(|f| f.code == code)?;
        Some(self.answer_of(span))
    }

    /// Every pre-encoded answer.
    pub fn fixed_answers(&self) -> impl Iterator<Item = FixedAnswer<'_>> {
        self.fixed.iter().map(|span| self.answer_of(span))
    }

    #[inline]
    fn answer_of(&self, span: &FixedSpan) -> FixedAnswer<'_> {
        let wire = &self.bytes[span.start as usize..span.end as usize];
        FixedAnswer { code: span.code, count: span.count, policy: span.policy, wire }
    }

    /// Replaces (or removes) the routing of one type.
    pub fn set_routing(&mut self, rtype: RecordType, routing: Option<Routing>) {
        if rtype == RecordType::Cname {
            self.cname = routing;
            return;
        }
        let code = type_code(rtype);
        let was_fixed = self.fixed.iter().any(|f| f.code == code);
        self.types.retain(|(c, _)| *c != code);
        let is_fixed = routing.as_ref().is_some_and(|o| matches!(*o.plan, Plan::Fixed(_)));
        if let Some(routing) = routing {
            self.types.push((code, routing));
        }
        if was_fixed || is_fixed {
            self.encode_fixed();
        }
    }

    /// Writes the name and every fixed type's answer section into one allocation.
    fn encode_fixed(&mut self) {
        let name_len = usize::from(self.name_len);
        let answers: usize = self.types.iter().map(|(_, o)| fixed_len(&o.plan)).sum();
        let mut bytes = Vec::with_capacity(name_len + answers);
        bytes.extend_from_slice(&self.bytes[..name_len]);
        self.fixed.clear();
        for (code, routing) in &self.types {
            // No records (FailClosed, an object without addresses) is NODATA, which
            // carries the zone's SOA: left to the full resolution.
            let Plan::Fixed(rrs) = &*routing.plan else { continue };
            if rrs.is_empty() {
                continue;
            }
            let start = bytes.len() as u32;
            for rr in rrs.iter() {
                bytes.extend_from_slice(&[0xC0, 12]);
                encode_rr_body(&mut bytes, *code, rr.ttl, &rr.wire);
            }
            let (count, end) = (rrs.len() as u16, bytes.len() as u32);
            self.fixed.push(FixedSpan { code: *code, count, policy: routing.policy, start, end });
        }
        self.bytes = SmallVec::from_slice(&bytes);
    }

    fn plan(&self, code: u16) -> Option<(&Plan, RoutingPolicy)> {
        let found = self.types.iter().find(|(c, _)| *c == code).map(|(_, o)| (&*o.plan, o.policy));
        found.or_else(|| {
            self.cname.as_ref().filter(|_| code == qtype::CNAME).map(|o| (&*o.plan, o.policy))
        })
    }
}

/// Bytes of a fixed plan's pre-encoded answer section (0 for other plans).
fn fixed_len(plan: &Plan) -> usize {
    match plan {
        Plan::Fixed(rrs) => rrs.iter().map(|rr| 12 + rr.wire.len()).sum(),
        _ => 0,
    }
}

impl Named for Node {
    const HOT_BYTES: usize = std::mem::offset_of!(Node, name_len) + 1;

    #[inline]
    fn name(&self) -> &[u8] {
        self.wire()
    }
}

pub struct Snapshot {
    pub serial: u32,
    pub zones: Arc<[Zone]>,
    names: NameTable<Node>,
    /// False while a source has not delivered its first complete configuration:
    /// every query then gets SERVFAIL rather than an answer from partial data.
    pub ready: bool,
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

/// Every zone's SOA and NS data for one serial, longest zone first.
pub fn zones(settings: &ZoneSettings, serial: u32) -> Arc<[Zone]> {
    let mut zones: Vec<Zone> = settings.zones.iter().map(|z| zone(z, settings, serial)).collect();
    zones.sort_by(|a, b| b.wire.len().cmp(&a.wire.len()).then_with(|| a.wire.cmp(&b.wire)));
    zones.dedup_by(|a, b| a.wire == b.wire);
    zones.into()
}

impl Snapshot {
    /// The zones' apexes and nothing else.
    pub fn empty(settings: &ZoneSettings, serial: u32) -> Self {
        let zones = zones(settings, serial);
        let empty =
            Snapshot { serial, zones: zones.clone(), names: NameTable::default(), ready: true };
        let apexes = zones.iter().map(|z| (z.wire.clone(), Some(Node::new(z.wire.clone()))));
        empty.update(serial, zones.clone(), apexes)
    }

    /// Decides every name + type of a model from scratch and builds the snapshot in
    /// one go: the oracle the incremental path (`crate::state`) is tested against.
    pub fn build(settings: &ZoneSettings, model: &Model, verdicts: &Verdicts, serial: u32) -> Self {
        let decisions = Engine::new(model, verdicts).decide_all();
        let empty = Self::empty(settings, serial);
        let mut nodes: HashMap<Box<[u8]>, Option<Node>> = HashMap::new();
        for ((name, rtype), d) in &decisions {
            let zone = empty
                .zones
                .iter()
                .find(|z| name.is_within(&z.name))
                .expect("validated names lie in a zone");
            for ancestor in name.ancestors_below(&zone.name) {
                let wire = wire_name(&ancestor);
                nodes.entry(wire.clone()).or_insert_with(|| Some(Node::new(wire)));
            }
            let wire = wire_name(name);
            let node = nodes
                .entry(wire.clone())
                .or_insert_with(|| Some(Node::new(wire)))
                .as_mut()
                .expect("never None");
            node.set_routing(*rtype, Some(d.routing()));
        }
        empty.update(serial, empty.zones.clone(), nodes)
    }

    /// A new snapshot with some nodes replaced (None removes one); everything else is
    /// shared with `self`.
    pub fn update(
        &self,
        serial: u32,
        zones: Arc<[Zone]>,
        edits: impl IntoIterator<Item = (Box<[u8]>, Option<Node>)>,
    ) -> Self {
        Snapshot { serial, zones, names: self.names.update(edits), ready: self.ready }
    }

    /// The same data, served or held back (shares everything).
    pub fn with_ready(&self, ready: bool) -> Self {
        Snapshot {
            serial: self.serial,
            zones: self.zones.clone(),
            names: self.names.clone(),
            ready,
        }
    }

    /// The zone that encloses a lowercase wire-format name.
    pub fn zone_of(&self, wire: &[u8]) -> Option<usize> {
        self.zones.iter().position(|z| wire_within(wire, &z.wire))
    }

    #[inline]
    pub fn node(&self, wire: &[u8]) -> Option<&Node> {
        self.names.get(wire)
    }

    /// Starts loading what answering `qname` reads first; the hash it returns goes
    /// to [`Snapshot::prefetch_node`] once every query of the batch had this call.
    #[inline]
    pub fn prefetch_slots(&self, qname: &[u8]) -> u64 {
        self.names.prefetch_slots(qname)
    }

    /// Starts loading the node a query will most likely read.
    #[inline]
    pub fn prefetch_node(&self, hash: u64) {
        self.names.prefetch_entry(hash);
    }

    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    pub fn is_apex(&self, wire: &[u8]) -> bool {
        self.zones.iter().any(|z| &*z.wire == wire)
    }

    /// How many name + types are served.
    pub fn decision_count(&self) -> usize {
        self.nodes().map(|n| n.types.len() + usize::from(n.cname.is_some())).sum()
    }

    /// Every name, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.names.iter()
    }

    /// The pre-encoded answer when `qname` has a fixed plan for `qtype` (the common
    /// case of a name served as it is), so the fast path skips [`Snapshot::resolve`].
    #[inline]
    pub fn fixed_answer(&self, qname: &[u8], qtype: u16) -> Option<FixedAnswer<'_>> {
        self.node(qname)?.fixed(qtype)
    }

    /// Answers one question. `qname` must be lowercase wire format.
    pub fn resolve<R: Rng + ?Sized>(&self, qname: &[u8], qtype: u16, rng: &mut R) -> Answer<'_> {
        let mut answer =
            Answer { rcode: Rcode::NoError, records: SmallVec::new(), soa: None, policy: None };
        let Some(zone_index) = self.zone_of(qname) else {
            answer.rcode = Rcode::Refused;
            return answer;
        };
        let mut owner = Owner::Query;
        let mut zone = &self.zones[zone_index];
        let mut name = qname;
        for _ in 0..MAX_CHAIN {
            let Some(node) = self.node(name) else {
                answer.rcode = Rcode::NxDomain;
                answer.soa = Some(zone);
                return answer;
            };
            let apex = node.wire().len() == zone.wire.len();
            let before = answer.records.len();
            if apex && (qtype == qtype::SOA || qtype == qtype::ANY) {
                answer.records.push((owner, qtype::SOA, &zone.soa));
            }
            if apex && (qtype == qtype::NS || qtype == qtype::ANY) {
                answer.records.extend(zone.ns.iter().map(|r| (owner, qtype::NS, r)));
            }
            let mut picked: SmallVec<[&Rr; 8]> = SmallVec::new();
            if qtype == qtype::ANY {
                let cname = node.cname.iter().map(|o| (qtype::CNAME, &o.plan));
                for (code, plan) in cname.chain(node.types.iter().map(|(c, o)| (*c, &o.plan))) {
                    picked.clear();
                    plan.sample(rng, &mut picked);
                    answer.records.extend(picked.iter().map(|r| (owner, code, *r)));
                }
            } else if let Some((plan, policy)) = node.plan(qtype) {
                answer.policy.get_or_insert(policy);
                plan.sample(rng, &mut picked);
                answer.records.extend(picked.iter().map(|r| (owner, qtype, *r)));
            } else if let Some(cname) = &node.cname {
                answer.policy.get_or_insert(cname.policy);
                cname.plan.sample(rng, &mut picked);
                let Some(&target) = picked.first() else { return answer };
                answer.records.push((owner, qtype::CNAME, target));
                if target.rtype != qtype::CNAME {
                    return answer;
                }
                // The data of a CNAME is the target name in uncompressed wire format
                // (label lengths stay below the letters, so lowercasing keeps them).
                let target_wire: SmallVec<[u8; 64]> =
                    target.wire.iter().map(u8::to_ascii_lowercase).collect();
                // A chain leaving the served zones ends here; the resolver follows it.
                let Some(next_zone) = self.zone_of(&target_wire) else { return answer };
                zone = &self.zones[next_zone];
                let Some(next) = self.node(&target_wire) else {
                    answer.rcode = Rcode::NxDomain;
                    answer.soa = Some(zone);
                    return answer;
                };
                owner = Owner::Node(next);
                name = next.wire();
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
    let label = |prefix: &str| {
        Name::from_ascii(format!("{prefix}.{}", name.as_str())).unwrap_or_else(|_| apex.clone())
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name is an `Arc<Node>` (two counters and the node): the 160-byte class
    /// holds both with the name and its answer inline.
    #[test]
    fn a_shared_node_fits_a_160_byte_allocation() {
        assert!(std::mem::size_of::<Node>() + 16 <= 160, "{} bytes", std::mem::size_of::<Node>());
    }
}
