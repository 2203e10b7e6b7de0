//! Kubernetes objects as targets and values (spec section 7, issue 21), in process:
//! `cargo bench --bench objects -- memory|probes [options]`.
//!
//! * `memory [--services 10000,14000]`: the store of watched Services and
//!   EndpointSlices (`model::objects::Objects`, inside the served state). N Services
//!   (ClusterIP, 1-3 cluster IPs, one port, as the API server returns them: metadata,
//!   selector, ipFamilies...) and N EndpointSlices (one per Service, 1-3 ready
//!   endpoints with node, zone and targetRef, one port) are decoded from JSON into
//!   the cluster source's watched types and turned into `Facts` by its own functions
//!   (`source::objects::{service_facts, slice_facts}`) and given to
//!   `State::set_objects` in batches of 1,024 (what the sink does with a watch's
//!   events); nothing references them. Reported: the bytes the state holds afterwards
//!   per object (live heap from a counting global allocator over the server's
//!   mimalloc: bytes requested, and mimalloc's usable size of those blocks), split
//!   into the facts' and names' own heap (measured by holding the same changes in a
//!   Vec) and the rest (the hash tables: inline entries, control bytes, free buckets,
//!   and the slices-per-Service index). Goal: <= 200 B per object. With `--page`, each
//!   kind comes as a first listing brings it: pages of 10,000 objects, the page's JSON
//!   text and decoded objects held while its batches go in (VmRSS then shows what the
//!   page's garbage leaves resident; run it as a process of its own).
//! * `probes [--seconds 20] [--endpoints 1000] [--variants ...]`: 1,000 endpoints probed
//!   at a 1 s interval, three ways, each in a fresh child process (the same binary),
//!   against one target process holding a listener on each of 1,000 loopback addresses
//!   (127.0.1.1...; one port): `checks` = 1,000 HealthChecks with `ipAddress`;
//!   `service` = one check with `serviceRef` to a Service whose 10 slices hold the
//!   1,000 endpoints; `services` = 100 checks with `serviceRef`, 10 endpoints each. Each
//!   for HTTP and TCP (failureThreshold 3, timeout 500 ms, no records). The real
//!   sink, state and prober run on a Tokio runtime as in the server; the Service and
//!   its slices reach the sink as a watch would bring them (the API server refuses
//!   loopback endpoint addresses). After a warm-up (every endpoint passing, watch
//!   connections open), over --seconds: the process's CPU (getrusage: user + system)
//!   per second and per probe, probes a second (the prober's metric), and the live
//!   heap (counting allocator; median of one sample a second) above the same process
//!   before the checks were given, per endpoint; VmRSS likewise. Goal: serviceRef no
//!   worse than per HealthCheck.
//!
//! * `churn [--endpoints 10,100,1000,5000]`: what one EndpointSlice change costs the
//!   state (`State::set_objects`, run by the sink for each watch batch) when its Service
//!   has that many endpoints (slices of 100) and is read by nothing, by a `type:
//!   Endpoints` check, or by a `serviceRef` HTTP check (whose probes are brought in line
//!   with the endpoints); median and p99 of 200 changes, one endpoint flipping `ready`.
//!
//! The counting allocator adds two atomic additions to every allocation (the same for
//! every variant). Only 127.0.0.0/8 is used.

use std::alloc::{GlobalAlloc, Layout};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use failover_dns::model::objects::{Facts, ObjectChange, ObjectKind};
use failover_dns::model::{Change, Fqdn, Input, ObjectRef};
use failover_dns::prober::{Prober, ProberConfig};
use failover_dns::resources::{HealthCheckSpec, HealthCheckType, IntOrString, ServiceRef};
use failover_dns::sink::{Admission, Sink, Update};
use failover_dns::snapshot::ZoneSettings;
use failover_dns::source::objects::{WatchedService, WatchedSlice, service_facts, slice_facts};
use failover_dns::state::State;
use serde_json::json;
use tokio_util::sync::CancellationToken;

mod support;
use support::rss_kib;

// ------------------------------------------------------------------ counting allocator

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static LIVE_USABLE: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

fn usable(p: *mut u8) -> isize {
    // SAFETY: p is a live block of mimalloc's (every block here comes from it).
    unsafe { libmimalloc_sys::mi_usable_size(p.cast()) as isize }
}

fn count(p: *mut u8, size: usize) {
    if !p.is_null() {
        LIVE.fetch_add(size as isize, Ordering::Relaxed);
        LIVE_USABLE.fetch_add(usable(p), Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
    }
}

fn uncount(p: *mut u8, size: usize) {
    LIVE.fetch_sub(size as isize, Ordering::Relaxed);
    LIVE_USABLE.fetch_sub(usable(p), Ordering::Relaxed);
    BLOCKS.fetch_sub(1, Ordering::Relaxed);
}

// SAFETY: every call is passed on to mimalloc unchanged; only counted around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        count(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        count(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        uncount(p, layout.size());
        unsafe { mimalloc::MiMalloc.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        uncount(p, layout.size());
        let q = unsafe { mimalloc::MiMalloc.realloc(p, layout, new_size) };
        if q.is_null() {
            count(p, layout.size());
        } else {
            count(q, new_size);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// The server's mimalloc options (failover_dns::allocator), set before anything allocates.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = failover_dns::allocator::configure;

#[derive(Clone, Copy, Debug, Default)]
struct Heap {
    bytes: isize,
    usable: isize,
    blocks: isize,
}

fn heap() -> Heap {
    Heap {
        bytes: LIVE.load(Ordering::Relaxed),
        usable: LIVE_USABLE.load(Ordering::Relaxed),
        blocks: BLOCKS.load(Ordering::Relaxed),
    }
}

impl std::ops::Sub for Heap {
    type Output = Heap;
    fn sub(self, o: Heap) -> Heap {
        Heap {
            bytes: self.bytes - o.bytes,
            usable: self.usable - o.usable,
            blocks: self.blocks - o.blocks,
        }
    }
}

fn settings() -> ZoneSettings {
    ZoneSettings {
        zones: vec![Fqdn::parse("big.test").unwrap()],
        nameservers: vec![],
        soa_ttl: 300,
        negative_ttl: 60,
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {name}")))
        .unwrap_or(default)
}

// ------------------------------------------------------------------ memory

const NS: &str = "payments";

/// A Service as the API server returns it (the watch decodes all of it; the facts keep
/// the type and cluster IPs).
fn service_json(i: usize) -> serde_json::Value {
    let ips: Vec<String> = (0..1 + i % 3)
        .map(|k| match k {
            1 => format!("fd00:10:96::{:x}", i + 1),
            _ => format!("10.{}.{}.{}", 96 + k, (i >> 8) & 255, i & 255),
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": format!("web-{i:05}"), "namespace": NS,
            "uid": format!("7c2f6a0e-1b7d-4c39-9a55-{i:012}"), "resourceVersion": format!("{}", 100000 + i),
            "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"app.kubernetes.io/name": format!("web-{i:05}"), "app.kubernetes.io/part-of": "shop"}
        },
        "spec": {
            "type": "ClusterIP", "clusterIP": ips[0], "clusterIPs": ips,
            "ipFamilies": if ips.len() > 1 { json!(["IPv4", "IPv6"]) } else { json!(["IPv4"]) },
            "ipFamilyPolicy": if ips.len() > 1 { "PreferDualStack" } else { "SingleStack" },
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app.kubernetes.io/name": format!("web-{i:05}")},
            "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"
        },
        "status": {"loadBalancer": {}}
    })
}

/// Its EndpointSlice as the EndpointSlice controller writes it.
fn slice_json(i: usize) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = (0..1 + (i / 3) % 3)
        .map(|k| {
            json!({
                "addresses": [format!("10.{}.{}.{}", 244 + k, (i >> 8) & 255, i & 255)],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": format!("node-{}", (i + k) % 50),
                "zone": format!("zone-{}", k),
                "targetRef": {"kind": "Pod", "namespace": NS, "name": format!("web-{i:05}-6d9f7c-{k}"),
                              "uid": format!("0b1e2d3c-4f5a-6b7c-8d9e-{i:010}{k:02}")}
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("web-{i:05}-x7k2p"), "namespace": NS,
            "uid": format!("5d1f7b2a-3c4e-4f60-8a9b-{i:012}"), "resourceVersion": format!("{}", 200000 + i),
            "generateName": format!("web-{i:05}-"), "generation": 1,
            "labels": {"kubernetes.io/service-name": format!("web-{i:05}"),
                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": format!("web-{i:05}"),
                                 "uid": format!("7c2f6a0e-1b7d-4c39-9a55-{i:012}"),
                                 "controller": true, "blockOwnerDeletion": true}]
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    })
}

/// What the watch turns object i of `kind` into (the source's functions).
fn change(kind: ObjectKind, i: usize) -> ObjectChange {
    let (id, facts) = match kind {
        ObjectKind::Service => {
            let s: WatchedService = serde_json::from_value(service_json(i)).unwrap();
            (ObjectRef::new(NS, format!("web-{i:05}")), service_facts(&s))
        }
        _ => {
            let s: WatchedSlice = serde_json::from_value(slice_json(i)).unwrap();
            (ObjectRef::new(NS, format!("web-{i:05}-x7k2p")), slice_facts(&s))
        }
    };
    ObjectChange { kind, id, facts }
}

/// Puts n objects of `kind` into the state as the sink does (batches of 1,024); the
/// state's heap growth. With `page`, as a first listing brings them: the whole page's
/// JSON text and its decoded objects are held while the batches go in (the watcher
/// lists pages of 10,000), and freed after.
fn load(state: &mut State, kind: ObjectKind, n: usize, page: bool) -> Heap {
    let before = heap();
    if !page {
        for start in (0..n).step_by(1024) {
            let batch: Vec<ObjectChange> =
                (start..n.min(start + 1024)).map(|i| change(kind, i)).collect();
            state.set_objects(batch);
        }
        return heap() - before;
    }
    for first in (0..n).step_by(10_000) {
        let range = first..n.min(first + 10_000);
        let json: Vec<serde_json::Value> = match kind {
            ObjectKind::Service => range.map(service_json).collect(),
            _ => range.map(slice_json).collect(),
        };
        let text = serde_json::to_string(&json).unwrap();
        drop(json);
        // The decoded page stays alive while its objects go in, as the watcher's does.
        match kind {
            ObjectKind::Service => {
                let items: Vec<WatchedService> = serde_json::from_str(&text).unwrap();
                feed(state, kind, &items, |s| (&s.metadata.name, service_facts(s)));
            }
            _ => {
                let items: Vec<WatchedSlice> = serde_json::from_str(&text).unwrap();
                feed(state, kind, &items, |s| (&s.metadata.name, slice_facts(s)));
            }
        }
        drop(text);
    }
    heap() - before
}

/// The page's objects into the state, in batches of 1,024.
fn feed<K>(
    state: &mut State,
    kind: ObjectKind,
    items: &[K],
    decode: impl Fn(&K) -> (&Option<String>, Option<Facts>),
) {
    for chunk in items.chunks(1024) {
        let batch = chunk
            .iter()
            .map(|k| {
                let (name, facts) = decode(k);
                ObjectChange { kind, id: ObjectRef::new(NS, name.as_deref().unwrap()), facts }
            })
            .collect();
        state.set_objects(batch);
    }
}

/// The heap of the same changes (names and facts) held in a Vec, without the Vec's buffer.
fn own_heap(kind: ObjectKind, n: usize) -> Heap {
    let before = heap();
    let held: Vec<ObjectChange> = (0..n).map(|i| change(kind, i)).collect();
    let mut h = heap() - before;
    h.bytes -= (held.capacity() * size_of::<ObjectChange>()) as isize;
    h.usable -= (held.capacity() * size_of::<ObjectChange>()) as isize;
    h.blocks -= 1;
    drop(held);
    h
}

fn memory(args: &[String]) {
    let sizes: String = arg(args, "--services", "10000,14000".to_string());
    let page = args.iter().any(|a| a == "--page");
    println!(
        "{}",
        if page { "as listed: pages of 10,000" } else { "as watched: batches of 1,024" }
    );
    println!(
        "decoded (as the source hands them over, not as stored): ObjectRef {} B, ServiceFacts {} B, SliceFacts {} B, IpAddr {} B",
        size_of::<ObjectRef>(),
        size_of::<failover_dns::model::objects::ServiceFacts>(),
        size_of::<failover_dns::model::objects::SliceFacts>(),
        size_of::<IpAddr>()
    );
    println!(
        "| Services + slices | kind | state: B/object (requested) | usable (mimalloc) | blocks/object | names + facts' own heap B (usable) | rest: tables and index B |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for n in sizes.split(',').map(|s| s.trim().parse::<usize>().unwrap()) {
        let mut state = State::new(settings());
        state.set_cluster_objects();
        let before_rss = rss_kib();
        let services = load(&mut state, ObjectKind::Service, n, page);
        let slices = load(&mut state, ObjectKind::EndpointSlice, n, page);
        let rss = rss_kib().saturating_sub(before_rss);
        let own_services = own_heap(ObjectKind::Service, n);
        let own_slices = own_heap(ObjectKind::EndpointSlice, n);
        let per = |x: isize| x as f64 / n as f64;
        for (kind, h, own) in
            [("Service", services, own_services), ("EndpointSlice", slices, own_slices)]
        {
            println!(
                "| {n} + {n} | {kind} | {:.0} | {:.0} | {:.2} | {:.0} ({:.0}) | {:.0} |",
                per(h.bytes),
                per(h.usable),
                per(h.blocks),
                per(own.bytes),
                per(own.usable),
                per(h.usable - own.usable)
            );
        }
        let all = services.usable + slices.usable;
        println!(
            "| {n} + {n} | both | {:.0} | **{:.0}** | | | | (VmRSS grew {:.0} B/object)",
            (services.bytes + slices.bytes) as f64 / (2 * n) as f64,
            all as f64 / (2 * n) as f64,
            rss as f64 * 1024.0 / (2 * n) as f64
        );
        rows.push(json!({
            "n": n, "page": page,
            "service_bytes": per(services.bytes), "service_usable": per(services.usable),
            "service_own_usable": per(own_services.usable),
            "slice_bytes": per(slices.bytes), "slice_usable": per(slices.usable),
            "slice_own_usable": per(own_slices.usable),
            "per_object_usable": all as f64 / (2 * n) as f64,
            "rss_per_object": rss as f64 * 1024.0 / (2 * n) as f64,
        }));
        drop(state);
    }
    println!("{}", json!({"bench": "objects-memory", "rows": rows}));
}

// ------------------------------------------------------------------ probes

/// Endpoint k's loopback address (127.0.1.1 ...; 250 per /24).
fn endpoint(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1 + (k / 250) as u8, 1 + (k % 250) as u8)
}

/// The target: a listener on each of n loopback addresses (one port), answering every
/// HTTP request head with 200 and keeping the connection until the client ends it
/// (a TCP probe's connection is just accepted). One thread. Prints the port.
fn target(args: &[String]) {
    let n: usize = arg(args, "--endpoints", 1000);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let listeners = 'found: {
            for _ in 0..50 {
                let first = std::net::TcpListener::bind((endpoint(0), 0)).unwrap();
                let port = first.local_addr().unwrap().port();
                let mut all = vec![first];
                for k in 1..n {
                    match std::net::TcpListener::bind((endpoint(k), port)) {
                        Ok(l) => all.push(l),
                        Err(_) => break,
                    }
                }
                if all.len() == n {
                    break 'found all;
                }
            }
            panic!("no port free on all {n} addresses");
        };
        println!("{}", listeners[0].local_addr().unwrap().port());
        for l in listeners {
            l.set_nonblocking(true).unwrap();
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = l.accept().await else { continue };
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = [0u8; 2048];
                        let mut seen = Vec::new();
                        while let Ok(read) = stream.read(&mut buf).await {
                            if read == 0 {
                                return;
                            }
                            seen.extend_from_slice(&buf[..read]);
                            while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                                seen.drain(..end + 4);
                                let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                                if stream.write_all(ok).await.is_err() {
                                    return;
                                }
                            }
                        }
                    });
                }
            });
        }
        // Ends with its parent (stdin closes).
        let mut sink = [0u8; 1];
        let _ = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let _ = std::io::stdin().read(&mut sink);
        })
        .await;
    });
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn spec(type_: HealthCheckType) -> HealthCheckSpec {
    HealthCheckSpec {
        type_,
        resource_path: (type_ == HealthCheckType::Http).then(|| "/health".into()),
        request_interval: Some("1s".into()),
        timeout: Some("500ms".into()),
        failure_threshold: Some(3),
        ..HealthCheckSpec::default()
    }
}

fn input<S>(name: &str, spec: S) -> Input<S> {
    Input { id: ObjectRef::new("bench", name), seq: 1, file: None, generation: Some(1), spec }
}

fn service_change(name: &str) -> ObjectChange {
    let s: WatchedService = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap();
    ObjectChange {
        kind: ObjectKind::Service,
        id: ObjectRef::new("bench", name),
        facts: service_facts(&s),
    }
}

fn slice_change(service: &str, name: &str, port: u16, ks: std::ops::Range<usize>) -> ObjectChange {
    let endpoints: Vec<_> = ks
        .map(|k| json!({"addresses": [endpoint(k).to_string()], "conditions": {"ready": true}}))
        .collect();
    let s: WatchedSlice = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "bench", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": [{"name": "http", "port": port}]
    }))
    .unwrap();
    ObjectChange {
        kind: ObjectKind::EndpointSlice,
        id: ObjectRef::new("bench", name),
        facts: slice_facts(&s),
    }
}

fn probe_results(registry: &prometheus_client::registry::Registry) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| l.starts_with("failoverdns_probe_results_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One variant in this process; prints one JSON line.
fn variant(args: &[String]) {
    let name: String = arg(args, "--variant", "checks".to_string());
    let proto: String = arg(args, "--proto", "http".to_string());
    let port: u16 = arg(args, "--port", 0);
    let n: usize = arg(args, "--endpoints", 1000);
    let seconds: f64 = arg(args, "--seconds", 20.0);
    let type_ = if proto == "tcp" { HealthCheckType::Tcp } else { HealthCheckType::Http };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let mut state = State::new(settings());
        state.set_cluster_objects();
        let view = state.view.clone();
        let shutdown = CancellationToken::new();
        let mut registry = failover_dns::metrics::registry();
        let (prober, transitions) =
            Prober::spawn(ProberConfig::default(), &mut registry, shutdown.clone());
        let sink = Sink::new(state);
        let handle = sink.handle();
        let running = tokio::spawn(sink.run(prober, transitions, shutdown.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (heap0, rss0) = (heap(), rss_kib());

        // What each variant is given; `healthy` counts the passing endpoints.
        let per_service = match name.as_str() {
            "service" => n,
            "services" => 10,
            _ => 0,
        };
        let mut checks = Vec::new();
        let mut objects = Vec::new();
        if let Some(services) = n.checked_div(per_service) {
            for s in 0..services {
                let service = format!("svc{s}");
                let c = HealthCheckSpec {
                    service_ref: Some(ServiceRef {
                        name: service.clone(),
                        port: Some(IntOrString::String("http".into())),
                    }),
                    ..spec(type_)
                };
                checks.push(Change::Check(input(&service, c)));
                objects.push(service_change(&service));
                // Slices of at most 100 endpoints, as the EndpointSlice controller makes them.
                let first = s * per_service;
                for (j, start) in (first..first + per_service).step_by(100).enumerate() {
                    let end = (start + 100).min(first + per_service);
                    objects.push(slice_change(
                        &service,
                        &format!("{service}-{j}"),
                        port,
                        start..end,
                    ));
                }
            }
        } else {
            for k in 0..n {
                let s = HealthCheckSpec {
                    ip_address: Some(endpoint(k).to_string()),
                    port: Some(port.into()),
                    ..spec(type_)
                };
                checks.push(Change::Check(input(&format!("c{k}"), s)));
            }
        }
        let check_ids: Vec<ObjectRef> = checks
            .iter()
            .map(|c| match c {
                Change::Check(i) => i.id.clone(),
                _ => unreachable!(),
            })
            .collect();
        handle.apply(checks, Admission::All).await.unwrap();
        handle.send(Update::Objects(objects)).await.unwrap();

        let healthy = || -> usize {
            let v = view.load();
            if per_service == 0 {
                check_ids
                    .iter()
                    .filter(|id| v.checks.contains_key(*id) && v.verdicts.get(id) == Some(true))
                    .count()
            } else {
                check_ids
                    .iter()
                    .filter_map(|id| v.endpoint_leaf(id)?.endpoints)
                    .map(|e| e.healthy as usize)
                    .sum()
            }
        };
        // Warm-up: every endpoint probed (passing), then 5 s more (watch connections open).
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last_probes = probe_results(&registry);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let probes = probe_results(&registry);
            let rate = probes - last_probes;
            last_probes = probes;
            if healthy() == n && rate >= 0.95 * n as f64 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}/{proto}: warm-up did not end: {} passing, {rate} probes/s",
                healthy()
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;

        let (cpu0, probes0, t0) = (cpu_seconds(), probe_results(&registry), Instant::now());
        let mut heaps = Vec::new();
        let mut rss = Vec::new();
        while t0.elapsed().as_secs_f64() < seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            heaps.push(heap().usable - heap0.usable);
            rss.push(rss_kib() as i64 - rss0 as i64);
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let probes = probe_results(&registry) - probes0;
        let passing = healthy();
        heaps.sort();
        rss.sort();
        let out = json!({
            "variant": name, "proto": proto, "endpoints": n, "checks": check_ids.len(),
            "seconds": wall, "cpu_cores": cpu / wall, "probes_per_s": probes / wall,
            "us_per_probe": cpu / probes * 1e6, "passing_at_end": passing,
            "heap_per_endpoint": heaps[heaps.len() / 2] as f64 / n as f64,
            "rss_per_endpoint": rss[rss.len() / 2] as f64 * 1024.0 / n as f64,
        });
        println!("{out}");
        shutdown.cancel();
        let _ = running.await;
    });
}

fn probes(args: &[String]) {
    let n: usize = arg(args, "--endpoints", 1000);
    let seconds: f64 = arg(args, "--seconds", 20.0);
    let variants: String = arg(args, "--variants", "checks,service,services".to_string());
    let protos: String = arg(args, "--protos", "http,tcp".to_string());
    let me = std::env::current_exe().unwrap();
    let mut target = Command::new(&me)
        .args(["target", "--endpoints", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let port = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(target.stdout.take().unwrap()).read_line(&mut line).unwrap();
        line.trim().parse::<u16>().expect("the target's port")
    };
    println!(
        "| variant | proto | checks | probes/s | CPU (cores) | µs per probe | heap per endpoint | VmRSS per endpoint |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for proto in protos.split(',') {
        for v in variants.split(',') {
            let out = Command::new(&me)
                .args(["variant", "--variant", v, "--proto", proto])
                .args(["--port", &port.to_string(), "--endpoints", &n.to_string()])
                .args(["--seconds", &seconds.to_string()])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let Some(row) =
                text.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            else {
                eprintln!("{v}/{proto} failed: {}", String::from_utf8_lossy(&out.stderr));
                continue;
            };
            let f = |k: &str| row[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "| {v} | {proto} | {} | {:.0} | {:.3} | {:.0} | {:.0} B | {:.0} B |",
                row["checks"],
                f("probes_per_s"),
                f("cpu_cores"),
                f("us_per_probe"),
                f("heap_per_endpoint"),
                f("rss_per_endpoint")
            );
            rows.push(row);
        }
    }
    drop(target.stdin.take());
    let _ = target.kill();
    let _ = target.wait();
    println!("{}", json!({"bench": "objects-probes", "rows": rows}));
}

// ------------------------------------------------------------------ churn

/// A Service with `e` endpoints (slices of 100) read by one check (`serviceRef` HTTP, or
/// `type: Endpoints`), or by nothing; the state's time for one slice whose first
/// endpoint flips `ready` (`State::set_objects`, what the sink runs for a watch event),
/// median and p99 of 200.
fn churn_case(reader: &str, e: usize) -> (f64, f64) {
    let mut state = State::new(settings());
    state.set_cluster_objects();
    let service = "svc0";
    let check = match reader {
        "serviceRef" => Some(HealthCheckSpec {
            service_ref: Some(ServiceRef { name: service.into(), port: None }),
            ..spec(HealthCheckType::Http)
        }),
        "Endpoints" => Some(HealthCheckSpec {
            type_: HealthCheckType::Endpoints,
            service_ref: Some(ServiceRef { name: service.into(), port: None }),
            ..HealthCheckSpec::default()
        }),
        _ => None,
    };
    if let Some(c) = check {
        state.apply([Change::Check(input(service, c))]);
    }
    let mut objects = vec![service_change(service)];
    for (j, start) in (0..e).step_by(100).enumerate() {
        objects.push(slice_change(
            service,
            &format!("{service}-{j}"),
            8080,
            start..(start + 100).min(e),
        ));
    }
    state.set_objects(objects);
    let mut micros = Vec::new();
    for round in 0..200 {
        let mut change = slice_change(service, &format!("{service}-0"), 8080, 0..100.min(e));
        if round % 2 == 0
            && let Some(Facts::EndpointSlice(f)) = &mut change.facts
        {
            f.ready_endpoints -= 1;
            f.ready_addresses = f.ready_addresses[1..].into();
        }
        let started = Instant::now();
        state.set_objects(vec![change]);
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    (micros[100], micros[198])
}

fn churn(args: &[String]) {
    let sizes: String = arg(args, "--endpoints", "10,100,1000,5000".to_string());
    println!("| Service's endpoints | read by | slice change → state updated µs, median / p99 |");
    println!("|---|---|---|");
    let mut rows = Vec::new();
    for e in sizes.split(',').map(|s| s.trim().parse::<usize>().unwrap()) {
        for reader in ["nothing", "Endpoints", "serviceRef"] {
            let (p50, p99) = churn_case(reader, e);
            println!("| {e} | {reader} | {p50:.0} / {p99:.0} |");
            rows.push(json!({"endpoints": e, "reader": reader, "p50_us": p50, "p99_us": p99}));
        }
    }
    println!("{}", json!({"bench": "objects-churn", "rows": rows}));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("memory") | None => memory(&args),
        Some("probes") => probes(&args),
        Some("churn") => churn(&args),
        Some("target") => target(&args),
        Some("variant") => variant(&args),
        Some(other) => panic!("unknown mode {other}: memory | probes | churn"),
    }
}
