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

/// `expectedStatuses` through the real binary: a primary whose target answers 404 is
/// served while 404 is expected, and loses to its secondary on a 500; the same target
/// without `expectedStatuses` is unhealthy on the 404.
#[test]
fn expected_statuses_decide_which_record_answers() {
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    target.set_status(404);
    let port = target.addr.port();
    let manifest = hc(
        "codes",
        &format!(
            "{{type: HTTP, ipAddress: 127.0.0.1, port: {port}, requestInterval: 200ms, failureThreshold: 1, expectedStatuses: ['200-299', '404']}}"
        ),
    ) + &hc(
        "plain",
        &format!(
            "{{type: HTTP, ipAddress: 127.0.0.1, port: {port}, requestInterval: 200ms, failureThreshold: 1}}"
        ),
    ) + &failover_pair("www", "codes")
        + &failover_pair("old", "plain");
    let (_dir, bin) = serve(&manifest);
    let www = || bin.answers("www.example.test.", RecordType::A);
    let old = || bin.answers("old.example.test.", RecordType::A);
    let check = |name: &str| {
        let status = bin.status();
        let checks = status["healthChecks"].as_array().unwrap().clone();
        checks.into_iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{status}"))
    };
    bin.wait_until(
        || old() == ["192.0.2.2"],
        "the SECONDARY of the check without expectedStatuses",
    );
    assert_eq!(check("plain")["probe"]["reason"], "StatusCode404");
    bin.wait_until(
        || check("codes")["probe"]["consecutiveSuccesses"].as_u64() >= Some(2),
        "the 404 passing",
    );
    assert_eq!(check("codes")["probe"]["reason"], "StatusCode404");
    assert_eq!(www(), ["192.0.2.1"], "the PRIMARY while its 404 is expected");

    target.set_status(500);
    bin.wait_until(|| www() == ["192.0.2.2"], "the SECONDARY on a 500");
    let codes = check("codes");
    assert_eq!(codes["probe"]["reason"], "StatusCode500");
    let message = codes["status"]["conditions"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("200-299, 404"), "{codes}");

    target.set_status(404);
    bin.wait_until(|| www() == ["192.0.2.1"], "the PRIMARY on a 404 again");
    assert_eq!(old(), ["192.0.2.2"]);
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

/// Answer policies beyond Route 53 (spec section 8) through the real binary and a
/// real DNS client: FailClosed answers NODATA with the SOA while every member is
/// down, Fallback its fallbackValues, and a SECONDARY serving for its PRIMARY carries
/// its degradedTTL; the PRIMARY its own TTL once it is back.
#[test]
fn when_all_unhealthy_and_degraded_ttl_shape_the_answers() {
    let target = HttpTarget::start("127.0.0.1:0".parse().unwrap());
    let port = target.addr.port();
    let check = |name: &str| {
        hc(
            name,
            &format!(
                "{{type: HTTP, ipAddress: 127.0.0.1, port: {port}, resourcePath: health, requestInterval: 200ms, failureThreshold: 1}}"
            ),
        )
    };
    let pair = |name: &str, policy: &str| {
        record(
            &format!("{name}-p"),
            &format!(
                r#"{{name: {name}.example.test, type: A, ttl: 300, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: up, values: ["192.0.2.1"]{policy}}}"#
            ),
        ) + &record(
            &format!("{name}-s"),
            &format!(
                r#"{{name: {name}.example.test, type: A, ttl: 300, degradedTTL: 7, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, healthCheckName: up, values: ["192.0.2.2"]}}"#
            ),
        )
    };
    let manifest = check("up")
        + &pair("closed", ", whenAllUnhealthy: FailClosed")
        + &pair(
            "fb",
            r#", whenAllUnhealthy: Fallback, fallbackValues: ["198.51.100.1"], degradedTTL: 9"#,
        )
        + &record(
            "deg-p",
            r#"{name: deg.example.test, type: A, ttl: 300, routingPolicy: Failover, setIdentifier: p, failover: PRIMARY, healthCheckName: up, values: ["192.0.2.1"]}"#,
        )
        + &record(
            "deg-s",
            r#"{name: deg.example.test, type: A, ttl: 300, degradedTTL: 7, routingPolicy: Failover, setIdentifier: s, failover: SECONDARY, values: ["192.0.2.2"]}"#,
        );
    let (_dir, bin) = serve(&manifest);
    let a = |name: &str| resolve(bin.dns, name, RecordType::A);
    let ttl_of = |name: &str| a(name).answers.first().map(|r| r.ttl);
    assert_eq!(bin.answers("closed.example.test.", RecordType::A), ["192.0.2.1"]);
    assert_eq!(ttl_of("deg.example.test."), Some(300), "the PRIMARY's own TTL");

    target.stop();
    bin.wait_until(
        || bin.answers("deg.example.test.", RecordType::A) == ["192.0.2.2"],
        "the SECONDARY",
    );
    assert_eq!(ttl_of("deg.example.test."), Some(7), "the SECONDARY serves with its degradedTTL");
    bin.wait_until(|| a("closed.example.test.").answers.is_empty(), "FailClosed");
    let closed = a("closed.example.test.");
    assert_eq!(closed.metadata.response_code, hickory_proto::op::ResponseCode::NoError);
    assert!(
        closed.authorities.iter().any(|r| r.record_type() == RecordType::SOA),
        "NODATA carries the zone's SOA: {closed:?}"
    );
    bin.wait_until(
        || bin.answers("fb.example.test.", RecordType::A) == ["198.51.100.1"],
        "the fallback values",
    );
    assert_eq!(ttl_of("fb.example.test."), Some(9));
    // Each outcome counted once, for alerts on groups failing open or closed.
    let (_, metrics) = http_get(bin.admin, "/metrics");
    for outcome in ["degraded", "fail_closed", "fallback"] {
        let line = format!("failoverdns_answer_outcomes{{outcome=\"{outcome}\"}} 1");
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    // /explain names the policy that chose.
    let (_, explain) = http_get(bin.admin, "/explain?name=closed.example.test&type=A");
    assert!(explain.contains("FailClosed"), "{explain}");
    let (_, explain) = http_get(bin.admin, "/explain?name=deg.example.test&type=A");
    assert!(explain.contains(r#""ttl":7"#), "{explain}");

    let back = HttpTarget::start(format!("127.0.0.1:{port}").parse().unwrap());
    bin.wait_until(
        || bin.answers("deg.example.test.", RecordType::A) == ["192.0.2.1"],
        "the PRIMARY back",
    );
    assert_eq!(ttl_of("deg.example.test."), Some(300));
    assert_eq!(bin.answers("closed.example.test.", RecordType::A), ["192.0.2.1"]);
    drop(back);
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
