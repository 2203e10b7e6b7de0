//! The deployment artifacts against the real thing: `deploy/` (kustomize), the Helm
//! chart `deploy/helm/failover-dns`, the Dockerfile, the CoreDNS snippets and the
//! README's flag table. Manifests go through a real kube-apiserver
//! (tests/support/cluster.rs) with RBAC on, and the controller binary runs as the
//! deployed ServiceAccount (a static token of that identity), so the ClusterRole is
//! proven both minimal (`kubectl auth can-i`) and sufficient (a failover scenario with
//! no 403 in the log). kubectl and helm are the cached builds of
//! `scripts/control-plane.sh build`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use hickory_proto::rr::RecordType;
use serde_json::{Value, json};
use support::cluster::{ControlPlane, tool};
use support::*;

const SA: &str = "system:serviceaccount:failover-dns:failover-dns";
const NS: &str = "failover-dns";
/// The namespace deploy/namespaced/ watches.
const WATCHED: &str = "apps";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn path(rel: &str) -> String {
    repo().join(rel).to_str().unwrap().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a tool, asserts success, returns stdout.
fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `kubectl kustomize deploy/DIR` (DIR "" for deploy/ itself).
fn kustomize(dir: &str) -> String {
    run(&tool("kubectl"), &["kustomize", &path(&format!("deploy/{dir}"))])
}

/// `helm template failover-dns deploy/helm/failover-dns --namespace failover-dns ARGS`.
fn helm_template(args: &[&str]) -> String {
    let chart = path("deploy/helm/failover-dns");
    let mut all = vec!["template", "failover-dns", &chart, "--namespace", NS];
    all.extend_from_slice(args);
    run(&tool("helm"), &all)
}

/// The objects of a YAML stream (empty documents left out).
fn objects(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Option<Value>>(yaml)
        .expect("valid YAML")
        .into_iter()
        .flatten()
        .collect()
}

fn key(o: &Value) -> (String, String, String) {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered objects"))
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
fn normalized(o: &Value) -> Value {
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
fn assert_same_objects(what: &str, kustomize: &[Value], helm: &[Value]) {
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

/// The rules the controller needs on the objects it watches.
fn watch_rules() -> Value {
    json!([
        {"apiGroups": ["failoverdns.io"], "resources": ["healthchecks", "failoverrecords"], "verbs": ["list", "watch"]},
        {"apiGroups": ["failoverdns.io"], "resources": ["healthchecks/status", "failoverrecords/status"], "verbs": ["patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ])
}

fn lease_rules() -> Value {
    json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["failover-dns"], "verbs": ["get", "patch"]},
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
    // with kustomize they are `kubectl apply -f crds/`).
    let base = objects(&kustomize(""));
    assert_eq!(base, objects(&kustomize("base")), "deploy/ is deploy/base/ as it is");
    let k: Vec<Value> = base.into_iter().filter(|o| o["kind"] != "Namespace").collect();
    let h: Vec<Value> = objects(&helm_template(&[]))
        .into_iter()
        .filter(|o| o["kind"] != "CustomResourceDefinition")
        .collect();
    assert_same_objects("default values", &k, &h);

    // What matters most, spelled out (the comparison above covers every field).
    assert_eq!(find(&k, "ClusterRole", "failover-dns")["rules"], watch_rules());
    assert_eq!(find(&k, "Role", "failover-dns-leader-election")["rules"], lease_rules());
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
    assert_eq!(env, [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")]);
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

    // Watching given namespaces: namespaced Roles, no cluster-wide grant, the same in both.
    let k: Vec<Value> = objects(&kustomize("namespaced"))
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect();
    let h: Vec<Value> =
        objects(&helm_template(&["--set", &format!("watchNamespaces={{{WATCHED}}}")]))
            .into_iter()
            .filter(|o| o["kind"] != "CustomResourceDefinition")
            .collect();
    assert_same_objects("watching one namespace", &k, &h);
    assert!(
        k.iter().all(|o| o["kind"] != "ClusterRole" && o["kind"] != "ClusterRoleBinding"),
        "no cluster-wide RBAC"
    );
    let role = find(&k, "Role", "failover-dns");
    assert_eq!(role["metadata"]["namespace"], WATCHED);
    assert_eq!(role["rules"], watch_rules());
    let config = &k.iter().find(|o| o["kind"] == "ConfigMap").unwrap()["data"];
    assert_eq!(config["FAILOVER_DNS_NAMESPACES"], WATCHED);
}

fn assert_clean_apply(cp: &ControlPlane, what: &str, args: &[&str], stdin: Option<&str>) {
    let out = cp.kubectl_with_stdin(args, stdin);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{what}: kubectl {args:?} failed:\n{stderr}");
    // PodSecurity ("restricted" on the namespace) and deprecations report as warnings.
    assert!(!stderr.contains("Warning"), "{what}: warnings from the API server:\n{stderr}");
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

/// What no variant of the deployment may grant.
const NEVER: &[(bool, &str, &str, &str)] = &[
    (false, "get", "secrets", NS),
    (false, "list", "secrets", "-A"),
    (false, "get", "secrets", "default"),
    (false, "create", "configmaps", NS),
    (false, "list", "configmaps", NS),
    (false, "list", "pods", NS),
    (false, "create", "pods", NS),
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
    (false, "patch", "customresourcedefinitions", "-A"),
    (false, "create", "clusterrolebindings", "-A"),
    (false, "*", "*", "-A"),
];

#[test]
fn the_service_account_may_do_exactly_what_the_controller_does() {
    let cp = ControlPlane::start();
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
    assert_permissions(&cp, NEVER);
}

#[test]
fn the_namespaced_variant_grants_only_the_watched_namespaces() {
    let cp = ControlPlane::start();
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
/// POD_NAME / POD_NAMESPACE as the downward API gives them) and the ServiceAccount's
/// identity passes the cluster-mode failover scenario in `ns`, and nothing it does is
/// forbidden.
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
    assert_eq!(lease("holderIdentity"), "failover-dns-7d9f8-abcde", "the pod holds the Lease");
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

/// `failover-dns serve --help`, as an unconfigured environment shows it.
fn serve_help() -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_failover-dns"));
    command.args(["serve", "--help"]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FAILOVER_DNS_") {
            command.env_remove(name);
        }
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "serve --help: {}", text(&out.stderr));
    text(&out.stdout)
}

/// flag → (environment variable, default), "" for none.
type Flags = BTreeMap<String, (String, String)>;

fn help_flags(help: &str) -> Flags {
    let mut flags = Flags::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let line = line.trim();
        if let Some(flag) = line.strip_prefix("-h, ").unwrap_or(line).strip_prefix("--") {
            let name = format!("--{}", flag.split_whitespace().next().unwrap());
            current = (name != "--help").then(|| name.clone());
            if let Some(name) = &current {
                flags.insert(name.clone(), (String::new(), String::new()));
            }
        } else if let Some(flag) = &current {
            let entry = flags.get_mut(flag).unwrap();
            if let Some(env) = line.strip_prefix("[env: ") {
                entry.0 = env.split(['=', ']']).next().unwrap().to_string();
            } else if let Some(default) = line.strip_prefix("[default: ") {
                entry.1 = default.strip_suffix(']').unwrap().to_string();
            }
        }
    }
    flags
}

/// The README's table under "### Every `serve` flag": | `--flag ARG` | `default` or – | Helm value | `ENV` |.
fn readme_flags(readme: &str) -> Flags {
    let start = readme
        .find("### Every `serve` flag")
        .expect("the README has a section \"### Every `serve` flag\"");
    let mut flags = Flags::new();
    let rows = readme[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    for row in rows.skip(2) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 4, "README flag table: 4 cells expected in {row:?}");
        let unquote =
            |c: &str| if c == "–" { String::new() } else { c.trim_matches('`').to_string() };
        let flag = cells[0].trim_matches('`').split_whitespace().next().unwrap_or("").to_string();
        assert!(flag.starts_with("--"), "README flag table: no --flag in {row:?}");
        assert!(
            !cells[2].is_empty(),
            "README flag table: {flag} has no Helm value (write \"via `extraArgs`\")"
        );
        flags.insert(flag, (unquote(cells[3]), unquote(cells[1])));
    }
    flags
}

#[test]
fn the_readme_flag_table_matches_serve_help() {
    let help = help_flags(&serve_help());
    assert!(
        help.contains_key("--zone") && help.contains_key("--log-format"),
        "parsed serve --help: {help:?}"
    );
    let readme = readme_flags(&std::fs::read_to_string(repo().join("README.md")).unwrap());
    let show = |(env, default): &(String, String)| {
        format!(
            "env `{env}`, default {}",
            if default.is_empty() { "–".to_string() } else { format!("`{default}`") }
        )
    };
    let mut problems = Vec::new();
    for (flag, expected) in &help {
        match readme.get(flag) {
            None => {
                problems.push(format!("{flag} is missing; serve --help says: {}", show(expected)))
            }
            Some(found) if found != expected => problems.push(format!(
                "{flag}: the table says {}, serve --help says {}",
                show(found),
                show(expected)
            )),
            Some(_) => {}
        }
    }
    for flag in readme.keys().filter(|f| !help.contains_key(*f)) {
        problems.push(format!("{flag} is in the table but not in serve --help"));
    }
    assert!(
        problems.is_empty(),
        "README.md, \"Every `serve` flag\" table:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_dockerfile_builds_what_the_deployment_runs() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    let from: Vec<&str> = instructions.iter().filter_map(|l| l.strip_prefix("FROM ")).collect();
    assert_eq!(from.len(), 2, "multi-stage: {from:?}");
    assert!(
        from[0].starts_with("rust:1.95-bookworm "),
        "the official Rust image builds: {}",
        from[0]
    );
    assert!(dockerfile.contains("cargo build --release --locked"), "the build is locked");
    let user = instructions.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric user (runAsNonRoot can check it)");
    assert_ne!(uid, 0);
    assert!(instructions.contains(&r#"ENTRYPOINT ["failover-dns"]"#));

    let k = objects(&kustomize(""));
    let pod = &find(&k, "Deployment", "failover-dns")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], uid, "the pod runs as the image's user");
    let exposed: BTreeSet<String> = instructions
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(str::to_string))
        .collect();
    let ports: BTreeSet<String> = pod["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!("{}/{}", p["containerPort"], p["protocol"].as_str().unwrap().to_lowercase())
        })
        .collect();
    assert_eq!(exposed, ports, "EXPOSE matches the container's ports");
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim_end_matches('/') == "target")
            && ignore.lines().any(|l| l.trim_end_matches('/') == ".git")
    );
}

/// The server block without comments or blank lines, indentation removed.
fn block(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_coredns_snippets_agree() {
    let read = |f: &str| std::fs::read_to_string(repo().join("deploy/coredns").join(f)).unwrap();
    let plain = block(&read("failover-dns.server"));
    let custom = objects(&read("coredns-custom.yaml"));
    let embedded = block(custom[0]["data"]["failover-dns.server"].as_str().unwrap());
    assert_eq!(embedded, plain, "coredns-custom.yaml carries failover-dns.server");
    let nodelocal = block(&read("nodelocaldns.server"));
    for line in
        ["success 9984 30 1", "denial 9984 5 1", "forward . FAILOVER_DNS_IP:53 {", "force_tcp"]
    {
        assert!(nodelocal.iter().any(|l| l == line), "nodelocaldns.server: {line}");
    }
    assert!(
        !plain.iter().chain(&nodelocal).any(|l| l.starts_with("serve_stale")),
        "a stale answer is the failed endpoint"
    );
    // What the README says about the caps is what the snippets set.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains("success 9984 30 1") && readme.contains("denial 9984 5 1"));
}

/// CoreDNS (the plugins deploy/coredns/ uses, built by `scripts/control-plane.sh
/// build`) running one of the shipped server blocks as it is, but for the zone
/// (example.test), the listening port, and `FAILOVER_DNS_IP:53` pointed at `upstream`.
struct CoreDns {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl CoreDns {
    fn start(snippet: &str, upstream: std::net::SocketAddr) -> CoreDns {
        let port = free_port();
        let shipped = std::fs::read_to_string(repo().join("deploy/coredns").join(snippet)).unwrap();
        let corefile = shipped
            .replace("example.internal:53", &format!("example.test:{port}"))
            .replace("FAILOVER_DNS_IP:53", &upstream.to_string())
            .replace("__PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__", "127.0.0.1")
            .replace("prometheus :9253", &format!("prometheus 127.0.0.1:{}", free_port()));
        let lines = block(&corefile);
        assert!(
            lines.iter().any(|l| l.contains(&upstream.to_string()))
                && !lines.iter().any(|l| l.contains("__PILLAR__")),
            "{snippet}: placeholders moved?\n{corefile}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Corefile"), &corefile).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(tool("coredns"))
            .args(["-conf", "Corefile"])
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let coredns = CoreDns { child, addr: format!("127.0.0.1:{port}").parse().unwrap(), dir };
        let query = query_message("www.example.test.", RecordType::A, None).to_vec().unwrap();
        coredns.wait(std::time::Duration::from_secs(20), "CoreDNS to answer", || {
            udp_raw(coredns.addr, &query).is_some()
        });
        coredns
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn answers(&self, name: &str) -> Vec<String> {
        answer_strings(&resolve(self.addr, name, RecordType::A))
    }

    /// Polls `cond` every 50 ms for up to `timeout`; CoreDNS's log says why when it fails.
    fn wait(&self, timeout: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + timeout;
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; CoreDNS log:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for CoreDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped server blocks in a real CoreDNS in front of failover-dns: answers pass
/// through, a failover shows within the record's TTL of 1 s (CoreDNS's default floor
/// would hold it 5 s), and a name created after an NXDOMAIN resolves within the 5 s
/// denial cap (failover-dns's negative TTL is 60 s). Bounds are generous; the
/// defaults they guard against are far outside them.
#[test]
fn coredns_with_the_shipped_server_blocks_follows_a_failover() {
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("records.yaml");
    let objects = format!(
        "apiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: web, namespace: default}}\n\
         spec: {{type: HTTP, ipAddress: 127.0.0.1, port: {}, resourcePath: health, requestInterval: 1s, failureThreshold: 1}}\n\
         ---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: www-p, namespace: default}}\n\
         spec: {{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: web, values: [\"192.0.2.1\"]}}\n\
         ---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: www-s, namespace: default}}\n\
         spec: {{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: [\"192.0.2.2\"]}}\n",
        target.addr.port()
    );
    std::fs::write(&manifests, &objects).unwrap();
    let bin =
        Binary::start(&["--manifests", manifests.to_str().unwrap(), "--zone", "example.test"]);
    bin.wait_until(
        || bin.answers("www.example.test.", RecordType::A) == ["192.0.2.1"],
        "the PRIMARY",
    );

    let servers = [
        CoreDns::start("failover-dns.server", bin.dns),
        CoreDns::start("nodelocaldns.server", bin.dns),
    ];
    let seconds = std::time::Duration::from_secs;
    for dns in &servers {
        dns.wait(seconds(10), "the PRIMARY through CoreDNS", || {
            dns.answers("www.example.test.") == ["192.0.2.1"]
        });
        let answer = resolve(dns.addr, "www.example.test.", RecordType::A);
        assert!(answer.answers.iter().all(|r| r.ttl <= 1), "the record's TTL passes through");
        let nx = resolve(dns.addr, "new.example.test.", RecordType::A);
        assert_eq!(nx.metadata.response_code, hickory_proto::op::ResponseCode::NXDomain);
    }

    // A failover: as soon as failover-dns answers the SECONDARY, CoreDNS follows within
    // the 1 s TTL (plus scheduling).
    target.stop();
    bin.wait_until(
        || bin.answers("www.example.test.", RecordType::A) == ["192.0.2.2"],
        "the SECONDARY",
    );
    for dns in &servers {
        dns.wait(seconds(3), "the SECONDARY through CoreDNS", || {
            dns.answers("www.example.test.") == ["192.0.2.2"]
        });
    }

    // A name that was NXDOMAIN (cached) appears within the 5 s denial cap.
    let added = "\n---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {name: new, namespace: default}\n\
                 spec: {name: new.example.test, type: A, ttl: 1, values: [\"192.0.2.7\"]}\n";
    std::fs::write(&manifests, objects + added).unwrap();
    bin.wait_until(
        || bin.answers("new.example.test.", RecordType::A) == ["192.0.2.7"],
        "the new record",
    );
    for dns in &servers {
        dns.wait(seconds(8), "the new record through CoreDNS", || {
            dns.answers("new.example.test.") == ["192.0.2.7"]
        });
    }
}
