//! The authoritative DNS server: UDP on the fast path (or hickory-server's parser
//! and encoder), TCP with the fast path's responder, all reading the same
//! atomically swapped snapshot.

pub mod handler;
pub mod rrl;
pub mod tcp;
pub mod udp;
pub mod wire;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::metrics::DnsStats;
use crate::snapshot::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot bind DNS {proto} socket on {addr}: {source}")]
    Bind { proto: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("a DNS {what} stopped serving")]
    Stopped { what: &'static str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UdpEngine {
    /// Our own recvmmsg loop answering from pre-encoded records.
    Fast,
    /// hickory-server's UDP handling (one task per datagram), for comparison.
    Hickory,
}

#[derive(Clone, Debug)]
pub struct DnsConfig {
    pub addr: SocketAddr,
    /// Number of SO_REUSEPORT UDP sockets (each served by its own thread or task).
    pub udp_sockets: usize,
    pub udp_engine: UdpEngine,
    pub tcp: tcp::TcpLimits,
    /// UDP responses a second per client network (/24, /56); 0 turns rate limiting off.
    pub rrl_per_second: u32,
    /// Past the rate, every n-th response goes out truncated, the others are dropped (0: all dropped).
    pub rrl_slip: u32,
}

impl DnsConfig {
    /// Serving on `addr` with the default limits and no rate limiting.
    pub fn new(addr: SocketAddr, udp_sockets: usize, udp_engine: UdpEngine) -> Self {
        Self {
            addr,
            udp_sockets,
            udp_engine,
            tcp: tcp::TcpLimits::default(),
            rrl_per_second: 0,
            rrl_slip: 2,
        }
    }
}

/// A running server; stops when the shutdown token is cancelled.
pub struct DnsServer {
    /// The address actually bound (the port is resolved when 0 was asked for).
    pub addr: SocketAddr,
    threads: Vec<std::thread::JoinHandle<()>>,
    tasks: tokio::task::JoinSet<()>,
    /// Hears of every UDP thread that ends, however it ends.
    thread_ended: tokio::sync::mpsc::UnboundedReceiver<()>,
}

/// Tells the server that a thread ended, also when it ends by panicking.
struct EndNotice(tokio::sync::mpsc::UnboundedSender<()>);

impl Drop for EndNotice {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn udp_socket(addr: SocketAddr) -> Result<std::net::UdpSocket, DnsError> {
    let bind = || -> std::io::Result<std::net::UdpSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        // Bursts are absorbed by the kernel instead of dropped.
        let _ = socket.set_recv_buffer_size(4 << 20);
        socket.bind(&addr.into())?;
        Ok(socket.into())
    };
    bind().map_err(|source| DnsError::Bind { proto: "UDP", addr, source })
}

fn tcp_listener(addr: SocketAddr) -> Result<std::net::TcpListener, DnsError> {
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    };
    bind().map_err(|source| DnsError::Bind { proto: "TCP", addr, source })
}

/// The first UDP socket and the TCP listener on the same address. With port 0 the
/// port the system picks for UDP may be held by some TCP socket: then another is tried.
fn bind_pair(addr: SocketAddr) -> Result<(std::net::UdpSocket, std::net::TcpListener), DnsError> {
    let mut attempts = 0;
    loop {
        let udp = udp_socket(addr)?;
        let bound =
            udp.local_addr().map_err(|source| DnsError::Bind { proto: "UDP", addr, source })?;
        match tcp_listener(bound) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(DnsError::Bind { source, .. })
                if addr.port() == 0
                    && source.kind() == std::io::ErrorKind::AddrInUse
                    && attempts < 16 =>
            {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl DnsServer {
    /// Binds every socket and starts serving. Must run inside a tokio runtime.
    pub fn start(
        config: &DnsConfig,
        snapshot: Arc<ArcSwap<Snapshot>>,
        stats: Arc<DnsStats>,
        shutdown: CancellationToken,
    ) -> Result<Self, DnsError> {
        let (first, tcp) = bind_pair(config.addr)?;
        let addr = first.local_addr().map_err(|source| DnsError::Bind {
            proto: "UDP",
            addr: config.addr,
            source,
        })?;
        let mut sockets = vec![first];
        for _ in 1..config.udp_sockets.max(1) {
            sockets.push(udp_socket(addr)?);
        }
        let tcp_shard = sockets.len();
        let rrl = rrl::RateLimiter::new(config.rrl_per_second, config.rrl_slip).map(Arc::new);
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(|source| DnsError::Bind {
            proto: "TCP",
            addr,
            source,
        })?;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(tcp::serve(
            tcp,
            snapshot.clone(),
            stats.clone(),
            tcp_shard,
            config.tcp.clone(),
            shutdown.clone(),
        ));
        let handler = Arc::new(handler::Handler {
            snapshot: snapshot.clone(),
            stats: stats.clone(),
            shard: tcp_shard,
        });
        let mut threads = Vec::new();
        let (ended, thread_ended) = tokio::sync::mpsc::unbounded_channel();
        // Each fast-path thread owns its stats shard; async tasks share the last one.
        for (shard, socket) in sockets.into_iter().enumerate() {
            match config.udp_engine {
                UdpEngine::Fast => {
                    let (snapshot, stats, rrl, shutdown) =
                        (snapshot.clone(), stats.clone(), rrl.clone(), shutdown.clone());
                    let notice = EndNotice(ended.clone());
                    let thread = std::thread::Builder::new()
                        .name(format!("dns-udp-{shard}"))
                        .spawn(move || {
                            let _notice = notice;
                            udp::serve(socket, snapshot, stats, shard, rrl, shutdown)
                        })
                        .expect("spawn UDP thread");
                    threads.push(thread);
                }
                UdpEngine::Hickory => {
                    socket.set_nonblocking(true).expect("nonblocking socket");
                    let socket = tokio::net::UdpSocket::from_std(socket)
                        .map_err(|source| DnsError::Bind { proto: "UDP", addr, source })?;
                    tasks.spawn(handler::serve_udp(
                        socket,
                        handler.clone(),
                        rrl.clone(),
                        shutdown.clone(),
                    ));
                }
            }
        }
        tracing::info!(
            %addr,
            udp_sockets = config.udp_sockets,
            udp_engine = ?config.udp_engine,
            rrl_per_second = config.rrl_per_second,
            "DNS server listening"
        );
        Ok(Self { addr, threads, tasks, thread_ended })
    }

    /// Serves until the shutdown token stops the UDP threads and tasks and TCP has
    /// answered the queries it had already received. A thread or task that stops
    /// before then is an error (the supervisor stops the process).
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), DnsError> {
        let stopped = tokio::select! {
            biased;
            () = shutdown.cancelled() => None,
            Some(_) = self.tasks.join_next() => Some("task"),
            Some(()) = self.thread_ended.recv() => Some("UDP thread"),
        };
        if let Some(what) = stopped.filter(|_| !shutdown.is_cancelled()) {
            return Err(DnsError::Stopped { what });
        }
        while self.tasks.join_next().await.is_some() {}
        for t in self.threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        Ok(())
    }
}
