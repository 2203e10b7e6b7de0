//! The user-facing resource kinds (`failoverdns.io/v1alpha1`), as the API server and
//! the manifest files carry them. Field names are fixed by the API contract.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use kube::core::{Reason, Rule};
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

pub use crate::terms::{FailoverRole, HealthCheckType, RecordType, RoutingPolicy};

pub const GROUP: &str = "failoverdns.io";
pub const VERSION: &str = "v1alpha1";

/// A Route 53-style health check of one endpoint, or a calculated check over others.
// kube-derive takes one printcolumn attribute per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "failoverdns.io",
    version = "v1alpha1",
    kind = "HealthCheck",
    namespaced,
    status = "HealthCheckStatus",
    shortname = "hc",
    category = "failoverdns",
    doc = "A Route 53-style health check: HTTP, HTTPS, TCP, GRPC, Calculated or Endpoints.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Healthy", type_ = "boolean", json_path = ".status.healthy"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Healthy\")].reason"
    ),
    printcolumn(
        name = "Latency(ms)",
        type_ = "number",
        json_path = ".status.lastLatencyMs",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = health_check_rules)]
pub struct HealthCheckSpec {
    /// Probe kind.
    #[serde(rename = "type")]
    pub type_: HealthCheckType,
    /// IPv4 or IPv6 address of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// Host header and TLS SNI; resolved on every interval when ipAddress is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// Defaults to 80 (HTTP) or 443 (HTTPS); required for TCP and GRPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// HTTP(S) path, `/` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_path: Option<String>,
    /// Case-sensitive string that must appear in the first 5120 bytes of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub search_string: Option<String>,
    /// Time between probes (`10s`, `500ms`); 100ms to 1h, default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_interval: Option<String>,
    /// Deadline of one probe; default 4s, always below requestInterval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Consecutive failed probes that make a healthy check unhealthy, and passes that
    /// make it healthy again unless healthyThreshold is set (1-10, default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub failure_threshold: Option<i64>,
    /// Probed checks: consecutive passed probes that make an unhealthy check healthy
    /// again (1-10, default failureThreshold): fail fast, recover carefully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub healthy_threshold: Option<i64>,
    /// HTTP(S): status codes or ranges that pass (`"200-299"`, `"404"`; codes 100-599,
    /// at most 32 entries). Default: Route 53's 2xx and 3xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "expected_statuses_schema")]
    pub expected_statuses: Option<Vec<String>>,
    /// HTTP(S): extra request headers, name → value (at most 16; names are header
    /// tokens of at most 64 characters, values visible ASCII and spaces, at most 2048
    /// bytes). Host stays fqdn (or the address); framing and connection headers are
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "headers_schema")]
    pub headers: Option<BTreeMap<String, String>>,
    /// HTTPS: the probe fails (reason CertificateExpiring) when the served certificate
    /// expires sooner than this (`72h`); the certificate is otherwise not validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_certificate_validity: Option<String>,
    /// Report the opposite of the probe result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inverted: Option<bool>,
    /// No probing; the check is always healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Calculated only: the HealthChecks (same namespace) this check combines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), extend("x-kubernetes-list-type" = "set"))]
    pub child_health_checks: Option<Vec<String>>,
    /// Calculated only: healthy while at least this many children are healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 256))]
    pub health_threshold: Option<i64>,
    /// Cluster mode: a Service (same namespace) whose endpoints are the target: with
    /// Endpoints, its ready endpoints are the verdict; with HTTP, HTTPS, TCP or GRPC,
    /// every ready endpoint is probed. Instead of ipAddress/fqdn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ref: Option<ServiceRef>,
    /// With serviceRef: healthy while at least this many endpoints are ready
    /// (Endpoints) or pass (HTTP, HTTPS, TCP, GRPC). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub min_healthy_endpoints: Option<i64>,
    /// GRPC only: the service name asked about in grpc.health.v1.Health/Check; empty
    /// (the default) asks about the whole server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub grpc_service: Option<String>,
    /// GRPC only: speak TLS (the certificate is not validated, as for HTTPS; SNI from
    /// fqdn). Default false: cleartext HTTP/2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
}

/// At most this many `expectedStatuses` entries.
pub const MAX_EXPECTED_STATUSES: usize = 32;
/// At most this many `headers`.
pub const MAX_HEADERS: usize = 16;
/// Longest header name, in bytes.
pub const MAX_HEADER_NAME: usize = 64;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE: usize = 2048;

fn expected_statuses_schema(_: &mut schemars::SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "description": "HTTP(S): status codes or ranges that pass (`\"200-299\"`, `\"404\"`; codes 100-599, at most 32 entries). Default: Route 53's 2xx and 3xx.",
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_EXPECTED_STATUSES,
        "items": {"type": "string", "maxLength": 7}
    })
}

fn headers_schema(_: &mut schemars::SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "description": "HTTP(S): extra request headers, name → value (at most 16; names are header tokens of at most 64 characters, values visible ASCII and spaces, at most 2048 bytes). Host stays fqdn (or the address); framing and connection headers are refused.",
        "type": "object",
        "maxProperties": MAX_HEADERS,
        "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE}
    })
}

/// A Service in the check's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// A Service name (DNS-1035 label).
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// The EndpointSlice port to probe, by name or number; may be left out when the
    /// slices have one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
}

pub use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// How many endpoints of a serviceRef check are ready and how many pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCounts {
    pub ready: i64,
    pub healthy: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// One condition per type (`Healthy` or `Accepted`, `Ready`, ...): a map keyed
    /// by type, so server-side apply and GitOps tools merge them by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_successes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<f64>,
    /// Each live checker's view (checker quorum, cluster mode), by checker name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkers: Vec<CheckerView>,
    /// serviceRef checks: the Service's ready endpoints and how many of them pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What one checker (replica) sees of a check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckerView {
    /// The checker's identity.
    pub name: String,
    /// Absent while the checker has no established verdict (it does not count then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    pub reason: String,
    /// When this checker's verdict last changed, as far as the writer has seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AliasTarget {
    /// FQDN in a served zone whose records (of the same type) answer for this record.
    pub name: String,
    /// Healthy only while the target has at least one healthy path.
    #[serde(default)]
    pub evaluate_target_health: bool,
}

/// One Route 53 record set: a name, a type, a routing policy and its data.
// kube-derive takes one printcolumn attribute per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "failoverdns.io",
    version = "v1alpha1",
    kind = "FailoverRecord",
    namespaced,
    status = "FailoverRecordStatus",
    shortname = "frec",
    category = "failoverdns",
    doc = "One Route 53-style record set served by failover-dns.",
    printcolumn(name = "Record", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".spec.routingPolicy"),
    printcolumn(name = "Set", type_ = "string", json_path = ".spec.setIdentifier"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(name = "Healthy", type_ = "boolean", json_path = ".status.healthy"),
    printcolumn(name = "Serving", type_ = "boolean", json_path = ".status.serving"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = failover_record_rules)]
pub struct FailoverRecordSpec {
    /// Fully qualified name inside a served zone (trailing dot optional).
    pub name: String,
    #[serde(rename = "type")]
    pub type_: RecordType,
    /// Seconds; ignored for alias records. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_policy: Option<RoutingPolicy>,
    /// Required unless Simple; unique per name and type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    /// Weighted only: 0-255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 255))]
    pub weight: Option<i64>,
    /// Failover only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverRole>,
    /// The record is healthy only while this HealthCheck (same namespace) is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_name: Option<String>,
    /// Record data in presentation format; exactly one of values / aliasTarget /
    /// valuesFrom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_target: Option<AliasTarget>,
    /// Cluster mode: the record data from a Service, Ingress or Gateway in the same
    /// namespace, following it as it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_from: Option<ValuesFrom>,
    /// What the name + type answers while every record set of it is unhealthy:
    /// FailOpen (default, Route 53: all of them), FailClosed (NODATA) or Fallback
    /// (fallbackValues). Every member that sets it must agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_all_unhealthy: Option<AllUnhealthyPolicy>,
    /// With whenAllUnhealthy Fallback: the data answered while every member is
    /// unhealthy, in presentation format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub fallback_values: Option<Vec<String>>,
    /// Seconds; the TTL of this record set's answers while it is served but is not
    /// the first choice (a SECONDARY for its PRIMARY, a group failing open, a
    /// fallback), so clients come back soon after the preferred one recovers.
    #[serde(default, rename = "degradedTTL", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub degraded_ttl: Option<i64>,
}

/// `spec.whenAllUnhealthy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AllUnhealthyPolicy {
    /// Every record set answers as if healthy (Route 53).
    #[default]
    FailOpen,
    /// No answer (NODATA): clients see the outage instead of a dead address.
    FailClosed,
    /// spec.fallbackValues answer.
    Fallback,
}

/// Where a record's data comes from: exactly one of service, ingress, gateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = values_from_rules)]
pub struct ValuesFrom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceValues>,
    /// An Ingress: its status.loadBalancer.ingress addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<ObjectName>,
    /// A Gateway API Gateway: its status.addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<ObjectName>,
    /// As Route 53's alias to a load balancer: healthy only while the Service has a
    /// ready endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_target_health: Option<bool>,
}

/// A Service and which of its addresses answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceValues {
    /// A Service name (DNS-1035 label).
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Default: LoadBalancer for a Service of that type, else ClusterIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<ServiceAddress>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ServiceAddress {
    /// spec.clusterIPs.
    ClusterIP,
    /// status.loadBalancer.ingress (a hostname answers a CNAME record).
    LoadBalancer,
    /// The ready endpoint addresses, like a headless Service.
    Endpoints,
}

/// An object in the record's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectName {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecordStatus {
    /// Whether the record passed validation and is part of the served data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// Health of the record (health check and evaluate-target-health).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// One condition per type (`Healthy` or `Accepted`, `Ready`, ...): a map keyed
    /// by type, so server-side apply and GitOps tools merge them by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One replica's own verdicts, published for the other replicas (checker quorum).
/// Written only by its replica; it carries no secrets.
// kube-derive takes one printcolumn attribute per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "failoverdns.io",
    version = "v1alpha1",
    kind = "CheckerReport",
    namespaced,
    shortname = "crep",
    category = "failoverdns",
    doc = "One failover-dns replica's health-check verdicts, for the checker quorum.",
    printcolumn(name = "Checker", type_ = "string", json_path = ".spec.checker"),
    printcolumn(name = "Unhealthy", type_ = "integer", json_path = ".spec.unhealthyCount"),
    printcolumn(name = "Pending", type_ = "integer", json_path = ".spec.pendingCount"),
    printcolumn(name = "Renewed", type_ = "date", json_path = ".spec.renewTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CheckerReportSpec {
    /// The replica's identity.
    pub checker: String,
    /// When the replica last wrote or renewed the report (RFC 3339).
    pub renew_time: String,
    /// The report no longer counts this many seconds after `renewTime`.
    pub ttl_seconds: i64,
    /// The namespaces the replica watches (empty: every namespace): it is a checker of
    /// the checks in them only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// How many checks the replica sees unhealthy.
    pub unhealthy_count: i64,
    /// How many checks the replica has no established verdict of yet (not counted).
    #[serde(default)]
    pub pending_count: i64,
    /// Every check the replica sees unhealthy, by namespace and reason; it sees every
    /// check listed nowhere healthy. Empty when `compressed` carries the lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unhealthy: Vec<UnhealthyChecks>,
    /// The checks whose verdict no probe has backed yet here (a replica that just
    /// started): its view of them does not count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<CheckNames>,
    /// Both lists (`{"unhealthy": [...], "pending": [...]}`) as gzip-compressed JSON in
    /// base64, when they are long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub compressed: Option<String>,
}

/// Checks of one namespace that one replica sees unhealthy for one reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnhealthyChecks {
    pub namespace: String,
    pub reason: String,
    pub names: Vec<String>,
}

/// Checks of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckNames {
    pub namespace: String,
    pub names: Vec<String>,
}

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Which namespaces may serve which names (cluster-scoped; for cluster administrators).
// kube-derive takes one printcolumn attribute per column.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "failoverdns.io",
    version = "v1alpha1",
    kind = "NameDelegation",
    shortname = "nd",
    category = "failoverdns",
    doc = "Lets the namespaces it names (or selects) serve the DNS names it lists.",
    printcolumn(name = "Names", type_ = "string", json_path = ".spec.names"),
    printcolumn(name = "Namespaces", type_ = "string", json_path = ".spec.namespaces"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = name_delegation_rules)]
pub struct NameDelegationSpec {
    /// DNS names; `*.SUFFIX` covers every name below SUFFIX, not SUFFIX itself.
    #[schemars(length(min = 1))]
    pub names: Vec<String>,
    /// Namespaces that may serve these names (and share them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Namespaces selected by their labels, besides those named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

// ---------------------------------------------------------------- CEL rules
//
// What one object can get wrong on its own is rejected by the API server itself
// (`x-kubernetes-validations` on the spec), mirroring the checks of model.rs that need
// no other object; what needs other objects is reported in status. Each rule points
// its error at the field (fieldPath) and its message names the field too.

/// One `x-kubernetes-validations` entry on a spec: the rule holds when the object is valid.
struct Cel {
    rule: &'static str,
    field: &'static str,
    reason: Reason,
    message: &'static str,
}

const fn cel(
    rule: &'static str,
    field: &'static str,
    reason: Reason,
    message: &'static str,
) -> Cel {
    Cel { rule, field, reason, message }
}

use Reason::{
    FieldValueForbidden as Forbidden, FieldValueInvalid as Invalid, FieldValueRequired as Required,
};

const HEALTH_CHECK_RULES: &[Cel] = &[
    cel(
        "self.type != 'TCP' || has(self.port) || has(self.serviceRef)",
        ".port",
        Required,
        "port is required for TCP checks without serviceRef",
    ),
    cel(
        "self.type != 'GRPC' || has(self.port) || has(self.serviceRef)",
        ".port",
        Required,
        "port is required for GRPC checks without serviceRef (gRPC has no default port)",
    ),
    cel(
        "self.type in ['Calculated', 'Endpoints'] || has(self.ipAddress) || has(self.fqdn) || has(self.serviceRef)",
        ".ipAddress",
        Required,
        "ipAddress, fqdn or serviceRef is required for HTTP, HTTPS, TCP and GRPC checks",
    ),
    cel(
        "self.type != 'Endpoints' || has(self.serviceRef)",
        ".serviceRef",
        Required,
        "serviceRef is required for type Endpoints",
    ),
    cel(
        "!has(self.serviceRef) || self.type != 'Calculated'",
        ".serviceRef",
        Forbidden,
        "serviceRef is not allowed for type Calculated",
    ),
    cel(
        "!has(self.serviceRef) || !has(self.ipAddress)",
        ".ipAddress",
        Forbidden,
        "ipAddress is not allowed with serviceRef: the Service's endpoints are the target",
    ),
    cel(
        "!has(self.serviceRef) || !has(self.fqdn)",
        ".fqdn",
        Forbidden,
        "fqdn is not allowed with serviceRef: the Service's endpoints are the target",
    ),
    cel(
        "!has(self.serviceRef) || !has(self.port)",
        ".port",
        Forbidden,
        "port is not allowed with serviceRef: use serviceRef.port",
    ),
    cel(
        "!has(self.serviceRef) || !has(self.serviceRef.port) || (type(self.serviceRef.port) == int ? (self.serviceRef.port >= 1 && self.serviceRef.port <= 65535) : (size(self.serviceRef.port) <= 63 && self.serviceRef.port.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')))",
        ".serviceRef.port",
        Invalid,
        "serviceRef.port must be a port number (1-65535) or a port name (lower-case letters, digits and '-')",
    ),
    cel(
        "self.type != 'Endpoints' || !has(self.serviceRef) || !has(self.serviceRef.port)",
        ".serviceRef.port",
        Forbidden,
        "serviceRef.port is not allowed for type Endpoints: nothing is probed",
    ),
    cel(
        "!has(self.minHealthyEndpoints) || has(self.serviceRef)",
        ".minHealthyEndpoints",
        Forbidden,
        "minHealthyEndpoints is only allowed with serviceRef",
    ),
    cel(
        "self.type != 'Calculated' || has(self.childHealthChecks)",
        ".childHealthChecks",
        Required,
        "childHealthChecks is required for type Calculated",
    ),
    cel(
        "self.type != 'Calculated' || has(self.healthThreshold)",
        ".healthThreshold",
        Required,
        "healthThreshold is required for type Calculated",
    ),
    cel(
        "self.type == 'Calculated' || !has(self.childHealthChecks)",
        ".childHealthChecks",
        Forbidden,
        "childHealthChecks is only allowed for type Calculated",
    ),
    cel(
        "self.type == 'Calculated' || !has(self.healthThreshold)",
        ".healthThreshold",
        Forbidden,
        "healthThreshold is only allowed for type Calculated",
    ),
    cel(
        "self.type != 'Calculated' || !has(self.ipAddress)",
        ".ipAddress",
        Forbidden,
        "ipAddress is not allowed for type Calculated",
    ),
    cel(
        "self.type != 'Calculated' || !has(self.fqdn)",
        ".fqdn",
        Forbidden,
        "fqdn is not allowed for type Calculated",
    ),
    cel(
        "self.type != 'Calculated' || !has(self.port)",
        ".port",
        Forbidden,
        "port is not allowed for type Calculated",
    ),
    cel(
        "!has(self.healthyThreshold) || !(self.type in ['Calculated', 'Endpoints'])",
        ".healthyThreshold",
        Forbidden,
        "healthyThreshold is only allowed for probed checks (HTTP, HTTPS, TCP): Calculated and Endpoints checks are not probed",
    ),
    cel(
        "!has(self.expectedStatuses) || self.type in ['HTTP', 'HTTPS']",
        ".expectedStatuses",
        Forbidden,
        "expectedStatuses is only allowed for HTTP and HTTPS checks",
    ),
    cel(
        "!has(self.expectedStatuses) || self.expectedStatuses.all(s, s.matches('^[1-5][0-9]{2}(-[1-5][0-9]{2})?$'))",
        ".expectedStatuses",
        Invalid,
        "expectedStatuses entries are status codes (100-599) or ranges of them (\"200-299\")",
    ),
    cel(
        "!has(self.expectedStatuses) || self.expectedStatuses.all(s, size(s) != 7 || s.substring(0, 3) <= s.substring(4, 7))",
        ".expectedStatuses",
        Invalid,
        "expectedStatuses ranges go from low to high (\"200-299\", not \"299-200\")",
    ),
    cel(
        "!has(self.headers) || self.type in ['HTTP', 'HTTPS']",
        ".headers",
        Forbidden,
        "headers is only allowed for HTTP and HTTPS checks",
    ),
    cel(
        r#"!has(self.headers) || self.headers.all(k, k.matches("^[-A-Za-z0-9!#$%&'*+.^_`|~]{1,64}$"))"#,
        ".headers",
        Invalid,
        "headers names must be header tokens: 1-64 letters, digits and !#$%&'*+-.^_`|~",
    ),
    cel(
        "!has(self.headers) || self.headers.all(k, self.headers[k].matches('^[ -~]*$'))",
        ".headers",
        Invalid,
        "headers values may hold only visible ASCII characters and spaces (no CR, LF or other control characters)",
    ),
    cel(
        "!has(self.headers) || !self.headers.exists(k, k.lowerAscii() == 'host')",
        ".headers",
        Forbidden,
        "headers may not set Host: it is fqdn (or the address) with the port, as for every check",
    ),
    cel(
        "!has(self.headers) || !self.headers.exists(k, k.lowerAscii() in ['accept-encoding', 'connection', 'content-length', 'expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])",
        ".headers",
        Forbidden,
        "headers may not set Accept-Encoding, Connection, Content-Length, Expect, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding or Upgrade: the probe sets them or they change how the request is framed",
    ),
    cel(
        "!has(self.headers) || self.headers.all(a, self.headers.all(b, a == b || a.lowerAscii() != b.lowerAscii()))",
        ".headers",
        Invalid,
        "headers names must differ in more than case",
    ),
    cel(
        "!has(self.minCertificateValidity) || self.type == 'HTTPS'",
        ".minCertificateValidity",
        Forbidden,
        "minCertificateValidity is only allowed for HTTPS checks",
    ),
    // Covers Calculated too: one message for resourcePath, not two.
    cel(
        "!has(self.resourcePath) || self.type in ['HTTP', 'HTTPS']",
        ".resourcePath",
        Forbidden,
        "resourcePath is only allowed for HTTP and HTTPS checks",
    ),
    cel(
        "!has(self.searchString) || self.type in ['HTTP', 'HTTPS']",
        ".searchString",
        Forbidden,
        "searchString is only allowed for HTTP and HTTPS checks",
    ),
    cel(
        "!has(self.grpcService) || self.type == 'GRPC'",
        ".grpcService",
        Forbidden,
        "grpcService is only allowed for GRPC checks",
    ),
    cel(
        "!has(self.tls) || self.type == 'GRPC'",
        ".tls",
        Forbidden,
        "tls is only allowed for GRPC checks (HTTPS is its own type)",
    ),
];

// An absent routingPolicy means Simple; an empty (blank) setIdentifier counts as absent,
// as in model.rs.
const FAILOVER_RECORD_RULES: &[Cel] = &[
    cel(
        "!has(self.whenAllUnhealthy) || self.whenAllUnhealthy != 'Fallback' || has(self.fallbackValues)",
        ".fallbackValues",
        Required,
        "fallbackValues is required with whenAllUnhealthy Fallback",
    ),
    cel(
        "!has(self.fallbackValues) || (has(self.whenAllUnhealthy) && self.whenAllUnhealthy == 'Fallback')",
        ".fallbackValues",
        Forbidden,
        "fallbackValues is only allowed with whenAllUnhealthy Fallback",
    ),
    cel(
        "self.type != 'CNAME' || !has(self.fallbackValues) || self.fallbackValues.size() <= 1",
        ".fallbackValues",
        Invalid,
        "fallbackValues of a CNAME record hold exactly one name",
    ),
    cel(
        "!has(self.degradedTTL) || !has(self.aliasTarget)",
        ".degradedTTL",
        Forbidden,
        "degradedTTL is not allowed with aliasTarget: an alias answers with its target's TTL",
    ),
    cel(
        "!has(self.routingPolicy) || self.routingPolicy == 'Simple' || (has(self.setIdentifier) && self.setIdentifier.trim() != '')",
        ".setIdentifier",
        Required,
        "setIdentifier is required unless routingPolicy is Simple",
    ),
    cel(
        "(has(self.routingPolicy) && self.routingPolicy != 'Simple') || !has(self.setIdentifier) || self.setIdentifier.trim() == ''",
        ".setIdentifier",
        Forbidden,
        "setIdentifier is not allowed with Simple routing (routingPolicy absent means Simple)",
    ),
    cel(
        "!has(self.setIdentifier) || bytes(self.setIdentifier.trim()).size() <= 128",
        ".setIdentifier",
        Invalid,
        "setIdentifier must be at most 128 bytes long",
    ),
    cel(
        "!has(self.routingPolicy) || self.routingPolicy != 'Weighted' || has(self.weight)",
        ".weight",
        Required,
        "weight is required for Weighted routing",
    ),
    cel(
        "!has(self.weight) || (has(self.routingPolicy) && self.routingPolicy == 'Weighted')",
        ".weight",
        Forbidden,
        "weight is only allowed with Weighted routing",
    ),
    cel(
        "!has(self.routingPolicy) || self.routingPolicy != 'Failover' || has(self.failover)",
        ".failover",
        Required,
        "failover (PRIMARY or SECONDARY) is required for Failover routing",
    ),
    cel(
        "!has(self.failover) || (has(self.routingPolicy) && self.routingPolicy == 'Failover')",
        ".failover",
        Forbidden,
        "failover is only allowed with Failover routing",
    ),
    cel(
        "has(self.values) || has(self.aliasTarget) || has(self.valuesFrom)",
        ".values",
        Required,
        "values, aliasTarget or valuesFrom is required: exactly one of values, aliasTarget and valuesFrom",
    ),
    cel(
        "!has(self.values) || !has(self.aliasTarget)",
        ".aliasTarget",
        Forbidden,
        "aliasTarget is not allowed together with values: exactly one of values, aliasTarget and valuesFrom",
    ),
    cel(
        "!has(self.valuesFrom) || (!has(self.values) && !has(self.aliasTarget))",
        ".valuesFrom",
        Forbidden,
        "valuesFrom is not allowed together with values or aliasTarget: exactly one of values, aliasTarget and valuesFrom",
    ),
    cel(
        "!has(self.valuesFrom) || self.type in ['A', 'AAAA', 'CNAME']",
        ".valuesFrom",
        Forbidden,
        "valuesFrom is only allowed for types A, AAAA and CNAME",
    ),
    cel(
        "!has(self.aliasTarget) || !has(self.routingPolicy) || self.routingPolicy != 'MultiValue'",
        ".aliasTarget",
        Forbidden,
        "aliasTarget is not allowed with MultiValue routing: MultiValue records cannot be aliases",
    ),
    cel(
        "self.type != 'CNAME' || !has(self.routingPolicy) || self.routingPolicy != 'MultiValue'",
        ".type",
        Forbidden,
        "type CNAME is not allowed with MultiValue routing: MultiValue records cannot be CNAME",
    ),
    cel(
        "self.type != 'CNAME' || !has(self.values) || self.values.size() <= 1",
        ".values",
        Invalid,
        "values of a CNAME record hold exactly one name",
    ),
];

fn add_rules(schema: &mut Schema, rules: &[Cel]) {
    for r in rules {
        let rule =
            Rule::new(r.rule).message(r.message).field_path(r.field).reason(r.reason.clone());
        kube::core::validate(schema, rule).expect("a CEL rule serializes");
    }
}

fn health_check_rules(schema: &mut Schema) {
    add_rules(schema, HEALTH_CHECK_RULES);
}

const NAME_DELEGATION_RULES: &[Cel] = &[cel(
    "has(self.namespaces) || has(self.namespaceSelector)",
    ".namespaces",
    Required,
    "namespaces or namespaceSelector is required: a delegation names who may serve its names",
)];

fn name_delegation_rules(schema: &mut Schema) {
    add_rules(schema, NAME_DELEGATION_RULES);
}

fn failover_record_rules(schema: &mut Schema) {
    add_rules(schema, FAILOVER_RECORD_RULES);
}

const VALUES_FROM_RULES: &[Cel] = &[cel(
    "[has(self.service), has(self.ingress), has(self.gateway)].filter(x, x).size() == 1",
    ".service",
    Required,
    "valuesFrom needs exactly one of service, ingress and gateway",
)];

fn values_from_rules(schema: &mut Schema) {
    add_rules(schema, VALUES_FROM_RULES);
}
