//! The chart on its own, with the real helm (and `kubectl kustomize` for the
//! components): its values schema (every documented example passes, typos are refused
//! with the field named, by `helm template` and `helm lint` alike), docs/chart.md, the
//! metadata, the PodDisruptionBudget, the monitoring objects built from the chart's
//! files and their kustomize copies, the NetworkPolicy, and the `helm test` script run
//! against a real server. What the API server says of them is in optional.rs.

use super::manifests::assert_same_objects;
use super::*;
use std::process::Output;

const CHART: &str = "deploy/helm/failover-dns";

fn helm(args: &[&str]) -> Output {
    Command::new(tool("helm")).args(args).output().unwrap()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml_value(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).expect("valid YAML")
}

/// A values file in a temporary directory, for `-f`.
struct ValuesFile(tempfile::NamedTempFile);

impl ValuesFile {
    fn new(yaml: &str) -> ValuesFile {
        let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        std::io::Write::write_all(&mut file, yaml.as_bytes()).unwrap();
        ValuesFile(file)
    }

    fn path(&self) -> &str {
        self.0.path().to_str().unwrap()
    }
}

/// `helm template` renders with ARGS and `helm lint --strict` is clean with them.
fn assert_valid(what: &str, args: &[&str]) {
    let chart = path(CHART);
    let mut template = vec!["template", "failover-dns", chart.as_str(), "--namespace", NS];
    template.extend_from_slice(args);
    let out = helm(&template);
    assert!(out.status.success(), "{what}: helm {template:?} failed:\n{}", text(&out.stderr));
    let mut lint = vec!["lint", "--strict", chart.as_str()];
    lint.extend_from_slice(args);
    let out = helm(&lint);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"),
        "{what}: helm {lint:?}:\n{stdout}{}",
        text(&out.stderr)
    );
}

/// Both `helm template` and `helm lint` refuse ARGS, each naming every one of `named`.
fn assert_refused(what: &str, args: &[&str], named: &[&str]) {
    let chart = path(CHART);
    let mut template = vec!["template", "failover-dns", chart.as_str(), "--namespace", NS];
    template.extend_from_slice(args);
    let mut lint = vec!["lint", "--strict", chart.as_str()];
    lint.extend_from_slice(args);
    for command in [template, lint] {
        let out = helm(&command);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "{what}: helm {command:?} accepted it:\n{said}");
        for name in named {
            assert!(said.contains(name), "{what}: helm {command:?} does not name {name}:\n{said}");
        }
    }
}

/// The examples in values.yaml's comments: runs of lines `#   ...` (a hash, three
/// spaces), each a values file fragment from the top level.
fn values_yaml_examples() -> Vec<String> {
    let mut examples = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in read(&format!("{CHART}/values.yaml")).lines() {
        match line.trim_start().strip_prefix("#   ") {
            Some(rest) => current.push(rest),
            None if !current.is_empty() => examples.push(std::mem::take(&mut current).join("\n")),
            None => {}
        }
    }
    examples
}

/// Splits a shell command line into words: single and double quotes, no expansion.
pub(super) fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The `helm install|upgrade|template` commands of a Markdown file's code blocks (lines
/// continued with a backslash joined), as the values arguments they pass: `--set`,
/// `--set-string` and `-f`/`--values` (a path in the repository).
fn documented_helm_commands(markdown: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut in_code = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let line = line.trim();
        if !pending.is_empty() || line.starts_with("helm ") {
            pending.push_str(line.trim_end_matches('\\'));
            pending.push(' ');
            if line.ends_with('\\') {
                continue;
            }
            let words = shell_words(&pending);
            pending.clear();
            if !["install", "upgrade", "template"].contains(&words[1].as_str()) {
                continue;
            }
            let mut args = Vec::new();
            let mut it = words.iter();
            while let Some(w) = it.next() {
                match w.as_str() {
                    "--set" | "--set-string" => {
                        args.push(w.clone());
                        args.push(it.next().expect("a value after --set").clone());
                    }
                    "-f" | "--values" => {
                        args.push("-f".to_string());
                        args.push(path(it.next().expect("a file after -f")));
                    }
                    _ => {}
                }
            }
            commands.push(args);
        }
    }
    commands
}

#[test]
fn every_documented_values_example_passes_the_schema() {
    assert!(repo().join(CHART).join("values.schema.json").is_file());
    assert_valid("the defaults", &[]);

    let examples = values_yaml_examples();
    assert!(examples.len() >= 4, "values.yaml's examples, as found: {examples:#?}");
    for example in &examples {
        let values = yaml_value(example);
        assert!(values.is_object(), "a values.yaml example is no mapping:\n{example}");
        let file = ValuesFile::new(example);
        assert_valid(&format!("values.yaml's example\n{example}\n"), &["-f", file.path()]);
    }

    assert_valid(
        "deploy/multi-tenant/values.yaml",
        &["-f", &path("deploy/multi-tenant/values.yaml")],
    );

    let mut documents = vec![("README.md".to_string(), read("README.md"))];
    if let Ok(dir) = std::fs::read_dir(repo().join("docs")) {
        for entry in dir.flatten() {
            let name = format!("docs/{}", entry.file_name().to_string_lossy());
            if name.ends_with(".md") {
                documents.push((name.clone(), read(&name)));
            }
        }
    }
    let mut found = 0;
    for (name, markdown) in &documents {
        for args in documented_helm_commands(markdown) {
            found += 1;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_valid(&format!("the helm command in {name} with {args:?}"), &args);
        }
    }
    assert!(found >= 1, "no helm install command found in README.md or docs/");

    // Everything the chart can render, at once (a parent chart's `global` included).
    let all = everything_on();
    assert_valid("every option on", &["-f", all.path()]);
    assert_valid("a parent chart's globals", &["--set", "global.imageRegistry=example.com"]);
    // Values that are numbers as --set gives them and strings as --set-string does.
    assert_valid(
        "numbers and strings",
        &[
            "--set",
            "statusQPS=5,statusBurst=10,statusRefresh=30",
            "--set-string",
            "image.tag=1.0,podDisruptionBudget.minAvailable=50%",
        ],
    );
}

/// Every optional object on, with values in every field.
fn everything_on() -> ValuesFile {
    ValuesFile::new(
        r#"
replicaCount: 3
watchNamespaces: [apps, shop]
statusRefresh: 10m
statusQPS: 7.5
statusBurst: 20
probeDeny: [10.0.0.0/8, 192.0.2.1]
metrics:
  serviceMonitor:
    enabled: true
    interval: 1m
    scrapeTimeout: 15s
    labels: {release: monitoring}
    relabelings: [{action: replace, targetLabel: cluster, replacement: east}]
    metricRelabelings: [{action: drop, sourceLabels: [__name__], regex: "go_.*"}]
  podMonitor:
    enabled: true
    interval: ""
    scrapeTimeout: ""
    labels: {release: monitoring}
prometheusRule:
  enabled: true
  labels: {release: monitoring, role: alert-rules}
dashboard:
  enabled: true
  labelName: grafana_dashboard
  labelValue: "1"
  folder: DNS
  namespace: monitoring
  labels: {team: dns}
  annotations: {note: failover}
networkPolicy:
  enabled: true
  admin:
    from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
      podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}
    - ipBlock: {cidr: 10.1.0.0/16, except: [10.1.2.0/24]}
  egress:
    enabled: true
    apiServerCIDRs: [172.18.0.2/32]
    apiServerPorts: [6443]
    dns: true
    probeCIDRs: [10.0.0.0/8, 2001:db8::/32]
    extra: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}], ports: [{port: 443, protocol: TCP}]}]
test:
  image: {repository: registry.example/tools, tag: "2"}
"#,
    )
}

#[test]
fn typos_and_wrong_types_are_refused_with_the_field_named() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("a misspelt top-level key", &["--set", "replicaCounts=3"], &["'replicaCounts'"]),
        ("resources.limit", &["--set", "resources.limit.cpu=2"], &["/resources", "'limit'"]),
        (
            "a string for an integer",
            &["--set-string", "replicaCount=3"],
            &["/replicaCount", "want integer"],
        ),
        (
            "metrics.serviceMonitor.intervall",
            &["--set", "metrics.serviceMonitor.intervall=30s"],
            &["/metrics/serviceMonitor", "'intervall'"],
        ),
        (
            "not a Prometheus duration",
            &["--set", "metrics.podMonitor.interval=30 seconds"],
            &["/metrics/podMonitor/interval"],
        ),
        ("an enum", &["--set", "image.pullPolicy=always"], &["/image/pullPolicy", "IfNotPresent"]),
        ("logFormat", &["--set", "logFormat=yaml"], &["/logFormat", "'json'"]),
        (
            "a NetworkPolicyPeer's key",
            &["--set", "networkPolicy.admin.from[0].namespaceSelecter.x=y"],
            &["/networkPolicy/admin/from/0", "'namespaceSelecter'"],
        ),
        (
            "a port name for a port number",
            &["--set", "networkPolicy.egress.apiServerPorts={https}"],
            &["/networkPolicy/egress/apiServerPorts/0"],
        ),
        ("a zone that is no name", &["--set", "zones={bad zone}"], &["/zones/0"]),
        (
            "minAvailable",
            &["--set", "podDisruptionBudget.minAvailable=one"],
            &["/podDisruptionBudget/minAvailable"],
        ),
        ("the test image", &["--set", "test.imagee.tag=x"], &["/test", "'imagee'"]),
        ("zones missing", &["--set", "zones=null"], &["zones"]),
    ];
    for (what, args, named) in cases {
        assert_refused(what, args, named);
    }
    // What only a values file can say: a number where a string is needed (annotation
    // values, a label value), a port as a string.
    let files: &[(&str, &str, &[&str])] = &[
        (
            "an unquoted annotation number",
            "metrics: {service: {annotations: {prometheus.io/port: 8080}}}",
            &["/metrics/service/annotations/prometheus.io~1port", "want string"],
        ),
        ("a label value", "dashboard: {labelValue: 1}", &["/dashboard/labelValue", "want string"]),
        ("a quoted port", "service: {port: \"53\"}", &["/service/port", "want integer"]),
        ("a misspelt image key", "image: {repositry: x}", &["/image", "'repositry'"]),
    ];
    for (what, yaml, named) in files {
        let file = ValuesFile::new(yaml);
        assert_refused(what, &["-f", file.path()], named);
    }
    // Values that need one another.
    assert_refused(
        "a ServiceMonitor without its Service",
        &["--set", "metrics.serviceMonitor.enabled=true,metrics.service.enabled=false"],
        &["/metrics/service/enabled", "must be true"],
    );
    assert_refused(
        "egress without the API server",
        &["--set", "networkPolicy.enabled=true,networkPolicy.egress.enabled=true"],
        &["/networkPolicy/egress/apiServerCIDRs", "minItems"],
    );
    // Off, they need nothing.
    assert_valid(
        "egress on, the policy off",
        &["--set", "networkPolicy.egress.enabled=true,metrics.service.enabled=false"],
    );
    // What no schema can compare, the template refuses (helm lint only reports a
    // template's fail as information).
    let chart = path(CHART);
    let out = helm(&[
        "template",
        "x",
        &chart,
        "--set",
        "replicaCount=3,podDisruptionBudget.minAvailable=3",
    ]);
    assert!(
        !out.status.success()
            && text(&out.stderr)
                .contains("podDisruptionBudget.minAvailable (3) must be below replicaCount (3)"),
        "{}",
        text(&out.stderr)
    );
}

/// The schema node of `key` under `node`, or None where the schema has no such key.
fn schema_child<'a>(node: &'a Value, key: &str) -> Option<&'a Value> {
    node["properties"].get(key)
}

fn schema_type(node: &Value) -> String {
    match (&node["type"], node["anyOf"].as_array()) {
        (Value::String(t), _) => t.clone(),
        (Value::Array(ts), _) => {
            ts.iter().map(|t| t.as_str().unwrap()).collect::<Vec<_>>().join(" or ")
        }
        (_, Some(any)) => any.iter().map(schema_type).collect::<Vec<_>>().join(" or "),
        _ => "any".to_string(),
    }
}

/// Every value of values.yaml, as docs/chart.md lists them: (path, its schema node,
/// its default). A mapping the schema describes key by key is entered; one it leaves
/// open (annotations, resources.requests, securityContext) is a value of its own.
fn documented_values(schema: &Value, values: &Value) -> Vec<(String, Value, Value)> {
    fn walk(
        node: &Value,
        value: &Value,
        path: &str,
        out: &mut Vec<(String, Value, Value)>,
        missing: &mut Vec<String>,
    ) {
        match value.as_object() {
            Some(map) if node.get("properties").is_some() => {
                for (key, sub) in map {
                    let sub_path =
                        if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    match schema_child(node, key) {
                        Some(child) => walk(child, sub, &sub_path, out, missing),
                        None => missing.push(sub_path),
                    }
                }
            }
            _ => out.push((path.to_string(), node.clone(), value.clone())),
        }
    }
    let (mut out, mut missing) = (Vec::new(), Vec::new());
    walk(schema, values, "", &mut out, &mut missing);
    assert!(missing.is_empty(), "values.yaml keys the schema does not know: {missing:?}");
    out
}

#[test]
fn docs_chart_md_lists_every_value_as_values_yaml_and_the_schema_say() {
    let schema: Value =
        serde_json::from_str(&read(&format!("{CHART}/values.schema.json"))).unwrap();
    let values = yaml_value(&read(&format!("{CHART}/values.yaml")));
    // The schema refuses what it does not list, at every level it describes.
    fn closed(node: &Value, at: &str) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            assert_eq!(node["additionalProperties"], false, "schema: {at} takes any key");
            for (k, v) in props {
                closed(v, &format!("{at}.{k}"));
            }
        }
    }
    closed(&schema, "(top)");
    let expected = documented_values(&schema, &values);
    assert!(expected.len() > 60, "{} values", expected.len());

    let doc = read("docs/chart.md");
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<String> =
            row.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect();
        assert_eq!(cells.len(), 4, "docs/chart.md: 4 cells expected in {row:?}");
        let key = cells[0].trim_matches('`').to_string();
        assert!(rows.insert(key.clone(), cells).is_none(), "docs/chart.md lists {key} twice");
    }
    let mut problems = Vec::new();
    for (key, node, default) in &expected {
        let description = node["description"].as_str().unwrap_or("");
        if description.is_empty() {
            problems.push(format!("{key}: no description in values.schema.json"));
        }
        let row = format!(
            "| `{key}` | {} | `{}` | {description} |",
            schema_type(node),
            serde_json::to_string(default).unwrap().replace(',', ", ").replace(':', ": ")
        );
        match rows.remove(key) {
            None => problems.push(format!("{key} is missing; expected row:\n    {row}")),
            Some(cells) => {
                let documented: Result<Value, _> = serde_json::from_str(cells[2].trim_matches('`'));
                if cells[1] != schema_type(node)
                    || documented.as_ref().ok() != Some(default)
                    || cells[3] != description
                {
                    problems.push(format!("{key} differs; expected row:\n    {row}"));
                }
            }
        }
    }
    for key in rows.keys() {
        problems.push(format!("{key} is in docs/chart.md but not in values.yaml"));
    }
    assert!(problems.is_empty(), "docs/chart.md:\n  {}", problems.join("\n  "));
}

#[test]
fn chart_yaml_metadata_matches_the_crate_and_the_crds() {
    let chart = yaml_value(&read(&format!("{CHART}/Chart.yaml")));
    let cargo = read("Cargo.toml");
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("Cargo.toml's version")
        .trim_matches('"');
    assert_eq!(chart["appVersion"], version, "Chart.yaml appVersion is Cargo.toml's version");
    assert_eq!(chart["annotations"]["artifacthub.io/license"], "Apache-2.0");
    assert!(cargo.contains("license = \"Apache-2.0\""));
    assert!(chart["maintainers"].as_array().is_some_and(|m| !m.is_empty()));
    assert!(chart["keywords"].as_array().is_some_and(|k| k.contains(&json!("dns"))));
    // Every CRD the chart installs is listed for Artifact Hub, and nothing else.
    let listed: BTreeSet<String> = serde_saphyr::from_str::<Vec<Value>>(
        chart["annotations"]["artifacthub.io/crds"].as_str().unwrap(),
    )
    .unwrap()
    .iter()
    .map(|c| format!("{}/{}", c["name"].as_str().unwrap(), c["version"].as_str().unwrap()))
    .collect();
    let crds: BTreeSet<String> = objects(&read(&format!("{CHART}/files/failoverdns.io.yaml")))
        .iter()
        .flat_map(|c| {
            let name = c["metadata"]["name"].as_str().unwrap().to_string();
            c["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |v| format!("{name}/{}", v["name"].as_str().unwrap()))
        })
        .collect();
    assert_eq!(listed, crds, "Chart.yaml's artifacthub.io/crds against the CRDs");
    // kubeVersion: the CRDs' x-kubernetes-validations fieldPath and reason came in 1.28.
    let chart_dir = path(CHART);
    let old = helm(&["template", "x", &chart_dir, "--kube-version", "1.27.9"]);
    assert!(
        !old.status.success() && text(&old.stderr).contains("kubeVersion"),
        "Kubernetes 1.27 is refused: {}",
        text(&old.stderr)
    );
    let crd_text = read(&format!("{CHART}/files/failoverdns.io.yaml"));
    assert!(crd_text.contains("fieldPath:") && crd_text.contains("reason:"));
    for ok in ["1.28.0", "1.34.2"] {
        let out = helm(&["template", "x", &chart_dir, "--kube-version", ok]);
        assert!(out.status.success(), "Kubernetes {ok}: {}", text(&out.stderr));
    }
}

#[test]
fn the_pod_disruption_budget_needs_two_replicas() {
    let pdbs = |args: &[&str]| -> Vec<Value> {
        objects(&helm_template(args))
            .into_iter()
            .filter(|o| o["kind"] == "PodDisruptionBudget")
            .collect()
    };
    assert!(pdbs(&["--set", "replicaCount=1"]).is_empty(), "1 replica: no PDB to block drains");
    assert!(pdbs(&["--set", "replicaCount=0"]).is_empty());
    let two = pdbs(&[]);
    assert_eq!(two.len(), 1);
    assert_eq!(two[0]["spec"]["minAvailable"], 1);
    assert_eq!(
        pdbs(&["--set", "replicaCount=5,podDisruptionBudget.minAvailable=3"])[0]["spec"]["minAvailable"],
        3
    );
    assert_eq!(
        pdbs(&["--set", "replicaCount=2,podDisruptionBudget.minAvailable=50%"])[0]["spec"]["minAvailable"],
        "50%"
    );
    assert!(pdbs(&["--set", "podDisruptionBudget.enabled=false"]).is_empty());
    // The kustomize base: its PDB leaves a replica to evict.
    let base = objects(&kustomize("base"));
    let replicas = find(&base, "Deployment", "failover-dns")["spec"]["replicas"].as_i64().unwrap();
    let min = find(&base, "PodDisruptionBudget", "failover-dns")["spec"]["minAvailable"]
        .as_i64()
        .unwrap();
    assert!(
        replicas >= 2 && min < replicas,
        "deploy/base: {replicas} replicas, minAvailable {min}"
    );
}

fn chart_file(name: &str) -> String {
    read(&format!("{CHART}/files/{name}"))
}

/// What deploy/components/monitoring/sync.sh writes from the chart's rules file.
fn expected_component_rule() -> String {
    let rules = chart_file("prometheus-rules.yaml");
    let mut out = String::from(
        "# Generated by sync.sh from the chart's files/prometheus-rules.yaml (the alerts,\n\
         # docs/alerts.md); edit that file and run sync.sh.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: failover-dns\n  namespace: failover-dns\n  labels:\n    \
         app.kubernetes.io/name: failover-dns\n    app.kubernetes.io/instance: failover-dns\n\
         spec:\n",
    );
    for line in rules.lines() {
        if !line.trim().is_empty() {
            out.push_str("  ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn monitoring_objects_come_from_the_chart_files_and_the_component_has_the_same() {
    let rules_file = chart_file("prometheus-rules.yaml");
    let rules = yaml_value(&rules_file);
    assert!(
        rules["groups"].as_array().is_some_and(|g| !g.is_empty()),
        "files/prometheus-rules.yaml: groups at the top"
    );
    let dashboard_file = chart_file("dashboard.json");
    let dashboard: Value = serde_json::from_str(&dashboard_file).expect("dashboard.json is JSON");
    assert!(dashboard["title"].is_string());

    // Nothing of it by default.
    let defaults = objects(&helm_template(&[]));
    for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy"] {
        assert!(defaults.iter().all(|o| o["kind"] != kind), "{kind} rendered by default");
    }
    assert!(
        defaults
            .iter()
            .all(|o| o["kind"] != "ConfigMap" || o["metadata"]["name"] == "failover-dns-config")
    );

    let all = everything_on();
    let on = objects(&helm_template(&["-f", all.path()]));
    let rule = find(&on, "PrometheusRule", "failover-dns");
    assert_eq!(rule["spec"], rules, "the PrometheusRule's spec is files/prometheus-rules.yaml");
    assert_eq!(rule["metadata"]["labels"]["release"], "monitoring");
    assert_eq!(rule["metadata"]["labels"]["role"], "alert-rules");
    let cm = find(&on, "ConfigMap", "failover-dns-dashboard");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["labels"]["team"], "dns");
    assert_eq!(cm["metadata"]["annotations"], json!({"grafana_folder": "DNS", "note": "failover"}));
    assert_eq!(cm["data"]["failover-dns.json"], dashboard_file, "the dashboard, byte for byte");
    let sm = find(&on, "ServiceMonitor", "failover-dns");
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["interval"], "1m");
    assert_eq!(endpoint["scrapeTimeout"], "15s");
    assert_eq!(endpoint["relabelings"][0]["targetLabel"], "cluster");
    assert_eq!(endpoint["metricRelabelings"][0]["regex"], "go_.*");
    assert_eq!(sm["metadata"]["labels"]["release"], "monitoring");
    // It selects the metrics Service, whose port it names.
    let metrics_svc = find(&on, "Service", "failover-dns-metrics");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &metrics_svc["metadata"]["labels"][k], v,
            "the ServiceMonitor selects label {k}"
        );
    }
    assert_eq!(metrics_svc["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"], json!([NS]));
    let pm = find(&on, "PodMonitor", "failover-dns");
    let endpoint = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "admin");
    assert!(endpoint.get("interval").is_none(), "an empty interval: Prometheus's own");
    let pod = &find(&on, "Deployment", "failover-dns")["spec"]["template"];
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][k], v, "the PodMonitor selects pod label {k}");
    }
    assert!(
        pod["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "admin")
    );
    // The label and folder annotation Grafana's sidecar is set up with.
    let custom = objects(&helm_template(&[
        "--set",
        "dashboard.enabled=true,dashboard.labelName=grafana-dashboards,dashboard.labelValue=dns,dashboard.folderAnnotation=k8s-sidecar-target-directory,dashboard.folder=/tmp/dashboards/dns",
    ]));
    let cm = find(&custom, "ConfigMap", "failover-dns-dashboard");
    assert_eq!(cm["metadata"]["labels"]["grafana-dashboards"], "dns");
    assert!(cm["metadata"]["labels"].get("grafana_dashboard").is_none());
    assert_eq!(cm["metadata"]["namespace"], NS);
    assert_eq!(
        cm["metadata"]["annotations"],
        json!({"k8s-sidecar-target-directory": "/tmp/dashboards/dns"})
    );

    // The kustomize component's copies.
    let component = "deploy/components/monitoring";
    assert!(
        read(&format!("{component}/dashboard.json")) == dashboard_file
            && read(&format!("{component}/prometheusrule.yaml")) == expected_component_rule(),
        "{component}: its copies of the chart's files/dashboard.json and \
         files/prometheus-rules.yaml are out of date: run {component}/sync.sh"
    );
}

/// `kubectl kustomize` of a temporary overlay: deploy/base with the given components.
pub(super) fn kustomize_with_components(components: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    // kustomize takes relative paths only: up to the root, then down.
    let up = "../".repeat(dir.path().components().count() - 1);
    let rel = |p: &str| format!("{up}{}", path(p).trim_start_matches('/'));
    let list: Vec<String> = components
        .iter()
        .map(|c| format!("- {}", rel(&format!("deploy/components/{c}"))))
        .collect();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!("resources:\n- {}\ncomponents:\n{}\n", rel("deploy/base"), list.join("\n")),
    )
    .unwrap();
    run(&tool("kubectl"), &["kustomize", dir.path().to_str().unwrap()])
}

#[test]
fn the_kustomize_components_render_what_the_chart_renders() {
    let k: Vec<Value> = objects(&kustomize_with_components(&["monitoring", "network-policy"]))
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect();
    // The chart with the same options: the ServiceMonitor, PrometheusRule, dashboard and
    // NetworkPolicy (admin port from the namespace monitoring; no helm test pod, which
    // kustomize has not).
    let values = ValuesFile::new(
        "metrics: {serviceMonitor: {enabled: true}}\n\
         prometheusRule: {enabled: true}\n\
         dashboard: {enabled: true}\n\
         test: {enabled: false}\n\
         networkPolicy:\n  enabled: true\n  admin:\n    from:\n    - namespaceSelector: \
         {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n",
    );
    let h = helm_release_objects(&["-f", values.path()]);
    assert_same_objects("the monitoring and network-policy components", &k, &h);
    for kind in ["ServiceMonitor", "PrometheusRule", "NetworkPolicy"] {
        assert!(k.iter().any(|o| o["kind"] == kind), "the components render a {kind}");
    }
}

#[test]
fn the_network_policy_opens_dns_and_keeps_the_admin_port_to_its_peers() {
    let all = everything_on();
    let on = objects(&helm_template(&["-f", all.path()]));
    let np = find(&on, "NetworkPolicy", "failover-dns");
    let pod = &find(&on, "Deployment", "failover-dns")["spec"]["template"];
    for (k, v) in np["spec"]["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][k], v, "the policy selects the pods ({k})");
    }
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 2);
    assert_eq!(
        ingress[0],
        json!({"ports": [{"port": 5353, "protocol": "UDP"}, {"port": 5353, "protocol": "TCP"}]}),
        "DNS from anywhere: no from"
    );
    assert_eq!(ingress[1]["ports"], json!([{"port": 8080, "protocol": "TCP"}]));
    let from = ingress[1]["from"].as_array().unwrap();
    assert_eq!(
        from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(from[1]["ipBlock"], json!({"cidr": "10.1.0.0/16", "except": ["10.1.2.0/24"]}));
    // The helm test pod may reach /readyz: the policy's peer selects its labels.
    let test_pod = objects(&helm_template(&["-f", all.path()]))
        .into_iter()
        .find(|o| o["kind"] == "Pod")
        .expect("the helm test pod");
    assert_eq!(from.len(), 3);
    for (k, v) in from[2]["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&test_pod["metadata"]["labels"][k], v, "the peer selects the test pod ({k})");
    }
    let egress = np["spec"]["egress"].as_array().unwrap();
    assert_eq!(
        egress[0],
        json!({"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}], "ports": [{"port": 6443, "protocol": "TCP"}]})
    );
    assert_eq!(
        egress[1],
        json!({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]})
    );
    assert_eq!(
        egress[2],
        json!({"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"ipBlock": {"cidr": "2001:db8::/32"}}]})
    );
    assert_eq!(egress[3]["to"][0]["ipBlock"]["cidr"], "192.0.2.0/24");
    assert_eq!(egress.len(), 4);

    // Other ports follow containerPorts; no peers and no test pod: the admin port closed.
    let closed = objects(&helm_template(&[
        "--set",
        "networkPolicy.enabled=true,test.enabled=false,containerPorts.dns=1053,containerPorts.admin=9090",
    ]));
    let np = find(&closed, "NetworkPolicy", "failover-dns");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        np["spec"]["ingress"],
        json!([{"ports": [{"port": 1053, "protocol": "UDP"}, {"port": 1053, "protocol": "TCP"}]}])
    );
}

/// The helm test pod of `helm template ARGS`.
fn test_pod(args: &[&str]) -> Value {
    objects(&helm_template(args))
        .into_iter()
        .find(|o| o["metadata"]["annotations"]["helm.sh/hook"] == "test")
        .expect("a helm test hook")
}

/// Runs the test pod's command here, with its environment but the servers' addresses
/// replaced: (exit success, output).
fn run_test_pod(
    pod: &Value,
    dns: std::net::SocketAddr,
    admin: Option<std::net::SocketAddr>,
) -> (bool, String) {
    let c = &pod["spec"]["containers"][0];
    let argv: Vec<&str> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c["args"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    let mut command = Command::new(argv[0]);
    command.args(&argv[1..]).env_clear().env("PATH", std::env::var("PATH").unwrap());
    for e in c["env"].as_array().unwrap() {
        command.env(e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
    }
    command.env("DNS_SERVER", dns.ip().to_string()).env("DNS_PORT", dns.port().to_string());
    if let Some(admin) = admin {
        command
            .env("ADMIN_SERVER", admin.ip().to_string())
            .env("ADMIN_PORT", admin.port().to_string());
    }
    let out = command.output().unwrap();
    (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn the_helm_test_pod_resolves_through_the_service_and_checks_readyz() {
    let pod = test_pod(&["--set", "zones={example.internal,other.example}"]);
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    let c = &pod["spec"]["containers"][0];
    let deployment = objects(&helm_template(&[]));
    let image = &find(&deployment, "Deployment", "failover-dns")["spec"]["template"]["spec"]["containers"]
        [0]["image"];
    assert_eq!(&c["image"], image, "the chart's own image by default");
    let env: BTreeMap<&str, &str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert_eq!(env["DNS_SERVER"], "failover-dns.failover-dns.svc", "the DNS Service");
    assert_eq!(env["DNS_PORT"], "53");
    assert_eq!(env["ZONES"], "example.internal other.example");
    assert_eq!(env["ADMIN_SERVER"], "failover-dns-metrics.failover-dns.svc", "the metrics Service");
    assert_eq!(env["ADMIN_PORT"], "8080");
    // Not one of the pods the Services send traffic to.
    let svc = find(&deployment, "Service", "failover-dns");
    let selected = svc["spec"]["selector"]
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| &pod["metadata"]["labels"][k] == v);
    assert!(!selected, "the Service must not select the test pod");
    let custom = test_pod(&[
        "--set",
        "test.image.repository=registry.example/tools,test.image.tag=7,image.tag=9",
    ]);
    assert_eq!(custom["spec"]["containers"][0]["image"], "registry.example/tools:7");
    let no_metrics = test_pod(&["--set", "metrics.service.enabled=false"]);
    let names: Vec<&str> = no_metrics["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["DNS_SERVER", "DNS_PORT", "ZONES"]);
    assert!(
        objects(&helm_template(&["--set", "test.enabled=false"]))
            .iter()
            .all(|o| o["kind"] != "Pod")
    );

    // Its script, run here against the real server (standalone, both zones served).
    let bin = Binary::start(&[
        "--zone",
        "example.internal",
        "--zone",
        "other.example",
        "--manifests",
        &path("examples/failover.yaml"),
    ]);
    let (ok, said) = run_test_pod(&pod, bin.dns, Some(bin.admin));
    assert!(ok, "the helm test against a serving server:\n{said}");
    for line in [
        "SOA example.internal: authoritative answer",
        "SOA other.example: authoritative answer",
        "/readyz: HTTP/1.1 200",
    ] {
        assert!(said.contains(line), "{line:?} in:\n{said}");
    }
    // A zone the server does not serve: REFUSED, not authoritative.
    let wrong = test_pod(&["--set", "zones={example.internal,elsewhere.example}"]);
    let (ok, said) = run_test_pod(&wrong, bin.dns, Some(bin.admin));
    assert!(!ok && said.contains("SOA elsewhere.example: rcode 5"), "{said}");
    // Without the metrics Service: DNS only, and it says so.
    let (ok, said) = run_test_pod(&no_metrics, bin.dns, None);
    assert!(ok && said.contains("/readyz: not checked"), "{said}");
    // A /readyz that is not 200 fails, as does a server that is gone.
    let not_ready = NotReady::start();
    let (ok, said) = run_test_pod(&pod, bin.dns, Some(not_ready.addr));
    assert!(!ok && said.contains("503"), "{said}");
    let (dns, admin) = (bin.dns, bin.admin);
    drop(bin);
    let (ok, said) = run_test_pod(&pod, dns, Some(admin));
    assert!(!ok && said.contains("cannot connect"), "{said}");
}

/// An HTTP server answering 503 to everything (a replica not ready).
struct NotReady {
    addr: std::net::SocketAddr,
}

impl NotReady {
    fn start() -> NotReady {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                // The whole request first: closing on unread bytes would reset the
                // connection before the client reads the answer.
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        NotReady { addr }
    }
}
