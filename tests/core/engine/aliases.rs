//! Aliases and evaluateTargetHealth, health checks behind records (calculated ones
//! too), all evaluated bottom-up.

use super::*;

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
