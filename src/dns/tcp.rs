//! DNS over TCP (RFC 7766), answered by the same responder as the UDP fast path so
//! both transports agree byte for byte on every query, malformed ones included.
//!
//! Every resource a client can hold is bounded: connections overall and per client
//! address (refused at accept with a reset past the cap), the idle time before a
//! query starts, the time to receive one query once it has started and to take its
//! answer, and the queries answered on one connection. Queries on one connection
//! are answered one after the other, so pipelining costs a read buffer and one
//! batch of answers not yet written (written at the latest past 32 KiB): the rest
//! waits in the kernel's socket buffer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::wire;
use crate::conn::{
    Closed, ConnGuard, ConnLimiter, LogThrottle, Refusal, accept_failed, descriptor_cap, reset,
};
use crate::metrics::{DnsStats, Transport};
use crate::snapshot::Snapshot;

/// Limits of the TCP listener; a zero count means unbounded (the connection cap is
/// still lowered to half the open-files limit, see [`descriptor_cap`]).
#[derive(Clone, Debug)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Waiting for the first byte of the next query.
    pub idle_timeout: Duration,
    /// Receiving the rest of a query once its first byte arrived, and writing its answer.
    pub query_timeout: Duration,
    pub max_queries_per_connection: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_client: 64,
            idle_timeout: Duration::from_secs(10),
            query_timeout: Duration::from_secs(2),
            max_queries_per_connection: 1000,
        }
    }
}

impl TcpLimits {
    /// Whether a connection that received `received` queries may receive no more.
    fn query_limit_reached(&self, received: usize) -> bool {
        self.max_queries_per_connection > 0 && received >= self.max_queries_per_connection
    }
}

/// How long in-flight queries may take to finish once shutdown starts.
const DRAIN: Duration = Duration::from_millis(500);

struct Ctx {
    snapshot: Arc<ArcSwap<Snapshot>>,
    stats: Arc<DnsStats>,
    shard: usize,
    limits: TcpLimits,
    shutdown: CancellationToken,
    closed_log: LogThrottle,
}

/// Accepts and serves connections until `shutdown`, then lets the queries already
/// received be answered (for at most [`DRAIN`]) and closes everything.
pub async fn serve(
    listener: TcpListener,
    snapshot: Arc<ArcSwap<Snapshot>>,
    stats: Arc<DnsStats>,
    shard: usize,
    limits: TcpLimits,
    shutdown: CancellationToken,
) {
    let mut limits = limits;
    limits.max_connections = descriptor_cap("dns-tcp", limits.max_connections, 2);
    let limiter = ConnLimiter::new(
        limits.max_connections,
        limits.max_connections_per_client,
        stats.tcp.clone(),
    );
    let ctx = Arc::new(Ctx {
        snapshot,
        stats,
        shard,
        limits,
        shutdown: shutdown.clone(),
        closed_log: LogThrottle::default(),
    });
    let refused_log = LogThrottle::default();
    let accept_log = LogThrottle::default();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed("dns-tcp", &error, limiter.stats(), &accept_log).await;
                continue;
            }
        };
        let guard = match limiter.try_acquire(peer.ip()) {
            Ok(guard) => guard,
            Err(why) => {
                limiter.stats().refused(why);
                if let Some(suppressed) = refused_log.ready() {
                    let (limit, cap) = match why {
                        Refusal::Total => ("total", ctx.limits.max_connections),
                        Refusal::PerClient => ("per_client", ctx.limits.max_connections_per_client),
                    };
                    warn!(client = %peer.ip(), limit, cap, suppressed, "DNS TCP connection refused: connection cap reached");
                }
                reset(stream);
                continue;
            }
        };
        connections.spawn(connection(stream, peer, guard, ctx.clone()));
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        connections.abort_all();
    }
}

/// Serves one connection until the client closes it, a bound is hit, or shutdown.
async fn connection(stream: TcpStream, peer: SocketAddr, _guard: ConnGuard, ctx: Arc<Ctx>) {
    let _ = stream.set_nodelay(true);
    // Pipelined queries are read a buffer at a time and their answers written together.
    let mut stream = BufReader::with_capacity(4096, stream);
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let mut query = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    let mut pending = Vec::with_capacity(1024);
    let limits = &ctx.limits;
    // Every message counts, answered or not: ignored ones must not keep a connection forever.
    let mut received = 0usize;
    let closed = loop {
        if limits.query_limit_reached(received) {
            break Some(Closed::QueryLimit);
        }
        if let Err(closed) = read_query(&mut stream, &mut query, limits, &ctx.shutdown).await {
            break closed;
        }
        received += 1;
        answer(&ctx, &query, &mut rng, &mut out, &mut pending);
        // Write once no complete query is waiting: a client that sends one query at a
        // time gets its answer at once, a pipelining one gets them in batches.
        let last = ctx.shutdown.is_cancelled() || limits.query_limit_reached(received);
        if !pending.is_empty()
            && (last || pending.len() >= 32 * 1024 || !holds_a_message(stream.buffer()))
        {
            if let Err(closed) =
                write_answers(stream.get_mut(), &pending, limits.query_timeout).await
            {
                break closed;
            }
            pending.clear();
        }
        if ctx.shutdown.is_cancelled() {
            break None;
        }
    };
    if let Some(why) = closed {
        log_closed(&ctx, peer, why);
    }
    let _ = stream.get_mut().shutdown().await;
}

/// Waits for the next query and reads it into `query`. Err ends the connection,
/// with the reason the server closes it (None: the client closed it, or shutdown).
async fn read_query(
    stream: &mut BufReader<TcpStream>,
    query: &mut Vec<u8>,
    limits: &TcpLimits,
    shutdown: &CancellationToken,
) -> Result<(), Option<Closed>> {
    // Idle: only here may shutdown interrupt the connection, and only when no
    // byte of a next query has arrived yet (hence read first).
    let mut first = [0u8; 1];
    let read = tokio::select! {
        biased;
        read = tokio::time::timeout(limits.idle_timeout, stream.read(&mut first)) => read,
        () = shutdown.cancelled() => return Err(None),
    };
    match read {
        Err(_) => return Err(Some(Closed::Idle)),
        Ok(Ok(0) | Err(_)) => return Err(None),
        Ok(Ok(_)) => {}
    }
    let receive = async {
        let second = stream.read_u8().await?;
        query.resize(usize::from(u16::from_be_bytes([first[0], second])), 0);
        stream.read_exact(query).await.map(drop)
    };
    match tokio::time::timeout(limits.query_timeout, receive).await {
        Err(_) => Err(Some(Closed::Slow)),
        Ok(Err(_)) => Err(None),
        Ok(Ok(())) => Ok(()),
    }
}

/// Answers one query, appending the length-prefixed response to `pending`.
fn answer(ctx: &Ctx, query: &[u8], rng: &mut SmallRng, out: &mut Vec<u8>, pending: &mut Vec<u8>) {
    // A response or a runt gets nothing: no reflection, no loops.
    match wire::respond(&ctx.snapshot.load(), query, false, rng, out) {
        Some(outcome) => {
            ctx.stats.record(ctx.shard, Transport::Tcp, outcome);
            let length =
                u16::try_from(out.len()).expect("TCP responses are truncated to 65535 bytes");
            pending.extend_from_slice(&length.to_be_bytes());
            pending.extend_from_slice(out);
        }
        None => ctx.stats.record_dropped(ctx.shard),
    }
}

/// Writes the answers not written yet. Err ends the connection, as for [`read_query`].
async fn write_answers(
    stream: &mut TcpStream,
    pending: &[u8],
    timeout: Duration,
) -> Result<(), Option<Closed>> {
    match tokio::time::timeout(timeout, stream.write_all(pending)).await {
        Err(_) => Err(Some(Closed::Slow)),
        Ok(Err(_)) => Err(None),
        Ok(Ok(())) => Ok(()),
    }
}

/// Counts a connection the server closed, and logs why.
fn log_closed(ctx: &Ctx, peer: SocketAddr, why: Closed) {
    ctx.stats.tcp.closed(why);
    // Idle closes and the query limit are routine; a query that does not arrive
    // in time is a broken or hostile client.
    if why == Closed::Slow
        && let Some(suppressed) = ctx.closed_log.ready()
    {
        warn!(client = %peer.ip(), timeout = ?ctx.limits.query_timeout, suppressed, "DNS TCP connection closed: a query or its answer took too long");
    } else {
        debug!(client = %peer, reason = ?why, "DNS TCP connection closed by the server");
    }
}

/// Whether `buffered` starts with a complete length-prefixed message.
fn holds_a_message(buffered: &[u8]) -> bool {
    buffered.len() >= 2
        && buffered.len() >= 2 + usize::from(u16::from_be_bytes([buffered[0], buffered[1]]))
}
