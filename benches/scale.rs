//! How the core's costs grow with the configuration: `cargo bench --bench scale`
//! (`-- 1000 10000` for chosen sizes). For each size it loads N Simple A records (plus
//! a failover pair with a health check, and optionally 10k checks each used by a
//! record) into the served state in one batch, as a source's first listing is, then
//! measures:
//! * load: wall time of the batch (validation, decisions, snapshot), its CPU time
//!   (the same on an idle machine) and the resident memory it added;
//! * edit: one record's value changed (`State::apply` of one object, until the new
//!   snapshot is stored), median and p99 of 200;
//! * transition: one check flips (`State::set_health` until the new snapshot is
//!   stored), median and p99 of 200.
//!
//! Every operation is single-threaded, so its wall time is its CPU time.
//! The allocator is the server's (mimalloc with its options, `failover_dns::allocator`).

use std::time::Instant;

use failover_dns::health::LeafHealth;
use failover_dns::model::delegation::Delegation;
use failover_dns::model::{Change, Fqdn, Input, ObjectRef};
use failover_dns::resources::{
    FailoverRecordSpec, FailoverRole, HealthCheckSpec, HealthCheckType, NameDelegationSpec,
    RecordType, RoutingPolicy,
};
use failover_dns::snapshot::{ZoneSettings, wire_name};
use failover_dns::state::State;

mod support;
use support::rss_kib;

failover_dns::install_allocator!();

fn record(i: usize, name: &str, ip: String) -> Input<FailoverRecordSpec> {
    Input {
        id: ObjectRef::new("default", format!("r{i}")),
        seq: i as u64,
        file: None,
        generation: Some(1),
        spec: FailoverRecordSpec {
            name: name.into(),
            type_: RecordType::A,
            values: Some(vec![ip]),
            ..Default::default()
        },
    }
}

fn check(name: &str) -> Input<HealthCheckSpec> {
    Input {
        id: ObjectRef::new("default", name),
        seq: 0,
        file: None,
        generation: Some(1),
        spec: HealthCheckSpec {
            type_: HealthCheckType::Http,
            ip_address: Some("192.0.2.1".into()),
            request_interval: Some("1s".into()),
            ..Default::default()
        },
    }
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

fn leaf(healthy: bool) -> LeafHealth {
    LeafHealth {
        healthy,
        established: true,
        reason: if healthy { "StatusCode200" } else { "ConnectionRefused" }.into(),
        message: String::new(),
        consecutive_successes: 0,
        consecutive_failures: 0,
        last_probe_time: None,
        last_transition_time: None,
        latency: None,
        endpoints: None,
    }
}

fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of the allocator's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// CPU time of this thread: on a shared machine, wall time also counts waiting.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn percentiles(mut micros: Vec<f64>) -> (f64, f64) {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn run(n: usize, checks: usize) {
    let zone = Fqdn::parse("big.test").unwrap();
    let settings =
        ZoneSettings { zones: vec![zone], nameservers: vec![], soa_ttl: 300, negative_ttl: 60 };
    trim();
    let baseline = rss_kib();
    let mut state = State::new(settings);

    let mut changes: Vec<Change> = Vec::with_capacity(n + checks + 3);
    changes.push(Change::Check(check("web")));
    for c in 0..checks {
        changes.push(Change::Check(check(&format!("c{c}"))));
    }
    for i in 0..n {
        let mut r = record(i, &format!("h{i}.big.test"), ip(i));
        if i < checks {
            r.spec.health_check_name = Some(format!("c{i}"));
        }
        changes.push(Change::Record(r));
    }
    for (i, role) in [(n, FailoverRole::Primary), (n + 1, FailoverRole::Secondary)] {
        let mut r = record(i, "www.big.test", ip(i));
        r.spec.routing_policy = Some(RoutingPolicy::Failover);
        r.spec.failover = Some(role);
        r.spec.set_identifier = Some(format!("{role:?}"));
        if role == FailoverRole::Primary {
            r.spec.health_check_name = Some("web".into());
        }
        changes.push(Change::Record(r));
    }
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let applied = state.apply(changes);
    let load = started.elapsed();
    let load_cpu = cpu_seconds() - cpu_started;
    assert!(applied.new_errors().next().is_none(), "the benchmark configuration is valid");
    drop(applied);
    trim();
    let rss = rss_kib().saturating_sub(baseline);

    let www = wire_name(&Fqdn::parse("www.big.test").unwrap());
    let served_a = |state: &State| {
        let snapshot = state.snapshot.load();
        let node = snapshot.node(&www).expect("www is served");
        let routing = node.routing(RecordType::A).expect("an A plan");
        routing.plan.possible()[0].rdata().to_string()
    };

    let mut edits = Vec::new();
    let target = n / 2;
    for round in 0..200 {
        let r = record(target, &format!("h{target}.big.test"), ip(round + 7));
        let started = Instant::now();
        let applied = state.apply([Change::Record(r)]);
        edits.push(started.elapsed().as_secs_f64() * 1e6);
        assert_eq!(applied.keys.len(), 1, "one edited record changes one name + type");
    }

    let web = ObjectRef::new("default", "web");
    let mut transitions = Vec::new();
    for round in 0..200 {
        let healthy = round % 2 == 1;
        let started = Instant::now();
        state.set_health([(web.clone(), leaf(healthy))]);
        transitions.push(started.elapsed().as_secs_f64() * 1e6);
        let expected = if healthy { ip(n) } else { ip(n + 1) };
        assert_eq!(served_a(&state), expected, "the new answer is served");
    }

    // Who may serve which names: once delegation is on (every name settled once), a
    // delegation naming one name costs that name, and so does a record of another
    // namespace turned away from an owned name.
    let all = NameDelegationSpec {
        names: vec!["*.big.test".into()],
        namespaces: Some(vec!["default".into()]),
        namespace_selector: None,
    };
    state.set_delegation("all", Some(Delegation::parse("all", &all).unwrap()));
    let mut delegation_edits = Vec::new();
    for round in 0..200 {
        let namespaces = if round % 2 == 0 { vec!["default"] } else { vec!["default", "other"] };
        let spec = NameDelegationSpec {
            names: vec![format!("h{target}.big.test")],
            namespaces: Some(namespaces.into_iter().map(Into::into).collect()),
            namespace_selector: None,
        };
        let one = Delegation::parse("one", &spec).unwrap();
        let started = Instant::now();
        state.set_delegation("one", Some(one));
        delegation_edits.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let mut intruders = Vec::new();
    for round in 0..200 {
        let mut r = record(target, &format!("h{target}.big.test"), ip(round + 7));
        r.id = ObjectRef::new("other", "intruder");
        let started = Instant::now();
        state.apply([Change::Record(r)]);
        intruders.push(started.elapsed().as_secs_f64() * 1e6);
    }
    assert!(
        state.model().problems.iter().any(|p| p.object == ObjectRef::new("other", "intruder")),
        "the intruder is turned away"
    );

    let (edit_p50, edit_p99) = percentiles(edits);
    let (tr_p50, tr_p99) = percentiles(transitions);
    let (deleg_p50, deleg_p99) = percentiles(delegation_edits);
    let (intr_p50, intr_p99) = percentiles(intruders);
    println!(
        "| {n} | {checks} | {:.3} | {:.3} | {:.1} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} |",
        load.as_secs_f64(),
        load_cpu,
        rss as f64 / 1024.0,
        rss as f64 * 1024.0 / n as f64,
        edit_p50 / 1e3,
        edit_p99 / 1e3,
        tr_p50,
        tr_p99,
        deleg_p50,
        deleg_p99,
        intr_p50,
        intr_p99,
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1_000, 10_000, 100_000, 1_000_000] } else { sizes };
    println!(
        "| records | checks | load s | load CPU s | added RSS MiB | bytes/record | edit p50 ms | edit p99 ms | transition p50 µs | transition p99 µs | delegation edit p50 / p99 µs | turned-away record p50 / p99 µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &sizes {
        run(n, 0);
        if n == 100_000 {
            run(n, 10_000);
        }
    }
}
