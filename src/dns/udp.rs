//! UDP serving on the fast path: one OS thread per SO_REUSEPORT socket, batching
//! datagrams with recvmmsg/sendmmsg so a busy server makes two system calls per
//! batch instead of two per query.

use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio_util::sync::CancellationToken;

use super::rrl::{Action, RateLimiter};
use super::wire;
use crate::metrics::{DnsStats, Transport};
use crate::snapshot::Snapshot;

const BATCH: usize = 32;
const MAX_DATAGRAM: usize = 4096;
/// From this many queries in one receive on, their lookups are prefetched together.
const PREFETCH_BATCH: usize = 2;
/// Receive buffers lie a cache line more than a page apart: at exactly a page, the
/// first lines of all of them (where the kernel writes each query) fall into the
/// same cache set and evict each other within a batch.
const RX_STRIDE: usize = MAX_DATAGRAM + 64;

/// Serves `socket` until `shutdown` is cancelled.
pub fn serve(
    socket: UdpSocket,
    snapshot: Arc<ArcSwap<Snapshot>>,
    stats: Arc<DnsStats>,
    shard: usize,
    rrl: Option<Arc<RateLimiter>>,
    shutdown: CancellationToken,
) {
    // A receive timeout lets the loop notice shutdown without a wake-up channel.
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("set socket timeout");
    let fd = socket.as_raw_fd();
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    let mut rx_bufs = vec![[0u8; RX_STRIDE]; BATCH];
    let mut tx_bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
    let mut lowered = [0u8; 256];
    let mut hashes = [None; BATCH];
    let mut addrs: [MaybeUninit<libc::sockaddr_storage>; BATCH] = [MaybeUninit::zeroed(); BATCH];

    // SAFETY (for every libc call below): the headers point into `rx_bufs`,
    // `addrs`, `iov` and `tx_bufs`, which are allocated once here and neither moved
    // nor resized while the loop runs.
    let mut iov = receive_iovecs(&mut rx_bufs);
    let mut msgs = receive_headers(&mut addrs, &mut iov);
    let mut replies = Replies::with_capacity(BATCH);

    while !shutdown.is_cancelled() {
        let received = receive_batch(fd, &mut msgs);
        if received == 0 {
            continue; // timeout (shutdown check) or a transient error
        }
        let snap = snapshot.load();
        if received >= PREFETCH_BATCH {
            prefetch_batch(&snap, &msgs[..received], &rx_bufs, &mut lowered, &mut hashes);
        }
        let limiter = rrl.as_deref().map(|rrl| (rrl, Instant::now()));
        replies.clear();
        for i in 0..received {
            let len = msgs[i].msg_len as usize;
            let out = &mut tx_bufs[i];
            let Some(mut outcome) = wire::respond(&snap, &rx_bufs[i][..len], true, &mut rng, out)
            else {
                stats.record_dropped(shard);
                continue;
            };
            if let Some((rrl, now)) = limiter {
                match rate_limit(rrl, now, &addrs[i], &stats) {
                    Action::Send => {}
                    Action::Slip => {
                        wire::slip(out);
                        outcome.truncated = true;
                    }
                    Action::Drop => continue,
                }
            }
            stats.record_exclusive(shard, Transport::Udp, outcome);
            replies.push(out, &mut addrs[i], msgs[i].msg_hdr.msg_namelen);
        }
        replies.send(fd);
    }
}

/// One receive buffer for each datagram of a batch.
fn receive_iovecs(rx_bufs: &mut [[u8; RX_STRIDE]]) -> Vec<libc::iovec> {
    rx_bufs
        .iter_mut()
        .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: MAX_DATAGRAM })
        .collect()
}

/// The recvmmsg headers: datagram `i` lands in `iov[i]`, its sender's address in `addrs[i]`.
fn receive_headers(
    addrs: &mut [MaybeUninit<libc::sockaddr_storage>; BATCH],
    iov: &mut [libc::iovec],
) -> Vec<libc::mmsghdr> {
    (0..BATCH)
        .map(|i| {
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = addrs[i].as_mut_ptr().cast();
            h.msg_hdr.msg_iov = &mut iov[i];
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect()
}

/// Waits for at least one datagram and takes all that are there, up to a batch;
/// returns how many (0 on the receive timeout or an error).
#[inline]
fn receive_batch(fd: RawFd, msgs: &mut [libc::mmsghdr]) -> usize {
    for h in msgs.iter_mut() {
        h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        h.msg_len = 0;
    }
    let received = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    received.max(0) as usize
}

/// Each lookup waits on memory twice (the name's slot, then its node); over a
/// batch, start all slot loads, then all node loads, then answer.
#[inline]
fn prefetch_batch(
    snap: &Snapshot,
    msgs: &[libc::mmsghdr],
    rx_bufs: &[[u8; RX_STRIDE]],
    lowered: &mut [u8; 256],
    hashes: &mut [Option<u64>; BATCH],
) {
    for (i, h) in msgs.iter().enumerate() {
        let len = h.msg_len as usize;
        hashes[i] =
            wire::question_name(&rx_bufs[i][..len], lowered).map(|n| snap.prefetch_slots(n));
    }
    for hash in hashes[..msgs.len()].iter().flatten() {
        snap.prefetch_node(*hash);
    }
}

/// The rate limiter's verdict on answering the sender of a datagram, counted and
/// logged when the response is not sent as it is.
#[inline]
fn rate_limit(
    rrl: &RateLimiter,
    now: Instant,
    peer: &MaybeUninit<libc::sockaddr_storage>,
    stats: &DnsStats,
) -> Action {
    let Some(client) = peer_ip(peer) else {
        return Action::Send;
    };
    let action = rrl.check(client, now);
    if action != Action::Send {
        stats.record_rate_limited(action == Action::Slip);
        rrl.log_limited(client, action);
    }
    action
}

/// The responses of one batch, sent with as few sendmmsg calls as the kernel allows.
struct Replies {
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Replies {
    fn with_capacity(batch: usize) -> Self {
        Self { iov: Vec::with_capacity(batch), msgs: Vec::with_capacity(batch) }
    }

    #[inline]
    fn clear(&mut self) {
        self.iov.clear();
        self.msgs.clear();
    }

    /// Queues `response` for the sender whose address recvmmsg wrote into `peer`.
    #[inline]
    fn push(
        &mut self,
        response: &mut [u8],
        peer: &mut MaybeUninit<libc::sockaddr_storage>,
        peer_len: libc::socklen_t,
    ) {
        self.iov
            .push(libc::iovec { iov_base: response.as_mut_ptr().cast(), iov_len: response.len() });
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_name = peer.as_mut_ptr().cast();
        h.msg_hdr.msg_namelen = peer_len;
        self.msgs.push(h);
    }

    /// Sends every queued response.
    #[inline]
    fn send(&mut self, fd: RawFd) {
        // The headers point at their iovecs only now that no push can move them.
        for (h, iov) in self.msgs.iter_mut().zip(self.iov.iter_mut()) {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < self.msgs.len() {
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs[sent..].as_mut_ptr(),
                    (self.msgs.len() - sent) as u32,
                    0,
                )
            };
            if n <= 0 {
                break; // the client is gone or the buffer is full: UDP may drop
            }
            sent += n as usize;
        }
    }
}

/// The sender's address of a received datagram.
fn peer_ip(addr: &MaybeUninit<libc::sockaddr_storage>) -> Option<IpAddr> {
    // SAFETY: recvmmsg wrote a sockaddr of the family it announces (the storage was
    // zeroed before, so an unwritten one reads as family 0 and is rejected).
    let storage = unsafe { addr.assume_init_ref() };
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            let v4 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            let v6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}
