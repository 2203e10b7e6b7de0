//! The leader election against a real API server: replicas with the same `POD_NAME`
//! still elect one writer, a Lease held by a foreign identity is respected until its
//! own expiry (created before the replicas start, and taken from a leader while it
//! leads), and a Lease that cannot be created is an error counted and logged while DNS
//! goes on serving.

use std::time::{Duration, Instant, SystemTime};

use crate::cluster::{apply, condition, failover_pair, kubectl, object};
use crate::support::cluster::ControlPlane;
use crate::support::*;
use hickory_proto::rr::RecordType;

const WWW: &str = "www.example.test.";
const PRIMARY: &str = "192.0.2.1";
const SECONDARY: &str = "192.0.2.2";
const LEASE: &str = "dns-writer";

/// One replica named `pod` (no POD_UID: a random suffix), its Lease `dns-writer` in
/// `lease_ns`, lasting 4 s (the Lease itself says 2 s).
fn replica(cp: &ControlPlane, pod: &str, lease_ns: &str) -> Binary {
    let env = [("KUBECONFIG", cp.kubeconfig_path().as_os_str()), ("POD_NAME", pod.as_ref())];
    let args = [
        "--zone",
        "example.test",
        "--lease-name",
        LEASE,
        "--lease-namespace",
        lease_ns,
        "--lease-duration",
        "4s",
    ];
    Binary::start_with_env(&args, &env)
}

fn leads(bin: &Binary) -> bool {
    bin.metric("failoverdns_leader") == 1.0
}

fn leaders(replicas: &[Binary]) -> usize {
    replicas.iter().filter(|bin| leads(bin)).count()
}

fn holder(cp: &ControlPlane) -> Option<String> {
    object(cp, "lease", "dns", LEASE)["spec"]["holderIdentity"].as_str().map(str::to_string)
}

/// The sum of every sample of a counter family (0 when it has none yet).
fn total(bin: &Binary, family: &str) -> f64 {
    let (_, text) = http_get(bin.admin, "/metrics");
    let prefix = format!("{family}{{");
    text.lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn now_micro() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

#[test]
fn two_replicas_with_the_same_pod_name_elect_one_writer() {
    let cp = ControlPlane::start();
    kubectl(&cp, &["create", "namespace", "dns"]);
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    apply(&cp, &failover_pair(target.addr.port(), "500ms"));
    let replicas = [replica(&cp, "replica-a", "dns"), replica(&cp, "replica-a", "dns")];
    for bin in &replicas {
        bin.wait_until(|| bin.answers(WWW, RecordType::A) == [PRIMARY], "every replica answers");
    }
    replicas[0].wait_for(
        Duration::from_secs(20),
        || leaders(&replicas) == 1 && holder(&cp).is_some(),
        "a leader",
    );
    // And only one, for a while (several renewals and polls).
    for _ in 0..20 {
        assert_eq!(leaders(&replicas), 1, "exactly one leader");
        std::thread::sleep(Duration::from_millis(200));
    }
    let at = replicas.iter().position(leads).unwrap();
    let (leader, follower) = (&replicas[at], &replicas[1 - at]);

    // The identities differ (the pod name and a suffix each): two CheckerReports, the
    // holder's one of them.
    let holder = holder(&cp).unwrap();
    assert!(holder.starts_with("replica-a-") && holder.len() > "replica-a-".len(), "{holder}");
    let reports = || {
        let out = cp.kubectl(&["get", "checkerreports", "-n", "dns", "-o", "name"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut names: Vec<String> =
            text.lines().map(|l| l.rsplit('/').next().unwrap().to_string()).collect();
        names.sort();
        names
    };
    leader.wait_until(|| reports().len() == 2, "a report per replica");
    let names = reports();
    assert!(names.iter().all(|n| n.starts_with("replica-a-")), "{names:?}");
    assert!(names.contains(&holder), "the holder {holder} is one of {names:?}");

    // A failover: only the leader writes status and Events.
    target.stop();
    for bin in &replicas {
        bin.wait_until(
            || bin.answers(WWW, RecordType::A) == [SECONDARY],
            "every replica fails over",
        );
    }
    leader.wait_until(
        || {
            let web = object(&cp, "hc", "default", "web");
            web["status"]["healthy"] == false && condition(&web, "Healthy")["status"] == "False"
        },
        "the status written",
    );
    leader.wait_until(|| total(leader, "failoverdns_events_total") >= 1.0, "Events written");
    assert!(total(leader, "failoverdns_status_writes_total") >= 1.0, "the leader wrote status");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        total(follower, "failoverdns_status_writes_total"),
        0.0,
        "the follower wrote status"
    );
    assert_eq!(total(follower, "failoverdns_events_total"), 0.0, "the follower wrote Events");
    assert!(leads(leader) && !leads(follower));
}

/// Until `until` (after the Lease was given to `evil`), nobody takes it: every poll sees
/// `evil` hold it and no replica lead.
fn nobody_takes_it_before(cp: &ControlPlane, replicas: &[Binary], until: Instant) {
    while Instant::now() < until {
        assert_eq!(
            holder(cp).as_deref(),
            Some("evil"),
            "the foreign Lease taken before it expired"
        );
        assert_eq!(leaders(replicas), 0, "a replica leads while the foreign Lease holds");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A replica takes the Lease once it expired.
fn one_takes_over(cp: &ControlPlane, replicas: &[Binary], within: Duration) {
    replicas[0].wait_for(
        within,
        || {
            leaders(replicas) == 1
                && holder(cp)
                    .is_some_and(|h| h.starts_with("replica-a-") || h.starts_with("replica-b-"))
        },
        "a replica to take the expired Lease",
    );
}

#[test]
fn a_foreign_lease_is_respected_until_it_expires() {
    let cp = ControlPlane::start();
    kubectl(&cp, &["create", "namespace", "dns"]);
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    apply(&cp, &failover_pair(target.addr.port(), "500ms"));

    // Held by someone else for 8 s (four times what these replicas would write).
    let given = Instant::now();
    let now = now_micro();
    apply(
        &cp,
        &format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {LEASE}, namespace: dns}}\n\
             spec: {{holderIdentity: evil, leaseDurationSeconds: 8, acquireTime: \"{now}\", renewTime: \"{now}\"}}\n"
        ),
    );
    let replicas = [replica(&cp, "replica-a", "dns"), replica(&cp, "replica-b", "dns")];
    for bin in &replicas {
        bin.wait_until(|| bin.answers(WWW, RecordType::A) == [PRIMARY], "every replica answers");
    }
    nobody_takes_it_before(&cp, &replicas, given + Duration::from_millis(7500));
    one_takes_over(&cp, &replicas, Duration::from_secs(10));
    let transitions = object(&cp, "lease", "dns", LEASE)["spec"]["leaseTransitions"].as_i64();
    assert_eq!(transitions, Some(1), "a takeover counts as a transition");

    // While one leads, the Lease is given to someone else for 8 s: the leader stops
    // writing at its next renewal, and nobody takes it back before it expires.
    let given = Instant::now();
    let patch = format!(
        r#"{{"spec":{{"holderIdentity":"evil","leaseDurationSeconds":8,"renewTime":"{}"}}}}"#,
        now_micro()
    );
    kubectl(&cp, &["patch", "lease", LEASE, "-n", "dns", "--type", "merge", "-p", &patch]);
    replicas[0].wait_for(
        Duration::from_secs(3),
        || leaders(&replicas) == 0,
        "the leader steps down",
    );
    assert_eq!(holder(&cp).as_deref(), Some("evil"));
    nobody_takes_it_before(&cp, &replicas, given + Duration::from_millis(7500));
    one_takes_over(&cp, &replicas, Duration::from_secs(10));

    // A Lease patched to a long foreign hold, as in the report: still held 20 s later.
    let patch = format!(
        r#"{{"spec":{{"holderIdentity":"evil","leaseDurationSeconds":3600,"renewTime":"{}"}}}}"#,
        now_micro()
    );
    kubectl(&cp, &["patch", "lease", LEASE, "-n", "dns", "--type", "merge", "-p", &patch]);
    replicas[0].wait_for(
        Duration::from_secs(3),
        || leaders(&replicas) == 0,
        "the leader steps down",
    );
    nobody_takes_it_before(&cp, &replicas, Instant::now() + Duration::from_secs(20));
    for bin in &replicas {
        assert!(bin.logs().contains("held by another identity"), "{}", bin.logs());
    }
}

#[test]
fn a_missing_lease_namespace_is_an_error_counted_and_logged_while_dns_serves() {
    let cp = ControlPlane::start();
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    apply(&cp, &failover_pair(target.addr.port(), "500ms"));
    let bin = replica(&cp, "replica-a", "nowhere");
    bin.wait_until(|| bin.answers(WWW, RecordType::A) == [PRIMARY], "DNS served");
    let errors = || bin.metric("failoverdns_leader_election_errors_total");
    // Retried with backoff (1 s, 2 s, 4 s ...): several failures, one log line a minute.
    bin.wait_for(Duration::from_secs(20), || errors() >= 3.0, "failures counted");
    assert!(!leads(&bin));
    let logged = |bin: &Binary| {
        bin.logs()
            .lines()
            .filter(|l| l.contains("cannot create the Lease"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let lines = logged(&bin);
    assert_eq!(lines.len(), 1, "one line a minute:\n{}", bin.logs());
    assert!(lines[0].contains("nowhere") && lines[0].contains("not found"), "{}", lines[0]);
    assert_eq!(try_http_get(bin.admin, "/readyz").map(|(code, _)| code).ok(), Some(200));
    target.stop();
    bin.wait_until(|| bin.answers(WWW, RecordType::A) == [SECONDARY], "failover still works");

    // The namespace appears: the replica leads (the backoff is at most 10 s).
    kubectl(&cp, &["create", "namespace", "nowhere"]);
    bin.wait_for(Duration::from_secs(20), || leads(&bin), "the replica leads");
    assert!(bin.logs().contains("the leader election works again"), "{}", bin.logs());
    assert_eq!(logged(&bin).len(), 1, "{}", bin.logs());
}
