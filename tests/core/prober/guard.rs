//! The target guard: a denied target is never connected to, an allowed range inside a
//! denied one is probed.

use super::*;

// ---------------------------------------------------------------- target guard

/// Counts the connections a listener accepts (and holds them).
async fn counting_listener(addr: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        }
    });
    (addr, count, task)
}

#[tokio::test]
async fn a_denied_target_fails_with_target_denied_and_is_never_connected() {
    let (addr, accepted, listener) = counting_listener("127.0.0.2:0".parse().unwrap()).await;
    // `localhost` resolves to some loopback address; deny both families' loopback.
    let (named_addr, named_accepted, named_listener) = {
        let ip = tokio::net::lookup_host("localhost:0").await.unwrap().next().unwrap().ip();
        counting_listener(SocketAddr::new(ip, 0)).await
    };
    let h = Harness::with_guard(&["127.0.0.2/32", "127.0.0.1/32", "::1/128"], &[]);
    let mut tcp = tcp_check("tcp-denied", addr);
    tcp.interval = Duration::from_millis(100);
    let mut http = http_check("http-denied", addr, "/");
    http.interval = Duration::from_millis(100);
    let mut named = http_check("named-denied", named_addr, "/");
    if let Probe::Http { endpoint, .. } = &mut named.probe {
        *endpoint = Endpoint::Fqdn("localhost".into());
    }
    named.interval = Duration::from_millis(100);
    h.set(&[tcp, http, named]);
    for name in ["tcp-denied", "http-denied", "named-denied"] {
        let state = h.wait_reason(name, "TargetDenied").await;
        assert!(!state.healthy);
        assert!(state.message.contains("--probe-deny"), "{name}: {}", state.message);
    }
    assert!(h.state("tcp-denied").unwrap().message.contains("--probe-deny 127.0.0.2/32"));
    // Several more probe rounds: still nothing reaches the listeners.
    h.wait_state("tcp-denied", "more denied probes", |s| s.consecutive_failures >= 5).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "a denied target was connected to");
    assert_eq!(
        named_accepted.load(Ordering::SeqCst),
        0,
        "a denied resolved address was connected to"
    );
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
    listener.abort();
    named_listener.abort();
}

#[tokio::test]
async fn an_allowed_range_inside_a_denied_one_is_probed() {
    let (allowed_addr, allowed_count, a) = counting_listener("127.0.0.3:0".parse().unwrap()).await;
    let (denied_addr, denied_count, d) = counting_listener("127.0.0.4:0".parse().unwrap()).await;
    let h = Harness::with_guard(&["127.0.0.0/8"], &["127.0.0.3/32"]);
    h.set(&[tcp_check("allowed", allowed_addr), tcp_check("denied", denied_addr)]);
    h.wait_reason("allowed", "Connected").await;
    let denied = h.wait_reason("denied", "TargetDenied").await;
    assert!(denied.message.contains("--probe-deny 127.0.0.0/8"), "{}", denied.message);
    assert!(allowed_count.load(Ordering::SeqCst) >= 1);
    assert_eq!(denied_count.load(Ordering::SeqCst), 0);
    a.abort();
    d.abort();
}
