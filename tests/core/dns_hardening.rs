//! DNS under abuse, over real UDP and TCP sockets on loopback: responses are never
//! answered, ANY is answered minimally, transfers and other classes are refused
//! alike everywhere, answers past 64 KiB stay well-formed over TCP, TCP resources
//! are bounded while UDP keeps answering, and rate limiting holds back a network.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::support::*;
use failover_dns::dns::UdpEngine;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const ZONES: &[&str] = &["example.test"];
const BIG: usize = 5000;

fn manifests() -> String {
    let values = |n: usize| -> String {
        (0..n)
            .map(|i| format!("\"10.{}.{}.{}\"", i >> 16, (i >> 8) & 0xff, i & 0xff))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut y = String::new();
    y += &record("www", r#"{name: www.example.test, type: A, values: ["192.0.2.1", "192.0.2.2"]}"#);
    y += &record(
        "multi-a",
        r#"{name: multi.example.test, type: A, values: ["192.0.2.1", "192.0.2.2"]}"#,
    );
    y +=
        &record("multi-aaaa", r#"{name: multi.example.test, type: AAAA, values: ["2001:db8::1"]}"#);
    y += &record(
        "multi-txt",
        r#"{name: multi.example.test, type: TXT, values: ['"one"', '"two"']}"#,
    );
    y += &record(
        "multi-mx",
        r#"{name: multi.example.test, type: MX, values: ["10 mail.example.test"]}"#,
    );
    y += &record(
        "big2000",
        &format!("{{name: big2000.example.test, type: A, values: [{}]}}", values(2000)),
    );
    y += &record("big", &format!("{{name: big.example.test, type: A, values: [{}]}}", values(BIG)));
    // A weighted pair: answered through the resolver rather than a pre-encoded answer.
    y += &record(
        "wbig",
        &format!(
            "{{name: wbig.example.test, type: A, routingPolicy: Weighted, setIdentifier: big, weight: 1, values: [{}]}}",
            values(BIG)
        ),
    );
    y += &record(
        "wsmall",
        r#"{name: wbig.example.test, type: A, routingPolicy: Weighted, setIdentifier: small, weight: 0, values: ["192.0.2.9"]}"#,
    );
    y
}

fn engines() -> [UdpEngine; 2] {
    [UdpEngine::Fast, UdpEngine::Hickory]
}

fn raw_query(name: &str, rtype: RecordType) -> Vec<u8> {
    query_message(name, rtype, None).to_vec().unwrap()
}

fn id_of(raw: &[u8]) -> u16 {
    u16::from_be_bytes([raw[0], raw[1]])
}

/// A TCP connection with generous read and write deadlines.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// Reads one framed message; None when the server closed the connection.
fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => {
            return None;
        }
        Err(e) => panic!("no answer and no close: {e}"),
    }
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).unwrap();
    Some(buf)
}

fn tcp_exchange(addr: SocketAddr, query: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    stream.write_all(&framed(query)).unwrap();
    read_framed(&mut stream).expect("an answer")
}

fn udp_answers(addr: SocketAddr) -> bool {
    let (r, _) = udp(addr, &query_message("www.example.test.", RecordType::A, None));
    r.metadata.response_code == ResponseCode::NoError && r.answers.len() == 2
}

// ---------------------------------------------------------------- hygiene

/// Packets with QR set: a well-formed response, a response whose body does not
/// parse, a bare header; plus a runt. None may be answered.
fn never_answered() -> Vec<Vec<u8>> {
    let mut response = raw_query("www.example.test.", RecordType::A);
    response[2] |= 0x80;
    let mut garbage = vec![0x12, 0x34, 0x81, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xff, 0xfe, 0x07, 0x01]);
    let mut bare = vec![0x55, 0x66, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    bare[3] = 0;
    vec![response, garbage, bare, vec![1, 2, 3, 4, 5]]
}

#[test]
fn responses_are_never_answered_on_any_transport() {
    for engine in engines() {
        let s = start(ZONES, &manifests(), engine);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for packet in never_answered() {
            socket.send_to(&packet, s.addr).unwrap();
        }
        let valid = raw_query("www.example.test.", RecordType::A);
        socket.send_to(&valid, s.addr).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = socket.recv_from(&mut buf).expect("the valid query is answered");
        assert_eq!(
            id_of(&buf[..n]),
            id_of(&valid),
            "{engine:?}: the first datagram back answers the valid query"
        );
        socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        assert!(
            socket.recv_from(&mut buf).is_err(),
            "{engine:?}: a packet with QR set was answered"
        );

        let mut stream = connect(s.addr);
        for packet in never_answered() {
            stream.write_all(&framed(&packet)).unwrap();
        }
        stream.write_all(&framed(&valid)).unwrap();
        let answer = read_framed(&mut stream).expect("the valid query is answered over TCP");
        assert_eq!(id_of(&answer), id_of(&valid), "TCP: the first answer is the valid query's");
    }
}

#[test]
fn any_is_answered_with_one_rrset() {
    for engine in engines() {
        let s = start(ZONES, &manifests(), engine);
        for name in ["multi.example.test.", "example.test.", "www.example.test."] {
            let msg = query_message(name, RecordType::ANY, None);
            let (udp_answer, _) = udp(s.addr, &msg);
            let tcp_answer = tcp(s.addr, &msg);
            for (transport, r) in [("udp", &udp_answer), ("tcp", &tcp_answer)] {
                assert_eq!(
                    r.metadata.response_code,
                    ResponseCode::NoError,
                    "{engine:?} {transport} {name}"
                );
                assert!(!r.answers.is_empty(), "{engine:?} {transport} {name}");
                let first = r.answers[0].record_type();
                assert!(
                    r.answers.iter().all(|a| a.record_type() == first),
                    "{engine:?} {transport} {name}: more than one RRset: {:?}",
                    r.answers
                );
            }
        }
        let (r, _) = udp(s.addr, &query_message("nothing.example.test.", RecordType::ANY, None));
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    }
}

#[test]
fn transfers_other_classes_and_opt_get_the_same_answer_on_every_transport() {
    let with_class = |class: u16| {
        let mut q = raw_query("www.example.test.", RecordType::A);
        let at = q.len() - 2;
        q[at..].copy_from_slice(&class.to_be_bytes());
        q
    };
    let cases: Vec<(String, Vec<u8>, ResponseCode)> = vec![
        ("AXFR".into(), raw_query("example.test.", RecordType::AXFR), ResponseCode::Refused),
        ("IXFR".into(), raw_query("example.test.", RecordType::IXFR), ResponseCode::Refused),
        ("class CH".into(), with_class(3), ResponseCode::Refused),
        ("class HS".into(), with_class(4), ResponseCode::Refused),
        ("class NONE".into(), with_class(254), ResponseCode::Refused),
        ("class ANY".into(), with_class(255), ResponseCode::Refused),
        ("class 1234".into(), with_class(1234), ResponseCode::Refused),
        (
            "qtype OPT".into(),
            raw_query("www.example.test.", RecordType::OPT),
            ResponseCode::FormErr,
        ),
    ];
    for engine in engines() {
        let s = start(ZONES, &manifests(), engine);
        for (what, query, expected) in &cases {
            let udp = Message::from_vec(&udp_raw(s.addr, query).expect("a UDP answer")).unwrap();
            let tcp = Message::from_vec(&tcp_exchange(s.addr, query)).unwrap();
            assert_eq!(udp.metadata.response_code, *expected, "{engine:?} UDP {what}");
            assert_eq!(tcp.metadata.response_code, *expected, "TCP {what}");
            assert!(udp.answers.is_empty() && tcp.answers.is_empty(), "{what}");
        }
    }
}

/// Finding 13: the same bytes got different answers over UDP and TCP. TCP is now
/// answered by the UDP fast path's responder: byte-identical answers.
#[test]
fn malformed_messages_get_the_same_bytes_back_over_udp_and_tcp() {
    let s = start(ZONES, &manifests(), UdpEngine::Fast);
    let valid = raw_query("www.example.test.", RecordType::A);
    let with_edns = query_message("www.example.test.", RecordType::A, Some(1232)).to_vec().unwrap();
    let mut trailing = valid.clone();
    trailing.extend_from_slice(&[1, 2, 3]);
    let mut bad_rdlen = with_edns.clone();
    let at = bad_rdlen.len() - 2;
    bad_rdlen[at..].copy_from_slice(&40u16.to_be_bytes()); // OPT RDLEN past the end
    let mut bad_option = with_edns[..with_edns.len() - 2].to_vec();
    bad_option.extend_from_slice(&[0, 4, 0, 10, 0, 200, 1, 2]); // option length 200 in 4 bytes of RDATA
    let mut two_opts = with_edns.clone();
    two_opts.extend_from_slice(&with_edns[with_edns.len() - 11..]);
    two_opts[11] = 2;
    let mut compressed_question = valid[..12].to_vec();
    compressed_question.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    let mut long_label = valid[..12].to_vec();
    long_label.extend_from_slice(&[70]);
    long_label.extend_from_slice(&[b'a'; 70]);
    long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut notify = valid.clone();
    notify[2] |= 4 << 3;
    let cases = [
        ("valid", valid.clone()),
        ("trailing bytes", trailing),
        ("OPT RDLEN past the end", bad_rdlen),
        ("option length past its RDATA", bad_option),
        ("two OPT records", two_opts),
        ("compressed question", compressed_question),
        ("label over 63 bytes", long_label),
        ("NOTIFY", notify),
        ("qtype OPT", raw_query("www.example.test.", RecordType::OPT)),
        ("header only", valid[..12].to_vec()),
    ];
    for (what, query) in cases {
        let over_udp = udp_raw(s.addr, &query).unwrap_or_else(|| panic!("{what}: no UDP answer"));
        let over_tcp = tcp_exchange(s.addr, &query);
        assert_eq!(over_udp, over_tcp, "{what}");
    }
}

// ---------------------------------------------------------------- answers past 64 KiB

/// Walks a message's sections by its own counts and returns where they end: a
/// well-formed message ends exactly at its length.
fn sections_end(raw: &[u8]) -> usize {
    let count = |at: usize| usize::from(u16::from_be_bytes([raw[at], raw[at + 1]]));
    let skip_name = |mut at: usize| -> usize {
        loop {
            let len = raw[at];
            if len & 0xC0 == 0xC0 {
                let target = usize::from(u16::from_be_bytes([len & 0x3F, raw[at + 1]]));
                assert!(target < at, "a compression pointer points forward");
                return at + 2;
            }
            at += 1 + usize::from(len);
            if len == 0 {
                return at;
            }
        }
    };
    let mut at = 12;
    for _ in 0..count(4) {
        at = skip_name(at) + 4;
    }
    for _ in 0..count(6) + count(8) + count(10) {
        at = skip_name(at) + 8;
        let rdlen = count(at);
        at += 2 + rdlen;
    }
    at
}

#[test]
fn a_tcp_answer_past_64k_is_truncated_into_a_well_formed_message() {
    let s = start(ZONES, &manifests(), UdpEngine::Fast);
    for name in ["big.example.test.", "wbig.example.test."] {
        for edns in [None, Some(4096)] {
            let raw =
                tcp_exchange(s.addr, &query_message(name, RecordType::A, edns).to_vec().unwrap());
            assert!(raw.len() <= 65535);
            assert_eq!(
                sections_end(&raw),
                raw.len(),
                "{name} {edns:?}: the counts describe exactly what is there"
            );
            let r = Message::from_vec(&raw).expect("parses");
            assert!(r.metadata.truncation, "{name} {edns:?}: TC set");
            assert_eq!(r.metadata.response_code, ResponseCode::NoError);
            // As many whole records as fit (16 bytes each with the owner compressed).
            assert!(
                r.answers.len() > 4000 && r.answers.len() < BIG,
                "{name}: {} answers",
                r.answers.len()
            );
            assert!(
                r.answers.iter().all(|a| a.name.to_ascii() == name),
                "every owner decodes to the query name"
            );
            assert_eq!(r.edns.is_some(), edns.is_some(), "OPT kept exactly when asked for");
        }
    }
    // Finding 9's 2000 values fit whole.
    let raw = tcp_exchange(s.addr, &raw_query("big2000.example.test.", RecordType::A));
    assert_eq!(sections_end(&raw), raw.len());
    let r = Message::from_vec(&raw).unwrap();
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 2000);
    // Over UDP the same names are truncated to the question, for a TCP retry.
    let (r, len) = udp(s.addr, &query_message("big.example.test.", RecordType::A, Some(4096)));
    assert!(r.metadata.truncation && r.answers.is_empty() && len <= 4096);
}

// ---------------------------------------------------------------- TCP bounds

#[test]
fn the_connection_past_the_cap_is_refused_while_udp_keeps_answering() {
    let s = start_with(ZONES, &manifests(), UdpEngine::Fast, |c| {
        c.tcp.max_connections = 4;
        c.tcp.max_connections_per_client = 0;
    });
    let query = raw_query("www.example.test.", RecordType::A);
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect(s.addr)).collect();
    for stream in &mut held {
        stream.write_all(&framed(&query)).unwrap();
        assert!(read_framed(stream).is_some(), "the first four are served");
    }
    let mut fifth = connect(s.addr);
    let _ = fifth.write_all(&framed(&query));
    assert!(closed_by_server(&mut fifth), "the fifth connection is refused");
    assert!(udp_answers(s.addr), "UDP keeps answering");
    // The held connections still work; closing one frees a slot.
    held[0].write_all(&framed(&query)).unwrap();
    assert!(read_framed(&mut held[0]).is_some());
    drop(held.remove(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect(s.addr);
        if again.write_all(&framed(&query)).is_ok() && read_framed_or_close(&mut again).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot is never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Like `read_framed`, treating any failure as a close.
#[test]
fn a_client_past_its_own_cap_is_refused_while_others_get_in() {
    let s = start_with(ZONES, &manifests(), UdpEngine::Fast, |c| {
        c.tcp.max_connections = 0;
        c.tcp.max_connections_per_client = 2;
    });
    let query = raw_query("www.example.test.", RecordType::A);
    let mut mine: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.1", s.addr)).collect();
    for stream in &mut mine {
        stream.write_all(&framed(&query)).unwrap();
        assert!(read_framed(stream).is_some());
    }
    let mut third = connect_from("127.0.0.1", s.addr);
    let _ = third.write_all(&framed(&query));
    assert!(closed_by_server(&mut third), "a third connection from the same address is refused");
    let mut other = connect_from("127.0.0.2", s.addr);
    other.write_all(&framed(&query)).unwrap();
    assert!(read_framed(&mut other).is_some(), "another client is served");
    assert!(udp_answers(s.addr));
}

#[test]
fn idle_and_slow_tcp_clients_are_cut_off() {
    let s = start_with(ZONES, &manifests(), UdpEngine::Fast, |c| {
        c.tcp.idle_timeout = Duration::from_millis(500);
        c.tcp.query_timeout = Duration::from_millis(500);
    });
    let query = raw_query("www.example.test.", RecordType::A);
    let mut idle = connect(s.addr);
    let mut one_byte = connect(s.addr);
    one_byte.write_all(&framed(&query)[..1]).unwrap();
    let mut half = connect(s.addr);
    half.write_all(&framed(&query)[..8]).unwrap();
    let mut served_then_idle = connect(s.addr);
    served_then_idle.write_all(&framed(&query)).unwrap();
    assert!(read_framed(&mut served_then_idle).is_some());
    for (what, stream) in [
        ("idle", &mut idle),
        ("one byte", &mut one_byte),
        ("half a query", &mut half),
        ("idle after a query", &mut served_then_idle),
    ] {
        assert!(closed_by_server(stream), "{what}: still open after the read timeout");
    }
    assert!(udp_answers(s.addr));
}

#[test]
fn pipelined_queries_are_answered_in_order_up_to_the_per_connection_limit() {
    let s =
        start_with(ZONES, &manifests(), UdpEngine::Fast, |c| c.tcp.max_queries_per_connection = 30);
    let queries: Vec<Vec<u8>> =
        (0..50).map(|_| raw_query("www.example.test.", RecordType::A)).collect();
    let mut stream = connect(s.addr);
    let all: Vec<u8> = queries.iter().flat_map(|q| framed(q)).collect();
    stream.write_all(&all).unwrap();
    for (i, q) in queries.iter().take(30).enumerate() {
        let answer = read_framed(&mut stream).unwrap_or_else(|| panic!("answer {i} missing"));
        assert_eq!(id_of(&answer), id_of(q), "answer {i} out of order");
    }
    assert!(closed_by_server(&mut stream), "closed after 30 queries");

    // A query followed by part of the next: the first answer does not wait for the rest.
    let (one, two) = (framed(&queries[0]), framed(&queries[1]));
    let mut stream = connect(s.addr);
    stream.write_all(&[&one[..], &two[..5]].concat()).unwrap();
    assert_eq!(id_of(&read_framed(&mut stream).expect("the first answer")), id_of(&queries[0]));
    stream.write_all(&two[5..]).unwrap();
    assert_eq!(id_of(&read_framed(&mut stream).expect("the second answer")), id_of(&queries[1]));
}

// ---------------------------------------------------------------- rate limiting

#[test]
fn rate_limiting_slips_or_drops_past_the_rate_of_a_network() {
    for engine in engines() {
        let s = start_with(ZONES, &manifests(), engine, |c| {
            c.rrl_per_second = 5;
            c.rrl_slip = 2;
        });
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        const BURST: usize = 40;
        for _ in 0..BURST {
            socket.send_to(&raw_query("www.example.test.", RecordType::A), s.addr).unwrap();
        }
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (mut full, mut truncated) = (0, 0);
        let mut buf = [0u8; 4096];
        while let Ok((n, _)) = socket.recv_from(&mut buf) {
            let r = Message::from_vec(&buf[..n]).unwrap();
            if r.metadata.truncation {
                assert!(r.answers.is_empty());
                truncated += 1;
            } else {
                assert_eq!(r.answers.len(), 2);
                full += 1;
            }
        }
        eprintln!(
            "{engine:?}: {full} answered, {truncated} truncated, {} dropped",
            BURST - full - truncated
        );
        // 5 a second plus what refills while the burst is processed.
        assert!((5..=10).contains(&full), "{engine:?}: {full} full answers");
        assert!(
            truncated >= 10,
            "{engine:?}: every second response over the rate slips: {truncated}"
        );
        assert!(full + truncated < BURST, "{engine:?}: the rest is dropped");

        // Another /24 has its own budget, and TCP is never limited.
        let other = UdpSocket::bind("127.0.1.1:0").unwrap();
        other.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        other.send_to(&raw_query("www.example.test.", RecordType::A), s.addr).unwrap();
        let (n, _) = other.recv_from(&mut buf).expect("another network is answered");
        assert!(!Message::from_vec(&buf[..n]).unwrap().metadata.truncation);
        for _ in 0..20 {
            let r = Message::from_vec(&tcp_exchange(
                s.addr,
                &raw_query("www.example.test.", RecordType::A),
            ))
            .unwrap();
            assert_eq!(r.answers.len(), 2, "TCP is not rate limited");
        }
    }
}
