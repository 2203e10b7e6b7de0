//! `failover-dns serve`: wires a source, the state, the DNS server and the admin
//! endpoint together under one shutdown token.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use notify::Watcher;
use notify::EventKind;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::Mutex;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin};
use crate::config::ServeArgs;
use crate::conn::AdminStats;
use crate::controller::{self, WriterConfig, WriterMetrics};
use crate::dns::DnsServer;
use crate::metrics::DnsStats;
use crate::model::Fqdn;
use crate::prober::{HealthUpdate, Prober};
use crate::snapshot::ZoneSettings;
use crate::source::cluster;
use crate::source::files::Manifests;
use crate::state::State;
use crate::status::Book;

/// How long file events are collected before a reload while a file is being
/// written (editors write in bursts).
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long after a file was closed, renamed into place or removed: the events of
/// the same save arrive within microseconds, and a reload only reads the files
/// whose size, mtime or inode changed, so an extra one costs little.
const WRITTEN_DEBOUNCE: Duration = Duration::from_millis(1);
/// A rescan even without file events, for file systems that do not report them.
const RESCAN: Duration = Duration::from_secs(5);

/// Serves until `shutdown`; every `reload` notification (SIGHUP) re-reads the manifests.
pub async fn run(args: ServeArgs, shutdown: CancellationToken, reload: Arc<tokio::sync::Notify>) -> anyhow::Result<()> {
    let zones = args
        .zones
        .iter()
        .map(|z| Fqdn::parse(z).map_err(|e| anyhow::anyhow!("--zone {z:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let nameservers = args
        .nameservers
        .iter()
        .map(|n| Fqdn::parse(n).map_err(|e| anyhow::anyhow!("--nameserver {n:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cluster = args.manifests.is_empty();
    // The prober and the API client both use rustls; ring is the one provider built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A mistyped path would otherwise start a server with nothing to serve.
    for path in &args.manifests {
        std::fs::metadata(path).with_context(|| format!("--manifests {}", path.display()))?;
    }
    let settings = ZoneSettings { zones: zones.clone(), nameservers, soa_ttl: args.soa_ttl, negative_ttl: args.negative_ttl };
    let mut state = State::new(settings);
    let client = if cluster {
        // Only reads the configuration: the API server may well be down at start.
        let client = kube::Client::try_default()
            .await
            .context("cluster mode (no --manifests): no Kubernetes configuration found")?;
        // SERVFAIL and not ready until the first complete listing.
        state.set_ready(false);
        state.track_status();
        Some(client)
    } else {
        None
    };
    let snapshot = state.snapshot.clone();
    let state = Arc::new(Mutex::new(state));

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let udp_sockets = if args.udp_sockets == 0 { cpus } else { args.udp_sockets };
    let stats = Arc::new(DnsStats::new(udp_sockets + 1));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(stats.clone()));
    let admin_stats = AdminStats::default();
    let admin_listener = admin_stats.0.clone();
    registry.register_collector(Box::new(admin_stats));

    let writer_metrics = client.as_ref().map(|_| WriterMetrics::register(&mut registry));
    let (prober, updates) = Prober::spawn(args.prober_config(), &mut registry, shutdown.clone());
    tokio::spawn(apply_health_updates(updates, state.clone()));

    let manifests = match client {
        None => {
            let reads = Counter::default();
            registry.register(
                "failoverdns_manifest_reads",
                "Times the manifest files were looked at (start, file events, SIGHUP, periodic rescan)",
                reads.clone(),
            );
            Some((load(Manifests::new(args.manifests.clone()), &state, &prober, &reads).await, reads))
        }
        Some(_) => None,
    };

    let dns = DnsServer::start(&args.dns_config(udp_sockets), snapshot, stats, shutdown.clone())?;
    let dns_ready = Arc::new(AtomicBool::new(true));
    let admin = Admin {
        state: state.clone(),
        registry: Arc::new(registry),
        probe_states: {
            let prober = prober.clone();
            Arc::new(move || prober.states())
        },
        dns_ready,
    };
    admin::serve(args.admin_addr, admin, args.admin_limits(), admin_listener, shutdown.clone())
        .await
        .with_context(|| format!("cannot serve the admin endpoint on {}", args.admin_addr))?;

    let mut writer = None;
    let watch = match (manifests, client) {
        (Some((manifests, reads)), _) => {
            tokio::spawn(watch_manifests(manifests, reads, state, prober, reload, shutdown.clone()))
        }
        (None, Some(client)) => {
            tracing::info!(namespaces = ?args.namespaces, "cluster mode: watching the API server");
            let book = Arc::new(std::sync::Mutex::new(Book::default()));
            let config = writer_config(&args);
            let metrics = writer_metrics.unwrap_or_default();
            let (st, pr, bk, sd) = (state.clone(), prober.clone(), book.clone(), shutdown.clone());
            writer = Some(tokio::spawn(controller::run(client.clone(), config, st, pr, bk, metrics, sd)));
            tokio::spawn(cluster::run(client, args.namespaces.clone(), state, prober, book, shutdown.clone()))
        }
        (None, None) => unreachable!("either manifests or a client"),
    };
    dns.stopped(shutdown).await;
    let _ = watch.await;
    if let Some(writer) = writer {
        // It releases the Lease, so another replica takes over at once.
        let _ = writer.await;
    }
    Ok(())
}

fn writer_config(args: &ServeArgs) -> WriterConfig {
    let lease_namespace = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "default".into());
    WriterConfig {
        lease_name: args.lease_name.clone(),
        lease_namespace,
        lease_duration: args.lease_duration,
        identity: WriterConfig::default_identity(),
        refresh: args.status_refresh,
        qps: args.status_qps,
        burst: args.status_burst,
    }
}

/// Reads the manifests off the runtime's threads, then commits what changed and
/// hands the prober the checks that changed.
async fn load(manifests: Manifests, state: &Mutex<State>, prober: &Prober, reads: &Counter) -> Manifests {
    reads.inc();
    let (mut manifests, pending) = tokio::task::spawn_blocking(move || {
        let pending = manifests.read();
        (manifests, pending)
    })
    .await
    .expect("the manifest reader does not panic");
    let mut state = state.lock().await;
    manifests.commit(pending, &mut state);
    let changed = state.take_changed_checks();
    let checks = &state.model().checks;
    prober.update_checks(changed.iter().map(|id| (id, checks.get(id))));
    manifests
}

/// Feeds the prober's transitions into the state: each batch rebuilds the snapshot
/// once, the moment it arrives.
async fn apply_health_updates(mut updates: UnboundedReceiver<HealthUpdate>, state: Arc<Mutex<State>>) {
    while let Some(first) = updates.recv().await {
        let mut batch = vec![(first.id, first.health)];
        while let Ok(more) = updates.try_recv() {
            batch.push((more.id, more.health));
        }
        state.lock().await.set_health(batch);
    }
}

/// What a file event under the roots says about the manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileEvent {
    /// Opened or read (the reloads' own reads among them): nothing changed.
    Looked,
    /// Being written: more is likely to follow.
    Writing,
    /// Closed after writing, renamed into place, or removed: read it now.
    Written,
}

impl FileEvent {
    fn of(kind: &EventKind) -> Self {
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => FileEvent::Written,
            // A reload opens the directories and files it reads; reacting to that
            // kept the server re-reading its manifests every DEBOUNCE, forever.
            EventKind::Access(_) => FileEvent::Looked,
            EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => FileEvent::Written,
            // A created file is written next; data and metadata changes may go on.
            _ => FileEvent::Writing,
        }
    }

    fn debounce(self) -> Duration {
        if self == FileEvent::Written { WRITTEN_DEBOUNCE } else { DEBOUNCE }
    }
}

/// Reloads the manifests whenever a file under the roots changes.
async fn watch_manifests(
    mut manifests: Manifests,
    reads: Counter,
    state: Arc<Mutex<State>>,
    prober: Prober,
    reload: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let news = FileEvent::of(&event.kind);
            if news != FileEvent::Looked {
                let _ = tx.send(news);
            }
        }
    }) {
        Ok(w) => Some(w),
        Err(error) => {
            tracing::warn!(%error, "file watching unavailable; rescanning periodically");
            None
        }
    };
    if let Some(w) = watcher.as_mut() {
        for root in manifests.roots() {
            // Watch a file's directory: editors replace files by renaming over them.
            let (target, mode) = if root.is_dir() {
                (root.clone(), notify::RecursiveMode::Recursive)
            } else {
                (root.parent().map(|p| if p.as_os_str().is_empty() { ".".into() } else { p.to_path_buf() }).unwrap_or_else(|| ".".into()), notify::RecursiveMode::NonRecursive)
            };
            if let Err(error) = w.watch(&target, mode) {
                tracing::warn!(%error, path = %target.display(), "cannot watch manifests; rescanning periodically");
            }
        }
    }
    // The start has just read everything: the first rescan is one period away.
    let mut rescan = tokio::time::interval_at(tokio::time::Instant::now() + RESCAN, RESCAN);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            event = rx.recv() => {
                let Some(first) = event else { return };
                if !gather_burst(&mut rx, first).await {
                    return;
                }
            }
            _ = rescan.tick() => {}
            () = reload.notified() => {}
            () = tokio::time::sleep(crate::source::files::SETTLE), if manifests.settling() => {}
        }
        manifests = load(manifests, &state, &prober, &reads).await;
    }
}

/// Takes the events of one burst: until the debounce of the first has passed, or
/// a written file's shorter one. False when the watcher is gone.
async fn gather_burst(rx: &mut UnboundedReceiver<FileEvent>, first: FileEvent) -> bool {
    let mut until = tokio::time::Instant::now() + first.debounce();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return true,
            more = rx.recv() => match more {
                None => return false,
                Some(news) => until = until.min(tokio::time::Instant::now() + news.debounce()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    use super::*;

    #[test]
    fn reads_are_no_news_and_finished_writes_are_read_at_once() {
        let looked = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ];
        for kind in looked {
            assert_eq!(FileEvent::of(&kind), FileEvent::Looked, "{kind:?}");
        }
        let written = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Remove(RemoveKind::File),
        ];
        for kind in written {
            assert_eq!(FileEvent::of(&kind), FileEvent::Written, "{kind:?}");
        }
        let writing = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Any,
            EventKind::Other,
        ];
        for kind in writing {
            assert_eq!(FileEvent::of(&kind), FileEvent::Writing, "{kind:?}");
        }
        assert!(FileEvent::Written.debounce() < FileEvent::Writing.debounce());
    }
}
