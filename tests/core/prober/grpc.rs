//! GRPC checks against a real gRPC health server on loopback (`support::grpc`):
//! SERVING and NOT_SERVING followed, unknown services, servers without the health
//! service or without HTTP/2, TLS with a self-signed certificate, the probe guard,
//! inversion, and a dead server noticed through the watch connection.

use tonic_health::ServingStatus;

use super::*;
use crate::support::grpc::{GrpcKind, GrpcTarget};

const GRPC_PASSES: &str = "failoverdns_probe_results_total{type=\"grpc\",reason=\"Serving\"}";

fn grpc_check(name: &str, addr: SocketAddr, service: &str) -> Check {
    base_check(
        name,
        Probe::Grpc {
            tls: false,
            endpoint: Endpoint::Ip(addr.ip()),
            port: addr.port(),
            authority: addr.to_string(),
            sni: None,
            service: service.into(),
        },
    )
}

fn grpc_tls_check(name: &str, addr: SocketAddr, fqdn: Option<&str>) -> Check {
    let mut check = grpc_check(name, addr, "");
    if let Probe::Grpc { tls, authority, sni, .. } = &mut check.probe {
        *tls = true;
        if let Some(fqdn) = fqdn {
            *authority = format!("{fqdn}:{}", addr.port());
            *sni = Some(fqdn.into());
        }
    }
    check
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

#[tokio::test]
async fn a_grpc_check_follows_serving_and_not_serving() {
    let target = GrpcTarget::start();
    target.set("app.Api", ServingStatus::Serving);
    let mut h = Harness::new();
    h.set(&[grpc_check("server", target.addr, ""), grpc_check("api", target.addr, "app.Api")]);
    let server = h.wait_reason("server", "Serving").await;
    assert!(server.healthy);
    assert!(server.message.contains("the whole server"), "{}", server.message);
    let latency = server.latency.unwrap();
    assert!(latency.connect_ms.is_some() && latency.first_byte_ms.is_some(), "{latency:?}");
    let api = h.wait_reason("api", "Serving").await;
    assert!(api.message.contains("\"app.Api\""), "{}", api.message);
    // The standard method, with the address and port as the authority.
    let calls = target.calls();
    assert!(
        calls.iter().all(|(authority, path)| *authority == target.addr.to_string()
            && path == "/grpc.health.v1.Health/Check"),
        "{calls:?}"
    );

    // Only the named service stops serving: only its check follows.
    target.set("app.Api", ServingStatus::NotServing);
    let update = h.next_update().await;
    assert_update(&update, "api", false, "NotServing");
    assert!(update.health.message.contains("NOT_SERVING"), "{}", update.health.message);
    assert!(h.state("server").unwrap().healthy);

    target.set("app.Api", ServingStatus::Serving);
    assert_update(&h.next_update().await, "api", true, "Serving");

    // The whole server stops serving.
    target.set("", ServingStatus::NotServing);
    assert_update(&h.next_update().await, "server", false, "NotServing");
    assert!(h.metric(GRPC_PASSES) >= 2.0);
}

#[tokio::test]
async fn an_unknown_service_is_service_unknown() {
    let target = GrpcTarget::start();
    let mut h = Harness::new();
    h.set(&[grpc_check("unknown", target.addr, "no.Such")]);
    let update = h.next_update().await;
    assert_update(&update, "unknown", false, "ServiceUnknown");
    // The health protocol answers NOT_FOUND for a service it does not know.
    assert!(update.health.message.contains("\"no.Such\""), "{}", update.health.message);
    assert!(update.health.message.contains("NOT_FOUND"), "{}", update.health.message);

    // Registered later: the check follows.
    target.set("no.Such", ServingStatus::Serving);
    assert_update(&h.next_update().await, "unknown", true, "Serving");
}

#[tokio::test]
async fn a_grpc_server_without_the_health_service_is_unimplemented() {
    let target = GrpcTarget::start_on(loopback(0), GrpcKind::NoHealth, false);
    let mut h = Harness::new();
    h.set(&[grpc_check("no-health", target.addr, "")]);
    let update = h.next_update().await;
    assert_update(&update, "no-health", false, "Unimplemented");
    assert!(update.health.message.contains("no gRPC health service"), "{}", update.health.message);
    assert_eq!(target.calls()[0].1, "/grpc.health.v1.Health/Check");
}

#[tokio::test]
async fn a_plain_http1_server_fails_a_grpc_check() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    h.set(&[grpc_check("http1", server.addr, "")]);
    let update = h.next_update().await;
    assert_eq!(update.id, id("http1"));
    assert!(!update.health.healthy, "{update:?}");
    // hyper's HTTP/1 server drops a connection that starts with the HTTP/2 preface:
    // closed or reset (whether the preface was read whole), never a byte sent.
    assert!(
        ["ConnectionReset", "ConnectionClosed"].contains(&update.health.reason.as_str()),
        "{update:?}"
    );
    assert!(
        update.health.message.contains("the server never spoke HTTP/2: is it a gRPC server"),
        "{}",
        update.health.message
    );
    assert_eq!(server.requests(), 0, "no HTTP/1 request was made");
}

#[tokio::test]
async fn grpc_over_tls_accepts_a_self_signed_certificate_and_sends_sni() {
    let target = GrpcTarget::start_on(loopback(0), GrpcKind::Health, true);
    let mut h = Harness::new();
    h.set(&[grpc_tls_check("tls", target.addr, Some("grpc.example.test"))]);
    let state = h.wait_reason("tls", "Serving").await;
    assert!(state.healthy);
    assert!(state.latency.unwrap().tls_ms.is_some());
    assert_eq!(target.snis()[0].as_deref(), Some("grpc.example.test"));
    assert_eq!(target.calls()[0].0, format!("grpc.example.test:{}", target.addr.port()));

    // A bare IP: no SNI, still TLS.
    h.set(&[grpc_tls_check("tls-ip", target.addr, None)]);
    h.wait_reason("tls-ip", "Serving").await;
    assert!(target.snis().contains(&None), "no SNI for a bare IP: {:?}", target.snis());

    // TLS against a cleartext gRPC server fails the handshake.
    let plain = GrpcTarget::start();
    h.set(&[grpc_tls_check("not-tls", plain.addr, Some("grpc.example.test"))]);
    let update = h.next_update().await;
    assert_update(&update, "not-tls", false, "TlsHandshakeFailed");

    // Cleartext against the TLS server fails too.
    h.set(&[grpc_check("cleartext", target.addr, "")]);
    let update = h.next_update().await;
    assert_eq!(update.id, id("cleartext"));
    assert!(!update.health.healthy, "{update:?}");
    // The TLS server's alert is no HTTP/2 frame (read as one, or reset before it is).
    assert!(
        ["InvalidHttpResponse", "ConnectionReset", "ConnectionClosed"]
            .contains(&update.health.reason.as_str()),
        "{update:?}"
    );
    assert!(update.health.message.contains("expect TLS (tls: true)"), "{}", update.health.message);
}

#[tokio::test]
async fn a_denied_grpc_target_fails_with_target_denied_and_is_never_connected() {
    let target = GrpcTarget::start_on("127.0.0.2:0".parse().unwrap(), GrpcKind::Health, false);
    let h = Harness::with_guard(&["127.0.0.2/32"], &[]);
    let mut check = grpc_check("denied", target.addr, "");
    check.interval = Duration::from_millis(100);
    h.set(&[check]);
    let state = h.wait_reason("denied", "TargetDenied").await;
    assert!(!state.healthy);
    assert!(state.message.contains("--probe-deny 127.0.0.2/32"), "{}", state.message);
    h.wait_state("denied", "more denied probes", |s| s.consecutive_failures >= 5).await;
    assert_eq!(target.connections(), 0, "a denied target was connected to");
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
}

#[tokio::test]
async fn an_inverted_grpc_check_reports_the_opposite() {
    let target = GrpcTarget::start();
    target.set("down.Svc", ServingStatus::NotServing);
    let h = Harness::new();
    let mut check = grpc_check("inverted", target.addr, "down.Svc");
    check.inverted = true;
    h.set(&[check]);
    let state = h.wait_reason("inverted", "NotServing").await;
    assert!(state.healthy, "NOT_SERVING, inverted, is healthy: {state:?}");
    assert!(state.message.contains("inverted: counts as a success"), "{}", state.message);
}

#[tokio::test]
async fn a_dead_grpc_server_is_noticed_through_the_watch_connection() {
    let mut target = GrpcTarget::start();
    let mut h = Harness::new();
    let mut check = grpc_check("watched", target.addr, "");
    check.interval = Duration::from_millis(300);
    h.set(std::slice::from_ref(&check));
    h.wait_reason("watched", "Serving").await;
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 1.0).await;
    // A long interval from now on; the schedule keeps its phase, so the next regular
    // probe is about a minute after the last one.
    check.interval = Duration::from_secs(60);
    h.set(std::slice::from_ref(&check));
    sleep(Duration::from_millis(400)).await;
    let passes = h.metric(GRPC_PASSES);
    assert_eq!(h.metric("failoverdns_probe_early_total"), 0.0);

    target.kill();
    let update = timeout(Duration::from_secs(20), h.updates.recv())
        .await
        .expect("the dead server went unnoticed: the watch did not trigger a probe")
        .unwrap();
    assert_update(&update, "watched", false, "ConnectionRefused");
    assert_eq!(h.metric("failoverdns_probe_early_total"), 1.0);
    assert_eq!(h.metric(GRPC_PASSES), passes);
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_check_timeout() {
    // Accepts and holds connections, reads nothing, sends nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn);
        }
    });
    let mut h = Harness::new();
    let mut check = grpc_check("silent", addr, "");
    check.timeout = Duration::from_millis(300);
    h.set(&[check]);
    let update = h.next_update().await;
    assert_update(&update, "silent", false, "Timeout");
    assert!(
        update.health.message.contains("timed out while waiting for the response"),
        "{}",
        update.health.message
    );
    held.abort();
}
