//! Typed command line (with environment fallbacks).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::dns::UdpEngine;

#[derive(Debug, Parser)]
#[command(name = "failover-dns", version, about = "Route 53-style DNS failover: health-checked records served by an authoritative DNS server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve DNS for the zones: standalone from manifest files, or as a Kubernetes controller.
    Serve(ServeArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
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
    /// Cluster mode: watch only this namespace (repeatable; all namespaces when none).
    #[arg(long = "namespace", value_name = "NS", env = "FAILOVER_DNS_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Zone to serve authoritatively (repeatable).
    #[arg(long = "zone", value_name = "ZONE", required = true, env = "FAILOVER_DNS_ZONES", value_delimiter = ',')]
    pub zones: Vec<String>,
    /// DNS listen address (UDP and TCP).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:53", env = "FAILOVER_DNS_DNS_ADDR")]
    pub dns_addr: SocketAddr,
    /// Admin HTTP address: /healthz, /readyz, /metrics, /status, /explain.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:8080", env = "FAILOVER_DNS_ADMIN_ADDR")]
    pub admin_addr: SocketAddr,
    /// Name servers announced in the NS and SOA records of every zone (default: ns1.<zone>).
    #[arg(long = "nameserver", value_name = "NAME", env = "FAILOVER_DNS_NAMESERVERS", value_delimiter = ',')]
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
    /// Idle timeout of DNS-over-TCP connections, in seconds.
    #[arg(long, default_value_t = 10, env = "FAILOVER_DNS_TCP_IDLE_TIMEOUT")]
    pub tcp_idle_timeout: u64,
    /// Most health-check probes in flight at once.
    #[arg(long, default_value_t = 1024, env = "FAILOVER_DNS_MAX_PROBES_IN_FLIGHT")]
    pub max_probes_in_flight: usize,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "FAILOVER_DNS_LOG_FORMAT")]
    pub log_format: LogFormat,
}
