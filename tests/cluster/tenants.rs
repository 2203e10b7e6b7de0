//! Several teams, one zone, against a real API server: a name belongs to one
//! namespace, and NameDelegations say which namespaces may serve which names. The
//! squatter, the thief and the hijacker are turned away while the owner keeps
//! answering.

use std::time::Duration;

use crate::cluster::{apply, condition, frec, kubectl, object};
use crate::support::cluster::ControlPlane;
use crate::support::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

fn controller(cp: &ControlPlane, extra: &[&str]) -> Binary {
    let mut args = vec!["--zone", "example.test", "--checker-quorum", "0"];
    args.extend_from_slice(extra);
    Binary::start_with_env(&args, &[("KUBECONFIG", cp.kubeconfig_path().as_os_str())])
}

fn accepted(cp: &ControlPlane, ns: &str, name: &str) -> (String, String, String) {
    let o = object(cp, "frec", ns, name);
    let c = condition(&o, "Accepted");
    let s = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
    (s("status"), s("reason"), s("message"))
}

fn warning_rejected(cp: &ControlPlane, ns: &str, name: &str) -> bool {
    let out = cp.kubectl(&["get", "events", "-n", ns, "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list["items"].as_array().into_iter().flatten().any(|e| {
        e["regarding"]["name"] == name || e["involvedObject"]["name"] == name
    } && e["reason"] == "Rejected"
        && e["type"] == "Warning")
}

fn namespaces(cp: &ControlPlane, names: &[&str]) {
    for ns in names {
        kubectl(cp, &["create", "namespace", ns]);
    }
}

#[test]
fn another_namespace_cannot_squat_steal_or_hijack_an_owned_name() {
    let cp = ControlPlane::start();
    namespaces(&cp, &["team-a", "team-b"]);
    let bin = controller(&cp, &[]);
    apply(
        &cp,
        &(frec(
            "team-a",
            "www",
            r#"{name: www.example.test, type: A, ttl: 5, values: ["192.0.2.1"]}"#,
        ) + &frec(
            "team-a",
            "shop",
            r#"{name: shop.example.test, type: A, ttl: 5, routingPolicy: Weighted, setIdentifier: a, weight: 1, values: ["192.0.2.2"]}"#,
        ) + &frec(
            "team-a",
            "pay",
            r#"{name: pay.example.test, type: A, ttl: 5, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, values: ["192.0.2.3"]}"#,
        )),
    );
    bin.wait_until(|| bin.answers("pay.example.test.", RecordType::A) == ["192.0.2.3"], "team-a");
    apply(
        &cp,
        &(frec(
            "team-b",
            "squat",
            r#"{name: www.example.test, type: TXT, ttl: 5, values: ["\"mine\""]}"#,
        ) + &frec(
            "team-b",
            "evil",
            r#"{name: shop.example.test, type: A, ttl: 5, routingPolicy: Weighted, setIdentifier: evil, weight: 255, values: ["6.6.6.6"]}"#,
        ) + &frec(
            "team-b",
            "hijack",
            r#"{name: pay.example.test, type: A, ttl: 5, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["6.6.6.6"]}"#,
        )),
    );
    for name in ["squat", "evil", "hijack"] {
        bin.wait_until(|| accepted(&cp, "team-b", name).1 == "NameOwnedElsewhere", name);
        let (status, _, message) = accepted(&cp, "team-b", name);
        assert_eq!(status, "False");
        assert!(message.contains("belongs to namespace team-a"), "{message}");
        bin.wait_until(|| warning_rejected(&cp, "team-b", name), "a Warning Event Rejected");
    }
    for _ in 0..50 {
        assert_eq!(bin.answers("shop.example.test.", RecordType::A), ["192.0.2.2"], "no theft");
    }
    assert!(bin.answers("www.example.test.", RecordType::TXT).is_empty(), "no squatting");
    assert_eq!(bin.answers("pay.example.test.", RecordType::A), ["192.0.2.3"]);
    assert_eq!(accepted(&cp, "team-a", "shop").0, "True");
}

fn delegation(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: NameDelegation\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

#[test]
fn delegations_allow_exactly_what_they_name_and_let_namespaces_share() {
    let cp = ControlPlane::start();
    namespaces(&cp, &["team-a", "team-b", "team-c"]);
    apply(
        &cp,
        &(delegation("shop", r#"{names: ["*.shop.example.test"], namespaces: [team-a, team-b]}"#)
            + &delegation(
                "pay",
                r#"{names: [pay.example.test], namespaceSelector: {matchLabels: {tenant: payments}}}"#,
            )),
    );
    let bin = controller(&cp, &[]);
    let weighted = |ns: &str, id: &str, ip: &str| {
        frec(
            ns,
            &format!("www-{id}"),
            &format!(
                r#"{{name: www.shop.example.test, type: A, ttl: 5, routingPolicy: Weighted, setIdentifier: {id}, weight: 1, values: ["{ip}"]}}"#
            ),
        )
    };
    apply(
        &cp,
        &(weighted("team-a", "a", "192.0.2.1")
            + &weighted("team-b", "b", "192.0.2.2")
            + &weighted("team-c", "c", "6.6.6.6")
            + &frec(
                "team-a",
                "api",
                r#"{name: api.example.test, type: A, ttl: 5, values: ["192.0.2.9"]}"#,
            )
            + &frec(
                "team-c",
                "pay",
                r#"{name: pay.example.test, type: A, ttl: 5, values: ["192.0.2.7"]}"#,
            )),
    );
    // team-a and team-b share the delegated name; team-c is not delegated for it.
    bin.wait_until(
        || {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..40 {
                seen.extend(bin.answers("www.shop.example.test.", RecordType::A));
            }
            seen.into_iter().collect::<Vec<_>>() == ["192.0.2.1", "192.0.2.2"]
        },
        "both delegated namespaces answer, team-c never",
    );
    bin.wait_until(|| accepted(&cp, "team-c", "www-c").1 == "NotDelegated", "team-c refused");
    // With delegations in place, a name nobody delegated is served by nobody.
    assert_eq!(bin.answers("api.example.test.", RecordType::A), Vec::<String>::new());
    bin.wait_until(|| accepted(&cp, "team-a", "api").1 == "NotDelegated", "api refused");
    assert!(accepted(&cp, "team-a", "api").2.contains("api.example.test"));

    // The label selector follows the namespace's labels, at once.
    assert_eq!(rcode(&bin, "pay.example.test."), ResponseCode::NXDomain);
    kubectl(&cp, &["label", "namespace", "team-c", "tenant=payments"]);
    bin.wait_until(|| bin.answers("pay.example.test.", RecordType::A) == ["192.0.2.7"], "selected");
    kubectl(&cp, &["label", "namespace", "team-c", "tenant-"]);
    bin.wait_until(|| rcode(&bin, "pay.example.test.") == ResponseCode::NXDomain, "unselected");

    // Deleting every delegation (and without --require-delegation): any namespace may
    // claim an unowned name again.
    kubectl(&cp, &["delete", "namedelegations", "--all"]);
    bin.wait_until(|| bin.answers("api.example.test.", RecordType::A) == ["192.0.2.9"], "api");
}

fn rcode(bin: &Binary, name: &str) -> ResponseCode {
    resolve(bin.dns, name, RecordType::A).metadata.response_code
}

#[test]
fn require_delegation_serves_nothing_undelegated_even_before_any_delegation_exists() {
    let cp = ControlPlane::start();
    namespaces(&cp, &["team-a"]);
    apply(
        &cp,
        &frec(
            "team-a",
            "www",
            r#"{name: www.example.test, type: A, ttl: 5, values: ["192.0.2.1"]}"#,
        ),
    );
    let bin = controller(&cp, &["--require-delegation"]);
    // Served from the first answer on: never a moment with the record served.
    assert_eq!(rcode(&bin, "www.example.test."), ResponseCode::NXDomain);
    bin.wait_until(|| accepted(&cp, "team-a", "www").1 == "NotDelegated", "NotDelegated");
    apply(&cp, &delegation("www", r#"{names: [www.example.test], namespaces: [team-a]}"#));
    bin.wait_for(
        Duration::from_secs(10),
        || bin.answers("www.example.test.", RecordType::A) == ["192.0.2.1"],
        "delegated",
    );
}
