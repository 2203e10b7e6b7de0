//! A missing health check is a warning, and rejected records never disturb the valid
//! ones.

use super::*;

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
    assert_eq!(set.health_check(), Some(&oref("exists")));
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
