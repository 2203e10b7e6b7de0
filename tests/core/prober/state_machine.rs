//! A check's state: inverted checks, the failure threshold in both directions, what an
//! edited check keeps, and which checks are never probed.

use super::*;

// ---------------------------------------------------------------- state machine

#[tokio::test]
async fn inverted_check_reports_the_opposite() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    let mut check = http_check("inv", server.addr, "/");
    check.inverted = true;
    h.set(&[check]);
    let initial = h.state("inv").unwrap();
    assert!(!initial.healthy, "an inverted new check starts unhealthy");
    assert_eq!(initial.reason, "Pending");

    let state = h.wait_reason("inv", "StatusCode200").await;
    assert!(!state.healthy);
    assert!(state.message.contains("inverted"), "{}", state.message);
    h.assert_no_update();

    server.set_mode(Mode::Status(503));
    assert_update(&h.next_update().await, "inv", true, "StatusCode503");
}

#[tokio::test]
async fn failure_threshold_applies_in_both_directions() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    let mut check = http_check("t3", server.addr, "/");
    check.failure_threshold = 3;
    check.healthy_threshold = 3;
    check.interval = Duration::from_millis(150);
    h.set(&[check]);
    h.wait_reason("t3", "StatusCode200").await;

    server.set_mode(Mode::Status(503));
    let down = h.next_update().await;
    assert_update(&down, "t3", false, "StatusCode503");
    assert_eq!((down.health.consecutive_failures, down.health.consecutive_successes), (3, 0));

    server.set_mode(Mode::Status(200));
    let up = h.next_update().await;
    assert_update(&up, "t3", true, "StatusCode200");
    assert_eq!((up.health.consecutive_successes, up.health.consecutive_failures), (3, 0));
}

/// healthyThreshold 5 with failureThreshold 1, counted in probes: down at the one
/// failed probe, back only at the fifth pass after it.
#[tokio::test]
async fn healthy_threshold_sets_the_passes_needed_to_recover() {
    let server = TestServer::http(Mode::Status(200)).await;
    let mut h = Harness::new();
    let mut check = http_check("rise5", server.addr, "/");
    check.failure_threshold = 1;
    check.healthy_threshold = 5;
    check.interval = Duration::from_millis(150);
    h.set(&[check]);
    h.wait_reason("rise5", "StatusCode200").await;
    h.assert_no_update();

    // Exactly one failed probe, then passes only.
    let before = server.requests();
    server.set_mode(Mode::StatusThen { first: 503, times: 1, then: 200 });
    let down = h.next_update().await;
    assert_update(&down, "rise5", false, "StatusCode503");
    assert_eq!((down.health.consecutive_failures, down.health.consecutive_successes), (1, 0));

    let up = h.next_update().await;
    assert_update(&up, "rise5", true, "StatusCode200");
    assert_eq!((up.health.consecutive_successes, up.health.consecutive_failures), (5, 0));
    // The server answered the failed probe and five passes after it (later probes may
    // have run since the update was sent).
    assert!(server.requests() >= before + 6, "{} after {before}", server.requests());
    h.assert_no_update();
}

#[tokio::test]
async fn unchanged_or_threshold_only_changes_keep_state_and_probe_changes_reset_it() {
    let server = TestServer::http(Mode::Status(503)).await;
    let mut h = Harness::new();
    let mut check = http_check("keep", server.addr, "/");
    check.failure_threshold = 2;
    check.healthy_threshold = 2;
    h.set(std::slice::from_ref(&check));
    let down = h.next_update().await;
    assert_update(&down, "keep", false, "StatusCode503");

    // Same checks again: nothing restarts.
    h.set(std::slice::from_ref(&check));
    let state = h.state("keep").unwrap();
    assert!(
        !state.healthy && state.consecutive_failures >= 2 && state.last_probe_time.is_some(),
        "{state:?}"
    );

    // Only the threshold changed: state carries over and probing goes on.
    check.failure_threshold = 5;
    check.healthy_threshold = 5;
    h.set(std::slice::from_ref(&check));
    let before = h.state("keep").unwrap().consecutive_failures;
    assert!(before >= 2);
    let later = h.wait_state("keep", "more failures", |s| s.consecutive_failures > before).await;
    assert!(!later.healthy);

    // What is probed changed: back to the initial state, and the channel says so.
    if let Probe::Http { path, .. } = &mut check.probe {
        *path = "/other".into();
    }
    h.set(std::slice::from_ref(&check));
    let reset = h.next_update().await;
    assert_update(&reset, "keep", true, "Pending");
    assert_eq!(reset.health.consecutive_failures, 0);
    h.wait_state("keep", "probe of the new path", |s| s.reason == "StatusCode503").await;
    assert!(server.seen().iter().any(|s| s.path == "/other"));
    h.assert_no_update();
}

#[tokio::test]
async fn removed_disabled_and_calculated_checks_are_not_probed() {
    let server = TestServer::http(Mode::Status(200)).await;
    let h = Harness::new();
    let live = http_check("live", server.addr, "/live");
    let mut disabled = http_check("disabled", server.addr, "/disabled");
    disabled.disabled = true;
    let calculated = base_check(
        "calc",
        Probe::Calculated { children: vec!["live".into()], health_threshold: 1 },
    );
    h.set(&[live, disabled, calculated]);
    h.wait_state("live", "two probes", |_| server.requests() >= 2).await;
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 1.0).await;
    let states = h.prober.states();
    assert_eq!(
        states.keys().collect::<Vec<_>>(),
        vec![&id("live")],
        "only probed checks have live state"
    );

    h.set(&[]);
    assert!(h.prober.states().is_empty());
    h.wait_metric("failoverdns_probe_watch_connections", |v| v == 0.0).await;
    // A probe that was already on the wire may still land; after that, silence.
    sleep(Duration::from_millis(300)).await;
    let settled = server.requests();
    sleep(Duration::from_millis(1000)).await;
    assert_eq!(server.requests(), settled, "probing went on after removal");
    assert!(
        server.seen().iter().all(|s| s.path == "/live"),
        "a disabled or calculated check was probed"
    );
}

#[tokio::test]
async fn a_verdict_becomes_established_by_the_first_result_that_backs_it() {
    let server = TestServer::http(Mode::Status(503)).await;
    let mut h = Harness::with_config(ProberConfig {
        announce_established: true,
        ..ProberConfig::default()
    });
    let mut check = http_check("est", server.addr, "/");
    check.failure_threshold = 2;
    check.healthy_threshold = 2;
    check.interval = Duration::from_millis(150);
    h.set(&[check]);
    assert!(!h.state("est").unwrap().established, "a new check is only a starting point");
    // One failure of two: still healthy, and nothing backs "healthy" yet.
    let first = h.wait_state("est", "a first failure", |s| s.consecutive_failures == 1).await;
    assert!(first.healthy && !first.established);
    // The second turns it unhealthy: a transition, established.
    let down = h.next_update().await;
    assert!(!down.health.healthy && down.health.established);

    // A passing check announces the moment it is backed, without a transition.
    let ok = TestServer::http(Mode::Status(200)).await;
    h.set(&[http_check("ok", ok.addr, "/")]);
    let update = h.next_update().await;
    assert_eq!(&*update.id.name, "ok");
    assert!(update.health.healthy && update.health.established);
    h.assert_no_update();
}
