//! Per-kind validation of a FailoverRecord on its own, and record data in
//! presentation format. Relations between records are settled in [`super::conflicts`].

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SRV, TXT};

use super::*;

pub(super) fn validate_record(
    zones: &[Fqdn],
    input: &Input<FailoverRecordSpec>,
    p: &mut Scope<'_>,
) -> Option<RecordSet> {
    let spec = &input.spec;
    let before = p.count();
    let name = match Fqdn::parse(&spec.name) {
        Ok(name) if zone_of(zones, &name).is_none() => {
            p.error(
                "spec.name",
                format!("{name} is not inside any served zone ({})", zone_list(zones)),
            );
            None
        }
        // Served as a literal label it would never match what a wildcard promises.
        Ok(name) if name.as_str().split('.').any(|label| label == "*") => {
            p.error(
                "spec.name",
                format!("{name}: wildcard names are not supported; list each name"),
            );
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
        (Some(s), _) if s.len() > 128 => {
            p.error("spec.setIdentifier", "longer than 128 characters")
        }
        _ => {}
    }
    let health_check = spec.health_check_name.as_ref().map(|n| input.id.sibling(n.trim()));
    let data = match (&spec.values, &spec.alias_target) {
        (Some(_), Some(_)) => {
            p.error("spec.aliasTarget", "exactly one of values and aliasTarget may be set");
            None
        }
        (None, None) => {
            p.error("spec.values", "exactly one of values and aliasTarget is required");
            None
        }
        (Some(values), None) => parse_values(rtype, values, p).map(|values| {
            RecordData::Values(values.into_iter().map(|v| Rr::new(ttl, v)).collect())
        }),
        (None, Some(alias)) => match Fqdn::parse(&alias.name) {
            Ok(target) if zone_of(zones, &target).is_none() => {
                p.error(
                    "spec.aliasTarget.name",
                    format!("{target} is not inside any served zone ({})", zone_list(zones)),
                );
                None
            }
            Ok(target) => {
                if policy_kind == RoutingPolicy::MultiValue {
                    p.error("spec.aliasTarget", "MultiValue records cannot be aliases");
                }
                if spec.ttl.is_some() {
                    p.warning(
                        "spec.ttl",
                        "ignored for alias records: answers carry the target's TTL",
                    );
                }
                Some(RecordData::Alias {
                    target,
                    evaluate_target_health: alias.evaluate_target_health,
                })
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
        && zones.contains(name)
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
        set_identifier: set_identifier.map(String::into_boxed_str),
        health_check: health_check.map(Box::new),
        data: data?,
    })
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
