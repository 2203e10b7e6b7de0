//! The leader election: replicas campaign for one `coordination.k8s.io/v1` Lease; its
//! holder is the one status writer.
//!
//! As Kubernetes' own leader election does it: every change to the Lease is a read
//! followed by a write that carries the `resourceVersion` read (a merge patch with
//! `metadata.resourceVersion` is refused with 409 Conflict when anyone wrote in
//! between), so two candidates can never both win. A Lease held by another identity is
//! respected until it expires, measured on this replica's own clock from the moment it
//! saw the holder's record change, and never before the record's own
//! `renewTime + leaseDurationSeconds`: neither a clock running ahead here nor one
//! running behind at the holder shortens it. A leader that cannot renew steps down
//! (stops writing) well before any other replica could take over. A Lease that cannot be
//! read or created (a missing namespace, no permission) is counted and logged once a
//! minute while it lasts.

use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use prometheus_client::metrics::counter::Counter;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::writer::WriterConfig;

/// Characters of the pod UID, or of the random suffix, after the pod name.
const SUFFIX_LEN: usize = 8;
/// The longest object name (the identity also names this replica's CheckerReport).
const MAX_NAME: usize = 253;
/// While the Lease cannot be read or written, one log line per this interval.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// The longest pause between attempts while the Lease cannot be read or created.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The longest one call to the API server may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The field manager of the Lease writes.
const MANAGER: &str = "failover-dns";

impl WriterConfig {
    /// This process's identity, unique per process and a valid object name:
    /// `$POD_NAME-` plus the first 8 characters of `$POD_UID` (the downward API sets
    /// both in the shipped manifests), else 8 random hex digits; without `POD_NAME`,
    /// the host name, the process id and 8 random hex digits. Lower case `[a-z0-9-]`.
    pub fn default_identity() -> String {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.trim().is_empty());
        identity(
            var("POD_NAME").as_deref(),
            var("POD_UID").as_deref(),
            || {
                hostname::get()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "failover-dns".into())
            },
            std::process::id(),
            || format!("{:08x}", rand::random::<u32>()),
        )
    }
}

/// [`WriterConfig::default_identity`] with its inputs given.
fn identity(
    pod: Option<&str>,
    uid: Option<&str>,
    host: impl FnOnce() -> String,
    pid: u32,
    random: impl FnOnce() -> String,
) -> String {
    let (base, suffix) = match pod {
        Some(pod) => {
            let uid: Option<String> = uid.map(|uid| {
                uid.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .map(|c| c.to_ascii_lowercase())
                    .take(SUFFIX_LEN)
                    .collect()
            });
            (pod.to_string(), uid.filter(|u| !u.is_empty()).unwrap_or_else(random))
        }
        None => (format!("{}-{pid}", host()), random()),
    };
    let mut base: String = base
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(MAX_NAME - 1 - suffix.len())
        .collect();
    base = base.trim_matches('-').to_string();
    if base.is_empty() {
        base = "failover-dns".into();
    }
    format!("{base}-{suffix}")
}

/// What the Lease says, as far as the election goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    duration: Option<i32>,
    acquire: Option<SystemTime>,
    renew: Option<SystemTime>,
    transitions: i32,
}

impl Record {
    fn of(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration: spec.lease_duration_seconds,
            acquire: spec.acquire_time.map(|t| t.0.into()),
            renew: spec.renew_time.map(|t| t.0.into()),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// The Lease as last read or written, and when this replica first saw that record.
#[derive(Clone, Debug)]
struct Observed {
    record: Record,
    version: String,
    since: Instant,
}

/// How long a Lease held by someone else still holds: `since` (when this replica saw
/// the record change, on its own clock) plus the duration, and never less than the
/// record's own `renewTime + leaseDurationSeconds` (on the wall clock). A holder that
/// gives no duration holds for `fallback`. `None`: free (no holder, or expired).
fn held_for(
    record: &Record,
    since: Instant,
    now: Instant,
    wall: SystemTime,
    fallback: Duration,
) -> Option<Duration> {
    record.holder.as_ref()?;
    let duration = match record.duration {
        Some(seconds) if seconds > 0 => Duration::from_secs(seconds as u64),
        _ => fallback,
    };
    let observed = (since + duration).saturating_duration_since(now);
    let recorded = record
        .renew
        .and_then(|renew| renew.checked_add(duration))
        .and_then(|until| until.duration_since(wall).ok())
        .unwrap_or_default();
    Some(observed.max(recorded)).filter(|left| !left.is_zero())
}

/// The election's timing, from `--lease-duration`.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// What the Lease says (`leaseDurationSeconds`).
    lease_seconds: u64,
    /// The leader renews this long after its last renewal.
    renew_every: Duration,
    /// A leader that has not renewed within this time of sending its last successful
    /// renewal steps down; others wait at least `lease_seconds` from seeing it.
    renew_deadline: Duration,
    /// A standby reads the Lease this often; a leader retries a failed renewal as often.
    retry: Duration,
}

impl Timing {
    fn of(lease_duration: Duration) -> Timing {
        // A standby takes an expired Lease up to a retry period after it saw the last
        // renewal and a retry period after expiry (plus round trips): the Lease holds
        // 2 s less than --lease-duration, so a takeover fits in it.
        let lease_seconds = lease_duration.as_secs().saturating_sub(2).max(2);
        let lease = Duration::from_secs(lease_seconds);
        let renew_every = lease / 3;
        Timing {
            lease_seconds,
            renew_every,
            renew_deadline: lease * 2 / 3,
            retry: renew_every.min(Duration::from_secs(1)),
        }
    }
}

/// Why one call failed.
enum Failure {
    /// Someone else wrote the Lease in between (or created it first).
    Conflict,
    /// The Lease (or its namespace) is not there.
    NotFound(String),
    /// Anything else: counted and logged.
    Error(String),
}

fn failure(error: kube::Error) -> Failure {
    match &error {
        kube::Error::Api(status) if status.code == 409 => Failure::Conflict,
        kube::Error::Api(status) if status.code == 404 => Failure::NotFound(error.to_string()),
        _ => Failure::Error(error.to_string()),
    }
}

async fn call<T>(
    limit: Duration,
    request: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, request).await {
        Ok(result) => result.map_err(failure),
        Err(_) => Err(Failure::Error(format!("no answer within {limit:?}"))),
    }
}

fn micro_time(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

/// One replica's campaign.
struct Election {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
    timing: Timing,
    errors: Counter,
    observed: Option<Observed>,
    /// Leading until then (the last successful renewal's send time plus the deadline).
    lead_until: Option<Instant>,
    /// The holder last logged as waited for.
    waiting_for: Option<String>,
    backoff: Duration,
    last_logged: Option<Instant>,
    held_back: u64,
    failing: bool,
}

/// Joins the election: the receiver says whether this replica leads (true only while
/// its hold on the Lease is certain); dropping it ends the campaign, releasing the
/// Lease if this replica holds it, and the task ends.
pub(super) fn campaign(
    client: &Client,
    config: &WriterConfig,
    errors: Counter,
) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let timing = Timing::of(config.lease_duration);
    let election = Election {
        api: Api::namespaced(client.clone(), &config.lease_namespace),
        name: config.lease_name.clone(),
        namespace: config.lease_namespace.clone(),
        identity: config.identity.clone(),
        timing,
        errors,
        observed: None,
        lead_until: None,
        waiting_for: None,
        backoff: timing.retry,
        last_logged: None,
        held_back: 0,
        failing: false,
    };
    tracing::info!(identity = %config.identity, lease = %config.lease_name, namespace = %config.lease_namespace, "joining the leader election");
    let (leading, receiver) = watch::channel(false);
    (receiver, tokio::spawn(election.run(leading)))
}

impl Election {
    async fn run(mut self, leading: watch::Sender<bool>) {
        loop {
            let pause = tokio::select! {
                _ = leading.closed() => break,
                pause = self.attempt() => pause,
            };
            let until = tokio::time::Instant::now() + pause;
            loop {
                let leads = self.leads();
                leading.send_if_modified(|was| std::mem::replace(was, leads) != leads);
                // Wake up at the deadline, too, to stop leading on time.
                let wake = match self.lead_until {
                    Some(deadline) if leads => until.min(deadline.into()),
                    _ => until,
                };
                tokio::select! {
                    _ = leading.closed() => break,
                    _ = tokio::time::sleep_until(wake) => {}
                }
                if tokio::time::Instant::now() >= until {
                    break;
                }
            }
            if leading.is_closed() {
                break;
            }
        }
        self.release().await;
    }

    fn leads(&self) -> bool {
        self.lead_until.is_some_and(|until| Instant::now() < until)
    }

    /// One step: read the Lease (unless leading: then renew straight away), then take
    /// or renew it when it is free or ours. Returns the pause before the next step.
    async fn attempt(&mut self) -> Duration {
        if self.leads()
            && let Some(pause) = self.renew_known().await
        {
            return pause;
        }
        let sent = Instant::now();
        let lease = match call(self.call_limit(), self.api.get(&self.name)).await {
            Ok(lease) => lease,
            Err(Failure::NotFound(_)) => return self.create(sent).await,
            Err(Failure::Conflict) => return self.timing.retry,
            Err(Failure::Error(error)) => return self.failed("read", error),
        };
        self.succeeded();
        self.observe(&lease);
        let Some(observed) = self.observed.clone() else { return self.timing.retry };
        let ours = observed.record.holder.as_deref() == Some(self.identity.as_str());
        if !ours {
            let fallback = Duration::from_secs(self.timing.lease_seconds);
            let (now, wall) = (Instant::now(), SystemTime::now());
            let held = held_for(&observed.record, observed.since, now, wall, fallback);
            if let (Some(left), Some(holder)) = (held, &observed.record.holder) {
                self.lead_until = None;
                if self.waiting_for.as_ref() != Some(holder) {
                    tracing::info!(holder = %holder, expires_in = ?left, lease = %self.name, "the Lease is held by another identity: respecting it until it expires");
                    self.waiting_for = Some(holder.clone());
                }
                return self.timing.retry.min(left);
            }
        }
        self.write(&observed, ours, sent).await
    }

    /// While leading, renews with the version last seen, without reading first.
    /// `None`: someone else wrote meanwhile (read again now).
    async fn renew_known(&mut self) -> Option<Duration> {
        let observed = self.observed.clone()?;
        if observed.record.holder.as_deref() != Some(self.identity.as_str()) {
            return None;
        }
        let sent = Instant::now();
        let pause = self.write(&observed, true, sent).await;
        // A conflict: read at once to learn who wrote.
        self.observed.as_ref().map(|_| pause)
    }

    /// Takes (or renews) the Lease read as `observed`, on condition that nobody
    /// wrote it since.
    async fn write(&mut self, observed: &Observed, ours: bool, sent: Instant) -> Duration {
        let now = SystemTime::now();
        let record = &observed.record;
        let (acquire, transitions) = if ours {
            (record.acquire.unwrap_or(now), record.transitions)
        } else {
            (now, record.transitions.saturating_add(1))
        };
        let patch = json!({
            "metadata": { "resourceVersion": observed.version },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.timing.lease_seconds,
                "acquireTime": micro_time(acquire),
                "renewTime": micro_time(now),
                "leaseTransitions": transitions,
            },
        });
        let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        let written =
            call(self.call_limit(), self.api.patch(&self.name, &params, &Patch::Merge(&patch)))
                .await;
        match written {
            Ok(lease) => {
                self.succeeded();
                self.won(&lease, sent)
            }
            Err(Failure::Conflict | Failure::NotFound(_)) => {
                // Read again to learn what changed.
                self.observed = None;
                Duration::ZERO
            }
            Err(Failure::Error(error)) => self.failed(if ours { "renew" } else { "take" }, error),
        }
    }

    /// Creates the Lease, held by this replica.
    async fn create(&mut self, sent: Instant) -> Duration {
        let now = micro_time(SystemTime::now());
        let lease: Lease = match serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": { "name": self.name, "namespace": self.namespace },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.timing.lease_seconds,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        })) {
            Ok(lease) => lease,
            Err(error) => return self.failed("create", error.to_string()),
        };
        let params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        match call(self.call_limit(), self.api.create(&params, &lease)).await {
            Ok(lease) => {
                self.succeeded();
                self.won(&lease, sent)
            }
            // Another replica created it first: read it.
            Err(Failure::Conflict) => Duration::from_millis(100),
            Err(Failure::NotFound(error) | Failure::Error(error)) => self.failed("create", error),
        }
    }

    /// This replica holds the Lease as `lease` says, from the time the write was sent.
    fn won(&mut self, lease: &Lease, sent: Instant) -> Duration {
        self.observe(lease);
        self.waiting_for = None;
        let Some(observed) = &self.observed else { return self.timing.retry };
        if observed.record.holder.as_deref() != Some(self.identity.as_str()) {
            return self.timing.retry;
        }
        if !self.leads() {
            tracing::info!(identity = %self.identity, lease = %self.name, "took the Lease");
        }
        self.lead_until = Some(sent + self.timing.renew_deadline);
        self.timing.renew_every
    }

    /// Notes the Lease as read or written; the clock for a record starts when it changes.
    fn observe(&mut self, lease: &Lease) {
        let record = Record::of(lease);
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let since = match &self.observed {
            Some(seen) if seen.record == record => seen.since,
            _ => Instant::now(),
        };
        self.observed = Some(Observed { record, version, since });
    }

    /// The time one call may take: while leading, no later than the deadline.
    fn call_limit(&self) -> Duration {
        match self.lead_until {
            Some(until) if self.leads() => until
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(100), CALL_TIMEOUT),
            _ => CALL_TIMEOUT,
        }
    }

    fn succeeded(&mut self) {
        self.backoff = self.timing.retry;
        if self.failing {
            self.failing = false;
            tracing::info!(lease = %self.name, namespace = %self.namespace, "the leader election works again");
        }
    }

    /// Counts the failure, logs it at most once a minute, and returns the pause: a
    /// leader retries every retry period until its deadline, a standby backs off.
    fn failed(&mut self, what: &str, error: String) -> Duration {
        self.errors.inc();
        self.failing = true;
        let now = Instant::now();
        if self.last_logged.is_none_or(|at| now.duration_since(at) >= ERROR_LOG_INTERVAL) {
            tracing::error!(
                %error,
                lease = %self.name,
                namespace = %self.namespace,
                identity = %self.identity,
                failures_not_logged = self.held_back,
                "cannot {what} the Lease: this replica cannot lead (it keeps serving DNS; retrying, logged once a minute while it lasts)"
            );
            self.last_logged = Some(now);
            self.held_back = 0;
        } else {
            self.held_back += 1;
        }
        if self.leads() {
            return self.timing.retry;
        }
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        pause
    }

    /// Gives the Lease up if this replica holds it, so another takes over at once.
    async fn release(&mut self) {
        for _ in 0..2 {
            let Some(observed) = self.observed.clone() else { return };
            if observed.record.holder.as_deref() != Some(self.identity.as_str()) {
                return;
            }
            let patch = json!({
                "metadata": { "resourceVersion": observed.version },
                "spec": {
                    "holderIdentity": null,
                    "acquireTime": null,
                    "renewTime": micro_time(SystemTime::now()),
                },
            });
            let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
            let patch = Patch::Merge(&patch);
            match call(CALL_TIMEOUT, self.api.patch(&self.name, &params, &patch)).await {
                Ok(_) => {
                    tracing::info!(identity = %self.identity, lease = %self.name, "released the Lease");
                    return;
                }
                // Written meanwhile (a renewal sent just before the stop): read it again.
                Err(Failure::Conflict) => {
                    match call(CALL_TIMEOUT, self.api.get(&self.name)).await {
                        Ok(lease) => self.observe(&lease),
                        Err(_) => return,
                    }
                }
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(pod: Option<&str>, uid: Option<&str>) -> String {
        identity(pod, uid, || "Build_Host.local".into(), 4242, || "0badf00d".into())
    }

    #[test]
    fn the_identity_is_the_pod_name_and_a_uid_or_random_suffix() {
        let uid = Some("1A2B3C4D-5e6f-7a8b-9c0d-112233445566");
        assert_eq!(fixed(Some("replica-a"), uid), "replica-a-1a2b3c4d");
        assert_eq!(fixed(Some("replica-a"), None), "replica-a-0badf00d");
        assert_eq!(fixed(Some("replica-a"), Some("--")), "replica-a-0badf00d");
        assert_eq!(fixed(None, uid), "build-host-local-4242-0badf00d");
        assert_eq!(fixed(Some("Weird_Pod."), None), "weird-pod-0badf00d");
        assert_eq!(fixed(Some("..."), None), "failover-dns-0badf00d");
        let long = "p".repeat(300);
        let id = fixed(Some(&long), uid);
        assert_eq!(id.len(), MAX_NAME);
        assert!(id.ends_with("-1a2b3c4d"));
        // Unique per process: two processes with the same pod name differ.
        let random = || WriterConfig::default_identity();
        assert_ne!(random(), random());
    }

    #[test]
    fn the_identity_is_its_own_report_name() {
        for id in [fixed(Some("Weird_Pod."), None), fixed(None, None)] {
            assert_eq!(crate::quorum::report::object_name(&id), id);
        }
    }

    fn held(holder: Option<&str>, duration: i32, renewed_ago: Duration) -> Record {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        Record {
            holder: holder.map(str::to_string),
            duration: Some(duration),
            acquire: None,
            renew: Some(wall - renewed_ago),
            transitions: 0,
        }
    }

    #[test]
    fn a_foreign_lease_holds_from_when_it_was_seen_and_never_less_than_it_says() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let since = Instant::now();
        let fallback = Duration::from_secs(13);
        let at = |seconds| since + Duration::from_secs(seconds);
        let left = |record: &Record, now, wall| held_for(record, since, now, wall, fallback);
        // Renewed just now: 8 s from when it was seen.
        let record = held(Some("evil"), 8, Duration::ZERO);
        assert_eq!(left(&record, at(0), wall), Some(Duration::from_secs(8)));
        assert_eq!(
            left(&record, at(7), wall + Duration::from_secs(7)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(left(&record, at(8), wall + Duration::from_secs(8)), None);
        // The record looks old (the holder's clock behind, or ours ahead): still the
        // full duration from when this replica saw it change.
        let old = held(Some("evil"), 8, Duration::from_secs(3600));
        assert_eq!(left(&old, at(0), wall), Some(Duration::from_secs(8)));
        assert_eq!(left(&old, at(8), wall + Duration::from_secs(8)), None);
        // The record says longer (our clock behind): the record wins.
        let ahead = held(Some("evil"), 8, Duration::ZERO);
        let behind = wall - Duration::from_secs(30);
        assert_eq!(left(&ahead, at(8), behind), Some(Duration::from_secs(38)));
        // A long foreign Lease holds for its own duration, not ours.
        let long = held(Some("evil"), 3600, Duration::ZERO);
        assert_eq!(
            left(&long, at(20), wall + Duration::from_secs(20)),
            Some(Duration::from_secs(3580))
        );
        // No holder: free at once. No duration: ours.
        assert_eq!(left(&held(None, 8, Duration::ZERO), at(0), wall), None);
        let mut unsaid = held(Some("evil"), 0, Duration::from_secs(3600));
        unsaid.duration = None;
        assert_eq!(left(&unsaid, at(0), wall), Some(fallback));
    }

    #[test]
    fn a_leader_steps_down_before_anyone_may_take_over() {
        for seconds in [2, 3, 4, 15, 60] {
            let t = Timing::of(Duration::from_secs(seconds));
            let lease = Duration::from_secs(t.lease_seconds);
            assert!(t.renew_deadline < lease, "{seconds}: {t:?}");
            assert!(t.renew_every < t.renew_deadline, "{seconds}: {t:?}");
            assert!(t.retry <= t.renew_every && !t.retry.is_zero(), "{seconds}: {t:?}");
        }
        assert_eq!(Timing::of(Duration::from_secs(15)).lease_seconds, 13);
    }
}
