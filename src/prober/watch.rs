//! Watch connections: one idle TCP connection per passing check, held open to
//! notice the target going away (rules in [`super::scheduler`]).
//!
//! They are not Tokio sockets: each of those carries a 256-byte cache-padded
//! registration, and 10,000 checks hold 10,000 of them. Here they sit in one
//! epoll set of their own (through mio) whose single descriptor the scheduler
//! awaits; a watch costs its descriptor and a few words in its check's entry.

use std::io::{self, Read};
use std::time::Duration;

use mio::{Events, Interest, Poll, Registry, Token};
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::unix::AsyncFd;
use tokio::sync::OwnedSemaphorePermit;

/// Unsolicited bytes a watch connection may bring before it is given up: a target
/// that streams to every connection would otherwise be read for as long as it lives.
const WATCH_CHATTER: u32 = 4096;

/// Readiness events taken from the set per wake-up.
const EVENTS: usize = 256;

/// An idle connection to the target, held to notice it going away.
pub(super) struct Watch {
    stream: mio::net::TcpStream,
    _slot: OwnedSemaphorePermit,
    gauge: Gauge,
    /// Unsolicited bytes received so far.
    chatter: u32,
}

/// How a watch connection ended.
pub(super) enum WatchEnd {
    /// Closed or reset by the target (or its host): a real probe should confirm.
    Lost(io::Result<()>),
    /// The target keeps sending: dropped, nothing learned about its health.
    Chatty,
}

impl Watch {
    /// Adds a connected stream to the set under `token`.
    pub fn new(
        stream: tokio::net::TcpStream,
        registry: &Registry,
        token: u64,
        slot: OwnedSemaphorePermit,
        gauge: &Gauge,
    ) -> io::Result<Self> {
        // Leaves Tokio's driver (and frees its registration); stays non-blocking.
        let mut stream = mio::net::TcpStream::from_std(stream.into_std()?);
        registry.register(&mut stream, token_of(token), Interest::READABLE)?;
        gauge.inc();
        Ok(Self { stream, _slot: slot, gauge: gauge.clone(), chatter: 0 })
    }

    /// Reads what the target sent since the last look: None while the connection
    /// stays open and quiet. Unsolicited bytes (a banner, a 408 before closing) are
    /// read and dropped. Reads until it would block: the set is edge-triggered.
    pub fn ended(&mut self) -> Option<WatchEnd> {
        let mut scratch = [0u8; 256];
        loop {
            match (&self.stream).read(&mut scratch) {
                Ok(0) => return Some(WatchEnd::Lost(Ok(()))),
                Ok(n) => {
                    self.chatter = self.chatter.saturating_add(n as u32);
                    if self.chatter > WATCH_CHATTER {
                        return Some(WatchEnd::Chatty);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(WatchEnd::Lost(Err(e))),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Closing the descriptor also takes it out of the epoll set.
        self.gauge.dec();
    }
}

/// mio tokens are `usize`; ours hold a slot and a generation (see `table::key`).
fn token_of(key: u64) -> Token {
    Token(key as usize)
}

/// The epoll set of every watch connection, awaited by the scheduler.
pub(super) struct Watcher {
    poll: AsyncFd<Poll>,
    events: Events,
}

impl Watcher {
    /// The set and a handle that adds connections to it.
    pub fn new() -> io::Result<(Self, Registry)> {
        const { assert!(usize::BITS >= 64, "tokens carry a slot and a generation") };
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        // SAFETY: the Poll owns its epoll descriptor for as long as it lives and
        // always reports that one; nothing here can close or swap it.
        let poll = unsafe { AsyncFd::register_with_interest(poll, tokio::io::Interest::READABLE) }?;
        Ok((Self { poll, events: Events::with_capacity(EVENTS) }, registry))
    }

    /// Waits until some watch connections have news and appends their keys.
    /// Cancel safe: keys are taken from the set only in the poll that returns them.
    pub async fn ready(&mut self, keys: &mut Vec<u64>) -> io::Result<()> {
        loop {
            let mut guard = self.poll.readable_mut().await?;
            match guard.get_inner_mut().poll(&mut self.events, Some(Duration::ZERO)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.events.is_empty() {
                // Nothing left: wait for the set's descriptor to turn readable again.
                guard.clear_ready();
                continue;
            }
            keys.extend(self.events.iter().map(|e| e.token().0 as u64));
            return Ok(());
        }
    }
}
