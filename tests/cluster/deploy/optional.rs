//! The chart's optional objects against the real API server, with the Prometheus
//! Operator's CRDs installed from its Go module (`scripts/control-plane.sh
//! prometheus-operator-crds`): the ServiceMonitor, PodMonitor, PrometheusRule, dashboard
//! ConfigMap, NetworkPolicy and `helm test` pod are accepted (server-side, no warning),
//! so are the kustomize components, a real `helm install` creates the release, and its
//! NOTES' commands work against what it created.

use super::chart::{kustomize_with_components, shell_words};
use super::*;
use std::time::Duration;

const MONITORING_CRDS: [&str; 3] = [
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
];

/// The Prometheus Operator's CRDs, as its release ships them, Established and served.
fn install_prometheus_operator_crds(cp: &ControlPlane) -> String {
    let out = Command::new("bash")
        .arg(path("scripts/control-plane.sh"))
        .arg("prometheus-operator-crds")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "control-plane.sh prometheus-operator-crds: {}",
        text(&out.stderr)
    );
    let dir = text(&out.stdout).trim().to_string();
    assert_clean_apply(
        cp,
        "the Prometheus Operator CRDs",
        &["apply", "--server-side", "-f", &dir],
        None,
    );
    // `kubectl wait` fails at once while a new CRD has no conditions yet: retried.
    let crds: Vec<String> = MONITORING_CRDS.iter().map(|c| format!("crd/{c}")).collect();
    cp.eventually(Duration::from_secs(60), "the monitoring CRDs Established", || {
        let mut args = vec!["wait", "--for", "condition=Established", "--timeout", "10s"];
        args.extend(crds.iter().map(String::as_str));
        cp.kubectl(&args).status.success()
    });
    cp.eventually(Duration::from_secs(30), "the monitoring kinds in discovery", || {
        cp.kubectl(&["get", "servicemonitors,podmonitors,prometheusrules", "-A"]).status.success()
    });
    dir
}

/// The interval pattern of the ServiceMonitor CRD, as the chart's schema must apply it.
fn crd_duration_pattern(dir: &str) -> String {
    let crd =
        std::fs::read_to_string(Path::new(dir).join("monitoring.coreos.com_servicemonitors.yaml"))
            .unwrap();
    let crd = objects(&crd).remove(0);
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/endpoints/items/properties/interval/pattern")
        .and_then(Value::as_str)
        .expect("the ServiceMonitor CRD's endpoints[].interval pattern")
        .to_string()
}

#[test]
fn the_api_server_accepts_the_optional_objects_and_a_helm_install() {
    let cp = ControlPlane::start_bare();
    let dir = install_prometheus_operator_crds(&cp);
    // The chart's schema allows the durations the CRD does (and the empty one, for
    // "Prometheus's own"), no other.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/helm/failover-dns/values.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let crd_pattern = crd_duration_pattern(&dir);
    for monitor in ["serviceMonitor", "podMonitor"] {
        for field in ["interval", "scrapeTimeout"] {
            let ours = schema
                .pointer(&format!(
                    "/properties/metrics/properties/{monitor}/properties/{field}/pattern"
                ))
                .and_then(Value::as_str)
                .unwrap();
            let expected = crd_pattern.replacen("^(", "^(|", 1);
            assert_eq!(
                ours, expected,
                "metrics.{monitor}.{field}: the CRD's pattern is {crd_pattern}"
            );
        }
    }

    assert_clean_apply(
        &cp,
        "the namespace",
        &["apply", "-f", &path("deploy/base/namespace.yaml")],
        None,
    );
    assert_clean_apply(&cp, "namespace monitoring", &["create", "namespace", "monitoring"], None);

    // Every optional object, stored for real (server-side apply; the namespace enforces
    // the restricted Pod Security Standard on the test pod too).
    let values = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        values.path(),
        "replicaCount: 3\n\
         metrics:\n  serviceMonitor: {enabled: true, labels: {release: monitoring}, relabelings: [{action: replace, targetLabel: cluster, replacement: east}], metricRelabelings: [{action: drop, sourceLabels: [__name__], regex: go_.*}]}\n  podMonitor: {enabled: true, interval: 1m, scrapeTimeout: 20s}\n\
         prometheusRule: {enabled: true}\n\
         dashboard: {enabled: true, folder: DNS, namespace: monitoring}\n\
         networkPolicy:\n  enabled: true\n  admin: {from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}, {ipBlock: {cidr: 10.1.0.0/16, except: [10.1.2.0/24]}}]}\n  egress: {enabled: true, apiServerCIDRs: [172.18.0.2/32], probeCIDRs: [10.0.0.0/8, 2001:db8::/32], extra: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}], ports: [{port: 443, protocol: TCP}]}]}\n",
    )
    .unwrap();
    let rendered =
        helm_template(&["-f", values.path().to_str().unwrap(), "--set", "crds.install=false"]);
    let all = objects(&rendered);
    let mut wanted = String::new();
    for o in &all {
        let kind = o["kind"].as_str().unwrap();
        if ["ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy", "Pod"]
            .contains(&kind)
            || (kind == "ConfigMap" && o["metadata"]["name"] == "failover-dns-dashboard")
        {
            wanted.push_str("---\n");
            wanted.push_str(&serde_json::to_string(o).unwrap());
            wanted.push('\n');
        }
    }
    assert_clean_apply(
        &cp,
        "the chart's optional objects",
        &["apply", "--server-side", "--field-manager", "helm-test", "-f", "-"],
        Some(&wanted),
    );
    let stored = |kind: &str, ns: &str, name: &str| -> Value {
        let out = cp.kubectl(&["get", kind, "-n", ns, name, "-o", "json"]);
        assert!(out.status.success(), "get {kind} {name}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Read back as written: nothing pruned by the CRDs' schemas.
    let rules: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(
            repo().join("deploy/helm/failover-dns/files/prometheus-rules.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(stored("prometheusrules.monitoring.coreos.com", NS, "failover-dns")["spec"], rules);
    let sm = stored("servicemonitors.monitoring.coreos.com", NS, "failover-dns");
    assert_eq!(sm["spec"], find(&all, "ServiceMonitor", "failover-dns")["spec"]);
    let pm = stored("podmonitors.monitoring.coreos.com", NS, "failover-dns");
    assert_eq!(pm["spec"], find(&all, "PodMonitor", "failover-dns")["spec"]);
    let dashboard = stored("configmap", "monitoring", "failover-dns-dashboard");
    assert_eq!(
        dashboard["data"]["failover-dns.json"],
        std::fs::read_to_string(repo().join("deploy/helm/failover-dns/files/dashboard.json"))
            .unwrap()
    );
    let np = stored("networkpolicy", NS, "failover-dns");
    assert_eq!(np["spec"]["egress"], find(&all, "NetworkPolicy", "failover-dns")["spec"]["egress"]);
    let pod = stored("pod", NS, "failover-dns-test");
    assert_eq!(
        pod["spec"]["containers"][0]["args"],
        find(&all, "Pod", "failover-dns-test")["spec"]["containers"][0]["args"]
    );
    assert_clean_apply(&cp, "removing them", &["delete", "-f", "-", "--wait=false"], Some(&wanted));

    // The kustomize components over the base.
    let components = kustomize_with_components(&["monitoring", "network-policy"]);
    assert_clean_apply(
        &cp,
        "deploy/base with the monitoring and network-policy components",
        &["apply", "--server-side", "-f", "-"],
        Some(&components),
    );
    let component_rule = stored("prometheusrules.monitoring.coreos.com", NS, "failover-dns");
    assert_eq!(component_rule["spec"], rules, "the component's PrometheusRule, stored");
    assert!(
        stored("servicemonitors.monitoring.coreos.com", NS, "failover-dns")["spec"]["endpoints"][0]
            ["port"]
            == "metrics"
    );
    let np = stored("networkpolicy", NS, "failover-dns");
    assert_eq!(np["spec"]["ingress"][1]["ports"], json!([{"port": 8080, "protocol": "TCP"}]));

    // A real helm install of the chart (CRDs and all, a release name of its own, one
    // replica: no PodDisruptionBudget), then what its NOTES tell the user to run.
    let helm = tool("helm");
    let chart = path("deploy/helm/failover-dns");
    let kubeconfig = cp.kubeconfig_path().to_str().unwrap().to_string();
    let out = Command::new(&helm)
        .args([
            "install", "dns", &chart, "--namespace", "edge", "--create-namespace", "--kubeconfig", &kubeconfig,
            "--set", "zones={apps.example.com,internal.example.com},replicaCount=1,metrics.serviceMonitor.enabled=true,prometheusRule.enabled=true",
        ])
        .output()
        .unwrap();
    let said = text(&out.stdout);
    assert!(out.status.success(), "helm install:\n{said}{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("Warning"), "helm install warned:\n{}", text(&out.stderr));
    let notes = said.split("NOTES:").nth(1).expect("helm install prints NOTES");
    for line in [
        "failover-dns serves apps.example.com, internal.example.com on the Service",
        "dns-failover-dns.edge (port 53, UDP and TCP)",
        "kubectl -n edge rollout status deployment/dns-failover-dns",
        "helm test dns -n edge",
        "kubectl -n edge port-forward deployment/dns-failover-dns 5353:5353 8080:8080 &",
        "dig @127.0.0.1 -p 5353 +tcp SOA apps.example.com",
        "there is no PodDisruptionBudget",
    ] {
        assert!(notes.contains(line), "NOTES lack {line:?}:\n{notes}");
    }
    let created = cp.kubectl(&[
        "get",
        "deployment,service,servicemonitor,prometheusrule,pdb",
        "-n",
        "edge",
        "-o",
        "name",
    ]);
    let created = text(&created.stdout);
    for object in [
        "deployment.apps/dns-failover-dns",
        "service/dns-failover-dns",
        "service/dns-failover-dns-metrics",
        "servicemonitor.monitoring.coreos.com/dns-failover-dns",
        "prometheusrule.monitoring.coreos.com/dns-failover-dns",
    ] {
        assert!(created.lines().any(|l| l == object), "{object} not created:\n{created}");
    }
    assert!(!created.contains("poddisruptionbudget"), "one replica, no PDB:\n{created}");
    // The NOTES' command for the CoreDNS forward address, run as written.
    let command = notes
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("kubectl") && l.contains("jsonpath"))
        .expect("the clusterIP command");
    let words = shell_words(command);
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let out = cp.kubectl(&args);
    let ip = text(&out.stdout);
    assert!(
        out.status.success() && ip.parse::<std::net::IpAddr>().is_ok(),
        "{command}: {ip:?} {}",
        text(&out.stderr)
    );
    let svc = cp.kubectl(&[
        "get",
        "service",
        "-n",
        "edge",
        "dns-failover-dns",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(text(&svc.stdout), ip);
}
