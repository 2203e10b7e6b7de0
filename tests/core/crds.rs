//! The committed CRDs in crds/ must be what the binary generates.

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
    let yaml = failover_dns::crdgen::crds_yaml();
    let docs: Vec<serde_json::Value> = yaml
        .split("\n---\n")
        .filter_map(|d| serde_saphyr::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v.get("kind").is_some())
        .collect();
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
