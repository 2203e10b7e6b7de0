//! A check with a `serviceRef` (spec section 7) through the real sink and the real
//! prober, against HTTP targets on 127.0.0.2-5: the API server refuses loopback
//! endpoint addresses, so the Service and its EndpointSlice come to the sink as a
//! watch would bring them. Every ready endpoint is probed with its own threshold
//! state; the check is healthy while `minHealthyEndpoints` pass; endpoints that leave
//! stop being probed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{HttpTarget, settings};
use failover_dns::health::Listed;
use failover_dns::model::objects::{
    Facts, ObjectChange, ObjectKind, ServiceFacts, ServiceType, SliceFacts, SlicePort,
};
use failover_dns::model::{Change, Input, ObjectRef};
use failover_dns::prober::{Prober, ProberConfig};
use failover_dns::resources::{
    FailoverRecordSpec, HealthCheckSpec, HealthCheckType, IntOrString, ServiceRef,
};
use failover_dns::sink::{Admission, OwnVerdicts, Sink, Update};
use failover_dns::state::State;
use failover_dns::view::View;
use tokio_util::sync::CancellationToken;

const SOON: Duration = Duration::from_secs(20);

/// Targets on 127.0.0.2..=5 sharing one port.
fn targets() -> (u16, Vec<HttpTarget>) {
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.2:0").unwrap().local_addr().unwrap().port();
        let binds: Vec<_> =
            (2..=5).map(|i| std::net::TcpListener::bind(format!("127.0.0.{i}:{port}"))).collect();
        if binds.iter().all(Result::is_ok) {
            drop(binds);
            let addr = |i: u8| SocketAddr::from(([127, 0, 0, i], port));
            return (port, (2..=5).map(|i| HttpTarget::start(addr(i))).collect());
        }
    }
    panic!("no port free on 127.0.0.2-5");
}

fn slice(port: u16, ready: &[&str]) -> Update {
    let facts = Facts::EndpointSlice(SliceFacts {
        service: "web".into(),
        ports: Box::new([SlicePort { name: Some("http".into()), port }]),
        ready_endpoints: ready.len() as u32,
        ready_addresses: ready.iter().map(|ip| ip.parse().unwrap()).collect(),
    });
    let id = ObjectRef::new("default", "web-1");
    Update::Objects(vec![ObjectChange { kind: ObjectKind::EndpointSlice, id, facts: Some(facts) }])
}

async fn until(view: &arc_swap::ArcSwap<View>, what: &str, check: impl Fn(&View) -> bool) {
    let deadline = tokio::time::Instant::now() + SOON;
    while !check(&view.load()) {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn input<S>(spec: S) -> Input<S> {
    Input { id: ObjectRef::new("default", "web"), seq: 1, file: None, generation: None, spec }
}

/// Waits until this replica's report has been told `want` of `id` (None: healthy),
/// keeping in `told` the latest listing of every check.
async fn told(
    own: &mut tokio::sync::mpsc::UnboundedReceiver<OwnVerdicts>,
    told: &mut std::collections::HashMap<ObjectRef, Option<Listed>>,
    id: &ObjectRef,
    want: impl Fn(Option<&Listed>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + SOON;
    while !told.get(id).is_some_and(|l| want(l.as_ref())) {
        let verdicts = tokio::time::timeout_at(deadline, own.recv()).await;
        let verdicts = verdicts.unwrap_or_else(|_| panic!("the report told in time: {told:?}"));
        let verdicts = verdicts.expect("the sink runs");
        told.extend(verdicts);
    }
}

fn tally(view: &View) -> Option<(u32, u32)> {
    let leaf = view.endpoint_leaf(&ObjectRef::new("default", "web"))?;
    leaf.endpoints.map(|e| (e.ready, e.healthy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ready_endpoint_is_probed_and_the_passing_ones_are_counted() {
    let (port, mut targets) = targets();
    let mut state = State::new(settings(&["example.test"]));
    state.set_cluster_objects();
    let view = state.view.clone();
    let shutdown = CancellationToken::new();
    let mut registry = failover_dns::metrics::registry();
    // As with the checker quorum on: a first result that confirms the start is told.
    let quorum_prober = ProberConfig { announce_established: true, ..ProberConfig::default() };
    let (prober, transitions) = Prober::spawn(quorum_prober, &mut registry, shutdown.clone());
    let mut sink = Sink::new(state);
    // The checker quorum's report: each replica probes the endpoints itself.
    let mut own = sink.own_verdicts(Arc::from("replica-a"));
    let mut listed = std::collections::HashMap::new();
    let handle = sink.handle();
    let running = tokio::spawn(sink.run(prober, transitions, shutdown.clone()));

    let check = HealthCheckSpec {
        type_: HealthCheckType::Http,
        service_ref: Some(ServiceRef {
            name: "web".into(),
            port: Some(IntOrString::String("http".into())),
        }),
        resource_path: Some("/health".into()),
        request_interval: Some("200ms".into()),
        timeout: Some("100ms".into()),
        failure_threshold: Some(1),
        min_healthy_endpoints: Some(2),
        ..HealthCheckSpec::default()
    };
    let record = FailoverRecordSpec {
        name: "web.example.test".into(),
        health_check_name: Some("web".into()),
        values: Some(vec!["192.0.2.1".into()]),
        ..FailoverRecordSpec::default()
    };
    let changes = vec![Change::Check(input(check)), Change::Record(input(record))];
    handle.apply(changes, Admission::All).await.unwrap();
    // The whole configuration is there: the report starts.
    handle.send(Update::SourceState { errors: None, complete: true }).await.unwrap();
    let service = Facts::Service(ServiceFacts {
        service_type: ServiceType::ClusterIp,
        cluster_ips: Box::new(["10.0.0.1".parse().unwrap()]),
        external_name: None,
        load_balancer: Box::new([]),
    });
    let id = ObjectRef::new("default", "web");
    handle
        .send(Update::Objects(vec![ObjectChange {
            kind: ObjectKind::Service,
            id: id.clone(),
            facts: Some(service),
        }]))
        .await
        .unwrap();
    handle.send(slice(port, &["127.0.0.2", "127.0.0.3", "127.0.0.4"])).await.unwrap();
    until(&view, "three endpoints probed", |v| tally(v) == Some((3, 3))).await;
    assert_eq!(view.load().verdicts.get(&id), Some(true));

    targets.remove(2).stop(); // 127.0.0.4
    until(&view, "two of three passing", |v| tally(v) == Some((3, 2))).await;
    assert_eq!(view.load().verdicts.get(&id), Some(true), "two pass: minHealthyEndpoints 2 holds");
    let leaf = view.load().endpoint_leaf(&id).unwrap();
    assert!(leaf.message.contains("127.0.0.4:"), "the failing endpoint is named: {}", leaf.message);

    targets.remove(1).stop(); // 127.0.0.3
    until(&view, "one of three passing", |v| tally(v) == Some((3, 1))).await;
    assert_eq!(view.load().verdicts.get(&id), Some(false), "one passing is not enough");
    let unhealthy = |l: Option<&Listed>| matches!(l, Some(Listed::Unhealthy(_)));
    told(&mut own, &mut listed, &id, unhealthy).await;

    // The failing endpoints leave, a passing one joins: healthy again with two probes.
    handle.send(slice(port, &["127.0.0.2", "127.0.0.5"])).await.unwrap();
    until(&view, "the new endpoint probed", |v| tally(v) == Some((2, 2))).await;
    until(&view, "healthy again", |v| v.verdicts.get(&id) == Some(true)).await;
    told(&mut own, &mut listed, &id, |l| l.is_none()).await;
    // Only checks go into the report, not their endpoints' probes.
    assert!(listed.keys().all(|k| !k.name.contains('@')), "{listed:?}");

    // No endpoint at all: NoEndpoints.
    handle.send(slice(port, &[])).await.unwrap();
    until(&view, "no endpoints", |v| tally(v) == Some((0, 0))).await;
    let leaf = view.load().endpoint_leaf(&id).unwrap();
    assert_eq!(leaf.reason, "NoEndpoints");
    assert_eq!(view.load().verdicts.get(&id), Some(false));
    let no_endpoints =
        |l: Option<&Listed>| matches!(l, Some(Listed::Unhealthy(r)) if &**r == "NoEndpoints");
    told(&mut own, &mut listed, &id, no_endpoints).await;
    shutdown.cancel();
    let _ = running.await;
    drop(Arc::clone(&view));
}
