//! The prober against real servers on 127.0.0.1 started by each test (HTTP, TLS and
//! TCP here, gRPC in `support::grpc`).
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

mod grpc;
mod guard;
mod hostile;
mod probes;
mod resources;
mod state_machine;
mod watch;

/// Deadline for anything that should happen "soon": generous, never a measurement.
const SOON: Duration = Duration::from_secs(10);
const NEEDLE: &str = "failover-dns-OK";
const PASSES: &str = "failoverdns_probe_results_total{type=\"http\",reason=\"StatusCode200\"}";

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
    /// Answer 200 with the request's headers as the body, one `name: value` a line.
    Echo,
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    host: Option<String>,
    user_agent: Option<String>,
    /// Every request header, as the server read it (names lower case).
    headers: Vec<(String, String)>,
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
        headers: request
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
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
        Mode::Echo => {
            let body: String = request
                .headers()
                .iter()
                .map(|(n, v)| format!("{n}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            response.body(Full::new(Bytes::from(body))).unwrap()
        }
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

/// A TLS acceptor with a self-signed certificate valid from an hour ago for `valid_for`.
fn acceptor_valid_for(valid_for: Duration) -> tokio_rustls::TlsAcceptor {
    let now = std::time::SystemTime::now();
    let mut params = rcgen::CertificateParams::new(vec!["secure.example.test".into()]).unwrap();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + valid_for).into();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
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
        healthy_threshold: 1,
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
            options: None,
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
            options: None,
        },
    )
}

/// A check as the model validates `spec` (which must be valid), probed every 200 ms
/// with a failure threshold of 1.
fn validated_check(name: &str, spec: HealthCheckSpec) -> Check {
    let input = Input { id: id(name), seq: 0, file: None, generation: None, spec };
    let model = model::validate(&[], &[input], &[]);
    assert!(model.problems.is_empty(), "{:?}", model.problems);
    let mut check = (*model.checks[&id(name)]).clone();
    check.interval = Duration::from_millis(200);
    check.failure_threshold = 1;
    check.healthy_threshold = 1;
    check
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
        let mut registry = failover_dns::metrics::registry();
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
