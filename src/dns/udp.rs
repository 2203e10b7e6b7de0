//! UDP serving on the fast path: one OS thread per SO_REUSEPORT socket, batching
//! datagrams with recvmmsg/sendmmsg so a busy server makes two system calls per
//! batch instead of two per query.

use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;
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
    let mut iov: Vec<libc::iovec> = rx_bufs
        .iter_mut()
        .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: MAX_DATAGRAM })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|i| {
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = addrs[i].as_mut_ptr().cast();
            h.msg_hdr.msg_iov = &mut iov[i];
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let mut out_iov: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let mut out_msgs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);

    while !shutdown.is_cancelled() {
        for h in &mut msgs {
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_len = 0;
        }
        let received = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received <= 0 {
            continue; // timeout (shutdown check) or a transient error
        }
        let received = received as usize;
        let snap = snapshot.load();
        if received >= PREFETCH_BATCH {
            // Each lookup waits on memory twice (the name's slot, then its node); over
            // a batch, start all slot loads, then all node loads, then answer.
            for i in 0..received {
                let len = msgs[i].msg_len as usize;
                hashes[i] = wire::question_name(&rx_bufs[i][..len], &mut lowered)
                    .map(|n| snap.prefetch_slots(n));
            }
            for hash in hashes[..received].iter().flatten() {
                snap.prefetch_node(*hash);
            }
        }
        let now = rrl.as_ref().map(|_| Instant::now());
        out_iov.clear();
        out_msgs.clear();
        for i in 0..received {
            let len = msgs[i].msg_len as usize;
            let out = &mut tx_bufs[i];
            match wire::respond(&snap, &rx_bufs[i][..len], true, &mut rng, out) {
                Some(mut outcome) => {
                    if let (Some(rrl), Some(now)) = (&rrl, now)
                        && let Some(client) = peer_ip(&addrs[i])
                    {
                        let action = rrl.check(client, now);
                        if action != Action::Send {
                            stats.record_rate_limited(action == Action::Slip);
                            rrl.log_limited(client, action);
                        }
                        match action {
                            Action::Send => {}
                            Action::Slip => {
                                wire::slip(out);
                                outcome.truncated = true;
                            }
                            Action::Drop => continue,
                        }
                    }
                    stats.record_exclusive(shard, Transport::Udp, outcome);
                    out_iov.push(libc::iovec {
                        iov_base: out.as_mut_ptr().cast(),
                        iov_len: out.len(),
                    });
                    let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    h.msg_hdr.msg_name = addrs[i].as_mut_ptr().cast();
                    h.msg_hdr.msg_namelen = msgs[i].msg_hdr.msg_namelen;
                    out_msgs.push(h);
                }
                None => stats.record_dropped(shard),
            }
        }
        for (h, iov) in out_msgs.iter_mut().zip(out_iov.iter_mut()) {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < out_msgs.len() {
            let n = unsafe {
                libc::sendmmsg(fd, out_msgs[sent..].as_mut_ptr(), (out_msgs.len() - sent) as u32, 0)
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
