//! Kubernetes objects as targets and values (spec section 7) against a real API
//! server. There is no controller-manager: the tests create the Services (their
//! cluster IPs come from the API server's allocator) and write the EndpointSlices and
//! the load balancer statuses themselves. Waits are bounded polls.

use crate::cluster::{apply, condition, controller, frec, hc, kubectl, object};
use crate::support::cluster::ControlPlane;
use hickory_proto::rr::RecordType;

const DB: &str = "db.example.test.";

fn service(name: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{ports: [{{name: pg, port: 5432}}]{extra}}}\n"
    )
}

/// An EndpointSlice of `service` with one endpoint per address, ready as given.
fn slice(name: &str, service: &str, endpoints: &[(&str, bool)]) -> String {
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|(ip, ready)| format!(r#"{{addresses: ["{ip}"], conditions: {{ready: {ready}}}}}"#))
        .collect();
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: default, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nports: [{{name: pg, port: 5432, protocol: TCP}}]\nendpoints: [{}]\n",
        endpoints.join(", ")
    )
}

fn cluster_ip(cp: &ControlPlane, name: &str) -> String {
    object(cp, "service", "default", name)["spec"]["clusterIP"].as_str().unwrap_or("").to_owned()
}

fn patch_status(cp: &ControlPlane, kind: &str, name: &str, status: &str) {
    let patch = format!(r#"{{"status": {status}}}"#);
    kubectl(
        cp,
        &[
            "patch",
            kind,
            name,
            "-n",
            "default",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ],
    );
}

#[test]
fn a_failover_pair_follows_its_services_and_their_ready_endpoints() {
    let cp = ControlPlane::start();
    apply(
        &cp,
        &(service("db-primary", "")
            + &service("db-replica", "")
            + &slice("db-primary-1", "db-primary", &[("10.1.0.1", true)])
            + &slice("db-replica-1", "db-replica", &[("10.1.0.2", true)])
            + &hc("default", "db-primary", "{type: Endpoints, serviceRef: {name: db-primary}}")
            + &frec(
                "default",
                "db-p",
                r#"{name: db.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: db-primary, valuesFrom: {service: {name: db-primary}}}"#,
            )
            + &frec(
                "default",
                "db-s",
                r#"{name: db.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, valuesFrom: {service: {name: db-replica}}}"#,
            )),
    );
    let (primary, replica) = (cluster_ip(&cp, "db-primary"), cluster_ip(&cp, "db-replica"));
    assert!(!primary.is_empty() && primary != replica, "{primary} {replica}");
    let bin = controller(&cp, &[]);
    let db = || bin.answers(DB, RecordType::A);
    bin.wait_until(|| db() == [primary.clone()], "the primary Service's cluster IP");
    let check = || object(&cp, "hc", "default", "db-primary");
    bin.wait_until(
        || check()["status"]["endpoints"] == serde_json::json!({"ready": 1, "healthy": 1}),
        "the check's endpoint counts in status",
    );

    // The endpoint turns not ready: the check fails at once, the pair fails over.
    apply(&cp, &slice("db-primary-1", "db-primary", &[("10.1.0.1", false)]));
    bin.wait_until(|| db() == [replica.clone()], "the replica once no endpoint is ready");
    bin.wait_until(
        || condition(&check(), "Healthy")["reason"] == "NoEndpoints",
        "reason NoEndpoints",
    );
    apply(&cp, &slice("db-primary-1", "db-primary", &[("10.1.0.1", true)]));
    bin.wait_until(|| db() == [primary.clone()], "the primary again");

    // The primary Service is deleted: its record has no addresses.
    kubectl(&cp, &["delete", "service", "db-primary", "-n", "default"]);
    bin.wait_until(|| db() == [replica.clone()], "the replica without the primary Service");
    let record = || object(&cp, "frec", "default", "db-p");
    bin.wait_until(
        || {
            let record = record();
            let resolved = condition(&record, "Resolved");
            resolved["status"] == "False" && resolved["reason"] == "NoAddresses"
        },
        "the primary's Resolved=False, NoAddresses",
    );
    assert_eq!(record()["status"]["healthy"], false);

    // Recreated, it has a new cluster IP, and that is what is served.
    apply(&cp, &service("db-primary", ""));
    let recreated = cluster_ip(&cp, "db-primary");
    bin.wait_until(|| db() == [recreated.clone()], "the recreated Service's cluster IP");
    bin.wait_until(
        || condition(&record(), "Resolved")["reason"] == "AddressesFound",
        "Resolved again",
    );
}

#[test]
fn load_balancers_ingresses_external_names_and_endpoints_give_values() {
    let cp = ControlPlane::start();
    let ingress = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: shop, namespace: default}\nspec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n";
    apply(
        &cp,
        &(service("web", ", type: LoadBalancer")
            + &service("ext", ", type: ExternalName, externalName: db.example.org")
            + &service("pods", ", clusterIP: None")
            + &slice(
                "pods-1",
                "pods",
                &[("10.2.0.1", true), ("10.2.0.2", false), ("10.2.0.3", true)],
            )
            + ingress
            + &frec(
                "default",
                "lb",
                r#"{name: lb.example.test, type: A, ttl: 1, valuesFrom: {service: {name: web}}}"#,
            )
            + &frec(
                "default",
                "lb-name",
                r#"{name: lb-name.example.test, type: CNAME, ttl: 1, valuesFrom: {service: {name: web}}}"#,
            )
            + &frec(
                "default",
                "ext",
                r#"{name: ext.example.test, type: CNAME, ttl: 1, valuesFrom: {service: {name: ext}}}"#,
            )
            + &frec(
                "default",
                "pods",
                r#"{name: pods.example.test, type: A, ttl: 1, routingPolicy: MultiValue, setIdentifier: pods, valuesFrom: {service: {name: pods, address: Endpoints}}}"#,
            )
            + &frec(
                "default",
                "shop",
                r#"{name: shop.example.test, type: A, ttl: 1, valuesFrom: {ingress: {name: shop}}}"#,
            )
            + &frec(
                "default",
                "w-web",
                r#"{name: w.example.test, type: A, ttl: 1, routingPolicy: Weighted, setIdentifier: web, weight: 1, valuesFrom: {service: {name: web, address: ClusterIP}, evaluateTargetHealth: true}}"#,
            )
            + &frec(
                "default",
                "w-static",
                r#"{name: w.example.test, type: A, ttl: 1, routingPolicy: Weighted, setIdentifier: static, weight: 1, values: ["192.0.2.50"]}"#,
            )),
    );
    let bin = controller(&cp, &[]);
    let answers = |name: &str, rtype| bin.answers(name, rtype);

    bin.wait_until(
        || answers("ext.example.test.", RecordType::CNAME) == ["db.example.org."],
        "the ExternalName as a CNAME",
    );
    let mut pods = answers("pods.example.test.", RecordType::A);
    pods.sort();
    assert_eq!(pods, ["10.2.0.1", "10.2.0.3"], "the ready endpoints only");
    // No load balancer address yet: no data, and the record says why.
    let lb = crate::support::resolve(bin.dns, "lb.example.test.", RecordType::A);
    assert!(lb.answers.is_empty(), "{lb:?}");
    // NODATA: the name is there, with no values to give.
    assert_eq!(lb.metadata.response_code, hickory_proto::op::ResponseCode::NoError);
    bin.wait_until(
        || condition(&object(&cp, "frec", "default", "lb"), "Resolved")["reason"] == "NoAddresses",
        "the record's Resolved=False, NoAddresses",
    );
    // evaluateTargetHealth: web has no ready endpoint, so only the static member answers.
    for _ in 0..20 {
        assert_eq!(answers("w.example.test.", RecordType::A), ["192.0.2.50"]);
    }

    patch_status(
        &cp,
        "service",
        "web",
        r#"{"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}, {"hostname": "lb.example.net"}]}}"#,
    );
    bin.wait_until(
        || answers("lb.example.test.", RecordType::A) == ["203.0.113.10"],
        "the load balancer's IP",
    );
    bin.wait_until(
        || answers("lb-name.example.test.", RecordType::CNAME) == ["lb.example.net."],
        "its hostname as a CNAME",
    );
    patch_status(
        &cp,
        "ingress",
        "shop",
        r#"{"loadBalancer": {"ingress": [{"ip": "203.0.113.20"}]}}"#,
    );
    bin.wait_until(
        || answers("shop.example.test.", RecordType::A) == ["203.0.113.20"],
        "the Ingress's address",
    );

    apply(&cp, &slice("web-1", "web", &[("10.3.0.1", true)]));
    let web_ip = cluster_ip(&cp, "web");
    bin.wait_until(
        || (0..40).any(|_| answers("w.example.test.", RecordType::A) == [web_ip.clone()]),
        "the Service member once it has a ready endpoint",
    );
    // The endpoint address list follows the slice.
    apply(&cp, &slice("pods-1", "pods", &[("10.2.0.2", true)]));
    bin.wait_until(
        || answers("pods.example.test.", RecordType::A) == ["10.2.0.2"],
        "the new ready endpoint",
    );
}

/// The Gateway API is optional: the controller starts without it, says so in its log
/// and in the record's status, and starts watching Gateways once the CRDs appear.
#[test]
fn gateways_are_read_once_their_api_is_installed() {
    let cp = ControlPlane::start();
    apply(
        &cp,
        &(frec(
            "default",
            "edge",
            r#"{name: edge.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: edge, failover: PRIMARY, valuesFrom: {gateway: {name: edge}}}"#,
        ) + &frec(
            "default",
            "standby",
            r#"{name: edge.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: standby, failover: SECONDARY, values: ["192.0.2.9"]}"#,
        ) + &frec(
            "default",
            "edge-name",
            r#"{name: edge-name.example.test, type: CNAME, ttl: 1, valuesFrom: {gateway: {name: edge}}}"#,
        )),
    );
    let bin = controller(&cp, &["--gateway-api-lookup", "1s"]);
    let answers = |name: &str, rtype| bin.answers(name, rtype);
    let edge_resolved = || condition(&object(&cp, "frec", "default", "edge"), "Resolved").clone();
    bin.wait_until(
        || answers("edge.example.test.", RecordType::A) == ["192.0.2.9"],
        "the SECONDARY while Gateways cannot be read",
    );
    bin.wait_until(
        || {
            let resolved = edge_resolved();
            resolved["reason"] == "NoAddresses"
                && resolved["message"].as_str().is_some_and(|m| m.contains("not installed"))
        },
        "the record's status saying the Gateway API is not installed",
    );
    assert!(
        bin.logs().contains("the Gateway API (gateway.networking.k8s.io/v1) is not installed"),
        "{}",
        bin.logs()
    );

    cp.install_gateway_api();
    let gateway = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: default}\nspec: {gatewayClassName: example, listeners: [{name: http, port: 80, protocol: HTTP}]}\n";
    bin.wait_for(
        std::time::Duration::from_secs(20),
        || bin.logs().contains("the Gateway API is installed: watching Gateways"),
        "the Gateway watch to start",
    );
    apply(&cp, gateway);
    // A Gateway without addresses yet: still nothing to answer with.
    bin.wait_until(
        || {
            let resolved = edge_resolved();
            resolved["reason"] == "NoAddresses"
                && !resolved["message"].as_str().unwrap_or("").contains("not installed")
        },
        "the record reading the Gateway",
    );
    assert_eq!(answers("edge.example.test.", RecordType::A), ["192.0.2.9"]);
    patch_status(
        &cp,
        "gateway",
        "edge",
        r#"{"addresses": [{"type": "IPAddress", "value": "203.0.113.30"}, {"type": "Hostname", "value": "edge.example.net"}]}"#,
    );
    bin.wait_until(
        || answers("edge.example.test.", RecordType::A) == ["203.0.113.30"],
        "the Gateway's IP address, the PRIMARY healthy",
    );
    bin.wait_until(
        || answers("edge-name.example.test.", RecordType::CNAME) == ["edge.example.net."],
        "the Gateway's hostname as a CNAME",
    );
    bin.wait_until(|| edge_resolved()["status"] == "True", "the record's Resolved=True");
    kubectl(&cp, &["delete", "gateway", "edge", "-n", "default"]);
    bin.wait_until(
        || answers("edge.example.test.", RecordType::A) == ["192.0.2.9"],
        "the SECONDARY once the Gateway is gone",
    );
}

/// The probing itself (every ready endpoint, minHealthyEndpoints) is tested against
/// real targets in tests/core/endpoint_probes.rs: the API server refuses loopback
/// endpoint addresses. Here: a serviceRef check through the real API server, whose
/// Service has no ready endpoint, then one on an address nothing answers here.
#[test]
fn a_service_ref_check_without_endpoints_fails_with_no_endpoints() {
    let cp = ControlPlane::start();
    apply(
        &cp,
        &(service("web", "")
            + &hc(
                "default",
                "web",
                "{type: TCP, serviceRef: {name: web}, requestInterval: 1s, failureThreshold: 1}",
            )
            + &frec(
                "default",
                "web-p",
                r#"{name: web.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: web, values: ["192.0.2.1"]}"#,
            )
            + &frec(
                "default",
                "web-s",
                r#"{name: web.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}"#,
            )),
    );
    let bin = controller(&cp, &[]);
    let web = || bin.answers("web.example.test.", RecordType::A);
    bin.wait_until(|| web() == ["192.0.2.2"], "the SECONDARY: no endpoint to pass");
    let check = || object(&cp, "hc", "default", "web");
    bin.wait_until(
        || check()["status"]["endpoints"] == serde_json::json!({"ready": 0, "healthy": 0}),
        "endpoint counts in status",
    );
    assert_eq!(condition(&check(), "Healthy")["reason"], "NoEndpoints");
    // A slice with two ports and a check naming none: nothing is probed, and the
    // status says which port to name.
    let two_ports = "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{name: a, port: 80}, {name: b, port: 81}]\nendpoints: [{addresses: [\"10.9.0.1\"]}]\n";
    apply(&cp, two_ports);
    bin.wait_until(
        || {
            let check = check();
            let healthy = condition(&check, "Healthy");
            healthy["reason"] == "PortNotFound"
                && healthy["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("serviceRef.port must name one"))
        },
        "the port to name, in status",
    );
}

#[test]
fn the_services_example_is_accepted_by_the_api_server() {
    let cp = ControlPlane::start();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cluster/services.yaml");
    kubectl(&cp, &["apply", "--dry-run=server", "-n", "default", "-f", example]);
}
