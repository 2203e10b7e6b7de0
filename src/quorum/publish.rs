//! This replica's `CheckerReport`: rewritten when its own verdicts change (changes
//! coalesced, writes at least `--report-interval` apart), renewed every third of
//! `--report-ttl` otherwise (a renewal sends the time alone), deleted on a clean stop.
//! A failed write is retried with backoff; while the API server is away the report
//! simply expires at the other replicas.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::report::{self, Body, Listed};
use super::{DEPLOYMENT_LABEL, OwnVerdicts, QuorumConfig, QuorumError, QuorumMetrics};
use crate::model::ObjectRef;
use crate::resources::{CheckerReport, CheckerReportSpec};

/// Longest wait between retries of a failed write.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A clean stop waits this long at most for its report's deletion.
const DELETE_WITHIN: Duration = Duration::from_secs(2);
/// The `kind` label of a write.
const FULL: &str = "full";
const RENEWAL: &str = "renewal";
/// A write that takes longer is abandoned and retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

struct Writer {
    api: Api<CheckerReport>,
    name: String,
    config: QuorumConfig,
    metrics: QuorumMetrics,
}

/// Publishes this replica's verdicts until `shutdown`, then deletes the report.
pub async fn run(
    client: Client,
    config: QuorumConfig,
    mut own: mpsc::UnboundedReceiver<OwnVerdicts>,
    metrics: QuorumMetrics,
    shutdown: CancellationToken,
) -> Result<(), QuorumError> {
    let api = Api::namespaced(client, &config.namespace);
    let name = report::object_name(&config.identity);
    let writer = Writer { api, name, config, metrics };
    let renew_every = writer.config.ttl / 3;
    let mut listed: BTreeMap<ObjectRef, Listed> = BTreeMap::new();
    // Nothing is written before the sink's first whole listing: until then this replica
    // is no checker to the others.
    let mut joined = false;
    let mut changed = false;
    let mut last_write: Option<Instant> = None;
    let mut renewed = Instant::now();
    let mut failures = 0u32;
    let mut retry_at = Instant::now();
    loop {
        let due = if !joined {
            // Parked: the sink's first listing wakes the loop.
            Instant::now() + renew_every
        } else if changed {
            let spaced = last_write.map_or(Instant::now(), |t| t + writer.config.interval);
            spaced.max(retry_at)
        } else {
            (renewed + renew_every).max(retry_at)
        };
        tokio::select! {
            // At shutdown the sink stops too: its channel closing must not win the race
            // and leave the report behind.
            biased;
            () = shutdown.cancelled() => {
                writer.delete().await;
                return Ok(());
            }
            news = own.recv() => {
                let Some(news) = news else {
                    if shutdown.is_cancelled() {
                        writer.delete().await;
                        return Ok(());
                    }
                    return Err(QuorumError::SinkGone);
                };
                // The first news is the whole listing, written at once even when empty.
                changed |= apply(&mut listed, news) || !joined;
                joined = true;
                while let Ok(more) = own.try_recv() {
                    changed |= apply(&mut listed, more);
                }
            }
            () = sleep_until(due.into()), if joined => {
                let started = Instant::now();
                let ok = if changed {
                    last_write = Some(started);
                    writer.write(&listed).await
                } else {
                    writer.renew().await
                };
                match ok {
                    Ok(()) => {
                        changed = false;
                        renewed = started;
                        failures = 0;
                        retry_at = started;
                    }
                    Err(WriteFailure::Gone) => {
                        // Deleted by someone: written whole again, at once.
                        changed = true;
                        retry_at = started;
                    }
                    Err(WriteFailure::Failed) => {
                        failures = failures.saturating_add(1);
                        let backoff = writer.config.interval.max(Duration::from_millis(100))
                            * 2u32.saturating_pow(failures.min(5));
                        retry_at = started + backoff.min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
}

/// Folds one batch of own verdicts in; true when the report changed.
fn apply(listed: &mut BTreeMap<ObjectRef, Listed>, news: OwnVerdicts) -> bool {
    let mut changed = false;
    for (id, verdict) in news {
        match verdict {
            Some(verdict) => {
                if listed.get(&id) != Some(&verdict) {
                    listed.insert(id, verdict);
                    changed = true;
                }
            }
            None => changed |= listed.remove(&id).is_some(),
        }
    }
    changed
}

enum WriteFailure {
    /// The report does not exist (a renewal cannot recreate it).
    Gone,
    Failed,
}

impl Writer {
    fn spec(&self, body: Body) -> CheckerReportSpec {
        CheckerReportSpec {
            checker: self.config.identity.clone(),
            renew_time: report::renew_time(SystemTime::now()),
            ttl_seconds: self.config.ttl.as_secs().max(1) as i64,
            namespaces: self.config.watched.clone(),
            unhealthy_count: body.unhealthy as i64,
            pending_count: body.pending as i64,
            unhealthy: body.lists.unhealthy,
            pending: body.lists.pending,
            compressed: body.compressed,
        }
    }

    /// The whole report: a merge patch of the spec (the one field it does not carry is
    /// cleared), or a create when there is none yet.
    async fn write(&self, listed: &BTreeMap<ObjectRef, Listed>) -> Result<(), WriteFailure> {
        let spec = self.spec(report::encode(listed));
        let labels = json!({ DEPLOYMENT_LABEL: &self.config.lease_name });
        let mut patch = json!({ "metadata": { "labels": &labels }, "spec": &spec });
        // A merge patch keeps what it does not name: the lists not sent are cleared.
        for field in ["namespaces", "unhealthy", "pending", "compressed"] {
            if patch["spec"].get(field).is_none() {
                patch["spec"][field] = serde_json::Value::Null;
            }
        }
        let started = Instant::now();
        let patched = self
            .timed(self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)))
            .await;
        let result = match patched {
            Err(WriteError::Api { code: 404, .. }) => {
                let mut object = CheckerReport::new(&self.name, spec);
                object.meta_mut().namespace = Some(self.config.namespace.clone());
                let label = (DEPLOYMENT_LABEL.to_owned(), self.config.lease_name.clone());
                object.meta_mut().labels = Some([label].into());
                self.timed(self.api.create(&PostParams::default(), &object)).await
            }
            other => other,
        };
        self.finish(FULL, started, result)
    }

    /// The time alone.
    async fn renew(&self) -> Result<(), WriteFailure> {
        let patch = json!({ "spec": { "renewTime": report::renew_time(SystemTime::now()) } });
        let started = Instant::now();
        let result = self
            .timed(self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)))
            .await;
        self.finish(RENEWAL, started, result)
    }

    async fn timed<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        match tokio::time::timeout(WRITE_TIMEOUT, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(kube::Error::Api(status))) => {
                Err(WriteError::Api { code: status.code, message: status.message })
            }
            Ok(Err(other)) => Err(WriteError::Other(other.to_string())),
            Err(_) => Err(WriteError::Other(format!("no answer within {WRITE_TIMEOUT:?}"))),
        }
    }

    fn finish<T>(
        &self,
        kind: &'static str,
        started: Instant,
        result: Result<T, WriteError>,
    ) -> Result<(), WriteFailure> {
        self.metrics.wrote(kind, result.is_ok(), started.elapsed());
        match result {
            Ok(_) => Ok(()),
            // A renewal of a report someone deleted; a full write that still finds nothing
            // (the namespace is missing) is a failure like any other, retried with backoff.
            Err(WriteError::Api { code: 404, .. }) if kind == RENEWAL => Err(WriteFailure::Gone),
            Err(error) => {
                tracing::warn!(report = %self.name, namespace = %self.config.namespace, kind, %error, "checker report not written; retrying");
                Err(WriteFailure::Failed)
            }
        }
    }

    async fn delete(&self) {
        let deleted = tokio::time::timeout(
            DELETE_WITHIN,
            self.api.delete(&self.name, &DeleteParams::default()),
        )
        .await;
        match deleted {
            Ok(Ok(_)) => tracing::info!(report = %self.name, "checker report deleted"),
            Ok(Err(error)) => {
                tracing::warn!(report = %self.name, %error, "checker report not deleted; it expires")
            }
            Err(_) => {
                tracing::warn!(report = %self.name, "checker report not deleted in time; it expires")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("{message}")]
    Api { code: u16, message: String },
    #[error("{0}")]
    Other(String),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn only_real_changes_of_the_own_verdicts_change_the_report() {
        let mut listed = BTreeMap::new();
        let a = ObjectRef::new("ns", "a");
        let timeout = || Some(Listed::Unhealthy(Arc::from("Timeout")));
        assert!(apply(&mut listed, vec![(a.clone(), Some(Listed::Pending))]));
        assert!(apply(&mut listed, vec![(a.clone(), timeout())]));
        assert!(!apply(&mut listed, vec![(a.clone(), timeout())]), "same");
        let refused = Some(Listed::Unhealthy(Arc::from("ConnectionRefused")));
        assert!(apply(&mut listed, vec![(a.clone(), refused)]));
        assert!(!apply(&mut listed, vec![(ObjectRef::new("ns", "b"), None)]), "was healthy");
        assert!(apply(&mut listed, vec![(a, None)]));
        assert!(listed.is_empty());
    }
}
