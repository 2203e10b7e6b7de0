//! Names (inside a served zone, case, the trailing dot, no wildcard) and values
//! (parsed per type, TXT quoting, the index of a bad value).

use super::*;

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
