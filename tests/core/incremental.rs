//! The oracle test of the incremental core: random sequences of adds, edits, deletes
//! and health transitions are applied one at a time to the served state, and after
//! every step the model (accepted record sets, checks, problems), the verdicts, the
//! served snapshot (every name, every type's plan and health) and the explained
//! decisions must equal a full rebuild from scratch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::support::model::*;
use failover_dns::engine::{Engine, Routing};
use failover_dns::health::{HealthMap, PeerView, Verdicts};
use failover_dns::model::{Change, Check, Input, Kind, Model, ObjectRef, Problem, validate};
use failover_dns::resources::{
    AliasTarget, FailoverRecordSpec, FailoverRole, HealthCheckSpec, HealthCheckType, RecordType,
    RoutingPolicy,
};
use failover_dns::snapshot::{Node, Snapshot};
use failover_dns::state::State;
use proptest::prelude::*;

const ZONE: &str = "example.com";
const NAMES: &[&str] =
    &["example.com", "www.example.com", "api.example.com", "a.b.example.com", "b.example.com"];
const RECORDS: usize = 8;
const CHECKS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Record(usize, FailoverRecordSpec),
    RemoveRecord(usize),
    Check(usize, HealthCheckSpec),
    RemoveCheck(usize),
    Health(usize, bool),
    /// Another checker's report of a check (None: it sees it healthy, nothing kept;
    /// Some(None): no established verdict yet).
    PeerView(usize, usize, Option<Option<bool>>),
    /// A checker's report expired.
    ForgetChecker(usize),
    Quorum(u8),
}

fn record_spec() -> impl Strategy<Value = FailoverRecordSpec> {
    let name = prop::sample::select(NAMES);
    let rtype = prop::sample::select(
        &[RecordType::A, RecordType::A, RecordType::Cname, RecordType::Txt][..],
    );
    let policy = prop::sample::select(
        &[
            None,
            Some(RoutingPolicy::Weighted),
            Some(RoutingPolicy::Failover),
            Some(RoutingPolicy::MultiValue),
        ][..],
    );
    let set_id = prop::option::of(prop::sample::select(&["one", "two", "three"][..]));
    let role = prop::sample::select(&[FailoverRole::Primary, FailoverRole::Secondary][..]);
    let weight = 0i64..3;
    let data = prop_oneof![
        3 => (1u8..4).prop_map(|n| (Some(n), None, false)),
        2 => (prop::sample::select(NAMES), any::<bool>()).prop_map(|(t, eth)| (None, Some(t), eth)),
        1 => Just((Some(0), None, false)), // an invalid value
    ];
    let check = prop::option::of(0..CHECKS + 1);
    (name, rtype, policy, set_id, role, weight, data, check).prop_map(
        |(name, rtype, policy, set_id, role, weight, (values, alias, eth), check)| {
            let values = values.map(|n| match (rtype, n) {
                (_, 0) => vec!["not a value".to_string()],
                (RecordType::A, n) => (0..n).map(|i| format!("192.0.2.{}", i + n)).collect(),
                (RecordType::Cname, n) => vec![format!("t{n}.example.net")],
                (_, n) => vec![format!("\"txt {n}\"")],
            });
            FailoverRecordSpec {
                name: name.into(),
                type_: rtype,
                routing_policy: policy,
                set_identifier: if policy.is_some() { set_id.map(Into::into) } else { None },
                weight: (policy == Some(RoutingPolicy::Weighted)).then_some(weight),
                failover: (policy == Some(RoutingPolicy::Failover)).then_some(role),
                health_check_name: check.map(|c| format!("c{c}")),
                values,
                alias_target: alias
                    .map(|t| AliasTarget { name: t.into(), evaluate_target_health: eth }),
                ..FailoverRecordSpec::default()
            }
        },
    )
}

fn check_spec() -> impl Strategy<Value = HealthCheckSpec> {
    prop_oneof![
        3 => (any::<bool>(), any::<bool>()).prop_map(|(inverted, disabled)| HealthCheckSpec {
            inverted: Some(inverted),
            disabled: Some(disabled && inverted),
            ..http("192.0.2.1")
        }),
        2 => (prop::collection::vec(0..CHECKS + 1, 1..3), 0i64..3).prop_map(|(children, threshold)| HealthCheckSpec {
            type_: HealthCheckType::Calculated,
            child_health_checks: Some(children.into_iter().map(|c| format!("c{c}")).collect::<BTreeSet<_>>().into_iter().collect()),
            health_threshold: Some(threshold),
            ..HealthCheckSpec::default()
        }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..RECORDS, record_spec()).prop_map(|(i, s)| Op::Record(i, s)),
        2 => (0..RECORDS).prop_map(Op::RemoveRecord),
        2 => (0..CHECKS, check_spec()).prop_map(|(i, s)| Op::Check(i, s)),
        1 => (0..CHECKS).prop_map(Op::RemoveCheck),
        4 => (0..CHECKS, any::<bool>()).prop_map(|(i, h)| Op::Health(i, h)),
        2 => (0..CHECKS, 0..3usize, prop::option::of(prop::option::of(any::<bool>())))
            .prop_map(|(i, c, h)| Op::PeerView(i, c, h)),
        1 => (0..3usize).prop_map(Op::ForgetChecker),
        1 => prop::sample::select(&[0u8, 18, 50][..]).prop_map(Op::Quorum),
    ]
}

/// What the sources have handed over so far, and what the prober reported.
#[derive(Default)]
struct Inputs {
    records: BTreeMap<usize, Input<FailoverRecordSpec>>,
    checks: BTreeMap<usize, Input<HealthCheckSpec>>,
    leaves: HealthMap,
    next_seq: u64,
}

impl Inputs {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// An edit keeps the object's age; a new object is the youngest.
    fn record(&mut self, i: usize, spec: FailoverRecordSpec) -> Input<FailoverRecordSpec> {
        let seq = match self.records.get(&i) {
            Some(old) => old.seq,
            None => self.seq(),
        };
        let id = record_ref(i);
        let input = input(&id.namespace, &id.name, seq, spec);
        self.records.insert(i, input.clone());
        input
    }

    fn check(&mut self, i: usize, spec: HealthCheckSpec) -> Input<HealthCheckSpec> {
        let seq = match self.checks.get(&i) {
            Some(old) => old.seq,
            None => self.seq(),
        };
        let input = input(NS, &format!("c{i}"), seq, spec);
        self.checks.insert(i, input.clone());
        input
    }

    fn oracle(&self) -> Model {
        let checks: Vec<_> = self.checks.values().cloned().collect();
        let records: Vec<_> = self.records.values().cloned().collect();
        validate(&[fqdn(ZONE)], &checks, &records)
    }
}

/// Most records live in one namespace; every fourth in another, which names owned by
/// the first turn away (and which owns the names it claims first).
fn record_ref(i: usize) -> ObjectRef {
    ObjectRef::new(if i % 4 == 3 { "tenant" } else { NS }, format!("r{i}"))
}

fn apply(state: &mut State, inputs: &mut Inputs, op: Op) {
    match op {
        Op::Record(i, spec) => {
            let input = inputs.record(i, spec);
            state.apply([Change::Record(input)]);
        }
        Op::RemoveRecord(i) => {
            inputs.records.remove(&i);
            state.apply([Change::RemoveRecord(record_ref(i))]);
        }
        Op::Check(i, spec) => {
            let input = inputs.check(i, spec);
            state.apply([Change::Check(input)]);
        }
        Op::RemoveCheck(i) => {
            inputs.checks.remove(&i);
            state.apply([Change::RemoveCheck(oref(&format!("c{i}")))]);
        }
        Op::Health(i, healthy) => {
            let id = oref(&format!("c{i}"));
            // The prober only reports checks that exist.
            if state.model().checks.contains_key(&id) {
                inputs.leaves.set(id.clone(), leaf(healthy));
            }
            state.set_health([(id, leaf(healthy))]);
        }
        Op::PeerView(i, checker, healthy) => {
            let (id, checker) =
                (oref(&format!("c{i}")), Arc::<str>::from(format!("peer-{checker}")));
            let view = healthy.map(|healthy| PeerView {
                healthy,
                reason: Arc::from(match healthy {
                    Some(true) => "Healthy",
                    Some(false) => "Timeout",
                    None => "Pending",
                }),
                since: std::time::SystemTime::UNIX_EPOCH,
            });
            // Kept even for checks that do not exist (yet): they count once they do.
            inputs.leaves.checker_report(&checker, Arc::from([]), [(id.clone(), view.clone())]);
            state.checker_report(&checker, Arc::from([]), [(id, view)]);
        }
        Op::ForgetChecker(checker) => {
            inputs.leaves.forget_checker(&format!("peer-{checker}"));
            state.forget_checker(&format!("peer-{checker}"));
        }
        Op::Quorum(percent) => {
            inputs.leaves.set_quorum(percent);
            state.set_quorum(percent);
        }
    }
    // A check that is gone (or invalid) loses what its probes established.
    let valid: BTreeSet<ObjectRef> = state.model().checks.keys().cloned().collect();
    let model = inputs.oracle();
    assert_eq!(valid, model.checks.keys().cloned().collect::<BTreeSet<_>>());
    inputs.leaves.retain_checks(&model);
}

fn routing_eq(a: Option<&Routing>, b: Option<&Routing>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.same(b),
        (None, None) => true,
        _ => false,
    }
}

fn describe(node: &Node) -> String {
    let types: Vec<String> =
        node.types.iter().map(|(c, o)| format!("{c}:{}:{:?}", o.healthy, o.plan)).collect();
    format!("{:?} cname={:?} types={types:?}", node.name(), node.cname.as_ref().map(|o| o.healthy))
}

fn assert_same(state: &State, inputs: &Inputs, step: usize) {
    let oracle = inputs.oracle();
    let model = state.model();
    assert_eq!(model.problems, oracle.problems, "step {step}: problems");
    let ids = |m: &Model| -> BTreeMap<_, Vec<ObjectRef>> {
        m.sets.iter().map(|(k, v)| (k.clone(), v.iter().map(|s| s.id.clone()).collect())).collect()
    };
    assert_eq!(ids(model), ids(&oracle), "step {step}: accepted record sets");
    for (key, sets) in &model.sets {
        for (a, b) in sets.iter().zip(&oracle.sets[key]) {
            assert_eq!(**a, **b, "step {step}: record set {}", a.id);
        }
    }
    assert_eq!(model.checks, oracle.checks, "step {step}: checks");
    let verdicts = inputs.leaves.resolve(&oracle);
    assert_eq!(state.verdicts(), &verdicts, "step {step}: verdicts");

    let served = state.snapshot.load();
    let rebuilt = Snapshot::build(&settings(&[fqdn(ZONE)]), &oracle, &verdicts, served.serial);
    let names = |s: &Snapshot| s.nodes().map(|n| n.wire().to_vec()).collect::<BTreeSet<_>>();
    assert_eq!(names(&served), names(&rebuilt), "step {step}: names served");
    assert_eq!(served.name_count(), rebuilt.name_count());
    for node in rebuilt.nodes() {
        let mine = served.node(node.wire()).expect("compared above");
        for rtype in [RecordType::A, RecordType::Cname, RecordType::Txt] {
            assert!(
                routing_eq(mine.routing(rtype), node.routing(rtype)),
                "step {step}: {rtype:?} at {}: served {} vs rebuilt {}",
                node.name(),
                describe(mine),
                describe(node)
            );
        }
        let fixed = |n: &Node| {
            n.fixed_answers().map(|f| (f.code, f.count, f.wire.to_vec())).collect::<BTreeSet<_>>()
        };
        assert_eq!(fixed(mine), fixed(node), "step {step}: pre-encoded answers at {}", node.name());
    }
    assert_view(state, &oracle, &verdicts, step);
    // /explain reads the decisions of the served model and verdicts.
    let mut served_engine = Engine::new(model, state.verdicts());
    let mut oracle_engine = Engine::new(&oracle, &verdicts);
    for key in oracle.sets.keys() {
        let a = serde_json::to_value(&*served_engine.decide(key).unwrap()).unwrap();
        let b = serde_json::to_value(&*oracle_engine.decide(key).unwrap()).unwrap();
        assert_eq!(a, b, "step {step}: explained decision of {key:?}");
    }
}

/// What readers see (the view published with the snapshot) holds what a full rebuild
/// holds: the view is kept by deltas, like the model and the snapshot.
fn assert_view(state: &State, oracle: &Model, verdicts: &Verdicts, step: usize) {
    let view = state.view.load();
    assert_eq!(view.serial(), state.snapshot.load().serial, "step {step}: published together");
    let sets: BTreeMap<_, Vec<ObjectRef>> = view
        .sets
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|s| s.id.clone()).collect()))
        .collect();
    let expected: BTreeMap<_, Vec<ObjectRef>> = oracle
        .sets
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|s| s.id.clone()).collect()))
        .collect();
    assert_eq!(sets, expected, "step {step}: the view's record sets");
    let checks: BTreeMap<ObjectRef, Check> =
        view.checks.iter().map(|(id, c)| (id.clone(), (**c).clone())).collect();
    let expected: BTreeMap<ObjectRef, Check> =
        oracle.checks.iter().map(|(id, c)| (id.clone(), (**c).clone())).collect();
    assert_eq!(checks, expected, "step {step}: the view's checks");
    assert_eq!(
        view.problems.iter().cloned().collect::<BTreeSet<_>>(),
        oracle.problems,
        "step {step}"
    );
    assert_eq!(&view.verdicts, verdicts, "step {step}: the view's verdicts");
    let known: BTreeSet<(Kind, ObjectRef)> = oracle
        .check_ids()
        .map(|id| (Kind::HealthCheck, id.clone()))
        .chain(oracle.record_ids().map(|id| (Kind::FailoverRecord, id.clone())))
        .collect();
    assert_eq!(
        view.objects.keys().cloned().collect::<BTreeSet<_>>(),
        known,
        "step {step}: objects"
    );
    for ((kind, id), facts) in view.objects.iter() {
        assert_eq!(facts.generation, oracle.generation(*kind, id), "step {step}: {id}");
        let problems: BTreeSet<Problem> =
            oracle.problems_of(*kind, id).unwrap().into_iter().cloned().collect();
        assert_eq!(
            facts.problems.iter().cloned().collect::<BTreeSet<_>>(),
            problems,
            "step {step}: {id}"
        );
        let accepted = oracle.accepted_record(id).filter(|_| *kind == Kind::FailoverRecord);
        assert_eq!(
            facts.accepted.as_ref().map(|s| &s.id),
            accepted.map(|s| &s.id),
            "step {step}: {id}"
        );
        let rejected = *kind == Kind::FailoverRecord && oracle.record_rejection(id).is_some();
        assert_eq!(facts.rejected_by_relation, rejected, "step {step}: {id}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_updates_equal_a_full_rebuild(ops in prop::collection::vec(op(), 1..40)) {
        let mut state = State::new(settings(&[fqdn(ZONE)]));
        // Cluster mode's view: every object's facts too.
        state.track_status();
        let mut inputs = Inputs::default();
        for (step, op) in ops.into_iter().enumerate() {
            apply(&mut state, &mut inputs, op);
            assert_same(&state, &inputs, step);
        }
    }
}

/// A batch with several changes (a file reload) and its rollback restore exactly what
/// was served before.
#[test]
fn a_rolled_back_batch_restores_what_was_served() {
    let mut state = State::new(settings(&[fqdn(ZONE)]));
    state.track_status();
    let mut inputs = Inputs::default();
    let p = inputs.record(0, primary("www.example.com", &["192.0.2.1"]));
    let s = inputs.record(1, secondary("www.example.com", &["192.0.2.2"]));
    let a = inputs.record(2, simple_a("example.com", &[]).alias("www.example.com", true));
    state.apply([Change::Record(p), Change::Record(s), Change::Record(a)]);
    assert_same(&state, &inputs, 0);
    let before: Vec<String> = state.model().problems.iter().map(ToString::to_string).collect();
    let served_before = state.snapshot.load_full();

    // Replace the PRIMARY by a Simple record at the same name: two new errors.
    let mut attempt = Inputs { next_seq: inputs.next_seq, ..Inputs::default() };
    let bad = attempt.record(3, simple_a("www.example.com", &["192.0.2.9"]));
    let mut rejects = false;
    let applied =
        state.apply_if([Change::RemoveRecord(oref("r0")), Change::Record(bad)], |applied| {
            rejects = applied.new_errors().count() > 0;
            false
        });
    assert!(rejects && applied.is_none(), "the edit rejects records, and is refused");
    assert!(
        Arc::ptr_eq(&state.snapshot.load_full(), &served_before),
        "nothing was served meanwhile"
    );
    assert_same(&state, &inputs, 1);
    let after: Vec<String> = state.model().problems.iter().map(ToString::to_string).collect();
    assert_eq!(before, after);
    let served = state.snapshot.load();
    for node in served_before.nodes() {
        let now = served.node(node.wire()).expect("every name is back");
        assert!(routing_eq(now.routing(RecordType::A), node.routing(RecordType::A)));
    }
}

/// One edited record among many settles one name and re-decides one name + type.
#[test]
fn one_edit_touches_one_name() {
    let mut state = State::new(settings(&[fqdn(ZONE)]));
    state.track_status();
    let mut inputs = Inputs::default();
    let all: Vec<Change> = (0..2000)
        .map(|i| {
            Change::Record(inputs.record(i, simple_a(&format!("h{i}.example.com"), &["192.0.2.1"])))
        })
        .collect();
    state.apply(all);
    let serial = state.snapshot.load().serial;
    let edited = inputs.record(1234, simple_a("h1234.example.com", &["192.0.2.2"]));
    let applied = state.apply([Change::Record(edited)]);
    assert_eq!(applied.keys.len(), 1);
    assert!(applied.keys.contains(&key("h1234.example.com", RecordType::A)));
    let served = state.snapshot.load();
    assert!(served.serial > serial);
    assert_same(&state, &inputs, 0);
}
