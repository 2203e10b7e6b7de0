//! The committed CRDs in crds/ must be what the binary generates, and carry the
//! contract's kinds and fields. (The CEL rules are exercised against a real API server
//! in tests/cluster/cluster_crds.rs.)

use serde_json::{Value, json};

fn crd_docs() -> Vec<Value> {
    failover_dns::crdgen::crds_yaml()
        .split("\n---\n")
        .filter_map(|d| serde_saphyr::from_str::<Value>(d).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

/// The openAPIV3Schema of `kind`.
fn schema(docs: &[Value], kind: &str) -> Value {
    let doc = docs.iter().find(|d| d["spec"]["names"]["kind"] == kind).expect(kind);
    doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn committed_crds_are_up_to_date() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_failover-dns"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/failoverdns.io.yaml"))
            .unwrap();
    assert!(
        generated == committed,
        "crds/failoverdns.io.yaml is stale: run `cargo run -- crds > crds/failoverdns.io.yaml`"
    );
}

#[test]
fn crds_carry_the_contract() {
    let docs = crd_docs();
    assert_eq!(docs.len(), 4);
    for (doc, kind, short) in [
        (&docs[0], "HealthCheck", "hc"),
        (&docs[1], "FailoverRecord", "frec"),
        (&docs[2], "CheckerReport", "crep"),
        (&docs[3], "NameDelegation", "nd"),
    ] {
        let spec = &doc["spec"];
        assert_eq!(spec["group"], "failoverdns.io");
        // Who may serve which names is for the whole cluster.
        let scope = if kind == "NameDelegation" { "Cluster" } else { "Namespaced" };
        assert_eq!(spec["scope"], scope);
        assert_eq!(spec["names"]["kind"], kind);
        assert_eq!(spec["names"]["shortNames"][0], short);
        let version = &spec["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        // A CheckerReport is all spec, written whole by its replica; a NameDelegation
        // is read only: neither has a status.
        assert_eq!(
            version["subresources"]["status"].is_object(),
            kind == "HealthCheck" || kind == "FailoverRecord",
            "{kind}'s status subresource"
        );
        assert!(version["additionalPrinterColumns"].as_array().is_some_and(|c| !c.is_empty()));
        let props = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        let fields: &[&str] = match kind {
            "HealthCheck" => &[
                "type",
                "ipAddress",
                "fqdn",
                "port",
                "resourcePath",
                "searchString",
                "requestInterval",
                "timeout",
                "failureThreshold",
                "inverted",
                "disabled",
                "childHealthChecks",
                "healthThreshold",
                "serviceRef",
                "minHealthyEndpoints",
            ],
            "FailoverRecord" => &[
                "name",
                "type",
                "ttl",
                "routingPolicy",
                "setIdentifier",
                "weight",
                "failover",
                "healthCheckName",
                "values",
                "aliasTarget",
                "valuesFrom",
            ],
            "NameDelegation" => &["names", "namespaces", "namespaceSelector"],
            _ => &[
                "checker",
                "namespaces",
                "renewTime",
                "ttlSeconds",
                "unhealthyCount",
                "pendingCount",
                "unhealthy",
                "pending",
                "compressed",
            ],
        };
        for f in fields {
            assert!(props.get(*f).is_some(), "{kind}.spec.{f} in the schema");
        }
    }
}

/// Kubernetes objects as targets and values (API spec section 7): the fields, their
/// types and the rules that keep them apart from addresses and record data.
#[test]
fn crds_carry_kubernetes_objects_as_targets_and_values() {
    let docs = crd_docs();
    let rules = |schema: &Value| -> Vec<(String, String)> {
        schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                (v["rule"].as_str().unwrap().to_string(), v["fieldPath"].as_str().unwrap().into())
            })
            .collect()
    };

    let hc = schema(&docs, "HealthCheck");
    let spec = &hc["properties"]["spec"];
    let types = spec["properties"]["type"]["enum"].as_array().unwrap();
    assert!(types.contains(&json!("Endpoints")), "type Endpoints: {types:?}");
    let service_ref = &spec["properties"]["serviceRef"];
    assert_eq!(service_ref["type"], "object");
    assert_eq!(service_ref["required"], json!(["name"]));
    assert_eq!(service_ref["properties"]["name"]["type"], "string");
    assert_eq!(service_ref["properties"]["name"]["minLength"], 1);
    let port = &service_ref["properties"]["port"];
    assert_eq!(port["x-kubernetes-int-or-string"], true, "serviceRef.port by name or number");
    let min = &spec["properties"]["minHealthyEndpoints"];
    assert_eq!(min["type"], "integer");
    assert_eq!(min["minimum"], 1.0);
    let endpoints = &hc["properties"]["status"]["properties"]["endpoints"];
    for count in ["ready", "healthy"] {
        assert_eq!(endpoints["properties"][count]["type"], "integer", "status.endpoints.{count}");
    }
    let hc_rules = rules(spec);
    for field in [".serviceRef", ".serviceRef.port", ".minHealthyEndpoints"] {
        assert!(hc_rules.iter().any(|(_, f)| f == field), "a rule about {field}: {hc_rules:?}");
    }
    for field in [".ipAddress", ".fqdn", ".port"] {
        assert!(
            hc_rules.iter().any(|(r, f)| f == field && r.contains("serviceRef")),
            "{field} and serviceRef exclude each other: {hc_rules:?}"
        );
    }

    let frec = schema(&docs, "FailoverRecord");
    let spec = &frec["properties"]["spec"];
    let from = &spec["properties"]["valuesFrom"];
    assert_eq!(from["type"], "object");
    let service = &from["properties"]["service"];
    assert_eq!(service["required"], json!(["name"]));
    assert_eq!(
        service["properties"]["address"]["enum"],
        json!(["ClusterIP", "LoadBalancer", "Endpoints"])
    );
    for kind in ["ingress", "gateway"] {
        let object = &from["properties"][kind];
        assert_eq!(object["required"], json!(["name"]), "valuesFrom.{kind}");
        assert_eq!(object["properties"]["name"]["type"], "string", "valuesFrom.{kind}.name");
    }
    assert_eq!(from["properties"]["evaluateTargetHealth"]["type"], "boolean");
    let from_rules = rules(from);
    assert!(
        from_rules
            .iter()
            .any(|(r, _)| ["service", "ingress", "gateway"].iter().all(|k| r.contains(k))),
        "exactly one of service, ingress and gateway: {from_rules:?}"
    );
    let frec_rules = rules(spec);
    assert!(
        frec_rules.iter().filter(|(r, _)| r.contains("valuesFrom")).count() >= 3,
        "values, aliasTarget and valuesFrom exclude each other; valuesFrom for A, AAAA, CNAME: {frec_rules:?}"
    );
}
