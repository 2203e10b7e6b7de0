//! Cluster mode end to end: the real binary watching a real kube-apiserver + etcd
//! (tests/support/cluster.rs), answering over real DNS. Waits are bounded polls,
//! never timing assertions.

use std::time::Duration;

use crate::support::cluster::ControlPlane;
use crate::support::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Long enough for a watch to come back through its backoff after an outage.
pub(crate) const RECONNECT: Duration = Duration::from_secs(45);

pub(crate) fn frec(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

pub(crate) fn hc(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

pub(crate) fn a_record(ns: &str, name: &str, fqdn: &str, ip: &str) -> String {
    frec(ns, name, &format!(r#"{{name: {fqdn}, type: A, ttl: 5, values: ["{ip}"]}}"#))
}

pub(crate) fn apply(cp: &ControlPlane, yaml: &str) {
    let out = cp.apply(yaml);
    assert!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
}

pub(crate) fn kubectl(cp: &ControlPlane, args: &[&str]) {
    let out = cp.kubectl(args);
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The binary in cluster mode (no --manifests) against `cp`, ready.
pub(crate) fn controller(cp: &ControlPlane, extra: &[&str]) -> Binary {
    let mut args = vec!["--zone", "example.test"];
    args.extend_from_slice(extra);
    Binary::start_with_env(&args, &[("KUBECONFIG", cp.kubeconfig_path().as_os_str())])
}

fn rcode(bin: &Binary, name: &str) -> ResponseCode {
    resolve(bin.dns, name, RecordType::A).metadata.response_code
}

pub(crate) fn readyz(bin: &Binary) -> u16 {
    try_http_get(bin.admin, "/readyz").map_or(0, |(code, _)| code)
}

#[test]
fn applies_edits_and_deletes_are_served() {
    let cp = ControlPlane::start();
    apply(&cp, &a_record("default", "web", "web.example.test", "192.0.2.1"));
    let bin = controller(&cp, &[]);
    bin.wait_until(
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.1"],
        "the listed record",
    );

    // A new object.
    apply(&cp, &a_record("default", "api", "api.example.test", "192.0.2.9"));
    bin.wait_until(
        || bin.answers("api.example.test.", RecordType::A) == ["192.0.2.9"],
        "the applied record",
    );
    // An edit.
    apply(&cp, &a_record("default", "web", "web.example.test", "192.0.2.2"));
    bin.wait_until(
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"],
        "the edited record",
    );
    // A delete.
    kubectl(&cp, &["delete", "frec", "api", "-n", "default"]);
    bin.wait_until(
        || rcode(&bin, "api.example.test.") == ResponseCode::NXDomain,
        "the deleted record to go",
    );
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.2"]);

    // A metadata-only change (a label) changes nothing that is served.
    kubectl(&cp, &["label", "frec", "web", "-n", "default", "team=edge"]);
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.2"]);

    // An object invalid against other objects is reported, not served: a second
    // Simple record set for the same name conflicts with the older one.
    apply(&cp, &a_record("default", "web-again", "web.example.test", "192.0.2.3"));
    bin.wait_until(
        || {
            bin.status()["problems"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["object"]["name"] == "web-again"))
        },
        "the conflict reported",
    );
    assert_eq!(
        bin.answers("web.example.test.", RecordType::A),
        ["192.0.2.2"],
        "the older object wins"
    );
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
    apply(
        &cp,
        &(a_record("default", "web", "web.example.test", "192.0.2.1")
            + &a_record("default", "old", "old.example.test", "192.0.2.7")),
    );
    let bin = controller(&cp, &[]);
    bin.wait_until(
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.1"],
        "the listed record",
    );

    cp.stop_apiserver();
    // Give the watches time to notice and start retrying.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(bin.answers("web.example.test.", RecordType::A), ["192.0.2.1"], "answers unchanged");
    assert_eq!(readyz(&bin), 200, "still ready");

    cp.start_apiserver();
    assert_eq!(readyz(&bin), 200);
    apply(&cp, &a_record("default", "web", "web.example.test", "192.0.2.2"));
    kubectl(&cp, &["delete", "frec", "old", "-n", "default"]);
    bin.wait_for(
        RECONNECT,
        || bin.answers("web.example.test.", RecordType::A) == ["192.0.2.2"],
        "a change after the outage",
    );
    bin.wait_for(
        RECONNECT,
        || rcode(&bin, "old.example.test.") == ResponseCode::NXDomain,
        "a delete after the outage",
    );
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
        hc(
            ns,
            "check",
            &format!(
                "{{type: HTTP, ipAddress: 127.0.0.1, port: {port}, resourcePath: health, requestInterval: 1s, failureThreshold: 1}}"
            ),
        ) + &frec(
            ns,
            "primary",
            &format!(
                r#"{{name: {fqdn}, type: A, ttl: 5, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: check, values: ["192.0.2.1"]}}"#
            ),
        ) + &frec(
            ns,
            "secondary",
            &format!(
                r#"{{name: {fqdn}, type: A, ttl: 5, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}}"#
            ),
        )
    };
    apply(
        &cp,
        &(pair("team-a", target.addr.port(), "a.example.test")
            + &pair("team-b", dead, "b.example.test")),
    );

    let only_a = controller(&cp, &["--namespace", "team-a"]);
    only_a.wait_until(
        || only_a.answers("a.example.test.", RecordType::A) == ["192.0.2.1"],
        "team-a's primary",
    );
    assert_eq!(rcode(&only_a, "b.example.test."), ResponseCode::NXDomain, "team-b is not watched");

    let both = controller(&cp, &[]);
    both.wait_until(
        || both.answers("a.example.test.", RecordType::A) == ["192.0.2.1"],
        "team-a's primary",
    );
    both.wait_until(
        || both.answers("b.example.test.", RecordType::A) == ["192.0.2.2"],
        "team-b's secondary",
    );
    let checks = both.status()["healthChecks"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = checks
        .iter()
        .map(|c| {
            format!(
                "{}/{} {}",
                c["namespace"].as_str().unwrap(),
                c["name"].as_str().unwrap(),
                c["healthy"]
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, ["team-a/check true", "team-b/check false"]);

    // The environment variable takes a comma-separated list.
    let env = [
        ("KUBECONFIG", cp.kubeconfig_path().as_os_str()),
        ("FAILOVER_DNS_NAMESPACES", "team-b,team-c".as_ref()),
    ];
    let only_b = Binary::start_with_env(&["--zone", "example.test"], &env);
    only_b.wait_until(
        || only_b.answers("b.example.test.", RecordType::A) == ["192.0.2.2"],
        "team-b's secondary",
    );
    assert_eq!(rcode(&only_b, "a.example.test."), ResponseCode::NXDomain, "team-a is not watched");
}

#[test]
fn a_dead_primary_fails_over_to_the_secondary() {
    let cp = ControlPlane::start();
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let addr = target.addr;
    let objects = hc(
        "default",
        "web",
        &format!(
            "{{type: HTTP, ipAddress: 127.0.0.1, port: {}, resourcePath: health, requestInterval: 1s, failureThreshold: 2}}",
            addr.port()
        ),
    ) + &frec(
        "default",
        "www-p",
        r#"{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: web, values: ["192.0.2.1"]}"#,
    ) + &frec(
        "default",
        "www-s",
        r#"{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}"#,
    );
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
        cluster.wait_until(
            || seen(&cluster, name, rtype) == seen(&files, name, rtype),
            &format!("{name} {rtype} alike"),
        );
        assert!(!seen(&cluster, name, rtype).is_empty(), "{name} {rtype} answered");
    }
    for name in ["nothing.example.internal.", "www.example.internal."] {
        let rcode = |bin: &Binary| resolve(bin.dns, name, RecordType::AAAA).metadata.response_code;
        assert_eq!(rcode(&cluster), rcode(&files), "{name} AAAA");
    }
    let problems = |bin: &Binary| bin.status()["problems"].as_array().map_or(0, Vec::len);
    assert_eq!(problems(&cluster), problems(&files));
}

// ------------------------------------------------------------ status, Events, Lease

/// One object as the API server shows it.
pub(crate) fn object(cp: &ControlPlane, kind: &str, ns: &str, name: &str) -> serde_json::Value {
    let out = cp.kubectl(&["get", kind, name, "-n", ns, "-o", "json"]);
    if !out.status.success() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// `(type, reason, message)` of the Events about one object.
fn events(cp: &ControlPlane, ns: &str, kind: &str, name: &str) -> Vec<(String, String, String)> {
    let out = cp.kubectl(&["get", "events", "-n", ns, "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .map(|e| {
            let s = |f: &str| e[f].as_str().unwrap_or("").to_string();
            (s("type"), s("reason"), s("message"))
        })
        .collect()
}

fn has_event(
    cp: &ControlPlane,
    ns: &str,
    kind: &str,
    name: &str,
    type_: &str,
    reason: &str,
    says: &str,
) -> bool {
    events(cp, ns, kind, name).iter().any(|(t, r, m)| t == type_ && r == reason && m.contains(says))
}

pub(crate) fn condition<'a>(object: &'a serde_json::Value, type_: &str) -> &'a serde_json::Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&serde_json::Value::Null)
}

pub(crate) fn failover_pair(port: u16, interval: &str) -> String {
    hc(
        "default",
        "web",
        &format!(
            "{{type: HTTP, ipAddress: 127.0.0.1, port: {port}, resourcePath: health, requestInterval: {interval}, failureThreshold: 2}}"
        ),
    ) + &frec(
        "default",
        "www-p",
        r#"{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: web, values: ["192.0.2.1"]}"#,
    ) + &frec(
        "default",
        "www-s",
        r#"{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}"#,
    )
}

#[test]
fn a_failover_shows_in_status_events_and_kubectl_get() {
    let cp = ControlPlane::start();
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let addr = target.addr;
    apply(&cp, &failover_pair(addr.port(), "500ms"));
    let bin = controller(&cp, &[]);
    let www = || bin.answers("www.example.test.", RecordType::A);
    bin.wait_until(|| www() == ["192.0.2.1"], "the PRIMARY");
    let serving = |name: &str| object(&cp, "frec", "default", name)["status"]["serving"].as_bool();
    bin.wait_until(
        || {
            let web = object(&cp, "hc", "default", "web");
            web["status"]["healthy"] == true
                && web["status"]["observedGeneration"] == 1
                && condition(&web, "Healthy")["status"] == "True"
                && serving("www-p") == Some(true)
                && serving("www-s") == Some(false)
        },
        "statuses of the healthy pair",
    );
    // The Ready condition, as GitOps tools and `kubectl wait` read it.
    let wait = |args: &[&str]| {
        let mut all = vec!["wait", "-n", "default", "--timeout", "30s"];
        all.extend_from_slice(args);
        kubectl(&cp, &all)
    };
    wait(&["--for=condition=Ready", "hc/web", "frec/www-p", "frec/www-s"]);
    apply(
        &cp,
        &frec(
            "default",
            "www-dup",
            r#"{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: d, failover: PRIMARY, values: ["192.0.2.3"]}"#,
        ),
    );
    wait(&["--for=condition=Ready=false", "frec/www-dup"]);
    assert_eq!(
        condition(&object(&cp, "frec", "default", "www-dup"), "Ready")["reason"],
        "Conflict"
    );
    kubectl(&cp, &["delete", "frec", "www-dup", "-n", "default"]);
    let p = object(&cp, "frec", "default", "www-p");
    assert_eq!(condition(&p, "Accepted")["status"], "True");
    assert_eq!(p["status"]["healthy"], true);
    assert_eq!(p["status"]["observedGeneration"], 1);

    target.stop();
    bin.wait_until(|| www() == ["192.0.2.2"], "the SECONDARY after the primary died");
    bin.wait_until(
        || {
            let web = object(&cp, "hc", "default", "web");
            web["status"]["healthy"] == false
                && condition(&web, "Healthy")["reason"] == "ConnectionRefused"
                && serving("www-p") == Some(false)
                && serving("www-s") == Some(true)
        },
        "statuses after the failover",
    );
    assert_eq!(object(&cp, "frec", "default", "www-p")["status"]["healthy"], false);
    bin.wait_until(
        || {
            has_event(
                &cp,
                "default",
                "HealthCheck",
                "web",
                "Warning",
                "Unhealthy",
                "ConnectionRefused",
            )
        },
        "an Unhealthy Event",
    );
    bin.wait_until(
        || {
            has_event(
                &cp,
                "default",
                "FailoverRecord",
                "www-p",
                "Normal",
                "NotServing",
                "health check web is unhealthy",
            )
        },
        "NotServing on the PRIMARY",
    );
    bin.wait_until(
        || has_event(&cp, "default", "FailoverRecord", "www-s", "Normal", "Serving", "SECONDARY"),
        "Serving on the SECONDARY",
    );

    // kubectl get answers "what is healthy, what is served" at a glance.
    let table = String::from_utf8(cp.kubectl(&["get", "frec", "-n", "default"]).stdout).unwrap();
    // NAME RECORD TYPE POLICY SET ACCEPTED HEALTHY SERVING AGE
    let columns = |name: &str| -> Vec<String> {
        let row =
            table.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_default();
        row.split_whitespace().skip(5).take(3).map(str::to_string).collect()
    };
    assert!(
        table.lines().next().unwrap_or_default().contains("ACCEPTED   HEALTHY   SERVING"),
        "{table}"
    );
    assert_eq!(columns("www-p"), ["True", "false", "false"], "{table}");
    assert_eq!(columns("www-s"), ["True", "true", "true"], "{table}");
    let checks = String::from_utf8(cp.kubectl(&["get", "hc", "-n", "default"]).stdout).unwrap();
    assert!(
        checks.lines().any(|l| l.starts_with("web ")
            && l.contains("false")
            && l.contains("ConnectionRefused")),
        "{checks}"
    );

    let _target = HttpTarget::start(addr);
    bin.wait_until(|| www() == ["192.0.2.1"], "the PRIMARY after it came back");
    bin.wait_until(
        || has_event(&cp, "default", "HealthCheck", "web", "Normal", "Healthy", ""),
        "a Healthy Event",
    );
    bin.wait_until(
        || {
            has_event(
                &cp,
                "default",
                "FailoverRecord",
                "www-p",
                "Normal",
                "Serving",
                "PRIMARY is healthy",
            )
        },
        "Serving on the PRIMARY",
    );
    bin.wait_until(
        || serving("www-p") == Some(true) && serving("www-s") == Some(false),
        "serving flipped back",
    );

    // An edit moves observedGeneration.
    apply(&cp, &failover_pair(addr.port(), "400ms"));
    bin.wait_until(
        || object(&cp, "hc", "default", "web")["status"]["observedGeneration"] == 2,
        "observedGeneration 2",
    );
}

#[test]
fn a_conflict_is_reported_in_status_and_resolves_when_the_older_object_goes() {
    let cp = ControlPlane::start();
    let primary = |name: &str, ip: &str| {
        frec(
            "default",
            name,
            &format!(
                r#"{{name: www.example.test, type: A, ttl: 5, routingPolicy: Failover, setIdentifier: {name}, failover: PRIMARY, values: ["{ip}"]}}"#
            ),
        )
    };
    apply(&cp, &primary("older", "192.0.2.1"));
    // Ages count in seconds: the younger one is created a second later.
    std::thread::sleep(Duration::from_millis(1100));
    apply(&cp, &primary("younger", "192.0.2.2"));
    let bin = controller(&cp, &[]);
    bin.wait_until(
        || {
            let y = object(&cp, "frec", "default", "younger");
            let accepted = condition(&y, "Accepted");
            accepted["status"] == "False"
                && accepted["reason"] == "Conflict"
                && accepted["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("default/older") && m.starts_with("spec.failover"))
                && y["status"]["serving"] == false
        },
        "the younger PRIMARY rejected, naming the older",
    );
    assert_eq!(condition(&object(&cp, "frec", "default", "older"), "Accepted")["status"], "True");
    assert_eq!(bin.answers("www.example.test.", RecordType::A), ["192.0.2.1"]);

    kubectl(&cp, &["delete", "frec", "older", "-n", "default"]);
    bin.wait_until(
        || bin.answers("www.example.test.", RecordType::A) == ["192.0.2.2"],
        "the younger one served",
    );
    bin.wait_until(
        || {
            let y = object(&cp, "frec", "default", "younger");
            condition(&y, "Accepted")["status"] == "True" && y["status"]["serving"] == true
        },
        "the younger one accepted",
    );
    bin.wait_until(
        || has_event(&cp, "default", "FailoverRecord", "younger", "Normal", "Serving", ""),
        "a Serving Event",
    );
    assert_eq!(
        object(&cp, "frec", "default", "older"),
        serde_json::Value::Null,
        "nothing recreated the deleted object"
    );
}

#[test]
fn a_steady_check_causes_no_status_writes() {
    let cp = ControlPlane::start();
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    apply(&cp, &failover_pair(target.addr.port(), "200ms"));
    let bin = controller(&cp, &[]);
    let writes = |bin: &Binary| {
        bin.metric(r#"failoverdns_status_writes_total{kind="HealthCheck",result="ok"}"#)
    };
    // Pending first, then the probes' own reason.
    bin.wait_until(
        || {
            let web = object(&cp, "hc", "default", "web");
            web["status"]["healthy"] == true
                && condition(&web, "Healthy")["reason"].as_str().is_some_and(|r| r != "Pending")
                && object(&cp, "frec", "default", "www-s")["status"]["serving"] == false
        },
        "the first statuses",
    );
    bin.wait_until(
        || bin.status()["healthChecks"][0]["probe"]["consecutiveSuccesses"].as_u64() >= Some(5),
        "passing probes",
    );
    let version = |kind: &str, name: &str| {
        object(&cp, kind, "default", name)["metadata"]["resourceVersion"].clone()
    };
    let before = [version("hc", "web"), version("frec", "www-p"), version("frec", "www-s")];
    let written = writes(&bin);
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        [version("hc", "web"), version("frec", "www-p"), version("frec", "www-s")],
        before,
        "objects rewritten while steady"
    );
    assert_eq!(writes(&bin), written);
    assert!(
        bin.status()["healthChecks"][0]["probe"]["consecutiveSuccesses"].as_u64() >= Some(40),
        "probes kept running"
    );
}

#[test]
fn two_replicas_serve_and_the_survivor_takes_the_lease() {
    let cp = ControlPlane::start();
    kubectl(&cp, &["create", "namespace", "dns"]);
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let addr = target.addr;
    apply(&cp, &failover_pair(addr.port(), "500ms"));
    let replica = |pod: &str| {
        // The dead leader's report (it saw the target healthy) must expire soon.
        crate::quorum::replica(&cp, pod, &["--report-ttl", "3s"])
    };
    let mut replicas =
        vec![("replica-a", replica("replica-a")), ("replica-b", replica("replica-b"))];
    for (_, bin) in &replicas {
        bin.wait_until(
            || bin.answers("www.example.test.", RecordType::A) == ["192.0.2.1"],
            "every replica answers",
        );
    }
    let holder = || {
        object(&cp, "lease", "dns", "dns-writer")["spec"]["holderIdentity"]
            .as_str()
            .map(str::to_string)
    };
    replicas[0].1.wait_until(|| holder().is_some(), "a Lease holder");
    let leader = holder().unwrap();
    let leads = |bin: &Binary| bin.metric("failoverdns_leader") == 1.0;
    let at = replicas
        .iter()
        .position(|(name, _)| leader.starts_with(&format!("{name}-")))
        .expect("the holder is one of the replicas");
    replicas[at].1.wait_until(|| leads(&replicas[at].1), "the holder leads");
    assert!(!leads(&replicas[1 - at].1), "only one replica leads");
    replicas[at].1.wait_until(
        || object(&cp, "hc", "default", "web")["status"]["healthy"] == true,
        "status from the leader",
    );

    // The leader dies without a word (no release): the other takes over when the Lease expires.
    let (_, mut dead) = replicas.remove(at);
    let _ = dead.child.kill();
    let (survivor_name, survivor) = &replicas[0];
    survivor.wait_for(
        Duration::from_secs(20),
        || holder().is_some_and(|h| h.starts_with(&format!("{survivor_name}-"))),
        "the survivor holds the Lease",
    );
    survivor.wait_until(|| leads(survivor), "the survivor leads");
    target.stop();
    survivor.wait_until(
        || survivor.answers("www.example.test.", RecordType::A) == ["192.0.2.2"],
        "failover on the survivor",
    );
    survivor.wait_until(
        || object(&cp, "hc", "default", "web")["status"]["healthy"] == false,
        "status written by the survivor",
    );
    assert!(
        survivor.metric(r#"failoverdns_status_writes_total{kind="HealthCheck",result="ok"}"#)
            >= 1.0
    );

    // A clean stop releases the Lease at once.
    drop(dead);
    survivor.signal(libc::SIGTERM);
    cp.eventually(Duration::from_secs(5), "the Lease released on SIGTERM", || {
        holder().is_none_or(|h| h.is_empty())
    });
}

#[test]
fn probe_times_are_refreshed_every_status_refresh() {
    let cp = ControlPlane::start();
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    apply(&cp, &failover_pair(target.addr.port(), "200ms"));
    let bin = controller(&cp, &["--status-refresh", "1s"]);
    let probed = || {
        object(&cp, "hc", "default", "web")["status"]["lastProbeTime"].as_str().map(str::to_string)
    };
    bin.wait_until(|| probed().is_some(), "a probe time in status");
    let first = probed();
    bin.wait_until(|| probed() != first, "the probe time refreshed");
    let web = object(&cp, "hc", "default", "web");
    assert_eq!(web["status"]["healthy"], true);
    assert!(web["status"]["consecutiveSuccesses"].as_u64() >= Some(2), "{web}");
}

/// A cluster watcher that dies would leave DNS answering from objects that no longer
/// update, with `/readyz` green: the supervisor takes the process down instead.
#[test]
fn a_watcher_that_panics_stops_the_process_with_status_one() {
    let cp = ControlPlane::start();
    apply(&cp, &a_record("default", "web", "web.example.test", "192.0.2.1"));
    let mut bin = controller(&cp, &["--test-panic-task", "cluster-watcher"]);
    let code = bin.exit_within(Duration::from_secs(20)).and_then(|s| s.code());
    assert_eq!(code, Some(1), "log:\n{}", bin.logs());
    assert!(bin.logs().contains("task cluster-watcher panicked"), "{}", bin.logs());
}
