//! The health map (src/health.rs): leaf states, initial states, disabled and inverted
//! checks, and calculated checks derived from their children. Pure, no I/O.

use crate::support::model::*;
use failover_dns::health::{HealthMap, LeafHealth};
use failover_dns::model::ObjectRef;
use failover_dns::resources::{FailoverRole, HealthCheckSpec};

fn inverted(mut spec: HealthCheckSpec) -> HealthCheckSpec {
    spec.inverted = Some(true);
    spec
}

fn disabled(mut spec: HealthCheckSpec) -> HealthCheckSpec {
    spec.disabled = Some(true);
    spec
}

/// Verdict of one check of a world.
fn verdict(world: &World, check: &str) -> bool {
    let model = world.model();
    world.verdicts(&model).get(&oref(check)).unwrap_or_else(|| panic!("no verdict for {check}"))
}

// ------------------------------------------------------------------ leaves

#[test]
fn a_new_check_is_healthy_until_its_first_verdict() {
    let mut w = World::new(&["example.com"]);
    w.check("web", http("192.0.2.1"));
    assert!(verdict(&w, "web"));
    let model = w.model();
    let check = &model.checks[&oref("web")];
    let initial = LeafHealth::initial(check);
    assert!(initial.healthy);
    assert_eq!(initial.reason, "Pending");
    assert_eq!((initial.consecutive_successes, initial.consecutive_failures), (0, 0));
}

#[test]
fn a_new_inverted_check_is_unhealthy_until_its_first_verdict() {
    let mut w = World::new(&["example.com"]);
    w.check("web", inverted(http("192.0.2.1")));
    assert!(!verdict(&w, "web"));
    let model = w.model();
    let initial = LeafHealth::initial(&model.checks[&oref("web")]);
    assert!(!initial.healthy);
    assert_eq!(initial.reason, "Pending");
}

#[test]
fn the_reported_leaf_state_wins_over_the_initial_state() {
    let mut w = World::new(&["example.com"]);
    w.check("up", http("192.0.2.1")).set("up", true);
    w.check("down", http("192.0.2.2")).set("down", false);
    // An inverted check's reported state is already inverted by the prober.
    w.check("inv", inverted(http("192.0.2.3"))).set("inv", true);
    assert!(verdict(&w, "up"));
    assert!(!verdict(&w, "down"));
    assert!(verdict(&w, "inv"));
    w.set("up", false).set("down", true);
    assert!(!verdict(&w, "up"));
    assert!(verdict(&w, "down"));
}

#[test]
fn a_disabled_check_is_always_healthy() {
    let mut w = World::new(&["example.com"]);
    w.check("off", disabled(http("192.0.2.1"))).set("off", false);
    w.check("off-inv", disabled(inverted(tcp("192.0.2.1", 22))));
    assert!(verdict(&w, "off"), "a disabled check ignores a reported failure");
    assert!(verdict(&w, "off-inv"), "a disabled inverted check is healthy too");
    let model = w.model();
    let initial = LeafHealth::initial(&model.checks[&oref("off-inv")]);
    assert!(initial.healthy);
    assert_eq!(initial.reason, "Disabled");
}

#[test]
fn verdicts_cover_exactly_the_existing_checks() {
    let mut w = World::new(&["example.com"]);
    w.probe("a", true).probe("b", false);
    // Health reported for a check that does not exist is ignored.
    w.set("ghost", true);
    let model = w.model();
    let verdicts = w.verdicts(&model);
    assert_eq!(verdicts.0.len(), 2);
    assert_eq!(verdicts.get(&oref("a")), Some(true));
    assert_eq!(verdicts.get(&oref("b")), Some(false));
    assert_eq!(verdicts.get(&oref("ghost")), None);
}

#[test]
fn retain_checks_drops_the_state_of_removed_checks() {
    let mut w = World::new(&["example.com"]);
    w.probe("kept", false).set("gone", false);
    let model = w.model();
    let mut map: HealthMap = w.health.clone();
    assert!(map.get(&oref("gone")).is_some());
    map.retain_checks(&model);
    assert!(map.get(&oref("gone")).is_none());
    assert_eq!(map.get(&oref("kept")).map(|l| l.healthy), Some(false));
}

#[test]
fn checks_are_namespaced() {
    let mut w = World::new(&["example.com"]);
    w.check_in("other", "web", http("192.0.2.1"));
    w.health.set(ObjectRef::new("other", "web"), leaf(false));
    w.check("web", http("192.0.2.1")).set("web", true);
    let model = w.model();
    let v = w.verdicts(&model);
    assert_eq!(v.get(&ObjectRef::new("other", "web")), Some(false));
    assert_eq!(v.get(&oref("web")), Some(true));
}

// ------------------------------------------------------------------ calculated

/// A world with leaf checks c0..cN in the given states and one calculated check `calc`.
fn calc_world(states: &[bool], threshold: i64) -> World {
    let mut w = World::new(&["example.com"]);
    let names: Vec<String> = (0..states.len()).map(|i| format!("c{i}")).collect();
    for (name, healthy) in names.iter().zip(states) {
        w.probe(name, *healthy);
    }
    let children: Vec<&str> = names.iter().map(String::as_str).collect();
    w.check("calc", calculated(&children, threshold));
    w
}

#[test]
fn calculated_is_healthy_when_at_least_n_of_m_children_are() {
    for (states, threshold, expected) in [
        (&[true, true, false][..], 2, true),
        (&[true, false, false][..], 2, false),
        (&[true, true, true][..], 3, true),
        (&[true, true, false][..], 3, false),
        (&[false, false, false][..], 1, false),
        (&[false, false, true][..], 1, true),
    ] {
        let w = calc_world(states, threshold);
        assert_eq!(verdict(&w, "calc"), expected, "children {states:?}, threshold {threshold}");
    }
}

#[test]
fn calculated_threshold_zero_is_always_healthy() {
    let w = calc_world(&[false, false], 0);
    assert!(verdict(&w, "calc"));
    let w = calc_world(&[], 0);
    assert!(verdict(&w, "calc"));
}

#[test]
fn calculated_threshold_above_the_child_count_is_always_unhealthy() {
    let w = calc_world(&[true, true], 3);
    assert_no_errors(&w.model());
    assert!(!verdict(&w, "calc"));
}

#[test]
fn a_disabled_child_counts_healthy() {
    let mut w = World::new(&["example.com"]);
    w.check("off", disabled(http("192.0.2.1"))).set("off", false);
    w.probe("down", false);
    w.check("calc", calculated(&["off", "down"], 1));
    assert!(verdict(&w, "calc"));
    w.check("calc2", calculated(&["off", "down"], 2));
    assert!(!verdict(&w, "calc2"));
}

#[test]
fn a_missing_child_counts_unhealthy_and_is_reported() {
    let mut w = World::new(&["example.com"]);
    w.probe("up", true);
    w.check("calc", calculated(&["up", "missing"], 2));
    let model = w.model();
    assert_warning(&model, "calc", "spec.childHealthChecks[1]");
    assert!(model.checks.contains_key(&oref("calc")), "a missing child is only a warning");
    assert!(!verdict(&w, "calc"));
    w.check("calc1", calculated(&["up", "missing"], 1));
    assert!(verdict(&w, "calc1"));
}

#[test]
fn children_are_looked_up_in_the_calculated_checks_namespace() {
    let mut w = World::new(&["example.com"]);
    w.check_in("other", "child", http("192.0.2.1"));
    w.check("calc", calculated(&["child"], 1));
    let model = w.model();
    assert_warning(&model, "calc", "spec.childHealthChecks[0]");
    assert!(!verdict(&w, "calc"), "a child of another namespace does not count");
}

#[test]
fn an_inverted_calculated_check_reports_the_opposite() {
    let mut w = calc_world(&[true, false], 1);
    w.check("inv", inverted(calculated(&["c0", "c1"], 1)));
    w.check("inv2", inverted(calculated(&["c0", "c1"], 2)));
    assert!(verdict(&w, "calc"));
    assert!(!verdict(&w, "inv"));
    assert!(verdict(&w, "inv2"));
}

#[test]
fn a_disabled_calculated_check_is_healthy() {
    let mut w = calc_world(&[false, false], 2);
    w.check("off", disabled(calculated(&["c0", "c1"], 2)));
    assert!(!verdict(&w, "calc"));
    assert!(verdict(&w, "off"));
}

#[test]
fn children_before_their_first_verdict_use_their_initial_state() {
    let mut w = World::new(&["example.com"]);
    w.check("new", http("192.0.2.1"));
    w.check("new-inverted", inverted(http("192.0.2.2")));
    w.check("calc", calculated(&["new", "new-inverted"], 1));
    w.check("calc2", calculated(&["new", "new-inverted"], 2));
    assert!(verdict(&w, "calc"));
    assert!(!verdict(&w, "calc2"));
}

#[test]
fn a_child_transition_reaches_the_parent_in_the_same_resolve() {
    let mut w = calc_world(&[true, true], 2);
    assert!(verdict(&w, "calc"));
    w.set("c1", false);
    assert!(!verdict(&w, "calc"));
    w.set("c1", true);
    assert!(verdict(&w, "calc"));
}

#[test]
fn records_follow_calculated_checks() {
    let mut w = calc_world(&[true, false, false], 2);
    w.record("p", primary("www.example.com", &["192.0.2.10"]).hc("calc"));
    w.record("s", secondary("www.example.com", &["192.0.2.20"]));
    assert_eq!(possible(&w.decide_a("www.example.com").plan), set_of(&["192.0.2.20"]));
    w.set("c2", true);
    assert_eq!(possible(&w.decide_a("www.example.com").plan), set_of(&["192.0.2.10"]));
    // The failover roles exist as the routing engine sees them.
    let d = w.decide_a("www.example.com");
    assert_eq!(d.candidates[0].failover, Some(FailoverRole::Primary));
    assert!(d.candidates[0].healthy);
}
