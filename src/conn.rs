//! Bounds shared by the TCP listeners (DNS over TCP and the admin endpoint): caps on
//! open connections overall and per client address, counters for what was refused
//! or cut off, log lines that cannot flood the disk, and an accept loop that backs
//! off instead of spinning when descriptors run out.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// How often a throttled log line may be written.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Lets one log line through per period and counts the ones held back, so an
/// event that repeats thousands of times a second costs one line per period.
#[derive(Debug)]
pub struct LogThrottle {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    pub const fn new(every: Duration) -> Self {
        Self { every, state: Mutex::new((None, 0)) }
    }

    /// Some(number of events held back since the last line) when a line may be
    /// written now; None when this event is only counted.
    pub fn ready(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.0 {
            Some(last) if now.duration_since(last) < self.every => {
                state.1 += 1;
                None
            }
            _ => {
                state.0 = Some(now);
                Some(std::mem::take(&mut state.1))
            }
        }
    }
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new(LOG_EVERY)
    }
}

/// Why a connection was refused at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds its maximum of connections.
    Total,
    /// This client address holds its maximum of connections.
    PerClient,
}

/// Why the server closed a connection before the client did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Nothing arrived (or could be sent) for the idle timeout.
    Idle,
    /// A query (or a request head) was not received, or its answer not taken, in time.
    Slow,
    /// The connection reached its maximum number of queries.
    QueryLimit,
}

/// Counters of one listener, exported as `<prefix>_connections` (gauge),
/// `<prefix>_refused_total{reason}`, `<prefix>_closed_total{reason}` and
/// `<prefix>_accept_errors_total`.
#[derive(Debug, Default)]
pub struct ListenerStats {
    open: AtomicI64,
    refused_total: AtomicU64,
    refused_per_client: AtomicU64,
    closed_idle: AtomicU64,
    closed_slow: AtomicU64,
    closed_limit: AtomicU64,
    accept_errors: AtomicU64,
}

impl ListenerStats {
    pub fn refused(&self, why: Refusal) {
        match why {
            Refusal::Total => &self.refused_total,
            Refusal::PerClient => &self.refused_per_client,
        }
        .fetch_add(1, Relaxed);
    }

    pub fn closed(&self, why: Closed) {
        match why {
            Closed::Idle => &self.closed_idle,
            Closed::Slow => &self.closed_slow,
            Closed::QueryLimit => &self.closed_limit,
        }
        .fetch_add(1, Relaxed);
    }

    pub fn refused_count(&self, why: Refusal) -> u64 {
        match why {
            Refusal::Total => self.refused_total.load(Relaxed),
            Refusal::PerClient => self.refused_per_client.load(Relaxed),
        }
    }

    pub fn open_connections(&self) -> i64 {
        self.open.load(Relaxed)
    }

    /// Writes this listener's metrics under `prefix` (e.g. `tcp`; empty: none) in the
    /// registry's own prefix.
    /// `slow` names the reason label of [`Closed::Slow`] for this protocol.
    pub fn encode(
        &self,
        prefix: &str,
        slow: &str,
        encoder: &mut DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let open = ConstGauge::new(self.open.load(Relaxed));
        open.encode(encoder.encode_descriptor(
            &named(prefix, "connections"),
            "Connections open now",
            None,
            MetricType::Gauge,
        )?)?;
        let refused = named(prefix, "refused");
        let mut e = encoder.encode_descriptor(
            &refused,
            "Connections closed at accept because a connection cap was reached (total: the listener's, per_client: one address's)",
            None,
            MetricType::Counter,
        )?;
        for (reason, v) in
            [("total", &self.refused_total), ("per_client", &self.refused_per_client)]
        {
            ConstCounter::new(v.load(Relaxed)).encode(e.encode_family(&[("reason", reason)])?)?;
        }
        let closed = named(prefix, "closed");
        let mut e = encoder.encode_descriptor(
            &closed,
            "Connections closed by the server: idle for too long, too slow, or at the per-connection query limit",
            None,
            MetricType::Counter,
        )?;
        for (reason, v) in [
            ("idle", &self.closed_idle),
            (slow, &self.closed_slow),
            ("query_limit", &self.closed_limit),
        ] {
            ConstCounter::new(v.load(Relaxed)).encode(e.encode_family(&[("reason", reason)])?)?;
        }
        let errors = ConstCounter::new(self.accept_errors.load(Relaxed));
        errors.encode(encoder.encode_descriptor(
            &named(prefix, "accept_errors"),
            "Failed accepts (descriptors exhausted and the like)",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}

/// The process's open-files limit (soft), when known.
pub fn open_files_limit() -> Option<usize> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then(|| usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX))
}

/// `requested` connections (0: no cap), lowered to `1/share` of the open-files
/// limit: one listener's clients alone must never exhaust the descriptors that
/// probes, manifest reads and the other listener need.
pub fn descriptor_cap(listener: &'static str, requested: usize, share: usize) -> usize {
    let Some(limit) = open_files_limit() else { return requested };
    let most = (limit / share).max(1);
    if requested == 0 || requested > most {
        tracing::warn!(
            listener,
            requested,
            cap = most,
            open_files_limit = limit,
            "connection cap lowered to fit the open-files limit"
        );
        return most;
    }
    requested
}

/// Caps the connections of one listener, overall and per client address.
#[derive(Debug)]
pub struct ConnLimiter {
    max_total: usize,
    max_per_client: usize,
    stats: Arc<ListenerStats>,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnLimiter {
    /// A zero cap means no cap.
    pub fn new(max_total: usize, max_per_client: usize, stats: Arc<ListenerStats>) -> Arc<Self> {
        let unbounded = |n: usize| if n == 0 { usize::MAX } else { n };
        Arc::new(Self {
            max_total: unbounded(max_total),
            max_per_client: unbounded(max_per_client),
            stats,
            per_client: Mutex::new(HashMap::new()),
        })
    }

    pub fn stats(&self) -> &ListenerStats {
        &self.stats
    }

    /// A slot for one connection from `client`, held until the guard is dropped.
    pub fn try_acquire(self: &Arc<Self>, client: IpAddr) -> Result<ConnGuard, Refusal> {
        let client = canonical(client);
        let mut map = self.per_client.lock().unwrap_or_else(PoisonError::into_inner);
        if usize::try_from(self.stats.open.load(Relaxed)).unwrap_or(0) >= self.max_total {
            return Err(Refusal::Total);
        }
        let held = map.entry(client).or_insert(0);
        if *held >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        *held += 1;
        self.stats.open.fetch_add(1, Relaxed);
        Ok(ConnGuard { limiter: self.clone(), client })
    }
}

/// An IPv4 client seen through a dual-stack socket counts as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One open connection's slot in a [`ConnLimiter`].
#[derive(Debug)]
pub struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    client: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut map = self.limiter.per_client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = map.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                map.remove(&self.client);
            }
        }
        self.limiter.stats.open.fetch_sub(1, Relaxed);
    }
}

/// Closes a refused connection with a reset: the client learns at once, and no
/// TIME_WAIT state is left behind on this side for every refusal.
pub fn reset(stream: tokio::net::TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Handles a failed `accept`: counts it, logs it (throttled) and, when descriptors
/// or memory ran out, pauses so the loop does not spin on an error that repeats
/// until a connection closes.
pub async fn accept_failed(
    listener: &'static str,
    error: &io::Error,
    stats: &ListenerStats,
    log: &LogThrottle,
) {
    stats.accept_errors.fetch_add(1, Relaxed);
    let exhausted = matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    );
    if let Some(suppressed) = log.ready() {
        tracing::warn!(listener, %error, exhausted, suppressed, "cannot accept a connection");
    }
    if exhausted {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `prefix_name`, or `name` without a prefix.
fn named(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}_{name}") }
}

/// The admin endpoint's listener counters as a Prometheus collector.
#[derive(Debug, Default)]
pub struct AdminStats(pub Arc<ListenerStats>);

impl AdminStats {
    /// Registers the counters (as `admin_*`) and returns what the listener updates.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Arc<ListenerStats> {
        let stats = AdminStats::default();
        let listener = stats.0.clone();
        registry.sub_registry_with_prefix("admin").register_collector(Box::new(stats));
        listener
    }
}

impl Collector for AdminStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode("", "header_timeout", &mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_client_and_releases_on_drop() {
        let stats = Arc::new(ListenerStats::default());
        let limiter = ConnLimiter::new(3, 2, stats.clone());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = limiter.try_acquire(a).unwrap();
        let _a2 = limiter.try_acquire(a).unwrap();
        // The same client through a dual-stack socket is the same client.
        assert_eq!(
            limiter.try_acquire("::ffff:192.0.2.1".parse().unwrap()).unwrap_err(),
            Refusal::PerClient
        );
        let _b1 = limiter.try_acquire(b).unwrap();
        assert_eq!(limiter.try_acquire(b).unwrap_err(), Refusal::Total);
        assert_eq!(stats.open_connections(), 3);
        drop(a1);
        assert_eq!(stats.open_connections(), 2);
        let _b2 = limiter.try_acquire(b).unwrap();
    }

    #[test]
    fn zero_means_unbounded() {
        let limiter = ConnLimiter::new(0, 0, Arc::default());
        let guards: Vec<_> =
            (0..1000).map(|_| limiter.try_acquire([127, 0, 0, 1].into()).unwrap()).collect();
        assert_eq!(guards.len(), 1000);
    }

    #[test]
    fn throttle_lets_one_line_through_per_period_and_counts_the_rest() {
        let log = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(log.ready(), Some(0));
        for _ in 0..5 {
            assert_eq!(log.ready(), None);
        }
        let log = LogThrottle::new(Duration::ZERO);
        assert_eq!(log.ready(), Some(0));
        assert_eq!(log.ready(), Some(0));
    }
}
