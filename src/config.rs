//! Typed command line (with environment fallbacks).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::admin::AdminLimits;
use crate::dns::tcp::TcpLimits;
use crate::dns::{DnsConfig, UdpEngine};
use crate::prober::ProberConfig;
use crate::prober::guard::{Cidr, ProbeGuard};

#[derive(Debug, Parser)]
#[command(
    name = "failover-dns",
    version,
    about = "Route 53-style DNS failover: health-checked records served by an authoritative DNS server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve DNS for the zones: standalone from manifest files, or as a Kubernetes controller.
    Serve(Box<ServeArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Validate manifests offline exactly as `serve --manifests` would, for CI and
    /// pre-commit hooks: every problem with its file, document and field; exit 1 on errors.
    Check(CheckArgs),
    /// How a running server answers a name, and why (its admin `/explain`).
    Explain(ExplainArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Clone, Debug, Args)]
pub struct CheckArgs {
    /// Manifest file or directory of .yaml/.yml files (repeatable).
    #[arg(long = "manifests", value_name = "PATH", required = true)]
    pub manifests: Vec<PathBuf>,
    /// Zone the server would serve (repeatable).
    #[arg(long = "zone", value_name = "ZONE", required = true, value_delimiter = ',')]
    pub zones: Vec<String>,
    /// As `serve --require-delegation`.
    #[arg(long)]
    pub require_delegation: bool,
    /// Validate for cluster mode: fields that read the cluster's objects (serviceRef,
    /// valuesFrom) are allowed, as the controller allows them.
    #[arg(long)]
    pub cluster: bool,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Clone, Debug, Args)]
pub struct ExplainArgs {
    /// The name to explain (relative names are not completed: give the full name).
    pub name: String,
    /// The query type (A, AAAA, CNAME, TXT, MX, SRV, SOA, NS, ANY).
    #[arg(default_value = "A")]
    pub rtype: String,
    /// The server's admin endpoint (in a cluster: `kubectl port-forward` to its admin
    /// port first).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "FAILOVER_DNS_ADMIN_URL"
    )]
    pub admin: String,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// How long to wait for the server.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_flag_duration)]
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Manifest file or directory of .yaml/.yml files (repeatable; the environment
    /// variable holds one path). Without it, runs as a Kubernetes controller.
    #[arg(long = "manifests", value_name = "PATH", env = "FAILOVER_DNS_MANIFESTS")]
    pub manifests: Vec<PathBuf>,
    /// Zone to serve authoritatively (repeatable).
    #[arg(
        long = "zone",
        value_name = "ZONE",
        required = true,
        env = "FAILOVER_DNS_ZONES",
        value_delimiter = ','
    )]
    pub zones: Vec<String>,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub probes: ProbeArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub status: StatusArgs,
    #[command(flatten)]
    pub quorum: QuorumArgs,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "FAILOVER_DNS_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Test hook: the named supervised task panics a second after it starts
    /// (the supervision tests show the process then exits non-zero).
    #[arg(long, value_name = "TASK", hide = true)]
    pub test_panic_task: Option<String>,
}

/// The DNS server: where it listens, what the zones announce, UDP and TCP limits.
#[derive(Clone, Debug, Args)]
pub struct DnsArgs {
    /// DNS listen address (UDP and TCP).
    #[arg(
        long,
        value_name = "IP:PORT",
        default_value = "0.0.0.0:53",
        env = "FAILOVER_DNS_DNS_ADDR"
    )]
    pub dns_addr: SocketAddr,
    /// Name servers announced in the NS and SOA records of every zone (default: ns1.<zone>).
    #[arg(
        long = "nameserver",
        value_name = "NAME",
        env = "FAILOVER_DNS_NAMESERVERS",
        value_delimiter = ','
    )]
    pub nameservers: Vec<String>,
    /// Negative-caching TTL (SOA minimum) in seconds.
    #[arg(long, default_value_t = 60, env = "FAILOVER_DNS_NEGATIVE_TTL")]
    pub negative_ttl: u32,
    /// TTL of the synthesized SOA and NS records in seconds.
    #[arg(long, default_value_t = 300, env = "FAILOVER_DNS_SOA_TTL")]
    pub soa_ttl: u32,
    /// UDP sockets (SO_REUSEPORT), each with its own serving thread; 0 = one per CPU.
    #[arg(long, default_value_t = 0, env = "FAILOVER_DNS_UDP_SOCKETS")]
    pub udp_sockets: usize,
    /// How UDP queries are answered.
    #[arg(long, value_enum, default_value_t = UdpEngine::Fast, env = "FAILOVER_DNS_UDP_ENGINE")]
    pub udp_engine: UdpEngine,
    /// Idle timeout of DNS-over-TCP connections: how long a connection may wait for
    /// its next query (seconds, or a duration such as `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = parse_flag_duration, env = "FAILOVER_DNS_TCP_IDLE_TIMEOUT")]
    pub tcp_idle_timeout: Duration,
    /// Time to receive one DNS-over-TCP query once its first byte arrived, and to send its answer.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_flag_duration, env = "FAILOVER_DNS_TCP_QUERY_TIMEOUT")]
    pub tcp_query_timeout: Duration,
    /// Most DNS-over-TCP connections open at once; more are reset at accept. Lowered
    /// to half the open-files limit when larger (0 = that much).
    #[arg(long, default_value_t = 1024, env = "FAILOVER_DNS_TCP_MAX_CONNECTIONS")]
    pub tcp_max_connections: usize,
    /// Most DNS-over-TCP connections one client address may hold (0 = no cap).
    #[arg(long, default_value_t = 64, env = "FAILOVER_DNS_TCP_MAX_CONNECTIONS_PER_CLIENT")]
    pub tcp_max_connections_per_client: usize,
    /// Messages taken on one DNS-over-TCP connection (answered or not) before it is
    /// closed (0 = no limit).
    #[arg(long, default_value_t = 1000, env = "FAILOVER_DNS_TCP_MAX_QUERIES")]
    pub tcp_max_queries: usize,
    /// Response rate limiting: UDP responses a second per client network (/24 for
    /// IPv4, /56 for IPv6); 0 turns it off.
    #[arg(long, default_value_t = 0, env = "FAILOVER_DNS_RRL_PER_SECOND")]
    pub rrl_per_second: u32,
    /// Past the rate, every n-th response is sent truncated (TC, so a real client
    /// retries over TCP) and the others are dropped; 0 drops them all.
    #[arg(long, default_value_t = 2, env = "FAILOVER_DNS_RRL_SLIP")]
    pub rrl_slip: u32,
}

/// The admin endpoint and its connection limits.
#[derive(Clone, Debug, Args)]
pub struct AdminArgs {
    /// Admin HTTP address: /healthz, /readyz, /metrics, /status, /explain.
    #[arg(
        long,
        value_name = "IP:PORT",
        default_value = "0.0.0.0:8080",
        env = "FAILOVER_DNS_ADMIN_ADDR"
    )]
    pub admin_addr: SocketAddr,
    /// Most admin connections open at once; more are reset at accept. Lowered to a
    /// quarter of the open-files limit when larger (0 = that much).
    #[arg(long, default_value_t = 128, env = "FAILOVER_DNS_ADMIN_MAX_CONNECTIONS")]
    pub admin_max_connections: usize,
    /// Most admin connections one client address may hold (0 = no cap).
    #[arg(long, default_value_t = 16, env = "FAILOVER_DNS_ADMIN_MAX_CONNECTIONS_PER_CLIENT")]
    pub admin_max_connections_per_client: usize,
    /// Time an admin connection has to send a complete request head, counted from
    /// the connection (or the previous response): it also ends idle keep-alive.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_flag_duration, env = "FAILOVER_DNS_ADMIN_HEADER_TIMEOUT")]
    pub admin_header_timeout: Duration,
    /// An admin connection on which nothing moves either way for this long is closed
    /// (a client that stops reading its response, for one).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_flag_duration, env = "FAILOVER_DNS_ADMIN_IDLE_TIMEOUT")]
    pub admin_idle_timeout: Duration,
}

/// What health checks may connect to, and how many probes run at once.
#[derive(Clone, Debug, Args)]
pub struct ProbeArgs {
    /// Addresses health checks must not connect to, in addition to the built-in
    /// link-local and cloud metadata ranges (repeatable; CIDR or a bare address).
    #[arg(
        long = "probe-deny",
        value_name = "CIDR",
        env = "FAILOVER_DNS_PROBE_DENY",
        value_delimiter = ','
    )]
    pub probe_deny: Vec<Cidr>,
    /// Addresses health checks may connect to even inside a denied range; the most
    /// specific matching rule wins, an allow over a deny of the same length.
    #[arg(
        long = "probe-allow",
        value_name = "CIDR",
        env = "FAILOVER_DNS_PROBE_ALLOW",
        value_delimiter = ','
    )]
    pub probe_allow: Vec<Cidr>,
    /// Most health-check probes in flight at once.
    #[arg(long, default_value_t = 1024, env = "FAILOVER_DNS_MAX_PROBES_IN_FLIGHT")]
    pub max_probes_in_flight: usize,
}

/// Cluster mode: what is watched and the Lease that elects the one writer.
#[derive(Clone, Debug, Args)]
pub struct ClusterArgs {
    /// Cluster mode: watch only this namespace (repeatable; all namespaces when none).
    #[arg(
        long = "namespace",
        value_name = "NS",
        env = "FAILOVER_DNS_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Cluster mode: the Lease replicas elect their one status and Event writer with.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "failover-dns",
        env = "FAILOVER_DNS_LEASE_NAME"
    )]
    pub lease_name: String,
    /// Cluster mode: namespace of the Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long, value_name = "NS", env = "FAILOVER_DNS_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Cluster mode: another replica takes over within this time after the leader
    /// dies (the Lease itself holds 2 s less, the slack a takeover needs).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_lease_duration, env = "FAILOVER_DNS_LEASE_DURATION")]
    pub lease_duration: Duration,
    /// Serve a FailoverRecord only where a NameDelegation covers its name and namespace,
    /// even while none exists (both modes; with one or more, delegation applies anyway).
    #[arg(long, env = "FAILOVER_DNS_REQUIRE_DELEGATION")]
    pub require_delegation: bool,
    /// Cluster mode: while the Gateway API is not installed, it is looked for this
    /// often (discovery, no extra permission); its Gateways are watched once it is.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_flag_duration, env = "FAILOVER_DNS_GATEWAY_API_LOOKUP")]
    pub gateway_api_lookup: Duration,
}

/// Cluster mode: how status and Events are written.
#[derive(Clone, Debug, Args)]
pub struct StatusArgs {
    /// Cluster mode: HealthCheck statuses are written when the verdict, the reason or
    /// the generation changes; probe times and latency alone at most this often.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_flag_duration, env = "FAILOVER_DNS_STATUS_REFRESH")]
    pub status_refresh: Duration,
    /// Cluster mode: status and Event writes per second, at most (client-side limit,
    /// so a mass transition cannot flood the API server).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..), env = "FAILOVER_DNS_STATUS_QPS")]
    pub status_qps: u32,
    /// Cluster mode: writes allowed in one burst above `--status-qps`.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..), env = "FAILOVER_DNS_STATUS_BURST")]
    pub status_burst: u32,
    /// Cluster mode: one object's status is written at most this often (the latest
    /// state wins), and it gets at most one Event this often (the changes in between
    /// told together).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_flag_duration, env = "FAILOVER_DNS_STATUS_MIN_INTERVAL")]
    pub status_min_interval: Duration,
}

impl DnsArgs {
    /// The DNS server's configuration with `udp_sockets` resolved.
    pub fn config(&self, udp_sockets: usize) -> DnsConfig {
        DnsConfig {
            addr: self.dns_addr,
            udp_sockets,
            udp_engine: self.udp_engine,
            tcp: TcpLimits {
                max_connections: self.tcp_max_connections,
                max_connections_per_client: self.tcp_max_connections_per_client,
                idle_timeout: self.tcp_idle_timeout,
                query_timeout: self.tcp_query_timeout,
                max_queries_per_connection: self.tcp_max_queries,
            },
            rrl_per_second: self.rrl_per_second,
            rrl_slip: self.rrl_slip,
        }
    }
}

impl AdminArgs {
    pub fn limits(&self) -> AdminLimits {
        AdminLimits {
            max_connections: self.admin_max_connections,
            max_connections_per_client: self.admin_max_connections_per_client,
            header_timeout: self.admin_header_timeout,
            idle_timeout: self.admin_idle_timeout,
        }
    }
}

impl ProbeArgs {
    pub fn config(&self) -> ProberConfig {
        ProberConfig {
            max_in_flight: self.max_probes_in_flight,
            guard: ProbeGuard::new(&self.probe_deny, &self.probe_allow),
            announce_established: false,
        }
    }
}

/// Cluster mode: the checker quorum (every replica a checker, one verdict).
#[derive(Clone, Debug, Args)]
pub struct QuorumArgs {
    /// Cluster mode: a check is healthy while more than this percentage of the
    /// replicas with a live report see it healthy (Route 53's 18 %); 0 = each
    /// replica decides from its own probes alone and writes no report.
    #[arg(long, value_name = "PERCENT", default_value_t = 18, value_parser = clap::value_parser!(u8).range(0..=99), env = "FAILOVER_DNS_CHECKER_QUORUM")]
    pub checker_quorum: u8,
    /// Cluster mode: a replica's CheckerReport is rewritten at most this often (its
    /// verdict changes in between are coalesced).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_flag_duration, env = "FAILOVER_DNS_REPORT_INTERVAL")]
    pub report_interval: Duration,
    /// Cluster mode: a CheckerReport not renewed for this long no longer counts; each
    /// replica renews its own every third of it.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_report_ttl, env = "FAILOVER_DNS_REPORT_TTL")]
    pub report_ttl: Duration,
}

fn parse_report_ttl(text: &str) -> Result<Duration, String> {
    let duration = parse_flag_duration(text)?;
    if duration < Duration::from_secs(1) {
        return Err(format!("{text:?}: at least 1s"));
    }
    Ok(duration)
}

/// Whole seconds, at least 2 (the Lease API counts in seconds).
fn parse_lease_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_flag_duration(text)?;
    if duration.as_secs() < 2 || duration.subsec_nanos() != 0 {
        return Err(format!("{text:?}: whole seconds, at least 2"));
    }
    Ok(duration)
}

/// A duration flag: plain seconds (`10`, as the first flags took them) or a
/// humantime duration (`500ms`, `2s`, `1m`).
pub fn parse_flag_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{text:?}: {e} (seconds, or a duration such as 500ms or 2s)"))?,
    };
    if duration.is_zero() {
        return Err(format!("{text:?}: must be more than zero"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_plain_seconds_or_units() {
        assert_eq!(parse_flag_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_flag_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_flag_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_flag_duration("0s").is_err());
        assert!(parse_flag_duration("0").is_err());
        assert!(parse_flag_duration("soon").is_err());
    }
}
