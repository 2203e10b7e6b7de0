//! UDP the hickory-server way (`--udp-engine hickory`): one task per datagram,
//! hickory's message parser, response builder and encoder, around a
//! `RequestHandler` over the snapshot. Answers are chosen by the same
//! [`Snapshot::resolve`] as on the fast path; only the encoding differs.
//!
//! The receive loop is ours rather than hickory's `Server`: hickory answers some
//! unparsable packets that have QR set (with FORMERR), and a response must never
//! be answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_server::net::NetError;
use hickory_server::net::runtime::{Time, TokioTime};
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, LowerQuery, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::rrl::{Action, RateLimiter};
use super::wire::{self, MAX_UDP_PAYLOAD};
use crate::codec::qtype;
use crate::metrics::{DnsStats, Responded, Transport};
use crate::snapshot::{Answer, Owner, Rcode, Snapshot};

pub struct Handler {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub stats: Arc<DnsStats>,
    /// Stats shard used by the async tasks of this handler.
    pub shard: usize,
}

impl Handler {
    fn count(
        &self,
        request: &Request,
        rcode: ResponseCode,
        policy: Option<crate::model::RoutingPolicy>,
    ) {
        let transport =
            if request.protocol() == Protocol::Udp { Transport::Udp } else { Transport::Tcp };
        let outcome = Responded { rcode: u16::from(rcode), policy, truncated: false };
        self.stats.record(self.shard, transport, outcome);
    }
}

/// What to report when the response could not be sent (the client went away).
fn failed(request: &Metadata) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(request);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
}

fn lowercase_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// The response's OPT record, when the query had one.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        // hickory sizes UDP responses by the response's OPT, so it carries the client's size.
        edns.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
        edns.set_version(0);
        edns.set_dnssec_ok(req.flags().dnssec_ok);
        edns
    })
}

/// The query to answer, or the error code of a request this server does not answer
/// (the same codes as on the fast path).
fn answerable_query(request: &Request) -> Result<&LowerQuery, ResponseCode> {
    if request.metadata.op_code != OpCode::Query {
        return Err(ResponseCode::NotImp);
    }
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Err(ResponseCode::BADVERS);
    }
    let query = request.request_info().map_err(|_| ResponseCode::FormErr)?.query;
    match query.query_type() {
        _ if query.query_class() != DNSClass::IN => Err(ResponseCode::Refused),
        RecordType::AXFR | RecordType::IXFR => Err(ResponseCode::Refused),
        // As on the fast path: OPT is a pseudo-type, not something to ask for.
        RecordType::OPT => Err(ResponseCode::FormErr),
        _ => Ok(query),
    }
}

/// The response's header fields for `request`, with `code`.
fn response_metadata(request: &Metadata, code: ResponseCode) -> Metadata {
    let mut meta = Metadata::response_from_request(request);
    meta.response_code = code;
    meta
}

fn response_code(rcode: Rcode) -> ResponseCode {
    match rcode {
        Rcode::NoError => ResponseCode::NoError,
        Rcode::NxDomain => ResponseCode::NXDomain,
        Rcode::Refused => ResponseCode::Refused,
    }
}

/// The answer section, with the query's name as it was asked where a record is owned by it.
fn answer_records(answer: &Answer<'_>, qname: &Name) -> Vec<Record> {
    answer
        .records
        .iter()
        .map(|(owner, _, rr)| {
            let name = match owner {
                Owner::Query => qname.clone(),
                Owner::Node(node) => node.name(),
            };
            Record::from_rdata(name, rr.ttl, rr.rdata())
        })
        .collect()
}

/// The authority section: the zone's SOA in a negative answer.
fn authority_records(answer: &Answer<'_>) -> Vec<Record> {
    answer
        .soa
        .map(|zone| Record::from_rdata(zone.name.to_name(), zone.negative_ttl, zone.soa.rdata()))
        .into_iter()
        .collect()
}

impl Handler {
    /// Sends a response with `code` and no records, and counts it.
    async fn send_error<R: ResponseHandler>(
        &self,
        request: &Request,
        builder: MessageResponseBuilder<'_>,
        code: ResponseCode,
        mut response: R,
    ) -> ResponseInfo {
        self.count(request, code, None);
        let message = builder.build_no_records(response_metadata(&request.metadata, code));
        let sent = response.send_response(message).await;
        sent.unwrap_or_else(|_| failed(&request.metadata))
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let response_edns = response_edns(request);
        let builder = MessageResponseBuilder::new(&request.queries, response_edns.as_ref());
        let query = match answerable_query(request) {
            Ok(query) => query,
            Err(code) => return self.send_error(request, builder, code, response).await,
        };
        let snapshot = self.snapshot.load();
        if !snapshot.ready {
            return self.send_error(request, builder, ResponseCode::ServFail, response).await;
        }
        let qname: Name = query.original().name().clone();
        let query_type = u16::from(query.query_type());
        let mut answer = snapshot.resolve(&lowercase_wire(&qname), query_type, &mut rand::rng());
        if query_type == qtype::ANY {
            wire::keep_first_rrset(&mut answer);
        }
        let code = response_code(answer.rcode);
        let mut meta = response_metadata(&request.metadata, code);
        meta.authoritative = code != ResponseCode::Refused;
        let answers = answer_records(&answer, &qname);
        let soa = authority_records(&answer);
        self.count(request, code, answer.policy);
        let message =
            builder.build(meta, answers.iter(), std::iter::empty(), soa.iter(), std::iter::empty());
        response.send_response(message).await.unwrap_or_else(|_| failed(&request.metadata))
    }
}

/// Sends one response to a UDP client, sized like hickory's own UDP handler does:
/// the client's EDNS payload (at most 4096), else 512 bytes.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
    max_size: u16,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (bytes, info) = encode_response(response, self.max_size)?;
        self.socket.send_to(&bytes, self.dst).await?;
        Ok(info)
    }
}

/// hickory's response as the bytes a UDP client gets, at most `max_size` of them
/// (hickory truncates what does not fit and sets TC).
pub fn encode_response<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    max_size: u16,
) -> Result<(Vec<u8>, ResponseInfo), NetError> {
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(max_size);
    let info = response.destructive_emit(&mut encoder)?;
    Ok((bytes, info))
}

/// Serves UDP on `socket` until `shutdown`, one task per datagram.
pub async fn serve_udp(
    socket: UdpSocket,
    handler: Arc<Handler>,
    rrl: Option<Arc<RateLimiter>>,
    shutdown: CancellationToken,
) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; wire::MAX_UDP_PAYLOAD as usize];
    loop {
        let (len, src) = tokio::select! {
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(_) => continue, // ICMP errors of earlier sends and the like
            },
        };
        let datagram = &buf[..len];
        if len < 12 || datagram[2] & 0x80 != 0 {
            handler.stats.record_dropped(handler.shard);
            continue;
        }
        let action = rrl.as_ref().map_or(Action::Send, |rrl| rrl.check(src.ip(), Instant::now()));
        if let Some(rrl) = rrl.as_ref().filter(|_| action != Action::Send) {
            handler.stats.record_rate_limited(action == Action::Slip);
            rrl.log_limited(src.ip(), action);
        }
        if action == Action::Drop {
            continue;
        }
        let raw = datagram.to_vec();
        let (socket, handler) = (socket.clone(), handler.clone());
        tokio::spawn(async move {
            let request = match Request::from_bytes(raw.clone(), src, Protocol::Udp) {
                Ok(request) if action == Action::Send => request,
                // Unparsable for hickory (FORMERR), or slipped: the fast path's
                // responder writes those, so both engines agree.
                _ => {
                    let mut out = Vec::with_capacity(512);
                    let snapshot = handler.snapshot.load();
                    let Some(mut outcome) =
                        wire::respond(&snapshot, &raw, true, &mut rand::rng(), &mut out)
                    else {
                        return;
                    };
                    if action == Action::Slip {
                        wire::slip(&mut out);
                        outcome.truncated = true;
                    }
                    handler.stats.record(handler.shard, Transport::Udp, outcome);
                    let _ = socket.send_to(&out, src).await;
                    return;
                }
            };
            let max_size =
                request.edns.as_ref().map_or(512, |e| e.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            let responder = UdpResponder { socket, dst: src, max_size };
            handler.handle_request::<_, TokioTime>(&request, responder).await;
        });
    }
}
