//! The routing engine (src/engine.rs) and the snapshot (src/snapshot.rs): every rule
//! of api.md section 2, the configurations of the Route 53 reference
//! (active-active, active-passive), DNS answers through `Snapshot::resolve`, and
//! property tests over random record-set groups with random health. Pure, no I/O.

#[path = "support/model.rs"]
mod model_support;

use std::collections::{BTreeMap, BTreeSet};

use failover_dns::engine::{Decision, MULTIVALUE_MAX, Plan, Selection};
use failover_dns::model::Fqdn;
use failover_dns::resources::{FailoverRole, RecordType, RoutingPolicy};
use failover_dns::snapshot::{Rcode, Snapshot, ZoneSettings, qtype, wire_name, wire_within};
use model_support::*;
use proptest::prelude::*;

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

// ================================================================== Simple

#[test]
fn simple_answers_all_its_values_with_its_ttl() {
    let mut w = world();
    w.record("www", simple_a(WWW, &["192.0.2.1", "192.0.2.2"]).ttl(120));
    w.record("txt", simple(WWW, RecordType::Txt, &["\"hello\" \"world\""]));
    let d = w.decide_a(WWW);
    assert_eq!(d.policy, RoutingPolicy::Simple);
    assert!(d.rule.starts_with("Simple"), "{}", d.rule);
    assert_always(&d.plan, &["192.0.2.1", "192.0.2.2"]);
    let mut rng = rng(1);
    let ttls: Vec<u32> = answer_ttl(&d.plan, &mut rng).into_iter().map(|(_, t)| t).collect();
    assert_eq!(ttls, [120, 120]);
    assert_eq!(candidate(&d, "www").selection, Selection::Chosen);
    assert_eq!(candidate(&d, "www").probability, 1.0);
    let txt = w.decide(WWW, RecordType::Txt);
    assert_eq!(answer_ttl(&txt.plan, &mut rng)[0].1, 60, "the default TTL is 60");
}

#[test]
fn simple_answers_even_when_its_health_check_fails() {
    let mut w = world();
    w.probe("hc", false);
    w.record("www", simple_a(WWW, &["192.0.2.1"]).hc("hc"));
    let d = w.decide_a(WWW);
    assert_always(&d.plan, &["192.0.2.1"]);
    assert!(!d.healthy, "the name has no healthy path");
    assert!(!candidate(&d, "www").healthy);
}

// ================================================================== Weighted

#[test]
fn weighted_picks_healthy_nonzero_records_by_weight() {
    let mut w = world();
    w.probe("up", true).probe("down", false);
    w.record("one", weighted(WWW, "one", 1, &["192.0.2.1"]).hc("up"));
    w.record("three", weighted(WWW, "three", 3, &["192.0.2.3"]));
    w.record("heavy-down", weighted(WWW, "heavy", 255, &["192.0.2.255"]).hc("down"));
    w.record("zero", weighted(WWW, "zero", 0, &["192.0.2.0"]));
    let d = w.decide_a(WWW);
    assert_eq!(d.policy, RoutingPolicy::Weighted);
    assert!(d.healthy);
    assert_distribution(&d.plan, &[(&["192.0.2.1"], 0.25), (&["192.0.2.3"], 0.75)]);
    assert_eq!(candidate(&d, "one").selection, Selection::Eligible);
    assert_eq!(candidate(&d, "one").probability, 0.25);
    assert_eq!(candidate(&d, "three").probability, 0.75);
    assert_eq!(candidate(&d, "heavy-down").selection, Selection::NotEligible);
    assert_eq!(candidate(&d, "heavy-down").probability, 0.0);
    assert!(!candidate(&d, "heavy-down").healthy);
    assert_eq!(candidate(&d, "zero").selection, Selection::Standby);
    assert_eq!(candidate(&d, "zero").weight, Some(0));
}

#[test]
fn weighted_extreme_weights_are_honoured() {
    let mut w = world();
    w.record("light", weighted(WWW, "light", 1, &["192.0.2.1"]));
    w.record("heavy", weighted(WWW, "heavy", 255, &["192.0.2.2"]));
    let d = w.decide_a(WWW);
    assert_distribution(&d.plan, &[(&["192.0.2.1"], 1.0 / 256.0), (&["192.0.2.2"], 255.0 / 256.0)]);
}

#[test]
fn weighted_answers_with_one_whole_record_set() {
    let mut w = world();
    w.record("a", weighted(WWW, "a", 1, &["192.0.2.1", "192.0.2.2"]));
    w.record("b", weighted(WWW, "b", 1, &["192.0.2.3", "192.0.2.4", "192.0.2.5"]));
    let d = w.decide_a(WWW);
    assert_distribution(
        &d.plan,
        &[(&["192.0.2.1", "192.0.2.2"], 0.5), (&["192.0.2.3", "192.0.2.4", "192.0.2.5"], 0.5)],
    );
}

#[test]
fn weighted_uses_healthy_zero_weight_records_uniformly_when_every_nonzero_record_is_unhealthy() {
    let mut w = world();
    w.probe("down", false);
    w.record("blue", weighted(WWW, "blue", 3, &["192.0.2.1"]).hc("down"));
    w.record("green", weighted(WWW, "green", 1, &["192.0.2.2"]).hc("down"));
    w.record("standby1", weighted(WWW, "s1", 0, &["192.0.2.10"]));
    w.record("standby2", weighted(WWW, "s2", 0, &["192.0.2.11"]));
    w.record("standby3", weighted(WWW, "s3", 0, &["192.0.2.12"]));
    w.record("standby-down", weighted(WWW, "s4", 0, &["192.0.2.13"]).hc("down"));
    let d = w.decide_a(WWW);
    assert!(d.healthy);
    let third = 1.0 / 3.0;
    assert_distribution(
        &d.plan,
        &[(&["192.0.2.10"], third), (&["192.0.2.11"], third), (&["192.0.2.12"], third)],
    );
    assert_eq!(candidate(&d, "standby1").selection, Selection::Eligible);
    assert!((candidate(&d, "standby1").probability - third).abs() < 1e-12);
    assert_eq!(candidate(&d, "blue").selection, Selection::NotEligible);
}

#[test]
fn weighted_fails_open_by_weight_when_no_record_is_healthy() {
    let mut w = world();
    w.probe("down", false);
    w.record("one", weighted(WWW, "one", 1, &["192.0.2.1"]).hc("down"));
    w.record("three", weighted(WWW, "three", 3, &["192.0.2.3"]).hc("down"));
    w.record("zero", weighted(WWW, "zero", 0, &["192.0.2.0"]).hc("down"));
    let d = w.decide_a(WWW);
    assert!(!d.healthy, "no record is healthy");
    assert_distribution(&d.plan, &[(&["192.0.2.1"], 0.25), (&["192.0.2.3"], 0.75)]);
    assert!(d.rule.contains("fail open"), "{}", d.rule);
}

#[test]
fn weighted_fails_open_uniformly_when_no_record_is_healthy_and_every_weight_is_zero() {
    let mut w = world();
    w.probe("down", false);
    w.record("a", weighted(WWW, "a", 0, &["192.0.2.1"]).hc("down"));
    w.record("b", weighted(WWW, "b", 0, &["192.0.2.2"]).hc("down"));
    w.record("c", weighted(WWW, "c", 0, &["192.0.2.3"]).hc("missing-check"));
    w.record("d", weighted(WWW, "d", 0, &["192.0.2.4"]).hc("down"));
    let d = w.decide_a(WWW);
    assert!(!d.healthy);
    assert_distribution(
        &d.plan,
        &[
            (&["192.0.2.1"], 0.25),
            (&["192.0.2.2"], 0.25),
            (&["192.0.2.3"], 0.25),
            (&["192.0.2.4"], 0.25),
        ],
    );
}

#[test]
fn weighted_zero_weight_is_never_chosen_while_a_healthy_nonzero_record_exists() {
    let mut w = world();
    w.probe("down", false);
    w.record("only", weighted(WWW, "only", 1, &["192.0.2.1"]));
    w.record("down", weighted(WWW, "down", 200, &["192.0.2.2"]).hc("down"));
    for i in 0..20 {
        w.record(
            &format!("zero{i}"),
            weighted(WWW, &format!("z{i}"), 0, &[&format!("192.0.2.{}", 100 + i)]),
        );
    }
    let d = w.decide_a(WWW);
    assert_always(&d.plan, &["192.0.2.1"]);
    let counts = counts(&d.plan, 5000, 3);
    assert_eq!(counts.len(), 1, "{counts:?}");
}

#[test]
fn a_single_weighted_record_with_weight_zero_answers() {
    let mut w = world();
    w.record("z", weighted(WWW, "z", 0, &["192.0.2.1"]));
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.1"]);
}

// ================================================================== Failover

fn failover_world(primary_up: Option<bool>, secondary_up: Option<Option<bool>>) -> World {
    let mut w = world();
    let mut p = primary(WWW, &["192.0.2.1"]);
    if let Some(up) = primary_up {
        w.probe("p-hc", up);
        p = p.hc("p-hc");
    }
    w.record("p", p);
    if let Some(secondary_health) = secondary_up {
        let mut s = secondary(WWW, &["192.0.2.2"]);
        if let Some(up) = secondary_health {
            w.probe("s-hc", up);
            s = s.hc("s-hc");
        }
        w.record("s", s);
    }
    w
}

#[test]
fn failover_answers_the_primary_while_it_is_healthy() {
    for secondary in [Some(Some(true)), Some(Some(false)), Some(None), None] {
        let d = failover_world(Some(true), secondary).decide_a(WWW);
        assert_always(&d.plan, &["192.0.2.1"]);
        assert!(d.healthy);
    }
    let d = failover_world(None, Some(None)).decide_a(WWW);
    assert_always(&d.plan, &["192.0.2.1"]);
    assert_eq!(candidate(&d, "p").selection, Selection::Chosen);
    assert_eq!(candidate(&d, "s").selection, Selection::Standby);
    assert_eq!(candidate(&d, "p").failover, Some(FailoverRole::Primary));
    assert_eq!(candidate(&d, "s").failover, Some(FailoverRole::Secondary));
}

#[test]
fn failover_answers_the_secondary_when_the_primary_is_down_and_the_secondary_healthy() {
    for secondary in [Some(true), None] {
        let d = failover_world(Some(false), Some(secondary)).decide_a(WWW);
        assert_always(&d.plan, &["192.0.2.2"]);
        assert!(d.healthy);
        assert_eq!(candidate(&d, "s").selection, Selection::Chosen);
        assert_eq!(candidate(&d, "s").probability, 1.0);
        assert_eq!(candidate(&d, "p").selection, Selection::Standby);
    }
}

#[test]
fn failover_answers_the_primary_when_both_are_down() {
    let d = failover_world(Some(false), Some(Some(false))).decide_a(WWW);
    assert_always(&d.plan, &["192.0.2.1"]);
    assert!(!d.healthy);
    assert_eq!(candidate(&d, "p").selection, Selection::Chosen);
}

#[test]
fn failover_with_only_a_primary_answers_the_primary_whatever_its_health() {
    for up in [true, false] {
        let d = failover_world(Some(up), None).decide_a(WWW);
        assert_always(&d.plan, &["192.0.2.1"]);
        assert_eq!(d.healthy, up);
    }
}

// ================================================================== MultiValue

fn multivalue_world(healthy: usize, unhealthy: usize) -> World {
    let mut w = world();
    w.probe("up", true).probe("down", false);
    for i in 0..healthy {
        w.record(
            &format!("up{i}"),
            multivalue(WWW, &format!("up{i}"), &[&format!("192.0.2.{}", i + 1)]).hc("up"),
        );
    }
    for i in 0..unhealthy {
        w.record(
            &format!("down{i}"),
            multivalue(WWW, &format!("down{i}"), &[&format!("198.51.100.{}", i + 1)]).hc("down"),
        );
    }
    w
}

fn distinct(values: &[String]) -> bool {
    values.iter().collect::<BTreeSet<_>>().len() == values.len()
}

#[test]
fn multivalue_answers_up_to_8_healthy_records_chosen_per_query() {
    let w = multivalue_world(12, 3);
    let d = w.decide_a(WWW);
    assert_eq!(d.policy, RoutingPolicy::MultiValue);
    let mut rng = rng(11);
    let mut seen = BTreeSet::new();
    let mut combinations = BTreeSet::new();
    for _ in 0..2000 {
        let a = answer(&d.plan, &mut rng);
        assert_eq!(a.len(), MULTIVALUE_MAX, "{a:?}");
        assert!(distinct(&a), "duplicates in {a:?}");
        assert!(a.iter().all(|v| v.starts_with("192.0.2.")), "an unhealthy record answered: {a:?}");
        combinations.insert(sorted(a.clone()));
        seen.extend(a);
    }
    assert_eq!(seen.len(), 12, "every healthy record answers sometimes");
    assert!(combinations.len() > 10, "answers differ from query to query");
    assert!((candidate(&d, "up0").probability - 8.0 / 12.0).abs() < 1e-12);
    assert_eq!(candidate(&d, "down0").selection, Selection::NotEligible);
}

#[test]
fn multivalue_with_at_most_8_healthy_records_answers_all_of_them_in_varying_order() {
    let w = multivalue_world(5, 2);
    let d = w.decide_a(WWW);
    let expected = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"];
    assert_always(&d.plan, &expected);
    let mut rng = rng(5);
    let orders: BTreeSet<Vec<String>> = (0..200).map(|_| answer(&d.plan, &mut rng)).collect();
    assert!(orders.len() > 10, "the order is shuffled per query");
    assert_eq!(candidate(&d, "up0").probability, 1.0);

    let d = multivalue_world(8, 0).decide_a(WWW);
    assert_eq!(answer(&d.plan, &mut rng).len(), 8);
}

#[test]
fn multivalue_with_no_healthy_record_answers_up_to_8_of_all() {
    let d = multivalue_world(0, 10).decide_a(WWW);
    assert!(!d.healthy);
    let mut rng = rng(3);
    let mut seen = BTreeSet::new();
    for _ in 0..500 {
        let a = answer(&d.plan, &mut rng);
        assert_eq!(a.len(), 8);
        assert!(distinct(&a));
        seen.extend(a);
    }
    assert_eq!(seen.len(), 10);
    let d = multivalue_world(0, 3).decide_a(WWW);
    assert_always(&d.plan, &["198.51.100.1", "198.51.100.2", "198.51.100.3"]);
}

#[test]
fn multivalue_answers_never_contain_duplicates() {
    let mut w = world();
    w.record("a", multivalue(WWW, "a", &["192.0.2.1", "192.0.2.2"]));
    w.record("b", multivalue(WWW, "b", &["192.0.2.2"]));
    w.record("c", multivalue(WWW, "c", &["192.0.2.1", "192.0.2.3"]));
    let d = w.decide_a(WWW);
    assert_always(&d.plan, &["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    // More than 8 sets with overlapping values.
    let mut w = world();
    for i in 0..20 {
        w.record(
            &format!("m{i}"),
            multivalue(WWW, &format!("m{i}"), &[&format!("192.0.2.{}", i % 5)]),
        );
    }
    let d = w.decide_a(WWW);
    let mut rng = rng(9);
    for _ in 0..500 {
        let a = answer(&d.plan, &mut rng);
        assert!(!a.is_empty() && a.len() <= 5 && distinct(&a), "{a:?}");
    }
}

// ================================================================== aliases and evaluateTargetHealth

#[test]
fn an_alias_answers_with_the_targets_records_and_ttl() {
    let mut w = world();
    w.record("target", simple_a("target.example.com", &["192.0.2.1", "192.0.2.2"]).ttl(300));
    w.record("alias", simple_a(WWW, &[]).alias("target.example.com", false));
    w.record("apex", simple_a("example.com", &[]).alias(WWW, false));
    for name in [WWW, "example.com"] {
        let d = w.decide_a(name);
        let mut rng = rng(1);
        let got = answer_ttl(&d.plan, &mut rng);
        assert_eq!(got, [("192.0.2.1".to_string(), 300), ("192.0.2.2".to_string(), 300)], "{name}");
    }
    let d = w.decide_a(WWW);
    assert_eq!(candidate(&d, "alias").alias_target, Some(fqdn("target.example.com")));
    assert_eq!(candidate(&d, "alias").values, ["192.0.2.1", "192.0.2.2"]);
}

#[test]
fn an_alias_carries_the_targets_choice() {
    let mut w = world();
    w.probe("down", false);
    w.record("t1", weighted("pool.example.com", "t1", 1, &["192.0.2.1"]).ttl(10));
    w.record("t3", weighted("pool.example.com", "t3", 3, &["192.0.2.3"]).ttl(20));
    w.record("t-down", weighted("pool.example.com", "tdown", 50, &["192.0.2.50"]).hc("down"));
    w.record("alias", simple_a(WWW, &[]).alias("pool.example.com", true));
    let d = w.decide_a(WWW);
    assert!(d.healthy);
    assert_distribution(&d.plan, &[(&["192.0.2.1"], 0.25), (&["192.0.2.3"], 0.75)]);
    // Each answer carries the TTL of the member that was chosen.
    let mut rng = rng(2);
    for _ in 0..100 {
        let a = answer_ttl(&d.plan, &mut rng);
        assert!(a == [("192.0.2.1".into(), 10)] || a == [("192.0.2.3".into(), 20)], "{a:?}");
    }
}

#[test]
fn an_alias_without_evaluate_target_health_ignores_the_targets_health() {
    let mut w = world();
    w.probe("down", false);
    w.record("target", simple_a("target.example.com", &["192.0.2.1"]).hc("down"));
    w.record("p", primary(WWW, &[]).alias("target.example.com", false));
    w.record("s", secondary(WWW, &["192.0.2.2"]));
    let d = w.decide_a(WWW);
    assert!(candidate(&d, "p").healthy);
    assert_always(&d.plan, &["192.0.2.1"]);
}

#[test]
fn an_alias_with_evaluate_target_health_follows_the_targets_health() {
    let mut w = world();
    w.probe("t", true);
    w.record("target", simple_a("target.example.com", &["192.0.2.1"]).hc("t"));
    w.record("p", primary(WWW, &[]).alias("target.example.com", true));
    w.record("s", secondary(WWW, &["192.0.2.2"]));
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.1"]);
    w.set("t", false);
    let d = w.decide_a(WWW);
    assert!(!candidate(&d, "p").healthy);
    assert!(candidate(&d, "p").health.contains("no healthy path"), "{}", candidate(&d, "p").health);
    assert_always(&d.plan, &["192.0.2.2"]);
}

#[test]
fn a_health_check_and_evaluate_target_health_must_both_hold() {
    for (check_up, target_up, primary_healthy) in
        [(true, true, true), (true, false, false), (false, true, false), (false, false, false)]
    {
        let mut w = world();
        w.probe("alias-hc", check_up).probe("target-hc", target_up);
        w.record("target", simple_a("target.example.com", &["192.0.2.1"]).hc("target-hc"));
        w.record("p", primary(WWW, &[]).alias("target.example.com", true).hc("alias-hc"));
        w.record("s", secondary(WWW, &["192.0.2.2"]));
        let d = w.decide_a(WWW);
        assert_eq!(
            candidate(&d, "p").healthy,
            primary_healthy,
            "check {check_up}, target {target_up}"
        );
        assert_always(&d.plan, if primary_healthy { &["192.0.2.1"] } else { &["192.0.2.2"] });
    }
}

#[test]
fn a_missing_health_check_makes_the_record_unhealthy() {
    let mut w = world();
    w.record("p", primary(WWW, &["192.0.2.1"]).hc("no-such-check"));
    w.record("s", secondary(WWW, &["192.0.2.2"]));
    let model = w.model();
    assert_warning(&model, "p", "spec.healthCheckName");
    let d = w.decide_a(WWW);
    assert!(!candidate(&d, "p").healthy);
    assert!(candidate(&d, "p").health.contains("does not exist"));
    assert_always(&d.plan, &["192.0.2.2"]);

    let mut w = world();
    w.record("w1", weighted(WWW, "w1", 1, &["192.0.2.1"]).hc("no-such-check"));
    w.record("w0", weighted(WWW, "w0", 0, &["192.0.2.2"]));
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.2"]);
}

#[test]
fn a_record_behind_an_invalid_health_check_is_unhealthy() {
    let mut w = world();
    w.check("broken", tcp("192.0.2.1", 0));
    w.record("p", primary(WWW, &["192.0.2.1"]).hc("broken"));
    w.record("s", secondary(WWW, &["192.0.2.2"]));
    let model = w.model();
    assert_warning(&model, "p", "spec.healthCheckName");
    let verdicts = w.verdicts(&model);
    let d = failover_dns::engine::Engine::new(&model, &verdicts)
        .decide(&key(WWW, RecordType::A))
        .unwrap();
    assert_always(&d.plan, &["192.0.2.2"]);
}

#[test]
fn records_behind_calculated_checks() {
    let mut w = world();
    w.probe("c1", true).probe("c2", false).probe("c3", false);
    w.check("two-of-three", calculated(&["c1", "c2", "c3"], 2));
    w.check("always", calculated(&["c2", "c3"], 0));
    w.check("never", calculated(&["c1"], 2));
    w.check("inverted", HealthCheckSpecExt::inverted(calculated(&["c1"], 1)));
    let off =
        failover_dns::resources::HealthCheckSpec { disabled: Some(true), ..http("192.0.2.9") };
    w.check("off", off).set("off", false);
    w.check("one-disabled", calculated(&["off", "c2"], 1));
    for (check, healthy) in [
        ("two-of-three", false),
        ("always", true),
        ("never", false),
        ("inverted", false),
        ("one-disabled", true),
    ] {
        let mut w2 = World::new(&["example.com"]);
        w2.checks = w.checks.clone();
        w2.health = w.health.clone();
        w2.record("p", primary(WWW, &["192.0.2.1"]).hc(check));
        w2.record("s", secondary(WWW, &["192.0.2.2"]));
        let d = w2.decide_a(WWW);
        assert_eq!(candidate(&d, "p").healthy, healthy, "{check}");
        assert_always(&d.plan, if healthy { &["192.0.2.1"] } else { &["192.0.2.2"] });
    }
    w.set("c2", true);
    w.record("p", primary(WWW, &["192.0.2.1"]).hc("two-of-three"));
    w.record("s", secondary(WWW, &["192.0.2.2"]));
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.1"]);
}

trait HealthCheckSpecExt {
    fn inverted(self) -> Self;
}

impl HealthCheckSpecExt for failover_dns::resources::HealthCheckSpec {
    fn inverted(mut self) -> Self {
        self.inverted = Some(true);
        self
    }
}

/// Three levels, evaluated bottom-up: weighted groups with health checks → failover
/// aliases (evaluateTargetHealth) → a failover alias at the front with a sorry page.
fn layered_world() -> World {
    let mut w = world();
    for hc in ["b1", "b2", "g1"] {
        w.probe(hc, true);
    }
    w.record("b1", weighted("blue.example.com", "b1", 1, &["192.0.2.1"]).hc("b1"));
    w.record("b2", weighted("blue.example.com", "b2", 1, &["192.0.2.2"]).hc("b2"));
    w.record("g1", weighted("green.example.com", "g1", 1, &["192.0.2.11"]).hc("g1"));
    w.record("app-p", primary("app.example.com", &[]).alias("blue.example.com", true));
    w.record("app-s", secondary("app.example.com", &[]).alias("green.example.com", true));
    w.record("www-p", primary(WWW, &[]).alias("app.example.com", true));
    w.record("www-s", secondary(WWW, &["192.0.2.99"]));
    w
}

#[test]
fn evaluate_target_health_is_evaluated_bottom_up() {
    let mut w = layered_world();
    let d = w.decide_a(WWW);
    assert!(d.healthy);
    assert_distribution(&d.plan, &[(&["192.0.2.1"], 0.5), (&["192.0.2.2"], 0.5)]);

    w.set("b1", false);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.2"]);

    w.set("b2", false);
    let app = w.decide_a("app.example.com");
    assert!(app.healthy, "green is healthy");
    assert_always(&app.plan, &["192.0.2.11"]);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.11"]);

    w.set("g1", false);
    let app = w.decide_a("app.example.com");
    assert!(!app.healthy);
    // app itself answers its (fail-open) primary, but www sees no healthy path there.
    assert_eq!(possible(&app.plan), set_of(&["192.0.2.1", "192.0.2.2"]));
    let d = w.decide_a(WWW);
    assert!(!candidate(&d, "www-p").healthy);
    assert_always(&d.plan, &["192.0.2.99"]);

    w.set("g1", true);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.11"]);
}

#[test]
fn decide_all_agrees_with_decide() {
    let mut w = layered_world();
    w.set("b1", false);
    let all = w.decide_all();
    assert_eq!(all.len(), 4);
    for (key, d) in &all {
        let single = w.decide(key.0.as_str(), key.1);
        assert_eq!(d.plan, single.plan, "{key:?}");
        assert_eq!(d.healthy, single.healthy);
        assert_eq!(d.rule, single.rule);
    }
}

// ================================================================== the reference configurations

/// Active-passive with one primary and one secondary resource.
#[test]
fn reference_active_passive_one_primary_one_secondary() {
    let mut w = world();
    w.probe("primary-web", true).probe("secondary-web", true);
    w.record("www-primary", primary(WWW, &["192.0.2.10"]).hc("primary-web"));
    w.record("www-secondary", secondary(WWW, &["192.0.2.20"]).hc("secondary-web"));
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.10"]);
    w.set("primary-web", false);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.20"]);
    w.set("primary-web", true);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.10"]);
}

/// Active-passive with several resources behind the primary and the secondary:
/// weighted records with health checks, fronted by failover alias records with
/// evaluateTargetHealth and no health check of their own.
fn reference_multi_world() -> World {
    let mut w = world();
    for i in 1..=3 {
        w.probe(&format!("p{i}"), true).probe(&format!("s{i}"), true);
        w.record(
            &format!("primary-{i}"),
            weighted(
                "failover-primary.example.com",
                &format!("p{i}"),
                i,
                &[&format!("192.0.2.{i}")],
            )
            .hc(&format!("p{i}")),
        );
        w.record(
            &format!("secondary-{i}"),
            weighted(
                "failover-secondary.example.com",
                &format!("s{i}"),
                1,
                &[&format!("198.51.100.{i}")],
            )
            .hc(&format!("s{i}")),
        );
    }
    w.record("www-primary", primary(WWW, &[]).alias("failover-primary.example.com", true));
    w.record("www-secondary", secondary(WWW, &[]).alias("failover-secondary.example.com", true));
    w
}

#[test]
fn reference_active_passive_multiple_resources() {
    let mut w = reference_multi_world();
    // All healthy: only the primary resources, by weight 1:2:3.
    let d = w.decide_a(WWW);
    assert_distribution(
        &d.plan,
        &[(&["192.0.2.1"], 1.0 / 6.0), (&["192.0.2.2"], 2.0 / 6.0), (&["192.0.2.3"], 3.0 / 6.0)],
    );
    assert!(candidate(&d, "www-primary").healthy);

    // One primary member down: the other two share its traffic.
    w.set("p3", false);
    assert_distribution(
        &w.decide_a(WWW).plan,
        &[(&["192.0.2.1"], 1.0 / 3.0), (&["192.0.2.2"], 2.0 / 3.0)],
    );

    // Only one primary member up: only that member answers.
    w.set("p1", false);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.2"]);

    // Every primary member down: the secondary group answers.
    w.set("p2", false);
    let d = w.decide_a(WWW);
    assert!(!candidate(&d, "www-primary").healthy);
    assert_eq!(candidate(&d, "www-secondary").selection, Selection::Chosen);
    let third = 1.0 / 3.0;
    assert_distribution(
        &d.plan,
        &[(&["198.51.100.1"], third), (&["198.51.100.2"], third), (&["198.51.100.3"], third)],
    );

    // ... and only its healthy members.
    w.set("s1", false);
    assert_distribution(
        &w.decide_a(WWW).plan,
        &[(&["198.51.100.2"], 0.5), (&["198.51.100.3"], 0.5)],
    );

    // Everything down: the primary answers (fail open within its group, by weight).
    for s in ["s2", "s3"] {
        w.set(s, false);
    }
    let d = w.decide_a(WWW);
    assert!(!d.healthy);
    assert_distribution(
        &d.plan,
        &[(&["192.0.2.1"], 1.0 / 6.0), (&["192.0.2.2"], 2.0 / 6.0), (&["192.0.2.3"], 3.0 / 6.0)],
    );

    // One primary member recovers: back to it alone.
    w.set("p1", true);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.1"]);
}

/// Active-passive with weighted records: nonzero weights answer while any is healthy;
/// zero-weight records only when every nonzero record is unhealthy.
#[test]
fn reference_active_passive_weighted_with_zero_weights() {
    let mut w = world();
    w.probe("blue", true).probe("green", true).probe("standby", true);
    w.record("blue", weighted(WWW, "blue", 3, &["192.0.2.31"]).hc("blue"));
    w.record("green", weighted(WWW, "green", 1, &["192.0.2.32"]).hc("green"));
    w.record("standby", weighted(WWW, "standby", 0, &["192.0.2.39"]).hc("standby"));
    assert_distribution(&w.decide_a(WWW).plan, &[(&["192.0.2.31"], 0.75), (&["192.0.2.32"], 0.25)]);
    w.set("blue", false);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.32"]);
    w.set("green", false);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.39"]);
    // Everything down: fail open by weight; the zero weight is still never chosen.
    w.set("standby", false);
    assert_distribution(&w.decide_a(WWW).plan, &[(&["192.0.2.31"], 0.75), (&["192.0.2.32"], 0.25)]);
    w.set("green", true);
    assert_always(&w.decide_a(WWW).plan, &["192.0.2.32"]);
}

/// Active-active: every healthy record may answer; an unhealthy one stops answering.
#[test]
fn reference_active_active_weighted_and_multivalue() {
    let mut w = world();
    for i in 1..=3 {
        w.probe(&format!("w{i}"), true).probe(&format!("m{i}"), true);
        w.record(
            &format!("w{i}"),
            weighted(WWW, &format!("w{i}"), 10, &[&format!("192.0.2.{i}")]).hc(&format!("w{i}")),
        );
        w.record(
            &format!("m{i}"),
            multivalue("api.example.com", &format!("m{i}"), &[&format!("198.51.100.{i}")])
                .hc(&format!("m{i}")),
        );
    }
    let third = 1.0 / 3.0;
    assert_distribution(
        &w.decide_a(WWW).plan,
        &[(&["192.0.2.1"], third), (&["192.0.2.2"], third), (&["192.0.2.3"], third)],
    );
    assert_always(
        &w.decide_a("api.example.com").plan,
        &["198.51.100.1", "198.51.100.2", "198.51.100.3"],
    );
    w.set("w2", false).set("m2", false);
    assert_distribution(&w.decide_a(WWW).plan, &[(&["192.0.2.1"], 0.5), (&["192.0.2.3"], 0.5)]);
    assert_always(&w.decide_a("api.example.com").plan, &["198.51.100.1", "198.51.100.3"]);
}

// ================================================================== a model the validator let through must not crash the engine

/// A SECONDARY whose PRIMARY (an alias) is rejected by the alias rules is still in the
/// model, and the engine's `expect("validation requires a PRIMARY")` panics.
#[test]
fn a_failover_group_whose_primary_alias_was_rejected_does_not_crash_the_engine() {
    let mut w = world();
    w.record("p", primary(WWW, &[]).alias("gone.example.com", true));
    w.record("s", secondary(WWW, &["192.0.2.2"]));
    w.record("other", simple_a("other.example.com", &["192.0.2.3"]));
    let result = std::panic::catch_unwind(|| {
        let snapshot = w.snapshot(1);
        let mut rng = rng(1);
        (
            resolve(&snapshot, WWW, qtype::A, &mut rng),
            resolve(&snapshot, "other.example.com", qtype::A, &mut rng),
        )
    });
    let (www, other) = result.expect("building the snapshot panicked");
    assert_eq!(other.values(), ["192.0.2.3"]);
    assert_eq!(
        www.rcode,
        Rcode::NxDomain,
        "neither the rejected PRIMARY nor its orphaned SECONDARY is served"
    );
}

// ================================================================== Snapshot::resolve

fn dns_world() -> World {
    let mut w = World::new(&["example.com", "example.net", "sub.example.com"]);
    w.record("www", simple_a(WWW, &["192.0.2.1"]).ttl(30));
    w.record("www-txt", simple(WWW, RecordType::Txt, &["\"hello\""]));
    w.record("mx", simple("example.com", RecordType::Mx, &["10 mail.example.com"]));
    w.record("mail", simple_a("mail.example.com", &["192.0.2.25"]));
    w.record("alias-cname", simple("alias.example.com", RecordType::Cname, &["web.example.com"]));
    w.record("web-cname", simple("web.example.com", RecordType::Cname, &["www.example.com"]));
    w.record("cross", simple("cross.example.com", RecordType::Cname, &["app.example.net"]));
    w.record("app-net", simple_a("app.example.net", &["203.0.113.1"]));
    w.record("external", simple("ext.example.com", RecordType::Cname, &["www.example.org"]));
    w.record(
        "dangling",
        simple("dangling.example.com", RecordType::Cname, &["nothing.example.com"]),
    );
    w.record("deep", simple_a("a.b.example.com", &["192.0.2.7"]));
    w.record("loop1", simple("loop1.example.com", RecordType::Cname, &["loop2.example.com"]));
    w.record("loop2", simple("loop2.example.com", RecordType::Cname, &["loop1.example.com"]));
    w.record("apex", simple_a("example.com", &[]).alias(WWW, false));
    w.record("sub-host", simple_a("host.sub.example.com", &["192.0.2.60"]));
    w.record("upper", simple_a("MiXeD.Example.COM.", &["192.0.2.77"]));
    w
}

fn dns() -> Snapshot {
    let w = dns_world();
    assert_no_errors(&w.model());
    w.snapshot(20240601)
}

fn q(snapshot: &Snapshot, name: &str, qtype: u16) -> Resolved {
    resolve(snapshot, name, qtype, &mut rng(42))
}

#[test]
fn resolve_answers_records_of_the_asked_type() {
    let s = dns();
    let r = q(&s, WWW, qtype::A);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(
        r.records,
        [("www.example.com.".to_string(), qtype::A, "192.0.2.1".to_string(), 30)]
    );
    assert_eq!(r.soa_zone, None);
    assert_eq!(r.policy, Some(RoutingPolicy::Simple));
    let r = q(&s, WWW, qtype::TXT);
    assert_eq!(r.types(), [qtype::TXT]);
    let r = q(&s, "example.com", qtype::MX);
    assert_eq!(r.types(), [qtype::MX]);
    assert!(r.values()[0].contains("mail.example.com"), "{:?}", r.values());
}

#[test]
fn resolve_nxdomain_for_a_missing_name_with_the_zone_soa() {
    let s = dns();
    for name in ["nothing.example.com", "x.www.example.com", "c.b.example.com", "x.a.b.example.com"]
    {
        let r = q(&s, name, qtype::A);
        assert_eq!(r.rcode, Rcode::NxDomain, "{name}");
        assert!(r.records.is_empty());
        assert_eq!(r.soa_zone.as_deref(), Some("example.com."), "{name}");
        assert_eq!(r.soa_serial, Some(20240601));
    }
}

#[test]
fn resolve_nodata_for_a_name_with_other_types() {
    let s = dns();
    for (name, t) in [
        (WWW, qtype::AAAA),
        (WWW, qtype::MX),
        ("mail.example.com", qtype::TXT),
        (WWW, 99),
        ("example.com", qtype::AAAA),
    ] {
        let r = q(&s, name, t);
        assert_eq!(r.rcode, Rcode::NoError, "{name} {t}");
        assert!(r.records.is_empty(), "{name} {t}: {:?}", r.records);
        assert_eq!(r.soa_zone.as_deref(), Some("example.com."), "{name} {t}");
    }
}

#[test]
fn resolve_refuses_names_outside_every_zone() {
    let s = dns();
    for name in ["www.example.org", "com", "xexample.com", "example.co"] {
        let r = q(&s, name, qtype::A);
        assert_eq!(r.rcode, Rcode::Refused, "{name}");
        assert!(r.records.is_empty());
        assert_eq!(r.soa_zone, None);
    }
}

#[test]
fn resolve_synthesizes_soa_and_ns_at_each_apex() {
    let s = dns();
    for zone in ["example.com.", "example.net.", "sub.example.com."] {
        let r = q(&s, zone, qtype::SOA);
        assert_eq!(r.rcode, Rcode::NoError);
        assert_eq!(r.types(), [qtype::SOA], "{zone}");
        assert_eq!(r.records[0].0, zone);
        assert!(r.values()[0].contains(&format!("ns1.{zone}")), "{:?}", r.values());
        assert!(r.values()[0].contains(" 20240601 "), "the serial is in the SOA: {:?}", r.values());
        let r = q(&s, zone, qtype::NS);
        assert_eq!(r.records, [(zone.to_string(), qtype::NS, format!("ns1.{zone}"), 3600)]);
    }
    // SOA and NS only at the apex.
    let r = q(&s, WWW, qtype::SOA);
    assert!(r.records.is_empty() && r.rcode == Rcode::NoError);
    let r = q(&s, WWW, qtype::NS);
    assert!(r.records.is_empty());
    // ANY at the apex: SOA, NS and the apex data.
    let r = q(&s, "example.com", qtype::ANY);
    let types: BTreeSet<u16> = r.types().into_iter().collect();
    assert_eq!(types, BTreeSet::from([qtype::SOA, qtype::NS, qtype::MX, qtype::A]));
}

#[test]
fn the_serial_and_the_nameservers_come_from_the_build() {
    let w = dns_world();
    let model = w.model();
    let verdicts = w.verdicts(&model);
    let settings = ZoneSettings {
        zones: w.zones.clone(),
        nameservers: vec![fqdn("ns-a.dns.example.org"), fqdn("ns-b.dns.example.org")],
        soa_ttl: 900,
        negative_ttl: 60,
    };
    let s = Snapshot::build(&settings, &model, &verdicts, 7);
    assert_eq!(s.serial, 7);
    let r = q(&s, "example.com", qtype::NS);
    assert_eq!(r.values(), ["ns-a.dns.example.org.", "ns-b.dns.example.org."]);
    assert!(r.records.iter().all(|(_, _, _, ttl)| *ttl == 900));
    let r = q(&s, "example.com", qtype::SOA);
    assert!(
        r.values()[0].starts_with("ns-a.dns.example.org. hostmaster.example.com. 7 "),
        "{:?}",
        r.values()
    );
    assert_eq!(q(&s, "nope.example.com", qtype::A).soa_serial, Some(7));
    assert_eq!(
        s.zones.iter().find(|z| z.name.as_str() == "example.com.").unwrap().negative_ttl,
        60
    );
}

#[test]
fn resolve_follows_a_cname_chain_inside_the_zones() {
    let s = dns();
    let r = q(&s, "alias.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(
        r.records,
        [
            ("alias.example.com.".to_string(), qtype::CNAME, "web.example.com.".to_string(), 60),
            ("web.example.com.".to_string(), qtype::CNAME, "www.example.com.".to_string(), 60),
            ("www.example.com.".to_string(), qtype::A, "192.0.2.1".to_string(), 30),
        ]
    );
    assert_eq!(r.soa_zone, None);
    // The end of the chain has no data of the asked type: NODATA with the chain.
    let r = q(&s, "alias.example.com", qtype::AAAA);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(r.types(), [qtype::CNAME, qtype::CNAME]);
    assert_eq!(r.soa_zone.as_deref(), Some("example.com."));
}

#[test]
fn resolve_follows_a_cname_chain_across_zones() {
    let s = dns();
    let r = q(&s, "cross.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(
        r.records,
        [
            ("cross.example.com.".to_string(), qtype::CNAME, "app.example.net.".to_string(), 60),
            ("app.example.net.".to_string(), qtype::A, "203.0.113.1".to_string(), 60),
        ]
    );
    let r = q(&s, "cross.example.com", qtype::TXT);
    assert_eq!(
        r.soa_zone.as_deref(),
        Some("example.net."),
        "NODATA names the zone where the chain ended"
    );
}

#[test]
fn resolve_stops_a_chain_that_leaves_the_zones_or_dangles() {
    let s = dns();
    let r = q(&s, "ext.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(r.values(), ["www.example.org."]);
    assert_eq!(r.soa_zone, None);
    let r = q(&s, "dangling.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NxDomain);
    assert_eq!(r.values(), ["nothing.example.com."]);
    assert_eq!(r.soa_zone.as_deref(), Some("example.com."));
    // A CNAME loop ends.
    let r = q(&s, "loop1.example.com", qtype::A);
    assert!(!r.records.is_empty() && r.records.len() <= 8, "{:?}", r.records);
    assert!(r.types().iter().all(|t| *t == qtype::CNAME));
}

#[test]
fn a_cname_query_returns_only_the_cname() {
    let s = dns();
    let r = q(&s, "alias.example.com", qtype::CNAME);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(
        r.records,
        [("alias.example.com.".to_string(), qtype::CNAME, "web.example.com.".to_string(), 60)]
    );
    let r = q(&s, WWW, qtype::CNAME);
    assert!(r.records.is_empty() && r.soa_zone.is_some(), "no CNAME at www: NODATA");
}

#[test]
fn an_alias_at_the_apex_answers_under_the_queried_name() {
    let s = dns();
    let r = q(&s, "example.com", qtype::A);
    assert_eq!(r.records, [("example.com.".to_string(), qtype::A, "192.0.2.1".to_string(), 30)]);
}

#[test]
fn names_are_case_insensitive() {
    let s = dns();
    assert_eq!(wire_name(&fqdn("WWW.EXAMPLE.COM")), wire_name(&fqdn("www.example.com")));
    assert_eq!(&*wire_name(&fqdn("WWW.Example.COM.")), b"\x03www\x07example\x03com\x00");
    for name in ["WWW.EXAMPLE.COM", "www.Example.Com.", "wWw.eXaMpLe.CoM"] {
        assert_eq!(q(&s, name, qtype::A).values(), ["192.0.2.1"], "{name}");
    }
    // A record written in mixed case is found under any case.
    for name in ["mixed.example.com", "MIXED.EXAMPLE.COM"] {
        assert_eq!(q(&s, name, qtype::A).values(), ["192.0.2.77"], "{name}");
    }
    assert!(s.node(&wire_name(&fqdn("MiXeD.example.com"))).is_some());
}

#[test]
fn an_empty_non_terminal_exists() {
    let s = dns();
    let r = q(&s, "b.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NoError, "b.example.com has a name below it");
    assert!(r.records.is_empty());
    assert_eq!(r.soa_zone.as_deref(), Some("example.com."));
    assert_eq!(q(&s, "a.b.example.com", qtype::A).values(), ["192.0.2.7"]);
}

/// The empty non-terminals of a name are its parent names; a label with an escaped
/// dot (`a\.b` is one label) has no parent `b.example.com`.
#[test]
fn an_escaped_dot_does_not_make_an_empty_non_terminal() {
    let mut w = world();
    w.record("escaped", simple_a("a\\.b.example.com", &["192.0.2.1"]));
    let model = w.valid_model();
    assert_eq!(model.sets.len(), 1);
    let s = w.snapshot(1);
    assert_eq!(q(&s, "a\\.b.example.com", qtype::A).values(), ["192.0.2.1"]);
    let ancestors: Vec<Fqdn> = fqdn("a\\.b.example.com").ancestors_below(&fqdn("example.com"));
    assert!(ancestors.is_empty(), "{ancestors:?}");
    assert_eq!(
        q(&s, "b.example.com", qtype::A).rcode,
        Rcode::NxDomain,
        "b.example.com does not exist"
    );
}

#[test]
fn nested_zones_answer_from_the_closest_zone() {
    let s = dns();
    let r = q(&s, "missing.sub.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NxDomain);
    assert_eq!(r.soa_zone.as_deref(), Some("sub.example.com."));
    assert_eq!(q(&s, "host.sub.example.com", qtype::A).values(), ["192.0.2.60"]);
    let r = q(&s, "sub.example.com", qtype::A);
    assert_eq!((r.rcode, r.soa_zone.as_deref()), (Rcode::NoError, Some("sub.example.com.")));
}

#[test]
fn wire_names_and_zone_membership() {
    let zone = wire_name(&fqdn("example.com"));
    assert!(wire_within(&wire_name(&fqdn("a.b.example.com")), &zone));
    assert!(wire_within(&zone, &zone));
    assert!(!wire_within(&wire_name(&fqdn("aexample.com")), &zone));
    assert!(!wire_within(&wire_name(&fqdn("com")), &zone));
    assert!(wire_within(&wire_name(&fqdn("anything.org")), &wire_name(&Fqdn::parse(".").unwrap())));
}

#[test]
fn the_snapshot_serves_the_engines_current_choice() {
    let mut w = world();
    w.probe("p", true);
    w.record("p", primary(WWW, &["192.0.2.1"]).hc("p"));
    w.record("s", secondary(WWW, &["192.0.2.2"]));
    w.record("w1", weighted("api.example.com", "w1", 1, &["192.0.2.11"]));
    w.record("w2", weighted("api.example.com", "w2", 1, &["192.0.2.12"]));
    let s = w.snapshot(1);
    let r = q(&s, WWW, qtype::A);
    assert_eq!(
        (r.values(), r.policy),
        (vec!["192.0.2.1".to_string()], Some(RoutingPolicy::Failover))
    );
    assert_eq!(s.decision_count(), 2);
    w.set("p", false);
    let s = w.snapshot(2);
    assert_eq!(q(&s, WWW, qtype::A).values(), ["192.0.2.2"]);
    // A weighted answer is one record per query, varying between queries.
    let mut rng = rng(8);
    let seen: BTreeSet<Vec<String>> =
        (0..200).map(|_| resolve(&s, "api.example.com", qtype::A, &mut rng).values()).collect();
    assert_eq!(
        seen,
        BTreeSet::from([vec!["192.0.2.11".to_string()], vec!["192.0.2.12".to_string()]])
    );
}

// ================================================================== property tests

/// One member of a random record-set group.
#[derive(Clone, Debug)]
struct Member {
    weight: u8,
    /// None: no health check (always healthy).
    health: Option<bool>,
    values: usize,
    /// Served through an alias (evaluateTargetHealth) to a Simple record that carries
    /// the values and the health check.
    via_alias: bool,
}

impl Member {
    fn healthy(&self) -> bool {
        self.health.unwrap_or(true)
    }
}

#[derive(Clone, Debug)]
enum Group {
    Weighted(Vec<Member>),
    Failover(Member, Option<Member>),
    Multi(Vec<Member>),
}

fn member() -> impl Strategy<Value = Member> {
    (
        prop_oneof![3 => Just(0u8), 4 => 1u8..=5, 1 => Just(255u8), 2 => any::<u8>()],
        prop_oneof![Just(None), any::<bool>().prop_map(Some), any::<bool>().prop_map(Some)],
        1usize..=3,
        any::<bool>(),
    )
        .prop_map(|(weight, health, values, via_alias)| Member {
            weight,
            health,
            values,
            via_alias,
        })
}

fn group() -> impl Strategy<Value = Group> {
    prop_oneof![
        prop::collection::vec(member(), 1..=8).prop_map(Group::Weighted),
        (member(), prop::option::of(member())).prop_map(|(p, s)| Group::Failover(p, s)),
        prop::collection::vec(member().prop_map(|m| Member { via_alias: false, ..m }), 1..=14)
            .prop_map(Group::Multi),
    ]
}

const GROUP: &str = "g.example.com";

fn value(i: usize, j: usize) -> String {
    format!("10.0.{i}.{j}")
}

/// The member an answer value belongs to.
fn member_of(v: &str) -> usize {
    v.split('.').nth(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("foreign value {v}"))
}

fn members(g: &Group) -> Vec<Member> {
    match g {
        Group::Weighted(m) | Group::Multi(m) => m.clone(),
        Group::Failover(p, s) => std::iter::once(p.clone()).chain(s.clone()).collect(),
    }
}

fn build(g: &Group) -> World {
    let mut w = world();
    for (i, m) in members(g).iter().enumerate() {
        let values: Vec<String> = (0..m.values).map(|j| value(i, j)).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let hc = format!("hc{i}");
        if let Some(up) = m.health {
            w.probe(&hc, up);
        }
        let with_hc = |spec: failover_dns::resources::FailoverRecordSpec| {
            if m.health.is_some() { spec.hc(&hc) } else { spec }
        };
        let id = format!("m{i}");
        let data = if m.via_alias { &[][..] } else { &values[..] };
        let spec = match g {
            Group::Weighted(_) => weighted(GROUP, &id, i64::from(m.weight), data),
            Group::Multi(_) => multivalue(GROUP, &id, data),
            Group::Failover(..) => failover(
                GROUP,
                &id,
                if i == 0 { FailoverRole::Primary } else { FailoverRole::Secondary },
                data,
            ),
        };
        if m.via_alias {
            let target = format!("t{i}.example.com");
            w.record(&format!("t{i}"), with_hc(simple_a(&target, &values)));
            w.record(&id, spec.alias(&target, true));
        } else {
            w.record(&id, with_hc(spec));
        }
    }
    w
}

/// The members that may answer under the contract's rules, with their probabilities
/// (for Weighted and Failover; for MultiValue the probability is not given).
fn eligible(g: &Group) -> BTreeMap<usize, f64> {
    let ms = members(g);
    let idx = |f: &dyn Fn(&Member) -> bool| -> Vec<usize> {
        (0..ms.len()).filter(|&i| f(&ms[i])).collect()
    };
    match g {
        Group::Weighted(_) => {
            let healthy_nonzero = idx(&|m| m.healthy() && m.weight > 0);
            let healthy_zero = idx(&|m| m.healthy() && m.weight == 0);
            let (pool, uniform) = if !healthy_nonzero.is_empty() {
                (healthy_nonzero, false)
            } else if !healthy_zero.is_empty() {
                (healthy_zero, true)
            } else if ms.iter().any(|m| m.weight > 0) {
                (idx(&|m| m.weight > 0), false)
            } else {
                (idx(&|_| true), true)
            };
            let w = |i: usize| if uniform { 1.0 } else { f64::from(ms[i].weight) };
            let total: f64 = pool.iter().map(|&i| w(i)).sum();
            pool.iter().map(|&i| (i, w(i) / total)).collect()
        }
        Group::Failover(p, s) => {
            let chosen = if p.healthy() {
                0
            } else if s.as_ref().is_some_and(Member::healthy) {
                1
            } else {
                0
            };
            BTreeMap::from([(chosen, 1.0)])
        }
        Group::Multi(_) => {
            let healthy = idx(&|m| m.healthy());
            let pool = if healthy.is_empty() { idx(&|_| true) } else { healthy };
            pool.into_iter().map(|i| (i, f64::NAN)).collect()
        }
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config(192))]

    /// (a) Some answer whenever a record set exists, and (b) never an unhealthy
    /// record while a healthy alternative exists.
    #[test]
    fn prop_answers_are_never_empty_and_prefer_healthy_records(g in group(), seed in any::<u64>()) {
        let w = build(&g);
        let model = w.model();
        prop_assert!(model.errors().next().is_none(), "{:?}", model.problems);
        let d = w.decide_a(GROUP);
        let ms = members(&g);
        let eligible = eligible(&g);
        let any_healthy = ms.iter().any(Member::healthy);
        prop_assert_eq!(d.healthy, any_healthy);
        let mut rng = rng(seed);
        for _ in 0..64 {
            let a = answer(&d.plan, &mut rng);
            prop_assert!(!a.is_empty(), "empty answer for {:?}", g);
            let answered: BTreeSet<usize> = a.iter().map(|v| member_of(v)).collect();
            for i in &answered {
                prop_assert!(eligible.contains_key(i), "member {} answered, eligible {:?}, group {:?}", i, eligible.keys(), g);
                if any_healthy {
                    prop_assert!(ms[*i].healthy(), "unhealthy member {} answered while a healthy one exists", i);
                }
            }
            match &g {
                Group::Weighted(_) | Group::Failover(..) => {
                    // One whole record set per answer.
                    prop_assert_eq!(answered.len(), 1);
                    let i = *answered.iter().next().unwrap();
                    prop_assert_eq!(sorted(a.clone()), sorted((0..ms[i].values).map(|j| value(i, j)).collect()));
                }
                Group::Multi(_) => {
                    // At most 8 records in all, even when record sets carry several values.
                    prop_assert!(a.len() <= MULTIVALUE_MAX);
                    let eligible_values: usize = eligible.keys().map(|i| ms[*i].values).sum();
                    if eligible_values <= MULTIVALUE_MAX {
                        prop_assert_eq!(answered.len(), eligible.len());
                    } else {
                        prop_assert_eq!(a.len(), MULTIVALUE_MAX);
                    }
                }
            }
        }
        // The same through the snapshot.
        let s = w.snapshot(1);
        let r = resolve(&s, GROUP, qtype::A, &mut rng);
        prop_assert_eq!(r.rcode, Rcode::NoError);
        prop_assert!(!r.records.is_empty());
    }

    /// (c) The weights are honoured: the plan's exact distribution is the contract's,
    /// and a seeded sample agrees with it within six standard deviations.
    #[test]
    fn prop_weights_are_honoured(ms in prop::collection::vec(member(), 1..=8), seed in any::<u64>()) {
        let g = Group::Weighted(ms.clone());
        let w = build(&g);
        let d = w.decide_a(GROUP);
        let expected = eligible(&g);
        let values_of = |i: usize| sorted((0..ms[i].values).map(|j| value(i, j)).collect());
        let exact = exact(&d.plan);
        let want: BTreeMap<Vec<String>, f64> = expected.iter().map(|(&i, &p)| (values_of(i), p)).collect();
        prop_assert_eq!(exact.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        for (k, p) in &want {
            prop_assert!((exact[k] - p).abs() < 1e-9, "{:?}: {} != {}", k, exact[k], p);
        }
        for (i, c) in d.candidates.iter().enumerate() {
            let p = expected.get(&i).copied().unwrap_or(0.0);
            prop_assert!((c.probability - p).abs() < 1e-9, "candidate {}: {} != {}", i, c.probability, p);
        }
        let n = 4000;
        let sampled = counts(&d.plan, n, seed);
        for (k, p) in &want {
            assert_binomial(sampled.get(k).copied().unwrap_or(0), n, *p, &format!("{k:?}"));
        }
        prop_assert!(sampled.keys().all(|k| want.contains_key(k)));
    }

    /// (d) MultiValue answers hold at most 8 records, never the same value twice, and
    /// only healthy values while any record is healthy (values may repeat across sets).
    #[test]
    fn prop_multivalue_answers_are_at_most_8_distinct(
        sets in prop::collection::vec((0u8..6, prop::option::of(any::<bool>())), 1..=20),
        seed in any::<u64>(),
    ) {
        let mut w = world();
        for (i, (v, health)) in sets.iter().enumerate() {
            let mut spec = multivalue(GROUP, &format!("m{i}"), &[&format!("192.0.2.{v}")]);
            if let Some(up) = health {
                w.probe(&format!("hc{i}"), *up);
                spec = spec.hc(&format!("hc{i}"));
            }
            w.record(&format!("m{i}"), spec);
        }
        let d = w.decide_a(GROUP);
        let healthy: BTreeSet<String> =
            sets.iter().filter(|(_, h)| h.unwrap_or(true)).map(|(v, _)| format!("192.0.2.{v}")).collect();
        let all: BTreeSet<String> = sets.iter().map(|(v, _)| format!("192.0.2.{v}")).collect();
        let mut rng = rng(seed);
        for _ in 0..64 {
            let a = answer(&d.plan, &mut rng);
            prop_assert!(!a.is_empty());
            prop_assert!(a.len() <= MULTIVALUE_MAX, "{:?}", a);
            prop_assert!(distinct(&a), "duplicates: {:?}", a);
            let allowed = if healthy.is_empty() { &all } else { &healthy };
            prop_assert!(a.iter().all(|v| allowed.contains(v)), "{:?} not within {:?}", a, allowed);
        }
    }

    /// (a) over whole models: every name + type of a random set of groups answers
    /// through the snapshot, and every decision's plan yields records.
    #[test]
    fn prop_every_served_name_answers(groups in prop::collection::vec(group(), 1..=4), seed in any::<u64>()) {
        let mut w = world();
        for (k, g) in groups.iter().enumerate() {
            let sub = build(g);
            let prefix = format!("k{k}-");
            let rename = |n: &str| format!("{prefix}{n}");
            for c in sub.checks {
                w.checks.push(input(NS, &rename(&c.id.name), c.seq, c.spec));
            }
            for r in sub.records {
                let mut spec = r.spec;
                spec.name = rename(&spec.name);
                spec.health_check_name = spec.health_check_name.map(|n| rename(&n));
                if let Some(t) = &mut spec.alias_target {
                    t.name = rename(&t.name);
                }
                w.records.push(input(NS, &rename(&r.id.name), r.seq, spec));
            }
            for (i, m) in members(g).iter().enumerate() {
                if let Some(up) = m.health {
                    w.set(&rename(&format!("hc{i}")), up);
                }
            }
        }
        let model = w.model();
        prop_assert!(model.errors().next().is_none(), "{:?}", model.problems);
        let s = w.snapshot(1);
        let mut rng = rng(seed);
        prop_assert_eq!(s.decision_count(), model.sets.len());
        for (name, rtype) in model.sets.keys() {
            prop_assert_eq!(*rtype, RecordType::A);
            for _ in 0..8 {
                let r = resolve(&s, name.as_str(), qtype::A, &mut rng);
                prop_assert_eq!(r.rcode, Rcode::NoError);
                prop_assert!(!r.records.is_empty(), "no answer for {}", name);
            }
        }
    }
}
