//! Prometheus metrics: one registry under one prefix, [`PREFIX`]; each component
//! registers its own metrics in it (the prober, the status writer, the manifest
//! watcher, the DNS server under `dns_`, the admin endpoint under `admin_`). DNS
//! counters live in per-worker shards of plain atomics (the hot path must not hash
//! label sets) and are summed on each scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use crate::conn::ListenerStats;
use crate::model::RoutingPolicy;

/// The prefix of every metric name.
pub const PREFIX: &str = "failoverdns";

/// The registry every component registers in.
pub fn registry() -> Registry {
    Registry::with_prefix(PREFIX)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp = 0,
    Tcp = 1,
}

const RCODES: usize = 17;
const POLICIES: usize = 5; // Simple, Weighted, Failover, MultiValue, none (synthesized / negative)

#[repr(align(128))] // one cache line pair per worker: no false sharing
#[derive(Debug)]
struct Shard {
    by_rcode: [[AtomicU64; RCODES]; 2],
    by_policy: [AtomicU64; POLICIES],
    truncated: AtomicU64,
    dropped: AtomicU64,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            by_rcode: Default::default(),
            by_policy: Default::default(),
            truncated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

/// What a response carried, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Responded {
    pub rcode: u16,
    pub policy: Option<RoutingPolicy>,
    pub truncated: bool,
}

/// DNS query counters, one shard per serving thread plus one shared by async tasks.
#[derive(Debug)]
pub struct DnsStats {
    shards: Box<[Shard]>,
    /// The DNS-over-TCP listener: open, refused and cut-off connections.
    pub tcp: Arc<ListenerStats>,
    /// Responses held back by response rate limiting: sent truncated instead (slip) or dropped.
    rrl_slipped: AtomicU64,
    rrl_dropped: AtomicU64,
}

fn policy_index(policy: Option<RoutingPolicy>) -> usize {
    match policy {
        Some(RoutingPolicy::Simple) => 0,
        Some(RoutingPolicy::Weighted) => 1,
        Some(RoutingPolicy::Failover) => 2,
        Some(RoutingPolicy::MultiValue) => 3,
        None => 4,
    }
}

const POLICY_LABELS: [&str; POLICIES] = ["Simple", "Weighted", "Failover", "MultiValue", "none"];
const RCODE_LABELS: [&str; RCODES] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
    "BADVERS",
];

impl DnsStats {
    /// Counters for `shards` serving threads (plus the async tasks' shard), registered
    /// as `dns_*`.
    pub fn register(shards: usize, registry: &mut Registry) -> Arc<Self> {
        let stats = Arc::new(DnsStats::new(shards));
        registry.sub_registry_with_prefix("dns").register_collector(Box::new(stats.clone()));
        stats
    }

    pub fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
            tcp: Arc::default(),
            rrl_slipped: AtomicU64::new(0),
            rrl_dropped: AtomicU64::new(0),
        }
    }

    /// Counts a response that rate limiting sent truncated (`slipped`) or dropped.
    pub fn record_rate_limited(&self, slipped: bool) {
        if slipped { &self.rrl_slipped } else { &self.rrl_dropped }.fetch_add(1, Relaxed);
    }

    pub fn rate_limited(&self) -> (u64, u64) {
        (self.rrl_slipped.load(Relaxed), self.rrl_dropped.load(Relaxed))
    }

    pub fn record(&self, shard: usize, transport: Transport, outcome: Responded) {
        let s = &self.shards[shard % self.shards.len()];
        s.by_rcode[transport as usize][(outcome.rcode as usize).min(RCODES - 1)]
            .fetch_add(1, Relaxed);
        s.by_policy[policy_index(outcome.policy)].fetch_add(1, Relaxed);
        if outcome.truncated {
            s.truncated.fetch_add(1, Relaxed);
        }
    }

    /// Like [`DnsStats::record`] for a thread that is the only writer of its shard:
    /// plain load + store instead of locked read-modify-write on the hot path.
    #[inline]
    pub fn record_exclusive(&self, shard: usize, transport: Transport, outcome: Responded) {
        let bump = |c: &AtomicU64| c.store(c.load(Relaxed) + 1, Relaxed);
        let s = &self.shards[shard % self.shards.len()];
        bump(&s.by_rcode[transport as usize][(outcome.rcode as usize).min(RCODES - 1)]);
        bump(&s.by_policy[policy_index(outcome.policy)]);
        if outcome.truncated {
            bump(&s.truncated);
        }
    }

    pub fn record_dropped(&self, shard: usize) {
        self.shards[shard % self.shards.len()].dropped.fetch_add(1, Relaxed);
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| f(s).load(Relaxed)).sum()
    }

    /// Total responses sent, over all transports and codes.
    pub fn total(&self) -> u64 {
        (0..2)
            .flat_map(|t| (0..RCODES).map(move |r| (t, r)))
            .map(|(t, r)| self.sum(|s| &s.by_rcode[t][r]))
            .sum()
    }
}

impl Collector for DnsStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut e = encoder.encode_descriptor(
            "responses",
            "DNS responses sent, by transport and response code",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (t, transport) in ["udp", "tcp"].iter().enumerate() {
            for (r, rcode) in RCODE_LABELS.iter().enumerate() {
                let v = self.sum(|s| &s.by_rcode[t][r]);
                if v > 0 || r == 0 || r == 3 {
                    let labels = [("transport", *transport), ("rcode", *rcode)];
                    ConstCounter::new(v).encode(e.encode_family(&labels)?)?;
                }
            }
        }
        let mut e = encoder.encode_descriptor(
            "answers_by_policy",
            "DNS responses by the routing policy of the record set that answered (none: synthesized or negative)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (p, policy) in POLICY_LABELS.iter().enumerate() {
            let labels = [("policy", *policy)];
            ConstCounter::new(self.sum(|s| &s.by_policy[p])).encode(e.encode_family(&labels)?)?;
        }
        for (name, help, v) in [
            ("truncated", "UDP responses sent truncated (TC set)", self.sum(|s| &s.truncated)),
            (
                "dropped",
                "Datagrams dropped without a response (responses, runts)",
                self.sum(|s| &s.dropped),
            ),
        ] {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let mut e = encoder.encode_descriptor(
            "rate_limited",
            "UDP responses over the --rrl-per-second rate of their client network: sent truncated (slip) or dropped",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (action, v) in [("slip", &self.rrl_slipped), ("drop", &self.rrl_dropped)] {
            ConstCounter::new(v.load(Relaxed)).encode(e.encode_family(&[("action", action)])?)?;
        }
        self.tcp.encode("tcp", "query_timeout", &mut encoder)
    }
}
