//! The admin endpoint: probes for kubelet, Prometheus metrics, status and explain.
//!
//! Any pod may reach it, so connections are bounded the way a kubelet probe needs:
//! a cap overall and per client address (past it, the new connection is reset at
//! once, so one client cannot lock the kubelet out), a deadline for each request
//! head counted from the moment the server waits for it (which also ends idle
//! keep-alive connections), and an idle timeout when nothing moves either way (a
//! client that stops reading its response). Slow and idle connections go within
//! seconds, so the slots of a flood free up quickly.
//!
//! Every route ([`routes`]) reads the published view and never waits for the sink.

mod routes;

use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::conn::{
    Closed, ConnGuard, ConnLimiter, ListenerStats, LogThrottle, Refusal, accept_failed,
    descriptor_cap, reset,
};
use crate::prober::Prober;
use crate::supervisor::Alive;
use crate::view::View;

/// What the routes read: published values and the prober's per-check state.
#[derive(Clone)]
pub struct Admin {
    pub view: Arc<ArcSwap<View>>,
    pub registry: Arc<Registry>,
    pub prober: Prober,
    pub alive: Alive,
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

/// Binds the admin address; the returned future serves it until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    admin: Admin,
    limits: AdminLimits,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
) -> std::io::Result<impl Future<Output = Result<(), std::convert::Infallible>> + Send + 'static> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/status", get(routes::status))
        .route("/explain", get(routes::explain))
        .with_state(admin);
    let listener = listen(addr)?;
    let bound = listener.local_addr()?;
    let mut limits = limits;
    limits.max_connections = descriptor_cap("admin", limits.max_connections, 4);
    let limiter =
        ConnLimiter::new(limits.max_connections, limits.max_connections_per_client, stats);
    tracing::info!(addr = %bound, "admin endpoint listening");
    Ok(async move {
        accept_loop(listener, app, limiter, limits, shutdown).await;
        Ok(())
    })
}

/// A listener with room for a burst of connections (the default backlog of 128
/// drops SYNs while the accept loop waits for descriptors).
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
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
            Ok(guard) => drop(tokio::spawn(connection(
                stream,
                app.clone(),
                guard,
                limiter.clone(),
                limits.clone(),
                shutdown.clone(),
            ))),
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
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "admin connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for IdleIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
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
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
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
