//! Validation (src/model.rs `validate`): every rule of the contract (api.md section 1)
//! yields an Error naming the object and the field, rejected objects are not served,
//! and they never disturb the objects that are valid. Pure, no I/O.

#[path = "support/model.rs"]
mod model_support;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use failover_dns::model::{
    self, Endpoint, Fqdn, Input, Kind, Policy, Probe, RecordData, parse_rdata, parse_txt, validate,
};
use failover_dns::resources::{FailoverRole, HealthCheckSpec, HealthCheckType, RecordType};
use hickory_proto::rr::RData;
use model_support::*;

const ZONE: &str = "example.com";

fn world() -> World {
    World::new(&[ZONE, "example.net"])
}

/// The record sets served for a name + type, as object names, oldest first.
fn served_at(model: &model::Model, name: &str, rtype: RecordType) -> Vec<String> {
    model
        .sets
        .get(&key(name, rtype))
        .map(|sets| sets.iter().map(|s| s.id.name.to_string()).collect())
        .unwrap_or_default()
}

// ================================================================== records: baseline

#[test]
fn valid_records_are_accepted_and_grouped_by_name_and_type_oldest_first() {
    let mut w = world();
    w.record_seq("w2", 20, weighted("api.example.com", "b", 1, &["192.0.2.2"]));
    w.record_seq("w1", 10, weighted("api.example.com", "a", 3, &["192.0.2.1"]));
    w.record_seq("txt", 30, simple("api.example.com", RecordType::Txt, &["\"v=1\""]));
    w.record_seq("apex", 40, simple_a("example.com", &["192.0.2.9"]));
    let model = w.valid_model();
    assert_eq!(served_at(&model, "api.example.com", RecordType::A), ["w1", "w2"]);
    assert_eq!(served_at(&model, "api.example.com", RecordType::Txt), ["txt"]);
    assert_eq!(served_at(&model, "example.com", RecordType::A), ["apex"]);
    let w1 = &model.sets[&key("api.example.com", RecordType::A)][0];
    assert_eq!(w1.policy, Policy::Weighted(3));
    assert_eq!(w1.set_identifier.as_deref(), Some("a"));
    assert_eq!(w1.ttl, model::DEFAULT_TTL);
    assert_eq!(w1.seq, 10);
    assert_eq!(model.zones, vec![fqdn("example.com"), fqdn("example.net")]);
}

#[test]
fn zones_are_ordered_longest_first_and_deduplicated() {
    let mut w = World::new(&["example.com", "sub.example.com", "Example.COM."]);
    w.record("r", simple_a("x.sub.example.com", &["192.0.2.1"]));
    let model = w.valid_model();
    assert_eq!(model.zones, vec![fqdn("sub.example.com"), fqdn("example.com")]);
    assert_eq!(model.zone_of(&fqdn("x.sub.example.com")), Some(&fqdn("sub.example.com")));
    assert_eq!(model.zone_of(&fqdn("x.example.com")), Some(&fqdn("example.com")));
    assert_eq!(model.zone_of(&fqdn("xexample.com")), None);
}

/// `validate` sorts the zones by length and then drops only *adjacent* duplicates, so
/// a zone listed twice with another zone of the same length in between stays twice.
#[test]
fn a_zone_listed_twice_is_served_once() {
    let w = World::new(&["a.example", "b.example", "A.EXAMPLE."]);
    let model = w.model();
    assert_eq!(model.zones.len(), 2, "{:?}", model.zones);
    let w = World::new(&["a.example", "b.example", "a.example"]);
    assert_eq!(w.snapshot(1).zones.len(), 2);
}

/// Zone membership is decided on the presentation string, so a label with an escaped
/// dot is mistaken for two labels: `x\.example.com` is the label `x.example` under
/// `com`, which is not inside the zone `example.com`.
#[test]
fn a_name_with_an_escaped_dot_is_judged_by_its_labels() {
    let zone = fqdn("example.com");
    assert!(!fqdn("x\\.example.com").is_within(&zone), "x\\.example.com is not below example.com");
    assert!(fqdn("x\\.y.example.com").is_within(&zone));
    let mut w = world();
    w.record("escaped", simple_a("x\\.example.com", &["192.0.2.1"]));
    let model = w.model();
    assert_rejected(&model, "escaped", "spec.name");
}

#[test]
fn the_ttl_defaults_to_60_and_must_be_in_range() {
    let mut w = world();
    w.record("default", simple_a("a.example.com", &["192.0.2.1"]));
    w.record("custom", simple_a("b.example.com", &["192.0.2.1"]).ttl(0));
    w.record("negative", simple_a("c.example.com", &["192.0.2.1"]).ttl(-1));
    w.record("huge", simple_a("d.example.com", &["192.0.2.1"]).ttl(1 << 31));
    let model = w.model();
    assert_eq!(model.sets[&key("a.example.com", RecordType::A)][0].ttl, 60);
    assert_eq!(model.sets[&key("b.example.com", RecordType::A)][0].ttl, 0);
    assert_rejected(&model, "negative", "spec.ttl");
    assert_rejected(&model, "huge", "spec.ttl");
}

#[test]
fn problems_carry_the_file_and_the_kind() {
    let zones = vec![fqdn(ZONE)];
    let mut bad = input(NS, "bad", 1, weighted("www.example.com", "a", 300, &["192.0.2.1"]));
    bad.file = Some("manifests/www.yaml".into());
    let mut bad_check = input(NS, "hc", 1, tcp("192.0.2.1", 0));
    bad_check.file = Some("manifests/hc.yaml".into());
    let model = validate(&zones, &[bad_check], &[bad]);
    let p = assert_error(&model, "bad", "spec.weight");
    assert_eq!(p.kind, Kind::FailoverRecord);
    assert_eq!(p.file.as_deref(), Some("manifests/www.yaml"));
    let shown = p.to_string();
    assert!(
        shown.contains("manifests/www.yaml")
            && shown.contains("default/bad")
            && shown.contains("spec.weight"),
        "{shown}"
    );
    let p = assert_error(&model, "hc", "spec.port");
    assert_eq!(p.kind, Kind::HealthCheck);
    assert_eq!(p.file.as_deref(), Some("manifests/hc.yaml"));
}

// ================================================================== policies

#[test]
fn mixed_policies_on_one_name_and_type_reject_the_younger_record() {
    let mut w = world();
    // The slice order is the opposite of the age order: age (seq) decides.
    w.record_seq("failover-young", 20, primary("www.example.com", &["192.0.2.2"]));
    w.record_seq("weighted-old", 10, weighted("www.example.com", "a", 1, &["192.0.2.1"]));
    let model = w.model();
    assert_rejected(&model, "failover-young", "spec.routingPolicy");
    assert_served(&model, "weighted-old");

    let mut w = world();
    w.record_seq("failover-old", 10, primary("www.example.com", &["192.0.2.2"]));
    w.record_seq("weighted-young", 20, weighted("www.example.com", "a", 1, &["192.0.2.1"]));
    let model = w.model();
    assert_rejected(&model, "weighted-young", "spec.routingPolicy");
    assert_served(&model, "failover-old");
}

#[test]
fn different_policies_on_different_types_or_names_are_fine() {
    let mut w = world();
    w.record("w", weighted("www.example.com", "a", 1, &["192.0.2.1"]));
    w.record("aaaa", simple("www.example.com", RecordType::Aaaa, &["2001:db8::1"]));
    w.record("mv", multivalue("api.example.com", "a", &["192.0.2.1"]));
    w.record("p", primary("app.example.com", &["192.0.2.1"]));
    w.valid_model();
}

#[test]
fn a_second_simple_record_set_is_rejected() {
    let mut w = world();
    w.record("first", simple_a("www.example.com", &["192.0.2.1"]));
    w.record("second", simple_a("www.example.com", &["192.0.2.2"]));
    let model = w.model();
    assert_rejected(&model, "second", "spec.name");
    assert_served(&model, "first");
}

#[test]
fn two_primaries_reject_the_younger() {
    let mut w = world();
    w.record_seq(
        "p2",
        20,
        failover("www.example.com", "p2", FailoverRole::Primary, &["192.0.2.2"]),
    );
    w.record_seq(
        "p1",
        10,
        failover("www.example.com", "p1", FailoverRole::Primary, &["192.0.2.1"]),
    );
    let model = w.model();
    assert_rejected(&model, "p2", "spec.failover");
    assert_served(&model, "p1");
}

#[test]
fn two_secondaries_reject_the_younger() {
    let mut w = world();
    w.record("p", primary("www.example.com", &["192.0.2.1"]));
    w.record("s1", failover("www.example.com", "s1", FailoverRole::Secondary, &["192.0.2.2"]));
    w.record("s2", failover("www.example.com", "s2", FailoverRole::Secondary, &["192.0.2.3"]));
    let model = w.model();
    assert_rejected(&model, "s2", "spec.failover");
    assert_served(&model, "p");
    assert_served(&model, "s1");
}

#[test]
fn a_secondary_without_a_primary_is_rejected() {
    let mut w = world();
    w.record("s", secondary("www.example.com", &["192.0.2.2"]));
    // A primary of another type or name does not count.
    w.record("p-aaaa", primary("www.example.com", &["2001:db8::1"]).rtype(RecordType::Aaaa));
    w.record("p-other", primary("other.example.com", &["192.0.2.1"]));
    let model = w.model();
    assert_rejected(&model, "s", "spec.failover");
    assert_served(&model, "p-aaaa");
    assert_served(&model, "p-other");
}

#[test]
fn a_primary_alone_is_valid() {
    let mut w = world();
    w.record("p", primary("www.example.com", &["192.0.2.1"]));
    let model = w.valid_model();
    assert_eq!(served_at(&model, "www.example.com", RecordType::A), ["p"]);
}

#[test]
fn failover_is_required_for_failover_routing_and_only_allowed_there() {
    let mut w = world();
    let mut missing = primary("a.example.com", &["192.0.2.1"]);
    missing.failover = None;
    w.record("missing", missing);
    let mut stray = simple_a("b.example.com", &["192.0.2.1"]);
    stray.failover = Some(FailoverRole::Primary);
    w.record("stray", stray);
    let model = w.model();
    assert_rejected(&model, "missing", "spec.failover");
    assert_rejected(&model, "stray", "spec.failover");
}

#[test]
fn a_duplicate_set_identifier_rejects_the_younger() {
    let mut w = world();
    w.record("old", weighted("www.example.com", "same", 1, &["192.0.2.1"]));
    w.record("young", weighted("www.example.com", "same", 2, &["192.0.2.2"]));
    // The same identifier on another name or type is fine.
    w.record("other-name", weighted("api.example.com", "same", 1, &["192.0.2.1"]));
    w.record(
        "other-type",
        weighted("www.example.com", "same", 1, &["2001:db8::1"]).rtype(RecordType::Aaaa),
    );
    let model = w.model();
    assert_rejected(&model, "young", "spec.setIdentifier");
    for ok in ["old", "other-name", "other-type"] {
        assert_served(&model, ok);
    }

    let mut w = world();
    w.record("mv1", multivalue("www.example.com", "x", &["192.0.2.1"]));
    w.record("mv2", multivalue("www.example.com", " x ", &["192.0.2.2"]));
    let model = w.model();
    assert_rejected(&model, "mv2", "spec.setIdentifier");
}

#[test]
fn a_set_identifier_is_required_unless_simple() {
    let mut w = world();
    let mut weighted_none = weighted("a.example.com", "x", 1, &["192.0.2.1"]);
    weighted_none.set_identifier = None;
    let mut failover_none = primary("b.example.com", &["192.0.2.1"]);
    failover_none.set_identifier = None;
    let mut multi_none = multivalue("c.example.com", "x", &["192.0.2.1"]);
    multi_none.set_identifier = None;
    let mut empty = weighted("d.example.com", "x", 1, &["192.0.2.1"]);
    empty.set_identifier = Some("  ".into());
    let mut simple_with = simple_a("e.example.com", &["192.0.2.1"]);
    simple_with.set_identifier = Some("x".into());
    let mut too_long = weighted("f.example.com", "x", 1, &["192.0.2.1"]);
    too_long.set_identifier = Some("x".repeat(129));
    w.record("weighted-none", weighted_none);
    w.record("failover-none", failover_none);
    w.record("multi-none", multi_none);
    w.record("empty", empty);
    w.record("simple-with", simple_with);
    w.record("too-long", too_long);
    let model = w.model();
    for object in
        ["weighted-none", "failover-none", "multi-none", "empty", "simple-with", "too-long"]
    {
        assert_rejected(&model, object, "spec.setIdentifier");
    }
    assert!(model.sets.is_empty());
}

#[test]
fn weights_are_required_and_0_to_255() {
    let mut w = world();
    w.record("zero", weighted("www.example.com", "zero", 0, &["192.0.2.1"]));
    w.record("max", weighted("www.example.com", "max", 255, &["192.0.2.2"]));
    w.record("too-big", weighted("www.example.com", "big", 256, &["192.0.2.3"]));
    w.record("negative", weighted("www.example.com", "neg", -1, &["192.0.2.4"]));
    let mut missing = weighted("www.example.com", "missing", 1, &["192.0.2.5"]);
    missing.weight = None;
    w.record("missing", missing);
    let mut stray = primary("app.example.com", &["192.0.2.1"]);
    stray.weight = Some(1);
    w.record("stray", stray);
    let model = w.model();
    for object in ["too-big", "negative", "missing", "stray"] {
        assert_rejected(&model, object, "spec.weight");
    }
    assert_eq!(served_at(&model, "www.example.com", RecordType::A), ["zero", "max"]);
    let sets = &model.sets[&key("www.example.com", RecordType::A)];
    assert_eq!(sets[0].policy, Policy::Weighted(0));
    assert_eq!(sets[1].policy, Policy::Weighted(255));
}

// ================================================================== aliases

#[test]
fn an_alias_target_must_exist_for_the_same_type() {
    let mut w = world();
    w.record("target", simple_a("target.example.com", &["192.0.2.1"]));
    w.record("ok", simple_a("ok.example.com", &[]).alias("target.example.com", true));
    w.record("missing", simple_a("a.example.com", &[]).alias("nothing.example.com", false));
    w.record(
        "wrong-type",
        simple("b.example.com", RecordType::Aaaa, &[]).alias("target.example.com", false),
    );
    w.record("outside", simple_a("c.example.com", &[]).alias("www.elsewhere.org", false));
    w.record("bad-name", simple_a("d.example.com", &[]).alias("-bad..name", false));
    let model = w.model();
    assert_served(&model, "ok");
    for object in ["missing", "wrong-type", "outside", "bad-name"] {
        assert_rejected(&model, object, "spec.aliasTarget.name");
    }
    let ok = &model.sets[&key("ok.example.com", RecordType::A)][0];
    assert_eq!(
        ok.data,
        RecordData::Alias { target: fqdn("target.example.com"), evaluate_target_health: true }
    );
    assert_eq!(ok.alias(), Some((&fqdn("target.example.com"), true)));
}

#[test]
fn an_alias_may_point_into_another_served_zone_and_sit_at_the_apex() {
    let mut w = world();
    w.record("target", simple_a("www.example.net", &["192.0.2.1"]));
    w.record("apex", simple_a("example.com", &[]).alias("www.example.net", false));
    w.valid_model();
}

#[test]
fn exactly_one_of_values_and_alias_target() {
    let mut w = world();
    w.record("target", simple_a("t.example.com", &["192.0.2.1"]));
    let mut both = simple_a("a.example.com", &["192.0.2.1"]).alias("t.example.com", false);
    both.values = Some(vec!["192.0.2.1".into()]);
    let mut neither = simple_a("b.example.com", &[]);
    neither.values = None;
    w.record("both", both);
    w.record("neither", neither);
    let model = w.model();
    assert_rejected(&model, "both", "spec.aliasTarget");
    assert_rejected(&model, "neither", "spec.values");
}

#[test]
fn the_ttl_of_an_alias_is_ignored_with_a_warning() {
    let mut w = world();
    w.record("target", simple_a("t.example.com", &["192.0.2.1"]));
    w.record("alias", simple_a("a.example.com", &[]).alias("t.example.com", false).ttl(5));
    let model = w.valid_model();
    assert_warning(&model, "alias", "spec.ttl");
    assert_served(&model, "alias");
}

#[test]
fn an_alias_to_itself_is_rejected() {
    let mut w = world();
    w.record("self", simple_a("loop.example.com", &[]).alias("loop.example.com", false));
    let model = w.model();
    assert_rejected(&model, "self", "spec.aliasTarget.name");
    assert!(model.sets.is_empty());
}

#[test]
fn an_alias_cycle_is_rejected() {
    let mut w = world();
    w.record("a", simple_a("a.example.com", &[]).alias("b.example.com", false));
    w.record("b", simple_a("b.example.com", &[]).alias("a.example.com", true));
    // Longer cycle: c -> d -> e -> c.
    w.record("c", simple_a("c.example.com", &[]).alias("d.example.com", false));
    w.record("d", simple_a("d.example.com", &[]).alias("e.example.com", false));
    w.record("e", simple_a("e.example.com", &[]).alias("c.example.com", false));
    let model = w.model();
    for object in ["a", "b", "c", "d", "e"] {
        assert_rejected(&model, object, "spec.aliasTarget.name");
    }
    assert!(model.sets.is_empty());
}

#[test]
fn a_self_alias_inside_a_group_leaves_the_rest_of_the_group_valid() {
    let mut w = world();
    w.record("real", weighted("www.example.com", "real", 1, &["192.0.2.1"]));
    w.record("self", weighted("www.example.com", "self", 1, &[]).alias("www.example.com", false));
    let model = w.model();
    assert_rejected(&model, "self", "spec.aliasTarget.name");
    assert_served(&model, "real");
}

#[test]
fn a_non_cyclic_alias_next_to_a_cycle_stays_valid() {
    let mut w = world();
    w.record("d", simple_a("d.example.com", &["192.0.2.4"]));
    // www is a weighted group of two aliases: one into a cycle www -> loop -> www, one to d.
    w.record(
        "www-loop",
        weighted("www.example.com", "loop", 1, &[]).alias("loop.example.com", false),
    );
    w.record("www-d", weighted("www.example.com", "d", 1, &[]).alias("d.example.com", true));
    w.record("loop", simple_a("loop.example.com", &[]).alias("www.example.com", false));
    // An alias that points at the group (not part of the cycle) stays valid too.
    w.record("front", simple_a("front.example.com", &[]).alias("www.example.com", true));
    let model = w.model();
    assert_rejected(&model, "www-loop", "spec.aliasTarget.name");
    assert_rejected(&model, "loop", "spec.aliasTarget.name");
    for ok in ["d", "www-d", "front"] {
        assert_served(&model, ok);
    }
}

#[test]
fn aliases_orphaned_by_a_rejected_alias_are_rejected_too() {
    let mut w = world();
    w.record("x", simple_a("x.example.com", &[]).alias("y.example.com", false));
    w.record("y", simple_a("y.example.com", &[]).alias("gone.example.com", false));
    let model = w.model();
    assert_rejected(&model, "y", "spec.aliasTarget.name");
    assert_rejected(&model, "x", "spec.aliasTarget.name");
}

/// A newcomer that closes a cycle must not displace the older alias that was valid
/// before it arrived (module doc of model.rs: "a newcomer can never displace what is
/// already being served"; api.md: rejected records never disturb the valid ones).
#[test]
fn a_younger_alias_closing_a_cycle_does_not_displace_the_older_alias() {
    let mut w = world();
    // www: weighted group, member "www-app" aliases app; app: weighted group with values.
    w.record_seq("app-values", 1, weighted("app.example.com", "values", 1, &["192.0.2.1"]));
    w.record_seq(
        "www-app",
        2,
        weighted("www.example.com", "app", 1, &[]).alias("app.example.com", true),
    );
    w.record_seq("www-values", 3, weighted("www.example.com", "values", 1, &["192.0.2.2"]));
    // Without the newcomer everything is valid.
    w.valid_model();
    // The newcomer adds an alias app -> www, closing app -> www -> app.
    w.record_seq(
        "app-www",
        4,
        weighted("app.example.com", "www", 1, &[]).alias("www.example.com", true),
    );
    let model = w.model();
    assert_rejected(&model, "app-www", "spec.aliasTarget.name");
    for ok in ["app-values", "www-app", "www-values"] {
        assert_served(&model, ok);
    }
}

// ================================================================== CNAME and MultiValue

#[test]
fn a_cname_cannot_share_its_name_the_older_record_wins() {
    // Older A, younger CNAME: the CNAME is rejected.
    let mut w = world();
    w.record_seq(
        "cname-young",
        20,
        simple("www.example.com", RecordType::Cname, &["web.example.net"]),
    );
    w.record_seq("a-old", 10, simple_a("www.example.com", &["192.0.2.1"]));
    let model = w.model();
    assert_rejected(&model, "cname-young", "spec.type");
    assert_served(&model, "a-old");

    // Older CNAME, younger TXT (and a younger weighted A): the newcomers are rejected.
    let mut w = world();
    w.record_seq("txt-young", 20, simple("www.example.com", RecordType::Txt, &["\"hello\""]));
    w.record_seq("a-young", 30, weighted("WWW.example.com.", "a", 1, &["192.0.2.1"]));
    w.record_seq(
        "cname-old",
        10,
        simple("www.example.com", RecordType::Cname, &["web.example.net"]),
    );
    let model = w.model();
    assert_rejected(&model, "txt-young", "spec.type");
    assert_rejected(&model, "a-young", "spec.type");
    assert_served(&model, "cname-old");
    assert_eq!(model.sets.len(), 1);
}

#[test]
fn a_cname_cannot_be_at_a_zone_apex() {
    let mut w = World::new(&["example.com", "sub.example.com"]);
    w.record("apex", simple("example.com", RecordType::Cname, &["www.example.org"]));
    w.record("sub-apex", simple("Sub.Example.com.", RecordType::Cname, &["www.example.org"]));
    w.record("below", simple("www.example.com", RecordType::Cname, &["www.example.org"]));
    let model = w.model();
    assert_rejected(&model, "apex", "spec.name");
    assert_rejected(&model, "sub-apex", "spec.name");
    assert_served(&model, "below");
}

#[test]
fn a_cname_has_exactly_one_value() {
    let mut w = world();
    w.record(
        "two",
        simple("a.example.com", RecordType::Cname, &["x.example.org", "y.example.org"]),
    );
    w.record("one", simple("b.example.com", RecordType::Cname, &["x.example.org"]));
    let model = w.model();
    assert_rejected(&model, "two", "spec.values");
    assert_served(&model, "one");
}

#[test]
fn multivalue_records_cannot_be_aliases_or_cnames() {
    let mut w = world();
    w.record("target", simple_a("t.example.com", &["192.0.2.1"]));
    w.record("mv-alias", multivalue("a.example.com", "x", &[]).alias("t.example.com", false));
    w.record(
        "mv-cname",
        multivalue("b.example.com", "x", &["t.example.com"]).rtype(RecordType::Cname),
    );
    w.record("mv-ok", multivalue("c.example.com", "x", &["192.0.2.1"]));
    let model = w.model();
    assert_rejected(&model, "mv-alias", "spec.aliasTarget");
    assert_rejected(&model, "mv-cname", "spec.type");
    assert_served(&model, "mv-ok");
}

// ================================================================== names

#[test]
fn a_name_outside_every_zone_is_rejected() {
    let mut w = world();
    w.record("outside", simple_a("www.example.org", &["192.0.2.1"]));
    w.record("suffix-only", simple_a("wwwexample.com", &["192.0.2.1"]));
    w.record("invalid", simple_a("a..example.com", &["192.0.2.1"]));
    w.record("long-label", simple_a(&format!("{}.example.com", "x".repeat(64)), &["192.0.2.1"]));
    w.record("empty", simple_a("", &["192.0.2.1"]));
    let model = w.model();
    for object in ["outside", "suffix-only", "invalid", "long-label", "empty"] {
        assert_rejected(&model, object, "spec.name");
    }
    let none = validate(&[], &[], &w.records[..1]);
    assert_error(&none, "outside", "spec.name");
}

#[test]
fn names_are_case_insensitive_and_the_trailing_dot_is_optional() {
    let mut w = World::new(&["Example.COM."]);
    w.record("a", weighted("WWW.Example.Com.", "a", 1, &["192.0.2.1"]));
    w.record("b", weighted("www.example.com", "b", 1, &["192.0.2.2"]));
    w.record("alias", simple_a("Apex.EXAMPLE.com", &[]).alias("wWw.ExAmPlE.cOm.", true));
    let model = w.valid_model();
    assert_eq!(served_at(&model, "www.example.com", RecordType::A), ["a", "b"]);
    assert_eq!(model.sets.len(), 2);
    let alias = &model.sets[&key("apex.example.com", RecordType::A)][0];
    assert_eq!(alias.name.as_str(), "apex.example.com.");
    assert_eq!(alias.alias().map(|(t, _)| t.as_str()), Some("www.example.com."));

    // Same name written two ways is one name: a second Simple set is rejected.
    let mut w = world();
    w.record("lower", simple_a("x.example.com", &["192.0.2.1"]));
    w.record("upper", simple_a("X.EXAMPLE.COM.", &["192.0.2.2"]));
    assert_rejected(&w.model(), "upper", "spec.name");
}

#[test]
fn fqdn_parsing() {
    assert_eq!(Fqdn::parse("WWW.Example.COM").unwrap().as_str(), "www.example.com.");
    assert_eq!(Fqdn::parse(" www.example.com. ").unwrap(), Fqdn::parse("www.example.com").unwrap());
    assert_eq!(Fqdn::parse(".").unwrap().as_str(), ".");
    assert!(Fqdn::parse("").is_err());
    assert!(Fqdn::parse("a..b").is_err());
    assert!(Fqdn::parse(&format!("{}.com", "a".repeat(64))).is_err());
    let long = vec!["a".repeat(63); 5].join(".");
    assert!(Fqdn::parse(&long).is_err(), "names over 255 bytes are rejected");
    let zone = fqdn("example.com");
    assert!(fqdn("a.example.com").is_within(&zone));
    assert!(fqdn("example.com").is_within(&zone));
    assert!(!fqdn("aexample.com").is_within(&zone));
    assert!(fqdn("anything.org").is_within(&fqdn(".")));
    let ancestors: Vec<String> =
        fqdn("a.b.c.example.com").ancestors_below(&zone).iter().map(|f| f.to_string()).collect();
    assert_eq!(ancestors, ["b.c.example.com.", "c.example.com."]);
    assert_eq!(fqdn("example.com").ancestors_below(&zone).len(), 0);
    assert_eq!(fqdn("www.example.com").ancestors_below(&zone).len(), 0);
}

// ================================================================== values

#[test]
fn bad_values_name_the_index_of_the_value() {
    let mut w = world();
    w.record("a", simple_a("a.example.com", &["192.0.2.1", "300.1.2.3"]));
    w.record("a-v6", simple_a("b.example.com", &["2001:db8::1"]));
    w.record(
        "aaaa",
        simple("c.example.com", RecordType::Aaaa, &["2001:db8::1", "::1", "192.0.2.1"]),
    );
    w.record("mx", simple("d.example.com", RecordType::Mx, &["mail.example.com"]));
    w.record(
        "mx-pref",
        simple("e.example.com", RecordType::Mx, &["10 mail.example.com", "70000 mail.example.com"]),
    );
    w.record("srv", simple("f.example.com", RecordType::Srv, &["10 5 sip.example.com"]));
    w.record("srv-port", simple("g.example.com", RecordType::Srv, &["10 5 65536 sip.example.com"]));
    w.record("txt-quote", simple("h.example.com", RecordType::Txt, &["\"ok\"", "\"unterminated"]));
    w.record("txt-escape", simple("i.example.com", RecordType::Txt, &["\"\\256\""]));
    w.record("cname", simple("j.example.com", RecordType::Cname, &["bad..name"]));
    w.record("dup", simple_a("k.example.com", &["192.0.2.1", " 192.0.2.1 "]));
    w.record("mx-target", simple("l.example.com", RecordType::Mx, &["10 bad..name"]));
    let model = w.model();
    for (object, field) in [
        ("a", "spec.values[1]"),
        ("a-v6", "spec.values[0]"),
        ("aaaa", "spec.values[2]"),
        ("mx", "spec.values[0]"),
        ("mx-pref", "spec.values[1]"),
        ("srv", "spec.values[0]"),
        ("srv-port", "spec.values[0]"),
        ("txt-quote", "spec.values[1]"),
        ("txt-escape", "spec.values[0]"),
        ("cname", "spec.values[0]"),
        ("dup", "spec.values[1]"),
        ("mx-target", "spec.values[0]"),
    ] {
        assert_rejected(&model, object, field);
    }
    assert!(model.sets.is_empty());
}

#[test]
fn empty_values_are_rejected() {
    let mut w = world();
    w.record("empty", simple_a("a.example.com", &[]));
    w.record("empty-txt", simple("b.example.com", RecordType::Txt, &[""]));
    let model = w.model();
    assert_rejected(&model, "empty", "spec.values");
    assert_rejected(&model, "empty-txt", "spec.values[0]");
}

#[test]
fn values_parse_per_type() {
    let a = parse_rdata(RecordType::A, " 192.0.2.1 ").unwrap();
    assert_eq!(a.to_string(), "192.0.2.1");
    let aaaa = parse_rdata(RecordType::Aaaa, "2001:DB8::1").unwrap();
    assert_eq!(aaaa, RData::AAAA("2001:db8::1".parse::<Ipv6Addr>().unwrap().into()));
    match parse_rdata(RecordType::Mx, "10   Mail.Example.com").unwrap() {
        RData::MX(mx) => {
            assert_eq!(mx.preference, 10);
            assert_eq!(mx.exchange.to_ascii(), "mail.example.com.");
        }
        other => panic!("{other:?}"),
    }
    match parse_rdata(RecordType::Srv, "1 2 5060 sip.example.com.").unwrap() {
        RData::SRV(srv) => {
            assert_eq!((srv.priority, srv.weight, srv.port), (1, 2, 5060));
            assert_eq!(srv.target.to_ascii(), "sip.example.com.");
        }
        other => panic!("{other:?}"),
    }
    match parse_rdata(RecordType::Cname, "Web.Example.NET").unwrap() {
        RData::CNAME(c) => assert_eq!(c.0.to_ascii(), "web.example.net."),
        other => panic!("{other:?}"),
    }
    for bad in ["192.0.2", "192.0.2.1.5", "::1", "x"] {
        assert!(parse_rdata(RecordType::A, bad).is_err(), "{bad}");
    }
    for bad in ["10 a b", "-1 mail.example.com", "10"] {
        assert!(parse_rdata(RecordType::Mx, bad).is_err(), "{bad}");
    }
    for bad in ["1 2 3", "1 2 3 4 5", "1 2 x host.example.com", "1 -2 3 host.example.com"] {
        assert!(parse_rdata(RecordType::Srv, bad).is_err(), "{bad}");
    }
}

fn txt(text: &str) -> Vec<String> {
    parse_txt(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .into_iter()
        .map(|s| String::from_utf8(s).unwrap())
        .collect()
}

#[test]
fn txt_quoting_and_escapes() {
    assert_eq!(txt("\"hello world\""), ["hello world"]);
    assert_eq!(txt("hello world"), ["hello", "world"]);
    assert_eq!(txt("\"a\" \"b c\"  d"), ["a", "b c", "d"]);
    assert_eq!(txt(r#""say \"hi\"""#), ["say \"hi\""]);
    assert_eq!(txt(r#""back\\slash""#), ["back\\slash"]);
    assert_eq!(txt(r#""\065\066C""#), ["ABC"]);
    assert_eq!(txt(r#""\0651""#), ["A1"], "exactly three digits form a decimal escape");
    assert_eq!(txt(r#"bare\ space"#), ["bare space"]);
    assert_eq!(txt("\"\""), [""], "an empty quoted string is one empty string");
    assert_eq!(
        txt("\"v=spf1 include:_spf.example.com ~all\""),
        ["v=spf1 include:_spf.example.com ~all"]
    );
    assert_eq!(txt("\"ünïcödé\""), ["ünïcödé"]);
    // Strings longer than 255 bytes are split.
    let long = "x".repeat(300);
    let parts = txt(&format!("\"{long}\""));
    assert_eq!(parts.len(), 2);
    assert_eq!((parts[0].len(), parts[1].len()), (255, 45));
    assert_eq!(parts.concat(), long);
    // Errors.
    assert!(parse_txt("\"unterminated").is_err());
    assert!(parse_txt(r#""\256""#).is_err());
    assert!(parse_txt("trailing\\").is_err());
    assert!(parse_txt("").is_err());
    assert!(parse_txt("   ").is_err());
    assert!(
        parse_txt(&format!("\"{}\"", "x".repeat(70_000))).is_err(),
        "TXT data over 65000 bytes"
    );
    // Through parse_rdata the strings become the TXT data.
    match parse_rdata(RecordType::Txt, "\"a b\" c").unwrap() {
        RData::TXT(t) => {
            assert_eq!(
                t.txt_data.iter().map(|s| s.to_vec()).collect::<Vec<_>>(),
                [b"a b".to_vec(), b"c".to_vec()]
            )
        }
        other => panic!("{other:?}"),
    }
}

// ================================================================== health check references

#[test]
fn a_missing_health_check_is_a_warning_and_the_record_is_still_served() {
    let mut w = world();
    w.check("exists", http("192.0.2.1"));
    w.check("invalid", tcp("192.0.2.1", 0));
    w.record("no-such", primary("a.example.com", &["192.0.2.1"]).hc("nope"));
    w.record("bad-check", primary("b.example.com", &["192.0.2.1"]).hc("invalid"));
    w.record("ok", primary("c.example.com", &["192.0.2.1"]).hc("exists"));
    w.check_in("other", "elsewhere", http("192.0.2.1"));
    w.record("other-ns", primary("d.example.com", &["192.0.2.1"]).hc("elsewhere"));
    let model = w.model();
    for object in ["no-such", "bad-check", "other-ns"] {
        assert_warning(&model, object, "spec.healthCheckName");
        assert_served(&model, object);
    }
    assert!(problems_of(&model, "ok").is_empty());
    let set = &model.sets[&key("c.example.com", RecordType::A)][0];
    assert_eq!(set.health_check.as_deref(), Some(&oref("exists")));
}

// ================================================================== rejected records never disturb valid ones

#[test]
fn invalid_records_never_disturb_valid_ones() {
    let mut w = world();
    // Valid: a failover pair, a weighted group, a multivalue group, a CNAME, an alias.
    w.record("p", primary("www.example.com", &["192.0.2.1"]));
    w.record("s", secondary("www.example.com", &["192.0.2.2"]));
    w.record("w1", weighted("api.example.com", "w1", 1, &["192.0.2.3"]));
    w.record("w2", weighted("api.example.com", "w2", 0, &["192.0.2.4"]));
    w.record("mv", multivalue("mv.example.com", "mv", &["192.0.2.5"]));
    w.record("cname", simple("alias.example.com", RecordType::Cname, &["www.example.com"]));
    w.record("apex", simple_a("example.com", &[]).alias("www.example.com", true));
    // Invalid newcomers at the same names, and elsewhere.
    w.record("p2", failover("www.example.com", "p2", FailoverRole::Primary, &["192.0.2.9"]));
    w.record("mixed", simple_a("www.example.com", &["192.0.2.9"]));
    w.record("w-dup", weighted("api.example.com", "w1", 1, &["192.0.2.9"]));
    w.record("w-range", weighted("api.example.com", "w3", 999, &["192.0.2.9"]));
    w.record(
        "mv-alias",
        multivalue("mv.example.com", "alias", &[]).alias("www.example.com", false),
    );
    w.record("txt-at-cname", simple("alias.example.com", RecordType::Txt, &["\"x\""]));
    w.record("bad-value", multivalue("mv.example.com", "bad", &["not-an-ip"]));
    w.record("outside", simple_a("www.example.org", &["192.0.2.9"]));
    w.record("loop", simple_a("loop.example.com", &[]).alias("loop.example.com", false));
    w.record("dangling", simple_a("dangling.example.com", &[]).alias("nothing.example.com", false));
    w.record(
        "orphan",
        failover("orphan.example.com", "s", FailoverRole::Secondary, &["192.0.2.9"]),
    );
    let model = w.model();
    let valid = ["p", "s", "w1", "w2", "mv", "cname", "apex"];
    for ok in valid {
        assert_served(&model, ok);
    }
    let invalid = [
        "p2",
        "mixed",
        "w-dup",
        "w-range",
        "mv-alias",
        "txt-at-cname",
        "bad-value",
        "outside",
        "loop",
        "dangling",
        "orphan",
    ];
    for bad in invalid {
        assert!(!served(&model, bad), "{bad} is invalid but served");
        assert!(
            model.errors().any(|p| p.object == oref(bad)),
            "{bad} is rejected without an error naming it"
        );
    }
    let served_count: usize = model.sets.values().map(|sets| sets.len()).sum();
    assert_eq!(served_count, valid.len());
    // Errors name only invalid objects.
    for p in model.errors() {
        assert!(invalid.contains(&&*p.object.name), "valid object {} has an error: {p}", p.object);
    }
    assert_eq!(served_at(&model, "www.example.com", RecordType::A), ["p", "s"]);
    assert_eq!(served_at(&model, "api.example.com", RecordType::A), ["w1", "w2"]);
}

/// An older record that is rejected later in validation (here: a SECONDARY without a
/// PRIMARY) must not keep a valid younger record out by a conflict.
#[test]
fn a_rejected_older_record_does_not_block_a_valid_younger_one_by_policy() {
    let mut w = world();
    w.record_seq("orphan-secondary", 1, secondary("www.example.com", &["192.0.2.1"]));
    w.record_seq("weighted", 2, weighted("www.example.com", "w", 1, &["192.0.2.2"]));
    let model = w.model();
    assert_rejected(&model, "orphan-secondary", "spec.failover");
    assert_served(&model, "weighted");
}

/// Same with the CNAME rule: an older A alias whose target is missing is rejected, so
/// it must not keep a younger, valid CNAME out.
#[test]
fn a_rejected_older_record_does_not_block_a_valid_younger_cname() {
    let mut w = world();
    w.record_seq(
        "dangling-alias",
        1,
        simple_a("www.example.com", &[]).alias("gone.example.com", false),
    );
    w.record_seq("cname", 2, simple("www.example.com", RecordType::Cname, &["web.example.net"]));
    let model = w.model();
    assert_rejected(&model, "dangling-alias", "spec.aliasTarget.name");
    assert_served(&model, "cname");
}

/// A PRIMARY alias whose target disappeared is rejected; a younger replacement PRIMARY
/// is valid and must be served (together with the SECONDARY).
#[test]
fn a_rejected_older_primary_does_not_block_a_valid_younger_primary() {
    let mut w = world();
    w.record_seq("old-primary", 1, primary("www.example.com", &[]).alias("gone.example.com", true));
    w.record_seq("secondary", 2, secondary("www.example.com", &["192.0.2.2"]));
    w.record_seq(
        "new-primary",
        3,
        failover("www.example.com", "new", FailoverRole::Primary, &["192.0.2.1"]),
    );
    let model = w.model();
    assert_rejected(&model, "old-primary", "spec.aliasTarget.name");
    assert_served(&model, "new-primary");
    assert_served(&model, "secondary");
}

/// Every failover name + type that is served has its PRIMARY, even when the PRIMARY
/// is rejected by the alias rules (which run after the PRIMARY/SECONDARY check).
#[test]
fn a_secondary_whose_primary_alias_is_rejected_is_rejected_too() {
    let mut w = world();
    w.record("primary", primary("www.example.com", &[]).alias("gone.example.com", true));
    w.record("secondary", secondary("www.example.com", &["192.0.2.2"]));
    w.record("cyclic-primary", primary("loop.example.com", &[]).alias("loop.example.com", false));
    w.record("cyclic-secondary", secondary("loop.example.com", &["192.0.2.3"]));
    let model = w.model();
    assert_rejected(&model, "primary", "spec.aliasTarget.name");
    assert_rejected(&model, "cyclic-primary", "spec.aliasTarget.name");
    assert_rejected(&model, "secondary", "spec.failover");
    assert_rejected(&model, "cyclic-secondary", "spec.failover");
    for (key, sets) in &model.sets {
        if sets.iter().any(|s| matches!(s.policy, Policy::Failover(_))) {
            assert!(
                sets.iter().any(|s| s.policy == Policy::Failover(FailoverRole::Primary)),
                "{key:?} is served without a PRIMARY"
            );
        }
    }
}

// ================================================================== health checks

fn check_of(model: &model::Model, name: &str) -> model::Check {
    (**model
        .checks
        .get(&oref(name))
        .unwrap_or_else(|| panic!("check {name} was rejected: {:?}", model.problems)))
    .clone()
}

fn hc_model(specs: &[(&str, HealthCheckSpec)]) -> model::Model {
    let inputs: Vec<Input<HealthCheckSpec>> =
        specs.iter().enumerate().map(|(i, (n, s))| input(NS, n, i as u64, s.clone())).collect();
    validate(&[fqdn(ZONE)], &inputs, &[])
}

fn assert_check_rejected(model: &model::Model, name: &str, field: &str) {
    let p = assert_error(model, name, field);
    assert_eq!(p.kind, Kind::HealthCheck);
    assert!(!model.checks.contains_key(&oref(name)), "{name} is rejected but kept");
}

#[test]
fn health_check_defaults() {
    let model = hc_model(&[("http", http("192.0.2.1")), ("https", https("192.0.2.1"))]);
    assert_no_errors(&model);
    let c = check_of(&model, "http");
    assert_eq!(c.interval, Duration::from_secs(30));
    assert_eq!(c.timeout, Duration::from_secs(4));
    assert_eq!(c.failure_threshold, 3);
    assert!(!c.inverted && !c.disabled);
    match c.probe {
        Probe::Http { tls, port, path, search_string, sni, .. } => {
            assert!(!tls);
            assert_eq!(port, 80);
            assert_eq!(path, "/");
            assert_eq!(search_string, None);
            assert_eq!(sni, None);
        }
        other => panic!("{other:?}"),
    }
    match check_of(&model, "https").probe {
        Probe::Http { tls, port, .. } => assert_eq!((tls, port), (true, 443)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_leading_slash_is_added_to_the_resource_path() {
    let mut no_slash = http("192.0.2.1");
    no_slash.resource_path = Some("health?full=1".into());
    let mut slash = http("192.0.2.1");
    slash.resource_path = Some("/status".into());
    let mut spaces = http("192.0.2.1");
    spaces.resource_path = Some("/a b".into());
    let model = hc_model(&[("no-slash", no_slash), ("slash", slash), ("spaces", spaces)]);
    let path = |n| match check_of(&model, n).probe {
        Probe::Http { path, .. } => path,
        other => panic!("{other:?}"),
    };
    assert_eq!(path("no-slash"), "/health?full=1");
    assert_eq!(path("slash"), "/status");
    assert_check_rejected(&model, "spaces", "spec.resourcePath");
}

#[test]
fn the_request_interval_is_between_100ms_and_an_hour() {
    let with = |s: &str| HealthCheckSpec { request_interval: Some(s.into()), ..http("192.0.2.1") };
    let model = hc_model(&[
        ("fast", with("50ms")),
        ("min", with("100ms")),
        ("garbage", with("soon")),
        ("long", with("1m30s")),
        ("max", with("1h")),
        ("forever", with("99999999999999s")),
    ]);
    assert_check_rejected(&model, "fast", "spec.requestInterval");
    assert_check_rejected(&model, "garbage", "spec.requestInterval");
    assert_check_rejected(&model, "forever", "spec.requestInterval");
    assert_eq!(check_of(&model, "min").interval, Duration::from_millis(100));
    assert_eq!(check_of(&model, "long").interval, Duration::from_secs(90));
    assert_eq!(check_of(&model, "max").interval, Duration::from_secs(3600));
}

#[test]
fn the_timeout_is_capped_below_the_request_interval() {
    let with = |interval: &str, timeout: Option<&str>| HealthCheckSpec {
        request_interval: Some(interval.into()),
        timeout: timeout.map(Into::into),
        ..http("192.0.2.1")
    };
    let model = hc_model(&[
        ("explicit-too-long", with("1s", Some("5s"))),
        ("default-too-long", with("2s", None)),
        ("min-interval", with("100ms", None)),
        ("equal", with("10s", Some("10s"))),
        ("fits", with("30s", Some("10s"))),
        ("zero", with("10s", Some("0s"))),
        ("garbage", with("10s", Some("fast"))),
    ]);
    for name in ["explicit-too-long", "default-too-long", "min-interval", "equal"] {
        let c = check_of(&model, name);
        assert!(
            c.timeout < c.interval,
            "{name}: timeout {:?} is not below interval {:?}",
            c.timeout,
            c.interval
        );
        assert!(!c.timeout.is_zero(), "{name}");
    }
    assert!(check_of(&model, "explicit-too-long").timeout >= Duration::from_millis(500));
    assert_eq!(check_of(&model, "fits").timeout, Duration::from_secs(10));
    assert_check_rejected(&model, "zero", "spec.timeout");
    assert_check_rejected(&model, "garbage", "spec.timeout");
}

#[test]
fn the_failure_threshold_is_1_to_10() {
    let with = |n| HealthCheckSpec { failure_threshold: Some(n), ..http("192.0.2.1") };
    let model = hc_model(&[
        ("zero", with(0)),
        ("one", with(1)),
        ("ten", with(10)),
        ("eleven", with(11)),
        ("neg", with(-3)),
    ]);
    assert_check_rejected(&model, "zero", "spec.failureThreshold");
    assert_check_rejected(&model, "eleven", "spec.failureThreshold");
    assert_check_rejected(&model, "neg", "spec.failureThreshold");
    assert_eq!(check_of(&model, "one").failure_threshold, 1);
    assert_eq!(check_of(&model, "ten").failure_threshold, 10);
}

#[test]
fn ports() {
    let mut no_port = tcp("192.0.2.1", 1);
    no_port.port = None;
    let model = hc_model(&[
        ("tcp-no-port", no_port),
        ("tcp-zero", tcp("192.0.2.1", 0)),
        ("http-big", HealthCheckSpec { port: Some(65536), ..http("192.0.2.1") }),
        ("tcp-ok", tcp("192.0.2.1", 65535)),
    ]);
    assert_check_rejected(&model, "tcp-no-port", "spec.port");
    assert_check_rejected(&model, "tcp-zero", "spec.port");
    assert_check_rejected(&model, "http-big", "spec.port");
    assert_eq!(
        check_of(&model, "tcp-ok").probe,
        Probe::Tcp { endpoint: Endpoint::Ip("192.0.2.1".parse().unwrap()), port: 65535 }
    );
}

#[test]
fn http_only_fields_are_rejected_on_tcp() {
    let model = hc_model(&[
        (
            "tcp-search",
            HealthCheckSpec { search_string: Some("ok".into()), ..tcp("192.0.2.1", 22) },
        ),
        ("tcp-path", HealthCheckSpec { resource_path: Some("/".into()), ..tcp("192.0.2.1", 22) }),
        ("calc-search", HealthCheckSpec { search_string: Some("ok".into()), ..calculated(&[], 0) }),
    ]);
    assert_check_rejected(&model, "tcp-search", "spec.searchString");
    assert_check_rejected(&model, "tcp-path", "spec.resourcePath");
    assert_check_rejected(&model, "calc-search", "spec.searchString");
}

#[test]
fn the_search_string_is_1_to_255_characters() {
    let with = |s: String| HealthCheckSpec { search_string: Some(s), ..https("192.0.2.1") };
    let model = hc_model(&[
        ("ok", with("x".repeat(255))),
        ("multibyte", with("é".repeat(255))),
        ("long", with("x".repeat(256))),
        ("empty", with(String::new())),
    ]);
    match check_of(&model, "ok").probe {
        Probe::Http { search_string, .. } => assert_eq!(search_string.map(|s| s.len()), Some(255)),
        other => panic!("{other:?}"),
    }
    check_of(&model, "multibyte");
    assert_check_rejected(&model, "long", "spec.searchString");
    assert_check_rejected(&model, "empty", "spec.searchString");
}

#[test]
fn an_endpoint_is_required_and_must_be_valid() {
    let none = HealthCheckSpec { type_: HealthCheckType::Http, ..HealthCheckSpec::default() };
    let tcp_none = HealthCheckSpec { ip_address: None, ..tcp("192.0.2.1", 22) };
    let model = hc_model(&[
        ("none", none),
        ("tcp-none", tcp_none),
        ("bad-ip", http("192.0.2.300")),
        ("bad-fqdn", HealthCheckSpec { ip_address: None, fqdn: Some("a..b".into()), ..http("") }),
        ("v6", http(" 2001:db8::1 ")),
        (
            "fqdn-only",
            HealthCheckSpec { ip_address: None, fqdn: Some("www.example.com.".into()), ..http("") },
        ),
    ]);
    assert_check_rejected(&model, "none", "spec.ipAddress");
    assert_check_rejected(&model, "tcp-none", "spec.ipAddress");
    assert_check_rejected(&model, "bad-ip", "spec.ipAddress");
    assert_check_rejected(&model, "bad-fqdn", "spec.fqdn");
    match check_of(&model, "v6").probe {
        Probe::Http { endpoint, .. } => {
            assert_eq!(endpoint, Endpoint::Ip("2001:db8::1".parse().unwrap()))
        }
        other => panic!("{other:?}"),
    }
    match check_of(&model, "fqdn-only").probe {
        Probe::Http { endpoint, .. } => {
            assert_eq!(endpoint, Endpoint::Fqdn("www.example.com".into()))
        }
        other => panic!("{other:?}"),
    }
}

/// (host header, sni) of an HTTP(S) check.
fn host_and_sni(spec: HealthCheckSpec) -> (String, Option<String>, Endpoint) {
    let model = hc_model(&[("c", spec)]);
    match check_of(&model, "c").probe {
        Probe::Http { host_header, sni, endpoint, .. } => (host_header, sni, endpoint),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_host_header_is_the_fqdn_or_the_ip_with_a_non_default_port() {
    let fq = |t: HealthCheckType, port: Option<i64>| HealthCheckSpec {
        type_: t,
        ip_address: None,
        fqdn: Some("www.example.com.".into()),
        port,
        ..HealthCheckSpec::default()
    };
    let ip = |t: HealthCheckType, addr: &str, port: Option<i64>| HealthCheckSpec {
        type_: t,
        ip_address: Some(addr.into()),
        port,
        ..HealthCheckSpec::default()
    };
    use HealthCheckType::{Http, Https};
    for (spec, host) in [
        (fq(Http, None), "www.example.com"),
        (fq(Http, Some(80)), "www.example.com"),
        (fq(Http, Some(8080)), "www.example.com:8080"),
        (fq(Https, None), "www.example.com"),
        (fq(Https, Some(443)), "www.example.com"),
        (fq(Https, Some(80)), "www.example.com:80"),
        (fq(Http, Some(443)), "www.example.com:443"),
        (ip(Http, "192.0.2.1", None), "192.0.2.1"),
        (ip(Http, "192.0.2.1", Some(8080)), "192.0.2.1:8080"),
        (ip(Https, "192.0.2.1", Some(8443)), "192.0.2.1:8443"),
        (ip(Http, "2001:db8::1", None), "[2001:db8::1]"),
        (ip(Http, "2001:db8::1", Some(8080)), "[2001:db8::1]:8080"),
        (ip(Https, "2001:db8::1", None), "[2001:db8::1]"),
        (ip(Https, "2001:db8::1", Some(8443)), "[2001:db8::1]:8443"),
    ] {
        let what = format!("{spec:?}");
        assert_eq!(host_and_sni(spec).0, host, "{what}");
    }
    // With both, the fqdn is the Host header and the IP is dialled.
    let both = HealthCheckSpec {
        fqdn: Some("api.example.com".into()),
        ..ip(Https, "192.0.2.7", Some(8443))
    };
    let (host, sni, endpoint) = host_and_sni(both);
    assert_eq!(host, "api.example.com:8443");
    assert_eq!(sni.as_deref(), Some("api.example.com"));
    assert_eq!(endpoint, Endpoint::Ip(IpAddr::from([192, 0, 2, 7])));
}

#[test]
fn sni_is_sent_only_when_fqdn_is_set() {
    let (_, sni, _) = host_and_sni(https("192.0.2.1"));
    assert_eq!(sni, None);
    let (_, sni, _) = host_and_sni(https("2001:db8::1"));
    assert_eq!(sni, None);
    let (_, sni, _) = host_and_sni(HealthCheckSpec {
        ip_address: None,
        fqdn: Some("Secure.Example.com.".into()),
        ..https("")
    });
    assert_eq!(sni.as_deref(), Some("Secure.Example.com"));
}

#[test]
fn calculated_checks() {
    let model = hc_model(&[
        ("leaf1", http("192.0.2.1")),
        ("leaf2", tcp("192.0.2.2", 22)),
        ("calc", calculated(&["leaf1", "leaf2"], 1)),
        ("nested", calculated(&["leaf1", "calc"], 1)),
        ("no-threshold", HealthCheckSpec { health_threshold: None, ..calculated(&["leaf1"], 1) }),
        ("big-threshold", calculated(&["leaf1"], 257)),
        ("neg-threshold", calculated(&["leaf1"], -1)),
        ("above-count", calculated(&["leaf1"], 256)),
        ("dup-child", calculated(&["leaf1", "leaf2", "leaf1"], 1)),
        (
            "with-ip",
            HealthCheckSpec { ip_address: Some("192.0.2.1".into()), ..calculated(&["leaf1"], 1) },
        ),
        ("with-port", HealthCheckSpec { port: Some(80), ..calculated(&["leaf1"], 1) }),
        (
            "with-path",
            HealthCheckSpec { resource_path: Some("/".into()), ..calculated(&["leaf1"], 1) },
        ),
        (
            "with-fqdn",
            HealthCheckSpec { fqdn: Some("a.example.com".into()), ..calculated(&["leaf1"], 1) },
        ),
        (
            "too-many",
            calculated(
                &(0..257)
                    .map(|i| format!("c{i}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                1,
            ),
        ),
        (
            "http-children",
            HealthCheckSpec {
                child_health_checks: Some(vec!["leaf1".into()]),
                ..http("192.0.2.1")
            },
        ),
        ("http-threshold", HealthCheckSpec { health_threshold: Some(1), ..http("192.0.2.1") }),
    ]);
    assert_eq!(
        check_of(&model, "calc").probe,
        Probe::Calculated { children: vec!["leaf1".into(), "leaf2".into()], health_threshold: 1 }
    );
    assert_eq!(
        check_of(&model, "above-count").probe,
        Probe::Calculated { children: vec!["leaf1".into()], health_threshold: 256 }
    );
    assert_check_rejected(&model, "nested", "spec.childHealthChecks[1]");
    assert_check_rejected(&model, "no-threshold", "spec.healthThreshold");
    assert_check_rejected(&model, "big-threshold", "spec.healthThreshold");
    assert_check_rejected(&model, "neg-threshold", "spec.healthThreshold");
    assert_check_rejected(&model, "dup-child", "spec.childHealthChecks[2]");
    assert_check_rejected(&model, "with-ip", "spec.ipAddress");
    assert_check_rejected(&model, "with-port", "spec.port");
    assert_check_rejected(&model, "with-path", "spec.resourcePath");
    assert_check_rejected(&model, "with-fqdn", "spec.fqdn");
    assert_check_rejected(&model, "too-many", "spec.childHealthChecks");
    assert_check_rejected(&model, "http-children", "spec.childHealthChecks");
    assert_check_rejected(&model, "http-threshold", "spec.healthThreshold");
}

#[test]
fn invalid_health_checks_never_disturb_valid_ones() {
    let model = hc_model(&[
        ("good-http", http("192.0.2.1")),
        (
            "bad-interval",
            HealthCheckSpec { request_interval: Some("10ms".into()), ..http("192.0.2.1") },
        ),
        ("good-tcp", tcp("192.0.2.2", 443)),
        ("bad-threshold", HealthCheckSpec { failure_threshold: Some(42), ..http("192.0.2.1") }),
        ("good-calc", calculated(&["good-http", "bad-interval"], 1)),
    ]);
    assert_eq!(
        model.checks.keys().map(|k| &*k.name).collect::<Vec<_>>(),
        ["good-calc", "good-http", "good-tcp"]
    );
    // The calculated check only warns about its rejected child.
    assert_warning(&model, "good-calc", "spec.childHealthChecks[1]");
    assert!(model.errors().all(|p| p.object.name.starts_with("bad-")));
    assert_eq!(model.errors().count(), 2);
}

/// A `*` label would be served as the literal name `*`, never as the wildcard a user
/// means: rejected with a message that says so (and nothing is served for it).
#[test]
fn a_wildcard_name_is_rejected_not_served_literally() {
    let mut w = world();
    w.record("wild", simple_a("*.wild.example.com", &["192.0.2.1"]));
    w.record("tame", simple_a("tame.example.com", &["192.0.2.2"]));
    let model = w.model();
    let problem = assert_rejected(&model, "wild", "spec.name");
    assert!(problem.message.contains("wildcard"), "{problem}");
    assert_served(&model, "tame");
    assert_eq!(model.sets.len(), 1);
}
