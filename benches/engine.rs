//! The engine's decision per query, on the 11k-record benchmark zone shape:
//! `Snapshot::resolve` alone, and the whole UDP fast path (`wire::respond`: parse,
//! decide, encode).
//!
//!     cargo bench --bench engine

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use failover_dns::dns::wire;
use failover_dns::health::HealthMap;
use failover_dns::model::{Fqdn, Input, ObjectRef, validate};
use failover_dns::resources::{FailoverRecordSpec, RecordType, RoutingPolicy};
use failover_dns::snapshot::{Snapshot, ZoneSettings, qtype, wire_name};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn record(
    i: usize,
    name: &str,
    rtype: RecordType,
    values: Vec<String>,
) -> Input<FailoverRecordSpec> {
    Input {
        id: ObjectRef::new("default", format!("r{i}")),
        seq: i as u64,
        file: None,
        generation: None,
        spec: FailoverRecordSpec {
            name: name.into(),
            type_: rtype,
            values: Some(values),
            ..Default::default()
        },
    }
}

fn snapshot() -> Snapshot {
    let mut records = Vec::new();
    for i in 0..10_000 {
        let ip = format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
        records.push(record(i, &format!("h{i}.bench.test"), RecordType::A, vec![ip]));
    }
    for i in 0..1_000 {
        records.push(record(
            10_000 + i,
            &format!("h{i}.bench.test"),
            RecordType::Aaaa,
            vec![format!("2001:db8::{i:x}")],
        ));
    }
    for (j, w) in [3, 1, 0].iter().enumerate() {
        let mut r =
            record(20_000 + j, "lb.bench.test", RecordType::A, vec![format!("192.0.2.{j}")]);
        r.spec.routing_policy = Some(RoutingPolicy::Weighted);
        r.spec.set_identifier = Some(format!("s{j}"));
        r.spec.weight = Some(*w);
        records.push(r);
    }
    let zones = vec![Fqdn::parse("bench.test").unwrap()];
    let model = validate(&zones, &[], &records);
    assert!(model.problems.is_empty());
    let settings = ZoneSettings { zones, nameservers: vec![], soa_ttl: 300, negative_ttl: 60 };
    let verdicts = HealthMap::default().resolve(&model);
    Snapshot::build(&settings, &model, &verdicts, 1)
}

fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn bench(c: &mut Criterion) {
    let snap = snapshot();
    let mut rng = SmallRng::seed_from_u64(7);
    let h = wire_name(&Fqdn::parse("h4242.bench.test").unwrap());
    c.bench_function("resolve A (simple)", |b| {
        b.iter(|| black_box(snap.resolve(black_box(&h), qtype::A, &mut rng).records.len()))
    });
    let lb = wire_name(&Fqdn::parse("lb.bench.test").unwrap());
    c.bench_function("resolve A (weighted)", |b| {
        b.iter(|| black_box(snap.resolve(black_box(&lb), qtype::A, &mut rng).records.len()))
    });
    let nx = wire_name(&Fqdn::parse("nx42.bench.test").unwrap());
    c.bench_function("resolve NXDOMAIN", |b| {
        b.iter(|| black_box(snap.resolve(black_box(&nx), qtype::A, &mut rng).records.len()))
    });

    let mut out = Vec::with_capacity(512);
    for (label, name, t) in [
        ("A", "H4242.bench.test", qtype::A),
        ("NXDOMAIN", "nx42.bench.test", qtype::A),
        ("weighted", "lb.bench.test", qtype::A),
    ] {
        let q = query(name, t);
        c.bench_function(&format!("wire::respond {label}"), |b| {
            b.iter(|| black_box(wire::respond(&snap, black_box(&q), true, &mut rng, &mut out)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
