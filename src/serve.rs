//! `failover-dns serve`: wiring only. Sources (manifest files | API watches) and the
//! prober feed the [`Sink`], which owns the state and publishes the snapshot (read by
//! the DNS server) and the view (read by the admin endpoint and the status writer).
//! Every task is owned by the [`Supervisor`].

use std::sync::Arc;

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin};
use crate::config::ServeArgs;
use crate::conn::AdminStats;
use crate::dns::DnsServer;
use crate::metrics::DnsStats;
use crate::model::Fqdn;
use crate::prober::Prober;
use crate::sink::Sink;
use crate::snapshot::ZoneSettings;
use crate::source::cluster;
use crate::source::files::{self, Manifests};
use crate::state::State;
use crate::status::writer::{self, WriterConfig, WriterMetrics};
use crate::supervisor::Supervisor;

/// Serves until `shutdown`, or until a supervised task stops (an error); every
/// `reload` notification (SIGHUP) re-reads the manifests.
pub async fn run(
    args: ServeArgs,
    shutdown: CancellationToken,
    reload: Arc<Notify>,
) -> anyhow::Result<()> {
    let zones = parse_names("--zone", &args.zones)?;
    let nameservers = parse_names("--nameserver", &args.dns.nameservers)?;
    let cluster = args.manifests.is_empty();
    // The prober and the API client both use rustls; ring is the one provider built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A mistyped path would otherwise start a server with nothing to serve.
    for path in &args.manifests {
        std::fs::metadata(path).with_context(|| format!("--manifests {}", path.display()))?;
    }
    let settings = ZoneSettings {
        zones,
        nameservers,
        soa_ttl: args.dns.soa_ttl,
        negative_ttl: args.dns.negative_ttl,
    };
    let mut state = State::new(settings);
    let client = if cluster {
        // Only reads the configuration: the API server may well be down at start.
        let client = kube::Client::try_default()
            .await
            .context("cluster mode (no --manifests): no Kubernetes configuration found")?;
        // SERVFAIL and not ready until the first complete listing.
        state.set_ready(false);
        Some(client)
    } else {
        None
    };

    let mut registry = Registry::default();
    let mut supervisor = Supervisor::new(shutdown.clone(), args.test_panic_task.clone());
    let (prober, transitions) =
        Prober::spawn(args.probes.config(), &mut registry, shutdown.clone());

    // Standalone: the manifests are read before anything is served.
    let manifests = match client {
        None => {
            let reads = Counter::default();
            registry.register(
                "failoverdns_manifest_reads",
                "Times the manifest files were looked at (start, file events, SIGHUP, periodic rescan)",
                reads.clone(),
            );
            let loaded =
                files::watch::load(Manifests::new(args.manifests.clone()), &reads, &mut state)
                    .await?;
            Some((loaded, reads))
        }
        Some(_) => None,
    };
    let (snapshot, view) = (state.snapshot.clone(), state.view.clone());
    let mut sink = Sink::new(state);
    let source = sink.handle();
    match (manifests, client) {
        (Some((manifests, reads)), _) => {
            supervisor.spawn(
                "manifest-watcher",
                files::watch::run(manifests, reads, source, reload, shutdown.clone()),
            );
        }
        (None, Some(client)) => {
            tracing::info!(namespaces = ?args.cluster.namespaces, "cluster mode: watching the API server");
            let news = sink.status_news();
            let metrics = WriterMetrics::register(&mut registry);
            let config = writer_config(&args);
            let status_writer = writer::run(
                client.clone(),
                config,
                view.clone(),
                prober.clone(),
                news,
                metrics,
                shutdown.clone(),
            );
            supervisor.spawn("status-writer", status_writer);
            supervisor.spawn(
                "cluster-watcher",
                cluster::run(client, args.cluster.namespaces.clone(), source, shutdown.clone()),
            );
        }
        (None, None) => unreachable!("either manifests or a client"),
    }
    supervisor.spawn("sink", sink.run(prober.clone(), transitions, shutdown.clone()));

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let udp_sockets = if args.dns.udp_sockets == 0 { cpus } else { args.dns.udp_sockets };
    let stats = Arc::new(DnsStats::new(udp_sockets + 1));
    registry.register_collector(Box::new(stats.clone()));
    let admin_stats = AdminStats::default();
    let admin_listener = admin_stats.0.clone();
    registry.register_collector(Box::new(admin_stats));

    let dns = DnsServer::start(&args.dns.config(udp_sockets), snapshot, stats, shutdown.clone())?;
    supervisor.spawn("dns", dns.run(shutdown.clone()));
    let admin = Admin { view, registry: Arc::new(registry), prober, alive: supervisor.alive() };
    let admin_server = admin::serve(
        args.admin.admin_addr,
        admin,
        args.admin.limits(),
        admin_listener,
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot serve the admin endpoint on {}", args.admin.admin_addr))?;
    supervisor.spawn("admin", admin_server);
    supervisor.run().await?;
    Ok(())
}

fn parse_names(flag: &str, names: &[String]) -> anyhow::Result<Vec<Fqdn>> {
    names.iter().map(|n| Fqdn::parse(n).map_err(|e| anyhow::anyhow!("{flag} {n:?}: {e}"))).collect()
}

fn writer_config(args: &ServeArgs) -> WriterConfig {
    let lease_namespace = args
        .cluster
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "default".into());
    WriterConfig {
        lease_name: args.cluster.lease_name.clone(),
        lease_namespace,
        lease_duration: args.cluster.lease_duration,
        identity: WriterConfig::default_identity(),
        refresh: args.status.status_refresh,
        qps: args.status.status_qps,
        burst: args.status.status_burst,
    }
}
