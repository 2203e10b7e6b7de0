//! The prober against real servers on 127.0.0.1 started by each test.
//!
//! Assertions are about what happened and in which order (updates, counters,
//! requests seen by the server); wall-clock bounds are only generous deadlines.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use failover_dns::health::LeafHealth;
use failover_dns::model::{self, Check, Endpoint, Input, ObjectRef, Probe};
use failover_dns::prober::guard::{Cidr, ProbeGuard};
use failover_dns::prober::{HealthUpdate, Prober, ProberConfig};
use failover_dns::resources::{HealthCheckSpec, HealthCheckType};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

/// Deadline for anything that should happen "soon": generous, never a measurement.
const SOON: Duration = Duration::from_secs(10);
const NEEDLE: &str = "failover-dns-OK";
const PASSES: &str = "failoverdns_probe_results_total{type=\"http\",reason=\"StatusCode200\"}";

// ---------------------------------------------------------------- allocation counting

/// Counts the bytes allocated by threads that opted in (see `ten_thousand_checks_fit`).
struct CountingAllocator;

static COUNTED_BYTES: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && counting() {
            COUNTED_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            COUNTED_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && counting() {
            COUNTED_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

// ---------------------------------------------------------------- test servers

#[derive(Clone, Debug)]
enum Mode {
    /// Answer every request with this status (3xx with a Location header).
    Status(u16),
    /// Read the request, never answer.
    Hang,
    /// Serve the body fixtures by path.
    Bodies,
    /// Answer the next `times` requests with `first`, then every later one with `then`.
    StatusThen { first: u16, times: usize, then: u16 },
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    host: Option<String>,
    user_agent: Option<String>,
}

struct ServerState {
    mode: Mutex<Mode>,
    requests: AtomicUsize,
    connections: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// SNI of every TLS handshake.
    snis: Mutex<Vec<Option<String>>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Close connections that send nothing for this long (a server with a short idle timeout).
    idle_close: Option<Duration>,
    conns: Mutex<Vec<JoinHandle<()>>>,
}

/// An HTTP(S) server whose behaviour a test switches at will, and which can be killed
/// like a process: listener and every connection closed.
struct TestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    async fn http(mode: Mode) -> Self {
        Self::start(mode, None, None, IpAddr::V4(Ipv4Addr::LOCALHOST)).await
    }

    async fn start(
        mode: Mode,
        tls: Option<tokio_rustls::TlsAcceptor>,
        idle_close: Option<Duration>,
        ip: IpAddr,
    ) -> Self {
        let state = Arc::new(ServerState {
            mode: Mutex::new(mode),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            snis: Mutex::new(Vec::new()),
            tls,
            idle_close,
            conns: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = Self { addr, state, accept: None };
        server.accept = Some(tokio::spawn(accept_loop(listener, server.state.clone())));
        server
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Closes the listener, then every open connection, as a dying process would.
    async fn kill(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        let conns = std::mem::take(&mut *self.state.conns.lock().unwrap());
        for conn in conns {
            conn.abort();
            let _ = conn.await;
        }
    }

    /// Closes every open connection but keeps listening: the watch connection is
    /// lost while the target stays alive (a restarted proxy, a server's idle timeout).
    async fn drop_connections(&self) {
        let conns = std::mem::take(&mut *self.state.conns.lock().unwrap());
        for conn in conns {
            conn.abort();
            let _ = conn.await;
        }
    }

    /// Listens again on the same port.
    async fn revive(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.accept = Some(tokio::spawn(accept_loop(listener, self.state.clone())));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(accept) = &self.accept {
            accept.abort();
        }
        for conn in self.state.conns.lock().unwrap().iter() {
            conn.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let conn = tokio::spawn(serve_connection(stream, state.clone()));
        state.conns.lock().unwrap().push(conn);
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<ServerState>) {
    if let Some(idle) = state.idle_close
        && timeout(idle, stream.peek(&mut [0u8; 1])).await.is_err()
    {
        return;
    }
    match &state.tls {
        Some(acceptor) => {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            state.snis.lock().unwrap().push(tls.get_ref().1.server_name().map(str::to_owned));
            serve_http(tls, state).await
        }
        None => serve_http(stream, state).await,
    }
}

async fn serve_http<S>(io: S, state: Arc<ServerState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(respond(request, &state).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn respond(request: Request<Incoming>, state: &ServerState) -> Response<Full<Bytes>> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: hyper::header::HeaderName| {
        request.headers().get(name).map(|v| v.to_str().unwrap().to_string())
    };
    let path = request.uri().path().to_string();
    state.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        host: header(hyper::header::HOST),
        user_agent: header(hyper::header::USER_AGENT),
    });
    let mode = {
        let mut mode = state.mode.lock().unwrap();
        if let Mode::StatusThen { first, times, then } = *mode {
            *mode = if times > 1 {
                Mode::StatusThen { first, times: times - 1, then }
            } else {
                Mode::Status(then)
            };
            Mode::Status(first)
        } else {
            mode.clone()
        }
    };
    let response = Response::builder();
    match mode {
        Mode::StatusThen { .. } => unreachable!("resolved above"),
        Mode::Status(code) => response
            .status(code)
            .header(hyper::header::LOCATION, "/redirected")
            .body(Full::new(Bytes::from_static(b"status body")))
            .unwrap(),
        Mode::Hang => std::future::pending().await,
        Mode::Bodies => {
            let (body, encoding) = match path.as_str() {
                "/at5100" => (body_with_needle_at(5100, 8000), None),
                "/at5200" => (body_with_needle_at(5200, 8000), None),
                "/gzip" => (gzip(&body_with_needle_at(4000, 200_000)), Some("gzip")),
                "/gzip-late" => (gzip(&body_with_needle_at(6000, 200_000)), Some("gzip")),
                "/deflate-raw" => (raw_deflate(&body_with_needle_at(100, 1000)), Some("deflate")),
                _ => return response.status(404).body(Full::new(Bytes::new())).unwrap(),
            };
            let response = match encoding {
                Some(e) => response.header(hyper::header::CONTENT_ENCODING, e),
                None => response,
            };
            response.body(Full::new(Bytes::from(body))).unwrap()
        }
    }
}

fn body_with_needle_at(at: usize, total: usize) -> Vec<u8> {
    let mut body: Vec<u8> = (0..total).map(|i| b"abcdefghijklmnopqrstuvwxyz "[i % 27]).collect();
    body[at..at + NEEDLE.len()].copy_from_slice(NEEDLE.as_bytes());
    body
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A TLS acceptor with a fresh self-signed certificate (untrusted by anyone).
fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["secure.example.test".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A port nothing listens on (bound, then released).
async fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

// ---------------------------------------------------------------- checks and harness

fn id(name: &str) -> ObjectRef {
    ObjectRef::new("test", name)
}

fn base_check(name: &str, probe: Probe) -> Check {
    Check {
        id: id(name),
        probe,
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        failure_threshold: 1,
        inverted: false,
        disabled: false,
    }
}

fn http_check(name: &str, addr: SocketAddr, path: &str) -> Check {
    base_check(
        name,
        Probe::Http {
            tls: false,
            endpoint: Endpoint::Ip(addr.ip()),
            port: addr.port(),
            path: path.into(),
            host_header: addr.to_string(),
            sni: None,
            search_string: None,
        },
    )
}

fn with_search(mut check: Check) -> Check {
    if let Probe::Http { search_string, .. } = &mut check.probe {
        *search_string = Some(NEEDLE.into());
    }
    check
}

fn https_check(name: &str, addr: SocketAddr, sni: Option<&str>) -> Check {
    base_check(
        name,
        Probe::Http {
            tls: true,
            endpoint: Endpoint::Ip(addr.ip()),
            port: addr.port(),
            path: "/".into(),
            host_header: sni.map_or_else(|| addr.to_string(), |s| format!("{s}:{}", addr.port())),
            sni: sni.map(str::to_string),
            search_string: None,
        },
    )
}

fn tcp_check(name: &str, addr: SocketAddr) -> Check {
    base_check(name, Probe::Tcp { endpoint: Endpoint::Ip(addr.ip()), port: addr.port() })
}

struct Harness {
    prober: Prober,
    updates: UnboundedReceiver<HealthUpdate>,
    registry: Registry,
    shutdown: CancellationToken,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(ProberConfig::default())
    }

    fn with_config(config: ProberConfig) -> Self {
        let mut registry = Registry::default();
        let shutdown = CancellationToken::new();
        let (prober, updates) = Prober::spawn(config, &mut registry, shutdown.clone());
        Self { prober, updates, registry, shutdown }
    }

    fn with_guard(deny: &[&str], allow: &[&str]) -> Self {
        let cidrs =
            |list: &[&str]| list.iter().map(|c| c.parse::<Cidr>().unwrap()).collect::<Vec<_>>();
        Self::with_config(ProberConfig {
            guard: ProbeGuard::new(&cidrs(deny), &cidrs(allow)),
            ..ProberConfig::default()
        })
    }

    fn set(&self, checks: &[Check]) {
        let map: BTreeMap<ObjectRef, Arc<Check>> =
            checks.iter().map(|c| (c.id.clone(), Arc::new(c.clone()))).collect();
        self.prober.set_checks(&map);
    }

    async fn next_update(&mut self) -> HealthUpdate {
        timeout(SOON, self.updates.recv())
            .await
            .expect("no health update in time")
            .expect("update channel closed")
    }

    fn assert_no_update(&mut self) {
        match self.updates.try_recv() {
            Err(TryRecvError::Empty) => {}
            other => panic!("unexpected update: {other:?}"),
        }
    }

    fn state(&self, name: &str) -> Option<LeafHealth> {
        self.prober.states().remove(&id(name))
    }

    /// Waits until the check's live state satisfies `pred`.
    async fn wait_state(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&LeafHealth) -> bool,
    ) -> LeafHealth {
        let deadline = Instant::now() + SOON;
        loop {
            if let Some(state) = self.state(name)
                && pred(&state)
            {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {what} never happened; state: {:?}",
                self.state(name)
            );
            sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_reason(&self, name: &str, reason: &str) -> LeafHealth {
        self.wait_state(name, reason, |s| s.reason == reason).await
    }

    /// A sample's value from the text exposition, e.g. `failoverdns_probe_early_total`.
    fn metric(&self, sample: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
    }

    async fn wait_metric(&self, sample: &str, pred: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + SOON;
        while !pred(self.metric(sample)) {
            if Instant::now() > deadline {
                let mut text = String::new();
                prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
                panic!("{sample} stays at {}:\n{text}", self.metric(sample));
            }
            sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn assert_update(update: &HealthUpdate, name: &str, healthy: bool, reason: &str) {
    assert_eq!(update.id, id(name), "{update:?}");
    assert_eq!(update.health.healthy, healthy, "{update:?}");
    assert_eq!(update.health.reason, reason, "{update:?}");
}

// ---------------------------------------------------------------- HTTP

#[tokio::test]
async fn http_status_codes_hang_and_closed_port() {
    let mut server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    let mut check = http_check("web", server.addr, "/health");
    check.timeout = Duration::from_secs(1);
    h.set(&[check]);

    let state = h.wait_reason("web", "StatusCode200").await;
    assert!(state.healthy);
    assert!(state.last_probe_time.is_some());
    let latency = state.latency.expect("a probed check has a latency");
    assert!(
        latency.connect_ms.is_some() && latency.first_byte_ms.is_some() && latency.tls_ms.is_none()
    );
    let seen = server.seen();
    assert_eq!(seen[0].path, "/health");
    assert_eq!(seen[0].user_agent.as_deref(), Some("failover-dns"));

    // 3xx passes and the redirect is not followed.
    server.set_mode(Mode::Status(301));
    h.wait_reason("web", "StatusCode301").await;
    h.assert_no_update();
    assert!(server.seen().iter().all(|s| s.path == "/health"), "a redirect was followed");

    server.set_mode(Mode::Status(503));
    let update = h.next_update().await;
    assert_update(&update, "web", false, "StatusCode503");
    assert!(update.health.message.contains("503"), "{}", update.health.message);
    assert!(update.health.last_transition_time.is_some());

    server.set_mode(Mode::Status(200));
    assert_update(&h.next_update().await, "web", true, "StatusCode200");

    server.set_mode(Mode::Hang);
    let update = h.next_update().await;
    assert_update(&update, "web", false, "Timeout");
    assert!(
        update.health.message.contains("waiting for the response"),
        "{}",
        update.health.message
    );

    server.set_mode(Mode::Status(200));
    assert_update(&h.next_update().await, "web", true, "StatusCode200");

    server.kill().await;
    assert_update(&h.next_update().await, "web", false, "ConnectionRefused");

    server.revive().await;
    assert_update(&h.next_update().await, "web", true, "StatusCode200");

    let probes =
        h.metric("failoverdns_probe_results_total{type=\"http\",reason=\"StatusCode200\"}");
    assert!(probes >= 3.0);
    assert_eq!(h.metric("failoverdns_health_check_transitions_total{healthy=\"false\"}"), 3.0);
    assert_eq!(h.metric("failoverdns_health_check_healthy{namespace=\"test\",name=\"web\"}"), 1.0);
}

/// A probe ends its connection with a reset once the response is in: the target
/// is left with no FIN exchange to finish and no TIME_WAIT state per probe.
#[tokio::test]
async fn a_probe_connection_is_closed_with_a_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = Harness::new();
    h.set(&[http_check("reset", listener.local_addr().unwrap(), "/")]);

    let (mut stream, _) = timeout(SOON, listener.accept()).await.expect("no probe").unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the probe closed before its request was sent");
        request.extend_from_slice(&buf[..n]);
    }
    // The server keeps its side open: only the prober ends the connection.
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.unwrap();
    h.wait_reason("reset", "StatusCode200").await;
    let end =
        timeout(SOON, stream.read(&mut buf)).await.expect("the probe left its connection open");
    match end {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("the probe closed its connection with a FIN (read {n} bytes), not a reset"),
    }
}

#[tokio::test]
async fn host_header_comes_from_the_model() {
    let server = TestServer::http(Mode::Status(200)).await;
    let spec = |port: Option<u16>| HealthCheckSpec {
        type_: HealthCheckType::Http,
        ip_address: Some("127.0.0.1".into()),
        fqdn: Some("app.example.test".into()),
        port: port.map(i64::from),
        ..HealthCheckSpec::default()
    };
    let input =
        |name: &str, spec| Input { id: id(name), seq: 0, file: None, generation: None, spec };
    let model = model::validate(
        &[],
        &[input("default-port", spec(None)), input("other-port", spec(Some(server.addr.port())))],
        &[],
    );
    assert!(model.problems.is_empty(), "{:?}", model.problems);
    let mut default_port = (*model.checks[&id("default-port")]).clone();
    // Port 80 cannot be bound here: probe the test server, keep the header the model built for port 80.
    if let Probe::Http { port, .. } = &mut default_port.probe {
        *port = server.addr.port();
    }
    let mut other_port = (*model.checks[&id("other-port")]).clone();
    default_port.interval = Duration::from_millis(200);
    other_port.interval = Duration::from_millis(200);

    let h = Harness::new();
    h.set(&[default_port, other_port]);
    h.wait_reason("default-port", "StatusCode200").await;
    h.wait_reason("other-port", "StatusCode200").await;
    let hosts: Vec<String> = server.seen().into_iter().filter_map(|s| s.host).collect();
    assert!(hosts.contains(&"app.example.test".to_string()), "{hosts:?}");
    assert!(hosts.contains(&format!("app.example.test:{}", server.addr.port())), "{hosts:?}");
}

#[tokio::test]
async fn fqdn_endpoint_is_resolved_and_resolution_failure_fails() {
    // Listen on whatever `localhost` resolves to first, as the prober will use it.
    let ip = tokio::net::lookup_host("localhost:0").await.unwrap().next().unwrap().ip();
    let server = TestServer::start(Mode::Status(200), None, None, ip).await;
    let mut h = Harness::new();
    let mut by_name = http_check("by-name", server.addr, "/");
    let mut unknown = http_check("unknown", server.addr, "/");
    if let Probe::Http { endpoint, .. } = &mut by_name.probe {
        *endpoint = Endpoint::Fqdn("localhost".into());
    }
    if let Probe::Http { endpoint, .. } = &mut unknown.probe {
        *endpoint = Endpoint::Fqdn("no-such-host.invalid".into());
    }
    unknown.timeout = Duration::from_secs(8);
    h.set(&[by_name, unknown]);
    h.wait_reason("by-name", "StatusCode200").await;
    let update = h.next_update().await;
    assert_update(&update, "unknown", false, "DnsResolutionFailed");
    assert!(update.health.message.contains("no-such-host.invalid"), "{}", update.health.message);
}

// ---------------------------------------------------------------- HTTPS

#[tokio::test]
async fn https_sends_sni_and_accepts_an_untrusted_certificate() {
    let server = TestServer::start(
        Mode::Status(200),
        Some(self_signed_acceptor()),
        None,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .await;
    let h = Harness::new();
    h.set(&[https_check("with-sni", server.addr, Some("secure.example.test"))]);
    let state = h.wait_reason("with-sni", "StatusCode200").await;
    assert!(state.healthy);
    assert!(state.latency.unwrap().tls_ms.is_some());
    assert_eq!(server.state.snis.lock().unwrap()[0].as_deref(), Some("secure.example.test"));
    assert_eq!(server.seen()[0].host, Some(format!("secure.example.test:{}", server.addr.port())));

    h.set(&[https_check("ip-only", server.addr, None)]);
    h.wait_reason("ip-only", "StatusCode200").await;
    assert!(server.state.snis.lock().unwrap().contains(&None), "no SNI for a bare IP");
}

#[tokio::test]
async fn https_against_a_plain_http_server_fails_the_handshake() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    h.set(&[https_check("not-tls", server.addr, Some("secure.example.test"))]);
    let update = h.next_update().await;
    assert_update(&update, "not-tls", false, "TlsHandshakeFailed");
}

// ---------------------------------------------------------------- search string

#[tokio::test]
async fn search_string_must_lie_within_the_first_5120_bytes() {
    let server = TestServer::http(Mode::Bodies).await;
    let mut h = Harness::new();
    let checks = ["at5100", "at5200", "gzip", "gzip-late", "deflate-raw"]
        .map(|name| with_search(http_check(name, server.addr, &format!("/{name}"))));
    h.set(&checks);

    for passing in ["at5100", "gzip", "deflate-raw"] {
        let state = h.wait_reason(passing, "StatusCode200").await;
        assert!(state.message.contains("search string found"), "{passing}: {}", state.message);
    }
    let mut failed: Vec<String> = Vec::new();
    for _ in 0..2 {
        let update = h.next_update().await;
        assert!(!update.health.healthy);
        assert_eq!(update.health.reason, "SearchStringNotFound", "{update:?}");
        failed.push(update.id.name.to_string());
    }
    failed.sort();
    assert_eq!(failed, ["at5200", "gzip-late"]);
    for passing in ["at5100", "gzip", "deflate-raw"] {
        assert!(h.state(passing).unwrap().healthy, "{passing}");
    }
}

// ---------------------------------------------------------------- TCP

#[tokio::test]
async fn tcp_passes_while_something_listens() {
    let addr = closed_port().await;
    let mut h = Harness::new();
    h.set(&[tcp_check("db", addr)]);
    assert_update(&h.next_update().await, "db", false, "ConnectionRefused");

    let listener = TcpListener::bind(addr).await.unwrap();
    // Accept and hold connections, like a real server.
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn);
        }
    });
    let update = h.next_update().await;
    assert_update(&update, "db", true, "Connected");
    assert!(update.health.latency.unwrap().connect_ms.is_some());

    held.abort();
    let _ = held.await;
    assert_update(&h.next_update().await, "db", false, "ConnectionRefused");
}

// ---------------------------------------------------------------- state machine

#[tokio::test]
async fn inverted_check_reports_the_opposite() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    let mut check = http_check("inv", server.addr, "/");
    check.inverted = true;
    h.set(&[check]);
    let initial = h.state("inv").unwrap();
    assert!(!initial.healthy, "an inverted new check starts unhealthy");
    assert_eq!(initial.reason, "Pending");

    let state = h.wait_reason("inv", "StatusCode200").await;
    assert!(!state.healthy);
    assert!(state.message.contains("inverted"), "{}", state.message);
    h.assert_no_update();

    server.set_mode(Mode::Status(503));
    assert_update(&h.next_update().await, "inv", true, "StatusCode503");
}

#[tokio::test]
async fn failure_threshold_applies_in_both_directions() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    let mut check = http_check("t3", server.addr, "/");
    check.failure_threshold = 3;
    check.interval = Duration::from_millis(150);
    h.set(&[check]);
    h.wait_reason("t3", "StatusCode200").await;

    server.set_mode(Mode::Status(503));
    let down = h.next_update().await;
    assert_update(&down, "t3", false, "StatusCode503");
    assert_eq!((down.health.consecutive_failures, down.health.consecutive_successes), (3, 0));

    server.set_mode(Mode::Status(200));
    let up = h.next_update().await;
    assert_update(&up, "t3", true, "StatusCode200");
    assert_eq!((up.health.consecutive_successes, up.health.consecutive_failures), (3, 0));
}

#[tokio::test]
async fn unchanged_or_threshold_only_changes_keep_state_and_probe_changes_reset_it() {
    let server = TestServer::http(Mode::Status(503)).await;
    let mut h = Harness::new();
    let mut check = http_check("keep", server.addr, "/");
    check.failure_threshold = 2;
    h.set(std::slice::from_ref(&check));
    let down = h.next_update().await;
    assert_update(&down, "keep", false, "StatusCode503");

    // Same checks again: nothing restarts.
    h.set(std::slice::from_ref(&check));
    let state = h.state("keep").unwrap();
    assert!(
        !state.healthy && state.consecutive_failures >= 2 && state.last_probe_time.is_some(),
        "{state:?}"
    );

    // Only the threshold changed: state carries over and probing goes on.
    check.failure_threshold = 5;
    h.set(std::slice::from_ref(&check));
    let before = h.state("keep").unwrap().consecutive_failures;
    assert!(before >= 2);
    let later = h.wait_state("keep", "more failures", |s| s.consecutive_failures > before).await;
    assert!(!later.healthy);

    // What is probed changed: back to the initial state, and the channel says so.
    if let Probe::Http { path, .. } = &mut check.probe {
        *path = "/other".into();
    }
    h.set(std::slice::from_ref(&check));
    let reset = h.next_update().await;
    assert_update(&reset, "keep", true, "Pending");
    assert_eq!(reset.health.consecutive_failures, 0);
    h.wait_state("keep", "probe of the new path", |s| s.reason == "StatusCode503").await;
    assert!(server.seen().iter().any(|s| s.path == "/other"));
    h.assert_no_update();
}

#[tokio::test]
async fn removed_disabled_and_calculated_checks_are_not_probed() {
    let server = TestServer::http(Mode::Status(200)).await;
    let h = Harness::new();
    let live = http_check("live", server.addr, "/live");
    let mut disabled = http_check("disabled", server.addr, "/disabled");
    disabled.disabled = true;
    let calculated = base_check(
        "calc",
        Probe::Calculated { children: vec!["live".into()], health_threshold: 1 },
    );
    h.set(&[live, disabled, calculated]);
    h.wait_state("live", "two probes", |_| server.requests() >= 2).await;
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 1.0).await;
    let states = h.prober.states();
    assert_eq!(
        states.keys().collect::<Vec<_>>(),
        vec![&id("live")],
        "only probed checks have live state"
    );

    h.set(&[]);
    assert!(h.prober.states().is_empty());
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 0.0).await;
    // A probe that was already on the wire may still land; after that, silence.
    sleep(Duration::from_millis(300)).await;
    let settled = server.requests();
    sleep(Duration::from_millis(1000)).await;
    assert_eq!(server.requests(), settled, "probing went on after removal");
    assert!(
        server.seen().iter().all(|s| s.path == "/live"),
        "a disabled or calculated check was probed"
    );
}

// ---------------------------------------------------------------- watch connection

#[tokio::test]
async fn dead_process_is_detected_by_the_watch_connection_before_the_next_probe() {
    let mut server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    let mut check = http_check("fast", server.addr, "/");
    check.interval = Duration::from_millis(300);
    h.set(std::slice::from_ref(&check));
    h.wait_reason("fast", "StatusCode200").await;
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 1.0).await;
    assert!(
        server.connections() > server.requests(),
        "the server holds a connection without a request"
    );

    // A long interval from now on; the running schedule keeps its phase, so the next
    // regular probe is about a minute after the last one.
    check.interval = Duration::from_secs(60);
    h.set(std::slice::from_ref(&check));
    sleep(Duration::from_millis(400)).await;
    let passes = h.metric(PASSES);
    assert_eq!(h.metric("failoverdns_probe_early_total"), 0.0);

    server.kill().await;
    let update = timeout(Duration::from_secs(20), h.updates.recv())
        .await
        .expect("the dead server went unnoticed: the watch did not trigger a probe")
        .unwrap();
    assert_update(&update, "fast", false, "ConnectionRefused");
    // Exactly one probe ran since the kill, and it was the out-of-schedule one.
    assert_eq!(h.metric("failoverdns_probe_early_total"), 1.0);
    assert_eq!(h.metric(PASSES), passes);
    assert_eq!(
        h.metric("failoverdns_probe_results_total{type=\"http\",reason=\"ConnectionRefused\"}"),
        1.0
    );
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
    assert_eq!(h.state("fast").unwrap().consecutive_failures, 1);
}

/// A healthy check at a one-minute interval, its watch connection open, no probe
/// since: what follows can only come from the watch.
async fn watched_check(h: &Harness, server: &TestServer, name: &str, threshold: u32) -> Check {
    let mut check = http_check(name, server.addr, "/");
    check.failure_threshold = threshold;
    check.interval = Duration::from_millis(300);
    h.set(std::slice::from_ref(&check));
    h.wait_reason(name, "StatusCode200").await;
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 1.0).await;
    // The running schedule keeps its phase: the next regular probe is a minute after the last.
    check.interval = Duration::from_secs(60);
    h.set(std::slice::from_ref(&check));
    sleep(Duration::from_millis(400)).await;
    assert_eq!(h.metric("failoverdns_probe_early_total"), 0.0);
    check
}

#[tokio::test]
async fn a_dead_process_is_confirmed_by_a_burst_of_threshold_probes() {
    const THRESHOLD: u32 = 3;
    let mut server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    watched_check(&h, &server, "burst", THRESHOLD).await;
    let passes = h.metric(PASSES);
    h.assert_no_update();

    server.kill().await;
    // Well before the next regular probe, a minute away.
    let update = timeout(Duration::from_secs(20), h.updates.recv())
        .await
        .expect("the dead server went unnoticed: no burst of confirmation probes")
        .unwrap();
    assert_update(&update, "burst", false, "ConnectionRefused");
    assert_eq!(
        (update.health.consecutive_failures, update.health.consecutive_successes),
        (THRESHOLD, 0)
    );
    // Exactly `threshold` probes ran since the kill, all of them out of schedule.
    assert_eq!(h.metric("failoverdns_probe_early_total"), f64::from(THRESHOLD));
    let refused =
        h.metric("failoverdns_probe_results_total{type=\"http\",reason=\"ConnectionRefused\"}");
    assert_eq!(refused, f64::from(THRESHOLD));
    assert_eq!(h.metric(PASSES), passes);
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);

    // The state flipped: the burst is over and the one-minute schedule goes on.
    sleep(Duration::from_millis(500)).await;
    assert_eq!(h.metric("failoverdns_probe_early_total"), f64::from(THRESHOLD));
    assert_eq!(h.state("burst").unwrap().consecutive_failures, THRESHOLD);
    h.assert_no_update();
}

#[tokio::test]
async fn a_lost_watch_on_a_live_target_costs_one_probe_and_changes_nothing() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    watched_check(&h, &server, "alive", 3).await;
    let passes = h.metric(PASSES);

    server.drop_connections().await;
    h.wait_metric(PASSES, |v| v == passes + 1.0).await;
    // The first probe of the burst passed and ended it; only a regular probe reopens the watch.
    sleep(Duration::from_millis(500)).await;
    assert_eq!(h.metric("failoverdns_probe_early_total"), 1.0);
    assert_eq!(h.metric(PASSES), passes + 1.0);
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
    let state = h.state("alive").unwrap();
    assert!(state.healthy && state.consecutive_failures == 0, "{state:?}");
    h.assert_no_update();
}

#[tokio::test]
async fn a_passing_probe_ends_the_burst_before_the_threshold() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    watched_check(&h, &server, "flaky", 3).await;
    let passes = h.metric(PASSES);

    // One failure, then the target answers again: two burst probes, no change.
    server.set_mode(Mode::StatusThen { first: 503, times: 1, then: 200 });
    server.drop_connections().await;
    h.wait_metric(PASSES, |v| v == passes + 1.0).await;
    sleep(Duration::from_millis(500)).await;
    assert_eq!(h.metric("failoverdns_probe_early_total"), 2.0);
    assert_eq!(
        h.metric("failoverdns_probe_results_total{type=\"http\",reason=\"StatusCode503\"}"),
        1.0
    );
    assert_eq!(h.metric(PASSES), passes + 1.0);
    let state = h.state("flaky").unwrap();
    assert!(state.healthy, "{state:?}");
    assert_eq!((state.consecutive_successes, state.consecutive_failures), (1, 0));
    h.assert_no_update();
}

/// A server that closes connections idle for `idle_close`: every watch connection is
/// lost soon after it opens, and the target stays healthy all along.
async fn assert_not_hammered(idle_close: Duration, threshold: u32) {
    const INTERVAL: Duration = Duration::from_millis(600);
    let server = TestServer::start(
        Mode::Status(200),
        None,
        Some(idle_close),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .await;
    let mut h = Harness::new();
    let mut check = http_check("idle-closer", server.addr, "/");
    check.interval = INTERVAL;
    check.failure_threshold = threshold;
    h.set(&[check]);
    h.wait_reason("idle-closer", "StatusCode200").await;
    let start = Instant::now();
    let first = server.requests();
    // The watch was closed by the server and the burst's first probe found it alive.
    h.wait_metric("failoverdns_probe_early_total", |v| v >= 1.0).await;
    sleep(Duration::from_secs(3)).await;
    let requests = server.requests() - first;
    let intervals = (start.elapsed().as_millis() / INTERVAL.as_millis()) as usize + 1;
    // At most one regular and one early probe per interval (plus the one in flight).
    assert!(requests <= 2 * intervals + 2, "{requests} probes in {intervals} intervals");
    let early = h.metric("failoverdns_probe_early_total");
    assert!(early <= intervals as f64 + 1.0, "{early} early probes in {intervals} intervals");
    h.assert_no_update();
}

#[tokio::test]
async fn a_server_that_closes_idle_connections_is_not_hammered() {
    assert_not_hammered(Duration::from_millis(200), 1).await;
}

#[tokio::test]
async fn a_server_that_closes_idle_connections_at_once_is_not_hammered_by_bursts() {
    // Closed right after accept unless the request is already on its way (a probe's is).
    assert_not_hammered(Duration::from_millis(50), 3).await;
}

#[tokio::test]
async fn tcp_check_watch_detects_the_listener_going_away() {
    let addr = closed_port().await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn);
        }
    });
    let mut h = Harness::new();
    let mut check = tcp_check("tcp-fast", addr);
    check.interval = Duration::from_millis(300);
    h.set(std::slice::from_ref(&check));
    h.wait_reason("tcp-fast", "Connected").await;
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 1.0).await;
    check.interval = Duration::from_secs(60);
    h.set(std::slice::from_ref(&check));
    sleep(Duration::from_millis(400)).await;

    held.abort();
    let _ = held.await;
    let update =
        timeout(Duration::from_secs(20), h.updates.recv()).await.expect("not detected").unwrap();
    assert_update(&update, "tcp-fast", false, "ConnectionRefused");
    assert_eq!(h.metric("failoverdns_probe_early_total"), 1.0);
}

// ---------------------------------------------------------------- resources

#[test]
fn ten_thousand_checks_fit_in_a_small_budget() {
    const CHECKS: usize = 10_000;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let h = Harness::new();
        // Nothing listens on port 9 here; with a one-hour interval hardly any probe runs anyway.
        let target = SocketAddr::from(([127, 0, 0, 1], 9));
        let checks: BTreeMap<ObjectRef, Arc<Check>> = (0..CHECKS)
            .map(|i| {
                let mut c = http_check(&format!("check-{i:05}"), target, "/healthz");
                c.interval = Duration::from_secs(3600);
                (c.id.clone(), Arc::new(c))
            })
            .collect();
        // Everything runs on this thread (current-thread runtime), so it is all counted.
        COUNTING.set(true);
        h.prober.set_checks(&checks);
        sleep(Duration::from_millis(200)).await;
        COUNTING.set(false);
        let per_check = COUNTED_BYTES.load(Ordering::Relaxed) / CHECKS as isize;
        eprintln!("idle cost per check: {per_check} bytes");
        // 620 bytes here: the table entry (its Vec's growth slack included), the
        // strings of the initial state, a queue item. A task per check cost 1,449.
        assert!(per_check <= 1024, "{per_check} bytes per check");
        assert_eq!(h.prober.states().len(), CHECKS);
    });
}

/// The global cap holds: with one permit, the probes of three checks against a
/// server that never answers run one at a time, and every check still gets its turn.
#[tokio::test]
async fn probes_beyond_the_in_flight_cap_wait_their_turn() {
    let server = TestServer::http(Mode::Hang).await;
    let h = Harness::with_config(ProberConfig { max_in_flight: 1, ..ProberConfig::default() });
    let checks: Vec<Check> = (0..3)
        .map(|i| {
            let mut check = http_check(&format!("capped-{i}"), server.addr, "/");
            check.timeout = Duration::from_millis(150);
            check
        })
        .collect();
    h.set(&checks);
    let deadline = Instant::now() + SOON;
    let mut most = 0.0f64;
    while !(0..3).all(|i| h.state(&format!("capped-{i}")).is_some_and(|s| s.reason == "Timeout")) {
        assert!(Instant::now() < deadline, "not every check was probed: {:?}", h.prober.states());
        most = most.max(h.metric("failoverdns_probes_in_flight"));
        sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(most, 1.0, "probes in flight beyond the cap");
}

// ---------------------------------------------------------------- hostile targets

/// What a hostile target does after reading the request head.
#[derive(Clone)]
enum Hostile {
    /// 200 without a length, then body bytes until the client goes away.
    EndlessBody,
    /// The response, one byte every `every`, forever.
    Drip(Duration),
    /// A status line, then header lines forever.
    EndlessHeaders,
    /// 200 with `Content-Encoding: gzip` and this body, then the connection is held open.
    Gzip(Arc<Vec<u8>>),
    /// Without waiting for a request, 200 and an endless body to every connection.
    StreamAtOnce,
}

/// One connection of a hostile target, once the client went away.
#[derive(Clone, Copy, Debug)]
struct Finished {
    /// Bytes written after the request head.
    sent: usize,
    /// From the response's first byte until a write failed.
    lasted: Duration,
}

struct HostileTarget {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    finished: Arc<Mutex<Vec<Finished>>>,
    accept: JoinHandle<()>,
}

impl Drop for HostileTarget {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl HostileTarget {
    async fn start(kind: Hostile) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let finished: Arc<Mutex<Vec<Finished>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (record, count) = (finished.clone(), accepted.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (kind, record) = (kind.clone(), record.clone());
                tokio::spawn(async move {
                    if let Some(done) = misbehave(stream, kind).await {
                        record.lock().unwrap().push(done);
                    }
                });
            }
        });
        Self { addr, accepted, finished, accept }
    }

    /// Waits for the first connection the client gave up on.
    async fn first_finished(&self) -> Finished {
        let deadline = Instant::now() + SOON;
        loop {
            if let Some(done) = self.finished.lock().unwrap().first() {
                return *done;
            }
            assert!(Instant::now() < deadline, "the client never let go of the connection");
            sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn misbehave(mut stream: TcpStream, kind: Hostile) -> Option<Finished> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !matches!(kind, Hostile::StreamAtOnce) && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let started = Instant::now();
    let mut sent = 0;
    async fn send_counted(
        stream: &mut TcpStream,
        data: Vec<u8>,
        sent: &mut usize,
    ) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        stream.write_all(&data).await?;
        *sent += data.len();
        Ok(())
    }
    macro_rules! send {
        ($stream:expr, $data:expr) => {
            send_counted($stream, $data, &mut sent)
        };
    }
    let failed = match kind {
        Hostile::EndlessBody | Hostile::StreamAtOnce => {
            let mut result =
                send!(&mut stream, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec())
                    .await;
            while result.is_ok() {
                result = send!(&mut stream, vec![b'x'; 64 * 1024]).await;
            }
            result
        }
        Hostile::Drip(every) => {
            let response = b"HTTP/1.1 200 OK\r\n"
                .iter()
                .copied()
                .chain(b"X-Drip: 1\r\n".iter().copied().cycle());
            let mut result = Ok(());
            for byte in response {
                result = send!(&mut stream, vec![byte]).await;
                if result.is_err() {
                    break;
                }
                sleep(every).await;
            }
            result
        }
        Hostile::EndlessHeaders => {
            let mut result = send!(&mut stream, b"HTTP/1.1 200 OK\r\n".to_vec()).await;
            let line = format!("X-Filler: {}\r\n", "a".repeat(1000)).into_bytes();
            while result.is_ok() {
                result = send!(&mut stream, line.clone()).await;
            }
            result
        }
        Hostile::Gzip(body) => {
            let head =
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/html\r\n\r\n";
            let mut result = send!(&mut stream, head.to_vec()).await;
            if result.is_ok() {
                result = send!(&mut stream, body.to_vec()).await;
            }
            // Held open: only the client can end it. Reading sees it go.
            while result.is_ok() {
                result = match stream.read(&mut buf).await {
                    Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            result
        }
    };
    failed.err().map(|_| Finished { sent, lasted: started.elapsed() })
}

fn hostile_check(name: &str, addr: SocketAddr, search: bool, timeout: Duration) -> Check {
    let mut check = http_check(name, addr, "/");
    if search {
        check = with_search(check);
    }
    check.interval = Duration::from_millis(500);
    check.timeout = timeout;
    check
}

/// Finding 8: a pass or fail is decided by the status line; the body is not read.
#[tokio::test]
async fn an_endless_body_is_not_read_when_the_status_decides() {
    let target = HostileTarget::start(Hostile::EndlessBody).await;
    let timeout = Duration::from_secs(4);
    let h = Harness::new();
    h.set(&[hostile_check("endless", target.addr, false, timeout)]);
    let state = h.wait_reason("endless", "StatusCode200").await;
    assert!(state.latency.unwrap().total_ms < timeout.as_secs_f64() * 1000.0 / 2.0, "{state:?}");
    let done = target.first_finished().await;
    eprintln!("endless body, no search string: {done:?}");
    // What the socket buffers swallow, not a body streamed until the timeout.
    assert!(done.sent < 32 << 20, "{done:?}");
    assert!(done.lasted < timeout / 2, "{done:?}");
}

/// Finding 8 as it shows in a running server: the idle connection kept to notice a
/// target going away must not read a target that streams to every connection.
#[tokio::test]
async fn a_target_that_streams_to_every_connection_is_not_read_forever() {
    let target = HostileTarget::start(Hostile::StreamAtOnce).await;
    let h = Harness::new();
    let mut check = hostile_check("streams", target.addr, false, Duration::from_secs(2));
    check.interval = Duration::from_millis(300);
    h.set(&[check]);
    h.wait_state("streams", "three passing probes", |s| s.consecutive_successes >= 3).await;
    // Every connection, the watch connection included, is let go of.
    let deadline = Instant::now() + SOON;
    loop {
        let finished = target.finished.lock().unwrap().len();
        if finished >= 2 && finished == target.accepted.load(Ordering::SeqCst) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{finished} of {} connections ended",
            target.accepted.load(Ordering::SeqCst)
        );
        sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
    assert_eq!(
        h.metric("failoverdns_probe_early_total"),
        0.0,
        "unsolicited data is no sign of death"
    );
    assert!(h.state("streams").unwrap().healthy);
    for done in target.finished.lock().unwrap().iter() {
        assert!(done.sent < 32 << 20, "{done:?}");
    }
}

#[tokio::test]
async fn an_endless_body_is_read_only_up_to_the_search_window() {
    let target = HostileTarget::start(Hostile::EndlessBody).await;
    let timeout = Duration::from_secs(4);
    let mut h = Harness::new();
    h.set(&[hostile_check("endless-search", target.addr, true, timeout)]);
    let update = h.next_update().await;
    assert_update(&update, "endless-search", false, "SearchStringNotFound");
    assert!(update.health.latency.unwrap().total_ms < timeout.as_secs_f64() * 1000.0 / 2.0);
    let done = target.first_finished().await;
    eprintln!("endless body, search string: {done:?}");
    assert!(done.sent < 32 << 20, "{done:?}");
    assert!(done.lasted < timeout / 2, "{done:?}");
}

#[tokio::test]
async fn a_dripping_response_ends_at_the_check_timeout() {
    let timeout = Duration::from_secs(1);
    for search in [false, true] {
        let target = HostileTarget::start(Hostile::Drip(Duration::from_millis(50))).await;
        let name = if search { "drip-search" } else { "drip" };
        let mut h = Harness::new();
        h.set(&[hostile_check(name, target.addr, search, timeout)]);
        let update = h.next_update().await;
        assert_update(&update, name, false, "Timeout");
        let total = update.health.latency.unwrap().total_ms;
        eprintln!("{name}: verdict after {total:.0} ms");
        // The timeout bounds the whole probe; the slack is scheduling, not the target.
        assert!(total < timeout.as_secs_f64() * 1000.0 + 1500.0, "{total} ms");
        target.first_finished().await;
    }
}

#[tokio::test]
async fn endless_response_headers_are_an_invalid_response() {
    let target = HostileTarget::start(Hostile::EndlessHeaders).await;
    let timeout = Duration::from_secs(4);
    let mut h = Harness::new();
    h.set(&[hostile_check("headers", target.addr, false, timeout)]);
    let update = h.next_update().await;
    assert_update(&update, "headers", false, "InvalidHttpResponse");
    assert!(update.health.message.contains("too large"), "{}", update.health.message);
    let done = target.first_finished().await;
    eprintln!("endless headers: {done:?}");
    assert!(done.sent < 32 << 20, "{done:?}");
    assert!(done.lasted < timeout / 2, "{done:?}");
}

#[tokio::test]
async fn a_gzip_bomb_is_decoded_only_up_to_the_search_window() {
    // 64 MiB of zeros in 64 KiB: the needle, if any, after the window or at the start.
    let mut zeros = vec![0u8; 64 << 20];
    let bomb = Arc::new(gzip(&zeros));
    zeros[..NEEDLE.len()].copy_from_slice(NEEDLE.as_bytes());
    let found = Arc::new(gzip(&zeros));
    drop(zeros);
    eprintln!("gzip bomb: {} bytes for 64 MiB", bomb.len());
    let timeout = Duration::from_secs(4);
    let (bomb_target, found_target) = (
        HostileTarget::start(Hostile::Gzip(bomb)).await,
        HostileTarget::start(Hostile::Gzip(found)).await,
    );
    let h = Harness::new();
    h.set(&[
        hostile_check("bomb", bomb_target.addr, true, timeout),
        hostile_check("found", found_target.addr, true, timeout),
    ]);
    let state = h.wait_reason("bomb", "SearchStringNotFound").await;
    assert!(state.latency.unwrap().total_ms < timeout.as_secs_f64() * 1000.0 / 2.0, "{state:?}");
    let state = h.wait_reason("found", "StatusCode200").await;
    assert!(state.message.contains("search string found"), "{state:?}");
    // The client hung up without waiting for the rest of the stream.
    assert!(bomb_target.first_finished().await.lasted < timeout / 2);
}

// ---------------------------------------------------------------- target guard

/// Counts the connections a listener accepts (and holds them).
async fn counting_listener(addr: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    (addr, count, task)
}

#[tokio::test]
async fn a_denied_target_fails_with_target_denied_and_is_never_connected() {
    let (addr, accepted, listener) = counting_listener("127.0.0.2:0".parse().unwrap()).await;
    // `localhost` resolves to some loopback address; deny both families' loopback.
    let (named_addr, named_accepted, named_listener) = {
        let ip = tokio::net::lookup_host("localhost:0").await.unwrap().next().unwrap().ip();
        counting_listener(SocketAddr::new(ip, 0)).await
    };
    let h = Harness::with_guard(&["127.0.0.2/32", "127.0.0.1/32", "::1/128"], &[]);
    let mut tcp = tcp_check("tcp-denied", addr);
    tcp.interval = Duration::from_millis(100);
    let mut http = http_check("http-denied", addr, "/");
    http.interval = Duration::from_millis(100);
    let mut named = http_check("named-denied", named_addr, "/");
    if let Probe::Http { endpoint, .. } = &mut named.probe {
        *endpoint = Endpoint::Fqdn("localhost".into());
    }
    named.interval = Duration::from_millis(100);
    h.set(&[tcp, http, named]);
    for name in ["tcp-denied", "http-denied", "named-denied"] {
        let state = h.wait_reason(name, "TargetDenied").await;
        assert!(!state.healthy);
        assert!(state.message.contains("--probe-deny"), "{name}: {}", state.message);
    }
    assert!(h.state("tcp-denied").unwrap().message.contains("--probe-deny 127.0.0.2/32"));
    // Several more probe rounds: still nothing reaches the listeners.
    h.wait_state("tcp-denied", "more denied probes", |s| s.consecutive_failures >= 5).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "a denied target was connected to");
    assert_eq!(
        named_accepted.load(Ordering::SeqCst),
        0,
        "a denied resolved address was connected to"
    );
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
    listener.abort();
    named_listener.abort();
}

#[tokio::test]
async fn an_allowed_range_inside_a_denied_one_is_probed() {
    let (allowed_addr, allowed_count, a) = counting_listener("127.0.0.3:0".parse().unwrap()).await;
    let (denied_addr, denied_count, d) = counting_listener("127.0.0.4:0".parse().unwrap()).await;
    let h = Harness::with_guard(&["127.0.0.0/8"], &["127.0.0.3/32"]);
    h.set(&[tcp_check("allowed", allowed_addr), tcp_check("denied", denied_addr)]);
    h.wait_reason("allowed", "Connected").await;
    let denied = h.wait_reason("denied", "TargetDenied").await;
    assert!(denied.message.contains("--probe-deny 127.0.0.0/8"), "{}", denied.message);
    assert!(allowed_count.load(Ordering::SeqCst) >= 1);
    assert_eq!(denied_count.load(Ordering::SeqCst), 0);
    a.abort();
    d.abort();
}
