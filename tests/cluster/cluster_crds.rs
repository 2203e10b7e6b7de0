//! The CRDs against a real kube-apiserver (tests/support/cluster.rs): they install
//! and become Established, objects round-trip, `kubectl get hc` / `kubectl get frec`
//! show the printer columns, and the API server itself rejects what is invalid on its
//! own with a message naming the field (the CEL rules and schema ranges of
//! src/resources.rs) while accepting every valid variant. Each case is also run
//! through the controller's own validation (cluster mode), which must agree; what only
//! cluster mode can serve (serviceRef, valuesFrom) standalone mode refuses, naming the
//! field.

use crate::support::cluster::{CRD_NAMES, ControlPlane};
use crate::support::inputs_of;
use failover_dns::model::{Change, Fqdn, Model, validate};
use failover_dns::resources::{FailoverRecord, HealthCheck};
use failover_dns::source::files::{Object, parse_file};

const ZONE: &str = "example.internal";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn hc(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    )
}

fn frec(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    )
}

type Errors = Vec<(String, String, String)>;

fn errors_of(model: &Model) -> Errors {
    model
        .errors()
        .map(|p| (p.object.name.to_string(), p.field.clone(), p.message.clone()))
        .collect()
}

/// The errors the controller's validation (cluster mode: Services, Ingresses and
/// Gateways may be targets) reports for these manifests: (object, field, message).
fn rust_errors(yaml: &str) -> Errors {
    let (checks, records) = inputs_of("case.yaml", yaml);
    let mut model = Model::new(&[Fqdn::parse(ZONE).unwrap()]);
    model.set_cluster_objects(true);
    model.apply(
        checks.into_iter().map(Change::Check).chain(records.into_iter().map(Change::Record)),
    );
    errors_of(&model)
}

/// The errors standalone mode's validation reports for these manifests.
fn standalone_errors(yaml: &str) -> Errors {
    let (checks, records) = inputs_of("case.yaml", yaml);
    errors_of(&validate(&[Fqdn::parse(ZONE).unwrap()], &checks, &records))
}

/// `kubectl get KIND` as (header → cell) for the row of `name`.
fn table_row(cp: &ControlPlane, kind: &str, name: &str, wide: bool) -> Vec<(String, String)> {
    let mut args = vec!["get", kind, name];
    if wide {
        args.extend(["-o", "wide"]);
    }
    let out = cp.kubectl(&args);
    assert!(out.status.success(), "kubectl get {kind} {name}: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().expect("a header line");
    let row = lines.next().expect("a row");
    // Cells are aligned under their headers (an empty cell is blank), headers hold no spaces.
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    let cell_at = |i: usize| {
        let end = starts.get(i + 1).copied().unwrap_or(row.len()).min(row.len());
        row.get(starts[i].min(end)..end).unwrap_or("").trim().to_string()
    };
    (0..starts.len())
        .map(|i| (header[starts[i]..].split(' ').next().unwrap().to_string(), cell_at(i)))
        .collect()
}

fn cell<'a>(row: &'a [(String, String)], header: &str) -> &'a str {
    row.iter()
        .find(|(h, _)| h == header)
        .map(|(_, c)| c.as_str())
        .unwrap_or_else(|| panic!("no column {header} in {row:?}"))
}

#[test]
fn crds_install_and_objects_round_trip_with_printer_columns() {
    let cp = ControlPlane::start_bare();

    let out = cp.install_crds();
    assert!(out.status.success(), "kubectl apply -f crds/: {}", text(&out.stderr));
    for crd in CRD_NAMES {
        let out = cp.kubectl(&[
            "get",
            "crd",
            crd,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ]);
        assert_eq!(text(&out.stdout), "True", "{crd} is Established ({})", text(&out.stderr));
    }
    // Installing again changes nothing and succeeds.
    let again = cp.kubectl(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/crds")]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("unchanged"), "{}", text(&again.stdout));

    // The bundled examples are valid for the API server too, and come back as written.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let out = cp.kubectl(&["apply", "-f", examples]);
    assert!(out.status.success(), "kubectl apply -f examples/: {}", text(&out.stderr));
    let mut compared = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue; // examples/cluster/: as `kubectl apply -f` does, not read here
        }
        for object in parse_file("example", &std::fs::read(&path).unwrap()).unwrap() {
            let (kind, name) = match &object {
                Object::HealthCheck(i) => ("hc", i.id.name.to_string()),
                Object::FailoverRecord(i) => ("frec", i.id.name.to_string()),
            };
            let out = cp.kubectl(&["get", kind, &name, "-o", "json"]);
            assert!(out.status.success(), "get {kind} {name}: {}", text(&out.stderr));
            match object {
                Object::HealthCheck(i) => {
                    let stored: HealthCheck = serde_json::from_slice(&out.stdout).unwrap();
                    assert_eq!(stored.spec, i.spec, "HealthCheck {name} round-trips");
                }
                Object::FailoverRecord(i) => {
                    let stored: FailoverRecord = serde_json::from_slice(&out.stdout).unwrap();
                    assert_eq!(stored.spec, i.spec, "FailoverRecord {name} round-trips");
                }
            }
            compared += 1;
        }
    }
    assert!(compared >= 5, "the examples hold checks and records ({compared})");

    // Printer columns: what a check probes and whether it is healthy (status written by
    // the controller; here by hand through the status subresource).
    let status = r#"{"status":{"healthy":false,"lastLatencyMs":1.5,"conditions":[{"type":"Healthy","status":"False",
        "reason":"ConnectionRefused","message":"connection refused","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    let out = cp.kubectl(&[
        "patch",
        "hc",
        "web-primary",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    assert!(out.status.success(), "status patch: {}", text(&out.stderr));
    let row = table_row(&cp, "hc", "web-primary", true);
    assert_eq!(cell(&row, "NAME"), "web-primary");
    assert_eq!(cell(&row, "TYPE"), "HTTP");
    assert_eq!(cell(&row, "HEALTHY"), "false");
    assert_eq!(cell(&row, "REASON"), "ConnectionRefused");
    assert_eq!(cell(&row, "LATENCY(MS)"), "1.5");
    assert!(row.iter().any(|(h, _)| h == "AGE"), "{row:?}");

    let status = r#"{"status":{"healthy":false,"serving":false}}"#;
    let out = cp.kubectl(&[
        "patch",
        "frec",
        "www-primary",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    assert!(out.status.success(), "status patch: {}", text(&out.stderr));
    let row = table_row(&cp, "frec", "www-primary", false);
    assert_eq!(row[0], ("NAME".to_string(), "www-primary".to_string()));
    assert_eq!(cell(&row, "RECORD"), "www.example.internal");
    assert_eq!(cell(&row, "TYPE"), "A");
    assert_eq!(cell(&row, "POLICY"), "Failover");
    assert_eq!(cell(&row, "SET"), "primary");
    assert_eq!(cell(&row, "HEALTHY"), "false");
    assert_eq!(cell(&row, "SERVING"), "false");
}

/// One object invalid on its own, and where the API server must say so.
struct Invalid {
    case: &'static str,
    yaml: String,
    /// The field path the error names (`spec.port`).
    field: &'static str,
    /// Text the error must contain (the rule's message, or the schema's wording).
    message: &'static str,
    /// The controller's validation (cluster mode) reports an error on the same field;
    /// false only where the API server is stricter than model.rs (noted at the case).
    rust_agrees: bool,
}

fn invalid(
    case: &'static str,
    yaml: String,
    field: &'static str,
    message: &'static str,
) -> Invalid {
    Invalid { case, yaml, field, message, rust_agrees: true }
}

fn invalid_cases() -> Vec<Invalid> {
    let long = |n: usize| "x".repeat(n);
    let children_257: Vec<String> = (0..257).map(|i| format!("c{i}")).collect();
    let a = "name: x.example.internal, type: A";
    let v = "values: [192.0.2.1]";
    vec![
        // NameDelegation: who may serve its names. Standalone reports the same as a
        // source error of its file (tests/process/standalone.rs), not as an object's.
        Invalid {
            case: "delegation-without-namespaces",
            yaml: "---\napiVersion: failoverdns.io/v1alpha1\nkind: NameDelegation\nmetadata: {name: nobody}\nspec: {names: [a.example.internal]}\n".into(),
            field: "spec.namespaces",
            message: "namespaces or namespaceSelector is required",
            rust_agrees: false,
        },
        // HealthCheck: what the type requires
        invalid(
            "tcp-without-port",
            hc("tcp-no-port", "{type: TCP, ipAddress: 127.0.0.1}"),
            "spec.port",
            "port is required for TCP checks",
        ),
        invalid(
            "grpc-without-port",
            hc("grpc-no-port", "{type: GRPC, ipAddress: 127.0.0.1}"),
            "spec.port",
            "port is required for GRPC checks",
        ),
        // GRPC: HTTP's fields mean nothing to it, its own fields nothing to the others.
        invalid(
            "grpc-with-resourcePath",
            hc("grpc-path", "{type: GRPC, ipAddress: 127.0.0.1, port: 50051, resourcePath: /x}"),
            "spec.resourcePath",
            "resourcePath is only allowed for HTTP and HTTPS checks",
        ),
        invalid(
            "grpc-with-searchString",
            hc("grpc-search", "{type: GRPC, ipAddress: 127.0.0.1, port: 50051, searchString: ok}"),
            "spec.searchString",
            "searchString is only allowed for HTTP and HTTPS checks",
        ),
        invalid(
            "http-with-grpcService",
            hc("http-grpc-service", "{type: HTTP, ipAddress: 127.0.0.1, grpcService: app.Api}"),
            "spec.grpcService",
            "grpcService is only allowed for GRPC checks",
        ),
        invalid(
            "calculated-with-grpcService",
            hc(
                "calc-grpc-service",
                "{type: Calculated, childHealthChecks: [a], healthThreshold: 1, grpcService: ''}",
            ),
            "spec.grpcService",
            "grpcService is only allowed for GRPC checks",
        ),
        invalid(
            "https-with-tls",
            hc("https-tls", "{type: HTTPS, ipAddress: 127.0.0.1, tls: true}"),
            "spec.tls",
            "tls is only allowed for GRPC checks",
        ),
        invalid(
            "tcp-with-tls-false",
            hc("tcp-tls", "{type: TCP, ipAddress: 127.0.0.1, port: 22, tls: false}"),
            "spec.tls",
            "tls is only allowed for GRPC checks",
        ),
        invalid(
            "grpcService-256",
            hc(
                "grpc-service-long",
                &format!(
                    "{{type: GRPC, ipAddress: 127.0.0.1, port: 50051, grpcService: {}}}",
                    long(256)
                ),
            ),
            "spec.grpcService",
            "Too long",
        ),
        invalid(
            "http-without-endpoint",
            hc("http-no-endpoint", "{type: HTTP}"),
            "spec.ipAddress",
            "ipAddress, fqdn or serviceRef is required",
        ),
        invalid(
            "tcp-without-endpoint",
            hc("tcp-no-endpoint", "{type: TCP, port: 22}"),
            "spec.ipAddress",
            "ipAddress, fqdn or serviceRef is required",
        ),
        invalid(
            "calculated-without-children",
            hc("calc-no-children", "{type: Calculated, healthThreshold: 1}"),
            "spec.childHealthChecks",
            "childHealthChecks is required for type Calculated",
        ),
        invalid(
            "calculated-without-threshold",
            hc("calc-no-threshold", "{type: Calculated, childHealthChecks: [a]}"),
            "spec.healthThreshold",
            "healthThreshold is required for type Calculated",
        ),
        invalid(
            "calculated-with-ipAddress",
            hc(
                "calc-ip",
                "{type: Calculated, childHealthChecks: [a], healthThreshold: 1, ipAddress: 127.0.0.1}",
            ),
            "spec.ipAddress",
            "ipAddress is not allowed for type Calculated",
        ),
        invalid(
            "calculated-with-fqdn",
            hc(
                "calc-fqdn",
                "{type: Calculated, childHealthChecks: [a], healthThreshold: 1, fqdn: a.example.internal}",
            ),
            "spec.fqdn",
            "fqdn is not allowed for type Calculated",
        ),
        invalid(
            "calculated-with-port",
            hc(
                "calc-port",
                "{type: Calculated, childHealthChecks: [a], healthThreshold: 1, port: 80}",
            ),
            "spec.port",
            "port is not allowed for type Calculated",
        ),
        invalid(
            "calculated-with-resourcePath",
            hc(
                "calc-path",
                "{type: Calculated, childHealthChecks: [a], healthThreshold: 1, resourcePath: /}",
            ),
            "spec.resourcePath",
            "resourcePath is only allowed for HTTP and HTTPS checks",
        ),
        invalid(
            "calculated-with-searchString",
            hc(
                "calc-search",
                "{type: Calculated, childHealthChecks: [a], healthThreshold: 1, searchString: ok}",
            ),
            "spec.searchString",
            "searchString is only allowed for HTTP and HTTPS checks",
        ),
        invalid(
            "http-with-children",
            hc("http-children", "{type: HTTP, ipAddress: 127.0.0.1, childHealthChecks: [a]}"),
            "spec.childHealthChecks",
            "childHealthChecks is only allowed for type Calculated",
        ),
        invalid(
            "http-with-healthThreshold",
            hc("http-threshold", "{type: HTTP, ipAddress: 127.0.0.1, healthThreshold: 1}"),
            "spec.healthThreshold",
            "healthThreshold is only allowed for type Calculated",
        ),
        invalid(
            "tcp-with-resourcePath",
            hc("tcp-path", "{type: TCP, ipAddress: 127.0.0.1, port: 22, resourcePath: /x}"),
            "spec.resourcePath",
            "resourcePath is only allowed for HTTP and HTTPS checks",
        ),
        invalid(
            "tcp-with-searchString",
            hc("tcp-search", "{type: TCP, ipAddress: 127.0.0.1, port: 22, searchString: ok}"),
            "spec.searchString",
            "searchString is only allowed for HTTP and HTTPS checks",
        ),
        // HealthCheck: a Service as the target (serviceRef, type Endpoints)
        invalid(
            "endpoints-without-serviceRef",
            hc("ep-no-ref", "{type: Endpoints}"),
            "spec.serviceRef",
            "serviceRef is required for type Endpoints",
        ),
        invalid(
            "endpoints-with-serviceRef-port",
            hc("ep-port", "{type: Endpoints, serviceRef: {name: web, port: http}}"),
            "spec.serviceRef.port",
            "serviceRef.port is not allowed for type Endpoints",
        ),
        invalid(
            "endpoints-with-serviceRef-port-number",
            hc("ep-port-number", "{type: Endpoints, serviceRef: {name: web, port: 8080}}"),
            "spec.serviceRef.port",
            "serviceRef.port is not allowed for type Endpoints",
        ),
        invalid(
            "serviceRef-port-zero",
            hc("ref-port-0", "{type: TCP, serviceRef: {name: db, port: 0}}"),
            "spec.serviceRef.port",
            "serviceRef.port must be a port number (1-65535) or a port name",
        ),
        invalid(
            "serviceRef-port-too-high",
            hc("ref-port-high", "{type: HTTP, serviceRef: {name: db, port: 65536}}"),
            "spec.serviceRef.port",
            "serviceRef.port must be a port number (1-65535) or a port name",
        ),
        invalid(
            "serviceRef-port-bad-name",
            hc("ref-port-name", "{type: HTTP, serviceRef: {name: db, port: Web_Port}}"),
            "spec.serviceRef.port",
            "serviceRef.port must be a port number (1-65535) or a port name",
        ),
        invalid(
            "serviceRef-name-with-dots",
            hc("ref-dots", "{type: Endpoints, serviceRef: {name: db.apps}}"),
            "spec.serviceRef.name",
            "should match",
        ),
        invalid(
            "serviceRef-name-too-long",
            hc("ref-long", &format!("{{type: Endpoints, serviceRef: {{name: {}}}}}", long(64))),
            "spec.serviceRef.name",
            "may not be more than 63",
        ),
        invalid(
            "calculated-with-serviceRef",
            hc(
                "calc-ref",
                "{type: Calculated, childHealthChecks: [a], healthThreshold: 1, serviceRef: {name: web}}",
            ),
            "spec.serviceRef",
            "serviceRef is not allowed for type Calculated",
        ),
        invalid(
            "serviceRef-with-ipAddress",
            hc("ref-ip", "{type: HTTP, serviceRef: {name: web}, ipAddress: 192.0.2.1}"),
            "spec.ipAddress",
            "ipAddress is not allowed with serviceRef",
        ),
        invalid(
            "endpoints-with-ipAddress",
            hc("ep-ip", "{type: Endpoints, serviceRef: {name: web}, ipAddress: 192.0.2.1}"),
            "spec.ipAddress",
            "ipAddress is not allowed with serviceRef",
        ),
        invalid(
            "serviceRef-with-fqdn",
            hc("ref-fqdn", "{type: HTTPS, serviceRef: {name: web}, fqdn: www.example.internal}"),
            "spec.fqdn",
            "fqdn is not allowed with serviceRef",
        ),
        invalid(
            "serviceRef-with-port",
            hc("ref-port", "{type: TCP, serviceRef: {name: db}, port: 5432}"),
            "spec.port",
            "port is not allowed with serviceRef: use serviceRef.port",
        ),
        invalid(
            "endpoints-with-port",
            hc("ep-port-top", "{type: Endpoints, serviceRef: {name: web}, port: 80}"),
            "spec.port",
            "port is not allowed with serviceRef",
        ),
        invalid(
            "minHealthyEndpoints-without-serviceRef",
            hc("min-no-ref", "{type: HTTP, ipAddress: 192.0.2.1, minHealthyEndpoints: 2}"),
            "spec.minHealthyEndpoints",
            "minHealthyEndpoints is only allowed with serviceRef",
        ),
        invalid(
            "calculated-with-minHealthyEndpoints",
            hc(
                "calc-min",
                "{type: Calculated, childHealthChecks: [a], healthThreshold: 1, minHealthyEndpoints: 1}",
            ),
            "spec.minHealthyEndpoints",
            "minHealthyEndpoints is only allowed with serviceRef",
        ),
        invalid(
            "endpoints-with-resourcePath",
            hc("ep-path", "{type: Endpoints, serviceRef: {name: web}, resourcePath: /}"),
            "spec.resourcePath",
            "resourcePath is only allowed for HTTP and HTTPS checks",
        ),
        invalid(
            "endpoints-with-searchString",
            hc("ep-search", "{type: Endpoints, serviceRef: {name: web}, searchString: ok}"),
            "spec.searchString",
            "searchString is only allowed for HTTP and HTTPS checks",
        ),
        invalid(
            "minHealthyEndpoints-0",
            hc("min-low", "{type: Endpoints, serviceRef: {name: web}, minHealthyEndpoints: 0}"),
            "spec.minHealthyEndpoints",
            "greater than or equal to 1",
        ),
        invalid(
            "minHealthyEndpoints-10001",
            hc("min-high", "{type: Endpoints, serviceRef: {name: web}, minHealthyEndpoints: 10001}"),
            "spec.minHealthyEndpoints",
            "less than or equal to 10000",
        ),
        invalid(
            "serviceRef-name-empty",
            hc("ref-empty", "{type: Endpoints, serviceRef: {name: ''}}"),
            "spec.serviceRef.name",
            "at least 1 chars long",
        ),
        invalid(
            "serviceRef-name-254",
            hc("ref-long", &format!("{{type: Endpoints, serviceRef: {{name: {}}}}}", long(254))),
            "spec.serviceRef.name",
            "Too long",
        ),
        // HealthCheck: ranges and lengths (schema)
        invalid(
            "port-0",
            hc("port-low", "{type: HTTP, ipAddress: 127.0.0.1, port: 0}"),
            "spec.port",
            "greater than or equal to 1",
        ),
        invalid(
            "port-65536",
            hc("port-high", "{type: HTTP, ipAddress: 127.0.0.1, port: 65536}"),
            "spec.port",
            "less than or equal to 65535",
        ),
        invalid(
            "failureThreshold-0",
            hc("ft-low", "{type: HTTP, ipAddress: 127.0.0.1, failureThreshold: 0}"),
            "spec.failureThreshold",
            "greater than or equal to 1",
        ),
        invalid(
            "failureThreshold-11",
            hc("ft-high", "{type: HTTP, ipAddress: 127.0.0.1, failureThreshold: 11}"),
            "spec.failureThreshold",
            "less than or equal to 10",
        ),
        invalid(
            "healthyThreshold-0",
            hc("hyt-low", "{type: HTTP, ipAddress: 127.0.0.1, healthyThreshold: 0}"),
            "spec.healthyThreshold",
            "greater than or equal to 1",
        ),
        invalid(
            "healthyThreshold-11",
            hc("hyt-high", "{type: TCP, ipAddress: 127.0.0.1, port: 22, healthyThreshold: 11}"),
            "spec.healthyThreshold",
            "less than or equal to 10",
        ),
        invalid(
            "calculated-with-healthyThreshold",
            hc(
                "calc-hyt",
                "{type: Calculated, childHealthChecks: [a], healthThreshold: 1, healthyThreshold: 2}",
            ),
            "spec.healthyThreshold",
            "healthyThreshold is only allowed for probed checks",
        ),
        invalid(
            "endpoints-with-healthyThreshold",
            hc("ep-hyt", "{type: Endpoints, serviceRef: {name: web}, healthyThreshold: 2}"),
            "spec.healthyThreshold",
            "healthyThreshold is only allowed for probed checks",
        ),
        // HealthCheck: HTTP(S) options beyond Route 53's
        invalid(
            "expectedStatuses-on-tcp",
            hc("codes-tcp", "{type: TCP, ipAddress: 127.0.0.1, port: 22, expectedStatuses: ['200']}"),
            "spec.expectedStatuses",
            "expectedStatuses is only allowed for HTTP and HTTPS checks",
        ),
        invalid(
            "expectedStatuses-600",
            hc("codes-600", "{type: HTTP, ipAddress: 127.0.0.1, expectedStatuses: ['200', '600']}"),
            "spec.expectedStatuses",
            "expectedStatuses entries are status codes (100-599) or ranges of them",
        ),
        invalid(
            "expectedStatuses-words",
            hc("codes-2xx", "{type: HTTP, ipAddress: 127.0.0.1, expectedStatuses: [2xx]}"),
            "spec.expectedStatuses",
            "expectedStatuses entries are status codes (100-599) or ranges of them",
        ),
        invalid(
            "expectedStatuses-reversed",
            hc("codes-rev", "{type: HTTPS, ipAddress: 127.0.0.1, expectedStatuses: ['299-200']}"),
            "spec.expectedStatuses",
            "expectedStatuses ranges go from low to high",
        ),
        invalid(
            "expectedStatuses-empty",
            hc("codes-empty", "{type: HTTP, ipAddress: 127.0.0.1, expectedStatuses: []}"),
            "spec.expectedStatuses",
            "should have at least 1 items",
        ),
        invalid(
            "expectedStatuses-33",
            hc(
                "codes-many",
                &format!(
                    "{{type: HTTP, ipAddress: 127.0.0.1, expectedStatuses: [{}]}}",
                    vec!["'200'"; 33].join(", ")
                ),
            ),
            "spec.expectedStatuses",
            "must have at most 32 items",
        ),
        invalid(
            "headers-on-tcp",
            hc("hdr-tcp", "{type: TCP, ipAddress: 127.0.0.1, port: 22, headers: {X-A: b}}"),
            "spec.headers",
            "headers is only allowed for HTTP and HTTPS checks",
        ),
        invalid(
            "headers-name-with-space",
            hc("hdr-space", "{type: HTTP, ipAddress: 127.0.0.1, headers: {'X A': b}}"),
            "spec.headers",
            "headers names must be header tokens",
        ),
        // A value ending the header line and starting another header (or request).
        invalid(
            "headers-value-crlf",
            hc(
                "hdr-crlf",
                r#"{type: HTTP, ipAddress: 127.0.0.1, headers: {X-A: "b\r\nX-Injected: 1"}}"#,
            ),
            "spec.headers",
            "headers values may hold only visible ASCII characters and spaces",
        ),
        invalid(
            "headers-value-lf-request",
            hc(
                "hdr-lf",
                r#"{type: HTTPS, ipAddress: 127.0.0.1, headers: {X-A: "b\n\nGET /admin HTTP/1.1"}}"#,
            ),
            "spec.headers",
            "headers values may hold only visible ASCII characters and spaces",
        ),
        invalid(
            "headers-host",
            hc("hdr-host", "{type: HTTP, ipAddress: 127.0.0.1, headers: {HOST: other.example}}"),
            "spec.headers",
            "headers may not set Host",
        ),
        invalid(
            "headers-framing",
            hc(
                "hdr-te",
                "{type: HTTP, ipAddress: 127.0.0.1, headers: {Transfer-Encoding: chunked}}",
            ),
            "spec.headers",
            "headers may not set Accept-Encoding, Connection, Content-Length",
        ),
        invalid(
            "headers-case-twice",
            hc("hdr-twice", "{type: HTTP, ipAddress: 127.0.0.1, headers: {X-A: b, x-a: c}}"),
            "spec.headers",
            "headers names must differ in more than case",
        ),
        invalid(
            "headers-17",
            hc(
                "hdr-many",
                &format!(
                    "{{type: HTTP, ipAddress: 127.0.0.1, headers: {{{}}}}}",
                    (0..17).map(|i| format!("x-{i}: v")).collect::<Vec<_>>().join(", ")
                ),
            ),
            "spec.headers",
            "must have at most 16 items",
        ),
        invalid(
            "minCertificateValidity-on-http",
            hc("cert-http", "{type: HTTP, ipAddress: 127.0.0.1, minCertificateValidity: 72h}"),
            "spec.minCertificateValidity",
            "minCertificateValidity is only allowed for HTTPS checks",
        ),
        invalid(
            "healthThreshold-257",
            hc("ht-high", "{type: Calculated, childHealthChecks: [a], healthThreshold: 257}"),
            "spec.healthThreshold",
            "less than or equal to 256",
        ),
        invalid(
            "healthThreshold-negative",
            hc("ht-low", "{type: Calculated, childHealthChecks: [a], healthThreshold: -1}"),
            "spec.healthThreshold",
            "greater than or equal to 0",
        ),
        invalid(
            "searchString-256",
            hc(
                "search-long",
                &format!("{{type: HTTP, ipAddress: 127.0.0.1, searchString: {}}}", long(256)),
            ),
            "spec.searchString",
            "Too long",
        ),
        invalid(
            "searchString-empty",
            hc("search-empty", "{type: HTTP, ipAddress: 127.0.0.1, searchString: ''}"),
            "spec.searchString",
            "at least 1 chars long",
        ),
        invalid(
            "children-257",
            hc(
                "children-many",
                &format!(
                    "{{type: Calculated, healthThreshold: 1, childHealthChecks: [{}]}}",
                    children_257.join(", ")
                ),
            ),
            "spec.childHealthChecks",
            "must have at most 256 items",
        ),
        invalid(
            "children-duplicate",
            hc(
                "children-dup",
                "{type: Calculated, healthThreshold: 1, childHealthChecks: [a, b, a]}",
            ),
            "spec.childHealthChecks[2]",
            "Duplicate value",
        ),
        // FailoverRecord: what the routing policy requires
        invalid(
            "weighted-without-setIdentifier",
            frec("w-no-set", &format!("{{{a}, routingPolicy: Weighted, weight: 1, {v}}}")),
            "spec.setIdentifier",
            "setIdentifier is required unless routingPolicy is Simple",
        ),
        invalid(
            "failover-blank-setIdentifier",
            frec(
                "f-blank-set",
                &format!(
                    "{{{a}, routingPolicy: Failover, failover: PRIMARY, setIdentifier: ' ', {v}}}"
                ),
            ),
            "spec.setIdentifier",
            "setIdentifier is required unless routingPolicy is Simple",
        ),
        invalid(
            "multivalue-without-setIdentifier",
            frec("m-no-set", &format!("{{{a}, routingPolicy: MultiValue, {v}}}")),
            "spec.setIdentifier",
            "setIdentifier is required unless routingPolicy is Simple",
        ),
        invalid(
            "simple-with-setIdentifier",
            frec("s-set", &format!("{{{a}, routingPolicy: Simple, setIdentifier: one, {v}}}")),
            "spec.setIdentifier",
            "setIdentifier is not allowed with Simple routing",
        ),
        invalid(
            "no-policy-with-setIdentifier",
            frec("n-set", &format!("{{{a}, setIdentifier: one, {v}}}")),
            "spec.setIdentifier",
            "setIdentifier is not allowed with Simple routing",
        ),
        invalid(
            "setIdentifier-129",
            frec(
                "set-long",
                &format!("{{{a}, routingPolicy: MultiValue, setIdentifier: {}, {v}}}", long(129)),
            ),
            "spec.setIdentifier",
            "setIdentifier must be at most 128 bytes",
        ),
        invalid(
            "weighted-without-weight",
            frec(
                "w-no-weight",
                &format!("{{{a}, routingPolicy: Weighted, setIdentifier: one, {v}}}"),
            ),
            "spec.weight",
            "weight is required for Weighted routing",
        ),
        invalid(
            "simple-with-weight",
            frec("s-weight", &format!("{{{a}, weight: 1, {v}}}")),
            "spec.weight",
            "weight is only allowed with Weighted routing",
        ),
        invalid(
            "failover-with-weight",
            frec(
                "f-weight",
                &format!(
                    "{{{a}, routingPolicy: Failover, failover: PRIMARY, setIdentifier: one, weight: 1, {v}}}"
                ),
            ),
            "spec.weight",
            "weight is only allowed with Weighted routing",
        ),
        invalid(
            "failover-without-role",
            frec(
                "f-no-role",
                &format!("{{{a}, routingPolicy: Failover, setIdentifier: one, {v}}}"),
            ),
            "spec.failover",
            "failover (PRIMARY or SECONDARY) is required for Failover routing",
        ),
        invalid(
            "weighted-with-failover",
            frec(
                "w-role",
                &format!(
                    "{{{a}, routingPolicy: Weighted, weight: 1, setIdentifier: one, failover: PRIMARY, {v}}}"
                ),
            ),
            "spec.failover",
            "failover is only allowed with Failover routing",
        ),
        invalid(
            "simple-with-failover",
            frec("s-role", &format!("{{{a}, failover: SECONDARY, {v}}}")),
            "spec.failover",
            "failover is only allowed with Failover routing",
        ),
        // FailoverRecord: the data
        invalid(
            "neither-values-nor-alias",
            frec("no-data", &format!("{{{a}}}")),
            "spec.values",
            "values, aliasTarget or valuesFrom is required",
        ),
        invalid(
            "values-and-alias",
            frec("both-data", &format!("{{{a}, {v}, aliasTarget: {{name: y.example.internal}}}}")),
            "spec.aliasTarget",
            "aliasTarget is not allowed together with values",
        ),
        invalid(
            "multivalue-alias",
            frec(
                "m-alias",
                &format!(
                    "{{{a}, routingPolicy: MultiValue, setIdentifier: one, aliasTarget: {{name: y.example.internal}}}}"
                ),
            ),
            "spec.aliasTarget",
            "MultiValue records cannot be aliases",
        ),
        invalid(
            "multivalue-cname",
            frec(
                "m-cname",
                "{name: x.example.internal, type: CNAME, routingPolicy: MultiValue, setIdentifier: one, values: [y.example.internal.]}",
            ),
            "spec.type",
            "MultiValue records cannot be CNAME",
        ),
        invalid(
            "values-empty",
            frec("values-empty", &format!("{{{a}, values: []}}")),
            "spec.values",
            "should have at least 1 items",
        ),
        invalid(
            "cname-two-values",
            frec(
                "cname-two",
                "{name: x.example.internal, type: CNAME, values: [y.example.internal., z.example.internal.]}",
            ),
            "spec.values",
            "values of a CNAME record hold exactly one name",
        ),
        // FailoverRecord: data from a Service, Ingress or Gateway (valuesFrom)
        invalid(
            "valuesFrom-and-values",
            frec("from-values", &format!("{{{a}, {v}, valuesFrom: {{service: {{name: web}}}}}}")),
            "spec.valuesFrom",
            "valuesFrom is not allowed together with values or aliasTarget",
        ),
        invalid(
            "valuesFrom-and-alias",
            frec(
                "from-alias",
                &format!(
                    "{{{a}, aliasTarget: {{name: y.example.internal}}, valuesFrom: {{ingress: {{name: web}}}}}}"
                ),
            ),
            "spec.valuesFrom",
            "valuesFrom is not allowed together with values or aliasTarget",
        ),
        // FailoverRecord: answer policies (whenAllUnhealthy, fallbackValues, degradedTTL)
        invalid(
            "fallback-without-values",
            frec("fb-none", &format!("{{{a}, {v}, whenAllUnhealthy: Fallback}}")),
            "spec.fallbackValues",
            "fallbackValues is required with whenAllUnhealthy Fallback",
        ),
        invalid(
            "fallbackValues-without-fallback",
            frec(
                "fb-stray",
                &format!("{{{a}, {v}, whenAllUnhealthy: FailClosed, fallbackValues: [192.0.2.9]}}"),
            ),
            "spec.fallbackValues",
            "fallbackValues is only allowed with whenAllUnhealthy Fallback",
        ),
        invalid(
            "fallbackValues-alone",
            frec("fb-alone", &format!("{{{a}, {v}, fallbackValues: [192.0.2.9]}}")),
            "spec.fallbackValues",
            "fallbackValues is only allowed with whenAllUnhealthy Fallback",
        ),
        invalid(
            "fallbackValues-two-cnames",
            frec(
                "fb-cname",
                "{name: c.example.internal, type: CNAME, values: [a.example.internal], whenAllUnhealthy: Fallback, fallbackValues: [b.example.internal, d.example.internal]}",
            ),
            "spec.fallbackValues",
            "fallbackValues of a CNAME record hold exactly one name",
        ),
        invalid(
            "degradedTTL-with-alias",
            frec(
                "dttl-alias",
                &format!("{{{a}, aliasTarget: {{name: y.example.internal}}, degradedTTL: 5}}"),
            ),
            "spec.degradedTTL",
            "degradedTTL is not allowed with aliasTarget",
        ),
        invalid(
            "valuesFrom-txt",
            frec(
                "from-txt",
                "{name: x.example.internal, type: TXT, valuesFrom: {service: {name: web}}}",
            ),
            "spec.valuesFrom",
            "valuesFrom is only allowed for types A, AAAA and CNAME",
        ),
        invalid(
            "valuesFrom-mx",
            frec("from-mx", "{name: x.example.internal, type: MX, valuesFrom: {gateway: {name: gw}}}"),
            "spec.valuesFrom",
            "valuesFrom is only allowed for types A, AAAA and CNAME",
        ),
        invalid(
            "valuesFrom-srv",
            frec(
                "from-srv",
                "{name: _x._tcp.example.internal, type: SRV, valuesFrom: {ingress: {name: web}}}",
            ),
            "spec.valuesFrom",
            "valuesFrom is only allowed for types A, AAAA and CNAME",
        ),
        invalid(
            "valuesFrom-service-name-digit-first",
            frec("from-digit", &format!("{{{a}, valuesFrom: {{service: {{name: 1db}}}}}}")),
            "spec.valuesFrom.service.name",
            "should match",
        ),
        invalid(
            "valuesFrom-empty",
            frec("from-none", &format!("{{{a}, valuesFrom: {{}}}}")),
            "spec.valuesFrom.service",
            "valuesFrom needs exactly one of service, ingress and gateway",
        ),
        invalid(
            "valuesFrom-evaluateTargetHealth-only",
            frec("from-eth", &format!("{{{a}, valuesFrom: {{evaluateTargetHealth: true}}}}")),
            "spec.valuesFrom.service",
            "valuesFrom needs exactly one of service, ingress and gateway",
        ),
        invalid(
            "valuesFrom-service-and-ingress",
            frec(
                "from-two",
                &format!("{{{a}, valuesFrom: {{service: {{name: web}}, ingress: {{name: web}}}}}}"),
            ),
            "spec.valuesFrom.service",
            "valuesFrom needs exactly one of service, ingress and gateway",
        ),
        invalid(
            "valuesFrom-all-three",
            frec(
                "from-three",
                &format!(
                    "{{{a}, valuesFrom: {{service: {{name: web}}, ingress: {{name: web}}, gateway: {{name: gw}}}}}}"
                ),
            ),
            "spec.valuesFrom.service",
            "valuesFrom needs exactly one of service, ingress and gateway",
        ),
        invalid(
            "valuesFrom-service-name-empty",
            frec("from-empty-name", &format!("{{{a}, valuesFrom: {{service: {{name: ''}}}}}}")),
            "spec.valuesFrom.service.name",
            "at least 1 chars long",
        ),
        invalid(
            "valuesFrom-gateway-name-254",
            frec(
                "from-long-name",
                &format!("{{{a}, valuesFrom: {{gateway: {{name: {}}}}}}}", long(254)),
            ),
            "spec.valuesFrom.gateway.name",
            "Too long",
        ),
        // FailoverRecord: ranges (schema)
        invalid(
            "weight-256",
            frec(
                "weight-high",
                &format!("{{{a}, routingPolicy: Weighted, setIdentifier: one, weight: 256, {v}}}"),
            ),
            "spec.weight",
            "less than or equal to 255",
        ),
        invalid(
            "weight-negative",
            frec(
                "weight-low",
                &format!("{{{a}, routingPolicy: Weighted, setIdentifier: one, weight: -1, {v}}}"),
            ),
            "spec.weight",
            "greater than or equal to 0",
        ),
        invalid(
            "ttl-negative",
            frec("ttl-low", &format!("{{{a}, ttl: -1, {v}}}")),
            "spec.ttl",
            "greater than or equal to 0",
        ),
        invalid(
            "ttl-2147483648",
            frec("ttl-high", &format!("{{{a}, ttl: 2147483648, {v}}}")),
            "spec.ttl",
            "less than or equal to 2147483647",
        ),
    ]
}

#[test]
fn api_server_rejects_what_is_invalid_on_its_own_naming_the_field() {
    let cases = invalid_cases();
    let cp = ControlPlane::start();
    let mut failures = Vec::new();
    for c in &cases {
        let out = cp.apply(&c.yaml);
        let stderr = text(&out.stderr);
        if out.status.success() {
            failures.push(format!(
                "{}: accepted by the API server: {}",
                c.case,
                text(&out.stdout).trim()
            ));
            continue;
        }
        // The field named as the error's path (`spec.port: Required value: port is ...`).
        if !stderr.contains(&format!("{}: ", c.field)) || !stderr.contains(c.message) {
            failures.push(format!(
                "{}: expected `{}` and {:?} in: {}",
                c.case,
                c.field,
                c.message,
                stderr.trim()
            ));
        }
        let rust = rust_errors(&c.yaml);
        let rust_field = rust.iter().any(|(_, field, _)| field == c.field);
        if c.rust_agrees != rust_field {
            failures.push(format!(
                "{}: the controller's validation disagrees on {}: {rust:?}",
                c.case, c.field
            ));
        }
    }
    // Nothing invalid was stored.
    let out = cp.kubectl(&["get", "hc,frec", "-o", "name"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    if !text(&out.stdout).trim().is_empty() {
        failures.push(format!("objects were stored: {}", text(&out.stdout)));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The CEL rules of a schema and of every object below it, each with the path of the
/// object that carries it (`spec`, `spec.valuesFrom`).
fn cel_rules<'a>(
    schema: &'a serde_json::Value,
    path: &str,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) {
    for rule in schema["x-kubernetes-validations"].as_array().into_iter().flatten() {
        out.push((path.to_string(), rule));
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        cel_rules(property, &format!("{path}.{name}"), out);
    }
    if let Some(items) = schema.get("items") {
        cel_rules(items, &format!("{path}[*]"), out);
    }
}

/// Every CEL rule of the generated CRDs, on the spec or on an object inside it, has a
/// case above that breaks it, naming its field.
#[test]
fn every_cel_rule_has_a_rejection_case() {
    let yaml = failover_dns::crdgen::crds_yaml();
    let cases = invalid_cases();
    let mut rules = Vec::new();
    let docs: Vec<serde_json::Value> = yaml
        .split("\n---\n")
        .filter_map(|d| serde_saphyr::from_str::<serde_json::Value>(d).ok())
        .filter(|doc| doc.get("kind").is_some())
        .collect();
    for doc in &docs {
        let schema = &doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        // Written by the controller alone, never by users: no rules to break.
        if doc["spec"]["names"]["kind"] == "CheckerReport" {
            let mut none = Vec::new();
            cel_rules(schema, "", &mut none);
            assert!(none.is_empty(), "CheckerReport has no CEL rules");
            continue;
        }
        assert!(
            schema["properties"]["spec"]["x-kubernetes-validations"].is_array(),
            "CEL rules on the spec of {}",
            doc["spec"]["names"]["kind"]
        );
        cel_rules(&schema["properties"]["spec"], "spec", &mut rules);
    }
    for (at, v) in &rules {
        let message = v["message"].as_str().expect("every rule has a message");
        let field = v["fieldPath"].as_str().expect("every rule points at a field");
        let field_name = field.trim_start_matches('.');
        assert!(
            message.contains(field_name),
            "the message {message:?} names the field {field_name}"
        );
        let path = format!("{at}{field}");
        assert!(
            cases.iter().any(|c| message.contains(c.message) && c.field == path),
            "no case breaks the rule {:?} at {at} ({message}, {path})",
            v["rule"]
        );
    }
    assert!(rules.len() >= 34, "{} rules", rules.len());
    assert!(
        rules.iter().any(|(at, _)| at == "spec.valuesFrom"),
        "valuesFrom carries its own rule (exactly one of service, ingress and gateway)"
    );
}

#[test]
fn api_server_accepts_every_valid_variant() {
    let sixty_four = "x".repeat(64);
    let docs = [
        // HealthChecks
        hc("http-ip", "{type: HTTP, ipAddress: 127.0.0.1}"),
        hc(
            "http-edges",
            "{type: HTTP, ipAddress: 127.0.0.1, port: 1, failureThreshold: 1, healthyThreshold: 10}",
        ),
        hc("tcp-rise", "{type: TCP, ipAddress: 127.0.0.1, port: 22, healthyThreshold: 1}"),
        hc(
            "http-options",
            &format!(
                "{{type: HTTP, ipAddress: 127.0.0.1, expectedStatuses: ['100', '200-299', '404', '599', {}], headers: {{X-Token: 'a b=c/d', Authorization: Bearer x.y.z, User-Agent: probe, \"!#$%&'*+-.^_`|~\": '{}'}}}}",
                vec!["'500-599'"; 28].join(", "),
                "~".repeat(2048)
            ),
        ),
        hc(
            "https-options",
            &format!(
                "{{type: HTTPS, fqdn: www.example.internal, expectedStatuses: ['200'], minCertificateValidity: 72h, headers: {{{}}}}}",
                (0..16).map(|i| format!("x-{i}: v")).collect::<Vec<_>>().join(", ")
            ),
        ),
        hc(
            "https-fqdn",
            &format!(
                "{{type: HTTPS, fqdn: www.example.internal, port: 65535, resourcePath: /health, searchString: {}, failureThreshold: 10, requestInterval: 10s, timeout: 2s}}",
                "s".repeat(255)
            ),
        ),
        hc("tcp-v6", "{type: TCP, ipAddress: '::1', port: 22, inverted: true}"),
        hc(
            "tcp-fqdn-disabled",
            "{type: TCP, fqdn: db.example.internal, port: 5432, disabled: true}",
        ),
        hc(
            "calc-none-needed",
            "{type: Calculated, childHealthChecks: [http-ip, tcp-v6], healthThreshold: 0}",
        ),
        hc("calc-max", "{type: Calculated, childHealthChecks: [http-ip], healthThreshold: 256}"),
        hc("grpc-ip", "{type: GRPC, ipAddress: 127.0.0.1, port: 50051}"),
        hc(
            "grpc-tls-fqdn",
            &format!(
                "{{type: GRPC, fqdn: api.example.internal, port: 443, tls: true, grpcService: {}, inverted: true, failureThreshold: 10}}",
                "s".repeat(255)
            ),
        ),
        hc(
            "grpc-v6-whole-server",
            "{type: GRPC, ipAddress: '::1', port: 65535, grpcService: '', tls: false, disabled: true}",
        ),
        hc("calc-empty", "{type: Calculated, childHealthChecks: [], healthThreshold: 0}"),
        // FailoverRecords
        frec(
            "simple",
            "{name: simple.example.internal, type: A, ttl: 0, values: [192.0.2.1, 192.0.2.2]}",
        ),
        frec(
            "simple-explicit",
            "{name: simple.example.internal, type: TXT, routingPolicy: Simple, setIdentifier: '', ttl: 2147483647, values: ['\"hello\"']}",
        ),
        frec(
            "fail-closed",
            "{name: closed.example.internal, type: A, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: http-ip, values: [192.0.2.20], whenAllUnhealthy: FailClosed, degradedTTL: 5}",
        ),
        frec(
            "fallback",
            "{name: fb.example.internal, type: CNAME, values: [a.example.internal], whenAllUnhealthy: Fallback, fallbackValues: [b.example.internal], degradedTTL: 0}",
        ),
        frec(
            "weighted-zero",
            "{name: api.example.internal, type: A, routingPolicy: Weighted, setIdentifier: zero, weight: 0, values: [192.0.2.10]}",
        ),
        frec(
            "weighted-max",
            &format!(
                "{{name: api.example.internal, type: A, routingPolicy: Weighted, setIdentifier: {sixty_four}{sixty_four}, weight: 255, healthCheckName: http-ip, values: [192.0.2.11]}}"
            ),
        ),
        frec(
            "failover-primary",
            "{name: www.example.internal, type: A, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: https-fqdn, values: [192.0.2.20]}",
        ),
        frec(
            "failover-secondary",
            "{name: www.example.internal, type: A, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, aliasTarget: {name: api.example.internal, evaluateTargetHealth: true}}",
        ),
        frec(
            "multivalue",
            "{name: mv.example.internal, type: AAAA, routingPolicy: MultiValue, setIdentifier: one, values: ['2001:db8::1']}",
        ),
        frec(
            "apex-alias",
            "{name: example.internal, type: A, aliasTarget: {name: www.example.internal}}",
        ),
        frec("cname", "{name: app.example.internal, type: CNAME, values: [www.example.internal.]}"),
        frec("mx", "{name: example.internal, type: MX, values: ['10 mail.example.internal.']}"),
        // null is absent, for CEL's has() as for serde's Option.
        frec(
            "nulls",
            "{name: nulls.example.internal, type: A, setIdentifier: null, weight: null, failover: null, aliasTarget: null, values: [192.0.2.3]}",
        ),
    ];
    // What only cluster mode serves: Services as targets (serviceRef), data from a
    // Service, an Ingress or a Gateway (valuesFrom); with the field standalone refuses.
    let cluster_docs = [
        // HealthChecks: a Service's endpoints; TCP needs no port, serviceRef.port may be
        // left out or given by name or number.
        (hc("ep", "{type: Endpoints, serviceRef: {name: web}}"), "spec.serviceRef"),
        (
            hc(
                "ep-max",
                "{type: Endpoints, serviceRef: {name: web-v2}, minHealthyEndpoints: 10000, inverted: true}",
            ),
            "spec.serviceRef",
        ),
        (hc("tcp-ref", "{type: TCP, serviceRef: {name: db}}"), "spec.serviceRef"),
        (hc("tcp-ref-port", "{type: TCP, serviceRef: {name: db, port: 5432}}"), "spec.serviceRef"),
        (
            hc(
                "https-ref-named",
                "{type: HTTPS, serviceRef: {name: web, port: https}, resourcePath: /healthz, searchString: ok, minHealthyEndpoints: 2, minCertificateValidity: 168h}",
            ),
            "spec.serviceRef",
        ),
        (
            hc(
                "http-ref",
                "{type: HTTP, serviceRef: {name: web}, minHealthyEndpoints: 1, failureThreshold: 1, healthyThreshold: 5, expectedStatuses: ['200-204'], headers: {X-Probe: 'yes'}}",
            ),
            "spec.serviceRef",
        ),
        // GRPC needs no port with a serviceRef: the slice's port is probed.
        (
            hc(
                "grpc-ref",
                "{type: GRPC, serviceRef: {name: api, port: grpc}, grpcService: app.Api, tls: true}",
            ),
            "spec.serviceRef",
        ),
        (hc("grpc-ref-one-port", "{type: GRPC, serviceRef: {name: api}}"), "spec.serviceRef"),
        // FailoverRecords: valuesFrom for A, AAAA and CNAME, under every policy.
        (
            frec(
                "from-svc",
                "{name: svc.example.internal, type: A, valuesFrom: {service: {name: web}}}",
            ),
            "spec.valuesFrom",
        ),
        (
            frec(
                "from-svc-endpoints",
                "{name: svc.example.internal, type: AAAA, valuesFrom: {service: {name: web, address: Endpoints}}}",
            ),
            "spec.valuesFrom",
        ),
        (
            frec(
                "from-lb-primary",
                "{name: lb.example.internal, type: A, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: ep, valuesFrom: {service: {name: web, address: LoadBalancer}, evaluateTargetHealth: true}}",
            ),
            "spec.valuesFrom",
        ),
        (
            frec(
                "from-clusterip-secondary",
                "{name: lb.example.internal, type: A, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, valuesFrom: {service: {name: web-dr, address: ClusterIP}}}",
            ),
            "spec.valuesFrom",
        ),
        (
            frec(
                "from-external-name",
                "{name: ext.example.internal, type: CNAME, valuesFrom: {service: {name: external}}}",
            ),
            "spec.valuesFrom",
        ),
        (
            frec(
                "from-ingress",
                "{name: ing.example.internal, type: A, routingPolicy: Weighted, setIdentifier: blue, weight: 10, valuesFrom: {ingress: {name: web}, evaluateTargetHealth: false}}",
            ),
            "spec.valuesFrom",
        ),
        (
            frec(
                "from-gateway",
                "{name: gw.example.internal, type: CNAME, valuesFrom: {gateway: {name: gw}}}",
            ),
            "spec.valuesFrom",
        ),
        (
            frec(
                "from-gateway-multivalue",
                "{name: mvgw.example.internal, type: A, routingPolicy: MultiValue, setIdentifier: one, valuesFrom: {gateway: {name: gw}}}",
            ),
            "spec.valuesFrom",
        ),
        (
            frec(
                "from-nulls",
                "{name: nulls2.example.internal, type: A, values: null, aliasTarget: null, valuesFrom: {service: {name: web, address: null}, ingress: null, gateway: null}}",
            ),
            "spec.valuesFrom",
        ),
    ];
    let yaml = docs.concat();
    let cluster_yaml: String = cluster_docs.iter().map(|(doc, _)| doc.as_str()).collect();

    let cp = ControlPlane::start();
    let out = cp.apply(&yaml);
    assert!(out.status.success(), "kubectl apply of the valid variants: {}", text(&out.stderr));
    let out = cp.apply(&cluster_yaml);
    assert!(
        out.status.success(),
        "kubectl apply of the cluster-mode variants: {}",
        text(&out.stderr)
    );
    let out = cp.kubectl(&["get", "hc,frec", "-o", "name"]);
    let stored = text(&out.stdout);
    assert_eq!(
        stored.lines().count(),
        docs.len() + cluster_docs.len(),
        "every variant is stored:\n{stored}"
    );
    // serviceRef.port keeps its kind (int or string), and what the API server stores
    // reads back as written.
    let port = |name: &str| {
        let out = cp.kubectl(&["get", "hc", name, "-o", "jsonpath={.spec.serviceRef.port}"]);
        text(&out.stdout)
    };
    assert_eq!(port("tcp-ref-port"), "5432");
    assert_eq!(port("https-ref-named"), "https");
    assert_eq!(port("tcp-ref"), "");
    // The status of a serviceRef check counts its endpoints.
    let status = r#"{"status":{"healthy":true,"endpoints":{"ready":3,"healthy":2}}}"#;
    let out =
        cp.kubectl(&["patch", "hc", "ep", "--subresource=status", "--type=merge", "-p", status]);
    assert!(out.status.success(), "status patch: {}", text(&out.stderr));
    let out = cp.kubectl(&[
        "get",
        "hc",
        "ep",
        "-o",
        "jsonpath={.status.endpoints.ready}/{.status.endpoints.healthy}",
    ]);
    assert_eq!(text(&out.stdout), "3/2", "status.endpoints is in the schema (not pruned)");
    for (kind, name) in [("hc", "https-ref-named"), ("frec", "from-lb-primary")] {
        let out = cp.kubectl(&["get", kind, name, "-o", "json"]);
        assert!(out.status.success(), "get {kind} {name}: {}", text(&out.stderr));
        let (checks, records) = inputs_of("case.yaml", &cluster_yaml);
        if kind == "hc" {
            let stored: HealthCheck = serde_json::from_slice(&out.stdout).unwrap();
            let written = checks.iter().find(|c| c.id.name.as_ref() == name).unwrap();
            assert_eq!(stored.spec, written.spec, "HealthCheck {name} round-trips");
        } else {
            let stored: FailoverRecord = serde_json::from_slice(&out.stdout).unwrap();
            let written = records.iter().find(|r| r.id.name.as_ref() == name).unwrap();
            assert_eq!(stored.spec, written.spec, "FailoverRecord {name} round-trips");
        }
    }
    let out = cp.kubectl(&[
        "get",
        "frec",
        "weighted-max",
        "-o",
        "jsonpath={.spec.weight}/{.spec.setIdentifier}",
    ]);
    assert_eq!(text(&out.stdout), format!("255/{sixty_four}{sixty_four}"));

    // The controller's own validation agrees with the API server.
    let rust = standalone_errors(&yaml);
    assert!(rust.is_empty(), "standalone validation accepts every variant: {rust:?}");
    let rust = rust_errors(&format!("{yaml}{cluster_yaml}"));
    assert!(rust.is_empty(), "cluster-mode validation accepts every variant: {rust:?}");
    for (doc, field) in &cluster_docs {
        let rust = standalone_errors(doc);
        assert!(
            rust.iter().any(|(_, f, m)| f == field && m.contains("cluster mode")),
            "standalone mode refuses {field} (cluster mode only), naming it: {rust:?}\n{doc}"
        );
    }
}
