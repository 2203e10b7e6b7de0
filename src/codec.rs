//! The DNS codec, the bottom layer: type and class codes, response codes, names in
//! wire format and record encoding. The snapshot, the UDP and TCP paths and the admin
//! endpoint all speak through it; it depends on nothing but the model's names.

use hickory_proto::rr::Name;

use crate::model::{Fqdn, RecordType};

/// DNS type codes the server answers for.
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

/// A query type by its name (`A`, `aaaa`, `ANY`, …), for the admin endpoint.
pub fn qtype_by_name(name: &str) -> Option<u16> {
    let code = match name.to_ascii_uppercase().as_str() {
        "NS" => qtype::NS,
        "SOA" => qtype::SOA,
        "ANY" => qtype::ANY,
        other => type_code(RecordType::from_name(other)?),
    };
    Some(code)
}

/// Response codes as they go on the wire.
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    /// Extended (needs EDNS): upper 8 bits go into the OPT record.
    pub const BADVERS: u16 = 16;
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
