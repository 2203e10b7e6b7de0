//! Health checks driving the answers end to end: the real binary, real HTTP/TCP/gRPC
//! targets on loopback, a real DNS client. Waits are bounded polls, never timing
//! assertions.

use crate::support::*;
use hickory_proto::rr::RecordType;

fn hc(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: failoverdns.io/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n"
    )
}

fn failover_pair(name: &str, primary_check: &str) -> String {
    record(
        &format!("{name}-p"),
        &format!(
            r#"{{name: {name}.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: {primary_check}, values: ["192.0.2.1"]}}"#
        ),
    ) + &record(
        &format!("{name}-s"),
        &format!(
            r#"{{name: {name}.example.test, type: A, ttl: 1, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}}"#
        ),
    )
}

fn serve(manifest: &str) -> (tempfile::TempDir, Binary) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), manifest).unwrap();
    let bin =
        Binary::start(&["--manifests", dir.path().to_str().unwrap(), "--zone", "example.test"]);
    (dir, bin)
}

#[test]
fn killing_the_primary_moves_answers_to_the_secondary_and_back() {
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let addr = target.addr;
    let manifest = hc(
        "web",
        &format!(
            "{{type: HTTP, ipAddress: 127.0.0.1, port: {}, resourcePath: health, requestInterval: 200ms, failureThreshold: 2}}",
            addr.port()
        ),
    ) + &failover_pair("www", "web");
    let (_dir, bin) = serve(&manifest);
    let www = || bin.answers("www.example.test.", RecordType::A);
    assert_eq!(www(), ["192.0.2.1"]);
    // Let the check pass a few probes so it is healthy on its own account.
    bin.wait_until(
        || bin.status()["healthChecks"][0]["probe"]["consecutiveSuccesses"].as_u64() >= Some(2),
        "passing probes",
    );
    assert_eq!(www(), ["192.0.2.1"]);

    target.stop();
    bin.wait_until(|| www() == ["192.0.2.2"], "the SECONDARY after the primary died");
    let status = bin.status();
    let check = &status["healthChecks"][0];
    assert_eq!(check["healthy"], false);
    assert_eq!(check["probe"]["reason"], "ConnectionRefused");
    // The HealthCheck status, as cluster mode writes it.
    let hc_status = &check["status"];
    assert_eq!(hc_status["healthy"], false);
    assert_eq!(hc_status["conditions"][0]["type"], "Healthy");
    assert_eq!(hc_status["conditions"][0]["status"], "False");
    assert_eq!(hc_status["conditions"][0]["reason"], "ConnectionRefused");
    assert!(hc_status["consecutiveFailures"].as_u64() >= Some(2), "{hc_status}");
    assert_eq!(hc_status["consecutiveSuccesses"], 0);
    assert!(hc_status["lastProbeTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{hc_status}");
    assert!(hc_status["lastTransitionTime"].is_string(), "{hc_status}");
    assert!(hc_status["lastLatencyMs"].is_number(), "{hc_status}");
    let (_, metrics) = http_get(bin.admin, "/metrics");
    assert!(metrics.contains("failoverdns_"), "prober metrics exported");

    let _target = HttpTarget::start(addr);
    bin.wait_until(|| www() == ["192.0.2.1"], "the PRIMARY after it came back");
    assert!(bin.logs().contains("web"), "transitions are logged with the check's name");
}

#[test]
fn calculated_checks_follow_their_children() {
    let a = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let b = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let tcp = |name: &str, port: u16| {
        hc(
            name,
            &format!(
                "{{type: TCP, ipAddress: 127.0.0.1, port: {port}, requestInterval: 200ms, failureThreshold: 1}}"
            ),
        )
    };
    let manifest = tcp("a", a.addr.port())
        + &tcp("b", b.addr.port())
        + &hc("both", "{type: Calculated, childHealthChecks: [a, b], healthThreshold: 2}")
        + &hc("any", "{type: Calculated, childHealthChecks: [a, b], healthThreshold: 1}")
        + &failover_pair("both", "both")
        + &failover_pair("any", "any");
    let (_dir, bin) = serve(&manifest);
    assert_eq!(bin.answers("both.example.test.", RecordType::A), ["192.0.2.1"]);
    b.stop();
    bin.wait_until(
        || bin.answers("both.example.test.", RecordType::A) == ["192.0.2.2"],
        "2-of-2 to fail with one child down",
    );
    assert_eq!(
        bin.answers("any.example.test.", RecordType::A),
        ["192.0.2.1"],
        "1-of-2 still healthy"
    );
    let status = bin.status();
    let both =
        status["healthChecks"].as_array().unwrap().iter().find(|c| c["name"] == "both").unwrap();
    assert_eq!(both["status"]["healthy"], false);
    assert_eq!(both["status"]["conditions"][0]["reason"], "HealthThresholdNotMet");
    assert_eq!(
        both["status"]["conditions"][0]["message"],
        "1 of 2 children healthy, healthThreshold 2"
    );
    a.stop();
    bin.wait_until(
        || bin.answers("any.example.test.", RecordType::A) == ["192.0.2.2"],
        "1-of-2 to fail with both down",
    );
}

#[test]
fn inverted_checks_report_the_opposite() {
    let closed = free_port();
    let manifest = hc(
        "inv",
        &format!(
            "{{type: TCP, ipAddress: 127.0.0.1, port: {closed}, inverted: true, requestInterval: 200ms, failureThreshold: 1}}"
        ),
    ) + &failover_pair("inv", "inv");
    let (_dir, bin) = serve(&manifest);
    // A refused connection, inverted, is a success: the PRIMARY answers.
    bin.wait_until(
        || bin.answers("inv.example.test.", RecordType::A) == ["192.0.2.1"],
        "the inverted check to pass",
    );
    // Something starts listening: inverted, that is a failure.
    let _target = HttpTarget::start(format!("127.0.0.1:{closed}").parse().unwrap());
    bin.wait_until(
        || bin.answers("inv.example.test.", RecordType::A) == ["192.0.2.2"],
        "the inverted check to fail",
    );
}

#[test]
fn a_grpc_check_moves_the_answer_while_its_service_is_not_serving() {
    use crate::support::grpc::GrpcTarget;
    use tonic_health::ServingStatus;

    let target = GrpcTarget::start();
    target.set("app.Api", ServingStatus::Serving);
    let manifest = hc(
        "api",
        &format!(
            "{{type: GRPC, ipAddress: 127.0.0.1, port: {}, grpcService: app.Api, requestInterval: 200ms, failureThreshold: 2}}",
            target.addr.port()
        ),
    ) + &failover_pair("grpc", "api");
    let (_dir, bin) = serve(&manifest);
    let answer = || bin.answers("grpc.example.test.", RecordType::A);
    bin.wait_until(
        || bin.status()["healthChecks"][0]["probe"]["consecutiveSuccesses"].as_u64() >= Some(2),
        "passing GRPC probes",
    );
    assert_eq!(bin.status()["healthChecks"][0]["probe"]["reason"], "Serving");
    assert_eq!(answer(), ["192.0.2.1"]);

    target.set("app.Api", ServingStatus::NotServing);
    bin.wait_until(|| answer() == ["192.0.2.2"], "the SECONDARY while app.Api is NOT_SERVING");
    let status = bin.status();
    let check = &status["healthChecks"][0]["status"];
    assert_eq!(check["healthy"], false);
    assert_eq!(check["conditions"][0]["reason"], "NotServing");
    let message = check["conditions"][0]["message"].as_str().unwrap();
    assert!(message.contains("NOT_SERVING") && message.contains("app.Api"), "{message}");
    let (_, metrics) = http_get(bin.admin, "/metrics");
    assert!(
        metrics.contains(r#"failoverdns_probe_results_total{type="grpc",reason="NotServing"}"#),
        "GRPC results are counted by reason"
    );

    target.set("app.Api", ServingStatus::Serving);
    bin.wait_until(|| answer() == ["192.0.2.1"], "the PRIMARY once app.Api serves again");
}
