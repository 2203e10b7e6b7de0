//! One probe of one endpoint: resolve, connect, (TLS), request, verdict.
//!
//! Each probe uses a fresh connection (`Connection: close`, no pooling), so a
//! pass always means the target accepts new connections right now. Phases are
//! timed separately: TCP connect, TLS handshake, and request → response head.
//! GRPC checks share resolution, guard, connect and TLS, and make their call in
//! [`super::grpc`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT_ENCODING, CONNECTION, CONTENT_ENCODING, HOST, USER_AGENT};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::body::{BodyWindow, Encoding, SEARCH_WINDOW};
use super::grpc;
use super::guard::ProbeGuard;
use super::tls::TlsClients;
use crate::health::Latency;
use crate::model::{Endpoint, HttpOptions, Probe};

pub const USER_AGENT_VALUE: &str = "failover-dns";

/// Largest response head (status line and headers) a probe reads; a larger one is
/// an invalid response. Also bounds hyper's read buffer.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// What a probe was doing when it failed or ran out of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Resolving,
    Connecting,
    TlsHandshake,
    AwaitingResponse,
    ReadingBody,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Resolving => "resolving the name",
            Phase::Connecting => "connecting",
            Phase::TlsHandshake => "in the TLS handshake",
            Phase::AwaitingResponse => "waiting for the response",
            Phase::ReadingBody => "reading the body",
        })
    }
}

/// Why a probe failed. [`ProbeError::reason`] is the machine-readable name.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("could not resolve {host}: {detail}")]
    DnsResolution { host: String, detail: String },
    #[error("{}", io_message(*.addr, *.phase, .source))]
    Io {
        addr: SocketAddr,
        phase: Phase,
        #[source]
        source: io::Error,
    },
    #[error("connection to {addr} closed by the server while {phase}")]
    ConnectionClosed { addr: SocketAddr, phase: Phase },
    #[error("no result within the {after:?} timeout; timed out while {phase}")]
    Timeout { phase: Phase, after: Duration },
    #[error("TLS handshake with {addr} failed: {source}")]
    TlsHandshake {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("invalid HTTP response from {addr}: {detail}")]
    InvalidHttpResponse { addr: SocketAddr, detail: String },
    #[error("HTTP status {status} from {addr}; {expected} is required")]
    Status { addr: SocketAddr, status: StatusCode, expected: String },
    #[error(
        "HTTP status {status} from {addr}, but the search string is not within the first {SEARCH_WINDOW} bytes of the body"
    )]
    SearchStringNotFound { addr: SocketAddr, status: StatusCode },
    #[error("cannot decode the response body from {addr}: {detail}")]
    ContentDecoding { addr: SocketAddr, detail: String },
    #[error(
        "Content-Encoding {encoding:?} from {addr} cannot be decoded to look for the search string"
    )]
    UnsupportedContentEncoding { addr: SocketAddr, encoding: String },
    #[error("cannot build the request: {0}")]
    InvalidRequest(String),
    #[error(
        "the certificate of {addr} expires {}, sooner than minCertificateValidity {}",
        expiry_text(*.expires, *.left),
        span(.min.as_secs())
    )]
    CertificateExpiring { addr: SocketAddr, expires: SystemTime, left: i64, min: Duration },
    #[error("cannot read the certificate of {addr} to check its expiry: {detail}")]
    CertificateUnreadable { addr: SocketAddr, detail: String },
    #[error("{addr} is not probed: denied by {rule}")]
    TargetDenied { addr: SocketAddr, rule: String },
    #[error("{addr} answers NOT_SERVING for {}", grpc_target(.service))]
    NotServing { addr: SocketAddr, service: String },
    #[error("{addr} does not know the service {service:?} (grpc.health.v1.Health/Check: {answer})")]
    ServiceUnknown { addr: SocketAddr, service: String, answer: &'static str },
    #[error("{addr} answers UNKNOWN (serving status {value}) for {}", grpc_target(.service))]
    ServingStatusUnknown { addr: SocketAddr, service: String, value: i32 },
    #[error(
        "{addr} has no gRPC health service: grpc.health.v1.Health/Check is UNIMPLEMENTED ({detail})"
    )]
    Unimplemented { addr: SocketAddr, detail: String },
    #[error(
        "{detail}; the server never spoke HTTP/2: is it a gRPC server, and does it expect TLS (tls: true)?"
    )]
    NotHttp2 { reason: String, detail: String },
    #[error("gRPC status {code:?} from {addr}: {detail}")]
    GrpcStatus { addr: SocketAddr, code: tonic::Code, detail: String },
}

/// How a message names what a GRPC check asks about.
fn grpc_target(service: &str) -> String {
    if service.is_empty() { "the whole server".into() } else { format!("the service {service:?}") }
}

impl ProbeError {
    /// The reason name, as shown in the status condition and the metrics.
    pub fn reason(&self) -> String {
        match self {
            ProbeError::DnsResolution { .. } => "DnsResolutionFailed".into(),
            ProbeError::Io { source, .. } => io_reason(source.kind()).into(),
            ProbeError::ConnectionClosed { .. } => "ConnectionClosed".into(),
            ProbeError::Timeout { .. } => "Timeout".into(),
            ProbeError::TlsHandshake { .. } => "TlsHandshakeFailed".into(),
            ProbeError::InvalidHttpResponse { .. } => "InvalidHttpResponse".into(),
            ProbeError::Status { status, .. } => status_reason(*status),
            ProbeError::SearchStringNotFound { .. } => "SearchStringNotFound".into(),
            ProbeError::ContentDecoding { .. } => "ContentDecodingFailed".into(),
            ProbeError::UnsupportedContentEncoding { .. } => "UnsupportedContentEncoding".into(),
            ProbeError::InvalidRequest(_) => "InvalidRequest".into(),
            ProbeError::TargetDenied { .. } => "TargetDenied".into(),
            ProbeError::CertificateExpiring { .. } => "CertificateExpiring".into(),
            ProbeError::CertificateUnreadable { .. } => "CertificateUnreadable".into(),
            ProbeError::NotServing { .. } => "NotServing".into(),
            ProbeError::ServiceUnknown { .. } => "ServiceUnknown".into(),
            ProbeError::ServingStatusUnknown { .. } => "ServingStatusUnknown".into(),
            ProbeError::Unimplemented { .. } => "Unimplemented".into(),
            ProbeError::GrpcStatus { code, .. } => format!("GrpcStatus{code:?}"),
            ProbeError::NotHttp2 { reason, .. } => reason.clone(),
        }
    }
}

fn status_reason(status: StatusCode) -> String {
    format!("StatusCode{}", status.as_u16())
}

fn io_reason(kind: io::ErrorKind) -> &'static str {
    use io::ErrorKind::*;
    match kind {
        ConnectionRefused => "ConnectionRefused",
        ConnectionReset | ConnectionAborted | BrokenPipe => "ConnectionReset",
        UnexpectedEof => "ConnectionClosed",
        TimedOut => "Timeout",
        HostUnreachable => "HostUnreachable",
        NetworkUnreachable => "NetworkUnreachable",
        _ => "ConnectionFailed",
    }
}

fn io_message(addr: SocketAddr, phase: Phase, e: &io::Error) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => format!("connection to {addr} refused (nothing listens on that port)"),
        ConnectionReset | ConnectionAborted | BrokenPipe => {
            format!("connection to {addr} reset while {phase}")
        }
        UnexpectedEof => format!("connection to {addr} closed by the server while {phase}"),
        _ => format!("connection to {addr} failed while {phase}: {e}"),
    }
}

/// A passed probe.
pub(super) struct Pass {
    pub reason: String,
    pub message: String,
    /// TCP checks hand their connection over to be kept as the watch connection.
    pub stream: Option<TcpStream>,
}

/// The result of one probe, before inversion and the failure threshold.
#[derive(Debug)]
pub struct ProbeResult {
    pub passed: bool,
    pub reason: String,
    pub message: String,
    pub latency: Latency,
    /// The address that was probed (known once resolved).
    pub addr: Option<SocketAddr>,
    /// TCP checks: the connection the probe opened, still open.
    pub stream: Option<TcpStream>,
}

/// Progress of a probe, kept outside its future so a timeout can report it.
#[derive(Default)]
pub(super) struct Progress {
    pub phase: Phase,
    pub addr: Option<SocketAddr>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
    pub first_byte: Option<Duration>,
}

/// Runs one probe, bounded by `timeout` as a whole (resolution, connect, TLS,
/// response head and, for a search string, the body window; for GRPC the whole call).
pub async fn run(
    probe: &Probe,
    timeout: Duration,
    tls: &TlsClients,
    guard: &ProbeGuard,
) -> ProbeResult {
    let start = Instant::now();
    let mut progress = Progress::default();
    let work = probe_once(probe, tls, guard, (start + timeout, timeout), &mut progress);
    let result = tokio::time::timeout(timeout, work).await;
    let result =
        result.unwrap_or(Err(ProbeError::Timeout { phase: progress.phase, after: timeout }));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let latency = Latency {
        connect_ms: progress.connect.map(ms),
        tls_ms: progress.tls.map(ms),
        first_byte_ms: progress.first_byte.map(ms),
        total_ms: ms(start.elapsed()),
    };
    match result {
        Ok(pass) => ProbeResult {
            passed: true,
            reason: pass.reason,
            message: pass.message,
            latency,
            addr: progress.addr,
            stream: pass.stream,
        },
        Err(e) => ProbeResult {
            passed: false,
            reason: e.reason(),
            message: e.to_string(),
            latency,
            addr: progress.addr,
            stream: None,
        },
    }
}

async fn probe_once(
    probe: &Probe,
    tls: &TlsClients,
    guard: &ProbeGuard,
    (deadline, timeout): (Instant, Duration),
    progress: &mut Progress,
) -> Result<Pass, ProbeError> {
    match probe {
        Probe::Tcp { endpoint, port } => {
            let addr = resolve(endpoint, *port, guard, progress).await?;
            let stream = connect(addr, progress).await?;
            Ok(Pass {
                reason: "Connected".into(),
                message: format!("connected to {addr}"),
                stream: Some(stream),
            })
        }
        Probe::Http {
            tls: use_tls,
            endpoint,
            port,
            path,
            host_header,
            sni,
            search_string,
            options,
        } => {
            let addr = resolve(endpoint, *port, guard, progress).await?;
            let request = Request::get(path.as_str())
                .header(HOST, host_header.as_str())
                .header(USER_AGENT, USER_AGENT_VALUE)
                .header(CONNECTION, "close");
            // Only a search string needs the body; let the server compress it then.
            let mut request = if search_string.is_some() {
                request.header(ACCEPT_ENCODING, "gzip, deflate")
            } else {
                request
            };
            // Parsed once per check: cloning them shares their bytes. A User-Agent
            // given here replaces the probe's.
            if let Some(options) = options.as_deref()
                && !options.headers.is_empty()
                && let Some(map) = request.headers_mut()
            {
                map.reserve(options.headers.len());
                for (name, value) in options.headers.iter() {
                    map.insert(name.clone(), value.clone());
                }
            }
            let options = options.as_deref();
            let request = request
                .body(Empty::<Bytes>::new())
                .map_err(|e| ProbeError::InvalidRequest(e.to_string()))?;
            let search = search_string.as_deref().map(str::as_bytes);
            let stream = ClosedByReset::new(connect(addr, progress).await?);
            if !use_tls {
                return exchange(stream, request, search, options, addr, progress).await;
            }
            let stream = tls_handshake(stream, &tls.https, sni.as_deref(), addr, progress).await?;
            if let Some(min) = options.and_then(|o| o.min_certificate_validity) {
                certificate_lasts(stream.get_ref().1.peer_certificates(), min, addr)?;
            }
            exchange(stream, request, search, options, addr, progress).await
        }
        Probe::Grpc { tls: use_tls, endpoint, port, authority, sni, service } => {
            let addr = resolve(endpoint, *port, guard, progress).await?;
            let origin = grpc::origin(*use_tls, authority)?;
            let stream = ClosedByReset::new(connect(addr, progress).await?);
            let call = grpc::Call { origin, service, addr, deadline, timeout };
            if !use_tls {
                return call.run(stream, progress).await;
            }
            let stream = tls_handshake(stream, &tls.h2, sni.as_deref(), addr, progress).await?;
            call.run(stream, progress).await
        }
        // Never scheduled (set_checks skips them); an error rather than a panic all the same.
        Probe::Calculated { .. } | Probe::Endpoints { .. } | Probe::Service { .. } => {
            Err(ProbeError::InvalidRequest("calculated and endpoints checks are not probed".into()))
        }
    }
}

/// The TLS handshake over a connected stream. `sni`: the server name to send (none
/// for a bare IP: rustls never sends an IP address as server name).
async fn tls_handshake(
    stream: ClosedByReset,
    config: &Arc<ClientConfig>,
    sni: Option<&str>,
    addr: SocketAddr,
    progress: &mut Progress,
) -> Result<TlsStream<ClosedByReset>, ProbeError> {
    progress.phase = Phase::TlsHandshake;
    let started = Instant::now();
    let server_name = match sni {
        Some(name) => ServerName::try_from(name.to_owned())
            .map_err(|e| ProbeError::InvalidRequest(format!("TLS server name {name:?}: {e}")))?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let stream = TlsConnector::from(config.clone())
        .connect(server_name, stream)
        .await
        .map_err(|source| ProbeError::TlsHandshake { addr, source })?;
    progress.tls = Some(started.elapsed());
    Ok(stream)
}

/// The address to connect to, resolved now when the endpoint is a name, and
/// checked against the guard whichever it is.
async fn resolve(
    endpoint: &Endpoint,
    port: u16,
    guard: &ProbeGuard,
    progress: &mut Progress,
) -> Result<SocketAddr, ProbeError> {
    let addr = match endpoint {
        Endpoint::Ip(ip) => SocketAddr::new(*ip, port),
        Endpoint::Fqdn(host) => {
            progress.phase = Phase::Resolving;
            let failed = |detail: String| ProbeError::DnsResolution { host: host.clone(), detail };
            let mut addrs = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| failed(e.to_string()))?;
            addrs.next().ok_or_else(|| failed("no addresses".into()))?
        }
    };
    guard
        .check(addr.ip())
        .map_err(|denied| ProbeError::TargetDenied { addr, rule: denied.rule })?;
    progress.addr = Some(addr);
    Ok(addr)
}

async fn connect(addr: SocketAddr, progress: &mut Progress) -> Result<TcpStream, ProbeError> {
    progress.phase = Phase::Connecting;
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.map_err(|source| ProbeError::Io {
        addr,
        phase: Phase::Connecting,
        source,
    })?;
    progress.connect = Some(started.elapsed());
    // The request fits in one segment; do not let Nagle hold it back.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A probe's HTTP connection, closed with a reset once the verdict is in (as
/// HAProxy closes its checks): no FIN exchange after the response, and no
/// TIME_WAIT state left on the target for every probe. Half the kernel's work
/// per probe on loopback was the two closing handshakes.
pub(super) struct ClosedByReset(TcpStream);

impl ClosedByReset {
    fn new(stream: TcpStream) -> Self {
        let _ = stream.set_zero_linger();
        Self(stream)
    }
}

impl AsyncRead for ClosedByReset {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClosedByReset {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    /// No FIN: dropping the stream resets the connection.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Fails unless the served (leaf) certificate is still valid `min` from now. Nothing
/// else about it is checked.
fn certificate_lasts(
    chain: Option<&[rustls::pki_types::CertificateDer<'_>]>,
    min: Duration,
    addr: SocketAddr,
) -> Result<(), ProbeError> {
    let unreadable = |detail: String| ProbeError::CertificateUnreadable { addr, detail };
    let leaf = chain
        .and_then(|c| c.first())
        .ok_or_else(|| unreadable("the server sent no certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| unreadable(format!("cannot parse the certificate: {e}")))?;
    let not_after = cert.validity().not_after.timestamp();
    let now = SystemTime::now();
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let left = not_after.saturating_sub(now_secs);
    if left >= i64::try_from(min.as_secs()).unwrap_or(i64::MAX) {
        return Ok(());
    }
    let expires =
        UNIX_EPOCH.checked_add(Duration::from_secs(not_after.max(0) as u64)).unwrap_or(UNIX_EPOCH);
    Err(ProbeError::CertificateExpiring { addr, expires, left, min })
}

/// `2026-12-05T10:00:00Z (in 23h59m)` or `... (expired 2h0m ago)`.
fn expiry_text(expires: SystemTime, left: i64) -> String {
    let at = humantime::format_rfc3339_seconds(expires);
    let span = span(left.unsigned_abs());
    if left >= 0 { format!("{at} (in {span})") } else { format!("{at} (expired {span} ago)") }
}

/// Seconds in hours and minutes, as durations are written in specs: `72h`, `23h59m`,
/// `5m30s`, `42s`.
fn span(secs: u64) -> String {
    let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (hours, minutes, seconds) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// Sends the request over `stream` and judges the response.
async fn exchange<S>(
    stream: S,
    request: Request<Empty<Bytes>>,
    search: Option<&[u8]>,
    options: Option<&HttpOptions>,
    addr: SocketAddr,
    progress: &mut Progress,
) -> Result<Pass, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    progress.phase = Phase::AwaitingResponse;
    let started = Instant::now();
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_header_size(MAX_RESPONSE_HEAD)
        .max_buf_size(MAX_RESPONSE_HEAD)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| hyper_error(&e, addr, Phase::AwaitingResponse))?;
    let work = judge_response(&mut sender, request, search, options, addr, started, progress);
    let (result, conn_error) = while_driving(work, conn).await;
    // Only transport failures defer to the connection's error; verdicts stand.
    result.map_err(|e| match conn_error {
        Some(Some(conn))
            if matches!(e, ProbeError::Io { .. } | ProbeError::ConnectionClosed { .. }) =>
        {
            hyper_error(&conn, addr, progress.phase)
        }
        _ => e,
    })
}

/// Runs `work` (a request) while driving `conn` (its connection, which must be polled
/// for the request to progress): the work's result, and the connection's outcome if it
/// ended first (`Some(Some(error))`: its own error, a parse failure or a reset, explains
/// a failed request better than "closed").
pub(super) async fn while_driving<T, E>(
    work: impl Future<Output = T>,
    conn: impl Future<Output = Result<(), E>>,
) -> (T, Option<Option<E>>) {
    let (mut work, mut conn) = (pin!(work), pin!(conn));
    let mut conn_error = None;
    loop {
        tokio::select! {
            biased;
            result = &mut work => return (result, conn_error),
            done = &mut conn, if conn_error.is_none() => conn_error = Some(done.err()),
        }
    }
}

/// Sends the request and judges the response: a 2xx or 3xx status passes (or one of
/// `expectedStatuses`), and with a search string only when the body window holds it.
/// `started`: when the request was sent, for the time to the response head.
async fn judge_response(
    sender: &mut SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
    search: Option<&[u8]>,
    options: Option<&HttpOptions>,
    addr: SocketAddr,
    started: Instant,
    progress: &mut Progress,
) -> Result<Pass, ProbeError> {
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| hyper_error(&e, addr, Phase::AwaitingResponse))?;
    progress.first_byte = Some(started.elapsed());
    let status = response.status();
    if !HttpOptions::passes(options, status.as_u16()) {
        let expected = HttpOptions::expected_text(options);
        return Err(ProbeError::Status { addr, status, expected });
    }
    let passed = |detail: &str| Pass {
        reason: status_reason(status),
        message: format!("HTTP {status} from {addr}{detail}"),
        stream: None,
    };
    let Some(needle) = search else { return Ok(passed("")) };
    progress.phase = Phase::ReadingBody;
    if body_contains(response, needle, addr).await? {
        Ok(passed("; search string found"))
    } else {
        Err(ProbeError::SearchStringNotFound { addr, status })
    }
}

/// Reads the body, decoded, into the search window; whether `needle` is within it.
async fn body_contains(
    response: Response<Incoming>,
    needle: &[u8],
    addr: SocketAddr,
) -> Result<bool, ProbeError> {
    let encoding = response
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(codec) = Encoding::parse(encoding.as_deref()) else {
        return Err(ProbeError::UnsupportedContentEncoding {
            addr,
            encoding: encoding.unwrap_or_default(),
        });
    };
    let decoding = |detail: String| ProbeError::ContentDecoding { addr, detail };
    let mut window = BodyWindow::new(codec);
    let mut body = response.into_body();
    while !window.is_full() {
        match body.frame().await {
            None => {
                window.finish().map_err(decoding)?;
                break;
            }
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    window.push(data).map_err(decoding)?;
                }
            }
            Some(Err(e)) => return Err(hyper_error(&e, addr, Phase::ReadingBody)),
        }
    }
    Ok(window.contains(needle))
}

/// An I/O error of the connection, owned.
pub(super) fn io_error(io: &io::Error, addr: SocketAddr, phase: Phase) -> ProbeError {
    ProbeError::Io { addr, phase, source: io::Error::new(io.kind(), io.to_string()) }
}

fn hyper_error(e: &hyper::Error, addr: SocketAddr, phase: Phase) -> ProbeError {
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return io_error(io, addr, phase);
        }
        source = inner.source();
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        ProbeError::ConnectionClosed { addr, phase }
    } else {
        ProbeError::InvalidHttpResponse { addr, detail: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_spec_durations() {
        assert_eq!(span(72 * 3600), "72h");
        assert_eq!(span(24 * 3600 - 1), "23h59m");
        assert_eq!(span(330), "5m30s");
        assert_eq!(span(300), "5m");
        assert_eq!(span(42), "42s");
        assert_eq!(span(0), "0s");
    }
}
