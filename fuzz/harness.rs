//! The fuzz harnesses, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`)
//! and by `tests/core/fuzz_regressions.rs`, which replays the seed corpus and every
//! input that once crashed or hung through exactly the same code under plain
//! `cargo test`.
//!
//! Each harness takes arbitrary bytes and panics when an invariant breaks (a crash
//! for libFuzzer). None of them opens a socket.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use arc_swap::ArcSwap;
use failover_dns::dns::handler::{Handler, encode_response};
use failover_dns::dns::wire::{self, MAX_UDP_PAYLOAD};
use failover_dns::metrics::DnsStats;
use failover_dns::model::{Fqdn, validate};
use failover_dns::prober::body::{BodyWindow, Encoding, SEARCH_WINDOW};
use failover_dns::snapshot::{Snapshot, ZoneSettings};
use failover_dns::source::files::{Object, parse_file};
use failover_dns::state::State;
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::Message;
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use rand::SeedableRng;
use rand::rngs::SmallRng;

pub const ZONES: &[&str] = &["example.test", "other.test"];

fn record(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    )
}

/// The zone the DNS harnesses answer from: every record type, CNAME chains (inside,
/// across zones, out of zone, dangling), weighted and failover sets, a TXT too big
/// for 512 bytes and an A set too big for one TCP message (4500 values).
pub fn manifests() -> String {
    let mut y = String::new();
    y += &record(
        "www",
        r#"{name: www.example.test, type: A, ttl: 30, values: ["192.0.2.1", "192.0.2.2"]}"#,
    );
    y += &record("www6", r#"{name: www.example.test, type: AAAA, values: ["2001:db8::1"]}"#);
    y += &record("mx", r#"{name: example.test, type: MX, values: ["10 mail.example.test"]}"#);
    y += &record(
        "srv",
        r#"{name: _sip._tcp.example.test, type: SRV, values: ["1 2 5060 sip.example.test."]}"#,
    );
    y += &record(
        "txt",
        r#"{name: txt.example.test, type: TXT, values: ['"hello world" "second"']}"#,
    );
    y += &record("alias", r#"{name: app.example.test, type: CNAME, values: ["www.example.test"]}"#);
    y += &record(
        "chain",
        r#"{name: chain.example.test, type: CNAME, values: ["app.example.test"]}"#,
    );
    y += &record(
        "cross",
        r#"{name: cross.example.test, type: CNAME, values: ["target.other.test"]}"#,
    );
    y += &record("target", r#"{name: target.other.test, type: A, values: ["198.51.100.7"]}"#);
    y += &record(
        "outside",
        r#"{name: out.example.test, type: CNAME, values: ["www.elsewhere.invalid"]}"#,
    );
    y += &record(
        "dangling",
        r#"{name: dangling.example.test, type: CNAME, values: ["missing.example.test"]}"#,
    );
    y += &record("deep", r#"{name: a.b.example.test, type: A, values: ["192.0.2.9"]}"#);
    let big: Vec<String> =
        (0..12).map(|i| format!("'\"{}\"'", format!("{i:02}").repeat(100))).collect();
    y += &record(
        "big",
        &format!("{{name: big.example.test, type: TXT, values: [{}]}}", big.join(", ")),
    );
    let huge: Vec<String> = (0..4500)
        .map(|i| format!("\"10.{}.{}.{}\"", i / 65536, (i / 256) % 256, i % 256))
        .collect();
    y += &record(
        "huge",
        &format!("{{name: huge.example.test, type: A, values: [{}]}}", huge.join(", ")),
    );
    let w = |id: &str, ip: &str| {
        record(
            &format!("w-{id}"),
            &format!(
                r#"{{name: lb.example.test, type: A, routingPolicy: Weighted, setIdentifier: {id}, weight: 1, values: ["{ip}"]}}"#
            ),
        )
    };
    y += &w("one", "192.0.2.51");
    y += &w("two", "192.0.2.52");
    y += "---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {name: web, namespace: default}\nspec: {type: TCP, ipAddress: 127.0.0.1, port: 9, requestInterval: 10s}\n";
    y += &record(
        "fo-primary",
        r#"{name: fo.example.test, type: A, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: web, values: ["192.0.2.61"]}"#,
    );
    y += &record(
        "fo-secondary",
        r#"{name: fo.example.test, type: A, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.62"]}"#,
    );
    y
}

fn settings() -> ZoneSettings {
    ZoneSettings {
        zones: ZONES.iter().map(|z| Fqdn::parse(z).unwrap()).collect(),
        nameservers: vec![],
        soa_ttl: 300,
        negative_ttl: 60,
    }
}

/// Splits a parsed manifest into its HealthCheck and FailoverRecord inputs.
fn split(
    objects: Vec<Object>,
) -> (
    Vec<failover_dns::model::Input<failover_dns::resources::HealthCheckSpec>>,
    Vec<failover_dns::model::Input<failover_dns::resources::FailoverRecordSpec>>,
) {
    let (mut checks, mut records) = (Vec::new(), Vec::new());
    for (seq, o) in objects.into_iter().enumerate() {
        match o {
            Object::HealthCheck(mut i) => {
                i.seq = seq as u64;
                checks.push(i)
            }
            Object::FailoverRecord(mut i) => {
                i.seq = seq as u64;
                records.push(i)
            }
        }
    }
    (checks, records)
}

/// The snapshots the DNS harnesses answer from: [ready, not ready (SERVFAIL)].
pub struct Zones {
    pub ready: Arc<ArcSwap<Snapshot>>,
    pub not_ready: Arc<ArcSwap<Snapshot>>,
}

pub fn zones() -> &'static Zones {
    static ZONES_ONCE: OnceLock<Zones> = OnceLock::new();
    ZONES_ONCE.get_or_init(|| {
        let mut state = State::new(settings());
        let objects =
            parse_file("fuzz.yaml", manifests().as_bytes()).expect("the harness manifest parses");
        let (checks, records) = split(objects);
        state.set_inputs(&checks, &records, vec![]);
        state.set_ready(true);
        let ready = state.snapshot.clone();
        assert!(state.model().errors().next().is_none(), "the harness manifest is valid");
        let not_ready = Arc::new(ArcSwap::from_pointee(ready.load().with_ready(false)));
        Zones { ready, not_ready }
    })
}

/// Checks what the fast-path responder wrote for `req`: a response to it (same ID,
/// QR set), within the size limit of the transport, that a DNS parser accepts.
fn check_response(req: &[u8], out: &[u8], limit: usize) {
    assert!(out.len() >= 12, "a response has a header: {out:?}");
    assert!(out.len() <= limit, "response of {} bytes exceeds the limit {limit}", out.len());
    assert_eq!(&out[..2], &req[..2], "response ID echoes the query");
    assert_ne!(out[2] & 0x80, 0, "QR set");
    if let Err(e) = Message::from_vec(out) {
        panic!("the response does not parse: {e}\nquery {req:?}\nresponse {out:?}");
    }
}

/// The UDP size limit the responder must honour for `req`: 512, or the EDNS payload
/// the query announces clamped to [512, 4096]. Only read from a query hickory can
/// parse; otherwise 4096 is the upper bound.
fn udp_limit(req: &[u8]) -> usize {
    match Message::from_vec(req) {
        Ok(m) => {
            m.edns.as_ref().map_or(512, |e| e.max_payload().clamp(512, MAX_UDP_PAYLOAD)) as usize
        }
        Err(_) => MAX_UDP_PAYLOAD as usize,
    }
}

/// Target `dns_wire`: the fast-path responder ([`wire::respond`]) as the UDP fast
/// path and the TCP listener call it. First byte: bit 0 = TCP, bit 1 = a snapshot
/// that is not ready. Over UDP the rest is one datagram; over TCP it is a stream of
/// length-prefixed queries, cut where the bytes run out, as `dns::tcp` reads them.
pub fn dns_wire(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else { return };
    let tcp = control & 1 != 0;
    let zones = zones();
    let snapshot = if control & 2 != 0 { zones.not_ready.load() } else { zones.ready.load() };
    let mut rng = SmallRng::seed_from_u64(u64::from(control));
    let mut out = Vec::with_capacity(512);
    if !tcp {
        if let Some(_outcome) = wire::respond(&snapshot, rest, true, &mut rng, &mut out) {
            check_response(rest, &out, udp_limit(rest));
            let before = out.clone();
            wire::slip(&mut out);
            assert!(out.len() <= before.len(), "slip never grows a response");
            assert!(out.len() < 12 || out[2] & 0x02 != 0, "a slipped response has TC set");
        } else {
            assert!(
                rest.len() < 12 || rest[2] & 0x80 != 0,
                "only responses and runts go unanswered"
            );
        }
        return;
    }
    let mut stream = rest;
    while stream.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([stream[0], stream[1]]));
        let Some(query) = stream.get(2..2 + len) else { return };
        stream = &stream[2 + len..];
        if wire::respond(&snapshot, query, false, &mut rng, &mut out).is_some() {
            // dns::tcp frames the answer with a u16 length and expects it to fit.
            check_response(query, &out, u16::MAX as usize);
        } else {
            assert!(
                query.len() < 12 || query[2] & 0x80 != 0,
                "only responses and runts go unanswered"
            );
        }
    }
}

/// Encodes hickory's response into bytes, as `dns::handler`'s UDP responder does.
#[derive(Clone)]
struct Capture {
    max_size: u16,
    bytes: Arc<Mutex<Vec<u8>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
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
        *self.bytes.lock().unwrap() = bytes;
        Ok(info)
    }
}

/// Drives a future that never waits on I/O to completion (the handler with a
/// [`Capture`] responder); panics if it keeps returning Pending (a hang).
fn run<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the handler did not finish without I/O");
}

/// Target `dns_hickory`: the hickory request path (`--udp-engine hickory`): hickory's
/// parser, then [`Handler`] with hickory's encoder, or the fast-path responder for
/// what hickory cannot parse, as `dns::handler::serve_udp` does. First byte: bit 0
/// = the request came over TCP, bit 1 = a snapshot that is not ready.
pub fn dns_hickory(data: &[u8]) {
    let Some((&control, raw)) = data.split_first() else { return };
    // serve_udp drops these before anything parses them.
    if raw.len() < 12 || raw[2] & 0x80 != 0 {
        return;
    }
    let zones = zones();
    let snapshot = if control & 2 != 0 { &zones.not_ready } else { &zones.ready };
    let protocol = if control & 1 != 0 { Protocol::Tcp } else { Protocol::Udp };
    let src = "127.0.0.1:5353".parse().unwrap();
    let request = match Request::from_bytes(raw.to_vec(), src, protocol) {
        Ok(request) => request,
        Err(_) => {
            let mut out = Vec::with_capacity(512);
            let mut rng = SmallRng::seed_from_u64(u64::from(control));
            let answered = wire::respond(&snapshot.load(), raw, true, &mut rng, &mut out);
            assert!(
                answered.is_some(),
                "a query hickory cannot parse still gets FORMERR or the like"
            );
            check_response(raw, &out, udp_limit(raw));
            return;
        }
    };
    static STATS: OnceLock<Arc<DnsStats>> = OnceLock::new();
    let stats = STATS.get_or_init(|| Arc::new(DnsStats::new(1))).clone();
    let handler = Handler { snapshot: snapshot.clone(), stats, shard: 0 };
    let max_size =
        request.edns.as_ref().map_or(512, |e| e.max_payload().clamp(512, MAX_UDP_PAYLOAD));
    let capture = Capture { max_size, bytes: Arc::default() };
    run(handler.handle_request::<_, TokioTime>(&request, capture.clone()));
    let bytes = capture.bytes.lock().unwrap();
    assert!(
        bytes.len() <= usize::from(max_size),
        "hickory response of {} bytes over {max_size}",
        bytes.len()
    );
    if !bytes.is_empty() {
        assert_eq!(&bytes[..2], &raw[..2], "response ID echoes the query");
        if let Err(e) = Message::from_vec(&bytes) {
            panic!("hickory's response does not parse: {e}\nquery {raw:?}\nresponse {bytes:?}");
        }
    }
}

/// Target `manifest`: a manifest file through the parser, validation, and into a
/// served snapshot, which then answers an A query for every record name it holds.
pub fn manifest(data: &[u8]) {
    let Ok(objects) = parse_file("fuzz.yaml", data) else { return };
    let (checks, records) = split(objects);
    let zones: Vec<Fqdn> = ZONES.iter().map(|z| Fqdn::parse(z).unwrap()).collect();
    let model = validate(&zones, &checks, &records);
    for problem in model.errors() {
        assert!(!problem.message.is_empty(), "a problem says what is wrong");
    }
    let mut state = State::new(settings());
    state.set_inputs(&checks, &records, vec![]);
    state.set_ready(true);
    let snapshot = state.snapshot.load();
    let mut rng = SmallRng::seed_from_u64(0);
    let mut out = Vec::new();
    for r in records.iter().take(16) {
        let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        let name = r.spec.name.trim_end_matches('.');
        if name.is_empty()
            || name.len() > 250
            || name.split('.').any(|l| l.is_empty() || l.len() > 63)
        {
            continue;
        }
        for label in name.split('.') {
            query.push(label.len() as u8);
            query.extend_from_slice(label.as_bytes());
        }
        query.extend_from_slice(&[0, 0, 1, 0, 1]);
        if wire::respond(&snapshot, &query, true, &mut rng, &mut out).is_some() {
            check_response(&query, &out, 512);
        }
    }
}

/// Target `probe_body`: the probe's body window. First byte: encoding (mod 3) and
/// chunk size (the upper bits); second byte: length of the search string taken from
/// the start of the rest. The body is pushed once whole and once in chunks: both
/// must agree, the window never exceeds [`SEARCH_WINDOW`], and an identity body is
/// its own window.
pub fn probe_body(data: &[u8]) {
    let [control, needle_len, rest @ ..] = data else { return };
    let encoding =
        [Encoding::Identity, Encoding::Gzip, Encoding::Deflate][usize::from(control % 3)];
    let chunk = usize::from(control / 3) + 1;
    let (needle, body) = rest.split_at(usize::from(*needle_len % 16).min(rest.len()));

    let feed = |chunk: usize| {
        let mut window = BodyWindow::new(encoding);
        let mut result = Ok(());
        for piece in body.chunks(chunk) {
            if window.is_full() {
                break; // the prober stops reading here
            }
            result = window.push(piece);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() && !window.is_full() {
            result = window.finish();
        }
        assert!(window.decoded().len() <= SEARCH_WINDOW);
        let found = window.contains(needle);
        (result, window.decoded().to_vec(), found)
    };
    let (whole_result, whole, whole_found) = feed(body.len().max(1));
    let (chunked_result, chunked, chunked_found) = feed(chunk);
    if whole_result.is_ok() && chunked_result.is_ok() {
        assert_eq!(whole, chunked, "the window does not depend on how the body arrives");
        assert_eq!(whole_found, chunked_found);
    }
    if encoding == Encoding::Identity {
        let expected = &body[..body.len().min(SEARCH_WINDOW)];
        assert_eq!(whole, expected);
        assert_eq!(chunked, expected);
        let naive = !needle.is_empty() && expected.windows(needle.len()).any(|w| w == needle);
        assert_eq!(whole_found, naive);
    }
}
