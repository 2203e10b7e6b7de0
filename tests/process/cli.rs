//! `failover-dns check` (manifests validated offline as the server validates them) and
//! `failover-dns explain` (a running server's decision path), run as a user runs them.

use std::process::{Command, Output};

use crate::support::Binary;
use hickory_proto::rr::RecordType;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_failover-dns")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

#[test]
fn check_passes_the_examples_and_names_every_problem_with_file_document_and_field() {
    let out = run(&["check", "--manifests", EXAMPLES, "--zone", "example.internal"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("0 error(s)"), "{}", text(&out.stderr));

    let dir = tempfile::tempdir().unwrap();
    let head = "apiVersion: failoverdns.io/v1alpha1";
    let typo = format!(
        "{head}\nkind: HealthCheck\nmetadata: {{name: web}}\nspec: {{type: HTTP, ipAddress: 192.0.2.1, requestIntervall: 200ms}}\n---\n{head}\nkind: FailoverRecord\nmetadata: {{name: t}}\nspec: {{name: t.example.test, type: A, ttl: soon, values: [192.0.2.8]}}\n"
    );
    let invalid = format!(
        "# records\n---\n{head}\nkind: FailoverRecord\nmetadata: {{name: ok}}\nspec: {{name: ok.example.test, type: A, values: [192.0.2.8], healthCheckName: nope}}\n---\n{head}\nkind: FailoverRecord\nmetadata: {{name: heavy}}\nspec: {{name: w.example.test, type: A, routingPolicy: Weighted, setIdentifier: x, weight: 300, values: [192.0.2.8]}}\n"
    );
    std::fs::write(dir.path().join("typo.yaml"), typo).unwrap();
    std::fs::write(dir.path().join("invalid.yaml"), invalid).unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let out = run(&["check", "--manifests", dir_arg, "--zone", "example.test"]);
    assert_eq!(out.status.code(), Some(1), "errors fail the check");
    let stdout = text(&out.stdout);
    let typo_path = dir.path().join("typo.yaml").display().to_string();
    let invalid_path = dir.path().join("invalid.yaml").display().to_string();
    for line in [
        format!(
            "error: {typo_path}: document 1: HealthCheck web: unknown field \"spec.requestIntervall\""
        ),
        format!("error: {typo_path}: document 2: FailoverRecord t: spec.ttl: "),
        format!("error: {invalid_path}: document 2: FailoverRecord default/heavy: spec.weight: "),
        format!(
            "warning: {invalid_path}: document 1: FailoverRecord default/ok: spec.healthCheckName: "
        ),
    ] {
        assert!(stdout.lines().any(|l| l.starts_with(&line)), "{line:?} in:\n{stdout}");
    }
    assert!(text(&out.stderr).contains("3 error(s), 1 warning(s)"), "{}", text(&out.stderr));

    // JSON for tools.
    let out = run(&["check", "--manifests", dir_arg, "--zone", "example.test", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["errors"], 3);
    let weight = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "spec.weight")
        .expect("the weight finding");
    assert_eq!(weight["document"], 2);
    assert_eq!(weight["object"], "FailoverRecord default/heavy");
}

#[test]
fn check_refuses_cluster_only_fields_unless_asked_to_check_for_a_cluster() {
    let services = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cluster/services.yaml");
    let out = run(&["check", "--manifests", services, "--zone", "apps.internal"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains(": spec.serviceRef: "), "{}", text(&out.stdout));
    let out = run(&["check", "--cluster", "--manifests", services, "--zone", "apps.internal"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn explain_shows_a_running_servers_decision() {
    let bin = Binary::start(&["--manifests", EXAMPLES, "--zone", "example.internal"]);
    // Nothing listens on the primary's check port: the SECONDARY takes over.
    bin.wait_until(
        || bin.answers("www.example.internal.", RecordType::A) == ["192.0.2.20"],
        "the SECONDARY",
    );
    let admin = format!("http://{}", bin.admin);
    let out = run(&["explain", "www.example.internal", "--admin", &admin]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for part in [
        "answer: NOERROR",
        "192.0.2.20",
        "the PRIMARY is unhealthy and the SECONDARY is healthy",
        "default/www-primary",
        "default/web-primary: unhealthy, ConnectionRefused",
    ] {
        assert!(stdout.contains(part), "{part:?} in:\n{stdout}");
    }
    let out = run(&["explain", "api.example.internal", "AAAA", "--admin", &admin, "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((json["type"].as_str(), json["rcode"].as_str()), (Some("AAAA"), Some("NOERROR")));

    // A bad type is the server's error, shown; an unreachable server says what to do.
    let out = run(&["explain", "www.example.internal", "BOGUS", "--admin", &admin]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("400"), "{}", text(&out.stderr));
    drop(bin);
    let out = run(&["explain", "www.example.internal", "--admin", &admin, "--timeout", "1s"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot reach the admin endpoint"), "{}", text(&out.stderr));
}
