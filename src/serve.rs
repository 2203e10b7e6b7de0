//! `failover-dns serve`: wiring only. Sources (manifest files | API watches) and the
//! prober feed the [`Sink`], which owns the state and publishes the snapshot (read by
//! the DNS server) and the view (read by the admin endpoint and the status writer).
//! Every task is owned by the [`Supervisor`].

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin};
use crate::config::ServeArgs;
use crate::conn::AdminStats;
use crate::dns::DnsServer;
use crate::metrics::{self, DnsStats};
use crate::model::Fqdn;
use crate::prober::Prober;
use crate::quorum::{self, QuorumConfig, QuorumMetrics, publish, report};
use crate::sink::Sink;
use crate::snapshot::ZoneSettings;
use crate::source::api_watch::Staleness;
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
    // The prober and the API client both use rustls; ring is the one provider built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mut state, client) = initial_state(&args).await?;
    let mut registry = metrics::registry();
    let mut supervisor = Supervisor::new(shutdown.clone(), args.test_panic_task.clone());
    let mut probes = args.probes.config();
    // Under the checker quorum a verdict counts once a probe backs it: the sink must hear.
    probes.announce_established = client.is_some() && args.quorum.checker_quorum > 0;
    let (prober, transitions) = Prober::spawn(probes, &mut registry, shutdown.clone());
    let (snapshot, view) = (state.snapshot.clone(), state.view.clone());
    let sink = match client {
        // Standalone: the manifests are read before anything is served.
        None => {
            let reads = files::watch::register_reads(&mut registry);
            let manifests = Manifests::new(args.manifests.clone());
            let manifests = files::watch::load(manifests, &reads, &mut state).await?;
            let sink = Sink::new(state);
            let watcher =
                files::watch::run(manifests, reads, sink.handle(), reload, shutdown.clone());
            supervisor.spawn("manifest-watcher", watcher);
            sink
        }
        Some(client) => {
            tracing::info!(namespaces = ?args.cluster.namespaces, "cluster mode: watching the API server");
            let config = writer_config(&args);
            if args.quorum.checker_quorum > 0 {
                state.set_quorum(args.quorum.checker_quorum);
            }
            let mut sink = Sink::new(state);
            // How stale each kind's watched data may be (every API watch reports here).
            let staleness = Staleness::register(&mut registry);
            if args.quorum.checker_quorum > 0 {
                let quorum = QuorumConfig {
                    identity: config.identity.clone(),
                    namespace: config.lease_namespace.clone(),
                    lease_name: config.lease_name.clone(),
                    watched: {
                        let mut watched = args.cluster.namespaces.clone();
                        watched.sort();
                        watched.dedup();
                        watched
                    },
                    interval: args.quorum.report_interval,
                    ttl: args.quorum.report_ttl,
                };
                let own = sink.own_verdicts(Arc::from(report::object_name(&quorum.identity)));
                let metrics = QuorumMetrics::register(&mut registry, view.clone());
                let (c, q, s) = (client.clone(), quorum.clone(), shutdown.clone());
                supervisor.spawn("report-writer", publish::run(c, q, own, metrics, s));
                let (c, h, s) = (client.clone(), sink.handle(), staleness.clone());
                let watcher = quorum::watch::run(c, quorum, h, s, shutdown.clone());
                supervisor.spawn("report-watcher", watcher);
            }
            let news = sink.status_news();
            let metrics = WriterMetrics::register(&mut registry);
            let writer = writer::run(
                client.clone(),
                config,
                view.clone(),
                prober.clone(),
                news,
                metrics,
                shutdown.clone(),
            );
            supervisor.spawn("status-writer", writer);
            sink.add_source();
            let (c, h) = (client.clone(), sink.handle());
            let delegations =
                crate::source::delegations::run(c, h, staleness.clone(), shutdown.clone());
            supervisor.spawn("delegation-watcher", delegations);
            sink.add_source();
            let (c, h, n) = (client.clone(), sink.handle(), args.cluster.namespaces.clone());
            let lookup = args.cluster.gateway_api_lookup;
            let objects =
                crate::source::objects::run(c, n, lookup, h, staleness.clone(), shutdown.clone());
            supervisor.spawn("object-watcher", objects);
            let namespaces = args.cluster.namespaces.clone();
            supervisor.spawn(
                "cluster-watcher",
                cluster::run(client, namespaces, sink.handle(), staleness, shutdown.clone()),
            );
            sink
        }
    };
    // The sink has a thread of its own: a transition never waits for a runtime worker
    // busy decoding a listing or serving a reader.
    let (sink_prober, sink_shutdown) = (prober.clone(), shutdown.clone());
    supervisor.spawn_thread("sink", move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        runtime
            .block_on(sink.run(sink_prober, transitions, sink_shutdown))
            .map_err(anyhow::Error::from)
    });

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let udp_sockets = if args.dns.udp_sockets == 0 { cpus } else { args.dns.udp_sockets };
    let stats = DnsStats::register(udp_sockets + 1, &mut registry);
    let dns = DnsServer::start(&args.dns.config(udp_sockets), snapshot, stats, shutdown.clone())?;
    supervisor.spawn("dns", dns.run(shutdown.clone()));

    let admin_listener = AdminStats::register(&mut registry);
    crate::view::OutcomeGauges::register(&mut registry, view.clone());
    let admin = Admin { view, registry: Arc::new(registry), prober, alive: supervisor.alive() };
    let addr = args.admin.admin_addr;
    let admin_server =
        admin::serve(addr, admin, args.admin.limits(), admin_listener, shutdown.clone())
            .await
            .with_context(|| format!("cannot serve the admin endpoint on {addr}"))?;
    supervisor.spawn("admin", admin_server);
    supervisor.run().await?;
    Ok(())
}

/// The empty state for the zones, and in cluster mode the API client (then answers
/// are held back, SERVFAIL, until the first complete listing).
async fn initial_state(args: &ServeArgs) -> anyhow::Result<(State, Option<kube::Client>)> {
    let zones = parse_names("--zone", &args.zones)?;
    let nameservers = parse_names("--nameserver", &args.dns.nameservers)?;
    // A mistyped path would otherwise start a server with nothing to serve.
    for path in &args.manifests {
        std::fs::metadata(path).with_context(|| format!("--manifests {}", path.display()))?;
    }
    let (soa_ttl, negative_ttl) = (args.dns.soa_ttl, args.dns.negative_ttl);
    let mut state = State::new(ZoneSettings { zones, nameservers, soa_ttl, negative_ttl });
    state.set_require_delegation(args.cluster.require_delegation);
    if !args.manifests.is_empty() {
        return Ok((state, None));
    }
    // Only reads the configuration: the API server may well be down at start.
    let client = kube::Client::try_default()
        .await
        .context("cluster mode (no --manifests): no Kubernetes configuration found")?;
    state.set_ready(false);
    state.set_cluster_objects();
    Ok((state, Some(client)))
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
        min_interval: args.status.status_min_interval,
    }
}
