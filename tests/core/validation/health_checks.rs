//! Health checks: defaults, ranges, ports, endpoints, the Host header and SNI,
//! calculated checks, and invalid ones never disturbing the valid.

use super::*;

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
fn the_healthy_threshold_defaults_to_the_failure_threshold_and_is_for_probed_checks() {
    let with = |n, failures| HealthCheckSpec {
        healthy_threshold: n,
        failure_threshold: failures,
        ..http("192.0.2.1")
    };
    let model = hc_model(&[
        ("default", with(None, None)),
        ("follows-failures", with(None, Some(2))),
        ("rise-5-fall-1", with(Some(5), Some(1))),
        ("tcp", HealthCheckSpec { healthy_threshold: Some(10), ..tcp("192.0.2.2", 22) }),
        ("zero", with(Some(0), None)),
        ("eleven", with(Some(11), None)),
        ("calc", HealthCheckSpec { healthy_threshold: Some(2), ..calculated(&["tcp"], 1) }),
    ]);
    let thresholds = |name| {
        let c = check_of(&model, name);
        (c.failure_threshold, c.healthy_threshold)
    };
    assert_eq!(thresholds("default"), (3, 3));
    assert_eq!(thresholds("follows-failures"), (2, 2));
    assert_eq!(thresholds("rise-5-fall-1"), (1, 5));
    assert_eq!(thresholds("tcp"), (3, 10));
    assert_check_rejected(&model, "zero", "spec.healthyThreshold");
    assert_check_rejected(&model, "eleven", "spec.healthyThreshold");
    let p = assert_error(&model, "calc", "spec.healthyThreshold");
    assert!(p.message.contains("only allowed for probed checks"), "{}", p.message);
}

#[test]
fn expected_statuses_are_codes_and_ranges_for_http_checks() {
    let with = |entries: &[&str]| HealthCheckSpec {
        expected_statuses: Some(entries.iter().map(|e| e.to_string()).collect()),
        ..http("192.0.2.1")
    };
    let model = hc_model(&[
        ("codes", with(&["200-299", "404"])),
        (
            "https",
            HealthCheckSpec { expected_statuses: Some(vec!["503".into()]), ..https("192.0.2.1") },
        ),
        ("none", http("192.0.2.1")),
        ("reversed", with(&["299-200"])),
        ("too-high", with(&["600"])),
        ("words", with(&["2xx"])),
        ("empty", with(&[])),
        ("too-many", with(&["200"; 33])),
        (
            "tcp",
            HealthCheckSpec { expected_statuses: Some(vec!["200".into()]), ..tcp("192.0.2.2", 22) },
        ),
    ]);
    let options = |name| match check_of(&model, name).probe {
        Probe::Http { options, .. } => options,
        other => panic!("{other:?}"),
    };
    let set = options("codes").unwrap().expected_statuses.unwrap();
    assert!(set.contains(200) && set.contains(299) && set.contains(404));
    assert!(!set.contains(300) && !set.contains(403) && !set.contains(500));
    assert!(options("https").unwrap().expected_statuses.unwrap().contains(503));
    assert!(options("none").is_none(), "no options, nothing to carry per probe");
    assert_check_rejected(&model, "reversed", "spec.expectedStatuses");
    assert_check_rejected(&model, "too-high", "spec.expectedStatuses");
    assert_check_rejected(&model, "words", "spec.expectedStatuses");
    assert_check_rejected(&model, "empty", "spec.expectedStatuses");
    assert_check_rejected(&model, "too-many", "spec.expectedStatuses");
    let p = assert_error(&model, "tcp", "spec.expectedStatuses");
    assert!(p.message.contains("only allowed for HTTP and HTTPS"), "{}", p.message);
}

#[test]
fn headers_are_validated_so_no_value_can_smuggle_a_header_or_request() {
    let with = |headers: &[(&str, &str)]| HealthCheckSpec {
        headers: Some(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()),
        ..http("192.0.2.1")
    };
    let model = hc_model(&[
        ("good", with(&[("X-Token", "abc def"), ("Authorization", "Bearer x.y.z")])),
        ("crlf", with(&[("X-Token", "abc\r\nX-Injected: 1")])),
        ("lf-request", with(&[("X-Token", "abc\n\nGET /admin HTTP/1.1")])),
        ("nul", with(&[("X-Token", "abc\0")])),
        ("bad-name", with(&[("X Token", "abc")])),
        ("colon-name", with(&[("X-Token:", "abc")])),
        ("host", with(&[("Host", "other.example")])),
        ("framing", with(&[("Transfer-Encoding", "chunked")])),
        (
            "tcp",
            HealthCheckSpec {
                headers: Some([("X-A".into(), "b".into())].into()),
                ..tcp("192.0.2.2", 22)
            },
        ),
    ]);
    let Probe::Http { options, .. } = check_of(&model, "good").probe else { panic!() };
    let headers: Vec<(String, String)> = options
        .unwrap()
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        headers,
        [("authorization".into(), "Bearer x.y.z".into()), ("x-token".into(), "abc def".into())]
    );
    for (name, says) in [
        ("crlf", "0x0d"),
        ("lf-request", "0x0a"),
        ("nul", "0x00"),
        ("bad-name", "not a header name"),
        ("colon-name", "not a header name"),
        ("host", "Host may not be set"),
        ("framing", "may not be set"),
        ("tcp", "only allowed for HTTP and HTTPS"),
    ] {
        let p = assert_error(&model, name, "spec.headers");
        assert!(p.message.contains(says), "{name}: {}", p.message);
        assert!(!model.checks.contains_key(&oref(name)), "{name} is rejected but kept");
    }
}

#[test]
fn min_certificate_validity_is_a_duration_for_https_checks() {
    let with = |text: &str| HealthCheckSpec {
        min_certificate_validity: Some(text.into()),
        ..https("192.0.2.1")
    };
    let model = hc_model(&[
        ("days", with("72h")),
        ("zero", with("0s")),
        ("garbage", with("three days")),
        ("forever", with("100000h")),
        (
            "http",
            HealthCheckSpec { min_certificate_validity: Some("1h".into()), ..http("192.0.2.1") },
        ),
    ]);
    let Probe::Http { options, .. } = check_of(&model, "days").probe else { panic!() };
    assert_eq!(options.unwrap().min_certificate_validity, Some(Duration::from_secs(72 * 3600)));
    assert_check_rejected(&model, "zero", "spec.minCertificateValidity");
    assert_check_rejected(&model, "garbage", "spec.minCertificateValidity");
    assert_check_rejected(&model, "forever", "spec.minCertificateValidity");
    let p = assert_error(&model, "http", "spec.minCertificateValidity");
    assert!(p.message.contains("only allowed for HTTPS"), "{}", p.message);
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

// ================================================================== GRPC checks

fn grpc(ip: &str, port: Option<i64>) -> HealthCheckSpec {
    HealthCheckSpec {
        type_: HealthCheckType::Grpc,
        ip_address: Some(ip.into()),
        port,
        ..HealthCheckSpec::default()
    }
}

#[test]
fn grpc_checks_need_a_port_and_take_authority_sni_and_service() {
    let fqdn = HealthCheckSpec {
        ip_address: None,
        fqdn: Some("api.example.com.".into()),
        tls: Some(true),
        grpc_service: Some("app.v1.Api".into()),
        ..grpc("", Some(50051))
    };
    let model = hc_model(&[
        ("ip", grpc("192.0.2.1", Some(9090))),
        ("v6", grpc("2001:db8::1", Some(443))),
        ("fqdn", fqdn),
        ("no-port", grpc("192.0.2.1", None)),
        (
            "long-service",
            HealthCheckSpec { grpc_service: Some("s".repeat(256)), ..grpc("192.0.2.1", Some(1)) },
        ),
    ]);
    assert_eq!(
        check_of(&model, "ip").probe,
        Probe::Grpc {
            tls: false,
            endpoint: Endpoint::Ip("192.0.2.1".parse().unwrap()),
            port: 9090,
            authority: "192.0.2.1:9090".into(),
            sni: None,
            service: String::new(),
        }
    );
    match check_of(&model, "v6").probe {
        // The port always: gRPC has no default port, 443 included.
        Probe::Grpc { authority, .. } => assert_eq!(authority, "[2001:db8::1]:443"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        check_of(&model, "fqdn").probe,
        Probe::Grpc {
            tls: true,
            endpoint: Endpoint::Fqdn("api.example.com".into()),
            port: 50051,
            authority: "api.example.com:50051".into(),
            sni: Some("api.example.com".into()),
            service: "app.v1.Api".into(),
        }
    );
    let p = assert_error(&model, "no-port", "spec.port");
    assert!(p.message.contains("GRPC"), "{}", p.message);
    assert_check_rejected(&model, "long-service", "spec.grpcService");
}

#[test]
fn http_fields_are_refused_on_grpc_and_grpc_fields_elsewhere() {
    let g = || grpc("192.0.2.1", Some(50051));
    let model = hc_model(&[
        ("grpc-path", HealthCheckSpec { resource_path: Some("/".into()), ..g() }),
        ("grpc-search", HealthCheckSpec { search_string: Some("ok".into()), ..g() }),
        ("http-service", HealthCheckSpec { grpc_service: Some("a.B".into()), ..http("192.0.2.1") }),
        ("https-tls", HealthCheckSpec { tls: Some(true), ..https("192.0.2.1") }),
        ("tcp-tls", HealthCheckSpec { tls: Some(false), ..tcp("192.0.2.1", 22) }),
    ]);
    assert_check_rejected(&model, "grpc-path", "spec.resourcePath");
    assert_check_rejected(&model, "grpc-search", "spec.searchString");
    assert_check_rejected(&model, "http-service", "spec.grpcService");
    assert_check_rejected(&model, "https-tls", "spec.tls");
    assert_check_rejected(&model, "tcp-tls", "spec.tls");
}

#[test]
fn a_grpc_service_ref_check_probes_each_endpoint_with_its_address_as_authority() {
    let spec = HealthCheckSpec {
        type_: HealthCheckType::Grpc,
        service_ref: Some(failover_dns::resources::ServiceRef {
            name: "api".into(),
            port: Some(failover_dns::resources::IntOrString::String("grpc".into())),
        }),
        tls: Some(true),
        grpc_service: Some("app.v1.Api".into()),
        ..HealthCheckSpec::default()
    };
    let mut m = model::Model::new(&[fqdn(ZONE)]);
    m.set_cluster_objects(true);
    m.apply([model::Change::Check(input(NS, "api", 1, spec.clone()))]);
    let Probe::Service { each, .. } = check_of(&m, "api").probe else {
        panic!("{:?}", check_of(&m, "api"));
    };
    assert_eq!(
        each.at("2001:db8::7".parse().unwrap(), 8443),
        Probe::Grpc {
            tls: true,
            endpoint: Endpoint::Ip("2001:db8::7".parse().unwrap()),
            port: 8443,
            authority: "[2001:db8::7]:8443".into(),
            sni: None,
            service: "app.v1.Api".into(),
        }
    );
    // Standalone mode has no Services.
    let standalone = hc_model(&[("api", spec)]);
    assert_check_rejected(&standalone, "api", "spec.serviceRef");
}
