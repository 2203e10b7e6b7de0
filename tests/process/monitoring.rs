//! The monitoring artefacts against the real binary and the real tools: `docs/metrics.md`
//! lists exactly the metric families `/metrics` exports (scraped from the binary in
//! standalone mode and in cluster mode against a real API server, after probes,
//! transitions, queries, status writes, Events and report writes have happened), every
//! metric the alerting rules and the Grafana dashboard query is one of them, `promtool`
//! (built by `scripts/control-plane.sh`) checks the rules and runs their unit tests,
//! and every alert's runbook link has its section in `docs/alerts.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::cluster::ControlPlane;
use crate::support::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const RULES: &str = "deploy/helm/failover-dns/files/prometheus-rules.yaml";
const RULES_TESTS: &str = "deploy/helm/failover-dns/files/prometheus-rules.test.yaml";
const DASHBOARD: &str = "deploy/helm/failover-dns/files/dashboard.json";
const METRICS_DOC: &str = "docs/metrics.md";
const ALERTS_DOC: &str = "docs/alerts.md";

/// Series the queries may use that the binary does not export: Prometheus's own `up`,
/// and the kubelet's container metrics (the binary has no `process_*` metrics).
const EXTERNAL: [&str; 3] =
    ["up", "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scrape's metric families, by the name Prometheus stores (a counter `x` is scraped
/// as `x_total`), with their type.
fn families(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').expect("# TYPE NAME KIND");
            let stored = match kind {
                "counter" if !name.ends_with("_total") => format!("{name}_total"),
                _ => name.to_owned(),
            };
            (stored, kind.to_owned())
        })
        .collect()
}

/// Whether `metric` (as a query names it) is a series of the exported `families`:
/// a family itself, or a histogram's `_bucket`, `_sum` or `_count`.
fn exported(metric: &str, families: &BTreeMap<String, String>) -> bool {
    families.contains_key(metric)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            metric
                .strip_suffix(suffix)
                .is_some_and(|base| families.get(base).is_some_and(|k| k == "histogram"))
        })
}

fn has_family(scrape: &str, family: &str) -> bool {
    scrape
        .lines()
        .any(|line| line.strip_prefix(family).is_some_and(|rest| rest.starts_with(['{', ' '])))
}

fn scrape(bin: &Binary) -> String {
    let (code, body) = http_get(bin.admin, "/metrics");
    assert_eq!(code, 200, "GET /metrics: {body}");
    body
}

/// Waits (bounded) until every family in `wanted` has a sample, then returns the scrape.
fn scrape_once_sampled(bin: &Binary, wanted: &[&str]) -> String {
    let mut last = String::new();
    bin.wait_for(
        Duration::from_secs(90),
        || {
            last = scrape(bin);
            wanted.iter().all(|family| has_family(&last, family))
        },
        &format!("samples of every one of {wanted:?}"),
    );
    last
}

fn check_yaml(name: &str, spec: &str) -> String {
    health_check(name, spec)
}

/// A healthy HTTP check, a TCP check on a closed port (it turns unhealthy: a
/// transition) and a failover pair on the failing one.
fn objects(http_port: u16, closed_port: u16) -> String {
    check_yaml(
        "up",
        &format!(
            "{{type: HTTP, ipAddress: 127.0.0.1, port: {http_port}, resourcePath: /, requestInterval: 1s, failureThreshold: 1}}"
        ),
    ) + &check_yaml(
        "down",
        &format!(
            "{{type: TCP, ipAddress: 127.0.0.1, port: {closed_port}, requestInterval: 1s, failureThreshold: 1}}"
        ),
    ) + &record(
        "www-p",
        r#"{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: down, values: ["192.0.2.1"]}"#,
    ) + &record(
        "www-s",
        r#"{name: www.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, healthCheckName: up, values: ["192.0.2.2"]}"#,
    )
}

/// A port nothing listens on (bound a moment, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Families that show up only once something happened, in both modes.
const PROBE_FAMILIES: [&str; 3] = [
    "failoverdns_probe_duration_seconds_count",
    "failoverdns_probe_results_total",
    "failoverdns_health_check_transitions_total",
];

/// Queries answered NOERROR, NXDOMAIN and REFUSED, after the failover happened.
fn query(bin: &Binary) {
    bin.wait_until(
        || bin.answers("www.example.test.", RecordType::A) == ["192.0.2.2"],
        "the SECONDARY (the PRIMARY's TCP check fails)",
    );
    let rcode = |name: &str| resolve(bin.dns, name, RecordType::A).metadata.response_code;
    assert_eq!(rcode("nothing.example.test."), ResponseCode::NXDomain);
    assert_eq!(rcode("www.elsewhere.test."), ResponseCode::Refused);
}

fn standalone_scrape() -> String {
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), objects(target.addr.port(), closed_port())).unwrap();
    let bin =
        Binary::start(&["--manifests", dir.path().to_str().unwrap(), "--zone", "example.test"]);
    query(&bin);
    let mut wanted = PROBE_FAMILIES.to_vec();
    wanted.push(r#"failoverdns_dns_responses_total{transport="udp",rcode="REFUSED"}"#);
    scrape_once_sampled(&bin, &wanted)
}

fn cluster_scrape() -> String {
    let cp = ControlPlane::start();
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let out = cp.apply(&objects(target.addr.port(), closed_port()));
    assert!(out.status.success(), "kubectl apply: {}", text(&out.stderr));
    let bin = Binary::start_with_env(
        &["--zone", "example.test"],
        &[("KUBECONFIG", cp.kubeconfig_path().as_os_str())],
    );
    query(&bin);
    let mut wanted = PROBE_FAMILIES.to_vec();
    // The leader writes the statuses and tells the PRIMARY's check Unhealthy; every
    // replica writes its CheckerReport.
    wanted.extend([
        r#"failoverdns_status_writes_total{kind="HealthCheck",result="ok"}"#,
        r#"failoverdns_events_total{reason="Unhealthy",result="ok"}"#,
        "failoverdns_report_writes_total",
        "failoverdns_report_write_seconds_count",
    ]);
    scrape_once_sampled(&bin, &wanted)
}

/// The scrapes of both modes, taken once for every test here.
fn scrapes() -> &'static (String, String) {
    static SCRAPES: OnceLock<(String, String)> = OnceLock::new();
    SCRAPES.get_or_init(|| (standalone_scrape(), cluster_scrape()))
}

/// Every family either mode exports.
fn all_families() -> BTreeMap<String, String> {
    let (standalone, cluster) = scrapes();
    let mut all = families(standalone);
    all.extend(families(cluster));
    all
}

/// One row of a table in docs/metrics.md.
#[derive(Debug)]
struct DocRow {
    kind: String,
    mode: String,
}

/// The rows of docs/metrics.md's tables: `| \`name\` | type | labels | unit | meaning | mode |`.
fn documented() -> BTreeMap<String, DocRow> {
    let mut rows = BTreeMap::new();
    for line in read(METRICS_DOC).lines() {
        let Some(rest) = line.strip_prefix("| `") else { continue };
        let cells: Vec<&str> = rest.split(" | ").collect();
        let name = cells[0].trim_end_matches('`').to_owned();
        assert!(cells.len() >= 6, "{METRICS_DOC}: a row without its six cells: {line}");
        let row = DocRow {
            kind: cells[1].trim().to_owned(),
            mode: cells[cells.len() - 1].trim_end_matches('|').trim().to_owned(),
        };
        assert!(rows.insert(name.clone(), row).is_none(), "{METRICS_DOC}: {name} twice");
    }
    assert!(rows.len() > 10, "{METRICS_DOC}: no metric rows found");
    rows
}

#[test]
fn the_metrics_reference_lists_exactly_the_exported_families() {
    let (standalone, cluster) = scrapes();
    let (standalone, cluster) = (families(standalone), families(cluster));
    let doc = documented();
    let mut problems = Vec::new();
    for (name, row) in &doc {
        let (in_standalone, in_cluster) =
            (standalone.contains_key(name), cluster.contains_key(name));
        if !in_standalone && !in_cluster {
            problems.push(format!("{name}: documented, but the binary exports no such family"));
            continue;
        }
        let kind = standalone.get(name).or(cluster.get(name)).unwrap();
        if &row.kind != kind {
            problems.push(format!("{name}: documented as {}, exported as {kind}", row.kind));
        }
        let mode = match (in_standalone, in_cluster) {
            (true, true) => "both",
            (true, false) => "standalone",
            (false, _) => "cluster",
        };
        // The checker quorum is on by default: its families are cluster mode's.
        let documented_mode = if row.mode == "quorum" { "cluster" } else { &row.mode };
        if documented_mode != mode {
            problems.push(format!("{name}: documented for {}, exported in {mode}", row.mode));
        }
    }
    for name in standalone.keys().chain(cluster.keys()) {
        if !doc.contains_key(name) && !problems.iter().any(|p| p.starts_with(&format!("{name}:"))) {
            problems.push(format!("{name}: exported, but not in {METRICS_DOC}"));
        }
    }
    assert!(problems.is_empty(), "{METRICS_DOC} and /metrics disagree:\n{}", problems.join("\n"));
}

/// Drops what lies between `open` and its matching `close` (nesting counted).
fn strip_between(s: &str, open: char, close: char) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in s.chars() {
        if c == open {
            depth += 1;
        } else if c == close && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// The metric names a PromQL expression reads, roughly: identifiers outside strings,
/// label matchers, ranges and grouping lists that are neither functions, keywords
/// nor Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Aggregations may put `by (...)` between their name and their parenthesis.
    const KEYWORDS: [&str; 22] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "limitk",
        "limit_ratio",
    ];
    const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
    // Strings first (a `{` or `)` inside one must not count).
    let mut unquoted = String::new();
    let mut quote = None;
    for c in expr.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
            None => unquoted.push(c),
        }
    }
    let plain = strip_between(&strip_between(&unquoted, '{', '}'), '[', ']');
    let chars: Vec<char> = plain.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_ident = c.is_ascii_alphabetic() || c == '_' || c == ':';
        let after_var_or_number = i > 0
            && (chars[i - 1] == '$' || chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '.');
        if !starts_ident || after_var_or_number {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            i += 1;
        }
        let ident: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next].is_whitespace() {
            next += 1;
        }
        let call = next < chars.len() && chars[next] == '(';
        if GROUPING.contains(&ident.as_str()) {
            if call {
                // Skip the label list.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
            }
            continue;
        }
        if call || KEYWORDS.contains(&ident.as_str()) {
            continue;
        }
        names.insert(ident);
    }
    names
}

#[test]
fn the_promql_parser_of_these_tests_finds_the_metrics() {
    let names = metric_names(
        r#"sum by (job, namespace) (rate(failoverdns_dns_responses_total{rcode="SERVFAIL", job=~"$job"}[$__rate_interval])) / on (job) group_left (x) max without (instance) (up offset 5m) > bool 0.5 and histogram_quantile(0.9, sum by (le) (rate(failoverdns_probe_duration_seconds_bucket[5m]))) unless count_over_time(failoverdns_leader[1h:1m]) == 1e3"#,
    );
    let want = [
        "failoverdns_dns_responses_total",
        "failoverdns_leader",
        "failoverdns_probe_duration_seconds_bucket",
        "up",
    ];
    assert_eq!(names, want.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
}

/// Every alerting rule of the rules file.
fn alerts() -> Vec<Value> {
    let rules: Value = serde_saphyr::from_str(&read(RULES)).expect("the rules file is YAML");
    let groups = rules["groups"].as_array().expect("top level groups:");
    let alerts: Vec<Value> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("a group's rules").iter().cloned())
        .filter(|r| r.get("alert").is_some())
        .collect();
    assert!(alerts.len() >= 10, "{RULES}: only {} alerts", alerts.len());
    alerts
}

/// Every query of the dashboard: (where, PromQL).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().expect("panels").iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target with expr");
            queries.push((format!("panel {:?}", panel["title"]), expr.to_owned()));
        }
    }
    for var in dashboard["templating"]["list"].as_array().expect("templating") {
        if var["type"] == "query" {
            let query = var["query"]["query"].as_str().or(var["query"].as_str()).unwrap();
            // label_values(SELECTOR, LABEL): the selector's metric.
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, _)| selector)
                .unwrap_or_else(|| panic!("variable {}: {query}", var["name"]));
            queries.push((format!("variable {}", var["name"]), inner.to_owned()));
        }
    }
    queries
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_query_is_exported() {
    let families = all_families();
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    let mut queries: Vec<(String, String)> = alerts()
        .iter()
        .map(|a| (format!("alert {}", a["alert"]), a["expr"].as_str().unwrap().to_owned()))
        .collect();
    let panel_queries = dashboard_queries(&dashboard);
    assert!(panel_queries.len() >= 20, "{DASHBOARD}: only {} queries", panel_queries.len());
    queries.extend(panel_queries);
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (place, expr) in &queries {
        let names = metric_names(expr);
        if names.is_empty() {
            problems.push(format!("{place}: no metric found in {expr}"));
        }
        for name in names {
            if !exported(&name, &families) && !EXTERNAL.contains(&name.as_str()) {
                problems.push(format!("{place}: {name} is not exported (in {expr})"));
            }
            used.insert(name);
        }
    }
    assert!(problems.is_empty(), "queries of metrics that do not exist:\n{}", problems.join("\n"));
    assert!(used.len() > 20, "only {used:?} used");
}

#[test]
fn the_dashboard_asks_for_its_data_source_and_scope() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_u64() >= Some(36), "{}", dashboard["schemaVersion"]);
    let vars = dashboard["templating"]["list"].as_array().expect("templating");
    let var = |name: &str| {
        vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["job", "namespace"] {
        assert_eq!(var(name)["type"], "query", "{name}");
        assert_eq!(var(name)["datasource"]["uid"], "${datasource}", "{name}");
    }
    // Every panel and query reads the chosen data source, and every query of the
    // binary's metrics is scoped by the job and namespace chosen.
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    let mut ids = BTreeSet::new();
    while let Some(panel) = panels.pop() {
        assert!(
            ids.insert(panel["id"].as_u64().expect("a panel id")),
            "duplicate id {}",
            panel["id"]
        );
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {}", panel["title"]);
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "panel {}", panel["title"]);
            let expr = target["expr"].as_str().unwrap();
            if expr.contains("failoverdns_") {
                assert!(
                    expr.contains(r#"job=~"$job""#) && expr.contains(r#"namespace=~"$namespace""#),
                    "panel {}: not scoped by $job and $namespace: {expr}",
                    panel["title"]
                );
            }
        }
    }
}

/// `scripts/control-plane.sh promtool`: promtool's path, built into the cache first if
/// it is missing.
fn promtool() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("scripts/control-plane.sh"))
        .arg("promtool")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running scripts/control-plane.sh");
    assert!(out.status.success(), "control-plane.sh promtool: {}", text(&out.stderr));
    let path = PathBuf::from(text(&out.stdout).trim());
    assert!(path.is_file(), "{} missing", path.display());
    path
}

fn run_promtool(args: &[&str]) -> Output {
    Command::new(promtool()).args(args).current_dir(repo()).output().expect("running promtool")
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let out = run_promtool(&["check", "rules", "--lint=all", "--lint-fatal", RULES]);
    assert!(
        out.status.success(),
        "promtool check rules {RULES}:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = run_promtool(&["test", "rules", RULES_TESTS]);
    assert!(
        out.status.success(),
        "promtool test rules {RULES_TESTS}:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Every alert has a case where it fires and one where it stays silent.
    let tests: Value = serde_saphyr::from_str(&read(RULES_TESTS)).expect("the tests are YAML");
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for test in tests["tests"].as_array().expect("tests:") {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap().to_owned();
            match case["exp_alerts"].as_array() {
                Some(expected) if !expected.is_empty() => fires.insert(name),
                _ => silent.insert(name),
            };
        }
    }
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(fires.contains(name), "{RULES_TESTS}: no case where {name} fires");
        assert!(silent.contains(name), "{RULES_TESTS}: no case where {name} stays silent");
    }
}

/// A Markdown heading's anchor, as GitHub makes it.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_is_labelled_annotated_and_has_its_runbook_section() {
    let doc = read(ALERTS_DOC);
    let sections: BTreeSet<String> =
        doc.lines().filter_map(|l| l.strip_prefix("## ")).map(anchor).collect();
    let mut names = BTreeSet::new();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(names.insert(name.to_owned()), "{name} twice");
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            let value = alert["annotations"][annotation].as_str().unwrap_or_default();
            assert!(value.trim().len() > 10, "{name}: {annotation} {value:?}");
        }
        let url = alert["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let (page, fragment) =
            url.split_once('#').unwrap_or_else(|| panic!("{name}: runbook_url {url:?}"));
        assert!(page.ends_with(ALERTS_DOC), "{name}: runbook_url {url:?} is not {ALERTS_DOC}");
        assert!(sections.contains(fragment), "{name}: no section #{fragment} in {ALERTS_DOC}");
        assert_eq!(fragment, anchor(name), "{name}: its section is named after it");
    }
    // And no section for an alert that does not exist.
    let stale: Vec<&String> =
        sections.iter().filter(|s| !names.iter().any(|n| anchor(n) == **s)).collect();
    assert!(stale.is_empty(), "{ALERTS_DOC}: sections without an alert: {stale:?}");
}
