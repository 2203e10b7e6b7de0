//! The validated model: resources from any source (manifest files or the API server)
//! checked against the contract and turned into typed record sets and health checks.
//!
//! Validation never fails as a whole: every invalid object becomes a [`Problem`]
//! naming the object and the field, and everything valid is kept. Conflicts are
//! settled by age (`seq`): an object that conflicts with an older one is rejected,
//! so a newcomer can never displace what is already being served.
//!
//! * [`check`] and [`record`] validate one object on its own, once per change.
//! * [`conflicts`] settles the record sets of one name (or one alias cycle) by age.
//! * [`index`] keeps the [`Model`] and its indexes up to date one [`Change`] at a time;
//!   [`validate`] is the same from scratch.
//! * [`settle`] re-settles only what a change can affect: the names whose record sets
//!   it touched, the Calculated checks that list a changed check, and the records that
//!   name one.

mod check;
mod conflicts;
pub mod delegation;
mod http;
mod index;
pub mod objects;
mod record;
mod settle;
mod values_from;

pub use crate::terms::{FailoverRole, HealthCheckType, RecordType, RoutingPolicy};
pub use conflicts::{NOT_DELEGATED_PREFIX, OWNED_ELSEWHERE_FIELD};
pub use http::{HttpOptions, RESERVED_HEADERS, RequestHeaders, StatusSet};
pub use index::{Applied, Change, FxIndexMap, Model, Sets};
pub use record::{parse_rdata, parse_txt};

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::binary::{
    BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};
use serde::Serialize;

use crate::resources::{FailoverRecordSpec, HealthCheckSpec};

pub const DEFAULT_TTL: u32 = 60;
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// A check probed less often than this could stay pending (healthy) for days.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4);
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
pub const MAX_CHILDREN: usize = 256;
pub const MAX_SEARCH_STRING: usize = 255;
/// Longest `grpcService` (gRPC service names are `package.Service`).
pub const MAX_GRPC_SERVICE: usize = 255;

/// Namespace and name of a Kubernetes object (or of a manifest document). Cheap to
/// clone: every layer that refers to an object shares the same strings, and each
/// namespace's name exists once.
#[derive(Clone, Debug, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjectRef {
    pub fn new(namespace: impl AsRef<str>, name: impl AsRef<str>) -> Self {
        Self { namespace: intern_namespace(namespace.as_ref()), name: Arc::from(name.as_ref()) }
    }

    /// Another object of the same namespace.
    pub fn sibling(&self, name: impl AsRef<str>) -> Self {
        Self { namespace: self.namespace.clone(), name: Arc::from(name.as_ref()) }
    }
}

// Equal references hash alike: both hash the strings, whoever shares them.
impl std::hash::Hash for ObjectRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.namespace.hash(state);
        self.name.hash(state);
    }
}

impl PartialEq for ObjectRef {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || a == b;
        same(&self.name, &other.name) && same(&self.namespace, &other.namespace)
    }
}

/// Namespaces are few and named by every object: keep one copy of each.
fn intern_namespace(namespace: &str) -> Arc<str> {
    static NAMESPACES: std::sync::Mutex<Vec<Arc<str>>> = std::sync::Mutex::new(Vec::new());
    let mut known = NAMESPACES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = known.iter().find(|n| &***n == namespace) {
        return found.clone();
    }
    let interned: Arc<str> = Arc::from(namespace);
    // Bounded: a cluster with very many namespaces only loses the sharing.
    if known.len() < 4096 {
        known.push(interned.clone());
    }
    interned
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A lowercase, absolute DNS name in presentation form (`www.example.com.`). Clones
/// share the string.
#[derive(Clone, Debug, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Fqdn(Arc<str>);

impl std::hash::Hash for Fqdn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Fqdn {
    fn eq(&self, other: &Self) -> bool {
        // Most comparisons are between clones of one name.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Fqdn {
    /// Parses a name as users write it: case-insensitive, trailing dot optional.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty name".into());
        }
        if text == "." {
            return Ok(Self(Arc::from(".")));
        }
        if let Some(plain) = Self::parse_plain(text) {
            return Ok(plain);
        }
        let absolute = if text.ends_with('.') { text.to_string() } else { format!("{text}.") };
        let name =
            Name::from_ascii(&absolute).map_err(|e| format!("invalid DNS name {text:?}: {e}"))?;
        if name.len() > 255 {
            return Err(format!("DNS name {text:?} is longer than 255 bytes"));
        }
        Ok(Self(Arc::from(name.to_lowercase().to_ascii())))
    }

    /// The common case without hickory's parser (three allocations per name): labels
    /// of letters, digits, `_` and inner `-`, which hickory accepts and prints as they
    /// are, lowercased. Anything else (escapes, long names) takes the full path.
    fn parse_plain(text: &str) -> Option<Self> {
        let relative = text.strip_suffix('.').unwrap_or(text);
        // Wire length at most 255 (and so hickory's checks pass) with room to spare.
        if relative.is_empty() || relative.len() > 250 {
            return None;
        }
        for label in relative.split('.') {
            let bytes = label.as_bytes();
            let ok = !bytes.is_empty()
                && bytes.len() <= 63
                && bytes[0] != b'-'
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
            if !ok {
                return None;
            }
        }
        let mut out = String::with_capacity(relative.len() + 1);
        out.push_str(relative);
        out.make_ascii_lowercase();
        out.push('.');
        Some(Self(Arc::from(out)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn to_name(&self) -> Name {
        Name::from_ascii(&self.0).expect("an Fqdn is always a valid name")
    }

    /// True when `self` equals `zone` or lies below it.
    pub fn is_within(&self, zone: &Fqdn) -> bool {
        let (name, zone_text) = (self.as_str(), zone.as_str());
        if name.contains('\\') || zone_text.contains('\\') {
            // Compared label by label: an escaped dot (`a\.b`) is not a label boundary.
            return zone.to_name().zone_of(&self.to_name());
        }
        zone_text == "."
            || name == zone_text
            || (name.len() > zone_text.len()
                && name.ends_with(zone_text)
                && name.as_bytes()[name.len() - zone_text.len() - 1] == b'.')
    }

    /// The parent names of `self` strictly below `zone`, nearest first.
    pub fn ancestors_below(&self, zone: &Fqdn) -> Vec<Fqdn> {
        let name = self.as_str();
        if name.contains('\\') || zone.as_str().contains('\\') {
            let zone = zone.to_name();
            let mut name = self.to_name();
            let mut out = Vec::new();
            while name.num_labels() > zone.num_labels() + 1 {
                name = name.base_name();
                out.push(Fqdn(Arc::from(name.to_ascii())));
            }
            return out;
        }
        let zone_len = if zone.as_str() == "." { 0 } else { zone.as_str().len() };
        let mut out = Vec::new();
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.len() <= zone_len {
                break;
            }
            out.push(Fqdn(Arc::from(parent)));
            rest = parent;
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
    /// The manifest file it came from, when it came from one (shared by its objects).
    pub file: Option<Arc<str>>,
    pub generation: Option<i64>,
    pub spec: S,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    FailoverRecord,
    HealthCheck,
}

impl Kind {
    /// The resource kind's name, as the API and manifests spell it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::HealthCheck => "HealthCheck",
            Kind::FailoverRecord => "FailoverRecord",
        }
    }
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
        /// The options beyond Route 53's ([`HttpOptions`]); None when the check
        /// sets none of them.
        options: Option<Arc<HttpOptions>>,
    },
    Tcp {
        endpoint: Endpoint,
        port: u16,
    },
    /// `grpc.health.v1.Health/Check` over HTTP/2 (cleartext, or TLS when `tls`).
    Grpc {
        tls: bool,
        endpoint: Endpoint,
        port: u16,
        /// The `:authority`: fqdn (or the IP) and the port, always (gRPC has no
        /// default port).
        authority: String,
        /// TLS server name, sent only when `fqdn` is set.
        sni: Option<String>,
        /// The service asked about; empty: the whole server.
        service: String,
    },
    Calculated {
        children: Vec<String>,
        health_threshold: u32,
    },
    /// No probing: healthy while the Service (same namespace) has at least `min`
    /// ready endpoints (cluster mode).
    Endpoints {
        service: Arc<str>,
        min: u32,
    },
    /// Every ready endpoint of the Service probed with `each` (an HTTP, GRPC or TCP probe
    /// whose address and port are the endpoint's), each with its own threshold state;
    /// healthy while at least `min` pass (cluster mode).
    Service {
        service: Arc<str>,
        port: Option<PortRef>,
        min: u32,
        each: Box<Probe>,
    },
}

/// The EndpointSlice port to probe: by number or by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PortRef {
    Number(u16),
    Name(Arc<str>),
}

impl Probe {
    /// `self` (an HTTP, GRPC or TCP probe) aimed at one endpoint.
    pub fn at(&self, ip: IpAddr, port: u16) -> Probe {
        match self {
            Probe::Grpc { tls, service, .. } => Probe::Grpc {
                tls: *tls,
                endpoint: Endpoint::Ip(ip),
                port,
                authority: ip_authority(ip, port),
                sni: None,
                service: service.clone(),
            },
            Probe::Http { tls, path, search_string, options, .. } => Probe::Http {
                tls: *tls,
                endpoint: Endpoint::Ip(ip),
                port,
                path: path.clone(),
                host_header: ip_host_header(ip, port, *tls),
                sni: None,
                search_string: search_string.clone(),
                options: options.clone(),
            },
            _ => Probe::Tcp { endpoint: Endpoint::Ip(ip), port },
        }
    }
}

/// The gRPC `:authority` for an address: `[v6]` in brackets, always with the port.
pub fn ip_authority(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

/// The Host header for an address: `[v6]` in brackets, the port unless the scheme's.
pub fn ip_host_header(ip: IpAddr, port: u16, tls: bool) -> String {
    let host = match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    if port == if tls { 443 } else { 80 } { host } else { format!("{host}:{port}") }
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
    /// Consecutive failed probes that make a healthy check unhealthy.
    pub failure_threshold: u32,
    /// Consecutive passed probes that make an unhealthy check healthy again
    /// (`healthyThreshold`, by default the failure threshold).
    pub healthy_threshold: u32,
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

    /// Whether the prober probes it (Calculated and Endpoints checks are decided from
    /// other checks and from the cluster's objects).
    pub fn is_probed(&self) -> bool {
        !matches!(
            self.probe,
            Probe::Calculated { .. } | Probe::Endpoints { .. } | Probe::Service { .. }
        )
    }

    /// Whether each replica checks it on its own, so the checker quorum decides it:
    /// probed checks, and serviceRef checks (their endpoints probed here). Endpoints
    /// checks read the API server, the same for every replica.
    pub fn is_checked_by_each_replica(&self) -> bool {
        self.is_probed() || matches!(self.probe, Probe::Service { .. })
    }

    /// The Service whose endpoints the check reads or probes.
    pub fn endpoints_service(&self) -> Option<ObjectRef> {
        match &self.probe {
            Probe::Endpoints { service, .. } | Probe::Service { service, .. } => {
                Some(self.id.sibling(&**service))
            }
            _ => None,
        }
    }
}

mod duration_ms {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

/// Parses a duration in a spec: `10s`, `500ms`, `1m30s`, `1.5s` (flags also take plain
/// seconds: `config::parse_flag_duration`).
pub fn parse_spec_duration(text: &str) -> Result<Duration, String> {
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
    /// Ready to be sent: the engine's plans share them.
    Values(Arc<[Rr]>),
    Alias {
        target: Fqdn,
        evaluate_target_health: bool,
    },
    /// From a Service, Ingress or Gateway (`valuesFrom`), as it is now.
    Object(Arc<objects::ObjectValues>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordSet {
    pub id: ObjectRef,
    pub seq: u64,
    pub name: Fqdn,
    pub rtype: RecordType,
    pub ttl: u32,
    pub policy: Policy,
    pub set_identifier: Option<Box<str>>,
    pub data: RecordData,
    /// The health check and the answer policy. Boxed: most records set neither, and
    /// a million record sets each save the bytes (see [`RecordSet::health_check`]).
    pub extras: Option<Box<RecordExtras>>,
}

/// What few record sets have.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordExtras {
    /// The referenced check, when one was named (it may not exist: see `Model::checks`).
    pub health_check: Option<ObjectRef>,
    /// `whenAllUnhealthy` and `degradedTTL` (boxed again: rarer still than checks).
    pub answers: Option<Box<AnswerPolicy>>,
}

/// How a record set's answers change when its group is degraded (contract section 8).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnswerPolicy {
    /// None: this record set leaves it to the other members (FailOpen when none sets it).
    pub when_all_unhealthy: Option<AllUnhealthy>,
    /// The TTL of its answers while served but not the first choice.
    pub degraded_ttl: Option<u32>,
}

/// What a name + type answers while every record set of it is unhealthy.
#[derive(Clone, Debug, PartialEq)]
pub enum AllUnhealthy {
    FailOpen,
    FailClosed,
    /// These records (their TTL: the declaring set's degradedTTL, else its ttl).
    Fallback(Arc<[Rr]>),
}

impl AllUnhealthy {
    pub fn name(&self) -> &'static str {
        match self {
            AllUnhealthy::FailOpen => "FailOpen",
            AllUnhealthy::FailClosed => "FailClosed",
            AllUnhealthy::Fallback(_) => "Fallback",
        }
    }
}

impl RecordSet {
    /// The referenced check, when one was named.
    pub fn health_check(&self) -> Option<&ObjectRef> {
        self.extras.as_ref()?.health_check.as_ref()
    }

    /// `whenAllUnhealthy` and `degradedTTL`, when either is set.
    pub fn answers(&self) -> Option<&AnswerPolicy> {
        self.extras.as_ref()?.answers.as_deref()
    }

    pub fn alias(&self) -> Option<(&Fqdn, bool)> {
        match &self.data {
            RecordData::Alias { target, evaluate_target_health } => {
                Some((target, *evaluate_target_health))
            }
            RecordData::Values(_) | RecordData::Object(_) => None,
        }
    }
}

/// One resource record's data, ready to be sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Rr {
    pub ttl: u32,
    /// The DNS type code of the data.
    pub rtype: u16,
    /// The RDATA in wire format, names uncompressed, so it can be copied into any
    /// message. The only copy of the data: [`Rr::rdata`] decodes it when a slow path
    /// (TCP, `/explain`) needs hickory's type.
    pub wire: Box<[u8]>,
}

impl Rr {
    pub fn new(ttl: u32, rdata: RData) -> Self {
        let mut wire = Vec::with_capacity(16);
        let mut encoder = BinEncoder::new(&mut wire);
        encoder.set_name_encoding(NameEncoding::Uncompressed);
        rdata.emit(&mut encoder).expect("validated record data always encodes");
        Self { ttl, rtype: u16::from(rdata.record_type()), wire: wire.into_boxed_slice() }
    }

    pub fn rdata(&self) -> RData {
        let mut decoder = BinDecoder::new(&self.wire);
        let length = Restrict::new(self.wire.len() as u16);
        RData::read(&mut decoder, hickory_proto::rr::RecordType::from(self.rtype), length)
            .expect("the data was encoded from a valid RData")
    }
}

pub type Key = (Fqdn, RecordType);

/// Validates every object from scratch: the oracle the incremental path is tested
/// against, and how a source's first listing is loaded.
pub fn validate(
    zones: &[Fqdn],
    checks: &[Input<HealthCheckSpec>],
    records: &[Input<FailoverRecordSpec>],
) -> Model {
    let mut model = Model::new(zones);
    let changes = checks
        .iter()
        .cloned()
        .map(Change::Check)
        .chain(records.iter().cloned().map(Change::Record));
    model.apply(changes);
    model
}

/// Collects the problems found in one object, each naming the field (path) it is about:
/// the validators report through it, so every problem carries the object's kind, id
/// and manifest file.
struct ObjectProblems<'a> {
    out: &'a mut Vec<Problem>,
    kind: Kind,
    object: &'a ObjectRef,
    file: Option<&'a str>,
}

impl<'a> ObjectProblems<'a> {
    fn new(
        out: &'a mut Vec<Problem>,
        kind: Kind,
        object: &'a ObjectRef,
        file: Option<&'a str>,
    ) -> Self {
        Self { out, kind, object, file }
    }

    fn push(&mut self, severity: Severity, field: &str, message: String) {
        self.out.push(Problem {
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

    fn warning(&mut self, field: &str, message: impl Into<String>) {
        self.push(Severity::Warning, field, message.into());
    }

    fn count(&self) -> usize {
        self.out.len()
    }

    /// Whether an error was reported after the problem count was `before`.
    fn errors_since(&self, before: usize) -> bool {
        self.out[before..].iter().any(|p| p.severity == Severity::Error)
    }
}

/// The closest served zone enclosing `name` (`zones` sorted longest first).
pub fn zone_of<'z>(zones: &'z [Fqdn], name: &Fqdn) -> Option<&'z Fqdn> {
    zones.iter().find(|z| name.is_within(z))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record set is held in an `Arc` (two counters and the set): at a million
    /// of them, staying within the allocator's 128-byte size class is 32 MB.
    #[test]
    fn a_shared_record_set_fits_a_128_byte_allocation() {
        assert!(
            std::mem::size_of::<RecordSet>() + 16 <= 128,
            "{} bytes",
            std::mem::size_of::<RecordSet>()
        );
    }

    /// The shortcut for plain names gives what hickory's parser gives.
    #[test]
    fn plain_names_parse_as_hickory_parses_them() {
        let slow = |text: &str| {
            let absolute = if text.ends_with('.') { text.to_string() } else { format!("{text}.") };
            Name::from_ascii(&absolute).map(|n| n.to_lowercase().to_ascii()).ok()
        };
        let long = format!("{}.example.com", "a".repeat(63));
        let cases = [
            "www.example.com",
            "WWW.Example.COM.",
            "h123.big.test",
            "_sip._tcp.example.com",
            "a-b.c_d.e",
            "xn--bcher-kva.example",
            "1.2.3.4",
            "a",
            "a..b",
            "-a.example",
            "a-.example",
            "a b.example",
            "a*.example",
            r"a\.b.example",
            "ä.example",
            long.as_str(),
            "..",
            ".a",
        ];
        for text in cases {
            if let Some(fast) = Fqdn::parse_plain(text) {
                assert_eq!(Some(fast.as_str().to_string()), slow(text), "{text}");
            }
        }
        assert!(Fqdn::parse_plain("h1.big.test").is_some());
        assert!(Fqdn::parse_plain(&long).is_some());
        assert!(Fqdn::parse_plain(&format!("{}a.example.com", "a".repeat(63))).is_none());
    }
}
