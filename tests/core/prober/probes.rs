//! HTTP, HTTPS and TCP probes: status codes, hangs, resets and closed ports, the Host
//! header, name resolution, SNI and untrusted certificates, the search string.

use super::*;

// ---------------------------------------------------------------- HTTP

#[tokio::test]
async fn http_status_codes_hang_and_closed_port() {
    let mut server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    let mut check = http_check("web", server.addr, "/health");
    check.timeout = Duration::from_secs(1);
    h.set(&[check]);

    let state = h.wait_reason("web", "StatusCode200").await;
    assert!(state.healthy);
    assert!(state.last_probe_time.is_some());
    let latency = state.latency.expect("a probed check has a latency");
    assert!(
        latency.connect_ms.is_some() && latency.first_byte_ms.is_some() && latency.tls_ms.is_none()
    );
    let seen = server.seen();
    assert_eq!(seen[0].path, "/health");
    assert_eq!(seen[0].user_agent.as_deref(), Some("failover-dns"));

    // 3xx passes and the redirect is not followed.
    server.set_mode(Mode::Status(301));
    h.wait_reason("web", "StatusCode301").await;
    h.assert_no_update();
    assert!(server.seen().iter().all(|s| s.path == "/health"), "a redirect was followed");

    server.set_mode(Mode::Status(503));
    let update = h.next_update().await;
    assert_update(&update, "web", false, "StatusCode503");
    assert!(update.health.message.contains("503"), "{}", update.health.message);
    assert!(update.health.last_transition_time.is_some());

    server.set_mode(Mode::Status(200));
    assert_update(&h.next_update().await, "web", true, "StatusCode200");

    server.set_mode(Mode::Hang);
    let update = h.next_update().await;
    assert_update(&update, "web", false, "Timeout");
    assert!(
        update.health.message.contains("waiting for the response"),
        "{}",
        update.health.message
    );

    server.set_mode(Mode::Status(200));
    assert_update(&h.next_update().await, "web", true, "StatusCode200");

    server.kill().await;
    assert_update(&h.next_update().await, "web", false, "ConnectionRefused");

    server.revive().await;
    assert_update(&h.next_update().await, "web", true, "StatusCode200");

    let probes =
        h.metric("failoverdns_probe_results_total{type=\"http\",reason=\"StatusCode200\"}");
    assert!(probes >= 3.0);
    assert_eq!(h.metric("failoverdns_health_check_transitions_total{healthy=\"false\"}"), 3.0);
    assert_eq!(h.metric("failoverdns_health_check_healthy{namespace=\"test\",name=\"web\"}"), 1.0);
}

/// `expectedStatuses` decides which statuses pass: a 404 can be healthy, a 2xx not.
#[tokio::test]
async fn expected_statuses_choose_the_passing_codes() {
    let server = TestServer::http(Mode::Status(404)).await;
    let mut h = Harness::new();
    let spec = HealthCheckSpec {
        type_: HealthCheckType::Http,
        ip_address: Some("127.0.0.1".into()),
        port: Some(i64::from(server.addr.port())),
        expected_statuses: Some(vec!["200-299".into(), "404".into()]),
        ..HealthCheckSpec::default()
    };
    h.set(&[validated_check("codes", spec)]);
    let state = h.wait_reason("codes", "StatusCode404").await;
    assert!(state.healthy && state.consecutive_successes >= 1, "{state:?}");
    h.assert_no_update();

    server.set_mode(Mode::Status(500));
    let down = h.next_update().await;
    assert_update(&down, "codes", false, "StatusCode500");
    let message = &down.health.message;
    assert!(message.contains("500") && message.contains("200-299, 404"), "{message}");

    server.set_mode(Mode::Status(204));
    assert_update(&h.next_update().await, "codes", true, "StatusCode204");

    // A 3xx passes by default but not here.
    server.set_mode(Mode::Status(302));
    assert_update(&h.next_update().await, "codes", false, "StatusCode302");
}

/// `headers` go out with every probe, as the target sees them (it echoes them into the
/// body, where the search string finds them); a User-Agent given replaces the probe's.
#[tokio::test]
async fn extra_headers_reach_the_target() {
    let server = TestServer::http(Mode::Echo).await;
    let mut h = Harness::new();
    let headers = [("X-Probe-Token", "s3cret value"), ("User-Agent", "my-probe/1.0")];
    let spec = |search: &str| HealthCheckSpec {
        type_: HealthCheckType::Http,
        ip_address: Some("127.0.0.1".into()),
        port: Some(i64::from(server.addr.port())),
        headers: Some(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()),
        search_string: Some(search.into()),
        ..HealthCheckSpec::default()
    };
    h.set(&[
        validated_check("echoed", spec("x-probe-token: s3cret value")),
        validated_check("not-sent", spec("x-other: s3cret value")),
    ]);
    let state = h.wait_reason("echoed", "StatusCode200").await;
    assert!(state.healthy, "{state:?}");
    let update = h.next_update().await;
    assert_update(&update, "not-sent", false, "SearchStringNotFound");
    let seen = server.seen();
    assert!(!seen.is_empty());
    for request in &seen {
        let count = |name: &str| request.headers.iter().filter(|(n, _)| n == name).count();
        assert!(
            request.headers.contains(&("x-probe-token".into(), "s3cret value".into())),
            "{request:?}"
        );
        assert_eq!(request.user_agent.as_deref(), Some("my-probe/1.0"), "{request:?}");
        assert_eq!((count("user-agent"), count("host")), (1, 1), "{request:?}");
    }
}

/// A probe ends its connection with a reset once the response is in: the target
/// is left with no FIN exchange to finish and no TIME_WAIT state per probe.
#[tokio::test]
async fn a_probe_connection_is_closed_with_a_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = Harness::new();
    h.set(&[http_check("reset", listener.local_addr().unwrap(), "/")]);

    let (mut stream, _) = timeout(SOON, listener.accept()).await.expect("no probe").unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the probe closed before its request was sent");
        request.extend_from_slice(&buf[..n]);
    }
    // The server keeps its side open: only the prober ends the connection.
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.unwrap();
    h.wait_reason("reset", "StatusCode200").await;
    let end =
        timeout(SOON, stream.read(&mut buf)).await.expect("the probe left its connection open");
    match end {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("the probe closed its connection with a FIN (read {n} bytes), not a reset"),
    }
}

#[tokio::test]
async fn host_header_comes_from_the_model() {
    let server = TestServer::http(Mode::Status(200)).await;
    let spec = |port: Option<u16>| HealthCheckSpec {
        type_: HealthCheckType::Http,
        ip_address: Some("127.0.0.1".into()),
        fqdn: Some("app.example.test".into()),
        port: port.map(i64::from),
        ..HealthCheckSpec::default()
    };
    let input =
        |name: &str, spec| Input { id: id(name), seq: 0, file: None, generation: None, spec };
    let model = model::validate(
        &[],
        &[input("default-port", spec(None)), input("other-port", spec(Some(server.addr.port())))],
        &[],
    );
    assert!(model.problems.is_empty(), "{:?}", model.problems);
    let mut default_port = (*model.checks[&id("default-port")]).clone();
    // Port 80 cannot be bound here: probe the test server, keep the header the model built for port 80.
    if let Probe::Http { port, .. } = &mut default_port.probe {
        *port = server.addr.port();
    }
    let mut other_port = (*model.checks[&id("other-port")]).clone();
    default_port.interval = Duration::from_millis(200);
    other_port.interval = Duration::from_millis(200);

    let h = Harness::new();
    h.set(&[default_port, other_port]);
    h.wait_reason("default-port", "StatusCode200").await;
    h.wait_reason("other-port", "StatusCode200").await;
    let hosts: Vec<String> = server.seen().into_iter().filter_map(|s| s.host).collect();
    assert!(hosts.contains(&"app.example.test".to_string()), "{hosts:?}");
    assert!(hosts.contains(&format!("app.example.test:{}", server.addr.port())), "{hosts:?}");
}

#[tokio::test]
async fn fqdn_endpoint_is_resolved_and_resolution_failure_fails() {
    // Listen on whatever `localhost` resolves to first, as the prober will use it.
    let ip = tokio::net::lookup_host("localhost:0").await.unwrap().next().unwrap().ip();
    let server = TestServer::start(Mode::Status(200), None, None, ip).await;
    let mut h = Harness::new();
    let mut by_name = http_check("by-name", server.addr, "/");
    let mut unknown = http_check("unknown", server.addr, "/");
    if let Probe::Http { endpoint, .. } = &mut by_name.probe {
        *endpoint = Endpoint::Fqdn("localhost".into());
    }
    if let Probe::Http { endpoint, .. } = &mut unknown.probe {
        *endpoint = Endpoint::Fqdn("no-such-host.invalid".into());
    }
    unknown.timeout = Duration::from_secs(8);
    h.set(&[by_name, unknown]);
    h.wait_reason("by-name", "StatusCode200").await;
    let update = h.next_update().await;
    assert_update(&update, "unknown", false, "DnsResolutionFailed");
    assert!(update.health.message.contains("no-such-host.invalid"), "{}", update.health.message);
}

// ---------------------------------------------------------------- HTTPS

#[tokio::test]
async fn https_sends_sni_and_accepts_an_untrusted_certificate() {
    let server = TestServer::start(
        Mode::Status(200),
        Some(self_signed_acceptor()),
        None,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .await;
    let h = Harness::new();
    h.set(&[https_check("with-sni", server.addr, Some("secure.example.test"))]);
    let state = h.wait_reason("with-sni", "StatusCode200").await;
    assert!(state.healthy);
    assert!(state.latency.unwrap().tls_ms.is_some());
    assert_eq!(server.state.snis.lock().unwrap()[0].as_deref(), Some("secure.example.test"));
    assert_eq!(server.seen()[0].host, Some(format!("secure.example.test:{}", server.addr.port())));

    h.set(&[https_check("ip-only", server.addr, None)]);
    h.wait_reason("ip-only", "StatusCode200").await;
    assert!(server.state.snis.lock().unwrap().contains(&None), "no SNI for a bare IP");
}

/// `minCertificateValidity` against a certificate valid for 24 hours: 72h fails with
/// `CertificateExpiring` (saying when it expires), 1h passes; neither validates it.
#[tokio::test]
async fn min_certificate_validity_fails_a_certificate_expiring_sooner() {
    let acceptor = acceptor_valid_for(Duration::from_secs(24 * 3600));
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let server = TestServer::start(Mode::Status(200), Some(acceptor), None, ip).await;
    let mut h = Harness::new();
    let spec = |min: &str| HealthCheckSpec {
        type_: HealthCheckType::Https,
        ip_address: Some("127.0.0.1".into()),
        port: Some(i64::from(server.addr.port())),
        min_certificate_validity: Some(min.into()),
        ..HealthCheckSpec::default()
    };
    h.set(&[validated_check("expiring", spec("72h")), validated_check("lasting", spec("1h"))]);
    let down = h.next_update().await;
    assert_update(&down, "expiring", false, "CertificateExpiring");
    let message = &down.health.message;
    assert!(message.contains("expires") && message.contains("72h"), "{message}");
    // The expiry time as RFC 3339, about 24 h from now.
    assert!(message.contains("(in 23h") || message.contains("(in 24h)"), "{message}");
    let lasting = h.wait_reason("lasting", "StatusCode200").await;
    assert!(lasting.healthy, "{lasting:?}");
    h.assert_no_update();
    let expiring = h.state("expiring").unwrap();
    assert_eq!(expiring.reason, "CertificateExpiring");
    assert!(expiring.latency.is_some_and(|l| l.tls_ms.is_some()), "{expiring:?}");
}

#[tokio::test]
async fn https_against_a_plain_http_server_fails_the_handshake() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    h.set(&[https_check("not-tls", server.addr, Some("secure.example.test"))]);
    let update = h.next_update().await;
    assert_update(&update, "not-tls", false, "TlsHandshakeFailed");
}

// ---------------------------------------------------------------- search string

#[tokio::test]
async fn search_string_must_lie_within_the_first_5120_bytes() {
    let server = TestServer::http(Mode::Bodies).await;
    let mut h = Harness::new();
    let checks = ["at5100", "at5200", "gzip", "gzip-late", "deflate-raw"]
        .map(|name| with_search(http_check(name, server.addr, &format!("/{name}"))));
    h.set(&checks);

    for passing in ["at5100", "gzip", "deflate-raw"] {
        let state = h.wait_reason(passing, "StatusCode200").await;
        assert!(state.message.contains("search string found"), "{passing}: {}", state.message);
    }
    let mut failed: Vec<String> = Vec::new();
    for _ in 0..2 {
        let update = h.next_update().await;
        assert!(!update.health.healthy);
        assert_eq!(update.health.reason, "SearchStringNotFound", "{update:?}");
        failed.push(update.id.name.to_string());
    }
    failed.sort();
    assert_eq!(failed, ["at5200", "gzip-late"]);
    for passing in ["at5100", "gzip", "deflate-raw"] {
        assert!(h.state(passing).unwrap().healthy, "{passing}");
    }
}

// ---------------------------------------------------------------- TCP

#[tokio::test]
async fn tcp_passes_while_something_listens() {
    let addr = closed_port().await;
    let mut h = Harness::new();
    h.set(&[tcp_check("db", addr)]);
    assert_update(&h.next_update().await, "db", false, "ConnectionRefused");

    let listener = TcpListener::bind(addr).await.unwrap();
    // Accept and hold connections, like a real server.
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn);
        }
    });
    let update = h.next_update().await;
    assert_update(&update, "db", true, "Connected");
    assert!(update.health.latency.unwrap().connect_ms.is_some());

    held.abort();
    let _ = held.await;
    assert_update(&h.next_update().await, "db", false, "ConnectionRefused");
}
