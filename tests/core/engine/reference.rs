//! The configurations of the Route 53 reference (active-passive, active-active), and
//! a model the validator let through never crashing the engine.

use super::*;

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
