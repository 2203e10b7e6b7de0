//! The leader election: replicas campaign for one `coordination.k8s.io/v1` Lease; its
//! holder is the one status writer.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;

use super::writer::WriterConfig;

impl WriterConfig {
    /// `POD_NAME`, else the host name and process id.
    pub fn default_identity() -> String {
        std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| {
            let host = hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "failover-dns".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

type Campaign = tokio::task::JoinHandle<
    Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>,
>;

/// Joins the election: retries (with backoff) until the Lease can be read or created.
pub(super) async fn campaign(
    client: &Client,
    config: &WriterConfig,
    shutdown: &CancellationToken,
) -> Option<(tokio::sync::watch::Receiver<bool>, Campaign)> {
    // A standby takes an expired Lease up to a second after expiry (plus a round
    // trip): the Lease holds 2 s less than --lease-duration, so a takeover fits in it.
    let seconds = config.lease_duration.as_secs().saturating_sub(2).max(2);
    // Renew a third of the duration before expiry (at least a second).
    let grace = (seconds / 3).clamp(1, seconds - 1);
    let mut backoff = Duration::from_millis(500);
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
            .with_namespace(&config.lease_namespace)
            .with_identity(&config.identity)
            .with_duration(seconds)
            .with_grace(grace)
            .build()
            .await;
        match built {
            Ok(manager) => return Some(manager.watch().await),
            Err(error) => {
                tracing::warn!(%error, lease = %config.lease_name, namespace = %config.lease_namespace, "cannot join the leader election yet; retrying");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
