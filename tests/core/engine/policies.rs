//! The four routing policies of api.md section 2: Simple, Weighted, Failover and
//! MultiValue, by their answers and their exact distributions.

use super::*;

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
