//! A name belongs to one namespace: the namespace of its oldest accepted record set.
//! Record sets for it from any other namespace are not served, whatever their type or
//! policy; alias targets and health-check references are reads, not claims.

use super::*;
use failover_dns::model::{Change, OWNED_ELSEWHERE_FIELD, ObjectRef};

fn rejected_for_ownership(model: &model::Model, namespace: &str, object: &str) -> String {
    let id = ObjectRef::new(namespace, object);
    let problem = model
        .problems
        .iter()
        .find(|p| p.object == id && p.field == OWNED_ELSEWHERE_FIELD)
        .unwrap_or_else(|| panic!("{id} is not turned away: {:?}", model.problems));
    assert!(!served_ref(model, &id), "{id} is turned away but served");
    problem.message.clone()
}

#[test]
fn another_namespace_cannot_join_steal_from_or_hijack_a_name() {
    let mut w = world();
    w.record_in("team-a", "www", simple_a("www.example.com", &["192.0.2.1"]));
    w.record_in("team-a", "shop", weighted("shop.example.com", "a", 1, &["192.0.2.2"]));
    w.record_in("team-a", "pay", primary("pay.example.com", &["192.0.2.3"]));
    // The squatter comes second at the same name, another type; the thief adds a heavy
    // member to a weighted group; the hijacker a SECONDARY to a lone PRIMARY.
    w.record_in("team-b", "squat", simple("www.example.com", RecordType::Txt, &["\"x\""]));
    w.record_in("team-b", "evil", weighted("shop.example.com", "evil", 255, &["6.6.6.6"]));
    w.record_in("team-b", "hijack", secondary("pay.example.com", &["6.6.6.6"]));
    let model = w.model();
    for object in ["squat", "evil", "hijack"] {
        let message = rejected_for_ownership(&model, "team-b", object);
        assert!(message.contains("belongs to namespace team-a"), "{message}");
    }
    for object in ["www", "shop", "pay"] {
        assert!(served_ref(&model, &ObjectRef::new("team-a", object)), "{object}");
    }
}

#[test]
fn the_oldest_accepted_record_set_decides_and_the_name_passes_on_when_it_goes() {
    let mut w = world();
    w.record_in("team-b", "first", simple_a("api.example.com", &["192.0.2.9"]));
    w.record_in("team-a", "second", simple("api.example.com", RecordType::Txt, &["\"a\""]));
    let model = w.model();
    let message = rejected_for_ownership(&model, "team-a", "second");
    assert!(message.contains("belongs to namespace team-b"), "{message}");

    // An invalid older record set owns nothing.
    let mut w = world();
    w.record_in("team-b", "broken", simple_a("api.example.com", &["not-an-address"]));
    w.record_in("team-a", "second", simple("api.example.com", RecordType::Txt, &["\"a\""]));
    assert!(served_ref(&w.model(), &ObjectRef::new("team-a", "second")));

    // Incrementally: when the owner's record set goes, the next namespace takes over.
    let mut model = world().model();
    let a = input("team-a", "a", 2, simple_a("api.example.com", &["192.0.2.1"]));
    let b = input("team-b", "b", 3, simple("api.example.com", RecordType::Txt, &["\"b\""]));
    model.apply([Change::Record(a), Change::Record(b)]);
    assert!(!served_ref(&model, &ObjectRef::new("team-b", "b")));
    model.apply([Change::RemoveRecord(ObjectRef::new("team-a", "a"))]);
    assert!(served_ref(&model, &ObjectRef::new("team-b", "b")), "{:?}", model.problems);
}

#[test]
fn aliases_and_health_checks_are_reads_not_claims() {
    let mut w = world();
    w.check_in("team-a", "web", http("192.0.2.1"));
    w.record_in("team-a", "www", primary("www.example.com", &["192.0.2.1"]).hc("web"));
    w.record_in("team-b", "apex", simple_a("example.com", &[]).alias("www.example.com", true));
    let model = w.model();
    assert!(served_ref(&model, &ObjectRef::new("team-b", "apex")), "{:?}", model.problems);
    assert!(served_ref(&model, &ObjectRef::new("team-a", "www")));
}

mod delegations {
    use super::*;
    use failover_dns::model::delegation::Delegation;
    use failover_dns::resources::NameDelegationSpec;

    fn delegation(names: &[&str], namespaces: &[&str]) -> Delegation {
        let spec = NameDelegationSpec {
            names: names.iter().map(|n| n.to_string()).collect(),
            namespaces: Some(namespaces.iter().map(|n| n.to_string()).collect()),
            namespace_selector: None,
        };
        Delegation::parse("d", &spec).unwrap()
    }

    fn records() -> Vec<Change> {
        let r = |ns: &str, name: &str, seq, spec| Change::Record(input(ns, name, seq, spec));
        vec![
            r("team-a", "a", 2, weighted("www.shop.example.com", "a", 1, &["192.0.2.1"])),
            r("team-b", "b", 3, weighted("www.shop.example.com", "b", 1, &["192.0.2.2"])),
            r("team-c", "c", 4, weighted("www.shop.example.com", "c", 1, &["192.0.2.3"])),
            r("team-a", "api", 5, simple_a("api.example.com", &["192.0.2.4"])),
        ]
    }

    fn summary(model: &model::Model) -> (Vec<String>, Vec<String>) {
        let served = model.sets.values().flatten().map(|s| s.id.to_string()).collect();
        let problems =
            model.problems.iter().map(|p| format!("{}: {}", p.object, p.message)).collect();
        (served, problems)
    }

    #[test]
    fn delegations_share_names_refuse_the_rest_and_settle_like_a_rebuild() {
        let d = delegation(&["*.shop.example.com"], &["team-a", "team-b"]);
        // Delegation first, then the records ...
        let mut rebuilt = world().model();
        rebuilt.set_delegation("d", Some(d.clone()));
        rebuilt.apply(records());
        // ... or the records first, then the delegation: the same.
        let mut incremental = world().model();
        incremental.apply(records());
        let before = summary(&incremental);
        assert_eq!(before.0.len(), 2, "without delegations team-a owns the name: {before:?}");
        incremental.set_delegation("d", Some(d));
        assert_eq!(summary(&incremental), summary(&rebuilt));
        let (served, problems) = summary(&rebuilt);
        assert!(served.contains(&"team-a/a".into()) && served.contains(&"team-b/b".into()));
        assert!(!served.iter().any(|s| s == "team-c/c" || s == "team-a/api"), "{served:?}");
        assert!(problems.iter().any(|p| p.starts_with("team-c/c: no NameDelegation covers")));
        // Removing it: back to ownership alone.
        incremental.set_delegation("d", None);
        assert_eq!(summary(&incremental), before);
    }
}
