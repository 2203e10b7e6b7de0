//! RBAC: the ServiceAccount may do exactly what the controller does (`kubectl auth
//! can-i`), the namespaced variant only in the watched namespaces, and it is enough
//! for a failover with no request refused. The Services, EndpointSlices, Ingresses and
//! Gateways that checks and records may point at are read (list/watch) and nothing more.

use super::*;

const SA: &str = "system:serviceaccount:failover-dns:failover-dns";

/// `kubectl auth can-i` as the ServiceAccount. `scope` is `-A` or a namespace.
fn can_i(cp: &ControlPlane, verb: &str, resource: &str, scope: &str) -> bool {
    let (resource, subresource) = match resource.split_once(" status") {
        Some((r, _)) => (r, Some("--subresource=status")),
        None => (resource, None),
    };
    let mut args = vec!["auth", "can-i", verb, resource, "--as", SA];
    if scope == "-A" {
        args.push("-A");
    } else {
        args.extend(["-n", scope]);
    }
    args.extend(subresource);
    let out = cp.kubectl(&args);
    match text(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl {args:?}: {other}\n{}", text(&out.stderr)),
    }
}

fn assert_permissions(cp: &ControlPlane, cases: &[(bool, &str, &str, &str)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(allowed, verb, resource, scope)| can_i(cp, verb, resource, scope) != *allowed)
        .map(|(allowed, verb, resource, scope)| {
            format!("{} {verb} {resource} in {scope}", if *allowed { "cannot" } else { "CAN" })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "the ServiceAccount's permissions are off:\n  {}",
        wrong.join("\n  ")
    );
}

const HC: &str = "healthchecks.failoverdns.io";
const FREC: &str = "failoverrecords.failoverdns.io";
const EVENTS: &str = "events.events.k8s.io";
const LEASE: &str = "leases.coordination.k8s.io/failover-dns";
const LEASES: &str = "leases.coordination.k8s.io";
const CREP: &str = "checkerreports.failoverdns.io";
/// A replica's own report (named after its identity, the pod's name and UID: not known
/// in advance).
const OWN_CREP: &str = "checkerreports.failoverdns.io/failover-dns-7d9f8-abcde-5f0c2a9e";

/// The CheckerReports (checker quorum) in the Lease's namespace: a replica creates,
/// patches and deletes its own and lists/watches every replica's, whatever the pod
/// names, and nothing more.
const REPORTS: &[(bool, &str, &str, &str)] = &[
    (true, "create", CREP, NS),
    (true, "patch", OWN_CREP, NS),
    (true, "patch", "checkerreports.failoverdns.io/failover-dns-6c4b2-fghij", NS),
    (true, "delete", OWN_CREP, NS),
    (true, "list", CREP, NS),
    (true, "watch", CREP, NS),
    (false, "get", CREP, NS),
    (false, "get", OWN_CREP, NS),
    (false, "update", OWN_CREP, NS),
    (false, "update", CREP, NS),
    (false, "deletecollection", CREP, NS),
    (false, "*", CREP, NS),
    (false, "patch", "checkerreports.failoverdns.io status", NS),
];

const ND: &str = "namedelegations.failoverdns.io";

/// Who may serve which names: read NameDelegations and namespaces, cluster-wide, in
/// every variant; write neither.
const DELEGATIONS: &[(bool, &str, &str, &str)] = &[
    (true, "list", ND, "-A"),
    (true, "watch", ND, "-A"),
    (true, "list", "namespaces", "-A"),
    (true, "watch", "namespaces", "-A"),
    (false, "get", ND, "-A"),
    (false, "create", ND, "-A"),
    (false, "update", ND, "-A"),
    (false, "patch", ND, "-A"),
    (false, "delete", ND, "-A"),
    (false, "get", "namespaces", "-A"),
    (false, "patch", "namespaces", "-A"),
    (false, "update", "namespaces", "-A"),
    (false, "create", "namespaces", "-A"),
];

const SERVICES: &str = "services";
const SLICES: &str = "endpointslices.discovery.k8s.io";
const INGRESSES: &str = "ingresses.networking.k8s.io";
const GATEWAYS: &str = "gateways.gateway.networking.k8s.io";
/// What checks and records may point at (serviceRef, valuesFrom): read, never written.
const TARGETS: [&str; 4] = [SERVICES, SLICES, INGRESSES, GATEWAYS];

/// The targets in `scope` (`-A` or a namespace): `allowed` says whether list and watch
/// are granted there; nothing else ever is, not even `get`, nor their status.
fn targets(allowed: bool, scope: &str) -> Vec<(bool, &'static str, &'static str, &str)> {
    let mut cases = Vec::new();
    for resource in TARGETS {
        cases.push((allowed, "list", resource, scope));
        cases.push((allowed, "watch", resource, scope));
        for verb in ["get", "create", "update", "patch", "delete", "deletecollection", "*"] {
            cases.push((false, verb, resource, scope));
        }
    }
    for status in [
        "services status",
        "ingresses.networking.k8s.io status",
        "gateways.gateway.networking.k8s.io status",
    ] {
        cases.push((false, "patch", status, scope));
        cases.push((false, "update", status, scope));
    }
    cases
}

/// What no variant of the deployment may grant.
const NEVER: &[(bool, &str, &str, &str)] = &[
    (false, "get", "secrets", NS),
    (false, "list", "secrets", "-A"),
    (false, "get", "secrets", "default"),
    (false, "create", "configmaps", NS),
    (false, "list", "configmaps", NS),
    (false, "list", "pods", NS),
    (false, "create", "pods", NS),
    (false, "list", "pods", "-A"),
    (false, "list", "nodes", "-A"),
    (false, "list", "secrets", WATCHED),
    (false, "list", "configmaps", WATCHED),
    (false, "list", "pods", WATCHED),
    // Beside the four targets: not the legacy Endpoints, nor other networking or
    // Gateway API kinds.
    (false, "list", "endpoints", "-A"),
    (false, "list", "endpoints", WATCHED),
    (false, "list", "networkpolicies.networking.k8s.io", "-A"),
    (false, "list", "ingressclasses.networking.k8s.io", "-A"),
    (false, "list", "gatewayclasses.gateway.networking.k8s.io", "-A"),
    (false, "list", "httproutes.gateway.networking.k8s.io", "-A"),
    (false, "list", "httproutes.gateway.networking.k8s.io", WATCHED),
    (false, "get", SERVICES, "default"),
    (false, "create", SERVICES, "default"),
    (false, "patch", SERVICES, "-A"),
    (false, "delete", SLICES, "default"),
    (false, "update", INGRESSES, "-A"),
    (false, "patch", "gateways.gateway.networking.k8s.io status", "-A"),
    (false, "get", HC, "default"),
    (false, "create", HC, "default"),
    (false, "update", HC, "default"),
    (false, "patch", HC, "default"),
    (false, "delete", HC, "default"),
    (false, "create", FREC, "default"),
    (false, "update", FREC, "default"),
    (false, "patch", FREC, "default"),
    (false, "delete", FREC, "default"),
    (false, "deletecollection", FREC, "default"),
    (false, "update", "healthchecks.failoverdns.io status", "default"),
    (false, "delete", EVENTS, "default"),
    (false, "create", "events", "default"),
    (false, "patch", LEASES, "default"),
    (false, "get", "leases.coordination.k8s.io/failover-dns", "default"),
    (false, "create", LEASES, "default"),
    (false, "patch", "leases.coordination.k8s.io/kube-scheduler", NS),
    (false, "update", LEASE, NS),
    (false, "delete", LEASE, NS),
    (false, "list", LEASES, NS),
    // CheckerReports nowhere but in the Lease's namespace, and not cluster-wide.
    (false, "create", CREP, "default"),
    (false, "patch", CREP, "default"),
    (false, "delete", CREP, "default"),
    (false, "list", CREP, "default"),
    (false, "watch", CREP, "default"),
    (false, "get", CREP, "default"),
    (false, "create", CREP, WATCHED),
    (false, "patch", CREP, WATCHED),
    (false, "list", CREP, WATCHED),
    (false, "create", CREP, "-A"),
    (false, "patch", CREP, "-A"),
    (false, "update", CREP, "-A"),
    (false, "delete", CREP, "-A"),
    (false, "deletecollection", CREP, "-A"),
    (false, "list", CREP, "-A"),
    (false, "watch", CREP, "-A"),
    (false, "patch", "customresourcedefinitions", "-A"),
    (false, "create", "clusterrolebindings", "-A"),
    (false, "*", "*", "-A"),
];

#[test]
fn the_service_account_may_do_exactly_what_the_controller_does() {
    let cp = ControlPlane::start();
    cp.install_gateway_api();
    assert_clean_apply(&cp, "deploy/", &["apply", "-k", &path("deploy")], None);
    assert_permissions(
        &cp,
        &[
            (true, "list", HC, "-A"),
            (true, "watch", HC, "-A"),
            (true, "list", FREC, "-A"),
            (true, "watch", FREC, "-A"),
            (true, "patch", "healthchecks.failoverdns.io status", "default"),
            (true, "patch", "failoverrecords.failoverdns.io status", "default"),
            (true, "create", EVENTS, "default"),
            (true, "patch", EVENTS, "default"),
            (true, "get", LEASE, NS),
            (true, "create", LEASES, NS),
            (true, "patch", LEASE, NS),
        ],
    );
    // Services, EndpointSlices, Ingresses and Gateways: read-only, everywhere.
    assert_permissions(&cp, &targets(true, "-A"));
    assert_permissions(&cp, &targets(true, "default"));
    assert_permissions(&cp, REPORTS);
    assert_permissions(&cp, DELEGATIONS);
    assert_permissions(&cp, NEVER);
}

#[test]
fn the_namespaced_variant_grants_only_the_watched_namespaces() {
    let cp = ControlPlane::start();
    cp.install_gateway_api();
    assert_clean_apply(&cp, "namespace apps", &["create", "namespace", WATCHED], None);
    assert_clean_apply(
        &cp,
        "deploy/namespaced/",
        &["apply", "-k", &path("deploy/namespaced")],
        None,
    );
    assert_permissions(
        &cp,
        &[
            (true, "list", HC, WATCHED),
            (true, "watch", FREC, WATCHED),
            (true, "patch", "failoverrecords.failoverdns.io status", WATCHED),
            (true, "create", EVENTS, WATCHED),
            (true, "patch", LEASE, NS),
            (false, "list", HC, "-A"),
            (false, "list", HC, "default"),
            (false, "watch", FREC, "default"),
            (false, "patch", "failoverrecords.failoverdns.io status", "default"),
            (false, "create", EVENTS, "default"),
        ],
    );
    // Services, EndpointSlices, Ingresses and Gateways: read-only, in the watched
    // namespace only.
    assert_permissions(&cp, &targets(true, WATCHED));
    assert_permissions(&cp, &targets(false, "default"));
    assert_permissions(&cp, &targets(false, NS));
    assert_permissions(&cp, &targets(false, "-A"));
    assert_permissions(&cp, REPORTS);
    assert_permissions(&cp, DELEGATIONS);
    assert_permissions(&cp, NEVER);
    // And the controller runs on it: what is in the watched namespace is served.
    failover_as_the_service_account(&cp, "namespaced", WATCHED);
}

#[test]
fn the_service_account_is_enough_for_a_failover() {
    let cp = ControlPlane::start();
    // The identity is really the ServiceAccount's: nothing is allowed before deploy/.
    let out = Command::new(tool("kubectl"))
        .arg("--kubeconfig")
        .arg(cp.service_account_kubeconfig())
        .args(["get", "hc", "-A"])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && text(&out.stderr).contains("forbidden"),
        "{}",
        text(&out.stderr)
    );
    assert_clean_apply(&cp, "deploy/", &["apply", "-k", &path("deploy")], None);
    failover_as_the_service_account(&cp, "", "default");
}

/// The controller with the deployment's settings (its ConfigMap as the environment,
/// POD_NAME / POD_UID / POD_NAMESPACE as the downward API gives them) and the
/// ServiceAccount's identity passes the cluster-mode failover scenario in `ns`, and
/// nothing it does is forbidden.
fn failover_as_the_service_account(cp: &ControlPlane, deploy_dir: &str, ns: &str) {
    let rendered = objects(&kustomize(deploy_dir));
    let config = rendered.iter().find(|o| o["kind"] == "ConfigMap").expect("the ConfigMap");
    let mut env: Vec<(String, String)> = config["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    env.push(("POD_NAME".into(), "failover-dns-7d9f8-abcde".into()));
    env.push(("POD_UID".into(), "5f0c2a9e-81d4-4b7a-9c3e-2d6f1a0b4c8e".into()));
    env.push(("POD_NAMESPACE".into(), NS.into()));
    // A short Lease, so that it is renewed (patched) while the test runs.
    env.push(("FAILOVER_DNS_LEASE_DURATION".into(), "3s".into()));
    env.push(("KUBECONFIG".into(), cp.service_account_kubeconfig().to_str().unwrap().into()));

    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let check = format!(
        "{{type: HTTP, ipAddress: 127.0.0.1, port: {}, resourcePath: health, requestInterval: 1s, failureThreshold: 2}}",
        target.addr.port()
    );
    let objects = format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: web, namespace: {ns}}}\nspec: {check}\n\
         ---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: www-p, namespace: {ns}}}\n\
         spec: {{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: web, values: [\"192.0.2.1\"]}}\n\
         ---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: www-s, namespace: {ns}}}\n\
         spec: {{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: [\"192.0.2.2\"]}}\n"
    );
    let out = cp.apply(&objects);
    assert!(out.status.success(), "kubectl apply: {}", text(&out.stderr));
    if ns != "default" {
        // Outside the watched namespaces: never served.
        let other = "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: other, namespace: default}\n\
                     spec: {name: other.example.test, type: A, ttl: 1, values: [\"192.0.2.9\"]}\n";
        assert!(cp.apply(other).status.success());
    }

    // The zone from the flag (the ConfigMap's is a placeholder); all the rest from it.
    let bin = Binary::start_with(&["--zone", "example.test"], |c| {
        c.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    });
    let www = || bin.answers("www.example.test.", RecordType::A);
    bin.wait_until(|| www() == ["192.0.2.1"], "the PRIMARY");
    bin.wait_until(
        || bin.status()["healthChecks"][0]["probe"]["consecutiveSuccesses"].as_u64() >= Some(2),
        "passing probes",
    );
    if ns != "default" {
        assert!(
            bin.answers("other.example.test.", RecordType::A).is_empty(),
            "a namespace not watched is not served"
        );
    }

    target.stop();
    bin.wait_until(|| www() == ["192.0.2.2"], "the SECONDARY after the primary died");

    // The leader writes status and Events and keeps renewing its Lease: with these
    // permissions every one of those writes gets through.
    let get = |what: &[&str]| text(&cp.kubectl(what).stdout).trim().to_string();
    until(&bin, "the HealthCheck's status to say unhealthy", || {
        get(&["get", "hc", "web", "-n", ns, "-o", "jsonpath={.status.healthy}"]) == "false"
    });
    until(&bin, "the records' status to show the SECONDARY serving", || {
        let serving =
            |name| get(&["get", "frec", name, "-n", ns, "-o", "jsonpath={.status.serving}"]);
        serving("www-p") == "false" && serving("www-s") == "true"
    });
    until(&bin, "an Unhealthy Event about the check", || {
        get(&["get", "events.events.k8s.io", "-n", ns, "-o", "jsonpath={.items[*].reason}"])
            .split_whitespace()
            .any(|r| r == "Unhealthy")
    });
    let lease = |field: &str| {
        get(&[
            "get",
            "lease",
            "failover-dns",
            "-n",
            NS,
            "-o",
            &format!("jsonpath={{.spec.{field}}}"),
        ])
    };
    // The identity: the pod's name and the start of its UID.
    assert_eq!(
        lease("holderIdentity"),
        "failover-dns-7d9f8-abcde-5f0c2a9e",
        "the pod holds the Lease"
    );
    let renewed = lease("renewTime");
    until(&bin, "the Lease renewed", || lease("renewTime") != renewed);
    let logs = bin.logs().to_lowercase();
    for denied in ["forbidden", " 403", "\"403", "unauthorized"] {
        assert!(
            !logs.contains(denied),
            "the controller was refused something ({denied}):\n{}",
            bin.logs()
        );
    }
}

/// Polls `cond` (every 300 ms, kubectl calls being slow) for up to 30 s; the
/// controller's log says why when it never holds.
fn until(bin: &Binary, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after 30 s waiting for {what}; controller log:\n{}",
            bin.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}
