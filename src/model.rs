//! The validated model: resources from any source (manifest files or the API server)
//! checked against the contract and turned into typed record sets and health checks.
//!
//! Validation never fails as a whole: every invalid object becomes a [`Problem`]
//! naming the object and the field, and everything valid is kept. Conflicts are
//! settled by age (`seq`): an object that conflicts with an older one is rejected,
//! so a newcomer can never displace what is already being served.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SRV, TXT};
use hickory_proto::rr::{Name, RData};
use serde::Serialize;

use crate::resources::{
    FailoverRecordSpec, FailoverRole, HealthCheckSpec, HealthCheckType, RecordType, RoutingPolicy,
};

pub const DEFAULT_TTL: u32 = 60;
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4);
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
pub const MAX_CHILDREN: usize = 256;
pub const MAX_SEARCH_STRING: usize = 255;

/// Namespace and name of a Kubernetes object (or of a manifest document).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A lowercase, absolute DNS name in presentation form (`www.example.com.`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Fqdn(String);

impl Fqdn {
    /// Parses a name as users write it: case-insensitive, trailing dot optional.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty name".into());
        }
        if text == "." {
            return Ok(Self(".".into()));
        }
        let absolute = if text.ends_with('.') { text.to_string() } else { format!("{text}.") };
        let name = Name::from_ascii(&absolute).map_err(|e| format!("invalid DNS name {text:?}: {e}"))?;
        if name.len() > 255 {
            return Err(format!("DNS name {text:?} is longer than 255 bytes"));
        }
        Ok(Self(name.to_lowercase().to_ascii()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn to_name(&self) -> Name {
        Name::from_ascii(&self.0).expect("an Fqdn is always a valid name")
    }

    /// True when `self` equals `zone` or lies below it.
    pub fn is_within(&self, zone: &Fqdn) -> bool {
        // Compared label by label: an escaped dot (`a\.b`) is not a label boundary.
        zone.to_name().zone_of(&self.to_name())
    }

    /// The parent names of `self` strictly below `zone`, nearest first.
    pub fn ancestors_below(&self, zone: &Fqdn) -> Vec<Fqdn> {
        let zone = zone.to_name();
        let mut name = self.to_name();
        let mut out = Vec::new();
        while name.num_labels() > zone.num_labels() + 1 {
            name = name.base_name();
            out.push(Fqdn(name.to_ascii()));
        }
        out
    }
}

impl fmt::Display for Fqdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One object as a source hands it over.
#[derive(Clone, Debug)]
pub struct Input<S> {
    pub id: ObjectRef,
    /// Age order: lower is older. Conflicts are settled in favour of the older object.
    pub seq: u64,
    /// The manifest file it came from, when it came from one.
    pub file: Option<String>,
    pub generation: Option<i64>,
    pub spec: S,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    FailoverRecord,
    HealthCheck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object is rejected and not served.
    Error,
    /// The object is served, but something about it needs attention.
    Warning,
}

/// Why an object (or one of its fields) was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub kind: Kind,
    pub object: ObjectRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        write!(f, "{:?} {}: {}: {}", self.kind, self.object, self.field, self.message)
    }
}

// ---------------------------------------------------------------- health checks

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Endpoint {
    Ip(IpAddr),
    /// Resolved on every probe.
    Fqdn(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type")]
pub enum Probe {
    Http {
        tls: bool,
        endpoint: Endpoint,
        port: u16,
        path: String,
        /// Host header: fqdn (or the IP) with `:port` unless it is the scheme's default.
        host_header: String,
        /// TLS server name, sent only when `fqdn` is set.
        sni: Option<String>,
        search_string: Option<String>,
    },
    Tcp {
        endpoint: Endpoint,
        port: u16,
    },
    Calculated {
        children: Vec<String>,
        health_threshold: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub id: ObjectRef,
    pub probe: Probe,
    #[serde(with = "duration_ms")]
    pub interval: Duration,
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub inverted: bool,
    pub disabled: bool,
}

impl Check {
    /// The state of a check before its first verdict.
    pub fn initial_healthy(&self) -> bool {
        self.disabled || !self.inverted
    }

    pub fn is_calculated(&self) -> bool {
        matches!(self.probe, Probe::Calculated { .. })
    }
}

mod duration_ms {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

/// Parses `10s`, `500ms`, `1m30s`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

// ---------------------------------------------------------------- record sets

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Policy {
    Simple,
    Weighted(u8),
    Failover(FailoverRole),
    MultiValue,
}

impl Policy {
    pub fn routing_policy(self) -> RoutingPolicy {
        match self {
            Policy::Simple => RoutingPolicy::Simple,
            Policy::Weighted(_) => RoutingPolicy::Weighted,
            Policy::Failover(_) => RoutingPolicy::Failover,
            Policy::MultiValue => RoutingPolicy::MultiValue,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RecordData {
    Values(Vec<RData>),
    Alias { target: Fqdn, evaluate_target_health: bool },
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordSet {
    pub id: ObjectRef,
    pub seq: u64,
    pub name: Fqdn,
    pub rtype: RecordType,
    pub ttl: u32,
    pub policy: Policy,
    pub set_identifier: Option<String>,
    /// The referenced check, when one was named (it may not exist: see `Model::checks`).
    pub health_check: Option<ObjectRef>,
    pub data: RecordData,
}

impl RecordSet {
    pub fn alias(&self) -> Option<(&Fqdn, bool)> {
        match &self.data {
            RecordData::Alias { target, evaluate_target_health } => Some((target, *evaluate_target_health)),
            RecordData::Values(_) => None,
        }
    }
}

pub type Key = (Fqdn, RecordType);

/// Everything that is valid, ready for the routing engine.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Served zones, longest first so the first match is the closest enclosing zone.
    pub zones: Vec<Fqdn>,
    /// Shared with the prober, so each check exists once however many layers hold it.
    pub checks: BTreeMap<ObjectRef, Arc<Check>>,
    /// Record sets of one name and type, oldest first.
    pub sets: BTreeMap<Key, Vec<RecordSet>>,
    /// Errors (rejected objects) and warnings, sorted.
    pub problems: Vec<Problem>,
}

impl Model {
    pub fn zone_of(&self, name: &Fqdn) -> Option<&Fqdn> {
        self.zones.iter().find(|z| name.is_within(z))
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.severity == Severity::Error)
    }
}

/// Validates every object and builds the model of what can be served.
pub fn validate(
    zones: &[Fqdn],
    checks: &[Input<HealthCheckSpec>],
    records: &[Input<FailoverRecordSpec>],
) -> Model {
    let mut zones = zones.to_vec();
    zones.sort_by(|a, b| b.as_str().len().cmp(&a.as_str().len()).then_with(|| a.cmp(b)));
    zones.dedup();
    let mut model = Model { zones, ..Model::default() };
    let mut problems = Problems::default();

    for input in checks {
        let mut p = problems.scope(Kind::HealthCheck, input);
        if let Some(check) = validate_check(input, &mut p) {
            model.checks.insert(check.id.clone(), Arc::new(check));
        }
    }
    validate_children(&mut model.checks, checks, &mut problems);

    let mut ordered: Vec<&Input<FailoverRecordSpec>> = records.iter().collect();
    ordered.sort_by(|a, b| (a.seq, &a.id).cmp(&(b.seq, &b.id)));
    let mut candidates: Vec<(RecordSet, &Input<FailoverRecordSpec>)> = Vec::new();
    for input in ordered {
        let mut p = problems.scope(Kind::FailoverRecord, input);
        let Some(set) = validate_record(&model, input, &mut p) else { continue };
        if let Some(check) = &set.health_check
            && !model.checks.contains_key(check)
        {
            p.warning(
                "spec.healthCheckName",
                format!("HealthCheck {check} does not exist (or is invalid); the record counts as unhealthy"),
            );
        }
        candidates.push((set, input));
    }

    // A structural rejection (orphaned SECONDARY, dangling or cycle-closing alias) can
    // free a name + type that a younger record set was turned away from, so conflicts
    // are settled again until nothing more is rejected.
    let mut rejected: HashMap<ObjectRef, (&'static str, String)> = HashMap::new();
    let (accepted, conflicts) = loop {
        let mut accepted: Vec<&RecordSet> = Vec::new();
        let mut conflicts = Vec::new();
        for (set, input) in candidates.iter().filter(|(s, _)| !rejected.contains_key(&s.id)) {
            match conflict_with(set, accepted.iter().copied()) {
                Some(conflict) => conflicts.push((*input, conflict)),
                None => accepted.push(set),
            }
        }
        let structural = structural_problems(&accepted);
        if structural.is_empty() {
            break (accepted.into_iter().map(|s| s.id.clone()).collect::<BTreeSet<_>>(), conflicts);
        }
        rejected.extend(structural);
    };
    for (input, (field, message)) in conflicts {
        problems.scope(Kind::FailoverRecord, input).error(field, message);
    }
    for (set, input) in candidates {
        if let Some((field, message)) = rejected.remove(&set.id) {
            problems.scope(Kind::FailoverRecord, input).error(field, message);
        } else if accepted.contains(&set.id) {
            model.sets.entry((set.name.clone(), set.rtype)).or_default().push(set);
        }
    }
    model.problems = problems.into_sorted();
    model
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn scope<'a, S>(&'a mut self, kind: Kind, input: &'a Input<S>) -> Scope<'a> {
        Scope { all: self, kind, object: &input.id, file: input.file.as_deref() }
    }

    fn into_sorted(mut self) -> Vec<Problem> {
        self.0.sort();
        self.0.dedup();
        self.0
    }
}

struct Scope<'a> {
    all: &'a mut Problems,
    kind: Kind,
    object: &'a ObjectRef,
    file: Option<&'a str>,
}

impl Scope<'_> {
    fn push(&mut self, severity: Severity, field: &str, message: String) {
        self.all.0.push(Problem {
            severity,
            kind: self.kind,
            object: self.object.clone(),
            file: self.file.map(str::to_string),
            field: field.to_string(),
            message,
        });
    }

    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Error, field, message.into());
    }

    /// Whether an error was reported after the problem count was `before`.
    fn errors_since(&self, before: usize) -> bool {
        self.all.0[before..].iter().any(|p| p.severity == Severity::Error)
    }

    fn warning(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Warning, field, message.into());
    }
}

fn validate_check(input: &Input<HealthCheckSpec>, p: &mut Scope<'_>) -> Option<Check> {
    let spec = &input.spec;
    let before = p.all.0.len();
    let interval = match spec.request_interval.as_deref().map(parse_duration) {
        None => DEFAULT_INTERVAL,
        Some(Ok(d)) if d < MIN_INTERVAL => {
            p.error("spec.requestInterval", format!("{d:?} is below the minimum of 100ms"));
            MIN_INTERVAL
        }
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.error("spec.requestInterval", e);
            DEFAULT_INTERVAL
        }
    };
    // The timeout always leaves room before the next probe of the same check.
    let timeout_cap = interval.mul_f64(0.9);
    let timeout = match spec.timeout.as_deref().map(parse_duration) {
        None => DEFAULT_TIMEOUT.min(timeout_cap),
        Some(Ok(d)) if d.is_zero() => {
            p.error("spec.timeout", "must be greater than zero");
            timeout_cap
        }
        Some(Ok(d)) => d.min(timeout_cap),
        Some(Err(e)) => {
            p.error("spec.timeout", e);
            timeout_cap
        }
    };
    let failure_threshold = match spec.failure_threshold {
        None => DEFAULT_FAILURE_THRESHOLD,
        Some(n @ 1..=10) => n as u32,
        Some(n) => {
            p.error("spec.failureThreshold", format!("{n} is outside 1-10"));
            DEFAULT_FAILURE_THRESHOLD
        }
    };
    let is_calculated = spec.type_ == HealthCheckType::Calculated;
    if !is_calculated {
        if spec.child_health_checks.is_some() {
            p.error("spec.childHealthChecks", "only allowed for type Calculated");
        }
        if spec.health_threshold.is_some() {
            p.error("spec.healthThreshold", "only allowed for type Calculated");
        }
    }
    if spec.search_string.is_some() && !matches!(spec.type_, HealthCheckType::Http | HealthCheckType::Https) {
        p.error("spec.searchString", "only allowed for HTTP and HTTPS checks");
    }
    let probe = match spec.type_ {
        HealthCheckType::Calculated => {
            for (field, present) in [
                ("spec.ipAddress", spec.ip_address.is_some()),
                ("spec.fqdn", spec.fqdn.is_some()),
                ("spec.port", spec.port.is_some()),
                ("spec.resourcePath", spec.resource_path.is_some()),
            ] {
                if present {
                    p.error(field, "not allowed for type Calculated");
                }
            }
            let children = spec.child_health_checks.clone().unwrap_or_default();
            if children.len() > MAX_CHILDREN {
                p.error("spec.childHealthChecks", format!("{} children; at most {MAX_CHILDREN}", children.len()));
            }
            let mut seen = BTreeSet::new();
            for (i, child) in children.iter().enumerate() {
                if !seen.insert(child) {
                    p.error(&format!("spec.childHealthChecks[{i}]"), format!("{child:?} is listed twice"));
                }
            }
            let health_threshold = match spec.health_threshold {
                Some(n @ 0..=256) => n as u32,
                Some(n) => {
                    p.error("spec.healthThreshold", format!("{n} is outside 0-256"));
                    0
                }
                None => {
                    p.error("spec.healthThreshold", "required for type Calculated");
                    0
                }
            };
            Probe::Calculated { children, health_threshold }
        }
        kind => {
            let endpoint = endpoint(spec, p);
            let default_port = match kind {
                HealthCheckType::Http => Some(80),
                HealthCheckType::Https => Some(443),
                _ => None,
            };
            let port = match (spec.port, default_port) {
                (Some(n @ 1..=65535), _) => n as u16,
                (Some(n), d) => {
                    p.error("spec.port", format!("{n} is outside 1-65535"));
                    d.unwrap_or(1)
                }
                (None, Some(d)) => d,
                (None, None) => {
                    p.error("spec.port", "required for TCP checks");
                    1
                }
            };
            if kind == HealthCheckType::Tcp {
                if spec.resource_path.is_some() {
                    p.error("spec.resourcePath", "only allowed for HTTP and HTTPS checks");
                }
                Probe::Tcp { endpoint: endpoint?, port }
            } else {
                let tls = kind == HealthCheckType::Https;
                let mut path = spec.resource_path.clone().unwrap_or_else(|| "/".into());
                if !path.starts_with('/') {
                    path.insert(0, '/');
                }
                if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    p.error("spec.resourcePath", "must not contain whitespace or control characters");
                }
                if let Some(s) = &spec.search_string
                    && (s.is_empty() || s.chars().count() > MAX_SEARCH_STRING)
                {
                    p.error("spec.searchString", "must be 1 to 255 characters");
                }
                let endpoint = endpoint?;
                let host = match (&spec.fqdn, &endpoint) {
                    (Some(fqdn), _) => fqdn.trim_end_matches('.').to_string(),
                    (None, Endpoint::Ip(IpAddr::V6(ip))) => format!("[{ip}]"),
                    (None, Endpoint::Ip(ip)) => ip.to_string(),
                    (None, Endpoint::Fqdn(f)) => f.clone(),
                };
                let default = if tls { 443 } else { 80 };
                let host_header = if port == default { host } else { format!("{host}:{port}") };
                Probe::Http {
                    tls,
                    endpoint,
                    port,
                    path,
                    host_header,
                    sni: spec.fqdn.as_ref().map(|f| f.trim_end_matches('.').to_string()),
                    search_string: spec.search_string.clone(),
                }
            }
        }
    };
    if p.errors_since(before) {
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

fn endpoint(spec: &HealthCheckSpec, p: &mut Scope<'_>) -> Option<Endpoint> {
    if let Some(fqdn) = &spec.fqdn
        && let Err(e) = Fqdn::parse(fqdn)
    {
        p.error("spec.fqdn", e);
        return None;
    }
    match (&spec.ip_address, &spec.fqdn) {
        (Some(ip), _) => match ip.trim().parse::<IpAddr>() {
            Ok(ip) => Some(Endpoint::Ip(ip)),
            Err(_) => {
                p.error("spec.ipAddress", format!("{ip:?} is not an IPv4 or IPv6 address"));
                None
            }
        },
        (None, Some(fqdn)) => Some(Endpoint::Fqdn(fqdn.trim_end_matches('.').to_string())),
        (None, None) => {
            p.error("spec.ipAddress", "either ipAddress or fqdn is required");
            None
        }
    }
}

/// Calculated children must exist and must not be Calculated themselves.
fn validate_children(
    checks: &mut BTreeMap<ObjectRef, Arc<Check>>,
    inputs: &[Input<HealthCheckSpec>],
    problems: &mut Problems,
) {
    let mut rejected = Vec::new();
    for input in inputs {
        let Some(check) = checks.get(&input.id) else { continue };
        let Probe::Calculated { children, .. } = &check.probe else { continue };
        let mut p = problems.scope(Kind::HealthCheck, input);
        for (i, child) in children.iter().enumerate() {
            let id = ObjectRef::new(&input.id.namespace, child);
            match checks.get(&id) {
                Some(c) if c.is_calculated() => {
                    p.error(&format!("spec.childHealthChecks[{i}]"), format!("{id} is Calculated; children may not be"));
                    rejected.push(input.id.clone());
                }
                Some(_) => {}
                None => p.warning(
                    &format!("spec.childHealthChecks[{i}]"),
                    format!("HealthCheck {id} does not exist (or is invalid); it counts as unhealthy"),
                ),
            }
        }
    }
    for id in rejected {
        checks.remove(&id);
    }
}

fn validate_record(model: &Model, input: &Input<FailoverRecordSpec>, p: &mut Scope<'_>) -> Option<RecordSet> {
    let spec = &input.spec;
    let before = p.all.0.len();
    let name = match Fqdn::parse(&spec.name) {
        Ok(name) if model.zone_of(&name).is_none() => {
            p.error("spec.name", format!("{name} is not inside any served zone ({})", zone_list(model)));
            None
        }
        Ok(name) => Some(name),
        Err(e) => {
            p.error("spec.name", e);
            None
        }
    };
    let rtype = spec.type_;
    let ttl = match spec.ttl {
        None => DEFAULT_TTL,
        Some(t @ 0..=0x7fff_ffff) => t as u32,
        Some(t) => {
            p.error("spec.ttl", format!("{t} is outside 0-2147483647"));
            DEFAULT_TTL
        }
    };
    let policy_kind = spec.routing_policy.unwrap_or_default();
    let policy = match policy_kind {
        RoutingPolicy::Simple => Policy::Simple,
        RoutingPolicy::MultiValue => Policy::MultiValue,
        RoutingPolicy::Weighted => match spec.weight {
            Some(w @ 0..=255) => Policy::Weighted(w as u8),
            Some(w) => {
                p.error("spec.weight", format!("{w} is outside 0-255"));
                Policy::Weighted(0)
            }
            None => {
                p.error("spec.weight", "required for Weighted routing");
                Policy::Weighted(0)
            }
        },
        RoutingPolicy::Failover => match spec.failover {
            Some(role) => Policy::Failover(role),
            None => {
                p.error("spec.failover", "required for Failover routing (PRIMARY or SECONDARY)");
                Policy::Failover(FailoverRole::Primary)
            }
        },
    };
    if spec.weight.is_some() && policy_kind != RoutingPolicy::Weighted {
        p.error("spec.weight", "only allowed with Weighted routing");
    }
    if spec.failover.is_some() && policy_kind != RoutingPolicy::Failover {
        p.error("spec.failover", "only allowed with Failover routing");
    }
    let set_identifier = spec.set_identifier.as_ref().map(|s| s.trim().to_string());
    match (&set_identifier, policy_kind) {
        (Some(s), RoutingPolicy::Simple) if !s.is_empty() => {
            p.error("spec.setIdentifier", "not allowed with Simple routing")
        }
        (None, kind) if kind != RoutingPolicy::Simple => {
            p.error("spec.setIdentifier", format!("required for {kind:?} routing"))
        }
        (Some(s), kind) if s.is_empty() && kind != RoutingPolicy::Simple => {
            p.error("spec.setIdentifier", "must not be empty")
        }
        (Some(s), _) if s.len() > 128 => p.error("spec.setIdentifier", "longer than 128 characters"),
        _ => {}
    }
    let health_check = spec.health_check_name.as_ref().map(|n| ObjectRef::new(&input.id.namespace, n.trim()));
    let data = match (&spec.values, &spec.alias_target) {
        (Some(_), Some(_)) => {
            p.error("spec.aliasTarget", "exactly one of values and aliasTarget may be set");
            None
        }
        (None, None) => {
            p.error("spec.values", "exactly one of values and aliasTarget is required");
            None
        }
        (Some(values), None) => parse_values(rtype, values, p).map(RecordData::Values),
        (None, Some(alias)) => match Fqdn::parse(&alias.name) {
            Ok(target) if model.zone_of(&target).is_none() => {
                p.error("spec.aliasTarget.name", format!("{target} is not inside any served zone ({})", zone_list(model)));
                None
            }
            Ok(target) => {
                if policy_kind == RoutingPolicy::MultiValue {
                    p.error("spec.aliasTarget", "MultiValue records cannot be aliases");
                }
                if spec.ttl.is_some() {
                    p.warning("spec.ttl", "ignored for alias records: answers carry the target's TTL");
                }
                Some(RecordData::Alias { target, evaluate_target_health: alias.evaluate_target_health })
            }
            Err(e) => {
                p.error("spec.aliasTarget.name", e);
                None
            }
        },
    };
    if rtype == RecordType::Cname && policy_kind == RoutingPolicy::MultiValue {
        p.error("spec.type", "MultiValue records cannot be CNAME");
    }
    if let Some(name) = &name
        && rtype == RecordType::Cname
        && model.zones.contains(name)
    {
        p.error("spec.name", format!("a CNAME cannot be at the zone apex {name}"));
    }
    if p.errors_since(before) {
        return None;
    }
    Some(RecordSet {
        id: input.id.clone(),
        seq: input.seq,
        name: name?,
        rtype,
        ttl,
        policy,
        set_identifier,
        health_check,
        data: data?,
    })
}

fn zone_list(model: &Model) -> String {
    let zones: Vec<&str> = model.zones.iter().map(Fqdn::as_str).collect();
    if zones.is_empty() { "no zones are configured".into() } else { format!("zones: {}", zones.join(", ")) }
}

/// The first conflict of `set` with already accepted (older) record sets.
fn conflict_with<'a>(set: &RecordSet, accepted: impl Iterator<Item = &'a RecordSet>) -> Option<(&'static str, String)> {
    for other in accepted.filter(|o| o.name == set.name) {
        let who = &other.id;
        if other.rtype == RecordType::Cname && set.rtype != RecordType::Cname {
            return Some(("spec.type", format!("{} already has a CNAME ({who}); a CNAME cannot share its name", set.name)));
        }
        if set.rtype == RecordType::Cname && other.rtype != RecordType::Cname {
            return Some((
                "spec.type",
                format!("{} already has {:?} records ({who}); a CNAME cannot share its name", set.name, other.rtype),
            ));
        }
        if other.rtype != set.rtype {
            continue;
        }
        let (mine, theirs) = (set.policy.routing_policy(), other.policy.routing_policy());
        if mine != theirs {
            return Some((
                "spec.routingPolicy",
                format!("{mine:?} conflicts with {theirs:?} record set {who} for {} {:?}", set.name, set.rtype),
            ));
        }
        if mine == RoutingPolicy::Simple {
            return Some(("spec.name", format!("{} {:?} already has a Simple record set ({who})", set.name, set.rtype)));
        }
        if set.set_identifier == other.set_identifier {
            return Some((
                "spec.setIdentifier",
                format!("{:?} is already used by {who} for {} {:?}", set.set_identifier.as_deref().unwrap_or(""), set.name, set.rtype),
            ));
        }
        if let (Policy::Failover(a), Policy::Failover(b)) = (set.policy, other.policy)
            && a == b
        {
            return Some(("spec.failover", format!("{} {:?} already has a {a:?} record set ({who})", set.name, set.rtype)));
        }
    }
    None
}

/// Record sets that cannot be served even though nothing older conflicts with them:
/// a SECONDARY without its PRIMARY, an alias whose target has no record set of its
/// type, and an alias that would close a cycle (the younger alias is the one at fault).
fn structural_problems(accepted: &[&RecordSet]) -> Vec<(ObjectRef, (&'static str, String))> {
    let mut out = Vec::new();
    let present: BTreeSet<(&Fqdn, RecordType)> = accepted.iter().map(|s| (&s.name, s.rtype)).collect();
    let has_primary: BTreeSet<(&Fqdn, RecordType)> = accepted
        .iter()
        .filter(|s| s.policy == Policy::Failover(FailoverRole::Primary))
        .map(|s| (&s.name, s.rtype))
        .collect();
    let mut edges: BTreeMap<Key, BTreeSet<Key>> = BTreeMap::new();
    for set in accepted {
        if set.policy == Policy::Failover(FailoverRole::Secondary) && !has_primary.contains(&(&set.name, set.rtype)) {
            let message = format!("{} {:?} has a SECONDARY but no PRIMARY record set", set.name, set.rtype);
            out.push((set.id.clone(), ("spec.failover", message)));
            continue;
        }
        let Some((target, _)) = set.alias() else { continue };
        if !present.contains(&(target, set.rtype)) {
            let message = format!("no {:?} record set exists at {target}", set.rtype);
            out.push((set.id.clone(), ("spec.aliasTarget.name", message)));
            continue;
        }
        let (from, to) = ((set.name.clone(), set.rtype), (target.clone(), set.rtype));
        if reaches(&edges, &to, &from) {
            let message = format!("{target} leads back to {} through aliases: a cycle", set.name);
            out.push((set.id.clone(), ("spec.aliasTarget.name", message)));
            continue;
        }
        edges.entry(from).or_default().insert(to);
    }
    out
}

/// True when `to` can be reached from `from` along alias edges (or is `from`).
fn reaches(edges: &BTreeMap<Key, BTreeSet<Key>>, from: &Key, to: &Key) -> bool {
    let mut stack = vec![from];
    let mut seen = BTreeSet::new();
    while let Some(k) = stack.pop() {
        if k == to {
            return true;
        }
        if seen.insert(k) {
            stack.extend(edges.get(k).into_iter().flatten());
        }
    }
    false
}

// ---------------------------------------------------------------- record data

fn parse_values(rtype: RecordType, values: &[String], p: &mut Scope<'_>) -> Option<Vec<RData>> {
    if values.is_empty() {
        p.error("spec.values", "must not be empty");
        return None;
    }
    if rtype == RecordType::Cname && values.len() != 1 {
        p.error("spec.values", "a CNAME has exactly one value");
        return None;
    }
    let mut out = Vec::with_capacity(values.len());
    let mut ok = true;
    for (i, value) in values.iter().enumerate() {
        match parse_rdata(rtype, value) {
            Ok(rdata) => {
                if out.contains(&rdata) {
                    p.error(&format!("spec.values[{i}]"), format!("{value:?} is listed twice"));
                    ok = false;
                }
                out.push(rdata)
            }
            Err(e) => {
                p.error(&format!("spec.values[{i}]"), e);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Parses one value in presentation format for the given type.
pub fn parse_rdata(rtype: RecordType, value: &str) -> Result<RData, String> {
    let text = value.trim();
    let target = |t: &str| Fqdn::parse(t).map(|f| f.to_name());
    match rtype {
        RecordType::A => text
            .parse::<Ipv4Addr>()
            .map(|ip| RData::A(A(ip)))
            .map_err(|_| format!("{value:?} is not an IPv4 address")),
        RecordType::Aaaa => text
            .parse::<Ipv6Addr>()
            .map(|ip| RData::AAAA(AAAA(ip)))
            .map_err(|_| format!("{value:?} is not an IPv6 address")),
        RecordType::Cname => target(text).map(|n| RData::CNAME(CNAME(n))),
        RecordType::Txt => parse_txt(text).map(|strings| RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))),
        RecordType::Mx => {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let [pref, exchange] = fields[..] else {
                return Err(format!("{value:?}: an MX value is \"PREFERENCE EXCHANGE\""));
            };
            let pref = pref.parse::<u16>().map_err(|_| format!("{value:?}: preference {pref:?} is not 0-65535"))?;
            Ok(RData::MX(MX::new(pref, target(exchange)?)))
        }
        RecordType::Srv => {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let [prio, weight, port, host] = fields[..] else {
                return Err(format!("{value:?}: an SRV value is \"PRIORITY WEIGHT PORT TARGET\""));
            };
            let num = |what: &str, s: &str| s.parse::<u16>().map_err(|_| format!("{value:?}: {what} {s:?} is not 0-65535"));
            Ok(RData::SRV(SRV::new(num("priority", prio)?, num("weight", weight)?, num("port", port)?, target(host)?)))
        }
    }
}

/// TXT presentation format: one or more strings, quoted (with `\"`, `\\`, `\DDD`
/// escapes) or bare. Strings longer than 255 bytes are split, as DNS requires.
pub fn parse_txt(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let bytes = text.as_bytes();
    let mut strings = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let quoted = bytes[i] == b'"';
        if quoted {
            i += 1;
        }
        let mut current = Vec::new();
        let mut closed = !quoted;
        while i < bytes.len() {
            let b = bytes[i];
            if quoted && b == b'"' {
                closed = true;
                i += 1;
                break;
            }
            if !quoted && b.is_ascii_whitespace() {
                break;
            }
            if b == b'\\' {
                let rest = &bytes[i + 1..];
                if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                    let n: u32 = std::str::from_utf8(&rest[..3]).unwrap().parse().unwrap();
                    let byte = u8::try_from(n).map_err(|_| format!("escape \\{n} is above 255"))?;
                    current.push(byte);
                    i += 4;
                } else if let Some(&c) = rest.first() {
                    current.push(c);
                    i += 2;
                } else {
                    return Err("a TXT value ends with a lone backslash".into());
                }
                continue;
            }
            current.push(b);
            i += 1;
        }
        if !closed {
            return Err(format!("unterminated quote in TXT value {text:?}"));
        }
        if current.is_empty() {
            strings.push(current);
        } else {
            strings.extend(current.chunks(255).map(<[u8]>::to_vec));
        }
    }
    if strings.is_empty() {
        return Err("a TXT value needs at least one string".into());
    }
    if strings.iter().map(|s| s.len() + 1).sum::<usize>() > 65000 {
        return Err("TXT value is too long".into());
    }
    Ok(strings)
}
