//! Answer policies beyond Route 53 (api.md section 8): `whenAllUnhealthy` (FailOpen,
//! FailClosed, Fallback with fallbackValues) for a whole name + type, and
//! `degradedTTL` while a record set is served but is not the first choice.

use super::*;
use failover_dns::engine::Outcome;
use failover_dns::resources::{AllUnhealthyPolicy, FailoverRecordSpec};

trait Policies: Sized {
    fn when_all_unhealthy(self, policy: AllUnhealthyPolicy, fallback: &[&str]) -> Self;
    fn degraded_ttl(self, ttl: i64) -> Self;
}

impl Policies for FailoverRecordSpec {
    fn when_all_unhealthy(mut self, policy: AllUnhealthyPolicy, fallback: &[&str]) -> Self {
        self.when_all_unhealthy = Some(policy);
        self.fallback_values =
            (!fallback.is_empty()).then(|| fallback.iter().map(|v| v.to_string()).collect());
        self
    }
    fn degraded_ttl(mut self, ttl: i64) -> Self {
        self.degraded_ttl = Some(ttl);
        self
    }
}

fn ttls(plan: &Plan) -> Vec<u32> {
    answer_ttl(plan, &mut rng(3)).into_iter().map(|(_, t)| t).collect()
}

#[test]
fn fail_closed_answers_nodata_only_while_every_member_is_unhealthy() {
    for up in [true, false] {
        let mut w = world();
        w.probe("p", up).probe("s", false);
        let closed = AllUnhealthyPolicy::FailClosed;
        w.record("p", primary(WWW, &["192.0.2.1"]).hc("p").when_all_unhealthy(closed, &[]));
        w.record("s", secondary(WWW, &["192.0.2.2"]).hc("s"));
        assert_no_errors(&w.model());
        let d = w.decide_a(WWW);
        if up {
            assert_always(&d.plan, &["192.0.2.1"]);
            assert_eq!(d.outcome, Outcome::Preferred);
            continue;
        }
        assert!(d.plan.possible().is_empty(), "no records: {:?}", d.plan);
        assert_eq!(d.outcome, Outcome::FailClosed);
        assert!(d.rule.contains("FailClosed"), "{}", d.rule);
        assert!(d.candidates.iter().all(|c| c.selection != Selection::Chosen));
        // Through the snapshot: NOERROR, no records, the zone's SOA (NODATA).
        let r = resolve(&w.snapshot(7), WWW, qtype::A, &mut rng(1));
        assert_eq!(r.rcode, Rcode::NoError);
        assert!(r.records.is_empty(), "{:?}", r.records);
        assert_eq!(r.soa_zone.as_deref(), Some("example.com."));
    }
}

#[test]
fn fallback_values_answer_only_while_every_member_is_down() {
    let fallback = AllUnhealthyPolicy::Fallback;
    let build = |a: bool, b: bool| {
        let mut w = world();
        w.probe("a", a).probe("b", b);
        w.record(
            "a",
            weighted(WWW, "a", 1, &["192.0.2.1"])
                .hc("a")
                .ttl(60)
                .degraded_ttl(5)
                .when_all_unhealthy(fallback, &["198.51.100.9"]),
        );
        // A member that leaves it out follows the group.
        w.record("b", weighted(WWW, "b", 1, &["192.0.2.2"]).hc("b"));
        assert_no_errors(&w.model());
        w.decide_a(WWW)
    };
    let d = build(true, false);
    assert_always(&d.plan, &["192.0.2.1"]);
    let d = build(false, false);
    assert_always(&d.plan, &["198.51.100.9"]);
    assert_eq!(ttls(&d.plan), [5], "the declaring set's degradedTTL");
    assert_eq!(d.outcome, Outcome::Fallback);
    assert!(d.rule.contains("Fallback"), "{}", d.rule);
}

#[test]
fn fail_open_stays_the_default_and_can_be_said() {
    for policy in [None, Some(AllUnhealthyPolicy::FailOpen)] {
        let mut w = world();
        w.probe("a", false).probe("b", false);
        let mut a = multivalue(WWW, "a", &["192.0.2.1"]).hc("a");
        if let Some(p) = policy {
            a = a.when_all_unhealthy(p, &[]);
        }
        w.record("a", a);
        w.record("b", multivalue(WWW, "b", &["192.0.2.2"]).hc("b"));
        let d = w.decide_a(WWW);
        assert_always(&d.plan, &["192.0.2.1", "192.0.2.2"]);
        assert_eq!(d.outcome, Outcome::FailOpen);
    }
}

#[test]
fn members_that_disagree_conflict_and_the_younger_is_refused_naming_the_older() {
    let mut w = world();
    let (closed, fallback) = (AllUnhealthyPolicy::FailClosed, AllUnhealthyPolicy::Fallback);
    w.record_seq("p", 1, primary(WWW, &["192.0.2.1"]).when_all_unhealthy(closed, &[]));
    w.record_seq(
        "s",
        2,
        secondary(WWW, &["192.0.2.2"]).when_all_unhealthy(fallback, &["192.0.2.9"]),
    );
    let model = w.model();
    let p = assert_error(&model, "s", "spec.whenAllUnhealthy");
    assert!(p.message.contains(&format!("{NS}/p")), "{}", p.message);
    assert!(served(&model, "p"));

    // Two Fallbacks must give the same values.
    let two_fallbacks = |b_values: &[&str]| {
        let mut w = world();
        let a = weighted(WWW, "a", 1, &["192.0.2.1"]).when_all_unhealthy(fallback, &["192.0.2.8"]);
        w.record_seq("a", 1, a);
        let b = weighted(WWW, "b", 1, &["192.0.2.2"]).when_all_unhealthy(fallback, b_values);
        w.record_seq("b", 2, b);
        w.model()
    };
    assert_error(&two_fallbacks(&["192.0.2.9"]), "b", "spec.fallbackValues");
    // The same values agree.
    assert_no_errors(&two_fallbacks(&["192.0.2.8"]));
}

#[test]
fn fallback_values_are_validated_like_values_and_only_with_fallback() {
    let mut w = world();
    let fallback = AllUnhealthyPolicy::Fallback;
    w.record("bad-ip", simple_a(WWW, &["192.0.2.1"]).when_all_unhealthy(fallback, &["not-an-ip"]));
    w.record(
        "missing",
        simple_a("m.example.com", &["192.0.2.1"]).when_all_unhealthy(fallback, &[]),
    );
    let mut stray = simple_a("s.example.com", &["192.0.2.1"]);
    stray.fallback_values = Some(vec!["192.0.2.9".into()]);
    w.record("stray", stray);
    w.record("alias-ttl", simple_a("al.example.com", &[]).alias(WWW, false).degraded_ttl(5));
    let model = w.model();
    assert_error(&model, "bad-ip", "spec.fallbackValues[0]");
    assert_error(&model, "missing", "spec.fallbackValues");
    assert_error(&model, "stray", "spec.fallbackValues");
    assert_error(&model, "alias-ttl", "spec.degradedTTL");
}

#[test]
fn a_secondary_serving_for_its_primary_answers_with_its_degraded_ttl() {
    for primary_up in [true, false] {
        let mut w = world();
        w.probe("p", primary_up);
        w.record("p", primary(WWW, &["192.0.2.1"]).hc("p").ttl(60).degraded_ttl(10));
        w.record("s", secondary(WWW, &["192.0.2.2"]).ttl(60).degraded_ttl(5));
        let d = w.decide_a(WWW);
        if primary_up {
            assert_eq!(ttls(&d.plan), [60], "the PRIMARY keeps its own TTL");
            assert_eq!(d.outcome, Outcome::Preferred);
            assert_eq!(candidate(&d, "p").ttl, Some(60));
        } else {
            assert_always(&d.plan, &["192.0.2.2"]);
            assert_eq!(ttls(&d.plan), [5], "the SECONDARY serves degraded");
            assert_eq!(d.outcome, Outcome::Degraded);
            assert_eq!(candidate(&d, "s").ttl, Some(5));
            let r = resolve(&w.snapshot(7), WWW, qtype::A, &mut rng(1));
            assert_eq!(r.records[0].3, 5, "on the wire too");
        }
    }
    // Both down: the PRIMARY fails open, degraded.
    let mut w = world();
    w.probe("p", false).probe("s", false);
    w.record("p", primary(WWW, &["192.0.2.1"]).hc("p").ttl(60).degraded_ttl(10));
    w.record("s", secondary(WWW, &["192.0.2.2"]).hc("s"));
    let d = w.decide_a(WWW);
    assert_eq!((ttls(&d.plan), d.outcome), (vec![10], Outcome::FailOpen));
}

#[test]
fn zero_weight_standbys_and_failing_open_groups_serve_degraded() {
    let mut w = world();
    w.probe("one", false);
    w.record("one", weighted(WWW, "one", 1, &["192.0.2.1"]).hc("one").degraded_ttl(3));
    w.record("zero", weighted(WWW, "zero", 0, &["192.0.2.0"]).ttl(300).degraded_ttl(7));
    let d = w.decide_a(WWW);
    assert_always(&d.plan, &["192.0.2.0"]);
    assert_eq!((ttls(&d.plan), d.outcome), (vec![7], Outcome::Degraded));
    // Healthy nonzero weights: everyone keeps their TTL.
    w.set("one", true);
    let d = w.decide_a(WWW);
    assert_eq!((ttls(&d.plan), d.outcome), (vec![60], Outcome::Preferred));
}
