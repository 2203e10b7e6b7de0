//! Per-kind validation of a HealthCheck on its own: every field checked against the
//! contract. Relations to other checks (Calculated children) are settled in [`super::settle`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::HealthCheckType;
use super::*;

pub(super) fn validate_check(
    input: &Input<HealthCheckSpec>,
    problems: &mut ObjectProblems<'_>,
) -> Option<Check> {
    let spec = &input.spec;
    let before = problems.count();
    let interval = interval(spec, problems);
    let timeout = timeout(spec, interval, problems);
    let failure_threshold = failure_threshold(spec, problems);
    reject_fields_of_other_types(spec, problems);
    let probe = match spec.type_ {
        HealthCheckType::Calculated => calculated_probe(spec, problems),
        kind => network_probe(spec, kind, problems)?,
    };
    if problems.errors_since(before) {
        return None;
    }
    Some(Check {
        id: input.id.clone(),
        probe,
        interval,
        timeout,
        failure_threshold,
        inverted: spec.inverted.unwrap_or(false),
        disabled: spec.disabled.unwrap_or(false),
    })
}

fn interval(spec: &HealthCheckSpec, problems: &mut ObjectProblems<'_>) -> Duration {
    match spec.request_interval.as_deref().map(parse_spec_duration) {
        None => DEFAULT_INTERVAL,
        Some(Ok(d)) if d < MIN_INTERVAL => {
            problems.error("spec.requestInterval", format!("{d:?} is below the minimum of 100ms"));
            MIN_INTERVAL
        }
        Some(Ok(d)) if d > MAX_INTERVAL => {
            problems.error("spec.requestInterval", format!("{d:?} is above the maximum of 1h"));
            MAX_INTERVAL
        }
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            problems.error("spec.requestInterval", e);
            DEFAULT_INTERVAL
        }
    }
}

fn timeout(
    spec: &HealthCheckSpec,
    interval: Duration,
    problems: &mut ObjectProblems<'_>,
) -> Duration {
    // The timeout always leaves room before the next probe of the same check.
    let timeout_cap = interval.mul_f64(0.9);
    match spec.timeout.as_deref().map(parse_spec_duration) {
        None => DEFAULT_TIMEOUT.min(timeout_cap),
        Some(Ok(d)) if d.is_zero() => {
            problems.error("spec.timeout", "must be greater than zero");
            timeout_cap
        }
        Some(Ok(d)) => d.min(timeout_cap),
        Some(Err(e)) => {
            problems.error("spec.timeout", e);
            timeout_cap
        }
    }
}

fn failure_threshold(spec: &HealthCheckSpec, problems: &mut ObjectProblems<'_>) -> u32 {
    match spec.failure_threshold {
        None => DEFAULT_FAILURE_THRESHOLD,
        Some(n @ 1..=10) => n as u32,
        Some(n) => {
            problems.error("spec.failureThreshold", format!("{n} is outside 1-10"));
            DEFAULT_FAILURE_THRESHOLD
        }
    }
}

/// Fields that only one type of check may set.
fn reject_fields_of_other_types(spec: &HealthCheckSpec, problems: &mut ObjectProblems<'_>) {
    if spec.type_ != HealthCheckType::Calculated {
        if spec.child_health_checks.is_some() {
            problems.error("spec.childHealthChecks", "only allowed for type Calculated");
        }
        if spec.health_threshold.is_some() {
            problems.error("spec.healthThreshold", "only allowed for type Calculated");
        }
    }
    if spec.search_string.is_some()
        && !matches!(spec.type_, HealthCheckType::Http | HealthCheckType::Https)
    {
        problems.error("spec.searchString", "only allowed for HTTP and HTTPS checks");
    }
}

fn calculated_probe(spec: &HealthCheckSpec, problems: &mut ObjectProblems<'_>) -> Probe {
    for (field, present) in [
        ("spec.ipAddress", spec.ip_address.is_some()),
        ("spec.fqdn", spec.fqdn.is_some()),
        ("spec.port", spec.port.is_some()),
        ("spec.resourcePath", spec.resource_path.is_some()),
    ] {
        if present {
            problems.error(field, "not allowed for type Calculated");
        }
    }
    if spec.child_health_checks.is_none() {
        problems.error("spec.childHealthChecks", "required for type Calculated");
    }
    let children = spec.child_health_checks.clone().unwrap_or_default();
    if children.len() > MAX_CHILDREN {
        problems.error(
            "spec.childHealthChecks",
            format!("{} children; at most {MAX_CHILDREN}", children.len()),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, child) in children.iter().enumerate() {
        if !seen.insert(child) {
            problems.error(
                &format!("spec.childHealthChecks[{i}]"),
                format!("{child:?} is listed twice"),
            );
        }
    }
    let health_threshold = match spec.health_threshold {
        Some(n @ 0..=256) => n as u32,
        Some(n) => {
            problems.error("spec.healthThreshold", format!("{n} is outside 0-256"));
            0
        }
        None => {
            problems.error("spec.healthThreshold", "required for type Calculated");
            0
        }
    };
    Probe::Calculated { children, health_threshold }
}

/// An HTTP, HTTPS or TCP probe; None (having reported why) without a valid endpoint.
fn network_probe(
    spec: &HealthCheckSpec,
    kind: HealthCheckType,
    problems: &mut ObjectProblems<'_>,
) -> Option<Probe> {
    let endpoint = endpoint(spec, problems);
    let port = port(spec, kind, problems);
    if kind == HealthCheckType::Tcp {
        if spec.resource_path.is_some() {
            problems.error("spec.resourcePath", "only allowed for HTTP and HTTPS checks");
        }
        return Some(Probe::Tcp { endpoint: endpoint?, port });
    }
    let tls = kind == HealthCheckType::Https;
    let mut path = spec.resource_path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.error("spec.resourcePath", "must not contain whitespace or control characters");
    }
    if let Some(s) = &spec.search_string
        && (s.is_empty() || s.chars().count() > MAX_SEARCH_STRING)
    {
        problems.error("spec.searchString", "must be 1 to 255 characters");
    }
    let endpoint = endpoint?;
    let host_header = host_header(spec, &endpoint, tls, port);
    Some(Probe::Http {
        tls,
        endpoint,
        port,
        path,
        host_header,
        sni: spec.fqdn.as_ref().map(|f| f.trim_end_matches('.').to_string()),
        search_string: spec.search_string.clone(),
    })
}

/// The port to probe: HTTP and HTTPS have defaults, TCP requires one.
fn port(spec: &HealthCheckSpec, kind: HealthCheckType, problems: &mut ObjectProblems<'_>) -> u16 {
    let default_port = match kind {
        HealthCheckType::Http => Some(80),
        HealthCheckType::Https => Some(443),
        _ => None,
    };
    match (spec.port, default_port) {
        (Some(n @ 1..=65535), _) => n as u16,
        (Some(n), d) => {
            problems.error("spec.port", format!("{n} is outside 1-65535"));
            d.unwrap_or(1)
        }
        (None, Some(d)) => d,
        (None, None) => {
            problems.error("spec.port", "required for TCP checks");
            1
        }
    }
}

/// The Host header: the fqdn (or the IP) with `:port` unless it is the scheme's default.
fn host_header(spec: &HealthCheckSpec, endpoint: &Endpoint, tls: bool, port: u16) -> String {
    let host = match (&spec.fqdn, endpoint) {
        (Some(fqdn), _) => fqdn.trim_end_matches('.').to_string(),
        (None, Endpoint::Ip(IpAddr::V6(ip))) => format!("[{ip}]"),
        (None, Endpoint::Ip(ip)) => ip.to_string(),
        (None, Endpoint::Fqdn(f)) => f.clone(),
    };
    let default = if tls { 443 } else { 80 };
    if port == default { host } else { format!("{host}:{port}") }
}

fn endpoint(spec: &HealthCheckSpec, problems: &mut ObjectProblems<'_>) -> Option<Endpoint> {
    if let Some(fqdn) = &spec.fqdn
        && let Err(e) = Fqdn::parse(fqdn)
    {
        problems.error("spec.fqdn", e);
        return None;
    }
    match (&spec.ip_address, &spec.fqdn) {
        (Some(ip), _) => match ip.trim().parse::<IpAddr>() {
            Ok(ip) => Some(Endpoint::Ip(ip)),
            Err(_) => {
                problems.error("spec.ipAddress", format!("{ip:?} is not an IPv4 or IPv6 address"));
                None
            }
        },
        (None, Some(fqdn)) => Some(Endpoint::Fqdn(fqdn.trim_end_matches('.').to_string())),
        (None, None) => {
            problems.error("spec.ipAddress", "either ipAddress or fqdn is required");
            None
        }
    }
}
