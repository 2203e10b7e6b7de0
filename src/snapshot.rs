//! The immutable snapshot the DNS handlers read: every name of every zone with the
//! engine's plan per type, indexed by the lowercase wire-format name so a query is
//! answered with one hash lookup (in the shard of that name). A change publishes a
//! new snapshot that copies only the shards of the names it touched and shares the
//! rest; it is swapped in atomically, so queries never wait for an update.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData};
use rand::Rng;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::engine::{Engine, Outcome, Plan, Rr};
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

/// One name that exists in a zone: with records, a zone apex, or an empty
/// non-terminal (a name with records below it).
#[derive(Clone, Debug)]
pub struct Node {
    pub wire: Box<[u8]>,
    pub cname: Option<Outcome>,
    pub types: SmallVec<[(u16, Outcome); 1]>,
    /// For types whose plan is fixed: the whole answer section, pre-encoded with the
    /// owner as a pointer to the question (offset 12), and its record count.
    pub fixed: SmallVec<[FixedAnswer; 1]>,
}

#[derive(Clone, Debug)]
pub struct FixedAnswer {
    pub code: u16,
    pub count: u16,
    pub policy: RoutingPolicy,
    pub wire: Box<[u8]>,
}

impl Node {
    pub fn new(wire: Box<[u8]>) -> Self {
        Self { wire, cname: None, types: SmallVec::new(), fixed: SmallVec::new() }
    }

    /// The owner name, for the paths that need hickory's type.
    pub fn name(&self) -> Name {
        name_of_wire(&self.wire)
    }

    /// No records of any type (an apex or an empty non-terminal).
    pub fn is_empty(&self) -> bool {
        self.cname.is_none() && self.types.is_empty()
    }

    pub fn outcome(&self, rtype: RecordType) -> Option<&Outcome> {
        if rtype == RecordType::Cname {
            return self.cname.as_ref();
        }
        let code = type_code(rtype);
        self.types.iter().find(|(c, _)| *c == code).map(|(_, o)| o)
    }

    /// Replaces (or removes) the outcome of one type.
    pub fn set_outcome(&mut self, rtype: RecordType, outcome: Option<Outcome>) {
        if rtype == RecordType::Cname {
            self.cname = outcome;
            return;
        }
        let code = type_code(rtype);
        self.types.retain(|(c, _)| *c != code);
        self.fixed.retain(|f| f.code != code);
        let Some(outcome) = outcome else { return };
        if let Plan::Fixed(rrs) = &*outcome.plan {
            let mut wire = Vec::with_capacity(rrs.iter().map(|rr| 12 + rr.wire.len()).sum());
            for rr in rrs.iter() {
                wire.extend_from_slice(&[0xC0, 12]);
                encode_rr_body(&mut wire, code, rr.ttl, &rr.wire);
            }
            self.fixed.push(FixedAnswer { code, count: rrs.len() as u16, policy: outcome.policy, wire: wire.into() });
        }
        self.types.push((code, outcome));
    }

    fn plan(&self, code: u16) -> Option<(&Plan, RoutingPolicy)> {
        let found = self.types.iter().find(|(c, _)| *c == code).map(|(_, o)| (&*o.plan, o.policy));
        found.or_else(|| self.cname.as_ref().filter(|_| code == qtype::CNAME).map(|o| (&*o.plan, o.policy)))
    }
}

type Shard = hashbrown::HashTable<Arc<Node>>;

/// Names are spread over this many shards (by hash); a change copies only the shards
/// of the names it touched, and the published snapshot shares all the others.
const SHARD_BITS: u32 = 12;

/// One hash per lookup serves both the shard and the slot within it.
#[inline]
fn hash_of(wire: &[u8]) -> u64 {
    FxBuildHasher.hash_one(wire)
}

/// Bits 40–51 pick the shard: the table inside uses the low bits for the slot and
/// the top seven as tags, which must still differ between a shard's names.
#[inline]
fn shard_of(hash: u64) -> usize {
    ((hash >> 40) & ((1 << SHARD_BITS) - 1)) as usize
}

pub struct Snapshot {
    pub serial: u32,
    pub zones: Arc<[Zone]>,
    shards: Arc<[Arc<Shard>]>,
    names: usize,
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
        let shards: Vec<Arc<Shard>> = (0..1usize << SHARD_BITS).map(|_| Arc::new(Shard::default())).collect();
        let empty = Snapshot { serial, zones: zones.clone(), shards: shards.into(), names: 0, ready: true };
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
            let zone = empty.zones.iter().find(|z| name.is_within(&z.name)).expect("validated names lie in a zone");
            for ancestor in name.ancestors_below(&zone.name) {
                let wire = wire_name(&ancestor);
                nodes.entry(wire.clone()).or_insert_with(|| Some(Node::new(wire)));
            }
            let wire = wire_name(name);
            let node = nodes.entry(wire.clone()).or_insert_with(|| Some(Node::new(wire))).as_mut().expect("never None");
            node.set_outcome(*rtype, Some(d.outcome()));
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
        let mut shards: Vec<Arc<Shard>> = self.shards.to_vec();
        let mut names = self.names;
        let edits: Vec<(Box<[u8]>, Option<Node>)> = edits.into_iter().collect();
        if edits.len() > shards.len() {
            // A large batch (a first listing) grows each shard once, not by doublings
            // that hash every name again.
            let mut added = vec![0usize; shards.len()];
            for (wire, node) in &edits {
                if node.is_some() {
                    added[shard_of(hash_of(wire))] += 1;
                }
            }
            for (shard, added) in shards.iter_mut().zip(added) {
                if added > 0 {
                    Arc::make_mut(shard).reserve(added, |n| hash_of(&n.wire));
                }
            }
        }
        for (wire, node) in edits {
            let hash = hash_of(&wire);
            let shard = Arc::make_mut(&mut shards[shard_of(hash)]);
            if let Ok(old) = shard.find_entry(hash, |n| n.wire == wire) {
                old.remove();
                names -= 1;
            }
            if let Some(node) = node {
                debug_assert_eq!(node.wire, wire);
                shard.insert_unique(hash, Arc::new(node), |n| hash_of(&n.wire));
                names += 1;
            }
        }
        Snapshot { serial, zones, shards: shards.into(), names, ready: self.ready }
    }

    /// The same data, served or held back (shares everything).
    pub fn with_ready(&self, ready: bool) -> Self {
        Snapshot { serial: self.serial, zones: self.zones.clone(), shards: self.shards.clone(), names: self.names, ready }
    }

    /// The zone that encloses a lowercase wire-format name.
    pub fn zone_of(&self, wire: &[u8]) -> Option<usize> {
        self.zones.iter().position(|z| wire_within(wire, &z.wire))
    }

    #[inline]
    pub fn node(&self, wire: &[u8]) -> Option<&Node> {
        let hash = hash_of(wire);
        self.shards[shard_of(hash)].find(hash, |n| *n.wire == *wire).map(|n| &**n)
    }

    pub fn name_count(&self) -> usize {
        self.names
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
        self.shards.iter().flat_map(|s| s.iter().map(|n| &**n))
    }

    /// The pre-encoded answer when `qname` has a fixed plan for `qtype` (the common
    /// case of a name served as it is), so the fast path skips [`Snapshot::resolve`].
    #[inline]
    pub fn fixed_answer(&self, qname: &[u8], qtype: u16) -> Option<&FixedAnswer> {
        self.node(qname)?.fixed.iter().find(|f| f.code == qtype)
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
            let Some(node) = self.node(name) else {
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
                let target_wire: SmallVec<[u8; 64]> = target.wire.iter().map(u8::to_ascii_lowercase).collect();
                // A chain leaving the served zones ends here; the resolver follows it.
                let Some(next_zone) = self.zone_of(&target_wire) else { return answer };
                zone = &self.zones[next_zone];
                let Some(next) = self.node(&target_wire) else {
                    answer.rcode = Rcode::NxDomain;
                    answer.soa = Some(zone);
                    return answer;
                };
                owner = Owner::Node(next);
                name = &next.wire;
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
    let text = name.as_str();
    // An Fqdn is lowercase and absolute; without escapes its labels are split by dots.
    let mut out = Vec::with_capacity(text.len() + 1);
    for label in text.split('.').filter(|l| !l.is_empty()) {
        if label.contains('\\') {
            return wire_name_of(&name.to_name());
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.into_boxed_slice()
}

/// The name of a lowercase wire-format name.
pub fn name_of_wire(wire: &[u8]) -> Name {
    let mut labels = Vec::new();
    let mut at = 0;
    while at < wire.len() && wire[at] != 0 {
        let len = wire[at] as usize;
        labels.push(&wire[at + 1..at + 1 + len]);
        at += 1 + len;
    }
    Name::from_labels(labels).expect("wire names come from valid names")
}

pub fn wire_name_of(name: &Name) -> Box<[u8]> {
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

