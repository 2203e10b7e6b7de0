//! DNS behaviour (contract section 3) over real UDP and TCP sockets, for both UDP
//! engines: the fast path and hickory-server.

use std::collections::BTreeSet;

use crate::support::*;
use failover_dns::dns::UdpEngine;
use hickory_proto::op::{MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const ZONES: &[&str] = &["example.test", "other.test"];

fn manifests() -> String {
    let mut y = String::new();
    y += &record(
        "www",
        r#"{name: www.example.test, type: A, ttl: 30, values: ["192.0.2.1", "192.0.2.2"]}"#,
    );
    y += &record("www6", r#"{name: www.example.test, type: AAAA, values: ["2001:db8::1"]}"#);
    y += &record("mx", r#"{name: example.test, type: MX, values: ["10 mail.example.test"]}"#);
    y += &record(
        "srv",
        r#"{name: _sip._tcp.example.test, type: SRV, values: ["1 2 5060 sip.example.test."]}"#,
    );
    y += &record(
        "txt",
        r#"{name: txt.example.test, type: TXT, values: ['"hello world" "second"']}"#,
    );
    y += &record("alias", r#"{name: app.example.test, type: CNAME, values: ["www.example.test"]}"#);
    y += &record(
        "chain",
        r#"{name: chain.example.test, type: CNAME, values: ["app.example.test"]}"#,
    );
    y += &record(
        "cross",
        r#"{name: cross.example.test, type: CNAME, values: ["target.other.test"]}"#,
    );
    y += &record("target", r#"{name: target.other.test, type: A, values: ["198.51.100.7"]}"#);
    y += &record(
        "outside",
        r#"{name: out.example.test, type: CNAME, values: ["www.elsewhere.invalid"]}"#,
    );
    y += &record(
        "dangling",
        r#"{name: dangling.example.test, type: CNAME, values: ["missing.example.test"]}"#,
    );
    y += &record("deep", r#"{name: a.b.example.test, type: A, values: ["192.0.2.9"]}"#);
    let big: Vec<String> =
        (0..12).map(|i| format!("'\"{}\"'", format!("{i:02}").repeat(100))).collect();
    y += &record(
        "big",
        &format!("{{name: big.example.test, type: TXT, values: [{}]}}", big.join(", ")),
    );
    let w = |id: &str, ip: &str| {
        record(
            &format!("w-{id}"),
            &format!(
                r#"{{name: lb.example.test, type: A, routingPolicy: Weighted, setIdentifier: {id}, weight: 1, values: ["{ip}"]}}"#
            ),
        )
    };
    y += &w("one", "192.0.2.51");
    y += &w("two", "192.0.2.52");
    y
}

fn for_each_engine(test: impl Fn(&TestServer)) {
    for engine in [UdpEngine::Fast, UdpEngine::Hickory] {
        let server = start(ZONES, &manifests(), engine);
        eprintln!("engine {engine:?}");
        test(&server);
    }
}

#[test]
fn answers_are_authoritative_and_case_insensitive() {
    for_each_engine(|s| {
        let (r, _) = udp(s.addr, &query_message("WwW.ExAmPlE.TeSt.", RecordType::A, None));
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative, "AA bit");
        assert!(!r.metadata.recursion_available);
        assert_eq!(answer_strings(&r), ["192.0.2.1", "192.0.2.2"]);
        assert!(r.answers.iter().all(|a| a.ttl == 30));
        assert_eq!(r.queries[0].name().to_ascii(), "WwW.ExAmPlE.TeSt.", "question echoed as asked");

        let (r, _) = udp(s.addr, &query_message("www.example.test.", RecordType::AAAA, None));
        assert_eq!(answer_strings(&r), ["2001:db8::1"]);
        let (r, _) = udp(s.addr, &query_message("example.test.", RecordType::MX, None));
        assert_eq!(answer_strings(&r), ["10 mail.example.test."]);
        let (r, _) = udp(s.addr, &query_message("_sip._tcp.example.test.", RecordType::SRV, None));
        assert_eq!(answer_strings(&r), ["1 2 5060 sip.example.test."]);
        let (r, _) = udp(s.addr, &query_message("txt.example.test.", RecordType::TXT, None));
        let RData::TXT(txt) = &r.answers[0].data else { panic!("TXT expected") };
        let strings: Vec<&[u8]> = txt.txt_data.iter().map(|b| &b[..]).collect();
        assert_eq!(strings, [&b"hello world"[..], b"second"]);
    });
}

#[test]
fn negative_answers_carry_the_zone_soa() {
    for_each_engine(|s| {
        let (r, _) = udp(s.addr, &query_message("nothing.example.test.", RecordType::A, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert!(r.metadata.authoritative);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities.len(), 1);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(r.authorities[0].name.to_ascii(), "example.test.");
        assert_eq!(r.authorities[0].ttl, 60, "negative TTL");

        // NODATA: the name exists with another type.
        let (r, _) = udp(s.addr, &query_message("www.example.test.", RecordType::TXT, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);

        // An empty non-terminal exists: NODATA, not NXDOMAIN.
        let (r, _) = udp(s.addr, &query_message("b.example.test.", RecordType::A, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());

        // The SOA of the enclosing zone, for the second zone too.
        let (r, _) = udp(s.addr, &query_message("nope.other.test.", RecordType::A, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.authorities[0].name.to_ascii(), "other.test.");
    });
}

#[test]
fn outside_the_zones_is_refused() {
    for_each_engine(|s| {
        for name in ["www.example.com.", "test.", "xexample.test.", "."] {
            let (r, _) = udp(s.addr, &query_message(name, RecordType::A, None));
            assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{name}");
            assert!(!r.metadata.authoritative, "{name}");
            assert!(r.answers.is_empty());
        }
    });
}

#[test]
fn apex_has_soa_and_ns() {
    for_each_engine(|s| {
        let (r, _) = udp(s.addr, &query_message("example.test.", RecordType::SOA, None));
        assert_eq!(r.answers.len(), 1);
        let RData::SOA(soa) = &r.answers[0].data else { panic!("SOA expected") };
        assert_eq!(soa.mname.to_ascii(), "ns1.example.test.");
        assert!(soa.serial > 0);
        let (r, _) = udp(s.addr, &query_message("other.test.", RecordType::NS, None));
        assert_eq!(answer_strings(&r), ["ns1.other.test."]);
        assert!(r.metadata.authoritative);
    });
}

#[test]
fn cname_chains_are_followed_inside_the_zones() {
    for_each_engine(|s| {
        let (r, _) = udp(s.addr, &query_message("chain.example.test.", RecordType::A, None));
        let owners: Vec<(String, RecordType)> =
            r.answers.iter().map(|a| (a.name.to_ascii(), a.record_type())).collect();
        assert_eq!(
            owners,
            [
                ("chain.example.test.".to_string(), RecordType::CNAME),
                ("app.example.test.".to_string(), RecordType::CNAME),
                ("www.example.test.".to_string(), RecordType::A),
                ("www.example.test.".to_string(), RecordType::A),
            ]
        );
        // Across served zones.
        let (r, _) = udp(s.addr, &query_message("cross.example.test.", RecordType::A, None));
        assert_eq!(answer_strings(&r), ["198.51.100.7", "target.other.test."]);
        // Leaving the zones: only the CNAME, NOERROR.
        let (r, _) = udp(s.addr, &query_message("out.example.test.", RecordType::A, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answer_strings(&r), ["www.elsewhere.invalid."]);
        // To a missing name in the zone: the CNAME with NXDOMAIN.
        let (r, _) = udp(s.addr, &query_message("dangling.example.test.", RecordType::A, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(answer_strings(&r), ["missing.example.test."]);
        // Asking for the CNAME itself does not follow it.
        let (r, _) = udp(s.addr, &query_message("app.example.test.", RecordType::CNAME, None));
        assert_eq!(answer_strings(&r), ["www.example.test."]);
    });
}

#[test]
fn large_answers_are_truncated_and_complete_over_tcp() {
    for_each_engine(|s| {
        let msg = query_message("big.example.test.", RecordType::TXT, None);
        let (r, len) = udp(s.addr, &msg);
        assert!(len <= 512, "no EDNS: at most 512 bytes, got {len}");
        assert!(r.metadata.truncation, "TC set");
        let full = tcp(s.addr, &msg);
        assert!(!full.metadata.truncation);
        assert_eq!(full.answers.len(), 12);
        // An EDNS client with a big enough buffer gets it all over UDP.
        let (r, len) =
            udp(s.addr, &query_message("big.example.test.", RecordType::TXT, Some(4096)));
        assert!(!r.metadata.truncation);
        assert_eq!(r.answers.len(), 12);
        assert!(len > 512);
        assert!(r.edns.is_some(), "OPT echoed");
        // A buffer smaller than the answer still truncates.
        let (r, len) =
            udp(s.addr, &query_message("big.example.test.", RecordType::TXT, Some(1000)));
        assert!(r.metadata.truncation);
        assert!(len <= 1000);
        // A resolver's retry gets the whole answer.
        assert_eq!(resolve(s.addr, "big.example.test.", RecordType::TXT).answers.len(), 12);
    });
}

#[test]
fn edns_is_mirrored_and_unknown_versions_get_badvers() {
    for_each_engine(|s| {
        let (r, _) = udp(s.addr, &query_message("www.example.test.", RecordType::A, Some(1232)));
        let edns = r.edns.as_ref().expect("OPT in the response");
        assert_eq!(edns.version(), 0);
        assert!(edns.max_payload() >= 512);
        let (r, _) = udp(s.addr, &query_message("www.example.test.", RecordType::A, None));
        assert!(r.edns.is_none(), "no OPT when the query had none");

        let mut msg = query_message("www.example.test.", RecordType::A, Some(1232));
        msg.edns.as_mut().unwrap().set_version(1);
        let (r, _) = udp(s.addr, &msg);
        assert_eq!(u16::from(r.metadata.response_code), 16, "BADVERS");
        assert!(r.answers.is_empty());
    });
}

#[test]
fn malformed_queries_get_formerr_and_other_opcodes_notimp() {
    for_each_engine(|s| {
        // A header announcing one question, followed by garbage.
        let mut garbage = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        garbage.extend_from_slice(&[0xff, 0xfe, 0x07, 0x01]);
        let raw = udp_raw(s.addr, &garbage).expect("a FORMERR response");
        let r = hickory_proto::op::Message::from_vec(&raw).unwrap();
        assert_eq!(r.metadata.id, 0x1234);
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        // Two questions.
        let mut two = query_message("www.example.test.", RecordType::A, None);
        two.add_query(hickory_proto::op::Query::query(
            "www.example.test.".parse().unwrap(),
            RecordType::AAAA,
        ));
        let (r, _) = udp(s.addr, &two);
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        // NOTIFY and UPDATE are not implemented.
        for op in [OpCode::Notify, OpCode::Update] {
            let mut msg = query_message("www.example.test.", RecordType::SOA, None);
            msg.metadata.op_code = op;
            let (r, _) = udp(s.addr, &msg);
            assert_eq!(r.metadata.response_code, ResponseCode::NotImp, "{op:?}");
        }
        // Still serving after all that.
        let (r, _) = udp(s.addr, &query_message("www.example.test.", RecordType::A, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    });
}

#[test]
fn tcp_serves_the_same_answers() {
    for_each_engine(|s| {
        let r = tcp(s.addr, &query_message("chain.example.test.", RecordType::A, None));
        assert!(r.metadata.authoritative);
        assert_eq!(r.answers.len(), 4);
        let r = tcp(s.addr, &query_message("nothing.example.test.", RecordType::A, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        let r = tcp(s.addr, &query_message("www.example.com.", RecordType::A, None));
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    });
}

#[test]
fn weighted_choice_is_made_per_query() {
    for_each_engine(|s| {
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let (r, _) = udp(s.addr, &query_message("lb.example.test.", RecordType::A, None));
            assert_eq!(r.answers.len(), 1, "one weighted record set per answer");
            seen.insert(answer_strings(&r).remove(0));
        }
        // Both have weight 1: missing one in 200 tries has probability 2^-199.
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["192.0.2.51", "192.0.2.52"]);
    });
}

#[test]
fn a_new_configuration_is_served_at_once_with_a_higher_serial() {
    let s = start(ZONES, &manifests(), UdpEngine::Fast);
    let serial = |s: &TestServer| {
        let (r, _) = udp(s.addr, &query_message("example.test.", RecordType::SOA, None));
        let RData::SOA(soa) = &r.answers[0].data else { panic!() };
        soa.serial
    };
    let before = serial(&s);
    let changed = manifests().replace("192.0.2.1\", \"192.0.2.2", "192.0.2.3");
    s.runtime.block_on(async { load_yaml(&mut *s.state.lock().await, &changed) });
    let (r, _) = udp(s.addr, &query_message("www.example.test.", RecordType::A, None));
    assert_eq!(answer_strings(&r), ["192.0.2.3"]);
    assert!(serial(&s) > before, "serial increases when served data changes");
}

/// Queries that arrive together are received and answered as a batch (the fast path
/// prefetches their lookups first): each still gets the answer to its own question.
#[test]
fn a_burst_of_queries_is_answered_each_as_asked() {
    for_each_engine(|s| {
        let questions: [(&str, RecordType, &[&str]); 6] = [
            ("www.example.test.", RecordType::A, &["192.0.2.1", "192.0.2.2"]),
            ("WWW.Example.TEST.", RecordType::AAAA, &["2001:db8::1"]),
            ("a.b.example.test.", RecordType::A, &["192.0.2.9"]),
            ("nothing.example.test.", RecordType::A, &[]),
            ("target.other.test.", RecordType::A, &["198.51.100.7"]),
            ("lb.example.test.", RecordType::A, &["192.0.2.51|192.0.2.52"]),
        ];
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let burst = 192u16;
        for id in 0..burst {
            let (name, rtype, _) = questions[usize::from(id) % questions.len()];
            let mut query = query_message(name, rtype, None);
            query.metadata.id = id;
            socket.send_to(&query.to_vec().unwrap(), s.addr).unwrap();
        }
        let mut seen = BTreeSet::new();
        let mut buf = [0u8; 4096];
        while seen.len() < usize::from(burst) {
            let Ok(len) = socket.recv(&mut buf) else { break };
            let r = hickory_proto::op::Message::from_vec(&buf[..len]).unwrap();
            let (name, rtype, expected) = questions[usize::from(r.metadata.id) % questions.len()];
            assert_eq!(
                r.queries[0].name().to_ascii(),
                name,
                "response {} answers its own question",
                r.metadata.id
            );
            assert_eq!(r.queries[0].query_type(), rtype);
            let answers = answer_strings(&r);
            match expected {
                [] => assert_eq!(r.metadata.response_code, ResponseCode::NXDomain, "{name}"),
                [either] if either.contains('|') => {
                    assert_eq!(answers.len(), 1, "{name}");
                    assert!(either.split('|').any(|a| a == answers[0]), "{name}: {answers:?}");
                }
                _ => assert_eq!(answers, expected, "{name}"),
            }
            seen.insert(r.metadata.id);
        }
        // UDP may drop under load, but not on loopback with a burst this small.
        assert_eq!(seen.len(), usize::from(burst), "every query of the burst answered");
    });
}
