//! Aliases (targets, cycles, orphans), CNAMEs and MultiValue records.

use super::*;

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
