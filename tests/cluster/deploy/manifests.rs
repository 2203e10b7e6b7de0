//! The manifests: the chart carries the CRDs of crds/, kustomize and Helm render the
//! same objects, and the API server accepts every one (helm lint clean).

use super::*;

pub(super) fn key(o: &Value) -> (String, String, String) {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

/// The rendered ConfigMap's name ends in a content hash (`failover-dns-config-<10 chars>`)
/// with kustomize; this takes it off, wherever the name appears.
fn strip_config_hash(s: &str) -> String {
    const PREFIX: &str = "failover-dns-config-";
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(PREFIX) {
        let after = &rest[i + PREFIX.len()..];
        let hash_len = after.chars().take_while(char::is_ascii_alphanumeric).count();
        out.push_str(&rest[..i]);
        out.push_str("failover-dns-config");
        rest = if hash_len == 10 && after[10..].starts_with('"') { &after[10..] } else { after };
    }
    out.push_str(rest);
    out
}

/// An object as both renderings should agree on: no Helm bookkeeping labels, no
/// checksum annotation, no ConfigMap hash suffix.
pub(super) fn normalized(o: &Value) -> Value {
    let mut o: Value = serde_json::from_str(&strip_config_hash(&o.to_string())).unwrap();
    if let Some(labels) = o.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        for helm_only in
            ["helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"]
        {
            labels.remove(helm_only);
        }
    }
    if let Some(template) = o.pointer_mut("/spec/template/metadata").and_then(Value::as_object_mut)
    {
        let annotations = template.get_mut("annotations").and_then(Value::as_object_mut);
        if let Some(a) = annotations {
            a.remove("checksum/config");
            if a.is_empty() {
                template.remove("annotations");
            }
        }
    }
    o
}

/// The same set of objects, field for field, after `normalized`: names the first
/// difference precisely.
pub(super) fn assert_same_objects(what: &str, kustomize: &[Value], helm: &[Value]) {
    let by_key = |objects: &[Value]| -> BTreeMap<_, _> {
        objects.iter().map(normalized).map(|o| (key(&o), o)).collect()
    };
    let (k, h) = (by_key(kustomize), by_key(helm));
    let (kk, hk): (BTreeSet<_>, BTreeSet<_>) = (k.keys().collect(), h.keys().collect());
    assert_eq!(
        kk, hk,
        "{what}: kustomize and Helm render different objects (kind, namespace, name)"
    );
    for (id, ko) in &k {
        let ho = &h[id];
        assert!(
            ko == ho,
            "{what}: {id:?} differs\nkustomize:\n{}\nhelm:\n{}",
            serde_json::to_string_pretty(ko).unwrap(),
            serde_json::to_string_pretty(ho).unwrap()
        );
    }
}

/// The rules the controller needs on the objects it watches, and on the Kubernetes
/// objects checks and records may point at (serviceRef, valuesFrom): read-only.
fn watch_rules() -> Value {
    json!([
        {"apiGroups": ["failoverdns.io"], "resources": ["healthchecks", "failoverrecords"], "verbs": ["list", "watch"]},
        {"apiGroups": ["failoverdns.io"], "resources": ["healthchecks/status", "failoverrecords/status"], "verbs": ["patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gateways"], "verbs": ["list", "watch"]},
    ])
}

/// Read-only, cluster-wide: who may serve which names.
fn delegation_rules() -> Value {
    json!([
        {"apiGroups": ["failoverdns.io"], "resources": ["namedelegations"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ])
}

/// The rules the controller needs in the Lease's namespace: its Lease, and the
/// CheckerReports (its own written, every replica's read).
fn lease_rules() -> Value {
    json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["failover-dns"], "verbs": ["get", "patch"]},
        {"apiGroups": ["failoverdns.io"], "resources": ["checkerreports"], "verbs": ["create", "patch", "delete", "list", "watch"]},
    ])
}

#[test]
fn the_chart_carries_the_same_crds() {
    let ours = std::fs::read_to_string(repo().join("crds/failoverdns.io.yaml")).unwrap();
    let chart =
        std::fs::read_to_string(repo().join("deploy/helm/failover-dns/files/failoverdns.io.yaml"))
            .unwrap();
    assert!(
        ours == chart,
        "deploy/helm/failover-dns/files/failoverdns.io.yaml differs from crds/failoverdns.io.yaml: \
         cp crds/failoverdns.io.yaml deploy/helm/failover-dns/files/"
    );
    // And the chart renders them (when crds.install is on, the default) unchanged but
    // for the keep annotation.
    let rendered: Vec<Value> = objects(&helm_template(&[]))
        .into_iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    let mut expected = objects(&ours);
    for crd in &mut expected {
        crd["metadata"]["annotations"] = json!({"helm.sh/resource-policy": "keep"});
    }
    assert_eq!(rendered, expected);
    let off = objects(&helm_template(&["--set", "crds.install=false"]));
    assert!(
        off.iter().all(|o| o["kind"] != "CustomResourceDefinition"),
        "crds.install=false renders no CRD"
    );
}

#[test]
fn kustomize_and_helm_render_the_same_objects() {
    // Everything kustomize renders but the Namespace (Helm's is `--create-namespace`),
    // everything Helm renders but the CRDs (checked in the_chart_carries_the_same_crds;
    // with kustomize they are `kubectl apply -f crds/`) and the `helm test` pod.
    let base = objects(&kustomize(""));
    assert_eq!(base, objects(&kustomize("base")), "deploy/ is deploy/base/ as it is");
    let k: Vec<Value> = base.into_iter().filter(|o| o["kind"] != "Namespace").collect();
    let h = helm_release_objects(&[]);
    assert_same_objects("default values", &k, &h);

    // What matters most, spelled out (the comparison above covers every field).
    assert_eq!(find(&k, "ClusterRole", "failover-dns")["rules"], watch_rules());
    assert_eq!(find(&k, "ClusterRole", "failover-dns-delegations")["rules"], delegation_rules());
    let edit = find(&k, "ClusterRole", "failover-dns-edit");
    assert_eq!(edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"], "true");
    assert_eq!(edit["rules"][0]["resources"], json!(["healthchecks", "failoverrecords"]));
    let lease_role = find(&k, "Role", "failover-dns-leader-election");
    assert_eq!(lease_role["metadata"]["namespace"], NS);
    assert_eq!(lease_role["rules"], lease_rules());
    let deployment = find(&k, "Deployment", "failover-dns");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "failover-dns");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let spread = pod["topologySpreadConstraints"].as_array().expect("topologySpreadConstraints");
    assert!(spread.iter().any(|c| c["topologyKey"] == "kubernetes.io/hostname"
        && c["whenUnsatisfiable"] == "DoNotSchedule"));
    let c = &pod["containers"][0];
    assert_eq!(c["args"], json!(["serve", "--dns-addr=0.0.0.0:5353", "--admin-addr=0.0.0.0:8080"]));
    let env: Vec<(&str, &str)> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["name"].as_str().unwrap(), e["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        env,
        [
            ("POD_NAME", "metadata.name"),
            ("POD_UID", "metadata.uid"),
            ("POD_NAMESPACE", "metadata.namespace")
        ]
    );
    assert_eq!(c["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "admin"}));
    assert_eq!(c["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "admin"}));
    assert_eq!(
        c["securityContext"],
        json!({"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
               "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    for resource in ["requests", "limits"] {
        for what in ["cpu", "memory"] {
            assert!(c["resources"][resource][what].is_string(), "resources.{resource}.{what} set");
        }
    }
    let ports: Vec<(&str, i64, &str)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_i64().unwrap(),
                p["protocol"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [("dns-udp", 5353, "UDP"), ("dns-tcp", 5353, "TCP"), ("admin", 8080, "TCP")]);
    let svc = find(&k, "Service", "failover-dns");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "dns-udp", "port": 53, "protocol": "UDP", "targetPort": "dns-udp"},
               {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns-tcp"}])
    );
    let metrics = find(&k, "Service", "failover-dns-metrics");
    assert_eq!(metrics["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(metrics["metadata"]["annotations"]["prometheus.io/scrape"], "true");
    assert_eq!(find(&k, "PodDisruptionBudget", "failover-dns")["spec"]["minAvailable"], 1);
    let config = &k.iter().find(|o| o["kind"] == "ConfigMap").unwrap()["data"];
    assert_eq!(config["FAILOVER_DNS_ZONES"], "example.internal");
    assert!(config.get("FAILOVER_DNS_REQUIRE_DELEGATION").is_none(), "off unless asked");

    // The multi-tenant values: delegation required, nothing else different.
    let values = repo().join("deploy/multi-tenant/values.yaml");
    let tenants = objects(&helm_template(&["-f", values.to_str().unwrap()]));
    let config = &tenants.iter().find(|o| o["kind"] == "ConfigMap").unwrap()["data"];
    assert_eq!(config["FAILOVER_DNS_REQUIRE_DELEGATION"], "true");
    assert_eq!(config["FAILOVER_DNS_ZONES"], "apps.example.com");

    // Watching given namespaces: namespaced Roles, no cluster-wide grant, the same in both.
    let k: Vec<Value> = objects(&kustomize("namespaced"))
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect();
    let h = helm_release_objects(&["--set", &format!("watchNamespaces={{{WATCHED}}}")]);
    assert_same_objects("watching one namespace", &k, &h);
    // Cluster-wide only what is cluster-wide by nature: reading NameDelegations and the
    // namespaces' labels, and the teams' aggregated role.
    let cluster_wide: Vec<&str> = k
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "ClusterRoleBinding")
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cluster_wide,
        ["failover-dns-delegations", "failover-dns-edit", "failover-dns-delegations"],
        "no other cluster-wide RBAC"
    );
    assert_eq!(find(&k, "ClusterRole", "failover-dns-delegations")["rules"], delegation_rules());
    let role = find(&k, "Role", "failover-dns");
    assert_eq!(role["metadata"]["namespace"], WATCHED);
    assert_eq!(role["rules"], watch_rules());
    let lease_role = find(&k, "Role", "failover-dns-leader-election");
    assert_eq!(
        lease_role["metadata"]["namespace"], NS,
        "the Lease's namespace, not the watched one"
    );
    assert_eq!(lease_role["rules"], lease_rules());
    let config = &k.iter().find(|o| o["kind"] == "ConfigMap").unwrap()["data"];
    assert_eq!(config["FAILOVER_DNS_NAMESPACES"], WATCHED);
}

#[test]
fn the_api_server_accepts_every_manifest_and_helm_lint_is_clean() {
    let cp = ControlPlane::start_bare();
    let dry = ["apply", "--dry-run=server", "-f", "-"];
    let crds = std::fs::read_to_string(repo().join("crds/failoverdns.io.yaml")).unwrap();
    assert_clean_apply(&cp, "crds/", &dry, Some(&crds));
    // Namespaced objects need their namespaces to exist, even in a dry run.
    assert_clean_apply(
        &cp,
        "the namespace",
        &["apply", "-f", &path("deploy/base/namespace.yaml")],
        None,
    );
    assert_clean_apply(&cp, "namespace apps", &["create", "namespace", WATCHED], None);
    assert_clean_apply(&cp, "deploy/", &dry, Some(&kustomize("")));
    assert_clean_apply(&cp, "deploy/namespaced/", &dry, Some(&kustomize("namespaced")));
    assert_clean_apply(&cp, "helm template", &dry, Some(&helm_template(&[])));
    let watching = format!("watchNamespaces={{{WATCHED}}}");
    assert_clean_apply(
        &cp,
        "helm template (namespaced)",
        &dry,
        Some(&helm_template(&["--set", &watching])),
    );
    let custom = helm_template(&[
        "--set",
        "zones={a.example,b.example},replicaCount=3,probeDeny={10.0.0.0/8},extraArgs={--negative-ttl=30},service.clusterIP=10.0.0.53",
        "--set",
        "statusRefresh=10m,statusQPS=5,statusBurst=10,leaseName=dns-leader,metrics.service.enabled=false,crds.install=false",
    ]);
    assert_clean_apply(&cp, "helm template (custom values)", &dry, Some(&custom));
    // A NameDelegation is checked against its kind's schema: the CRDs in place.
    cp.install_crds();
    let delegations = std::fs::read_to_string(repo().join("deploy/multi-tenant/delegations.yaml"));
    assert_clean_apply(
        &cp,
        "deploy/multi-tenant/delegations.yaml",
        &dry,
        Some(&delegations.unwrap()),
    );
    assert_clean_apply(
        &cp,
        "deploy/coredns/coredns-custom.yaml",
        &["apply", "--dry-run=server", "-f", &path("deploy/coredns/coredns-custom.yaml")],
        None,
    );

    let helm = tool("helm");
    let chart = path("deploy/helm/failover-dns");
    for values in [vec![], vec!["--set", watching.as_str()]] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend(values);
        let out = Command::new(&helm).args(&args).output().unwrap();
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "helm {args:?}:\n{stdout}{}", text(&out.stderr));
        assert!(
            !stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"),
            "helm {args:?}:\n{stdout}"
        );
        assert!(stdout.contains("1 chart(s) linted, 0 chart(s) failed"), "{stdout}");
    }
    // A chart without zones is refused with a message.
    let out = Command::new(&helm)
        .args(["template", "x", &chart, "--set", "zones=null"])
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out.stderr).contains("zones"), "{}", text(&out.stderr));
}
