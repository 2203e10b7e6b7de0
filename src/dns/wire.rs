//! The UDP fast path: parses a query and writes the response straight from the
//! snapshot's pre-encoded records, with no allocation beyond the output buffer.
//! It handles every UDP query (errors included), so no datagram needs a second parse.

use rand::Rng;

pub use crate::codec::rcode;
use crate::codec::{CLASS_IN, encode_rr_body, qtype};
use crate::metrics::Responded;
use crate::model::RoutingPolicy;
use crate::snapshot::{Answer, Owner, Rcode, Snapshot};

const HEADER: usize = 12;
const TYPE_OPT: u16 = 41;
/// The largest UDP payload this server sends, whatever the client offers.
pub const MAX_UDP_PAYLOAD: u16 = 4096;
/// Payload size announced in our OPT record.
pub const ADVERTISED_PAYLOAD: u16 = 1232;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

struct Question {
    /// End of the question section (offset just after QCLASS).
    end: usize,
    /// Length of the wire-format QNAME.
    name_len: usize,
    lower: [u8; 256],
    qtype: u16,
    qclass: u16,
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses the question at `HEADER`.
fn parse_question(req: &[u8]) -> Option<Question> {
    let mut lower = [0u8; 256];
    let name_len = lower_name(req, &mut lower)?;
    let at = HEADER + name_len;
    Some(Question {
        end: at + 4,
        name_len,
        lower,
        qtype: read_u16(req, at)?,
        qclass: read_u16(req, at + 2)?,
    })
}

/// The question name of a query, lowercased into `lower` (for prefetching a batch;
/// the answer parses it again).
#[inline]
pub fn question_name<'b>(req: &[u8], lower: &'b mut [u8; 256]) -> Option<&'b [u8]> {
    let name_len = lower_name(req, lower)?;
    Some(&lower[..name_len])
}

/// Copies the name at `HEADER` (uncompressed labels) lowercased into `lower`;
/// returns its length.
#[inline]
fn lower_name(req: &[u8], lower: &mut [u8; 256]) -> Option<usize> {
    let mut at = HEADER;
    loop {
        let len = *req.get(at)? as usize;
        if len & 0xC0 != 0 {
            return None; // no compression in a question we have not seen a name before
        }
        let name_len = at - HEADER;
        if name_len + 1 + len > 255 {
            return None;
        }
        lower[name_len] = len as u8;
        if len == 0 {
            return Some(name_len + 1);
        }
        let label = req.get(at + 1..at + 1 + len)?;
        for (i, b) in label.iter().enumerate() {
            lower[name_len + 1 + i] = b.to_ascii_lowercase();
        }
        at += 1 + len;
    }
}

/// Skips one resource record starting at `at` (names may be compressed); returns
/// (type, class, ttl, rdata range end) and the offset after it.
fn skip_rr(req: &[u8], mut at: usize) -> Option<(u16, u16, u32, usize, usize)> {
    loop {
        let len = *req.get(at)?;
        if len & 0xC0 == 0xC0 {
            at += 2;
            break;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        at += 1 + len as usize;
        if len == 0 {
            break;
        }
    }
    let rtype = read_u16(req, at)?;
    let class = read_u16(req, at + 2)?;
    let ttl = u32::from_be_bytes(req.get(at + 4..at + 8)?.try_into().ok()?);
    let rdlen = read_u16(req, at + 8)? as usize;
    let end = at + 10 + rdlen;
    if end > req.len() {
        return None;
    }
    Some((rtype, class, ttl, at + 10, end))
}

/// Finds the OPT record among the additional records; Err on malformed sections.
fn parse_edns(req: &[u8], mut at: usize, count: u16) -> Result<Option<Edns>, ()> {
    let mut edns = None;
    for _ in 0..count {
        let (rtype, class, ttl, _, end) = skip_rr(req, at).ok_or(())?;
        if rtype == TYPE_OPT {
            if edns.is_some() || req[at] != 0 {
                return Err(()); // RFC 6891: one OPT, owned by the root
            }
            edns = Some(Edns {
                payload: class,
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        }
        at = end;
    }
    if at != req.len() {
        return Err(());
    }
    Ok(edns)
}

/// Writes the response to `req` into `out` (cleared first); `udp` sizes and
/// truncates it for UDP, else for TCP. Returns None when no response must be sent
/// (a response, or too short to carry an ID).
pub fn respond<R: Rng + ?Sized>(
    snapshot: &Snapshot,
    req: &[u8],
    udp: bool,
    rng: &mut R,
    out: &mut Vec<u8>,
) -> Option<Responded> {
    out.clear();
    let header = QueryHeader::parse(req)?;
    if header.opcode != 0 {
        return Some(header.write_error(out, rcode::NOTIMP, None, None));
    }
    if header.qdcount != 1 || header.ancount != 0 || header.nscount != 0 {
        return Some(header.write_error(out, rcode::FORMERR, None, None));
    }
    let Some(q) = parse_question(req) else {
        return Some(header.write_error(out, rcode::FORMERR, None, None));
    };
    let question = &req[HEADER..q.end];
    let Ok(edns) = parse_edns(req, q.end, header.arcount) else {
        return Some(header.write_error(out, rcode::FORMERR, Some(question), None));
    };
    if let Some(code) = unsupported(&q, edns) {
        return Some(header.write_error(out, code, Some(question), edns));
    }
    if !snapshot.ready {
        return Some(header.write_error(out, rcode::SERVFAIL, Some(question), edns));
    }
    let query = Query { header, question, qname: &q.lower[..q.name_len], qtype: q.qtype, edns };
    Some(answer_query(snapshot, &query, udp, rng, out))
}

/// What a response repeats of the query's header.
#[derive(Clone, Copy)]
struct QueryHeader {
    id: [u8; 2],
    opcode: u8,
    /// Recursion desired, echoed in place.
    rd: u8,
    /// Checking disabled, echoed in place.
    cd: u8,
    qdcount: u16,
    ancount: u16,
    nscount: u16,
    arcount: u16,
}

impl QueryHeader {
    /// The header of a query; None for a response or a message too short for a header.
    #[inline]
    fn parse(req: &[u8]) -> Option<Self> {
        if req.len() < HEADER || req[2] & 0x80 != 0 {
            return None;
        }
        Some(Self {
            id: [req[0], req[1]],
            opcode: (req[2] >> 3) & 0x0F,
            rd: req[2] & 0x01,
            cd: req[3] & 0x10,
            qdcount: read_u16(req, 4)?,
            ancount: read_u16(req, 6)?,
            nscount: read_u16(req, 8)?,
            arcount: read_u16(req, 10)?,
        })
    }

    /// Writes the response's header with every section count zero.
    #[inline]
    fn write_response(&self, out: &mut Vec<u8>, aa: bool, rcode: u16) {
        out.extend_from_slice(&self.id);
        out.push(0x80 | (self.opcode << 3) | if aa { 0x04 } else { 0 } | self.rd);
        out.push(self.cd | (rcode & 0x0F) as u8);
        out.extend_from_slice(&[0; 8]);
    }

    /// Writes an error response: the header, the question when the query's could be
    /// read, the OPT record when the query had a usable one.
    #[inline]
    fn write_error(
        &self,
        out: &mut Vec<u8>,
        rcode: u16,
        question: Option<&[u8]>,
        edns: Option<Edns>,
    ) -> Responded {
        self.write_response(out, false, rcode);
        if let Some(question) = question {
            write_question(out, question);
        }
        if let Some(edns) = edns {
            write_opt(out, edns, rcode);
            out[11] = 1;
        }
        Responded { rcode, policy: None, truncated: false }
    }
}

/// The error code for a well-formed query this server does not answer.
#[inline]
fn unsupported(q: &Question, edns: Option<Edns>) -> Option<u16> {
    if edns.is_some_and(|e| e.version > 0) {
        return Some(rcode::BADVERS);
    }
    if q.qclass != CLASS_IN || matches!(q.qtype, TYPE_OPT | 251 | 252) {
        // Other classes, zone transfers and meta types are not served here.
        return Some(if q.qtype == TYPE_OPT { rcode::FORMERR } else { rcode::REFUSED });
    }
    None
}

/// A query that passed every check, as its answer needs it.
struct Query<'q> {
    header: QueryHeader,
    /// The question section, copied into the response as it came.
    question: &'q [u8],
    /// The question name, lowercased.
    qname: &'q [u8],
    qtype: u16,
    edns: Option<Edns>,
}

impl Query<'_> {
    /// The largest response: the client's EDNS payload size over UDP (512 bytes
    /// without EDNS), a TCP message's maximum otherwise.
    #[inline]
    fn size_limit(&self, udp: bool) -> usize {
        if !udp {
            u16::MAX as usize
        } else {
            self.edns.map_or(512, |e| e.payload.clamp(512, MAX_UDP_PAYLOAD) as usize)
        }
    }

    /// Offset just after the question section, in the query and in the response.
    #[inline]
    fn question_end(&self) -> usize {
        HEADER + self.question.len()
    }
}

/// Writes the answer to a query the snapshot can serve: its pre-encoded answer
/// section when it has one, else the records it resolves to.
#[inline]
fn answer_query<R: Rng + ?Sized>(
    snapshot: &Snapshot,
    query: &Query<'_>,
    udp: bool,
    rng: &mut R,
    out: &mut Vec<u8>,
) -> Responded {
    let limit = query.size_limit(udp);
    if let Some(fixed) = snapshot.fixed_answer(query.qname, query.qtype) {
        query.header.write_response(out, true, rcode::NOERROR);
        write_question(out, query.question);
        out.extend_from_slice(fixed.wire);
        out[6..8].copy_from_slice(&fixed.count.to_be_bytes());
        let policy = Some(fixed.policy);
        return finish(out, query.edns, rcode::NOERROR, policy, query.question_end(), limit, udp);
    }
    let mut answer = snapshot.resolve(query.qname, query.qtype, rng);
    if query.qtype == qtype::ANY {
        keep_first_rrset(&mut answer);
    }
    let code = match answer.rcode {
        Rcode::NoError => rcode::NOERROR,
        Rcode::NxDomain => rcode::NXDOMAIN,
        Rcode::Refused => {
            return query.header.write_error(out, rcode::REFUSED, Some(query.question), query.edns);
        }
    };
    query.header.write_response(out, true, code);
    write_question(out, query.question);
    let ancount = write_answers(out, &answer);
    let nscount = write_authority(out, query.qname, &answer);
    out[6..8].copy_from_slice(&ancount.to_be_bytes());
    out[8..10].copy_from_slice(&nscount.to_be_bytes());
    finish(out, query.edns, code, answer.policy, query.question_end(), limit, udp)
}

/// RFC 8482: ANY gets one RRset, not everything the name has (no amplifier).
#[inline]
pub(super) fn keep_first_rrset(answer: &mut Answer<'_>) {
    let first = answer.records.first().map(|(_, code, _)| *code);
    let same = answer.records.iter().take_while(|(_, code, _)| Some(*code) == first).count();
    answer.records.truncate(same);
}

/// Writes the question section and announces it in the header.
#[inline]
fn write_question(out: &mut Vec<u8>, question: &[u8]) {
    out.extend_from_slice(question);
    out[5] = 1;
}

/// Length of the OPT record [`write_opt`] writes.
const OPT_LEN: usize = 11;

/// Adds the OPT record and truncates (TC) when the response exceeds `limit`. Over
/// UDP only header and question are kept (the client retries over TCP); over TCP,
/// where there is no retry, every whole record that fits is kept and the counts
/// say exactly what is there.
fn finish(
    out: &mut Vec<u8>,
    edns: Option<Edns>,
    code: u16,
    policy: Option<RoutingPolicy>,
    question_end: usize,
    limit: usize,
    udp: bool,
) -> Responded {
    let opt_len = if edns.is_some() { OPT_LEN } else { 0 };
    let truncated = out.len() + opt_len > limit;
    if truncated {
        let mut end = question_end;
        let mut kept = 0u16;
        if !udp {
            let (answers, authority) =
                (read_u16(out, 6).unwrap_or(0), read_u16(out, 8).unwrap_or(0));
            for _ in 0..u32::from(answers) + u32::from(authority) {
                match skip_rr(out, end) {
                    Some((.., next)) if next + opt_len <= limit => end = next,
                    _ => break,
                }
                kept += 1;
            }
            let answers_kept = kept.min(answers);
            out[6..8].copy_from_slice(&answers_kept.to_be_bytes());
            out[8..10].copy_from_slice(&(kept - answers_kept).to_be_bytes());
        } else {
            out[6..10].fill(0);
        }
        out.truncate(end);
        out[2] |= 0x02;
        out[10..12].fill(0);
    }
    if let Some(edns) = edns {
        write_opt(out, edns, code);
        out[11] = 1;
    }
    Responded { rcode: code, policy, truncated }
}

/// Turns a response into its truncated form for rate limiting: header and
/// question only, TC set.
pub fn slip(out: &mut Vec<u8>) {
    if out.len() < HEADER {
        return;
    }
    let mut end = HEADER;
    if read_u16(out, 4) == Some(1) {
        loop {
            match out.get(end) {
                Some(0) => {
                    end += 1 + 4;
                    break;
                }
                Some(&len) if len & 0xC0 == 0 => end += 1 + len as usize,
                _ => {
                    end = usize::MAX;
                    break;
                }
            }
        }
    }
    if end > out.len() {
        end = HEADER;
        out[4..6].fill(0);
    }
    out.truncate(end);
    out[2] |= 0x02;
    out[6..12].fill(0);
}

fn write_answers(out: &mut Vec<u8>, answer: &Answer<'_>) -> u16 {
    for (owner, code, rr) in &answer.records {
        match owner {
            // The question name sits right after the header: point at it.
            Owner::Query => out.extend_from_slice(&[0xC0, HEADER as u8]),
            Owner::Node(node) => out.extend_from_slice(node.wire()),
        }
        encode_rr_body(out, *code, rr.ttl, &rr.wire);
    }
    answer.records.len() as u16
}

/// Writes the zone's SOA into the authority section of a negative answer; returns
/// how many records that section has.
#[inline]
fn write_authority(out: &mut Vec<u8>, qname: &[u8], answer: &Answer<'_>) -> u16 {
    match answer.soa {
        Some(zone) => {
            write_owner_suffix(out, qname, &zone.wire);
            encode_rr_body(out, qtype::SOA, zone.negative_ttl, &zone.soa.wire);
            1
        }
        None => 0,
    }
}

/// Writes `zone` as an owner name: a pointer into the question when the zone is
/// a suffix of the query name, else in full.
fn write_owner_suffix(out: &mut Vec<u8>, qname: &[u8], zone: &[u8]) {
    if crate::codec::wire_within(qname, zone) {
        let offset = HEADER + qname.len() - zone.len();
        if zone.len() == 1 {
            out.push(0);
        } else {
            out.extend_from_slice(&(0xC000 | offset as u16).to_be_bytes());
        }
    } else {
        out.extend_from_slice(zone);
    }
}

fn write_opt(out: &mut Vec<u8>, request: Edns, rcode: u16) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&ADVERTISED_PAYLOAD.to_be_bytes());
    out.push((rcode >> 4) as u8);
    out.push(0);
    out.push(if request.dnssec_ok { 0x80 } else { 0 });
    out.push(0);
    out.extend_from_slice(&[0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response: header (one question, one answer), question `a.`, one A record.
    fn response() -> Vec<u8> {
        let mut r = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
        r.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        r
    }

    #[test]
    fn slip_keeps_header_and_question_with_tc() {
        let mut r = response();
        slip(&mut r);
        assert_eq!(r.len(), 12 + 7);
        assert_eq!(r[2] & 0x02, 0x02, "TC");
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[..2], &[0x12, 0x34]);
    }

    #[test]
    fn slip_of_a_response_without_a_usable_question_keeps_the_header() {
        let mut no_question = response()[..12].to_vec();
        no_question[5] = 0;
        slip(&mut no_question);
        assert_eq!(no_question.len(), 12);
        let mut cut = response()[..14].to_vec(); // question name cut short
        slip(&mut cut);
        assert_eq!(cut.len(), 12);
        assert_eq!(&cut[4..6], &[0, 0], "no question announced that is not there");
        let mut runt = vec![1, 2, 3];
        slip(&mut runt);
        assert_eq!(runt, [1, 2, 3]);
    }
}
