//! Per-kind validation of a HealthCheck on its own: every field checked against the
//! contract. Relations to other checks (Calculated children) are settled in [`super::settle`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::HealthCheckType;
use super::*;
use crate::resources::IntOrString;

/// `cluster_objects`: Kubernetes objects may be targets (cluster mode).
pub(super) fn validate_check(
    input: &Input<HealthCheckSpec>,
    cluster_objects: bool,
    problems: &mut ObjectProblems<'_>,
) -> Option<Check> {
    let spec = &input.spec;
    let before = problems.count();
    let interval = interval(spec, problems);
    let timeout = timeout(spec, interval, problems);
    let failure_threshold = failure_threshold(spec, problems);
    let healthy_threshold = healthy_threshold(spec, failure_threshold, problems);
    reject_fields_of_other_types(spec, problems);
    service_ref_allowed(spec, cluster_objects, problems);
    let probe = match spec.type_ {
        HealthCheckType::Calculated => calculated_probe(spec, problems),
        HealthCheckType::Endpoints => endpoints_probe(spec, problems)?,
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
        healthy_threshold,
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

/// Passes needed to recover: `healthyThreshold`, by default the failure threshold.
fn healthy_threshold(
    spec: &HealthCheckSpec,
    failure_threshold: u32,
    problems: &mut ObjectProblems<'_>,
) -> u32 {
    if spec.healthy_threshold.is_some()
        && matches!(spec.type_, HealthCheckType::Calculated | HealthCheckType::Endpoints)
    {
        problems.error(
            "spec.healthyThreshold",
            "only allowed for probed checks (HTTP, HTTPS, TCP): Calculated and Endpoints checks are not probed",
        );
    }
    match spec.healthy_threshold {
        None => failure_threshold,
        Some(n @ 1..=10) => n as u32,
        Some(n) => {
            problems.error("spec.healthyThreshold", format!("{n} is outside 1-10"));
            failure_threshold
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
    let http = matches!(spec.type_, HealthCheckType::Http | HealthCheckType::Https);
    for (field, present) in [
        ("spec.searchString", spec.search_string.is_some()),
        ("spec.expectedStatuses", spec.expected_statuses.is_some()),
        ("spec.headers", spec.headers.is_some()),
    ] {
        if present && !http {
            problems.error(field, "only allowed for HTTP and HTTPS checks");
        }
    }
    if spec.min_certificate_validity.is_some() && spec.type_ != HealthCheckType::Https {
        problems.error("spec.minCertificateValidity", "only allowed for HTTPS checks");
    }
    if spec.type_ != HealthCheckType::Grpc {
        if spec.grpc_service.is_some() {
            problems.error("spec.grpcService", "only allowed for GRPC checks");
        }
        if spec.tls.is_some() {
            problems.error("spec.tls", "only allowed for GRPC checks (HTTPS is its own type)");
        }
    }
}

/// A Service as the target: cluster mode only, and never beside an address.
fn service_ref_allowed(
    spec: &HealthCheckSpec,
    cluster_objects: bool,
    problems: &mut ObjectProblems<'_>,
) {
    if spec.service_ref.is_none() {
        if spec.min_healthy_endpoints.is_some() {
            problems.error("spec.minHealthyEndpoints", "only allowed with serviceRef");
        }
        return;
    }
    if !cluster_objects {
        problems.error(
            "spec.serviceRef",
            "a Service as the target works in cluster mode only (manifest files have no Services)",
        );
    }
    for (field, present) in [
        ("spec.ipAddress", spec.ip_address.is_some()),
        ("spec.fqdn", spec.fqdn.is_some()),
        ("spec.port", spec.port.is_some()),
    ] {
        if present {
            problems.error(
                field,
                "not allowed with serviceRef: the Service's endpoints are the target",
            );
        }
    }
    if spec.type_ == HealthCheckType::Calculated {
        problems.error("spec.serviceRef", "not allowed for type Calculated");
    }
}

/// An Endpoints check: the Service's ready endpoints, nothing probed.
fn endpoints_probe(spec: &HealthCheckSpec, problems: &mut ObjectProblems<'_>) -> Option<Probe> {
    if spec.resource_path.is_some() {
        problems.error("spec.resourcePath", "only allowed for HTTP and HTTPS checks");
    }
    let Some(service) = &spec.service_ref else {
        problems.error("spec.serviceRef", "required for type Endpoints");
        return None;
    };
    if service.port.is_some() {
        problems.error("spec.serviceRef.port", "not allowed for type Endpoints: nothing is probed");
    }
    let name = service.name.trim();
    if let Err(e) = service_name(name) {
        problems.error("spec.serviceRef.name", e);
        return None;
    }
    Some(Probe::Endpoints { service: Arc::from(name), min: min_healthy_endpoints(spec, problems) })
}

/// HTTP, HTTPS, GRPC or TCP against every ready endpoint of a Service.
fn service_probe(
    spec: &HealthCheckSpec,
    service: &crate::resources::ServiceRef,
    kind: HealthCheckType,
    problems: &mut ObjectProblems<'_>,
) -> Option<Probe> {
    let name = service.name.trim();
    if let Err(e) = service_name(name) {
        problems.error("spec.serviceRef.name", e);
        return None;
    }
    let port = match &service.port {
        None => None,
        Some(IntOrString::Int(n @ 1..=65535)) => Some(PortRef::Number(*n as u16)),
        Some(IntOrString::String(s)) if port_name(s) => Some(PortRef::Name(Arc::from(s.as_str()))),
        Some(other) => {
            problems.error(
                "spec.serviceRef.port",
                format!("{other:?} is neither a port number (1-65535) nor a port name"),
            );
            return None;
        }
    };
    let each = if kind == HealthCheckType::Tcp {
        Probe::Tcp { endpoint: Endpoint::Ip(IpAddr::from([0, 0, 0, 0])), port: 0 }
    } else {
        // Address and port are placeholders: `Probe::at` aims it at each endpoint.
        let template = HealthCheckSpec {
            ip_address: Some("0.0.0.0".into()),
            port: Some(1),
            service_ref: None,
            ..spec.clone()
        };
        network_probe(&template, kind, problems)?
    };
    Some(Probe::Service {
        service: Arc::from(name),
        port,
        min: min_healthy_endpoints(spec, problems),
        each: Box::new(each),
    })
}

/// An EndpointSlice port name: a DNS label of at most 63 characters.
fn port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn min_healthy_endpoints(spec: &HealthCheckSpec, problems: &mut ObjectProblems<'_>) -> u32 {
    match spec.min_healthy_endpoints {
        None => 1,
        Some(n @ 1..=10_000) => n as u32,
        Some(n) => {
            problems.error("spec.minHealthyEndpoints", format!("{n} is outside 1-10000"));
            1
        }
    }
}

/// A Service name (DNS-1035 label: no dots, a letter first).
pub(super) fn service_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let valid = (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid Service name (at most 63 lower-case letters, digits and '-', a letter first)"
        ))
    }
}

/// A Kubernetes object name (DNS subdomain: what Ingresses and Gateways take).
pub(super) fn object_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid object name (lower-case letters, digits, '-' and '.')"
        ))
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

/// An HTTP, HTTPS, GRPC or TCP probe; None (having reported why) without a valid endpoint.
fn network_probe(
    spec: &HealthCheckSpec,
    kind: HealthCheckType,
    problems: &mut ObjectProblems<'_>,
) -> Option<Probe> {
    if let Some(service) = &spec.service_ref {
        return service_probe(spec, service, kind, problems);
    }
    let endpoint = endpoint(spec, problems);
    let port = port(spec, kind, problems);
    if kind == HealthCheckType::Tcp {
        if spec.resource_path.is_some() {
            problems.error("spec.resourcePath", "only allowed for HTTP and HTTPS checks");
        }
        return Some(Probe::Tcp { endpoint: endpoint?, port });
    }
    if kind == HealthCheckType::Grpc {
        return grpc_probe(spec, endpoint?, port, problems);
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
    let options = http_options(spec, problems);
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
        options,
    })
}

/// The longest `minCertificateValidity`: ten years.
const MAX_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `expectedStatuses`, `headers` and `minCertificateValidity` (their types checked in
/// [`reject_fields_of_other_types`]); None when none is set.
fn http_options(
    spec: &HealthCheckSpec,
    problems: &mut ObjectProblems<'_>,
) -> Option<Arc<HttpOptions>> {
    let mut options = HttpOptions::default();
    if let Some(entries) = &spec.expected_statuses {
        if entries.is_empty() {
            problems.error("spec.expectedStatuses", "must list at least one status or range");
        }
        if entries.len() > http::MAX_EXPECTED_STATUSES {
            problems.error(
                "spec.expectedStatuses",
                format!("{} entries; at most {}", entries.len(), http::MAX_EXPECTED_STATUSES),
            );
        }
        let mut set = StatusSet::default();
        for (i, entry) in entries.iter().enumerate() {
            match StatusSet::parse_entry(entry) {
                Ok((low, high)) => set.insert(low, high),
                Err(e) => problems.error("spec.expectedStatuses", format!("entry {i}: {e}")),
            }
        }
        options.expected_statuses = Some(set);
    }
    if let Some(headers) = &spec.headers {
        match RequestHeaders::parse(headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
            Ok(parsed) => options.headers = parsed,
            Err(errors) => {
                for e in errors {
                    problems.error("spec.headers", e);
                }
            }
        }
    }
    if let Some(text) = &spec.min_certificate_validity {
        match parse_spec_duration(text) {
            Ok(d) if d.is_zero() => {
                problems.error("spec.minCertificateValidity", "must be greater than zero")
            }
            Ok(d) if d > MAX_CERTIFICATE_VALIDITY => problems.error(
                "spec.minCertificateValidity",
                format!("{text:?} is above the maximum of ten years (87600h)"),
            ),
            Ok(d) => options.min_certificate_validity = Some(d),
            Err(e) => problems.error("spec.minCertificateValidity", e),
        }
    }
    (!options.is_empty()).then(|| Arc::new(options))
}

/// A gRPC health probe: `resourcePath` means nothing to it; the service name is
/// what it asks about.
fn grpc_probe(
    spec: &HealthCheckSpec,
    endpoint: Endpoint,
    port: u16,
    problems: &mut ObjectProblems<'_>,
) -> Option<Probe> {
    if spec.resource_path.is_some() {
        problems.error("spec.resourcePath", "only allowed for HTTP and HTTPS checks");
    }
    let service = spec.grpc_service.clone().unwrap_or_default();
    if service.chars().count() > MAX_GRPC_SERVICE {
        problems.error(
            "spec.grpcService",
            format!("{} characters; at most {MAX_GRPC_SERVICE}", service.chars().count()),
        );
    }
    let authority = match (&spec.fqdn, &endpoint) {
        (Some(fqdn), _) => format!("{}:{port}", fqdn.trim_end_matches('.')),
        (None, Endpoint::Ip(ip)) => ip_authority(*ip, port),
        (None, Endpoint::Fqdn(f)) => format!("{f}:{port}"),
    };
    Some(Probe::Grpc {
        tls: spec.tls.unwrap_or(false),
        endpoint,
        port,
        authority,
        sni: spec.fqdn.as_ref().map(|f| f.trim_end_matches('.').to_string()),
        service,
    })
}

/// The port to probe: HTTP and HTTPS have defaults, TCP and GRPC require one.
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
            let kind = if kind == HealthCheckType::Grpc { "GRPC" } else { "TCP" };
            problems.error("spec.port", format!("required for {kind} checks"));
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
