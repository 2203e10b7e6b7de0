//! Records: the baseline (grouping, zones, TTLs, where a problem comes from) and the
//! routing policies (one policy per name and type, roles, set identifiers, weights).

use super::*;

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
