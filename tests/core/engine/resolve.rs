//! DNS answers through `Snapshot::resolve`: records, NXDOMAIN and NODATA with the
//! SOA, refusals, the apex SOA/NS, CNAME chains and names.

use super::*;

// ================================================================== Snapshot::resolve

fn dns_world() -> World {
    let mut w = World::new(&["example.com", "example.net", "sub.example.com"]);
    w.record("www", simple_a(WWW, &["192.0.2.1"]).ttl(30));
    w.record("www-txt", simple(WWW, RecordType::Txt, &["\"hello\""]));
    w.record("mx", simple("example.com", RecordType::Mx, &["10 mail.example.com"]));
    w.record("mail", simple_a("mail.example.com", &["192.0.2.25"]));
    w.record("alias-cname", simple("alias.example.com", RecordType::Cname, &["web.example.com"]));
    w.record("web-cname", simple("web.example.com", RecordType::Cname, &["www.example.com"]));
    w.record("cross", simple("cross.example.com", RecordType::Cname, &["app.example.net"]));
    w.record("app-net", simple_a("app.example.net", &["203.0.113.1"]));
    w.record("external", simple("ext.example.com", RecordType::Cname, &["www.example.org"]));
    w.record(
        "dangling",
        simple("dangling.example.com", RecordType::Cname, &["nothing.example.com"]),
    );
    w.record("deep", simple_a("a.b.example.com", &["192.0.2.7"]));
    w.record("loop1", simple("loop1.example.com", RecordType::Cname, &["loop2.example.com"]));
    w.record("loop2", simple("loop2.example.com", RecordType::Cname, &["loop1.example.com"]));
    w.record("apex", simple_a("example.com", &[]).alias(WWW, false));
    w.record("sub-host", simple_a("host.sub.example.com", &["192.0.2.60"]));
    w.record("upper", simple_a("MiXeD.Example.COM.", &["192.0.2.77"]));
    w
}

fn dns() -> Snapshot {
    let w = dns_world();
    assert_no_errors(&w.model());
    w.snapshot(20240601)
}

fn q(snapshot: &Snapshot, name: &str, qtype: u16) -> Resolved {
    resolve(snapshot, name, qtype, &mut rng(42))
}

#[test]
fn resolve_answers_records_of_the_asked_type() {
    let s = dns();
    let r = q(&s, WWW, qtype::A);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(
        r.records,
        [("www.example.com.".to_string(), qtype::A, "192.0.2.1".to_string(), 30)]
    );
    assert_eq!(r.soa_zone, None);
    assert_eq!(r.policy, Some(RoutingPolicy::Simple));
    let r = q(&s, WWW, qtype::TXT);
    assert_eq!(r.types(), [qtype::TXT]);
    let r = q(&s, "example.com", qtype::MX);
    assert_eq!(r.types(), [qtype::MX]);
    assert!(r.values()[0].contains("mail.example.com"), "{:?}", r.values());
}

#[test]
fn resolve_nxdomain_for_a_missing_name_with_the_zone_soa() {
    let s = dns();
    for name in ["nothing.example.com", "x.www.example.com", "c.b.example.com", "x.a.b.example.com"]
    {
        let r = q(&s, name, qtype::A);
        assert_eq!(r.rcode, Rcode::NxDomain, "{name}");
        assert!(r.records.is_empty());
        assert_eq!(r.soa_zone.as_deref(), Some("example.com."), "{name}");
        assert_eq!(r.soa_serial, Some(20240601));
    }
}

#[test]
fn resolve_nodata_for_a_name_with_other_types() {
    let s = dns();
    for (name, t) in [
        (WWW, qtype::AAAA),
        (WWW, qtype::MX),
        ("mail.example.com", qtype::TXT),
        (WWW, 99),
        ("example.com", qtype::AAAA),
    ] {
        let r = q(&s, name, t);
        assert_eq!(r.rcode, Rcode::NoError, "{name} {t}");
        assert!(r.records.is_empty(), "{name} {t}: {:?}", r.records);
        assert_eq!(r.soa_zone.as_deref(), Some("example.com."), "{name} {t}");
    }
}

#[test]
fn resolve_refuses_names_outside_every_zone() {
    let s = dns();
    for name in ["www.example.org", "com", "xexample.com", "example.co"] {
        let r = q(&s, name, qtype::A);
        assert_eq!(r.rcode, Rcode::Refused, "{name}");
        assert!(r.records.is_empty());
        assert_eq!(r.soa_zone, None);
    }
}

#[test]
fn resolve_synthesizes_soa_and_ns_at_each_apex() {
    let s = dns();
    for zone in ["example.com.", "example.net.", "sub.example.com."] {
        let r = q(&s, zone, qtype::SOA);
        assert_eq!(r.rcode, Rcode::NoError);
        assert_eq!(r.types(), [qtype::SOA], "{zone}");
        assert_eq!(r.records[0].0, zone);
        assert!(r.values()[0].contains(&format!("ns1.{zone}")), "{:?}", r.values());
        assert!(r.values()[0].contains(" 20240601 "), "the serial is in the SOA: {:?}", r.values());
        let r = q(&s, zone, qtype::NS);
        assert_eq!(r.records, [(zone.to_string(), qtype::NS, format!("ns1.{zone}"), 3600)]);
    }
    // SOA and NS only at the apex.
    let r = q(&s, WWW, qtype::SOA);
    assert!(r.records.is_empty() && r.rcode == Rcode::NoError);
    let r = q(&s, WWW, qtype::NS);
    assert!(r.records.is_empty());
    // ANY at the apex: SOA, NS and the apex data.
    let r = q(&s, "example.com", qtype::ANY);
    let types: BTreeSet<u16> = r.types().into_iter().collect();
    assert_eq!(types, BTreeSet::from([qtype::SOA, qtype::NS, qtype::MX, qtype::A]));
}

#[test]
fn the_serial_and_the_nameservers_come_from_the_build() {
    let w = dns_world();
    let model = w.model();
    let verdicts = w.verdicts(&model);
    let settings = ZoneSettings {
        zones: w.zones.clone(),
        nameservers: vec![fqdn("ns-a.dns.example.org"), fqdn("ns-b.dns.example.org")],
        soa_ttl: 900,
        negative_ttl: 60,
    };
    let s = Snapshot::build(&settings, &model, &verdicts, 7);
    assert_eq!(s.serial, 7);
    let r = q(&s, "example.com", qtype::NS);
    assert_eq!(r.values(), ["ns-a.dns.example.org.", "ns-b.dns.example.org."]);
    assert!(r.records.iter().all(|(_, _, _, ttl)| *ttl == 900));
    let r = q(&s, "example.com", qtype::SOA);
    assert!(
        r.values()[0].starts_with("ns-a.dns.example.org. hostmaster.example.com. 7 "),
        "{:?}",
        r.values()
    );
    assert_eq!(q(&s, "nope.example.com", qtype::A).soa_serial, Some(7));
    assert_eq!(
        s.zones.iter().find(|z| z.name.as_str() == "example.com.").unwrap().negative_ttl,
        60
    );
}

#[test]
fn resolve_follows_a_cname_chain_inside_the_zones() {
    let s = dns();
    let r = q(&s, "alias.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(
        r.records,
        [
            ("alias.example.com.".to_string(), qtype::CNAME, "web.example.com.".to_string(), 60),
            ("web.example.com.".to_string(), qtype::CNAME, "www.example.com.".to_string(), 60),
            ("www.example.com.".to_string(), qtype::A, "192.0.2.1".to_string(), 30),
        ]
    );
    assert_eq!(r.soa_zone, None);
    // The end of the chain has no data of the asked type: NODATA with the chain.
    let r = q(&s, "alias.example.com", qtype::AAAA);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(r.types(), [qtype::CNAME, qtype::CNAME]);
    assert_eq!(r.soa_zone.as_deref(), Some("example.com."));
}

#[test]
fn resolve_follows_a_cname_chain_across_zones() {
    let s = dns();
    let r = q(&s, "cross.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(
        r.records,
        [
            ("cross.example.com.".to_string(), qtype::CNAME, "app.example.net.".to_string(), 60),
            ("app.example.net.".to_string(), qtype::A, "203.0.113.1".to_string(), 60),
        ]
    );
    let r = q(&s, "cross.example.com", qtype::TXT);
    assert_eq!(
        r.soa_zone.as_deref(),
        Some("example.net."),
        "NODATA names the zone where the chain ended"
    );
}

#[test]
fn resolve_stops_a_chain_that_leaves_the_zones_or_dangles() {
    let s = dns();
    let r = q(&s, "ext.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(r.values(), ["www.example.org."]);
    assert_eq!(r.soa_zone, None);
    let r = q(&s, "dangling.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NxDomain);
    assert_eq!(r.values(), ["nothing.example.com."]);
    assert_eq!(r.soa_zone.as_deref(), Some("example.com."));
    // A CNAME loop ends.
    let r = q(&s, "loop1.example.com", qtype::A);
    assert!(!r.records.is_empty() && r.records.len() <= 8, "{:?}", r.records);
    assert!(r.types().iter().all(|t| *t == qtype::CNAME));
}

#[test]
fn a_cname_query_returns_only_the_cname() {
    let s = dns();
    let r = q(&s, "alias.example.com", qtype::CNAME);
    assert_eq!(r.rcode, Rcode::NoError);
    assert_eq!(
        r.records,
        [("alias.example.com.".to_string(), qtype::CNAME, "web.example.com.".to_string(), 60)]
    );
    let r = q(&s, WWW, qtype::CNAME);
    assert!(r.records.is_empty() && r.soa_zone.is_some(), "no CNAME at www: NODATA");
}

#[test]
fn an_alias_at_the_apex_answers_under_the_queried_name() {
    let s = dns();
    let r = q(&s, "example.com", qtype::A);
    assert_eq!(r.records, [("example.com.".to_string(), qtype::A, "192.0.2.1".to_string(), 30)]);
}

#[test]
fn names_are_case_insensitive() {
    let s = dns();
    assert_eq!(wire_name(&fqdn("WWW.EXAMPLE.COM")), wire_name(&fqdn("www.example.com")));
    assert_eq!(&*wire_name(&fqdn("WWW.Example.COM.")), b"\x03www\x07example\x03com\x00");
    for name in ["WWW.EXAMPLE.COM", "www.Example.Com.", "wWw.eXaMpLe.CoM"] {
        assert_eq!(q(&s, name, qtype::A).values(), ["192.0.2.1"], "{name}");
    }
    // A record written in mixed case is found under any case.
    for name in ["mixed.example.com", "MIXED.EXAMPLE.COM"] {
        assert_eq!(q(&s, name, qtype::A).values(), ["192.0.2.77"], "{name}");
    }
    assert!(s.node(&wire_name(&fqdn("MiXeD.example.com"))).is_some());
}

#[test]
fn an_empty_non_terminal_exists() {
    let s = dns();
    let r = q(&s, "b.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NoError, "b.example.com has a name below it");
    assert!(r.records.is_empty());
    assert_eq!(r.soa_zone.as_deref(), Some("example.com."));
    assert_eq!(q(&s, "a.b.example.com", qtype::A).values(), ["192.0.2.7"]);
}

/// The empty non-terminals of a name are its parent names; a label with an escaped
/// dot (`a\.b` is one label) has no parent `b.example.com`.
#[test]
fn an_escaped_dot_does_not_make_an_empty_non_terminal() {
    let mut w = world();
    w.record("escaped", simple_a("a\\.b.example.com", &["192.0.2.1"]));
    let model = w.valid_model();
    assert_eq!(model.sets.len(), 1);
    let s = w.snapshot(1);
    assert_eq!(q(&s, "a\\.b.example.com", qtype::A).values(), ["192.0.2.1"]);
    let ancestors: Vec<Fqdn> = fqdn("a\\.b.example.com").ancestors_below(&fqdn("example.com"));
    assert!(ancestors.is_empty(), "{ancestors:?}");
    assert_eq!(
        q(&s, "b.example.com", qtype::A).rcode,
        Rcode::NxDomain,
        "b.example.com does not exist"
    );
}

#[test]
fn nested_zones_answer_from_the_closest_zone() {
    let s = dns();
    let r = q(&s, "missing.sub.example.com", qtype::A);
    assert_eq!(r.rcode, Rcode::NxDomain);
    assert_eq!(r.soa_zone.as_deref(), Some("sub.example.com."));
    assert_eq!(q(&s, "host.sub.example.com", qtype::A).values(), ["192.0.2.60"]);
    let r = q(&s, "sub.example.com", qtype::A);
    assert_eq!((r.rcode, r.soa_zone.as_deref()), (Rcode::NoError, Some("sub.example.com.")));
}

#[test]
fn wire_names_and_zone_membership() {
    let zone = wire_name(&fqdn("example.com"));
    assert!(wire_within(&wire_name(&fqdn("a.b.example.com")), &zone));
    assert!(wire_within(&zone, &zone));
    assert!(!wire_within(&wire_name(&fqdn("aexample.com")), &zone));
    assert!(!wire_within(&wire_name(&fqdn("com")), &zone));
    assert!(wire_within(&wire_name(&fqdn("anything.org")), &wire_name(&Fqdn::parse(".").unwrap())));
}

#[test]
fn the_snapshot_serves_the_engines_current_choice() {
    let mut w = world();
    w.probe("p", true);
    w.record("p", primary(WWW, &["192.0.2.1"]).hc("p"));
    w.record("s", secondary(WWW, &["192.0.2.2"]));
    w.record("w1", weighted("api.example.com", "w1", 1, &["192.0.2.11"]));
    w.record("w2", weighted("api.example.com", "w2", 1, &["192.0.2.12"]));
    let s = w.snapshot(1);
    let r = q(&s, WWW, qtype::A);
    assert_eq!(
        (r.values(), r.policy),
        (vec!["192.0.2.1".to_string()], Some(RoutingPolicy::Failover))
    );
    assert_eq!(s.decision_count(), 2);
    w.set("p", false);
    let s = w.snapshot(2);
    assert_eq!(q(&s, WWW, qtype::A).values(), ["192.0.2.2"]);
    // A weighted answer is one record per query, varying between queries.
    let mut rng = rng(8);
    let seen: BTreeSet<Vec<String>> =
        (0..200).map(|_| resolve(&s, "api.example.com", qtype::A, &mut rng).values()).collect();
    assert_eq!(
        seen,
        BTreeSet::from([vec!["192.0.2.11".to_string()], vec!["192.0.2.12".to_string()]])
    );
}
