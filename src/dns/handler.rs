//! The hickory-server `RequestHandler` over the snapshot: serves TCP (and UDP when
//! the fast path is switched off). Answers are chosen by the same
//! [`Snapshot::resolve`] as on the fast path; only the encoding differs.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::wire::{MAX_UDP_PAYLOAD, Outcome};
use crate::metrics::{DnsStats, Transport};
use crate::snapshot::{Owner, Rcode, Snapshot};

pub struct Handler {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub stats: Arc<DnsStats>,
    /// Stats shard used by the async tasks of this handler.
    pub shard: usize,
}

impl Handler {
    fn count(&self, request: &Request, rcode: ResponseCode, policy: Option<crate::resources::RoutingPolicy>) {
        let transport = if request.protocol() == Protocol::Udp { Transport::Udp } else { Transport::Tcp };
        let outcome = Outcome { rcode: u16::from(rcode), policy, truncated: false };
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

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let response_edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            // hickory sizes UDP responses by the response's OPT, so it carries the client's size.
            edns.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns.set_version(0);
            edns.set_dnssec_ok(req.flags().dnssec_ok);
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, response_edns.as_ref());
        let fail = |code: ResponseCode| {
            let mut meta = Metadata::response_from_request(&request.metadata);
            meta.response_code = code;
            meta
        };
        let code = if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Some(ResponseCode::BADVERS)
        } else {
            None
        };
        let info = match (code, request.request_info()) {
            (Some(code), _) => Err(code),
            (None, Err(_)) => Err(ResponseCode::FormErr),
            (None, Ok(info)) if info.query.query_class() != DNSClass::IN => Err(ResponseCode::Refused),
            (None, Ok(info)) if matches!(info.query.query_type(), RecordType::AXFR | RecordType::IXFR) => {
                Err(ResponseCode::Refused)
            }
            (None, Ok(info)) => Ok(info),
        };
        let info = match info {
            Ok(info) => info,
            Err(code) => {
                self.count(request, code, None);
                let sent = response.send_response(builder.build_no_records(fail(code))).await;
                return sent.unwrap_or_else(|_| failed(&request.metadata));
            }
        };

        let snapshot = self.snapshot.load();
        if !snapshot.ready {
            self.count(request, ResponseCode::ServFail, None);
            let sent = response.send_response(builder.build_no_records(fail(ResponseCode::ServFail))).await;
            return sent.unwrap_or_else(|_| failed(&request.metadata));
        }
        let qname: Name = info.query.original().name().clone();
        let answer = snapshot.resolve(&lowercase_wire(&qname), u16::from(info.query.query_type()), &mut rand::rng());
        let code = match answer.rcode {
            Rcode::NoError => ResponseCode::NoError,
            Rcode::NxDomain => ResponseCode::NXDomain,
            Rcode::Refused => ResponseCode::Refused,
        };
        let mut meta = fail(code);
        meta.authoritative = code != ResponseCode::Refused;
        let answers: Vec<Record> = answer
            .records
            .iter()
            .map(|(owner, _, rr)| {
                let name = match owner {
                    Owner::Query => qname.clone(),
                    Owner::Node(node) => node.name(),
                };
                Record::from_rdata(name, rr.ttl, rr.rdata())
            })
            .collect();
        let soa: Vec<Record> = answer
            .soa
            .map(|zone| Record::from_rdata(zone.name.to_name(), zone.negative_ttl, zone.soa.rdata()))
            .into_iter()
            .collect();
        self.count(request, code, answer.policy);
        let message = builder.build(meta, answers.iter(), std::iter::empty(), soa.iter(), std::iter::empty());
        response
            .send_response(message)
            .await
            .unwrap_or_else(|_| failed(&request.metadata))
    }
}
