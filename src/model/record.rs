//! Per-kind validation of a FailoverRecord on its own, and record data in
//! presentation format. Relations between records are settled in [`super::conflicts`]
//! and [`super::settle`].

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SRV, TXT};

use super::objects::{ObjectKind, ObjectValues, ValuesSource};
use super::*;
use crate::resources::{AliasTarget, AllUnhealthyPolicy, ValuesFrom};

/// `cluster_objects`: records may take their data from Kubernetes objects (cluster
/// mode); such data is resolved by the model afterwards (`Model::resolve_objects`).
pub(super) fn validate_record(
    zones: &[Fqdn],
    input: &Input<FailoverRecordSpec>,
    cluster_objects: bool,
    problems: &mut ObjectProblems<'_>,
) -> Option<RecordSet> {
    let spec = &input.spec;
    let before = problems.count();
    let name = record_name(zones, spec, problems);
    let rtype = spec.type_;
    let ttl = ttl(spec, problems);
    let policy_kind = spec.routing_policy.unwrap_or_default();
    let policy = policy(spec, policy_kind, problems);
    let set_identifier = set_identifier(spec, policy_kind, problems);
    let health_check = spec.health_check_name.as_ref().map(|n| input.id.sibling(n.trim()));
    let data = match &spec.values_from {
        Some(from) => values_from(spec, from, cluster_objects, problems),
        None => record_data(zones, spec, ttl, policy_kind, problems),
    };
    if rtype == RecordType::Cname && policy_kind == RoutingPolicy::MultiValue {
        problems.error("spec.type", "MultiValue records cannot be CNAME");
    }
    if let Some(name) = &name
        && rtype == RecordType::Cname
        && zones.contains(name)
    {
        problems.error("spec.name", format!("a CNAME cannot be at the zone apex {name}"));
    }
    let answers = answer_policy(spec, ttl, problems);
    if problems.errors_since(before) {
        return None;
    }
    Some(RecordSet {
        id: input.id.clone(),
        seq: input.seq,
        name: name?,
        rtype,
        ttl,
        policy,
        set_identifier: set_identifier.map(String::into_boxed_str),
        data: data?,
        extras: (health_check.is_some() || answers.is_some())
            .then(|| Box::new(RecordExtras { health_check, answers: answers.map(Box::new) })),
    })
}

/// `whenAllUnhealthy` with its `fallbackValues`, and `degradedTTL`.
fn answer_policy(
    spec: &FailoverRecordSpec,
    ttl: u32,
    problems: &mut ObjectProblems<'_>,
) -> Option<AnswerPolicy> {
    let degraded_ttl = match spec.degraded_ttl {
        None => None,
        Some(_) if spec.alias_target.is_some() => {
            problems.error(
                "spec.degradedTTL",
                "not allowed with aliasTarget: an alias answers with its target's TTL",
            );
            None
        }
        Some(t @ 0..=0x7fff_ffff) => Some(t as u32),
        Some(t) => {
            problems.error("spec.degradedTTL", format!("{t} is outside 0-2147483647"));
            None
        }
    };
    let when_all_unhealthy = match (spec.when_all_unhealthy, &spec.fallback_values) {
        (None | Some(AllUnhealthyPolicy::FailOpen | AllUnhealthyPolicy::FailClosed), Some(_)) => {
            problems.error("spec.fallbackValues", "only allowed with whenAllUnhealthy Fallback");
            None
        }
        (None, None) => None,
        (Some(AllUnhealthyPolicy::FailOpen), None) => Some(AllUnhealthy::FailOpen),
        (Some(AllUnhealthyPolicy::FailClosed), None) => Some(AllUnhealthy::FailClosed),
        (Some(AllUnhealthyPolicy::Fallback), None) => {
            problems.error("spec.fallbackValues", "required with whenAllUnhealthy Fallback");
            None
        }
        (Some(AllUnhealthyPolicy::Fallback), Some(values)) => {
            let fallback_ttl = degraded_ttl.unwrap_or(ttl);
            parse_values_at("spec.fallbackValues", spec.type_, values, problems).map(|values| {
                AllUnhealthy::Fallback(
                    values.into_iter().map(|v| Rr::new(fallback_ttl, v)).collect(),
                )
            })
        }
    };
    (when_all_unhealthy.is_some() || degraded_ttl.is_some())
        .then_some(AnswerPolicy { when_all_unhealthy, degraded_ttl })
}

/// The record's name: inside a served zone, and no wildcard.
fn record_name(
    zones: &[Fqdn],
    spec: &FailoverRecordSpec,
    problems: &mut ObjectProblems<'_>,
) -> Option<Fqdn> {
    match Fqdn::parse(&spec.name) {
        Ok(name) if zone_of(zones, &name).is_none() => {
            problems.error(
                "spec.name",
                format!("{name} is not inside any served zone ({})", zone_list(zones)),
            );
            None
        }
        // Served as a literal label it would never match what a wildcard promises.
        Ok(name) if name.as_str().split('.').any(|label| label == "*") => {
            problems.error(
                "spec.name",
                format!("{name}: wildcard names are not supported; list each name"),
            );
            None
        }
        Ok(name) => Some(name),
        Err(e) => {
            problems.error("spec.name", e);
            None
        }
    }
}

fn ttl(spec: &FailoverRecordSpec, problems: &mut ObjectProblems<'_>) -> u32 {
    match spec.ttl {
        None => DEFAULT_TTL,
        Some(t @ 0..=0x7fff_ffff) => t as u32,
        Some(t) => {
            problems.error("spec.ttl", format!("{t} is outside 0-2147483647"));
            DEFAULT_TTL
        }
    }
}

/// The routing policy with its weight or failover role, which only their own policy
/// may set.
fn policy(
    spec: &FailoverRecordSpec,
    policy_kind: RoutingPolicy,
    problems: &mut ObjectProblems<'_>,
) -> Policy {
    let policy = match policy_kind {
        RoutingPolicy::Simple => Policy::Simple,
        RoutingPolicy::MultiValue => Policy::MultiValue,
        RoutingPolicy::Weighted => match spec.weight {
            Some(w @ 0..=255) => Policy::Weighted(w as u8),
            Some(w) => {
                problems.error("spec.weight", format!("{w} is outside 0-255"));
                Policy::Weighted(0)
            }
            None => {
                problems.error("spec.weight", "required for Weighted routing");
                Policy::Weighted(0)
            }
        },
        RoutingPolicy::Failover => match spec.failover {
            Some(role) => Policy::Failover(role),
            None => {
                problems
                    .error("spec.failover", "required for Failover routing (PRIMARY or SECONDARY)");
                Policy::Failover(FailoverRole::Primary)
            }
        },
    };
    if spec.weight.is_some() && policy_kind != RoutingPolicy::Weighted {
        problems.error("spec.weight", "only allowed with Weighted routing");
    }
    if spec.failover.is_some() && policy_kind != RoutingPolicy::Failover {
        problems.error("spec.failover", "only allowed with Failover routing");
    }
    policy
}

/// The set identifier, trimmed: required by every policy but Simple, which forbids it.
fn set_identifier(
    spec: &FailoverRecordSpec,
    policy_kind: RoutingPolicy,
    problems: &mut ObjectProblems<'_>,
) -> Option<String> {
    let set_identifier = spec.set_identifier.as_ref().map(|s| s.trim().to_string());
    match (&set_identifier, policy_kind) {
        (Some(s), RoutingPolicy::Simple) if !s.is_empty() => {
            problems.error("spec.setIdentifier", "not allowed with Simple routing")
        }
        (None, kind) if kind != RoutingPolicy::Simple => {
            problems.error("spec.setIdentifier", format!("required for {kind:?} routing"))
        }
        (Some(s), kind) if s.is_empty() && kind != RoutingPolicy::Simple => {
            problems.error("spec.setIdentifier", "must not be empty")
        }
        (Some(s), _) if s.len() > 128 => {
            problems.error("spec.setIdentifier", "longer than 128 characters")
        }
        _ => {}
    }
    set_identifier
}

/// The values or the alias target: exactly one of them.
fn record_data(
    zones: &[Fqdn],
    spec: &FailoverRecordSpec,
    ttl: u32,
    policy_kind: RoutingPolicy,
    problems: &mut ObjectProblems<'_>,
) -> Option<RecordData> {
    match (&spec.values, &spec.alias_target) {
        (Some(_), Some(_)) => {
            problems.error("spec.aliasTarget", "exactly one of values and aliasTarget may be set");
            None
        }
        (None, None) => {
            problems.error("spec.values", "exactly one of values and aliasTarget is required");
            None
        }
        (Some(values), None) => parse_values(spec.type_, values, problems).map(|values| {
            RecordData::Values(values.into_iter().map(|v| Rr::new(ttl, v)).collect())
        }),
        (None, Some(alias)) => alias_data(zones, spec, alias, policy_kind, problems),
    }
}

/// Data from a Kubernetes object: where from, not yet what (the model resolves it).
fn values_from(
    spec: &FailoverRecordSpec,
    from: &ValuesFrom,
    cluster_objects: bool,
    problems: &mut ObjectProblems<'_>,
) -> Option<RecordData> {
    if !cluster_objects {
        problems.error(
            "spec.valuesFrom",
            "values from Kubernetes objects work in cluster mode only (manifest files have no Services, Ingresses or Gateways)",
        );
        return None;
    }
    if spec.values.is_some() || spec.alias_target.is_some() {
        problems.error(
            "spec.valuesFrom",
            "exactly one of values, aliasTarget and valuesFrom may be set",
        );
        return None;
    }
    if !matches!(spec.type_, RecordType::A | RecordType::Aaaa | RecordType::Cname) {
        problems.error("spec.valuesFrom", "only allowed for types A, AAAA and CNAME");
        return None;
    }
    let (kind, name, field) = match (&from.service, &from.ingress, &from.gateway) {
        (Some(s), None, None) => (ObjectKind::Service, &s.name, "spec.valuesFrom.service.name"),
        (None, Some(i), None) => (ObjectKind::Ingress, &i.name, "spec.valuesFrom.ingress.name"),
        (None, None, Some(g)) => (ObjectKind::Gateway, &g.name, "spec.valuesFrom.gateway.name"),
        _ => {
            problems.error(
                "spec.valuesFrom.service",
                "exactly one of service, ingress and gateway is required",
            );
            return None;
        }
    };
    let name = name.trim();
    let valid = match kind {
        ObjectKind::Service => super::check::service_name(name),
        _ => super::check::object_name(name),
    };
    if let Err(e) = valid {
        problems.error(field, e);
        return None;
    }
    let source = ValuesSource {
        kind,
        name: Arc::from(name),
        address: from.service.as_ref().and_then(|s| s.address),
        evaluate_target_health: from.evaluate_target_health.unwrap_or(false),
    };
    Some(RecordData::Object(Arc::new(ObjectValues::unresolved(source))))
}

fn alias_data(
    zones: &[Fqdn],
    spec: &FailoverRecordSpec,
    alias: &AliasTarget,
    policy_kind: RoutingPolicy,
    problems: &mut ObjectProblems<'_>,
) -> Option<RecordData> {
    match Fqdn::parse(&alias.name) {
        Ok(target) if zone_of(zones, &target).is_none() => {
            problems.error(
                "spec.aliasTarget.name",
                format!("{target} is not inside any served zone ({})", zone_list(zones)),
            );
            None
        }
        Ok(target) => {
            if policy_kind == RoutingPolicy::MultiValue {
                problems.error("spec.aliasTarget", "MultiValue records cannot be aliases");
            }
            if spec.ttl.is_some() {
                problems.warning(
                    "spec.ttl",
                    "ignored for alias records: answers carry the target's TTL",
                );
            }
            Some(RecordData::Alias { target, evaluate_target_health: alias.evaluate_target_health })
        }
        Err(e) => {
            problems.error("spec.aliasTarget.name", e);
            None
        }
    }
}

fn zone_list(zones: &[Fqdn]) -> String {
    let zones: Vec<&str> = zones.iter().map(Fqdn::as_str).collect();
    if zones.is_empty() {
        "no zones are configured".into()
    } else {
        format!("zones: {}", zones.join(", "))
    }
}

// ---------------------------------------------------------------- record data

fn parse_values(
    rtype: RecordType,
    values: &[String],
    problems: &mut ObjectProblems<'_>,
) -> Option<Vec<RData>> {
    parse_values_at("spec.values", rtype, values, problems)
}

/// Values of `rtype` in presentation format, at `field` (`spec.values`,
/// `spec.fallbackValues`).
fn parse_values_at(
    field: &str,
    rtype: RecordType,
    values: &[String],
    problems: &mut ObjectProblems<'_>,
) -> Option<Vec<RData>> {
    if values.is_empty() {
        problems.error(field, "must not be empty");
        return None;
    }
    if rtype == RecordType::Cname && values.len() != 1 {
        problems.error(field, "a CNAME has exactly one value");
        return None;
    }
    let mut out = Vec::with_capacity(values.len());
    let mut ok = true;
    for (i, value) in values.iter().enumerate() {
        match parse_rdata(rtype, value) {
            Ok(rdata) => {
                if out.contains(&rdata) {
                    problems.error(&format!("{field}[{i}]"), format!("{value:?} is listed twice"));
                    ok = false;
                }
                out.push(rdata)
            }
            Err(e) => {
                problems.error(&format!("{field}[{i}]"), e);
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
        RecordType::Txt => parse_txt(text).map(|strings| {
            RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
        }),
        RecordType::Mx => {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let [pref, exchange] = fields[..] else {
                return Err(format!("{value:?}: an MX value is \"PREFERENCE EXCHANGE\""));
            };
            let pref = pref
                .parse::<u16>()
                .map_err(|_| format!("{value:?}: preference {pref:?} is not 0-65535"))?;
            Ok(RData::MX(MX::new(pref, target(exchange)?)))
        }
        RecordType::Srv => {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let [prio, weight, port, host] = fields[..] else {
                return Err(format!("{value:?}: an SRV value is \"PRIORITY WEIGHT PORT TARGET\""));
            };
            let num = |what: &str, s: &str| {
                s.parse::<u16>().map_err(|_| format!("{value:?}: {what} {s:?} is not 0-65535"))
            };
            Ok(RData::SRV(SRV::new(
                num("priority", prio)?,
                num("weight", weight)?,
                num("port", port)?,
                target(host)?,
            )))
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
