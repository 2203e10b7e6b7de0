//! The routing engine (src/engine.rs) and the snapshot (src/snapshot.rs): every rule
//! of api.md section 2, the configurations of the Route 53 reference
//! (active-active, active-passive), DNS answers through `Snapshot::resolve`, and
//! property tests over random record-set groups with random health. Pure, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::model::*;
use failover_dns::engine::{Decision, MULTIVALUE_MAX, Plan, Selection};
use failover_dns::model::Fqdn;
use failover_dns::resources::{FailoverRole, RecordType, RoutingPolicy};
use failover_dns::snapshot::{Rcode, Snapshot, ZoneSettings, qtype, wire_name, wire_within};
use proptest::prelude::*;

mod aliases;
mod answer_policies;
mod policies;
mod properties;
mod reference;
mod resolve;

const WWW: &str = "www.example.com";

fn world() -> World {
    World::new(&["example.com", "example.net"])
}

fn candidate<'d>(d: &'d Decision, object: &str) -> &'d failover_dns::engine::Candidate {
    let record = format!("{NS}/{object}");
    d.candidates
        .iter()
        .find(|c| c.record == record)
        .unwrap_or_else(|| panic!("no candidate {record} in {:?}", d.candidates))
}

/// Every answer of `n` queries, sorted within each answer.
fn answers(plan: &Plan, n: usize, seed: u64) -> BTreeSet<Vec<String>> {
    counts(plan, n, seed).into_keys().collect()
}

/// Asserts that every one of `n` queries answers exactly `expected` (in any order).
fn assert_always(plan: &Plan, expected: &[&str]) {
    let seen = answers(plan, 200, 7);
    assert_eq!(
        seen,
        BTreeSet::from([strings(expected)]),
        "expected every answer to be {expected:?}"
    );
}

/// Asserts the exact answer distribution of a plan and checks it against a large sample.
fn assert_distribution(plan: &Plan, expected: &[(&[&str], f64)]) {
    let want: BTreeMap<Vec<String>, f64> =
        expected.iter().filter(|(_, p)| *p > 0.0).map(|(v, p)| (strings(v), *p)).collect();
    let got = exact(plan);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "possible answers");
    for (values, p) in &want {
        assert!(
            (got[values] - p).abs() < 1e-9,
            "exact probability of {values:?}: {} != {p}",
            got[values]
        );
    }
    let n = 40_000;
    let sampled = counts(plan, n, 0x5eed);
    for (values, p) in &want {
        assert_binomial(sampled.get(values).copied().unwrap_or(0), n, *p, &format!("{values:?}"));
    }
    assert!(sampled.keys().all(|k| want.contains_key(k)), "unexpected answers in {sampled:?}");
}

fn distinct(values: &[String]) -> bool {
    values.iter().collect::<BTreeSet<_>>().len() == values.len()
}
