//! Cluster mode end to end: the real binary watching a real kube-apiserver + etcd
//! (tests/support/cluster.rs), answering over real DNS. Waits are bounded polls,
//! never timing assertions.

mod support;

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use support::cluster::ControlPlane;
use support::*;

/// Long enough for a watch to come back through its backoff after an outage.
const RECONNECT: Duration = Duration::from_secs(45);

fn frec(ns: &str, name: &str, spec: &str) -> String {
    format!("---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n")
}

fn hc(ns: &str, name: &str, spec: &str) -> String {
    format!("---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n")
}

fn a_record(ns: &str, name: &str, fqdn: &str, ip: &str) -> String {
    frec(ns, name, &format!(r#"{{name: {fqdn}, type: A, ttl: 5, values: ["{ip}"]}}"#))
}

fn apply(cp: &ControlPlane, yaml: &str) {
    let out = cp.apply(yaml);
    assert!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
}

fn kubectl(cp: &ControlPlane, args: &[&str]) {
    let out = cp.kubectl(args);
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The binary in cluster mode (no --manifests) against `cp`, ready.
fn controller(cp: &ControlPlane, extra: &[&str]) -> Binary {
    let mut args = vec!["--zone", "example.test"];
    args.extend_from_slice(extra);
    Binary::start_with_env(&args, &[("KUBECONFIG", cp.kubeconfig_path().as_os_str())])
}

fn rcode(bin: &Binary, name: &str) -> ResponseCode {
    resolve(bin.dns, name, RecordType::A).metadata.response_code
}

fn readyz(bin: &Binary) -> u16 {
    try_http_get(bin.admin, "/readyz").map_or(0, |(code, _)| code)
}

#[test]
fn applies_edits_and_deletes_are_served() {
    let cp = ControlPlane::start();
    apply(&cp, &a_record("default", "web", "web.example.test", "192.0.2.1"));
    let bin = controller(&cp, &[]);
    bin.wait_until(|| bin.answers("web.example.test.", RecordType::A) == ["192.0.2.1"], "the listed record");

    // A new object.
    apply(&cp, &a_record("default", "api", "api.example.test", "192.0.2.9"));
    bin.wait_until(|| bin.answers("api.example.test.", RecordType::A) == ["192.0.2.9"], "the applied record");
    // An edit.
    apply(&cp, &a_record("default", "web", "web.example.test", "192.0.2.2"));
    bin.wait_until(|| bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"], "the edited record");
    // A delete.
    kubectl(&cp, &["delete", "frec", "api", "-n", "default"]);
    bin.wait_until(|| rcode(&bin, "api.example.test.") == ResponseCode::NXDomain, "the deleted record to go");
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.2"]);

    // A metadata-only change (a label) changes nothing that is served.
    kubectl(&cp, &["label", "frec", "web", "-n", "default", "team=edge"]);
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.2"]);

    // An object invalid against other objects is reported, not served: a second
    // Simple record set for the same name conflicts with the older one.
    apply(&cp, &a_record("default", "web-again", "web.example.test", "192.0.2.3"));
    bin.wait_until(
        || bin.status()["problems"].as_array().is_some_and(|p| p.iter().any(|p| p["object"]["name"] == "web-again")),
        "the conflict reported",
    );
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.2"], "the older object wins");
}

#[test]
fn before_the_first_listing_queries_get_servfail_and_readyz_is_503() {
    let cp = ControlPlane::start();
    apply(&cp, &a_record("default", "web", "web.example.test", "192.0.2.1"));
    cp.stop_apiserver();
    let env = [("KUBECONFIG", cp.kubeconfig_path().as_os_str())];
    let fast = Binary::spawn(&["--zone", "example.test"], &env);
    let hickory = Binary::spawn(&["--zone", "example.test", "--udp-engine", "hickory"], &env);
    for bin in [&fast, &hickory] {
        bin.wait_until(|| readyz(bin) == 503, "/readyz answering 503");
        let query = query_message("web.example.test.", RecordType::A, None);
        bin.wait_until(|| udp_raw(bin.dns, &query.to_vec().unwrap()).is_some(), "DNS up");
        assert_eq!(udp(bin.dns, &query).0.metadata.response_code, ResponseCode::ServFail, "UDP");
        assert_eq!(tcp(bin.dns, &query).metadata.response_code, ResponseCode::ServFail, "TCP");
        // Even names no object defines: nothing is known yet.
        assert_eq!(rcode(bin, "nothing.example.test."), ResponseCode::ServFail);
        let (_, body) = http_get(bin.admin, "/readyz");
        assert!(body.contains("not ready"), "{body}");
    }

    cp.start_apiserver();
    for bin in [&fast, &hickory] {
        bin.wait_for(RECONNECT, || readyz(bin) == 200, "ready once the API server is up");
        assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.1"]);
        assert_eq!(rcode(bin, "nothing.example.test."), ResponseCode::NXDomain);
        let query = query_message("web.example.test.", RecordType::A, None);
        assert_eq!(tcp(bin.dns, &query).metadata.response_code, ResponseCode::NoError, "TCP");
    }
}

#[test]
fn an_api_server_outage_keeps_answers_and_readiness() {
    let cp = ControlPlane::start();
    apply(&cp, &(a_record("default", "web", "web.example.test", "192.0.2.1") + &a_record("default", "old", "old.example.test", "192.0.2.7")));
    let bin = controller(&cp, &[]);
    bin.wait_until(|| bin.answers("web.example.test.", RecordType::A) == ["192.0.2.1"], "the listed record");

    cp.stop_apiserver();
    // Give the watches time to notice and start retrying.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.1"], "answers unchanged");
    assert_eq!(readyz(&bin), 200, "still ready");

    cp.start_apiserver();
    assert_eq!(readyz(&bin), 200);
    apply(&cp, &a_record("default", "web", "web.example.test", "192.0.2.2"));
    kubectl(&cp, &["delete", "frec", "old", "-n", "default"]);
    bin.wait_for(RECONNECT, || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"], "a change after the outage");
    bin.wait_for(RECONNECT, || rcode(&bin, "old.example.test.") == ResponseCode::NXDomain, "a delete after the outage");
    assert_eq!(readyz(&bin), 200);
}

#[test]
fn namespaces_limit_what_is_served_and_same_names_stay_separate() {
    let cp = ControlPlane::start();
    kubectl(&cp, &["create", "namespace", "team-a"]);
    kubectl(&cp, &["create", "namespace", "team-b"]);
    // The same object names in both namespaces; team-a's check passes, team-b's fails.
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let dead = free_port();
    let pair = |ns: &str, port: u16, fqdn: &str| {
        hc(ns, "check", &format!("{{type: HTTP, ipAddress: 127.0.0.1, port: {port}, resourcePath: health, requestInterval: 1s, failureThreshold: 1}}"))
            + &frec(ns, "primary", &format!(r#"{{name: {fqdn}, type: A, ttl: 5, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: check, values: ["192.0.2.1"]}}"#))
            + &frec(ns, "secondary", &format!(r#"{{name: {fqdn}, type: A, ttl: 5, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}}"#))
    };
    apply(&cp, &(pair("team-a", target.addr.port(), "a.example.test") + &pair("team-b", dead, "b.example.test")));

    let only_a = controller(&cp, &["--namespace", "team-a"]);
    only_a.wait_until(|| only_a.answers("a.example.test.", RecordType::A) == ["192.0.2.1"], "team-a's primary");
    assert_eq!(rcode(&only_a, "b.example.test."), ResponseCode::NXDomain, "team-b is not watched");

    let both = controller(&cp, &[]);
    both.wait_until(|| both.answers("a.example.test.", RecordType::A) == ["192.0.2.1"], "team-a's primary");
    both.wait_until(|| both.answers("b.example.test.", RecordType::A) == ["192.0.2.2"], "team-b's secondary");
    let checks = both.status()["healthChecks"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> =
        checks.iter().map(|c| format!("{}/{} {}", c["namespace"].as_str().unwrap(), c["name"].as_str().unwrap(), c["healthy"])).collect();
    names.sort();
    assert_eq!(names, ["team-a/check true", "team-b/check false"]);

    // The environment variable takes a comma-separated list.
    let env = [("KUBECONFIG", cp.kubeconfig_path().as_os_str()), ("FAILOVER_DNS_NAMESPACES", "team-b,team-c".as_ref())];
    let only_b = Binary::start_with_env(&["--zone", "example.test"], &env);
    only_b.wait_until(|| only_b.answers("b.example.test.", RecordType::A) == ["192.0.2.2"], "team-b's secondary");
    assert_eq!(rcode(&only_b, "a.example.test."), ResponseCode::NXDomain, "team-a is not watched");
}

#[test]
fn a_dead_primary_fails_over_to_the_secondary() {
    let cp = ControlPlane::start();
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let addr = target.addr;
    let objects = hc("default", "web", &format!("{{type: HTTP, ipAddress: 127.0.0.1, port: {}, resourcePath: health, requestInterval: 1s, failureThreshold: 2}}", addr.port()))
        + &frec("default", "www-p", r#"{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: web, values: ["192.0.2.1"]}"#)
        + &frec("default", "www-s", r#"{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}"#);
    apply(&cp, &objects);
    let bin = controller(&cp, &[]);
    let www = || bin.answers("www.example.test.", RecordType::A);
    bin.wait_until(|| www() == ["192.0.2.1"], "the PRIMARY");
    bin.wait_until(
        || bin.status()["healthChecks"][0]["probe"]["consecutiveSuccesses"].as_u64() >= Some(2),
        "passing probes",
    );

    target.stop();
    bin.wait_until(|| www() == ["192.0.2.2"], "the SECONDARY after the primary died");
    assert_eq!(bin.status()["healthChecks"][0]["healthy"], false);

    let _target = HttpTarget::start(addr);
    bin.wait_until(|| www() == ["192.0.2.1"], "the PRIMARY after it came back");

    // Failover keeps working while the API server is away.
    cp.stop_apiserver();
    drop(_target);
    bin.wait_until(|| www() == ["192.0.2.2"], "the SECONDARY during the outage");
    assert_eq!(readyz(&bin), 200);
}

#[test]
fn the_examples_answer_the_same_through_the_api_as_from_files() {
    let cp = ControlPlane::start();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    kubectl(&cp, &["apply", "-f", examples]);
    let env = [("KUBECONFIG", cp.kubeconfig_path().as_os_str())];
    let cluster = Binary::start_with_env(&["--zone", "example.internal"], &env);
    let files = Binary::start(&["--zone", "example.internal", "--manifests", examples]);
    // Answers that involve a random pick are compared as the set seen over many queries.
    let seen = |bin: &Binary, name: &str, rtype: RecordType| {
        let mut all: Vec<String> = (0..40).flat_map(|_| bin.answers(name, rtype)).collect();
        all.sort();
        all.dedup();
        all
    };
    let cases = [
        ("www.example.internal.", RecordType::A),
        ("example.internal.", RecordType::A),
        ("example.internal.", RecordType::TXT),
        ("api.example.internal.", RecordType::A),
        ("app.example.internal.", RecordType::A),
        ("app.example.internal.", RecordType::CNAME),
    ];
    for (name, rtype) in cases {
        cluster.wait_until(|| seen(&cluster, name, rtype) == seen(&files, name, rtype), &format!("{name} {rtype} alike"));
        assert!(!seen(&cluster, name, rtype).is_empty(), "{name} {rtype} answered");
    }
    for name in ["nothing.example.internal.", "www.example.internal."] {
        let rcode = |bin: &Binary| resolve(bin.dns, name, RecordType::AAAA).metadata.response_code;
        assert_eq!(rcode(&cluster), rcode(&files), "{name} AAAA");
    }
    let problems = |bin: &Binary| bin.status()["problems"].as_array().map_or(0, Vec::len);
    assert_eq!(problems(&cluster), problems(&files));
}
