//! The other replicas' `CheckerReport`s: each report is compared with the last one
//! of its checker and only what changed goes to the sink; a renewal (the same
//! verdicts, a new time) only extends its life. A report not renewed within
//! `--report-ttl`, deleted, or gone from a re-listing stops counting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::report::{self, Unhealthy};
use super::{CheckerNews, QuorumConfig, QuorumError};
use crate::resources::{CheckerReport, UnhealthyChecks};
use crate::sink::{SinkHandle, Update};

/// One other checker, as its last report showed it.
struct Peer {
    checker: Arc<str>,
    /// The report's verdict fields as they came: a renewal leaves them unchanged.
    payload: (Vec<UnhealthyChecks>, Option<String>),
    unhealthy: Unhealthy,
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
        let payload = (spec.unhealthy, spec.unhealthy_gzip);
        if let Some(peer) = self.peers.get_mut(&name)
            && peer.payload == payload
        {
            peer.expires = expires;
            return;
        }
        let unhealthy = match report::decode(&payload.0, payload.1.as_deref()) {
            Ok(unhealthy) => unhealthy,
            Err(error) => {
                tracing::warn!(report = %name, %error, "checker report ignored");
                return self.remove(&name, news);
            }
        };
        let now = SystemTime::now();
        let (checker, views) = match self.peers.get(&name) {
            Some(peer) => (peer.checker.clone(), report::diff(&peer.unhealthy, &unhealthy, now)),
            None => {
                tracing::info!(checker = %name, unhealthy = unhealthy.len(), "checker joined");
                (Arc::from(name.as_str()), report::diff(&Unhealthy::default(), &unhealthy, now))
            }
        };
        news.push(CheckerNews::Report { checker: checker.clone(), views });
        self.peers.insert(name, Peer { checker, payload, unhealthy, expires });
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

/// Watches the reports until `shutdown`.
pub async fn run(
    client: Client,
    config: QuorumConfig,
    sink: SinkHandle,
    shutdown: CancellationToken,
) -> Result<(), QuorumError> {
    let api: Api<CheckerReport> = Api::namespaced(client, &config.namespace);
    let mut events =
        watcher::watcher(api, watcher::Config::default().any_semantic()).default_backoff().boxed();
    let mut peers = Peers::new(&config);
    loop {
        let mut news = Vec::new();
        let expiry = peers.next_expiry();
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = async { sleep_until(expiry.expect("guarded").into()).await }, if expiry.is_some() => {
                peers.expire(Instant::now(), &mut news);
            }
            event = events.next() => match event.ok_or(QuorumError::WatchEnded)? {
                Ok(event) => peers.on_event(event, &mut news),
                Err(error) => {
                    tracing::warn!(namespace = %config.namespace, %error, "watch of checker reports failed; retrying with backoff");
                }
            },
        }
        if !news.is_empty() {
            sink.send(Update::Checkers(news)).await?;
        }
    }
}
