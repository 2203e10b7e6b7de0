//! GRPC checks: one call of the standard `grpc.health.v1.Health/Check` (tonic-health's
//! generated client and messages) over an HTTP/2 connection of the probe's own.
//!
//! Resolution, the probe guard, the TCP connect and the TLS handshake are the HTTP
//! probes' ([`super::probe`]): the address is checked after every resolution and
//! nothing connects to a denied one; TLS does not validate the certificate, sends SNI
//! only for an `fqdn`, and offers `h2` by ALPN (gRPC servers require it over TLS). The
//! check's timeout bounds the whole probe, the call included; the time left is also
//! sent as `grpc-timeout`, so the server gives up when the probe does.
//!
//! # Connections
//!
//! Each probe opens a fresh connection, makes one call and closes it with a reset,
//! exactly like an HTTP probe, rather than keeping an HTTP/2 connection per check and
//! calling on it again and again:
//!
//! * a pass means what it means for HTTP: the target accepts new connections right
//!   now (a kept connection can outlive a server that no longer accepts any, or one
//!   that a load balancer no longer routes new connections to);
//! * between probes a check costs what an HTTP check costs (its table entry and the
//!   idle watch connection), not a live HTTP/2 connection with its task, buffers and
//!   flow-control state for each of 10,000 checks;
//! * the connection is driven inside the probe's future (the h2 crate's client, not
//!   hyper's, which would spawn it as a task of its own), so it ends with the probe,
//!   the timeout and a stopped prober included, and costs no task switches.
//!
//! Fast failure detection is the HTTP probes' too: after a passing probe the
//! scheduler holds an idle TCP connection to the target ([`super::watch`]) and a
//! reset or close of it starts a confirmation burst. A gRPC server sends its HTTP/2
//! SETTINGS on that connection at once (read and dropped) and may close it after its
//! handshake timeout (grpc-go: 120 s); that close costs one early probe, which passes,
//! within the scheduler's rate rule.
//!
//! # Verdicts
//!
//! `SERVING` passes (reason `Serving`). `NOT_SERVING` fails with `NotServing`;
//! `SERVICE_UNKNOWN`, or the call failing with `NOT_FOUND` (what the health protocol
//! answers for an unknown service), with `ServiceUnknown`; `UNKNOWN` with
//! `ServingStatusUnknown`. A server without the health service answers
//! `UNIMPLEMENTED` (`Unimplemented`); any other gRPC status fails with
//! `GrpcStatus<Code>` (`GrpcStatusUnavailable`, `GrpcStatusPermissionDenied`; an
//! HTTP status other than 200 is mapped to a code as the gRPC spec says, so an
//! HTTP/2 server that answers 404 is `Unimplemented`), `DEADLINE_EXCEEDED` with
//! `Timeout`. Transport failures keep the HTTP reasons (`ConnectionRefused`,
//! `ConnectionReset`, `ConnectionClosed`, `TlsHandshakeFailed`, ...). A server that
//! does not speak HTTP/2 at all (an HTTP/1 server, or a TLS one while `tls` is unset)
//! answers the HTTP/2 preface with garbage (`InvalidHttpResponse`) or by closing or
//! resetting the connection (`ConnectionClosed`, `ConnectionReset`); when its first
//! bytes were no HTTP/2 SETTINGS frame, the message asks whether it is a gRPC server
//! and whether it expects TLS.

use std::error::Error as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper::{Request, Response, Uri};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::probe::{Pass, Phase, ProbeError, Progress, io_error};

/// Largest response header list (and health message) a probe accepts; the answer
/// is a few bytes, a larger one is an invalid response.
const MAX_RESPONSE: usize = 64 * 1024;

/// The origin of the calls: the scheme and the `:authority` the server sees.
pub(super) fn origin(tls: bool, authority: &str) -> Result<Uri, ProbeError> {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{authority}")
        .parse()
        .map_err(|e| ProbeError::InvalidRequest(format!("gRPC authority {authority:?}: {e}")))
}

/// One health call, once connected.
pub(super) struct Call<'a> {
    pub origin: Uri,
    pub service: &'a str,
    pub addr: SocketAddr,
    /// When the probe's timeout ends.
    pub deadline: Instant,
    /// The check's timeout.
    pub timeout: Duration,
}

impl Call<'_> {
    /// Speaks HTTP/2 over `stream`, makes the call and judges its answer.
    pub async fn run<S>(self, stream: S, progress: &mut Progress) -> Result<Pass, ProbeError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let addr = self.addr;
        progress.phase = Phase::AwaitingResponse;
        let started = Instant::now();
        let spoke_h2 = Arc::new(AtomicBool::new(false));
        let stream = FirstFrame { stream, head: Vec::new(), spoke_h2: spoke_h2.clone() };
        let (sender, conn) = h2::client::Builder::new()
            .max_header_list_size(MAX_RESPONSE as u32)
            .enable_push(false)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| h2_error(&e, addr, Phase::AwaitingResponse))?;
        let mut client = HealthClient::with_origin(Http2(sender), self.origin.clone())
            .max_decoding_message_size(MAX_RESPONSE);
        let mut request =
            tonic::Request::new(HealthCheckRequest { service: self.service.to_owned() });
        request.set_timeout(self.deadline.saturating_duration_since(Instant::now()));
        // The connection's own error (a reset, a protocol error) explains a failed
        // call better than the call's.
        let (result, conn_error) = super::probe::while_driving(client.check(request), conn).await;
        match result {
            Ok(response) => {
                progress.first_byte = Some(started.elapsed());
                self.judge(response.into_inner())
            }
            Err(status) => {
                let e = self.failed(status, conn_error.flatten(), progress.phase);
                Err(if spoke_h2.load(Ordering::Relaxed) { e } else { not_http2(e) })
            }
        }
    }

    /// The health answer: SERVING passes.
    fn judge(&self, answer: HealthCheckResponse) -> Result<Pass, ProbeError> {
        let (addr, service) = (self.addr, self.service.to_owned());
        match ServingStatus::try_from(answer.status) {
            Ok(ServingStatus::Serving) => Ok(Pass {
                reason: "Serving".into(),
                message: if service.is_empty() {
                    format!("SERVING from {addr} (the whole server)")
                } else {
                    format!("SERVING from {addr} for the service {service:?}")
                },
                stream: None,
            }),
            Ok(ServingStatus::NotServing) => Err(ProbeError::NotServing { addr, service }),
            Ok(ServingStatus::ServiceUnknown) => {
                Err(ProbeError::ServiceUnknown { addr, service, answer: "SERVICE_UNKNOWN" })
            }
            Ok(ServingStatus::Unknown) | Err(_) => {
                Err(ProbeError::ServingStatusUnknown { addr, service, value: answer.status })
            }
        }
    }

    /// A call that ended in a gRPC status other than OK: a transport failure (the
    /// connection's error first) or the server's own status.
    fn failed(
        &self,
        status: tonic::Status,
        conn_error: Option<h2::Error>,
        phase: Phase,
    ) -> ProbeError {
        let addr = self.addr;
        let transport = transport_error(&status);
        let conn = conn_error.as_ref().filter(|_| transport.is_some());
        if let Some(e) = conn.or(transport) {
            return h2_error(e, addr, phase);
        }
        let detail = status.message().to_owned();
        match status.code() {
            Code::Unimplemented => ProbeError::Unimplemented { addr, detail },
            Code::NotFound => ProbeError::ServiceUnknown {
                addr,
                service: self.service.to_owned(),
                answer: "NOT_FOUND",
            },
            Code::DeadlineExceeded => ProbeError::Timeout { phase, after: self.timeout },
            code => ProbeError::GrpcStatus { addr, code, detail },
        }
    }
}

/// A failure before the server's first HTTP/2 frame: what an HTTP/1 server (or a
/// TLS one spoken to in cleartext) does to the HTTP/2 preface, answering garbage or
/// closing or resetting the connection. The reason stays; the message says what to
/// look at.
fn not_http2(e: ProbeError) -> ProbeError {
    match &e {
        ProbeError::ConnectionClosed { .. } | ProbeError::InvalidHttpResponse { .. } => {}
        ProbeError::Io { source, .. }
            if matches!(
                source.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ) => {}
        _ => return e,
    }
    ProbeError::NotHttp2 { reason: e.reason(), detail: e.to_string() }
}

/// The length of an HTTP/2 frame header.
const FRAME_HEAD: usize = 9;

/// A stream that notes whether the peer's first bytes are an HTTP/2 server's first
/// frame: a SETTINGS frame (type 4) on stream 0.
struct FirstFrame<S> {
    stream: S,
    /// The first bytes received, until a frame header is complete.
    head: Vec<u8>,
    spoke_h2: Arc<AtomicBool>,
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstFrame<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        let wanted = FRAME_HEAD - self.head.len();
        if wanted > 0 {
            let new = &buf.filled()[before..];
            let take = &new[..new.len().min(wanted)];
            self.head.extend_from_slice(take);
            if self.head.len() == FRAME_HEAD && self.head[3] == 4 && self.head[5..] == [0; 4] {
                self.spoke_h2.store(true, Ordering::Relaxed);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstFrame<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// An error and its sources, `: `-separated.
fn with_sources(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The HTTP/2 error under a status that tonic made of a transport failure.
fn transport_error(status: &tonic::Status) -> Option<&h2::Error> {
    let mut source = status.source();
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return Some(h2);
        }
        source = e.source();
    }
    None
}

/// What an HTTP/2 failure means for the probe: the connection's I/O error, or a
/// protocol violation (an invalid HTTP response).
fn h2_error(e: &h2::Error, addr: SocketAddr, phase: Phase) -> ProbeError {
    match e.get_io() {
        Some(io) => io_error(io, addr, phase),
        None => ProbeError::InvalidHttpResponse { addr, detail: with_sources(e) },
    }
}

/// An HTTP/2 client connection's sender (the h2 crate's, driven in the probe's own
/// future: no task of its own, unlike hyper's) as the service tonic's client calls
/// through. A unary call's body is one message, encoded at once: it is sent whole,
/// with the end of the stream.
struct Http2(h2::client::SendRequest<Bytes>);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Request<tonic::body::Body>> for Http2 {
    type Response = Response<Answer>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Answer>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let mut sender = self.0.clone();
        Box::pin(async move {
            let (head, body) = request.into_parts();
            let message = body.collect().await?.to_bytes();
            let (response, mut stream) =
                sender.send_request(Request::from_parts(head, ()), false)?;
            stream.send_data(message, true)?;
            let response = response.await?;
            Ok(response.map(|recv| Answer { recv, data_done: false, done: false }))
        })
    }
}

/// A response body from h2: its data, then its trailers (where gRPC's status is).
struct Answer {
    recv: h2::RecvStream,
    data_done: bool,
    done: bool,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.data_done {
            match self.recv.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => self.data_done = true,
            }
        }
        match self.recv.poll_trailers(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.done = true;
                Poll::Ready(result.transpose().map(|r| r.map(Frame::trailers)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(service: &str) -> Call<'_> {
        Call {
            origin: origin(false, "127.0.0.1:50051").unwrap(),
            service,
            addr: "127.0.0.1:50051".parse().unwrap(),
            deadline: Instant::now(),
            timeout: Duration::from_secs(1),
        }
    }

    /// The answers a real health service gives only through Watch or by mistake.
    #[test]
    fn every_serving_status_has_its_reason() {
        let reason = |status: i32| match call("app.Api").judge(HealthCheckResponse { status }) {
            Ok(pass) => pass.reason,
            Err(e) => e.reason(),
        };
        assert_eq!(reason(ServingStatus::Serving as i32), "Serving");
        assert_eq!(reason(ServingStatus::NotServing as i32), "NotServing");
        assert_eq!(reason(ServingStatus::ServiceUnknown as i32), "ServiceUnknown");
        assert_eq!(reason(ServingStatus::Unknown as i32), "ServingStatusUnknown");
        assert_eq!(reason(42), "ServingStatusUnknown");
    }

    #[test]
    fn grpc_statuses_name_their_reasons() {
        let reason = |code: Code| {
            call("").failed(tonic::Status::new(code, "x"), None, Phase::AwaitingResponse).reason()
        };
        assert_eq!(reason(Code::Unimplemented), "Unimplemented");
        assert_eq!(reason(Code::NotFound), "ServiceUnknown");
        assert_eq!(reason(Code::DeadlineExceeded), "Timeout");
        assert_eq!(reason(Code::Unavailable), "GrpcStatusUnavailable");
        assert_eq!(reason(Code::PermissionDenied), "GrpcStatusPermissionDenied");
    }

    #[test]
    fn an_ipv6_authority_is_a_valid_origin() {
        let uri = origin(true, "[::1]:50051").unwrap();
        assert_eq!(uri.scheme_str(), Some("https"));
        assert_eq!(uri.authority().unwrap().as_str(), "[::1]:50051");
    }
}
