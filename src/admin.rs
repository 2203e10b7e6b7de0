//! The admin endpoint: probes for kubelet, Prometheus metrics, status and explain.
//!
//! Any pod may reach it, so connections are bounded the way a kubelet probe needs:
//! a cap overall and per client address (past it, the new connection is reset at
//! once, so one client cannot lock the kubelet out), a deadline for each request
//! head counted from the moment the server waits for it (which also ends idle
//! keep-alive connections), and an idle timeout when nothing moves either way (a
//! client that stops reading its response). Slow and idle connections go within
//! seconds, so the slots of a flood free up quickly.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;
use serde_json::json;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::conn::{
    Closed, ConnGuard, ConnLimiter, ListenerStats, LogThrottle, Refusal, accept_failed, descriptor_cap, reset,
};
use crate::engine::{Decision, Engine};
use crate::health::{LeafHealth, check_status};
use crate::model::{Check, Fqdn, ObjectRef, Problem};
use crate::resources::HealthCheckStatus;
use crate::snapshot::{Owner, Rcode, record_type};
use crate::state::{SourceError, State};

/// Live health-check states, as the prober sees them (empty without a prober).
pub type ProbeStates = Arc<dyn Fn() -> HashMap<ObjectRef, LeafHealth> + Send + Sync>;

#[derive(Clone)]
pub struct Admin {
    pub state: Arc<Mutex<State>>,
    pub registry: Arc<Registry>,
    pub probe_states: ProbeStates,
    pub dns_ready: Arc<std::sync::atomic::AtomicBool>,
}

/// Bounds of the admin listener (see the module docs); a zero count means no cap.
#[derive(Clone, Debug)]
pub struct AdminLimits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            max_connections: 128,
            max_connections_per_client: 16,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// How long open requests may take to finish once shutdown starts.
const DRAIN: Duration = Duration::from_millis(500);

pub async fn serve(
    addr: SocketAddr,
    admin: Admin,
    limits: AdminLimits,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/explain", get(explain))
        .with_state(admin);
    let listener = listen(addr)?;
    let bound = listener.local_addr()?;
    let mut limits = limits;
    limits.max_connections = descriptor_cap("admin", limits.max_connections, 4);
    let limiter = ConnLimiter::new(limits.max_connections, limits.max_connections_per_client, stats);
    tokio::spawn(accept_loop(listener, app, limiter, limits, shutdown));
    tracing::info!(addr = %bound, "admin endpoint listening");
    Ok(bound)
}

/// A listener with room for a burst of connections (the default backlog of 128
/// drops SYNs while the accept loop waits for descriptors).
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limiter: Arc<ConnLimiter>,
    limits: AdminLimits,
    shutdown: CancellationToken,
) {
    let (refused_log, accept_log) = (LogThrottle::default(), LogThrottle::default());
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed("admin", &error, limiter.stats(), &accept_log).await;
                continue;
            }
        };
        match limiter.try_acquire(peer.ip()) {
            Ok(guard) => drop(tokio::spawn(connection(stream, app.clone(), guard, limiter.clone(), limits.clone(), shutdown.clone()))),
            Err(why) => {
                limiter.stats().refused(why);
                if let Some(suppressed) = refused_log.ready() {
                    let (limit, cap) = match why {
                        Refusal::Total => ("total", limits.max_connections),
                        Refusal::PerClient => ("per_client", limits.max_connections_per_client),
                    };
                    tracing::warn!(client = %peer.ip(), limit, cap, suppressed, "admin connection refused: connection cap reached");
                }
                reset(stream);
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    app: Router,
    _guard: ConnGuard,
    limiter: Arc<ConnLimiter>,
    limits: AdminLimits,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(IdleIo::new(stream, limits.idle_timeout));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let mut conn = pin!(builder.serve_connection(io, TowerToHyperService::new(app)));
    let served = tokio::select! {
        served = conn.as_mut() => served,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(DRAIN, conn).await.unwrap_or(Ok(()))
        }
    };
    let Err(error) = served else { return };
    if error.is_timeout() {
        limiter.stats().closed(Closed::Slow);
    } else if is_idle_timeout(&error) {
        limiter.stats().closed(Closed::Idle);
    }
    tracing::debug!(%error, "admin connection ended");
}

fn is_idle_timeout(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if inner.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::TimedOut) {
            return true;
        }
        source = inner.source();
    }
    false
}

/// A stream that fails with `TimedOut` once neither a read nor a write has made
/// progress for `idle` while the server waits on it.
struct IdleIo {
    inner: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleIo {
    fn new(inner: TcpStream, idle: Duration) -> Self {
        Self { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    fn expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "admin connection idle for too long"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => this.expired(cx),
            ready => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                ready
            }
        }
    }
}

impl AsyncWrite for IdleIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Pending => this.expired(cx),
            ready => {
                if matches!(ready, Poll::Ready(Ok(n)) if n > 0) {
                    this.progressed();
                }
                ready
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.expired(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.expired(cx),
            ready => {
                if matches!(ready, Poll::Ready(Ok(n)) if n > 0) {
                    this.progressed();
                }
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

async fn readyz(AxumState(admin): AxumState<Admin>) -> Response {
    let loaded = admin.state.lock().await.loaded;
    let dns = admin.dns_ready.load(std::sync::atomic::Ordering::Relaxed);
    if loaded && dns {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: configuration loaded={loaded}, dns serving={dns}\n"))
            .into_response()
    }
}

async fn metrics(AxumState(admin): AxumState<Admin>) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &admin.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckStatus<'a> {
    namespace: &'a str,
    name: &'a str,
    #[serde(flatten)]
    check: &'a Check,
    /// Effective health (calculated checks included), as the engine uses it.
    healthy: bool,
    /// The HealthCheck `status`, exactly as cluster mode writes it.
    status: HealthCheckStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<LeafHealth>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody<'a> {
    serial: u32,
    zones: &'a [Fqdn],
    ready: bool,
    health_checks: Vec<CheckStatus<'a>>,
    records: Vec<&'a Decision>,
    problems: Vec<&'a Problem>,
    source_errors: &'a [SourceError],
}

async fn status(AxumState(admin): AxumState<Admin>) -> Response {
    let probes = (admin.probe_states)();
    let state = admin.state.lock().await;
    let (model, verdicts) = (state.model(), state.verdicts());
    let serial = state.snapshot.load().serial;
    let now = std::time::SystemTime::now();
    let health_checks = model
        .checks
        .values()
        .map(|check| CheckStatus {
            namespace: &check.id.namespace,
            name: &check.id.name,
            check,
            healthy: verdicts.get(&check.id).unwrap_or(false),
            status: check_status(check, verdicts, probes.get(&check.id), now),
            probe: probes.get(&check.id).cloned(),
        })
        .collect();
    let decisions = Engine::new(model, verdicts).decide_all();
    let mut records: Vec<&Decision> = decisions.values().map(|d| &**d).collect();
    records.sort_by(|a, b| (&a.name, a.rtype).cmp(&(&b.name, b.rtype)));
    Json(StatusBody {
        serial,
        zones: &model.zones,
        ready: state.loaded,
        health_checks,
        records,
        problems: model.problems.iter().collect(),
        source_errors: &state.source_errors,
    })
    .into_response()
}

async fn explain(AxumState(admin): AxumState<Admin>, Query(params): Query<HashMap<String, String>>) -> Response {
    let bad = |m: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": m }))).into_response();
    let Some(name) = params.get("name") else { return bad("the name parameter is required".into()) };
    let name = match Fqdn::parse(name) {
        Ok(n) => n,
        Err(e) => return bad(format!("name: {e}")),
    };
    let type_text = params.get("type").map_or("A", String::as_str).to_ascii_uppercase();
    let code = match type_text.as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "ANY" => 255,
        other => return bad(format!("type: {other:?} is not one of A, AAAA, CNAME, TXT, MX, SRV, SOA, NS, ANY")),
    };
    let state = admin.state.lock().await;
    let snapshot = state.snapshot.load_full();
    let mut engine = Engine::new(state.model(), state.verdicts());
    let wire = crate::snapshot::wire_name(&name);
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let answer = snapshot.resolve(&wire, code, &mut rng);
    // The decision path: the queried name and every name a CNAME chain reached.
    let mut steps: Vec<Arc<Decision>> = Vec::new();
    let mut names = vec![name.clone()];
    for (owner, _, _) in &answer.records {
        if let Owner::Node(node) = owner
            && let Ok(n) = Fqdn::parse(&node.name().to_ascii())
            && !names.contains(&n)
        {
            names.push(n);
        }
    }
    for n in &names {
        let types = [record_type(code), Some(crate::resources::RecordType::Cname)];
        for t in types.into_iter().flatten() {
            if let Some(d) = engine.decide(&(n.clone(), t)) {
                steps.push(d);
            }
        }
    }
    let answers: Vec<serde_json::Value> = answer
        .records
        .iter()
        .map(|(owner, _, rr)| {
            let owner = match owner {
                Owner::Query => name.to_string(),
                Owner::Node(node) => node.name().to_ascii(),
            };
            json!({ "name": owner, "type": rr.rdata().record_type().to_string(), "ttl": rr.ttl, "value": rr.rdata().to_string() })
        })
        .collect();
    let rcode = match answer.rcode {
        Rcode::NoError => "NOERROR",
        Rcode::NxDomain => "NXDOMAIN",
        Rcode::Refused => "REFUSED",
    };
    let zone = snapshot.zone_of(&wire).map(|z| snapshot.zones[z].name.to_string());
    let summary = match (answer.rcode, answer.records.is_empty(), zone.is_some()) {
        (Rcode::Refused, _, _) => format!("{name} is outside every served zone: REFUSED"),
        (Rcode::NxDomain, _, _) => format!("{name} has no records of any type: NXDOMAIN with the zone SOA"),
        (_, true, _) => format!("{name} exists but has no {type_text} records: NOERROR with no answers (NODATA) and the zone SOA"),
        _ => format!("{} record(s) in the answer", answer.records.len()),
    };
    Json(json!({
        "name": name,
        "type": type_text,
        "zone": zone,
        "rcode": rcode,
        "summary": summary,
        "serial": snapshot.serial,
        "decisions": steps.iter().map(|d| &**d).collect::<Vec<&Decision>>(),
        "exampleAnswer": answers,
    }))
    .into_response()
}
