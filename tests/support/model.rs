//! Helpers for the tests of the pure layers (model validation, health map, routing
//! engine, snapshot): build resource specs, validate them into a `Model`, set leaf
//! health, decide, sample plans and resolve queries. No I/O.
//!
//! `use crate::support::model::*;` in place of `support::*`: some names (`settings`,
//! `resolve`, `tcp`) mean the pure-layer thing here and the socket thing there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use failover_dns::engine::{Decision, Engine, Plan};
use failover_dns::health::{HealthMap, LeafHealth, Verdicts};
use failover_dns::model::{Fqdn, Input, Key, Model, ObjectRef, Problem, Severity, validate};
use failover_dns::resources::{
    AliasTarget, FailoverRecordSpec, FailoverRole, HealthCheckSpec, HealthCheckType, RecordType,
    RoutingPolicy,
};
use failover_dns::snapshot::{Answer, Owner, Rcode, Snapshot, ZoneSettings, wire_name};
use hickory_proto::rr::RData;
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// The namespace every helper object lives in unless told otherwise.
pub const NS: &str = "default";

pub fn fqdn(name: &str) -> Fqdn {
    Fqdn::parse(name).unwrap_or_else(|e| panic!("test name {name:?}: {e}"))
}

pub fn oref(name: &str) -> ObjectRef {
    ObjectRef::new(NS, name)
}

pub fn key(name: &str, rtype: RecordType) -> Key {
    (fqdn(name), rtype)
}

// ------------------------------------------------------------------ record specs

fn record(
    name: &str,
    rtype: RecordType,
    policy: Option<RoutingPolicy>,
    values: &[&str],
) -> FailoverRecordSpec {
    FailoverRecordSpec {
        name: name.into(),
        type_: rtype,
        routing_policy: policy,
        values: Some(values.iter().map(|v| v.to_string()).collect()),
        ..FailoverRecordSpec::default()
    }
}

pub fn simple(name: &str, rtype: RecordType, values: &[&str]) -> FailoverRecordSpec {
    record(name, rtype, None, values)
}

pub fn simple_a(name: &str, values: &[&str]) -> FailoverRecordSpec {
    simple(name, RecordType::A, values)
}

pub fn weighted(name: &str, set_id: &str, weight: i64, values: &[&str]) -> FailoverRecordSpec {
    FailoverRecordSpec {
        set_identifier: Some(set_id.into()),
        weight: Some(weight),
        ..record(name, RecordType::A, Some(RoutingPolicy::Weighted), values)
    }
}

pub fn failover(
    name: &str,
    set_id: &str,
    role: FailoverRole,
    values: &[&str],
) -> FailoverRecordSpec {
    FailoverRecordSpec {
        set_identifier: Some(set_id.into()),
        failover: Some(role),
        ..record(name, RecordType::A, Some(RoutingPolicy::Failover), values)
    }
}

pub fn primary(name: &str, values: &[&str]) -> FailoverRecordSpec {
    failover(name, "primary", FailoverRole::Primary, values)
}

pub fn secondary(name: &str, values: &[&str]) -> FailoverRecordSpec {
    failover(name, "secondary", FailoverRole::Secondary, values)
}

pub fn multivalue(name: &str, set_id: &str, values: &[&str]) -> FailoverRecordSpec {
    FailoverRecordSpec {
        set_identifier: Some(set_id.into()),
        ..record(name, RecordType::A, Some(RoutingPolicy::MultiValue), values)
    }
}

/// Chainable tweaks of a record spec.
pub trait RecordExt: Sized {
    fn hc(self, check: &str) -> Self;
    fn ttl(self, ttl: i64) -> Self;
    fn rtype(self, rtype: RecordType) -> Self;
    /// Turns the record into an alias (drops its values).
    fn alias(self, target: &str, evaluate_target_health: bool) -> Self;
}

impl RecordExt for FailoverRecordSpec {
    fn hc(mut self, check: &str) -> Self {
        self.health_check_name = Some(check.into());
        self
    }
    fn ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }
    fn rtype(mut self, rtype: RecordType) -> Self {
        self.type_ = rtype;
        self
    }
    fn alias(mut self, target: &str, evaluate_target_health: bool) -> Self {
        self.values = None;
        self.alias_target = Some(AliasTarget { name: target.into(), evaluate_target_health });
        self
    }
}

// ------------------------------------------------------------------ health check specs

pub fn http(ip: &str) -> HealthCheckSpec {
    HealthCheckSpec {
        type_: HealthCheckType::Http,
        ip_address: Some(ip.into()),
        ..HealthCheckSpec::default()
    }
}

pub fn https(ip: &str) -> HealthCheckSpec {
    HealthCheckSpec { type_: HealthCheckType::Https, ..http(ip) }
}

pub fn tcp(ip: &str, port: i64) -> HealthCheckSpec {
    HealthCheckSpec { type_: HealthCheckType::Tcp, port: Some(port), ..http(ip) }
}

pub fn calculated(children: &[&str], threshold: i64) -> HealthCheckSpec {
    HealthCheckSpec {
        type_: HealthCheckType::Calculated,
        child_health_checks: Some(children.iter().map(|c| c.to_string()).collect()),
        health_threshold: Some(threshold),
        ..HealthCheckSpec::default()
    }
}

/// The state a prober would report after a verdict.
pub fn leaf(healthy: bool) -> LeafHealth {
    LeafHealth {
        healthy,
        established: true,
        reason: if healthy { "StatusCode200".into() } else { "ConnectionRefused".into() },
        message: String::new(),
        consecutive_successes: if healthy { 3 } else { 0 },
        consecutive_failures: if healthy { 0 } else { 3 },
        last_probe_time: None,
        last_transition_time: None,
        latency: None,
        endpoints: None,
    }
}

// ------------------------------------------------------------------ the world

/// Zones, health checks, records and the prober's view of the leaf checks.
pub struct World {
    pub zones: Vec<Fqdn>,
    pub checks: Vec<Input<HealthCheckSpec>>,
    pub records: Vec<Input<FailoverRecordSpec>>,
    pub health: HealthMap,
    next_seq: u64,
}

pub fn input<S>(namespace: &str, name: &str, seq: u64, spec: S) -> Input<S> {
    Input { id: ObjectRef::new(namespace, name), seq, file: None, generation: None, spec }
}

impl World {
    pub fn new(zones: &[&str]) -> Self {
        Self {
            zones: zones.iter().map(|z| fqdn(z)).collect(),
            checks: Vec::new(),
            records: Vec::new(),
            health: HealthMap::default(),
            next_seq: 1,
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Adds a record, younger than everything added before.
    pub fn record(&mut self, object: &str, spec: FailoverRecordSpec) -> &mut Self {
        let seq = self.seq();
        self.records.push(input(NS, object, seq, spec));
        self
    }

    /// Adds a record with an explicit age.
    pub fn record_seq(&mut self, object: &str, seq: u64, spec: FailoverRecordSpec) -> &mut Self {
        self.records.push(input(NS, object, seq, spec));
        self
    }

    pub fn record_in(
        &mut self,
        namespace: &str,
        object: &str,
        spec: FailoverRecordSpec,
    ) -> &mut Self {
        let seq = self.seq();
        self.records.push(input(namespace, object, seq, spec));
        self
    }

    pub fn check(&mut self, object: &str, spec: HealthCheckSpec) -> &mut Self {
        let seq = self.seq();
        self.checks.push(input(NS, object, seq, spec));
        self
    }

    pub fn check_in(&mut self, namespace: &str, object: &str, spec: HealthCheckSpec) -> &mut Self {
        let seq = self.seq();
        self.checks.push(input(namespace, object, seq, spec));
        self
    }

    /// An HTTP check whose probes have established `healthy`.
    pub fn probe(&mut self, object: &str, healthy: bool) -> &mut Self {
        self.check(object, http("192.0.2.1"));
        self.set(object, healthy)
    }

    /// What the prober reports for a leaf check.
    pub fn set(&mut self, object: &str, healthy: bool) -> &mut Self {
        self.health.set(oref(object), leaf(healthy));
        self
    }

    pub fn model(&self) -> Model {
        validate(&self.zones, &self.checks, &self.records)
    }

    /// The model, asserting that nothing was rejected.
    pub fn valid_model(&self) -> Model {
        let model = self.model();
        assert_no_errors(&model);
        model
    }

    pub fn verdicts(&self, model: &Model) -> Verdicts {
        self.health.resolve(model)
    }

    /// The engine's decision for one name + type of a valid world.
    pub fn decide(&self, name: &str, rtype: RecordType) -> Arc<Decision> {
        let model = self.valid_model();
        let verdicts = self.verdicts(&model);
        Engine::new(&model, &verdicts)
            .decide(&key(name, rtype))
            .unwrap_or_else(|| panic!("no decision for {name} {rtype:?}"))
    }

    pub fn decide_a(&self, name: &str) -> Arc<Decision> {
        self.decide(name, RecordType::A)
    }

    pub fn decide_all(&self) -> HashMap<Key, Arc<Decision>> {
        let model = self.model();
        let verdicts = self.verdicts(&model);
        Engine::new(&model, &verdicts).decide_all()
    }

    pub fn snapshot(&self, serial: u32) -> Snapshot {
        let model = self.model();
        let verdicts = self.verdicts(&model);
        Snapshot::build(&settings(&self.zones), &model, &verdicts, serial)
    }
}

// ------------------------------------------------------------------ problems

pub fn errors(model: &Model) -> Vec<&Problem> {
    model.problems.iter().filter(|p| p.severity == Severity::Error).collect()
}

pub fn assert_no_errors(model: &Model) {
    let errors = errors(model);
    assert!(errors.is_empty(), "expected no errors, got:\n{}", show(&errors));
}

fn show(problems: &[&Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// The problems (any severity) reported for one object (in the default namespace).
pub fn problems_of<'m>(model: &'m Model, object: &str) -> Vec<&'m Problem> {
    model.problems.iter().filter(|p| p.object == oref(object)).collect()
}

/// Asserts an Error naming `object` (default namespace) and exactly `field`.
pub fn assert_error(model: &Model, object: &str, field: &str) -> Problem {
    assert_problem(model, Severity::Error, &oref(object), field)
}

pub fn assert_warning(model: &Model, object: &str, field: &str) -> Problem {
    assert_problem(model, Severity::Warning, &oref(object), field)
}

pub fn assert_problem(
    model: &Model,
    severity: Severity,
    object: &ObjectRef,
    field: &str,
) -> Problem {
    let all: Vec<&Problem> = model.problems.iter().collect();
    let found = model
        .problems
        .iter()
        .find(|p| p.severity == severity && &p.object == object && p.field == field);
    match found {
        Some(p) => {
            assert!(!p.message.is_empty(), "problem {p} has an empty message");
            p.clone()
        }
        None => panic!("expected a {severity:?} for {object} on {field}, got:\n{}", show(&all)),
    }
}

/// True when the object's record set is part of the served model.
pub fn served(model: &Model, object: &str) -> bool {
    served_ref(model, &oref(object))
}

pub fn served_ref(model: &Model, object: &ObjectRef) -> bool {
    model.sets.values().flatten().any(|s| &s.id == object)
}

/// Asserts the object is rejected: an Error names it and it is not served.
pub fn assert_rejected(model: &Model, object: &str, field: &str) -> Problem {
    let p = assert_error(model, object, field);
    assert!(!served(model, object), "{object} is rejected but still served");
    p
}

pub fn assert_served(model: &Model, object: &str) {
    let mine = problems_of(model, object);
    assert!(served(model, object), "{object} should be served; its problems:\n{}", show(&mine));
    assert!(
        mine.iter().all(|p| p.severity != Severity::Error),
        "{object} is served but has errors:\n{}",
        show(&mine)
    );
}

// ------------------------------------------------------------------ sampling

pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

pub fn rdata_string(rdata: &RData) -> String {
    rdata.to_string()
}

/// One query's answer: the values in answer order.
pub fn answer(plan: &Plan, rng: &mut SmallRng) -> Vec<String> {
    let mut out = Vec::new();
    plan.sample(rng, &mut out);
    out.iter().map(|r| rdata_string(&r.rdata())).collect()
}

/// One query's answer with TTLs.
pub fn answer_ttl(plan: &Plan, rng: &mut SmallRng) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    plan.sample(rng, &mut out);
    out.iter().map(|r| (rdata_string(&r.rdata()), r.ttl)).collect()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

pub fn strings(values: &[&str]) -> Vec<String> {
    sorted(values.iter().map(|v| v.to_string()).collect())
}

/// Every value the plan can answer with.
pub fn possible(plan: &Plan) -> BTreeSet<String> {
    plan.possible().iter().map(|r| rdata_string(&r.rdata())).collect()
}

pub fn set_of(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// How often each (sorted) answer came up in `n` queries.
pub fn counts(plan: &Plan, n: usize, seed: u64) -> BTreeMap<Vec<String>, usize> {
    let mut rng = rng(seed);
    let mut out = BTreeMap::new();
    for _ in 0..n {
        *out.entry(sorted(answer(plan, &mut rng))).or_insert(0) += 1;
    }
    out
}

/// The exact probability of each (sorted) answer of a plan without a MultiValue part,
/// read off the plan's structure.
pub fn exact(plan: &Plan) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    walk(plan, 1.0, &mut out);
    out
}

fn walk(plan: &Plan, p: f64, out: &mut BTreeMap<Vec<String>, f64>) {
    match plan {
        Plan::Fixed(rrs) => {
            let values = sorted(rrs.iter().map(|r| rdata_string(&r.rdata())).collect());
            *out.entry(values).or_insert(0.0) += p;
        }
        Plan::Weighted { total, choices } => {
            let mut previous = 0;
            assert!(*total > 0, "a weighted plan with total 0");
            for (bound, sub) in choices.iter() {
                assert!(
                    *bound > previous,
                    "cumulative bounds must increase: {previous} then {bound}"
                );
                walk(sub, p * (*bound - previous) as f64 / *total as f64, out);
                previous = *bound;
            }
            assert_eq!(previous, *total, "the last bound must equal the total");
        }
        Plan::Multi(_) => panic!("exact() does not handle MultiValue plans"),
    }
}

/// Asserts that `count` of `n` draws is consistent with probability `p`: within six
/// standard deviations (plus one), a bound a correct implementation practically never
/// crosses (about 2e-9 per check), while a wrong probability of a few percent is caught
/// with the sample sizes used here.
pub fn assert_binomial(count: usize, n: usize, p: f64, what: &str) {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    let slack = 6.0 * sigma + 1.0;
    assert!(
        (count as f64 - mean).abs() <= slack,
        "{what}: {count} of {n} draws, expected {mean:.1} ± {slack:.1} (p = {p:.4})"
    );
}

// ------------------------------------------------------------------ snapshot

pub fn settings(zones: &[Fqdn]) -> ZoneSettings {
    ZoneSettings {
        zones: zones.to_vec(),
        nameservers: Vec::new(),
        soa_ttl: 3600,
        negative_ttl: 300,
    }
}

/// A resolved answer in plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub rcode: Rcode,
    /// (owner, type code, value, ttl)
    pub records: Vec<(String, u16, String, u32)>,
    /// The zone whose SOA goes into the authority section.
    pub soa_zone: Option<String>,
    pub soa_serial: Option<u32>,
    pub policy: Option<RoutingPolicy>,
}

impl Resolved {
    pub fn values(&self) -> Vec<String> {
        self.records.iter().map(|(_, _, v, _)| v.clone()).collect()
    }

    pub fn types(&self) -> Vec<u16> {
        self.records.iter().map(|(_, t, _, _)| *t).collect()
    }
}

/// Resolves a name as written by a user (any case, trailing dot optional).
pub fn resolve(snapshot: &Snapshot, name: &str, qtype: u16, rng: &mut SmallRng) -> Resolved {
    let qname = fqdn(name);
    let wire = wire_name(&qname);
    let answer: Answer<'_> = snapshot.resolve(&wire, qtype, rng);
    let records = answer
        .records
        .iter()
        .map(|(owner, code, rr)| {
            let owner = match owner {
                Owner::Query => qname.to_string(),
                Owner::Node(node) => fqdn(&node.name().to_string()).to_string(),
            };
            (owner, *code, rdata_string(&rr.rdata()), rr.ttl)
        })
        .collect();
    let soa_serial = answer.soa.map(|z| match &z.soa.rdata() {
        RData::SOA(soa) => soa.serial,
        other => panic!("zone SOA is {other:?}"),
    });
    Resolved {
        rcode: answer.rcode,
        records,
        soa_zone: answer.soa.map(|z| z.name.to_string()),
        soa_serial,
        policy: answer.policy,
    }
}
