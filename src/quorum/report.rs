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

use crate::health::{HEALTHY, PeerView};
use crate::model::ObjectRef;
use crate::resources::UnhealthyChecks;

/// Entries a report lists readably; beyond, the list is compressed.
pub const PLAIN_LIMIT: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("spec.unhealthyGzip: {0}")]
    Compressed(String),
    #[error("spec.renewTime {0:?}: not an RFC 3339 time")]
    RenewTime(String),
}

/// One checker's unhealthy checks and their reasons.
pub type Unhealthy = HashMap<ObjectRef, Arc<str>>;

/// The verdict part of a report.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Body {
    pub unhealthy: Vec<UnhealthyChecks>,
    pub gzip: Option<String>,
    pub count: usize,
}

/// The report body for these unhealthy checks (in check order).
pub fn encode(unhealthy: &BTreeMap<ObjectRef, Arc<str>>) -> Body {
    let mut groups: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for (id, reason) in unhealthy {
        groups.entry((&id.namespace, reason)).or_default().push(id.name.to_string());
    }
    let groups: Vec<UnhealthyChecks> = groups
        .into_iter()
        .map(|((namespace, reason), names)| UnhealthyChecks {
            namespace: namespace.into(),
            reason: reason.into(),
            names,
        })
        .collect();
    let count = unhealthy.len();
    if count <= PLAIN_LIMIT {
        return Body { unhealthy: groups, gzip: None, count };
    }
    let json = serde_json::to_vec(&groups).expect("plain data always serializes");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).expect("writing to memory cannot fail");
    let bytes = gz.finish().expect("writing to memory cannot fail");
    Body {
        unhealthy: Vec::new(),
        gzip: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        count,
    }
}

/// Largest decompressed list accepted (a hostile report cannot exhaust memory).
const MAX_DECOMPRESSED: u64 = 256 << 20;

/// The unhealthy checks a report lists (`spec.unhealthy`, or `spec.unhealthyGzip`).
pub fn decode(plain: &[UnhealthyChecks], gzip: Option<&str>) -> Result<Unhealthy, ReportError> {
    let compressed;
    let groups = match gzip {
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
            compressed = serde_json::from_slice::<Vec<UnhealthyChecks>>(&json)
                .map_err(|e| ReportError::Compressed(e.to_string()))?;
            &compressed
        }
    };
    let mut unhealthy = Unhealthy::default();
    for group in groups {
        let (namespace, reason): (Arc<str>, Arc<str>) =
            (Arc::from(group.namespace.as_str()), Arc::from(group.reason.as_str()));
        for name in &group.names {
            let id = ObjectRef { namespace: namespace.clone(), name: Arc::from(name.as_str()) };
            unhealthy.insert(id, reason.clone());
        }
    }
    Ok(unhealthy)
}

/// What changed between two reports of one checker, as views seen `now`: checks newly
/// unhealthy (or for another reason) and checks healthy again.
pub fn diff(
    old: &Unhealthy,
    new: &Unhealthy,
    now: SystemTime,
) -> Vec<(ObjectRef, Option<PeerView>)> {
    let mut changes = Vec::new();
    for (id, reason) in new {
        if old.get(id) != Some(reason) {
            let view = PeerView { healthy: false, reason: reason.clone(), since: now };
            changes.push((id.clone(), Some(view)));
        }
    }
    for id in old.keys().filter(|id| !new.contains_key(*id)) {
        let view = PeerView { healthy: true, reason: Arc::from(HEALTHY), since: now };
        changes.push((id.clone(), Some(view)));
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

    fn decode_spec(s: &CheckerReportSpec) -> Result<Unhealthy, ReportError> {
        decode(&s.unhealthy, s.unhealthy_gzip.as_deref())
    }

    fn unhealthy(n: usize, reason: &str) -> BTreeMap<ObjectRef, Arc<str>> {
        (0..n)
            .map(|i| {
                (
                    ObjectRef::new(format!("team-{}", i % 7), format!("check-{i:06}")),
                    Arc::from(reason),
                )
            })
            .collect()
    }

    fn spec(body: Body) -> CheckerReportSpec {
        CheckerReportSpec {
            checker: "replica-a".into(),
            renew_time: renew_time(SystemTime::now()),
            ttl_seconds: 15,
            unhealthy_count: body.count as i64,
            unhealthy: body.unhealthy,
            unhealthy_gzip: body.gzip,
        }
    }

    #[test]
    fn short_lists_are_readable_and_grouped() {
        let mut list = unhealthy(3, "ConnectionRefused");
        list.insert(ObjectRef::new("team-0", "web"), Arc::from("Timeout"));
        let body = encode(&list);
        assert!(body.gzip.is_none());
        assert_eq!(body.count, 4);
        assert_eq!(body.unhealthy[0].namespace, "team-0");
        assert_eq!(body.unhealthy[0].reason, "ConnectionRefused");
        assert_eq!(body.unhealthy[0].names, vec!["check-000000"]);
        let decoded = decode_spec(&spec(body)).unwrap();
        assert_eq!(decoded.len(), 4);
        assert_eq!(&*decoded[&ObjectRef::new("team-0", "web")], "Timeout");
    }

    #[test]
    fn long_lists_travel_compressed_and_round_trip() {
        let list = unhealthy(PLAIN_LIMIT + 1, "Timeout");
        let body = encode(&list);
        assert!(body.unhealthy.is_empty() && body.gzip.is_some());
        let decoded = decode_spec(&spec(body)).unwrap();
        assert_eq!(decoded.len(), list.len());
        assert!(list.iter().all(|(id, r)| decoded.get(id) == Some(r)));
    }

    #[test]
    fn a_hundred_thousand_failing_checks_stay_far_below_the_object_size_limit() {
        // etcd's default request limit is 1.5 MiB; long names on purpose.
        let list: BTreeMap<ObjectRef, Arc<str>> = (0..100_000)
            .map(|i| {
                let id = ObjectRef::new(
                    format!("payments-team-{}", i % 50),
                    format!("payments-api-eu-west-1-endpoint-{i:06}"),
                );
                (id, Arc::from(["ConnectionRefused", "Timeout", "StatusCode503"][i % 3]))
            })
            .collect();
        let report = serde_json::to_vec(&spec(encode(&list))).unwrap();
        assert!(report.len() < 512 * 1024, "{} bytes", report.len());
    }

    #[test]
    fn a_corrupt_compressed_list_is_an_error_naming_the_field() {
        let mut s = spec(encode(&unhealthy(1, "Timeout")));
        s.unhealthy_gzip = Some("not base64 at all!".into());
        assert!(decode_spec(&s).unwrap_err().to_string().starts_with("spec.unhealthyGzip"));
    }

    #[test]
    fn the_difference_names_new_failures_new_reasons_and_recoveries_only() {
        let id = |n: &str| ObjectRef::new("ns", n);
        let old: Unhealthy = [(id("a"), Arc::from("Timeout")), (id("b"), Arc::from("Timeout"))]
            .into_iter()
            .collect();
        let new: Unhealthy =
            [(id("b"), Arc::from("ConnectionRefused")), (id("c"), Arc::from("Timeout"))]
                .into_iter()
                .collect();
        let mut changes = diff(&old, &new, SystemTime::UNIX_EPOCH);
        changes.sort_by(|x, y| x.0.cmp(&y.0));
        let summary: Vec<(String, bool, String)> = changes
            .iter()
            .map(|(id, v)| {
                let v = v.as_ref().unwrap();
                (id.name.to_string(), v.healthy, v.reason.to_string())
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a".into(), true, "Healthy".into()),
                ("b".into(), false, "ConnectionRefused".into()),
                ("c".into(), false, "Timeout".into()),
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
