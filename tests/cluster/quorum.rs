//! The checker quorum against a real API server: several replicas of the real binary,
//! each probing the same target, one of them cut off from it (`--probe-deny`), and
//! what every replica answers over real DNS, what the HealthCheck status says, and
//! what happens to the CheckerReports when a replica or the API server goes away.

use std::time::Duration;

use crate::cluster::{RECONNECT, apply, condition, failover_pair, kubectl, object};
use crate::support::cluster::ControlPlane;
use crate::support::*;
use hickory_proto::rr::RecordType;

const PRIMARY: &str = "192.0.2.1";
const SECONDARY: &str = "192.0.2.2";
const WWW: &str = "www.example.test.";

/// The pod UID every replica here is given (its identity: the pod name and the UID's
/// first 8 characters).
const POD_UID: &str = "0c0ffee0-0000-4000-8000-000000000000";

/// The identity, report name and checker name of the replica `pod`.
fn id(pod: &str) -> String {
    format!("{pod}-0c0ffee0")
}

/// One replica: reports and Lease in namespace `dns`, pod `pod` (identity [`id`]).
pub(crate) fn replica(cp: &ControlPlane, pod: &str, extra: &[&str]) -> Binary {
    let env = [
        ("KUBECONFIG", cp.kubeconfig_path().as_os_str()),
        ("POD_NAME", pod.as_ref()),
        ("POD_UID", POD_UID.as_ref()),
    ];
    let mut args = vec![
        "--zone",
        "example.test",
        "--lease-name",
        "dns-writer",
        "--lease-namespace",
        "dns",
        "--lease-duration",
        "4s",
    ];
    args.extend_from_slice(extra);
    Binary::start_with_env(&args, &env)
}

fn answers_with(bin: &Binary, value: &str) -> bool {
    bin.answers(WWW, RecordType::A) == [value]
}

/// Every replica answers `value` (polled; each must get there).
fn all_answer(replicas: &[&Binary], value: &str, within: Duration, what: &str) {
    for bin in replicas {
        bin.wait_for(within, || answers_with(bin, value), what);
    }
}

fn healthy_message(cp: &ControlPlane) -> String {
    let hc = object(cp, "hc", "default", "web");
    condition(&hc, "Healthy")["message"].as_str().unwrap_or_default().to_owned()
}

/// `(name, healthy, reason)` of each checker in the HealthCheck's status.
fn status_checkers(cp: &ControlPlane) -> Vec<(String, bool, String)> {
    let hc = object(cp, "hc", "default", "web");
    let list = hc["status"]["checkers"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|c| {
            let s = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
            (s("name"), c["healthy"] == true, s("reason"))
        })
        .collect()
}

fn live_checkers(bin: &Binary) -> f64 {
    bin.metric("failoverdns_checkers_live")
}

fn reports(cp: &ControlPlane) -> Vec<String> {
    let out = cp.kubectl(&["get", "checkerreports", "-n", "dns", "-o", "name"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn three_replicas_answer_as_one_through_a_partition_a_failover_and_lost_replicas() {
    let cp = ControlPlane::start();
    kubectl(&cp, &["create", "namespace", "dns"]);
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let addr = target.addr;
    apply(&cp, &failover_pair(addr.port(), "200ms"));
    let ttl = ["--report-ttl", "3s"];
    let a = replica(&cp, "replica-a", &ttl);
    // Cut off from the target: alone it would fail the primary over.
    let b = replica(&cp, "replica-b", &[&ttl[..], &["--probe-deny", "127.0.0.0/8"]].concat());
    let mut c = replica(&cp, "replica-c", &ttl);

    for bin in [&a, &b, &c] {
        bin.wait_until(|| live_checkers(bin) == 3.0, "three live checkers");
    }
    all_answer(&[&a, &b, &c], PRIMARY, Duration::from_secs(10), "every replica serves the PRIMARY");
    a.wait_until(
        || healthy_message(&cp).contains("2 of 3 checkers report healthy"),
        "status: 2 of 3 checkers report healthy",
    );
    let checkers = status_checkers(&cp);
    assert_eq!(checkers.len(), 3, "{checkers:?}");
    assert!(checkers.contains(&(id("replica-b"), false, "TargetDenied".into())), "{checkers:?}");
    assert!(checkers.iter().filter(|c| c.0 != id("replica-b")).all(|c| c.1), "{checkers:?}");
    assert_eq!(object(&cp, "hc", "default", "web")["status"]["healthy"], true);
    assert_eq!(b.metric("failoverdns_checks_checkers_disagree"), 1.0);
    // Steady: replica-b keeps answering the PRIMARY over many queries.
    for _ in 0..20 {
        assert!(answers_with(&b, PRIMARY), "replica-b never fails over alone");
    }
    let explained: serde_json::Value =
        serde_json::from_str(&http_get(b.admin, "/explain?name=www.example.test&type=A").1)
            .unwrap();
    let explained_checkers = explained["checks"][0]["checkers"].as_array().unwrap();
    assert_eq!(explained_checkers.len(), 3, "/explain shows each checker: {explained}");
    let status = b.status();
    let web =
        status["healthChecks"].as_array().unwrap().iter().find(|c| c["name"] == "web").unwrap();
    assert_eq!(web["status"]["checkers"].as_array().unwrap().len(), 3, "/status too: {web}");

    // The target dies: every checker sees it, every replica answers the SECONDARY.
    target.stop();
    all_answer(&[&a, &b, &c], SECONDARY, Duration::from_secs(10), "every replica fails over");
    a.wait_until(
        || healthy_message(&cp).contains("0 of 3 checkers report healthy"),
        "status: 0 of 3 checkers report healthy",
    );

    // A replica dies without a word: its report stays, but stops counting after its TTL.
    let _ = c.child.kill();
    let _ = c.child.wait();
    for bin in [&a, &b] {
        bin.wait_for(Duration::from_secs(8), || live_checkers(bin) == 2.0, "replica-c expired");
    }
    assert!(reports(&cp).contains(&format!("checkerreport.failoverdns.io/{}", id("replica-c"))));
    // The target returns: 1 of 2 checkers (replica-a) is more than 18 %.
    let _target = HttpTarget::start(addr);
    all_answer(&[&a, &b], PRIMARY, Duration::from_secs(10), "both serve the PRIMARY again");
    a.wait_until(
        || healthy_message(&cp).contains("1 of 2 checkers report healthy"),
        "status: 1 of 2 checkers report healthy",
    );

    // A clean stop deletes the report at once; replica-b, alone, decides alone.
    a.signal(libc::SIGTERM);
    cp.eventually(Duration::from_secs(5), "replica-a's report deleted", || {
        !reports(&cp).contains(&format!("checkerreport.failoverdns.io/{}", id("replica-a")))
    });
    b.wait_until(|| live_checkers(&b) == 1.0, "replica-b alone");
    b.wait_until(|| answers_with(&b, SECONDARY), "alone, replica-b follows its own probes");
}

#[test]
fn quorum_zero_lets_each_replica_decide_alone_and_writes_no_report() {
    let cp = ControlPlane::start();
    kubectl(&cp, &["create", "namespace", "dns"]);
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    apply(&cp, &failover_pair(target.addr.port(), "200ms"));
    let off = ["--checker-quorum", "0"];
    let a = replica(&cp, "replica-a", &off);
    let b = replica(&cp, "replica-b", &[&off[..], &["--probe-deny", "127.0.0.0/8"]].concat());
    a.wait_until(|| answers_with(&a, PRIMARY), "replica-a serves the PRIMARY");
    b.wait_until(|| answers_with(&b, SECONDARY), "replica-b fails over on its own probes");
    a.wait_until(
        || object(&cp, "hc", "default", "web")["status"]["healthy"].is_boolean(),
        "status written",
    );
    let hc = object(&cp, "hc", "default", "web");
    assert!(hc["status"].get("checkers").is_none(), "no checkers in status: {hc}");
    assert!(!healthy_message(&cp).contains("checkers report healthy"));
    assert!(reports(&cp).is_empty(), "no reports written");
    let (_, metrics) = http_get(a.admin, "/metrics");
    assert!(!metrics.contains("failoverdns_checkers_live"), "no quorum metrics");
}

#[test]
fn with_the_api_server_down_failover_still_happens_and_reports_resume_after() {
    let cp = ControlPlane::start();
    kubectl(&cp, &["create", "namespace", "dns"]);
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    apply(&cp, &failover_pair(target.addr.port(), "200ms"));
    let ttl = ["--report-ttl", "3s"];
    let replicas: Vec<Binary> =
        ["replica-a", "replica-b", "replica-c"].iter().map(|p| replica(&cp, p, &ttl)).collect();
    for bin in &replicas {
        bin.wait_until(|| live_checkers(bin) == 3.0, "three live checkers");
        bin.wait_until(|| answers_with(bin, PRIMARY), "the PRIMARY");
    }

    cp.stop_apiserver();
    target.stop();
    // The peers' last reports (healthy) expire within the TTL; then each replica decides
    // from the live reports it has: its own.
    let all: Vec<&Binary> = replicas.iter().collect();
    all_answer(&all, SECONDARY, Duration::from_secs(12), "failover without the API server");
    for bin in &replicas {
        assert_eq!(live_checkers(bin), 1.0, "only its own report is live");
    }

    let before: Vec<f64> = replicas
        .iter()
        .map(|b| b.metric(r#"failoverdns_report_writes_total{kind="full",result="ok"}"#))
        .collect();
    cp.start_apiserver();
    for (bin, before) in replicas.iter().zip(before) {
        bin.wait_for(RECONNECT, || live_checkers(bin) == 3.0, "the reports resume");
        // The peers' reports can come back before this replica's own retry (its
        // backoff reaches 2 s): its write is waited for, not assumed.
        let full = || bin.metric(r#"failoverdns_report_writes_total{kind="full",result="ok"}"#);
        bin.wait_for(
            RECONNECT,
            || full() > before,
            "the verdicts written during the outage going out after it",
        );
        assert!(answers_with(bin, SECONDARY), "all three still agree");
    }
}

#[test]
fn a_report_older_than_its_ttl_never_counts() {
    let cp = ControlPlane::start();
    kubectl(&cp, &["create", "namespace", "dns"]);
    // Nothing listens there: this replica sees the PRIMARY's target down.
    let port = free_port();
    apply(&cp, &failover_pair(port, "200ms"));
    let a = replica(&cp, "replica-a", &["--report-ttl", "3s"]);
    a.wait_until(|| answers_with(&a, SECONDARY), "the SECONDARY");

    let report_of = |deployment: &str, name: &str, renewed: &str| {
        format!(
            "apiVersion: failoverdns.io/v1alpha1\nkind: CheckerReport\nmetadata: {{name: {name}, namespace: dns, labels: {{failoverdns.io/lease: {deployment}}}}}\nspec: {{checker: {name}, renewTime: \"{renewed}\", ttlSeconds: 3, unhealthyCount: 0}}\n"
        )
    };
    let report = |name: &str, renewed: &str| report_of("dns-writer", name, renewed);
    let ago = |secs: u64| {
        humantime::format_rfc3339_micros(std::time::SystemTime::now() - Duration::from_secs(secs))
            .to_string()
    };
    // A replica gone an hour ago left a report that sees everything healthy.
    apply(&cp, &report("ghost", &ago(3600)));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(live_checkers(&a), 1.0, "the ghost's report is not counted");
    assert!(answers_with(&a, SECONDARY));

    // Another deployment's replica (another Lease) checks other things: never counted.
    apply(&cp, &report_of("other-install", "stranger", &ago(0)));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(live_checkers(&a), 1.0, "another deployment's report is not counted");
    let labels =
        object(&cp, "checkerreport", "dns", &id("replica-a"))["metadata"]["labels"].clone();
    assert_eq!(labels["failoverdns.io/lease"], "dns-writer", "{labels}");

    // A live one counts at once (1 of 2 see it healthy, more than 18 %) ...
    apply(&cp, &report("visitor", &ago(0)));
    a.wait_until(|| live_checkers(&a) == 2.0, "the visitor counts");
    a.wait_until(|| answers_with(&a, PRIMARY), "the visitor's view counts");
    // ... until its TTL passes without a renewal.
    a.wait_for(Duration::from_secs(6), || live_checkers(&a) == 1.0, "the visitor expired");
    a.wait_until(|| answers_with(&a, SECONDARY), "its view no longer counts");
}

#[test]
fn a_replica_that_just_started_does_not_vote_before_its_probes_back_a_verdict() {
    let cp = ControlPlane::start();
    kubectl(&cp, &["create", "namespace", "dns"]);
    // Nothing listens on the PRIMARY's target; three failures (about 2 s) make it unhealthy.
    let port = free_port();
    let check = crate::cluster::hc(
        "default",
        "web",
        &format!(
            "{{type: HTTP, ipAddress: 127.0.0.1, port: {port}, requestInterval: 1s, failureThreshold: 3}}"
        ),
    );
    let pair = failover_pair(port, "1s");
    let records = &pair
        [pair.find("---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord").unwrap()..];
    apply(&cp, &(check + records));
    let a = replica(&cp, "replica-a", &[]);
    let b = replica(&cp, "replica-b", &[]);
    all_answer(&[&a, &b], SECONDARY, Duration::from_secs(15), "both fail over");
    a.wait_until(|| live_checkers(&a) == 2.0, "two checkers");

    // A rolling restart brings replica-c: until its own probes back a verdict it must not
    // count as a checker that sees the dead target healthy.
    let env =
        [("KUBECONFIG", cp.kubeconfig_path().as_os_str()), ("POD_NAME", "replica-c".as_ref())];
    let args = ["--zone", "example.test", "--lease-name", "dns-writer", "--lease-namespace", "dns"];
    let c = Binary::spawn(&args, &env);
    let watch_until = std::time::Instant::now() + Duration::from_secs(6);
    let mut saw_c = false;
    while std::time::Instant::now() < watch_until {
        assert!(answers_with(&a, SECONDARY), "replica-a failed back while replica-c was starting");
        assert!(answers_with(&b, SECONDARY), "replica-b failed back while replica-c was starting");
        saw_c |= live_checkers(&a) == 3.0;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_c, "replica-c joined meanwhile");
    c.wait_until(|| answers_with(&c, SECONDARY), "replica-c agrees");
}

#[test]
fn a_report_that_cannot_be_written_is_retried_with_backoff_not_in_a_loop() {
    let cp = ControlPlane::start();
    // The Lease's namespace does not exist: every write of the report fails.
    let env =
        [("KUBECONFIG", cp.kubeconfig_path().as_os_str()), ("POD_NAME", "replica-a".as_ref())];
    let args = ["--zone", "example.test", "--lease-namespace", "missing"];
    let a = Binary::start_with_env(&args, &env);
    let failed = || a.metric(r#"failoverdns_report_writes_total{kind="full",result="error"}"#);
    a.wait_until(
        || {
            http_get(a.admin, "/metrics")
                .1
                .contains("report_writes_total{kind=\"full\",result=\"error\"}")
        },
        "a failed write",
    );
    std::thread::sleep(Duration::from_secs(3));
    let attempts = failed();
    assert!((1.0..50.0).contains(&attempts), "{attempts} failed writes in about 3 s");
    assert!(a.logs().contains("checker report not written; retrying"), "{}", a.logs());
}
