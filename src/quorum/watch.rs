//! The other replicas' `CheckerReport`s: each report is compared with the last one
//! of its checker and only what changed goes to the sink; a renewal (the same
//! verdicts, a new time) only extends its life. A report not renewed within
//! `--report-ttl`, deleted, or gone from a re-listing stops counting. Retries,
//! re-listing and staleness: [`crate::source::api_watch`], as for every watch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::report::{self, Listing, Lists};
use super::{CheckerNews, DEPLOYMENT_LABEL, QuorumConfig, QuorumError};
use crate::health::Scope;
use crate::resources::CheckerReport;
use crate::sink::{SinkHandle, Update};
use crate::source::api_watch::{self, Staleness};

/// One other checker, as its last report showed it.
struct Peer {
    checker: Arc<str>,
    /// The report's scope and lists as they came: a renewal leaves them unchanged.
    payload: (Vec<String>, Lists, Option<String>),
    listing: Listing,
    expires: Instant,
}

/// The reports of the other checkers, by object name.
pub struct Peers {
    me: String,
    ttl: std::time::Duration,
    peers: HashMap<String, Peer>,
    /// During a (re-)listing: the reports shown so far.
    listing: Option<Vec<String>>,
}

impl Peers {
    pub fn new(config: &QuorumConfig) -> Self {
        let me = report::object_name(&config.identity);
        Self { me, ttl: config.ttl, peers: HashMap::new(), listing: None }
    }

    /// The sink's share of one watch event.
    pub fn on_event(&mut self, event: Event<CheckerReport>, news: &mut Vec<CheckerNews>) {
        match event {
            Event::Init => self.listing = Some(Vec::new()),
            Event::InitApply(object) | Event::Apply(object) => {
                if let Some(listing) = self.listing.as_mut() {
                    listing.push(object.name_any());
                }
                self.put(object, news);
            }
            Event::Delete(object) => self.remove(&object.name_any(), news),
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let gone: Vec<String> =
                    self.peers.keys().filter(|name| !listed.contains(name)).cloned().collect();
                for name in gone {
                    self.remove(&name, news);
                }
            }
        }
    }

    fn put(&mut self, object: CheckerReport, news: &mut Vec<CheckerNews>) {
        let name = object.name_any();
        if name == self.me {
            return;
        }
        let spec = object.spec;
        let remaining = match report::remaining(&spec.renew_time, self.ttl, SystemTime::now()) {
            Ok(remaining) => remaining,
            Err(error) => {
                tracing::warn!(report = %name, %error, "checker report ignored");
                return self.remove(&name, news);
            }
        };
        if remaining.is_zero() {
            // A replica that is gone left its report behind.
            return self.remove(&name, news);
        }
        let expires = Instant::now() + remaining;
        let lists = Lists { unhealthy: spec.unhealthy, pending: spec.pending };
        let payload = (spec.namespaces, lists, spec.compressed);
        if let Some(peer) = self.peers.get_mut(&name)
            && peer.payload == payload
        {
            peer.expires = expires;
            return;
        }
        let counts = (spec.unhealthy_count, spec.pending_count);
        let listing = match report::decode(&payload.1, payload.2.as_deref())
            .and_then(|listing| report::check_counts(listing, counts))
        {
            Ok(listing) => listing,
            Err(error) => {
                tracing::warn!(report = %name, %error, "checker report ignored");
                return self.remove(&name, news);
            }
        };
        let now = SystemTime::now();
        let (checker, views) = match self.peers.get(&name) {
            Some(peer) => (peer.checker.clone(), report::diff(&peer.listing, &listing, now)),
            None => {
                tracing::info!(checker = %name, listed = listing.len(), "checker joined");
                (Arc::from(name.as_str()), report::diff(&Listing::default(), &listing, now))
            }
        };
        let scope: Scope = payload.0.iter().map(|ns| Arc::from(ns.as_str())).collect();
        news.push(CheckerNews::Report { checker: checker.clone(), scope, views });
        self.peers.insert(name, Peer { checker, payload, listing, expires });
    }

    fn remove(&mut self, name: &str, news: &mut Vec<CheckerNews>) {
        if let Some(peer) = self.peers.remove(name) {
            tracing::info!(checker = %name, "checker left (its report expired or was deleted)");
            news.push(CheckerNews::Gone { checker: peer.checker });
        }
    }

    /// When the next report expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.peers.values().map(|p| p.expires).min()
    }

    /// Drops the reports that expired by `now`.
    pub fn expire(&mut self, now: Instant, news: &mut Vec<CheckerNews>) {
        let expired: Vec<String> =
            self.peers.iter().filter(|(_, p)| p.expires <= now).map(|(n, _)| n.clone()).collect();
        for name in expired {
            self.remove(&name, news);
        }
    }
}

/// Watches the reports until `shutdown`; `staleness` follows the watch.
pub async fn run(
    client: Client,
    config: QuorumConfig,
    sink: SinkHandle,
    staleness: Arc<Staleness>,
    shutdown: CancellationToken,
) -> Result<(), QuorumError> {
    let api: Api<CheckerReport> = Api::namespaced(client, &config.namespace);
    // Only this deployment's reports: another one sharing the namespace checks other things.
    let selector = format!("{DEPLOYMENT_LABEL}={}", config.lease_name);
    let watch = watcher::Config::default().any_semantic().labels(&selector);
    let tracker = staleness.track("CheckerReport", config.namespace.clone());
    let mut events = api_watch::watch(api, watch, tracker).boxed();
    let mut peers = Peers::new(&config);
    loop {
        let mut news = Vec::new();
        let expiry = peers.next_expiry();
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = async { sleep_until(expiry.expect("guarded").into()).await }, if expiry.is_some() => {
                peers.expire(Instant::now(), &mut news);
            }
            event = events.next() => peers.on_event(event.ok_or(QuorumError::WatchEnded)?, &mut news),
        }
        if !news.is_empty() {
            sink.send(Update::Checkers(news)).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resources::{CheckerReportSpec, UnhealthyChecks};

    fn config() -> QuorumConfig {
        QuorumConfig {
            identity: "replica-a".into(),
            namespace: "dns".into(),
            lease_name: "failover-dns".into(),
            watched: vec![],
            interval: Duration::from_millis(100),
            ttl: Duration::from_secs(15),
        }
    }

    fn report(name: &str, age: Duration, unhealthy: &[&str]) -> CheckerReport {
        let names = unhealthy.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let groups = if names.is_empty() {
            vec![]
        } else {
            vec![UnhealthyChecks { namespace: "ns".into(), reason: "Timeout".into(), names }]
        };
        let spec = CheckerReportSpec {
            checker: name.into(),
            renew_time: report::renew_time(SystemTime::now() - age),
            ttl_seconds: 15,
            namespaces: vec![],
            unhealthy_count: unhealthy.len() as i64,
            pending_count: 0,
            unhealthy: groups,
            pending: vec![],
            compressed: None,
        };
        CheckerReport::new(name, spec)
    }

    fn summary(news: &[CheckerNews]) -> Vec<String> {
        news.iter()
            .map(|n| match n {
                CheckerNews::Report { checker, views, .. } => {
                    let mut v: Vec<String> = views
                        .iter()
                        .map(|(id, v)| format!("{}={:?}", id.name, v.as_ref().unwrap().healthy))
                        .collect();
                    v.sort();
                    format!("{checker}: {}", v.join(" "))
                }
                CheckerNews::Gone { checker } => format!("{checker} gone"),
            })
            .collect()
    }

    #[test]
    fn reports_become_differences_and_renewals_only_extend_a_life() {
        let mut peers = Peers::new(&config());
        let mut news = Vec::new();
        let fresh = Duration::ZERO;
        peers.on_event(Event::Apply(report("replica-a", fresh, &["x"])), &mut news);
        assert!(news.is_empty(), "its own report is not a peer's");
        peers.on_event(Event::Apply(report("replica-b", fresh, &["x", "y"])), &mut news);
        assert_eq!(summary(&news), ["replica-b: x=Some(false) y=Some(false)"]);
        news.clear();
        let first_expiry = peers.next_expiry().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        peers.on_event(Event::Apply(report("replica-b", fresh, &["x", "y"])), &mut news);
        assert!(news.is_empty(), "a renewal changes no view");
        assert!(peers.next_expiry().unwrap() > first_expiry, "but extends the report's life");
        peers.on_event(Event::Apply(report("replica-b", fresh, &["y"])), &mut news);
        assert_eq!(summary(&news), ["replica-b: x=Some(true)"]);
    }

    #[test]
    fn stale_deleted_and_unlisted_reports_stop_counting() {
        let mut peers = Peers::new(&config());
        let mut news = Vec::new();
        let old = Duration::from_secs(3600);
        peers.on_event(Event::Apply(report("ghost", old, &[])), &mut news);
        assert!(news.is_empty() && peers.next_expiry().is_none(), "a report left behind");
        for name in ["replica-b", "replica-c"] {
            peers.on_event(Event::Apply(report(name, Duration::ZERO, &[])), &mut news);
        }
        news.clear();
        peers.on_event(Event::Delete(report("replica-b", Duration::ZERO, &[])), &mut news);
        assert_eq!(summary(&news), ["replica-b gone"]);
        news.clear();
        peers.on_event(Event::Init, &mut news);
        peers.on_event(Event::InitDone, &mut news);
        assert_eq!(summary(&news), ["replica-c gone"], "deleted while the watch was away");
        news.clear();
        let ten_secs_old = Duration::from_secs(10);
        peers.on_event(Event::Apply(report("replica-d", ten_secs_old, &[])), &mut news);
        peers.expire(Instant::now() + Duration::from_secs(4), &mut news);
        assert_eq!(news.len(), 1, "still live 4 s later");
        peers.expire(Instant::now() + Duration::from_secs(6), &mut news);
        assert_eq!(summary(&news[1..]), ["replica-d gone"], "15 s after its own time");
    }
}
