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
//!   the timeout and a stopped prober included, and costs no task switches;
//! * the call costs one write, as an HTTP probe's request does: the connection
//!   preface, the client's SETTINGS and the call go out together (`Batched`), and
//!   nothing is written once the server has ended the call's stream (the
//!   acknowledgements of a PING or SETTINGS that came with the answer are dropped
//!   with the connection).
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
use std::task::{Context, Poll, ready};
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
        let stream = FirstFrame {
            stream: Batched::new(stream),
            head: Vec::new(),
            spoke_h2: spoke_h2.clone(),
        };
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

/// Most bytes held back before a write goes through to the socket.
const MAX_BATCH: usize = 16 * 1024;

/// The call's stream: the first (and only) one the probe's connection opens.
const CALL_STREAM: u32 = 1;

/// A stream whose writes wait for a flush, so that what h2 writes between two
/// flushes reaches the socket in one write, and that writes nothing once the answer
/// is in. An HTTP/2 call would otherwise cost a probe three writes where an HTTP
/// probe makes one:
///
/// * the connection preface (which h2 writes on its own, unflushed), the client's
///   SETTINGS and the call's HEADERS and DATA go out together, as the probe queues
///   the call before it first polls the connection (and so before h2's first flush);
///   the acknowledgement of the server's SETTINGS joins them when those arrived first;
/// * once the server has ended the call's stream (its trailers, or a reset of the
///   stream), the probe has its verdict and resets the connection next: what h2 still
///   writes is dropped, such as the acknowledgement of the PING that grpc-go sends
///   when the request's data arrives (to size its flow-control window), or of SETTINGS
///   that came with the answer.
struct Batched<S> {
    stream: S,
    /// Written by h2, not yet to the socket.
    pending: Vec<u8>,
    /// How much of `pending` the socket has taken.
    sent: usize,
    /// The header of the frame being received, and how much of it is in.
    head: [u8; FRAME_HEAD],
    head_len: usize,
    /// The payload bytes of the frame being received still to come.
    payload_left: usize,
    /// The server has ended the call's stream.
    answered: bool,
}

impl<S> Batched<S> {
    fn new(stream: S) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            sent: 0,
            head: [0; FRAME_HEAD],
            head_len: 0,
            payload_left: 0,
            answered: false,
        }
    }

    /// Follows the frames received, to the end of the call's stream: a DATA or
    /// HEADERS frame with END_STREAM, or RST_STREAM.
    fn received(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.answered {
            if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEAD - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
            self.head_len += n;
            bytes = &bytes[n..];
            if self.head_len < FRAME_HEAD {
                break;
            }
            self.head_len = 0;
            let h = self.head;
            self.payload_left = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
            let (kind, flags) = (h[3], h[4]);
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            const DATA: u8 = 0;
            const HEADERS: u8 = 1;
            const RST_STREAM: u8 = 3;
            const END_STREAM: u8 = 1;
            self.answered = stream == CALL_STREAM
                && (matches!(kind, DATA | HEADERS) && flags & END_STREAM != 0
                    || kind == RST_STREAM);
        }
    }
}

impl<S: AsyncWrite + Unpin> Batched<S> {
    /// Writes what waits to the socket, all of it.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Batched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        self.received(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Batched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.answered {
            return Poll::Ready(Ok(len));
        }
        if self.pending.len() + len > MAX_BATCH {
            ready!(self.poll_send(cx))?;
        }
        for buf in bufs {
            self.pending.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.answered {
            ready!(self.poll_send(cx))?;
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.answered {
            ready!(self.poll_send(cx))?;
        }
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

    /// A stream that records every write reaching it and reads what it was given,
    /// a chunk at a time.
    #[derive(Default)]
    struct Recorded {
        writes: Vec<Vec<u8>>,
        flushes: usize,
        chunks: std::collections::VecDeque<Vec<u8>>,
    }

    impl AsyncRead for Recorded {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(chunk) = self.chunks.pop_front() {
                buf.put_slice(&chunk);
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Recorded {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const SETTINGS_ACK: [u8; FRAME_HEAD] = [0, 0, 0, 4, 1, 0, 0, 0, 0];

    /// A frame: its header (length, type, flags, stream) and payload.
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        [&len[1..], &[kind, flags], &stream.to_be_bytes(), payload].concat()
    }

    #[tokio::test]
    async fn writes_wait_for_a_flush() {
        use tokio::io::AsyncWriteExt;
        let mut stream = Batched::new(Recorded::default());
        let settings = frame(4, 0, 0, &[0, 2, 0, 0, 0, 0]);
        stream.write_all(PREFACE).await.unwrap();
        stream.write_all(&settings).await.unwrap();
        assert!(stream.stream.writes.is_empty(), "written before a flush");
        stream.flush().await.unwrap();
        assert_eq!(stream.stream.writes, [[PREFACE, &settings].concat()]);
        assert_eq!(stream.stream.flushes, 1);

        // More than a batch goes through without a flush.
        stream.write_all(&vec![0; MAX_BATCH]).await.unwrap();
        stream.write_all(&SETTINGS_ACK).await.unwrap();
        assert_eq!(stream.stream.writes[1].len(), MAX_BATCH);
        stream.shutdown().await.unwrap();
        assert_eq!(stream.stream.writes[2], SETTINGS_ACK);
    }

    #[tokio::test]
    async fn nothing_is_written_once_the_call_stream_ends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = Batched::new(Recorded::default());
        let payload = [0, 0, 0, 0, 2, 8, 1];
        let answer = [
            frame(4, 0, 0, &[0, 5, 0, 0, 0x40, 0]),
            // END_STREAM on another stream, or without END_STREAM on the call's
            frame(0, 1, 3, &payload),
            frame(1, 4, CALL_STREAM, &[0x88]),
            frame(0, 0, CALL_STREAM, &payload),
            frame(6, 0, 0, &[7; 8]),
        ]
        .concat();
        // Frame headers split across reads.
        for chunk in answer.chunks(4) {
            stream.stream.chunks.push_back(chunk.to_vec());
        }
        stream.read_exact(&mut vec![0; answer.len()]).await.unwrap();
        let ping_ack = frame(6, 1, 0, &[7; 8]);
        stream.write_all(&SETTINGS_ACK).await.unwrap();
        stream.write_all(&ping_ack).await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(stream.stream.writes, [[&SETTINGS_ACK[..], &ping_ack].concat()]);

        // The trailers: the answer is in, and what h2 writes next is dropped.
        stream.stream.chunks.push_back(frame(1, 5, CALL_STREAM, &[0x40, 0x88]));
        stream.read_exact(&mut [0; FRAME_HEAD + 2]).await.unwrap();
        stream.write_all(&ping_ack).await.unwrap();
        stream.flush().await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(stream.stream.writes.len(), 1, "written after the answer");

        // A reset of the call's stream ends it too.
        let mut stream = Batched::new(Recorded::default());
        stream.stream.chunks.push_back(frame(3, 0, CALL_STREAM, &[0, 0, 0, 8]));
        stream.read_exact(&mut [0; FRAME_HEAD + 4]).await.unwrap();
        stream.write_all(&ping_ack).await.unwrap();
        stream.flush().await.unwrap();
        assert!(stream.stream.writes.is_empty(), "written after the reset");
    }

    /// A gRPC server on loopback with tonic-health's service, served by hyper's HTTP/2
    /// server with its adaptive window: like grpc-go, it sends a PING when the
    /// request's data arrives.
    async fn health_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_, health) = tonic_health::server::health_reporter();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let health = health.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let mut health = health.clone();
                        async move { tower_service::Service::call(&mut health, request).await }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .adaptive_window(true)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        addr
    }

    /// Writes, and reads that brought bytes, in order (`true`: a write).
    type Log = Arc<std::sync::Mutex<Vec<(bool, Vec<u8>)>>>;

    /// A socket whose writes and reads are logged.
    struct Tapped {
        stream: tokio::net::TcpStream,
        log: Log,
    }

    impl AsyncRead for Tapped {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
            if buf.filled().len() > before {
                self.log.lock().unwrap().push((false, buf.filled()[before..].to_vec()));
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Tapped {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, buf))?;
            self.log.lock().unwrap().push((true, buf[..n].to_vec()));
            Poll::Ready(Ok(n))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_shutdown(cx)
        }
    }

    /// The frames in `bytes` (after the preface): type, flags and stream of each.
    fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32)> {
        let mut frames = Vec::new();
        while bytes.len() >= FRAME_HEAD {
            let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
            let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
            frames.push((bytes[3], bytes[4], stream));
            bytes = &bytes[(FRAME_HEAD + len).min(bytes.len())..];
        }
        frames
    }

    #[tokio::test]
    async fn a_call_is_one_write_and_nothing_follows_the_answer() {
        let addr = health_server().await;
        for _ in 0..20 {
            let log = Log::default();
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tapped = Tapped { stream, log: log.clone() };
            let call = Call {
                origin: origin(false, &addr.to_string()).unwrap(),
                service: "",
                addr,
                deadline: Instant::now() + Duration::from_secs(5),
                timeout: Duration::from_secs(5),
            };
            let pass = call.run(tapped, &mut Progress::default()).await.unwrap();
            assert_eq!(pass.reason, "Serving");
            let log = log.lock().unwrap().clone();
            let writes: Vec<_> = log.iter().filter(|(write, _)| *write).map(|(_, b)| b).collect();
            // The preface, SETTINGS, the call's HEADERS and its DATA, which ends the
            // stream: one write.
            let first = writes[0].strip_prefix(PREFACE).expect("the preface first");
            let sent = frames(first);
            assert_eq!(sent[0], (4, 0, 0), "the client's SETTINGS: {sent:?}");
            assert!(sent.contains(&(1, 4, CALL_STREAM)), "the call's HEADERS: {sent:?}");
            assert_eq!(sent.last(), Some(&(0, 1, CALL_STREAM)), "the call's DATA: {sent:?}");
            // The server's SETTINGS and PING, when they arrive before the answer,
            // are acknowledged; nothing is written once the answer is in (the last
            // read brought its end).
            for later in &writes[1..] {
                let acks = frames(later)
                    .iter()
                    .all(|&(kind, flags, _)| matches!(kind, 4 | 6) && flags == 1);
                assert!(acks, "written after the call: {writes:?}");
            }
            assert!(!log.last().unwrap().0, "written after the answer: {log:?}");
        }
    }

    #[test]
    fn an_ipv6_authority_is_a_valid_origin() {
        let uri = origin(true, "[::1]:50051").unwrap();
        assert_eq!(uri.scheme_str(), Some("https"));
        assert_eq!(uri.authority().unwrap().as_str(), "[::1]:50051");
    }
}
