//! The watch connection: a dead target detected between probes and confirmed by a
//! burst, a lost watch on a live target, servers closing idle connections not hammered.

use super::*;

// ---------------------------------------------------------------- watch connection

#[tokio::test]
async fn dead_process_is_detected_by_the_watch_connection_before_the_next_probe() {
    let mut server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    let mut check = http_check("fast", server.addr, "/");
    check.interval = Duration::from_millis(300);
    h.set(std::slice::from_ref(&check));
    h.wait_reason("fast", "StatusCode200").await;
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 1.0).await;
    assert!(
        server.connections() > server.requests(),
        "the server holds a connection without a request"
    );

    // A long interval from now on; the running schedule keeps its phase, so the next
    // regular probe is about a minute after the last one.
    check.interval = Duration::from_secs(60);
    h.set(std::slice::from_ref(&check));
    sleep(Duration::from_millis(400)).await;
    let passes = h.metric(PASSES);
    assert_eq!(h.metric("failoverdns_probe_early_total"), 0.0);

    server.kill().await;
    let update = timeout(Duration::from_secs(20), h.updates.recv())
        .await
        .expect("the dead server went unnoticed: the watch did not trigger a probe")
        .unwrap();
    assert_update(&update, "fast", false, "ConnectionRefused");
    // Exactly one probe ran since the kill, and it was the out-of-schedule one.
    assert_eq!(h.metric("failoverdns_probe_early_total"), 1.0);
    assert_eq!(h.metric(PASSES), passes);
    assert_eq!(
        h.metric("failoverdns_probe_results_total{type=\"http\",reason=\"ConnectionRefused\"}"),
        1.0
    );
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
    assert_eq!(h.state("fast").unwrap().consecutive_failures, 1);
}

/// A healthy check at a one-minute interval, its watch connection open, no probe
/// since: what follows can only come from the watch.
async fn watched_check(h: &Harness, server: &TestServer, name: &str, threshold: u32) -> Check {
    let mut check = http_check(name, server.addr, "/");
    check.failure_threshold = threshold;
    check.healthy_threshold = threshold;
    check.interval = Duration::from_millis(300);
    h.set(std::slice::from_ref(&check));
    h.wait_reason(name, "StatusCode200").await;
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 1.0).await;
    // The running schedule keeps its phase: the next regular probe is a minute after the last.
    check.interval = Duration::from_secs(60);
    h.set(std::slice::from_ref(&check));
    sleep(Duration::from_millis(400)).await;
    assert_eq!(h.metric("failoverdns_probe_early_total"), 0.0);
    check
}

#[tokio::test]
async fn a_dead_process_is_confirmed_by_a_burst_of_threshold_probes() {
    const THRESHOLD: u32 = 3;
    let mut server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    watched_check(&h, &server, "burst", THRESHOLD).await;
    let passes = h.metric(PASSES);
    h.assert_no_update();

    server.kill().await;
    // Well before the next regular probe, a minute away.
    let update = timeout(Duration::from_secs(20), h.updates.recv())
        .await
        .expect("the dead server went unnoticed: no burst of confirmation probes")
        .unwrap();
    assert_update(&update, "burst", false, "ConnectionRefused");
    assert_eq!(
        (update.health.consecutive_failures, update.health.consecutive_successes),
        (THRESHOLD, 0)
    );
    // Exactly `threshold` probes ran since the kill, all of them out of schedule.
    assert_eq!(h.metric("failoverdns_probe_early_total"), f64::from(THRESHOLD));
    let refused =
        h.metric("failoverdns_probe_results_total{type=\"http\",reason=\"ConnectionRefused\"}");
    assert_eq!(refused, f64::from(THRESHOLD));
    assert_eq!(h.metric(PASSES), passes);
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);

    // The state flipped: the burst is over and the one-minute schedule goes on.
    sleep(Duration::from_millis(500)).await;
    assert_eq!(h.metric("failoverdns_probe_early_total"), f64::from(THRESHOLD));
    assert_eq!(h.state("burst").unwrap().consecutive_failures, THRESHOLD);
    h.assert_no_update();
}

#[tokio::test]
async fn a_lost_watch_on_a_live_target_costs_one_probe_and_changes_nothing() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    watched_check(&h, &server, "alive", 3).await;
    let passes = h.metric(PASSES);

    server.drop_connections().await;
    h.wait_metric(PASSES, |v| v == passes + 1.0).await;
    // The first probe of the burst passed and ended it; only a regular probe reopens the watch.
    sleep(Duration::from_millis(500)).await;
    assert_eq!(h.metric("failoverdns_probe_early_total"), 1.0);
    assert_eq!(h.metric(PASSES), passes + 1.0);
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
    let state = h.state("alive").unwrap();
    assert!(state.healthy && state.consecutive_failures == 0, "{state:?}");
    h.assert_no_update();
}

#[tokio::test]
async fn a_passing_probe_ends_the_burst_before_the_threshold() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    watched_check(&h, &server, "flaky", 3).await;
    let passes = h.metric(PASSES);

    // One failure, then the target answers again: two burst probes, no change.
    server.set_mode(Mode::StatusThen { first: 503, times: 1, then: 200 });
    server.drop_connections().await;
    h.wait_metric(PASSES, |v| v == passes + 1.0).await;
    sleep(Duration::from_millis(500)).await;
    assert_eq!(h.metric("failoverdns_probe_early_total"), 2.0);
    assert_eq!(
        h.metric("failoverdns_probe_results_total{type=\"http\",reason=\"StatusCode503\"}"),
        1.0
    );
    assert_eq!(h.metric(PASSES), passes + 1.0);
    let state = h.state("flaky").unwrap();
    assert!(state.healthy, "{state:?}");
    assert_eq!((state.consecutive_successes, state.consecutive_failures), (1, 0));
    h.assert_no_update();
}

/// A server that closes connections idle for `idle_close`: every watch connection is
/// lost soon after it opens, and the target stays healthy all along.
async fn assert_not_hammered(idle_close: Duration, threshold: u32) {
    const INTERVAL: Duration = Duration::from_millis(600);
    let server = TestServer::start(
        Mode::Status(200),
        None,
        Some(idle_close),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .await;
    let mut h = Harness::new();
    let mut check = http_check("idle-closer", server.addr, "/");
    check.interval = INTERVAL;
    check.failure_threshold = threshold;
    check.healthy_threshold = threshold;
    h.set(&[check]);
    h.wait_reason("idle-closer", "StatusCode200").await;
    let start = Instant::now();
    let first = server.requests();
    // The watch was closed by the server and the burst's first probe found it alive.
    h.wait_metric("failoverdns_probe_early_total", |v| v >= 1.0).await;
    sleep(Duration::from_secs(3)).await;
    let requests = server.requests() - first;
    let intervals = (start.elapsed().as_millis() / INTERVAL.as_millis()) as usize + 1;
    // At most one regular and one early probe per interval (plus the one in flight).
    assert!(requests <= 2 * intervals + 2, "{requests} probes in {intervals} intervals");
    let early = h.metric("failoverdns_probe_early_total");
    assert!(early <= intervals as f64 + 1.0, "{early} early probes in {intervals} intervals");
    h.assert_no_update();
}

#[tokio::test]
async fn a_server_that_closes_idle_connections_is_not_hammered() {
    assert_not_hammered(Duration::from_millis(200), 1).await;
}

#[tokio::test]
async fn a_server_that_closes_idle_connections_at_once_is_not_hammered_by_bursts() {
    // Closed right after accept unless the request is already on its way (a probe's is).
    assert_not_hammered(Duration::from_millis(50), 3).await;
}

#[tokio::test]
async fn tcp_check_watch_detects_the_listener_going_away() {
    let addr = closed_port().await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            conns.push(conn);
        }
    });
    let mut h = Harness::new();
    let mut check = tcp_check("tcp-fast", addr);
    check.interval = Duration::from_millis(300);
    h.set(std::slice::from_ref(&check));
    h.wait_reason("tcp-fast", "Connected").await;
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 1.0).await;
    check.interval = Duration::from_secs(60);
    h.set(std::slice::from_ref(&check));
    sleep(Duration::from_millis(400)).await;

    held.abort();
    let _ = held.await;
    let update =
        timeout(Duration::from_secs(20), h.updates.recv()).await.expect("not detected").unwrap();
    assert_update(&update, "tcp-fast", false, "ConnectionRefused");
    assert_eq!(h.metric("failoverdns_probe_early_total"), 1.0);
}
