//! What a `CheckerReport` says, pure: encoding this replica's verdicts, decoding
//! another's, the difference between two reports of one checker, and how long a
//! report still counts.
//!
//! A report lists only the checks its checker sees unhealthy (every other check it
//! sees healthy), by namespace and reason. Past [`PLAIN_LIMIT`] entries the list
//! travels gzip-compressed: 100,000 failing checks must stay far below the API
//! server's object size limit.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;

pub use crate::health::Listed;
use crate::health::{HEALTHY, PeerView};
use crate::model::ObjectRef;
use serde::{Deserialize, Serialize};

use crate::resources::{CheckNames, UnhealthyChecks};

/// Entries a report lists readably; beyond, the lists are compressed.
pub const PLAIN_LIMIT: usize = 1_000;

/// The reason shown for a checker that has no established verdict yet.
pub const PENDING: &str = "Pending";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("spec.compressed: {0}")]
    Compressed(String),
    #[error("spec.renewTime {0:?}: not an RFC 3339 time")]
    RenewTime(String),
    #[error(
        "the lists hold {} unhealthy and {} pending checks, spec.unhealthyCount and spec.pendingCount say {} and {} (is the CheckerReport CRD older than this replica?)",
        listed.0, listed.1, said.0, said.1
    )]
    Counts { listed: (i64, i64), said: (i64, i64) },
}

/// One checker's listed checks.
pub type Listing = HashMap<ObjectRef, Listed>;

/// The lists of a report, as they travel (plain, or compressed as one JSON object).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lists {
    #[serde(default)]
    pub unhealthy: Vec<UnhealthyChecks>,
    #[serde(default)]
    pub pending: Vec<CheckNames>,
}

/// The verdict part of a report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Body {
    pub lists: Lists,
    pub compressed: Option<String>,
    pub unhealthy: usize,
    pub pending: usize,
}

/// The report body for these listed checks.
pub fn encode(listed: &BTreeMap<ObjectRef, Listed>) -> Body {
    let mut unhealthy: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    let mut pending: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (id, what) in listed {
        let name = id.name.to_string();
        match what {
            Listed::Unhealthy(reason) => {
                unhealthy.entry((&id.namespace, reason)).or_default().push(name)
            }
            Listed::Pending => pending.entry(&id.namespace).or_default().push(name),
        }
    }
    let lists = Lists {
        unhealthy: unhealthy
            .into_iter()
            .map(|((namespace, reason), names)| UnhealthyChecks {
                namespace: namespace.into(),
                reason: reason.into(),
                names,
            })
            .collect(),
        pending: pending
            .into_iter()
            .map(|(namespace, names)| CheckNames { namespace: namespace.into(), names })
            .collect(),
    };
    let pending = listed.values().filter(|l| **l == Listed::Pending).count();
    let (unhealthy, pending) = (listed.len() - pending, pending);
    if listed.len() <= PLAIN_LIMIT {
        return Body { lists, compressed: None, unhealthy, pending };
    }
    let json = serde_json::to_vec(&lists).expect("plain data always serializes");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).expect("writing to memory cannot fail");
    let bytes = gz.finish().expect("writing to memory cannot fail");
    let compressed = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
    Body { lists: Lists::default(), compressed, unhealthy, pending }
}

/// Largest decompressed lists accepted (a hostile report cannot exhaust memory).
const MAX_DECOMPRESSED: u64 = 256 << 20;

/// The checks a report lists (`spec.unhealthy` and `spec.pending`, or `spec.compressed`).
pub fn decode(plain: &Lists, compressed: Option<&str>) -> Result<Listing, ReportError> {
    let unpacked;
    let lists = match compressed {
        None => plain,
        Some(text) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| ReportError::Compressed(e.to_string()))?;
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .take(MAX_DECOMPRESSED)
                .read_to_end(&mut json)
                .map_err(|e| ReportError::Compressed(e.to_string()))?;
            unpacked = serde_json::from_slice::<Lists>(&json)
                .map_err(|e| ReportError::Compressed(e.to_string()))?;
            &unpacked
        }
    };
    let mut listing = Listing::default();
    let id = |namespace: &Arc<str>, name: &str| ObjectRef {
        namespace: namespace.clone(),
        name: Arc::from(name),
    };
    for group in &lists.unhealthy {
        let (namespace, reason): (Arc<str>, Arc<str>) =
            (Arc::from(group.namespace.as_str()), Arc::from(group.reason.as_str()));
        for name in &group.names {
            listing.insert(id(&namespace, name), Listed::Unhealthy(reason.clone()));
        }
    }
    for group in &lists.pending {
        let namespace: Arc<str> = Arc::from(group.namespace.as_str());
        for name in &group.names {
            listing.insert(id(&namespace, name), Listed::Pending);
        }
    }
    Ok(listing)
}

/// A report whose lists do not hold what its counts say (an older CRD's schema pruned a
/// field it does not know, or a hand edit) would make its checker see everything
/// healthy: refused.
pub fn check_counts(
    listing: Listing,
    (unhealthy, pending): (i64, i64),
) -> Result<Listing, ReportError> {
    let listed_pending = listing.values().filter(|l| **l == Listed::Pending).count();
    let listed = ((listing.len() - listed_pending) as i64, listed_pending as i64);
    if listed != (unhealthy, pending) {
        return Err(ReportError::Counts { listed, said: (unhealthy, pending) });
    }
    Ok(listing)
}

/// What changed between two reports of one checker, as views seen `now`.
pub fn diff(old: &Listing, new: &Listing, now: SystemTime) -> Vec<(ObjectRef, Option<PeerView>)> {
    let view = |listed: &Listed| match listed {
        Listed::Unhealthy(reason) => {
            PeerView { healthy: Some(false), reason: reason.clone(), since: now }
        }
        Listed::Pending => PeerView { healthy: None, reason: Arc::from(PENDING), since: now },
    };
    let mut changes = Vec::new();
    for (id, listed) in new {
        if old.get(id) != Some(listed) {
            changes.push((id.clone(), Some(view(listed))));
        }
    }
    for id in old.keys().filter(|id| !new.contains_key(*id)) {
        let healthy = PeerView { healthy: Some(true), reason: Arc::from(HEALTHY), since: now };
        changes.push((id.clone(), Some(healthy)));
    }
    changes
}

/// How much longer a report renewed at `renew_time` counts (zero: it no longer does).
/// A report's age is taken from its own time once, when it arrives; from then on the
/// receiver's clock measures it, so clocks that disagree a little cannot make live
/// reports flap.
pub fn remaining(
    renew_time: &str,
    ttl: Duration,
    now: SystemTime,
) -> Result<Duration, ReportError> {
    let renewed = humantime::parse_rfc3339_weak(renew_time)
        .map_err(|_| ReportError::RenewTime(renew_time.to_owned()))?;
    let age = now.duration_since(renewed).unwrap_or_default();
    Ok(ttl.saturating_sub(age))
}

/// A report's time stamp.
pub fn renew_time(now: SystemTime) -> String {
    humantime::format_rfc3339_micros(now).to_string()
}

/// A replica's identity as an object name: lower case, `[a-z0-9.-]`, at most 253
/// characters, starting and ending alphanumeric.
pub fn object_name(identity: &str) -> String {
    let mut name: String = identity
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
            _ => '-',
        })
        .take(253)
        .collect();
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    let trimmed = name.trim_start_matches(['-', '.']);
    if trimmed.is_empty() { "checker".into() } else { trimmed.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::CheckerReportSpec;

    fn decode_spec(s: &CheckerReportSpec) -> Result<Listing, ReportError> {
        let plain = Lists { unhealthy: s.unhealthy.clone(), pending: s.pending.clone() };
        decode(&plain, s.compressed.as_deref())
    }

    fn unhealthy(n: usize, reason: &str) -> BTreeMap<ObjectRef, Listed> {
        (0..n)
            .map(|i| {
                (
                    ObjectRef::new(format!("team-{}", i % 7), format!("check-{i:06}")),
                    Listed::Unhealthy(Arc::from(reason)),
                )
            })
            .collect()
    }

    fn spec(body: Body) -> CheckerReportSpec {
        CheckerReportSpec {
            checker: "replica-a".into(),
            renew_time: renew_time(SystemTime::now()),
            ttl_seconds: 15,
            namespaces: vec![],
            unhealthy_count: body.unhealthy as i64,
            pending_count: body.pending as i64,
            unhealthy: body.lists.unhealthy,
            pending: body.lists.pending,
            compressed: body.compressed,
        }
    }

    #[test]
    fn short_lists_are_readable_and_grouped() {
        let mut list = unhealthy(3, "ConnectionRefused");
        list.insert(ObjectRef::new("team-0", "web"), Listed::Unhealthy(Arc::from("Timeout")));
        list.insert(ObjectRef::new("team-1", "new"), Listed::Pending);
        let body = encode(&list);
        assert!(body.compressed.is_none());
        assert_eq!((body.unhealthy, body.pending), (4, 1));
        let first = &body.lists.unhealthy[0];
        assert_eq!((&*first.namespace, &*first.reason), ("team-0", "ConnectionRefused"));
        assert_eq!(first.names, vec!["check-000000"]);
        assert_eq!(body.lists.pending[0].names, vec!["new"]);
        let decoded = decode_spec(&spec(body)).unwrap();
        assert_eq!(decoded.len(), 5);
        assert_eq!(
            decoded[&ObjectRef::new("team-0", "web")],
            Listed::Unhealthy(Arc::from("Timeout"))
        );
        assert_eq!(decoded[&ObjectRef::new("team-1", "new")], Listed::Pending);
    }

    #[test]
    fn long_lists_travel_compressed_and_round_trip() {
        let mut list = unhealthy(PLAIN_LIMIT, "Timeout");
        list.insert(ObjectRef::new("team-1", "new"), Listed::Pending);
        let body = encode(&list);
        assert!(body.lists == Lists::default() && body.compressed.is_some());
        let decoded = decode_spec(&spec(body)).unwrap();
        assert_eq!(decoded.len(), list.len());
        assert!(list.iter().all(|(id, l)| decoded.get(id) == Some(l)));
    }

    #[test]
    fn a_hundred_thousand_failing_checks_stay_far_below_the_object_size_limit() {
        // etcd's default request limit is 1.5 MiB; long names on purpose.
        let list: BTreeMap<ObjectRef, Listed> = (0..100_000)
            .map(|i| {
                let id = ObjectRef::new(
                    format!("payments-team-{}", i % 50),
                    format!("payments-api-eu-west-1-endpoint-{i:06}"),
                );
                let reason = ["ConnectionRefused", "Timeout", "StatusCode503"][i % 3];
                (id, Listed::Unhealthy(Arc::from(reason)))
            })
            .collect();
        let report = serde_json::to_vec(&spec(encode(&list))).unwrap();
        assert!(report.len() < 512 * 1024, "{} bytes", report.len());
    }

    #[test]
    fn lists_that_do_not_match_their_counts_are_refused() {
        let body = encode(&unhealthy(3, "Timeout"));
        let s = spec(body);
        let listing = decode_spec(&s).unwrap();
        assert!(check_counts(listing.clone(), (3, 0)).is_ok());
        // A schema that pruned the lists leaves the counts: not "all healthy".
        let err = check_counts(Listing::default(), (3, 0)).unwrap_err().to_string();
        assert!(err.contains("spec.unhealthyCount"), "{err}");
        assert!(check_counts(listing, (2, 1)).is_err());
    }

    #[test]
    fn a_corrupt_compressed_list_is_an_error_naming_the_field() {
        let mut s = spec(encode(&unhealthy(1, "Timeout")));
        s.compressed = Some("not base64 at all!".into());
        assert!(decode_spec(&s).unwrap_err().to_string().starts_with("spec.compressed"));
    }

    #[test]
    fn the_difference_names_new_failures_new_reasons_and_recoveries_only() {
        let id = |n: &str| ObjectRef::new("ns", n);
        let timeout = || Listed::Unhealthy(Arc::from("Timeout"));
        let old: Listing = [(id("a"), timeout()), (id("b"), timeout()), (id("p"), Listed::Pending)]
            .into_iter()
            .collect();
        let new: Listing = [
            (id("b"), Listed::Unhealthy(Arc::from("ConnectionRefused"))),
            (id("c"), timeout()),
            (id("p"), Listed::Pending),
            (id("q"), Listed::Pending),
        ]
        .into_iter()
        .collect();
        let mut changes = diff(&old, &new, SystemTime::UNIX_EPOCH);
        changes.sort_by(|x, y| x.0.cmp(&y.0));
        let summary: Vec<(String, Option<bool>, String)> = changes
            .iter()
            .map(|(id, v)| {
                let v = v.as_ref().unwrap();
                (id.name.to_string(), v.healthy, v.reason.to_string())
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a".into(), Some(true), "Healthy".into()),
                ("b".into(), Some(false), "ConnectionRefused".into()),
                ("c".into(), Some(false), "Timeout".into()),
                ("q".into(), None, "Pending".into()),
            ]
        );
        assert!(diff(&new, &new, SystemTime::UNIX_EPOCH).is_empty());
    }

    #[test]
    fn a_report_counts_for_its_ttl_from_its_own_time() {
        let now = SystemTime::now();
        let ttl = Duration::from_secs(15);
        let at = |ago: u64| renew_time(now - Duration::from_secs(ago));
        let left = remaining(&at(5), ttl, now).unwrap();
        assert!(left.abs_diff(Duration::from_secs(10)) < Duration::from_millis(1), "{left:?}");
        assert_eq!(remaining(&at(60), ttl, now).unwrap(), Duration::ZERO, "a gone replica's");
        assert_eq!(remaining(&renew_time(now + Duration::from_secs(3)), ttl, now).unwrap(), ttl);
        assert!(remaining("yesterday", ttl, now).is_err());
    }

    #[test]
    fn identities_become_valid_object_names() {
        assert_eq!(object_name("failover-dns-7c9f-abcde"), "failover-dns-7c9f-abcde");
        assert_eq!(object_name("My_Host.local-42"), "my-host.local-42");
        assert_eq!(object_name("--x--"), "x");
        assert_eq!(object_name("__"), "checker");
    }
}
